package storage

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// masterWatch makes a Sentinel pool leave a master as soon as the
// sentinels name another one.
//
// go-redis follows a failover when the one sentinel it listens to
// announces it (+switch-master), and looks the master up again only when
// it opens a connection. The sentinel that leads a failover announces it
// only once it has reconfigured every replica, which takes seconds (a
// replica resyncing in full, one that does not answer): meanwhile the
// pooled connections keep writing to the old master, which has no
// replicas left and whose writes are all discarded when Sentinel demotes
// it. Those were registrations answered 201, then lost. The sentinels
// name the promoted replica as soon as it is promoted, though: polled,
// they show the switch at once, and closing the connections to the old
// master makes go-redis dial the new one.
type masterWatch struct {
	name       string // RedisOptions.Name
	masterName string
	sentinels  []*redis.SentinelClient
	addrs      []string // of the sentinels, whose connections are not the master's
	dial       func(context.Context, string, string) (net.Conn, error)

	mu    sync.Mutex
	conns map[*watchedConn]struct{}
	// current is the master the sentinels named last; former, the other
	// addresses they named before, to whose connections nothing may go.
	// (Other connections, to sentinels go-redis found by itself, stay.)
	current string
	former  map[string]bool
}

// watchInterval is how often the sentinels are asked for the master;
// watchFirst, how long after the pool was made they are first asked, so
// that loading a config (caddy validate, adapt) does no network I/O.
var (
	watchInterval = 250 * time.Millisecond
	watchFirst    = time.Second
)

type watchedConn struct {
	net.Conn
	addr string
	w    *masterWatch
}

// watchedSysConn is a watchedConn on a plain TCP connection: go-redis
// checks such a connection for a peer gone away before it reuses it, which
// it can only do through syscall.Conn (a TLS connection it leaves alone).
type watchedSysConn struct{ *watchedConn }

func (c watchedSysConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

func (c *watchedConn) Close() error {
	c.w.mu.Lock()
	delete(c.w.conns, c)
	c.w.mu.Unlock()
	return c.Conn.Close()
}

// MasterUnknown reports whether err, from a Sentinel pool, says that a
// sentinel answered but knows no master of the configured name (a typo
// in master_name): go-redis reports it as all sentinels unreachable, each
// with its answer, and the answer is redis.Nil.
func MasterUnknown(err error) bool {
	return errors.Is(err, redis.Nil) && strings.Contains(err.Error(), "sentinels")
}

func newMasterWatch(o RedisOptions, timeout time.Duration) *masterWatch {
	w := &masterWatch{name: o.Name, masterName: o.MasterName, addrs: o.Addrs, conns: map[*watchedConn]struct{}{}, former: map[string]bool{}}
	nd := &net.Dialer{Timeout: timeout, KeepAlive: 5 * time.Minute}
	w.dial = nd.DialContext
	if o.TLS != nil {
		w.dial = (&tls.Dialer{NetDialer: nd, Config: o.TLS}).DialContext
	}
	for _, a := range o.Addrs {
		w.sentinels = append(w.sentinels, redis.NewSentinelClient(&redis.Options{
			Addr: a, Username: o.SentinelUsername, Password: o.SentinelPassword, TLSConfig: o.TLS,
			DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout, MaxRetries: -1, PoolSize: 1,
		}))
	}
	return w
}

// dialer dials as go-redis does by default (w.dial), and keeps track of
// the connections to anything but the sentinels (to the master).
func (w *masterWatch) dialer(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := w.dial(ctx, network, addr)
	if err != nil || slices.Contains(w.addrs, addr) {
		return c, err
	}
	wc := &watchedConn{Conn: c, addr: addr, w: w}
	w.mu.Lock()
	w.conns[wc] = struct{}{}
	w.mu.Unlock()
	if _, ok := c.(syscall.Conn); ok {
		return watchedSysConn{wc}, nil
	}
	return wc, nil
}

// run asks the sentinels for the master every watchInterval until stopped
// is closed, and closes the connections to a former master once most of
// those that answer name a new one.
func (w *masterWatch) run(stopped <-chan struct{}) {
	defer func() {
		for _, s := range w.sentinels {
			_ = s.Close()
		}
	}()
	select {
	case <-stopped:
		return
	case <-time.After(watchFirst):
	}
	tick := time.NewTicker(watchInterval)
	defer tick.Stop()
	for {
		select {
		case <-stopped:
			return
		case <-tick.C:
		}
		if master := w.master(); master != "" {
			w.leave(master)
		}
	}
}

// master returns the address most of the answering sentinels give for the
// master, or "" without a majority of them.
func (w *masterWatch) master() string {
	votes := map[string]int{}
	answered := 0
	for _, s := range w.sentinels {
		ctx, cancel := context.WithTimeout(context.Background(), watchInterval)
		addr, err := s.GetMasterAddrByName(ctx, w.masterName).Result()
		cancel()
		if err != nil || len(addr) != 2 {
			continue
		}
		answered++
		votes[net.JoinHostPort(addr[0], addr[1])]++
	}
	for a, n := range votes {
		if 2*n > answered {
			return a
		}
	}
	return ""
}

// leave records master as the current one and closes the connections to
// the former ones.
func (w *masterWatch) leave(master string) {
	w.mu.Lock()
	if w.current != master {
		if w.current != "" {
			w.former[w.current] = true
		}
		delete(w.former, master)
		w.current = master
	}
	var stale []*watchedConn
	for c := range w.conns {
		if w.former[c.addr] {
			stale = append(stale, c)
		}
	}
	w.mu.Unlock()
	if len(stale) == 0 {
		return
	}
	warnAt(w.name, "redis: the sentinels name %s as the master: closing %d connections to the old one (%s)", master, len(stale), stale[0].addr)
	for _, c := range stale {
		_ = c.Close()
	}
}
