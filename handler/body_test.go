package handler

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestReadBodyDeadline: a body that trickles in is cut off after
// bodyTimeout in all, however often a byte arrives.
func TestReadBodyDeadline(t *testing.T) {
	saved := bodyTimeout
	bodyTimeout = 500 * time.Millisecond
	t.Cleanup(func() { bodyTimeout = saved })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := readBody(w, r); err != nil {
			http.Error(w, "unread", http.StatusBadRequest)
			return
		}
		io.WriteString(w, "read")
	}))
	t.Cleanup(srv.Close)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := strings.Repeat("x", 40)
	if _, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	go func() {
		for i := 0; i < len(body); i++ {
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond) // 2 s in all
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadRequest || time.Since(start) > 1500*time.Millisecond {
		t.Fatalf("status %d after %v", resp.StatusCode, time.Since(start))
	}

	// A body sent at once is read, and the connection serves the next
	// request normally (the deadline does not linger).
	resp, err = http.Post(srv.URL, "text/plain", strings.NewReader(body))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%v %v", resp, err)
	}
	resp.Body.Close()
	time.Sleep(700 * time.Millisecond)
	resp, err = http.Post(srv.URL, "text/plain", strings.NewReader(body))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("second request on the connection: %v %v", resp, err)
	}
	resp.Body.Close()
}

// errReader fails every read, as a connection does that closes before
// any of the body arrives.
type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// TestReadBodyAllocatesAsItArrives: a large announced body is read in
// full, but memory is not taken for it before its bytes come.
func TestReadBodyAllocatesAsItArrives(t *testing.T) {
	for _, n := range []int{1, eagerBodyBytes, eagerBodyBytes + 1, MaxBodyBytes} {
		want := strings.Repeat("b", n)
		r := httptest.NewRequest("POST", "/", strings.NewReader(want))
		got, err := readBody(httptest.NewRecorder(), r)
		if err != nil || string(got) != want {
			t.Fatalf("%d bytes: got %d bytes, %v", n, len(got), err)
		}
	}
	r := httptest.NewRequest("POST", "/", strings.NewReader("short"))
	r.ContentLength = eagerBodyBytes + 100
	if _, err := readBody(httptest.NewRecorder(), r); err == nil {
		t.Fatal("a body shorter than its Content-Length was read without error")
	}

	var before, after runtime.MemStats
	const rounds = 50
	runtime.ReadMemStats(&before)
	for range rounds {
		r := httptest.NewRequest("POST", "/", nil)
		r.Body, r.ContentLength = io.NopCloser(errReader{}), MaxBodyBytes
		if _, err := readBody(httptest.NewRecorder(), r); err == nil {
			t.Fatal("a failing body was read without error")
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / rounds; per > MaxBodyBytes/4 {
		t.Fatalf("%d bytes allocated per request whose body never came", per)
	}
}
