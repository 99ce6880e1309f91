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

// TestFreePortOutsideEphemeral: the ports FreePort gives lie below the
// range outgoing connections take theirs from, and a process never gets
// the same one twice.
func TestFreePortOutsideEphemeral(t *testing.T) {
	lo, hi := portRange()
	if hi <= lo {
		t.Fatalf("no port range: %d to %d", lo, hi)
	}
	seen := map[int]bool{}
	for range 200 {
		p := FreePort(t)
		if p < lo || p >= hi {
			t.Fatalf("port %d outside %d to %d", p, lo, hi)
		}
		if seen[p] {
			t.Fatalf("port %d given twice", p)
		}
		seen[p] = true
	}
	// One held by another server is passed over.
	l, err := net.Listen("tcp", ":"+strconv.Itoa(ports.next))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	held := l.Addr().(*net.TCPAddr).Port
	if p := FreePort(t); p == held {
		t.Fatalf("port %d given while another server holds it", p)
	}
}
