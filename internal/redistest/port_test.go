package redistest

import (
	"net"
	"strconv"
	"testing"
)

// TestPortTaken: a server whose port was taken meanwhile is started on
// another one, rather than failing the test after a wait.
func TestPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	s := run(t, taken, []string{"--port", strconv.Itoa(taken)})
	if s.Port == taken {
		t.Fatalf("started on the taken port %d", taken)
	}
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatalf("not listening on %s: %v", s.Addr, err)
	}
	c.Close()
}
