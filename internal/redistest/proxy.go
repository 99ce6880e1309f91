package redistest

import (
	"net"
	"sync"
)

// Proxy listens on a free loopback port and, for each connection it
// accepts, dials target and hands both connections to serve, which
// forwards between them as the test needs (holding, cutting, dropping
// replies). When the test ends the listener and every connection are
// closed and the serving goroutines waited for. It returns the address to
// give the client instead of target.
func Proxy(t T, target string, serve func(client, server net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			cc, err := ln.Accept()
			if err != nil {
				return
			}
			sc, err := net.Dial("tcp", target)
			if err != nil {
				_ = cc.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, cc, sc)
			mu.Unlock()
			wg.Go(func() { serve(cc, sc) })
		}
	})
	return ln.Addr().String()
}
