package storage

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/redis/go-redis/v9"

	"github.com/caddy-dcr/caddy-dcr/internal/redistest"
)

// TestRedisSlowReplies: while Redis keeps stalling for longer than the
// timeout (DEBUG SLEEP stands for a slow disk, a fork, a long script), a
// write is never run twice: a create never finds its own record ("exists")
// and an update never its own revision ("conflict"). A write reported done
// is stored; one reported unavailable may or may not be, but then exactly
// once.
func TestRedisSlowReplies(t *testing.T) {
	srv := redistest.Start(t, "--enable-debug-command", "local")
	pool := NewRedisPool(RedisOptions{Addrs: []string{srv.Addr}, Timeout: 100 * time.Millisecond})
	t.Cleanup(func() { pool.Destruct() })
	s := pool.Store("slow:")
	ctx := context.Background()

	staller := redis.NewClient(&redis.Options{Addr: srv.Addr, ReadTimeout: 5 * time.Second})
	t.Cleanup(func() { staller.Close() })
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(40 * time.Millisecond):
			}
			if err := staller.Do(ctx, "debug", "sleep", "0.15").Err(); err != nil {
				t.Errorf("debug sleep: %v", err)
				return
			}
		}
	}()

	var stored []*Record
	failed := 0
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		rec := &Record{ID: fmt.Sprint("c", i), Data: []byte("v1"), Tags: []string{"all"}}
		err := s.Create(ctx, rec)
		switch {
		case errors.Is(err, ErrExists):
			t.Fatalf("create %s ran twice: %v", rec.ID, err)
		case err != nil:
			failed++
			continue
		}
		next := &Record{ID: rec.ID, Data: []byte("v2"), Tags: rec.Tags}
		err = s.Update(ctx, rec, next)
		switch {
		case errors.Is(err, ErrConflict), errors.Is(err, ErrNotFound):
			t.Fatalf("update of %s ran twice: %v", rec.ID, err)
		case err != nil:
			failed++
			continue
		}
		stored = append(stored, next)
	}
	close(stop)
	wg.Wait()
	for _, want := range stored {
		got, err := s.Get(ctx, want.ID)
		if err != nil || string(got.Data) != "v2" {
			t.Fatalf("%s reported stored: %v %v", want.ID, got, err)
		}
	}
	t.Logf("%d writes stored, %d answered unavailable", len(stored), failed)
	if len(stored) == 0 {
		t.Fatal("no write got through between the stalls")
	}
}

// TestExpiredClientsLeave: clients that expired leave the store for good,
// on both backends, even with no cap pruning a set: the Redis index set
// drops them when the next expiring id joins it, the embedded store's
// periodic sweep removes their files and markers.
func TestExpiredClientsLeave(t *testing.T) {
	ctx := context.Background()
	soon := func() time.Time { return time.Now().Add(100 * time.Millisecond) }

	srv, _, rs := startRedisStore(t, "exp:")
	// A long-lived member keeps the set itself from expiring, as a steady
	// stream of registrations does.
	if err := rs.Create(ctx, &Record{ID: "keeper", Data: []byte("x"), Tags: []string{"all"}, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := rs.Create(ctx, &Record{ID: fmt.Sprint("old", i), Data: []byte("x"), Tags: []string{"all"}, ExpiresAt: soon()}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if err := rs.Create(ctx, &Record{ID: "new", Data: []byte("x"), Tags: []string{"all"}, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if n := srv.CLI("zcard", rs.tagKey("all")); strings.TrimSpace(n) != "2" {
		t.Errorf("redis index holds %s ids, want 2", n)
	}

	dir := t.TempDir()
	es := NewEmbeddedStore(&certmagic.FileStorage{Path: dir}, "exp")
	es.sweepEvery = 0
	for i := 0; i < 5; i++ {
		if err := es.Create(ctx, &Record{ID: fmt.Sprint("old", i), Data: []byte("x"), Tags: []string{"all", "owner:o"}, ExpiresAt: soon()}); err != nil {
			t.Fatal(err)
		}
	}
	// A marker left by a write that failed half-way (markers go first).
	if err := es.st.Store(ctx, path.Join(es.tagDir("all"), fileName("half")), []byte("0")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := es.Create(ctx, &Record{ID: "new", Data: []byte("x"), Tags: []string{"all"}}); err != nil {
		t.Fatal(err)
	}
	for sub, want := range map[string]int{"records": 1, "tags/" + fileName("all"): 1, "tags/" + fileName("owner:o"): 0} {
		entries, _ := os.ReadDir(filepath.Join(dir, "exp", sub))
		if len(entries) != want {
			t.Errorf("embedded %s holds %d files, want %d", sub, len(entries), want)
		}
	}
}

// TestRedisOrphanReaped: a create answered "unavailable" because Redis
// stalled for longer than the timeout and the read-back may still be
// carried out when Redis wakes up; its record (whose id nobody was given)
// is then deleted with its index entries, not left to count against caps.
func TestRedisOrphanReaped(t *testing.T) { bothCreates(t, testRedisOrphanReaped) }

// bothCreates runs test with fresh creates as scripts, then as
// transactions (see RedisStore.txFits).
func bothCreates(t *testing.T, test func(t *testing.T, tx bool)) {
	t.Run("script", func(t *testing.T) { test(t, false) })
	t.Run("transaction", func(t *testing.T) { test(t, true) })
}

func testRedisOrphanReaped(t *testing.T, tx bool) {
	srv, pool, s := reapSetup(t, 100*time.Millisecond, tx)
	ctx := context.Background()
	failed := 0
	for i := 0; i < 5; i++ {
		srv.Pause()
		err := s.Create(ctx, &Record{ID: fmt.Sprint("c", i), Data: []byte("x"), Tags: []string{"all"}, FreshID: true})
		time.Sleep(100 * time.Millisecond)
		srv.Resume()
		if err != nil {
			if !IsUnavailable(err) {
				t.Fatalf("create during a stall: %v", err)
			}
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no create was answered unavailable: the stalls were too short to test anything")
	}
	redistest.WaitFor(t, 5*time.Second, "the index to hold only the acknowledged clients", func(context.Context) bool {
		n, err := s.Count(ctx, "all")
		return err == nil && n == 1+5-failed
	})

	// A record whose id is not fresh (derived from what it names, so that
	// a retry finds it) is never undone: the retry that found it told its
	// caller it exists. Its command must reach the socket before the
	// stall: on a connection made during one, the handshake times out and
	// nothing is sent. So no reap may hold the pool's idle connection.
	redistest.WaitFor(t, 10*time.Second, "the reaps to end", func(context.Context) bool { return !pool.reaper.busy() })
	if _, err := s.Get(ctx, "warm"); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	err := s.Create(ctx, &Record{ID: "derived", Data: []byte("x"), Tags: []string{"all"}})
	time.Sleep(100 * time.Millisecond)
	srv.Resume()
	if err == nil {
		t.Fatal("create during a stall succeeded: the stall was too short to test anything")
	}
	redistest.WaitFor(t, 5*time.Second, "the stalled create to be carried out", func(context.Context) bool {
		_, err := s.Get(ctx, "derived")
		return err == nil
	})
	time.Sleep(3 * time.Second) // past every reap wait
	if _, err := s.Get(ctx, "derived"); err != nil {
		t.Fatalf("a record with a derived id was undone: %v", err)
	}
}

// reapSetup shortens the reap waits and returns a Redis server, a pool on
// it with the given timeout, and a store holding one acknowledged record,
// "warm", tagged "all".
func reapSetup(t *testing.T, timeout time.Duration, tx bool) (*redistest.Server, *RedisPool, *RedisStore) {
	t.Helper()
	saved := reapWaits
	reapWaits = []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second}
	t.Cleanup(func() { reapWaits = saved })
	srv := redistest.Start(t)
	pool := NewRedisPool(RedisOptions{Addrs: []string{srv.Addr}, Timeout: timeout})
	t.Cleanup(func() { pool.Destruct() })
	pool.tx.Store(tx)
	s := pool.Store("orphan:")
	// No pruning in the background: its script would be one more command
	// on the wire when the test stalls Redis, and what Redis carries out
	// after the stall is what these tests count.
	s.pruneAt.Store(time.Now().Add(time.Hour).UnixNano())
	if err := s.Create(context.Background(), &Record{ID: "warm", Data: []byte("x"), Tags: []string{"all"}}); err != nil {
		t.Fatal(err)
	}
	return srv, pool, s
}

// TestRedisManyOrphansReaped: a stall under load leaves hundreds of creates
// on the wire; every one that Redis carries out once it wakes is undone,
// not only the first few dozen.
func TestRedisManyOrphansReaped(t *testing.T) { bothCreates(t, testRedisManyOrphansReaped) }

func testRedisManyOrphansReaped(t *testing.T, tx bool) {
	srv, pool, s := reapSetup(t, 200*time.Millisecond, tx)
	ctx := context.Background()
	srv.Pause()
	var wg sync.WaitGroup
	var ok atomic.Int32
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Create(ctx, &Record{ID: fmt.Sprint("o", i), Data: []byte("x"), Tags: []string{"all"}, FreshID: true}); err == nil {
				ok.Add(1)
			}
		}()
		if i%128 == 0 {
			time.Sleep(20 * time.Millisecond) // several pipelines, not one
		}
	}
	wg.Wait()
	srv.Resume()
	if ok.Load() != 0 {
		t.Fatalf("%d creates succeeded during the stall", ok.Load())
	}
	// Pending or under way: a round that started while Redis was still
	// paused has taken some out of pending.
	_, _, pending := pool.reaper.ids(0)
	if pending <= 64 {
		t.Fatalf("%d reaps pending: too few creates were on the wire to test anything", pending)
	}
	redistest.WaitFor(t, 10*time.Second, "every stalled create to be undone", func(context.Context) bool {
		n, err := s.Count(ctx, "all")
		return err == nil && n == 1
	})
	if n := srv.CLI("dbsize"); strings.TrimSpace(n) != "2" {
		t.Fatalf("dbsize %s, want the warm record and its index", n)
	}
	if ran := execCalls(t, srv) > 0; ran != tx {
		t.Fatalf("transactions carried out: %v", ran)
	}
}

// TestOutcomeOpen: only a write that may have reached Redis has an open
// outcome; one refused by Redis or never sent does not (it needs no
// read-back and no reap, and an update failing so is known unwritten).
func TestOutcomeOpen(t *testing.T) {
	for _, tc := range []struct {
		err  error
		open bool
	}{
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, false},
		{fmt.Errorf("wrapped: %w", &net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}), false},
		{redis.ErrPoolTimeout, false},
		{redis.ErrClosed, false},
		{abandonedError{errQueueTimeout}, false},
		{&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, true},
		{&net.OpError{Op: "write", Err: syscall.EPIPE}, true},
		{context.DeadlineExceeded, true},
		{io.EOF, true},
	} {
		if got := outcomeOpen(tc.err); got != tc.open {
			t.Errorf("outcomeOpen(%v) = %v, want %v", tc.err, got, tc.open)
		}
	}
	srv := redistest.Start(t)
	pool := NewRedisPool(RedisOptions{Addrs: []string{srv.Addr}, Timeout: 200 * time.Millisecond})
	t.Cleanup(func() { pool.Destruct() })
	s := pool.Store("refused:")
	srv.Stop()
	err := s.Create(context.Background(), &Record{ID: "x", Data: []byte("x"), FreshID: true})
	if !IsUnavailable(err) {
		t.Fatalf("create with Redis down: %v", err)
	}
	if len(pool.reaper.pending) != 0 {
		t.Fatalf("a create that never reached Redis was scheduled for a reap: %v", err)
	}
}

// TestEmbeddedSweepResumes: a sweep that runs out of time goes on where it
// stopped at the next slice, with the names it listed, so an expired client
// behind many live ones is removed all the same.
func TestEmbeddedSweepResumes(t *testing.T) {
	savedBudget, savedPause := sweepBudget, sweepPause
	sweepBudget, sweepPause = 0, 0 // one marker per slice
	t.Cleanup(func() { sweepBudget, sweepPause = savedBudget, savedPause })
	ctx := context.Background()
	dir := t.TempDir()
	es := NewEmbeddedStore(&certmagic.FileStorage{Path: dir}, "sw")
	es.sweepEvery = time.Hour
	es.nextSweep = time.Now().Add(time.Hour) // no sweeping while filling
	for i := 0; i < 20; i++ {
		if err := es.Create(ctx, &Record{ID: fmt.Sprint("live", i), Data: []byte("x"), Tags: []string{"all"}}); err != nil {
			t.Fatal(err)
		}
	}
	// "zz" sorts after every live marker's name.
	if err := es.Create(ctx, &Record{ID: "zz", Data: []byte("x"), Tags: []string{"all"}, ExpiresAt: time.Now().Add(50 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	es.nextSweep = time.Time{}
	// The records are swept too; these sort before the others, where
	// the sweep has been already.
	var listed []string
	for i := 0; i < 80 && es.st.Exists(ctx, es.recordKey("zz")); i++ {
		if err := es.Create(ctx, &Record{ID: fmt.Sprint("aa", i), Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		// A directory is listed once, when the sweep comes to it, not
		// for each slice (with a hundred thousand markers, a listing
		// took longer than a slice).
		switch {
		case i == 0:
			listed = es.sweepNames
		case i < 5 && (len(listed) == 0 || len(es.sweepNames) == 0 || &es.sweepNames[0] != &listed[0]):
			t.Fatalf("slice %d listed the directory again", i)
		}
	}
	if es.st.Exists(ctx, es.recordKey("zz")) {
		t.Fatal("the expired record behind the live ones was never swept")
	}
	if _, err := os.Stat(filepath.Join(dir, "sw", "records", fileName("live0"))); err != nil {
		t.Fatalf("a live record was swept: %v", err)
	}
}

// TestRedisUnixSocket: a single Redis on the same machine can be reached
// by the path of its unix socket.
func TestRedisUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "r.sock")
	redistest.Start(t, "--unixsocket", sock, "--unixsocketperm", "700")
	pool := NewRedisPool(RedisOptions{Addrs: []string{sock}})
	t.Cleanup(func() { pool.Destruct() })
	s := pool.Store("unix:")
	ctx := context.Background()
	if err := s.Create(ctx, &Record{ID: "a", Data: []byte("x"), Tags: []string{"all"}}); err != nil {
		t.Fatal(err)
	}
	if rec, err := s.Get(ctx, "a"); err != nil || string(rec.Data) != "x" {
		t.Fatalf("get over the socket: %v %v", rec, err)
	}
}

// TestRedisEvictionWarning: a Redis that may evict keys is reported once,
// also when it comes up only after the pool was created, and also when it
// refuses CONFIG (INFO tells); noeviction is not warned about, and one
// that refuses both is reported as unknown.
func TestRedisEvictionWarning(t *testing.T) {
	defer func(first, retry time.Duration) { evictionFirst, evictionRetry = first, retry }(evictionFirst, evictionRetry)
	evictionFirst, evictionRetry = 10*time.Millisecond, 50*time.Millisecond
	watch := func(addr string) (warned chan string, skipped chan error, pool *RedisPool) {
		warned, skipped = make(chan string, 4), make(chan error, 4)
		pool = NewRedisPool(RedisOptions{Addrs: []string{addr}, Timeout: 200 * time.Millisecond})
		t.Cleanup(func() { pool.Destruct() })
		pool.WatchEviction(func(p string) { warned <- p }, func(err error) { skipped <- err })
		return warned, skipped, pool
	}
	expect := func(warned chan string, skipped chan error, policy string, skip bool) {
		t.Helper()
		wait := 3 * time.Second
		if policy == "" && !skip {
			wait = 500 * time.Millisecond // a live Redis answers at once
		}
		select {
		case p := <-warned:
			if p != policy {
				t.Fatalf("warned about %q, want %q", p, policy)
			}
		case err := <-skipped:
			if !skip {
				t.Fatalf("skipped: %v", err)
			}
		case <-time.After(wait):
			if policy != "" || skip {
				t.Fatal("no report")
			}
		}
	}

	lru := redistest.Start(t, "--maxmemory-policy", "allkeys-lru")
	w, s, _ := watch(lru.Addr)
	expect(w, s, "allkeys-lru", false)

	plain := redistest.Start(t)
	w, s, _ = watch(plain.Addr)
	expect(w, s, "", false)

	// CONFIG refused: INFO says the policy.
	noConfig := redistest.Start(t, "--rename-command", "CONFIG", `""`)
	w, s, _ = watch(noConfig.Addr)
	expect(w, s, "", false)
	noConfigLRU := redistest.Start(t, "--rename-command", "CONFIG", `""`, "--maxmemory-policy", "allkeys-lfu")
	w, s, _ = watch(noConfigLRU.Addr)
	expect(w, s, "allkeys-lfu", false)
	noConfigInfo := redistest.Start(t, "--rename-command", "CONFIG", `""`, "--rename-command", "INFO", "info-renamed")
	w, s, _ = watch(noConfigInfo.Addr)
	expect(w, s, "", true)

	// Down when the pool is created, evicting once it is up.
	late := redistest.Start(t, "--maxmemory-policy", "volatile-lru")
	late.Stop()
	w, s, _ = watch(late.Addr)
	time.Sleep(200 * time.Millisecond)
	late.Restart()
	expect(w, s, "volatile-lru", false)
}

// TestClusterNoResend: the cluster client resends a command after a
// transport error unless told not to. A script whose reply is lost must
// not run again, and the error of a resend (here a refused dial, the node
// gone) must not pass for "never sent": the update may have been carried
// out, so it is not Unwritten. The node here is a stand-in that answers
// CLUSTER SLOTS and drops the connection, and its listener, on a script.
func TestClusterNoResend(t *testing.T) {
	var scripts atomic.Int32
	var ln net.Listener
	ln = fakeRedis(t, func(c net.Conn, cmd []string) bool {
		switch strings.ToLower(cmd[0]) {
		case "cluster":
			fmt.Fprintf(c, "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:%d\r\n", ln.Addr().(*net.TCPAddr).Port)
		case "evalsha", "eval":
			scripts.Add(1)
			_ = ln.Close() // the reply is lost and the node goes away
			return false
		default:
			fmt.Fprintf(c, "-ERR unknown command '%s'\r\n", cmd[0])
		}
		return true
	})
	a := ln.Addr().String()
	pool := NewRedisPool(RedisOptions{Addrs: []string{a, a}, Timeout: 500 * time.Millisecond})
	t.Cleanup(func() { pool.Destruct() })
	s := pool.Store("p:")
	err := s.Update(context.Background(), &Record{ID: "x", Data: []byte("d"), Rev: 1}, &Record{ID: "x", Data: []byte("e")})
	if err == nil || Unwritten(err) {
		t.Fatalf("update whose reply was lost: %v (Unwritten %v), want an open outcome", err, Unwritten(err))
	}
	if n := scripts.Load(); n != 1 {
		t.Fatalf("the script was sent %d times", n)
	}
}

// fakeRedis starts a stand-in Redis on a local port: answer is called with
// each command a connection sends, writes the reply itself, and returns
// false to drop the connection.
func fakeRedis(t *testing.T, answer func(c net.Conn, cmd []string) bool) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					cmd, err := readRESPCommand(r)
					if err != nil || !answer(c, cmd) {
						return
					}
				}
			}()
		}
	}()
	return ln
}

// readRESPCommand reads one command (an array of bulk strings).
func readRESPCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil || len(line) < 3 || line[0] != '*' {
		return nil, fmt.Errorf("not a command: %q %v", line, err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
	out := make([]string, n)
	for i := range out {
		l, err := r.ReadString('\n')
		if err != nil || len(l) < 3 {
			return nil, fmt.Errorf("bad bulk header %q %v", l, err)
		}
		size, _ := strconv.Atoi(strings.TrimSpace(l[1:]))
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		out[i] = string(buf[:size])
	}
	return out, nil
}

// TestRedisRetire: a retired pool answers the commands still coming (a
// replaced config's last requests), stays open while a request holds it or
// a reap is pending, then closes once unused for a timeout.
func TestRedisRetire(t *testing.T) {
	saved := retireTick
	retireTick = 10 * time.Millisecond
	t.Cleanup(func() { retireTick = saved })
	srv := redistest.Start(t)
	const timeout = 500 * time.Millisecond
	pool := NewRedisPool(RedisOptions{Addrs: []string{srv.Addr}, Timeout: timeout})
	s := pool.Store("retire:")
	ctx := context.Background()
	pool.Hold()
	pool.Retire(nil)
	// Held, and quiet for longer than a timeout: still open.
	time.Sleep(2 * timeout)
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("retired pool, held: %v", err)
	}
	pool.Release()
	// Commands keep coming for a while: the pool stays open.
	for end := time.Now().Add(2 * timeout); time.Now().Before(end); time.Sleep(timeout / 10) {
		if _, err := s.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("retired pool, while in use: %v", err)
		}
	}
	// A reap pending: still open once quiet.
	s.reapLater("someid", "value", nil)
	time.Sleep(2 * timeout)
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("retired pool with a reap pending: %v", err)
	}
	// Dropped (a reap under way puts it back for its next look).
	redistest.WaitFor(t, 10*time.Second, "the reaper to stop", func(context.Context) bool {
		pool.reaper.mu.Lock()
		pool.reaper.pending = nil
		pool.reaper.mu.Unlock()
		return !pool.reaper.busy()
	})
	time.Sleep(3 * timeout)
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, redis.ErrClosed) {
		t.Fatalf("retired pool, unused for a while: %v", err)
	}
}

// TestEmbeddedFailedWriteUnwritten: Caddy's file system storage renames a
// complete temporary file into place, so a write it refuses left the
// record as it was, and the error says so.
func TestEmbeddedFailedWriteUnwritten(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	es := NewEmbeddedStore(&certmagic.FileStorage{Path: dir}, "uw")
	// A non-empty directory where the record goes: the rename fails.
	blocked := filepath.Join(dir, "uw", "records", fileName("b"))
	if err := os.MkdirAll(filepath.Join(blocked, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	err := es.Create(ctx, &Record{ID: "b", Data: []byte("x"), Tags: []string{"all"}})
	if !IsUnavailable(err) || !Unwritten(err) {
		t.Fatalf("create over a directory: %v (unwritten %v)", err, Unwritten(err))
	}
}

// TestEmbeddedCapPrunesRecords: a cap that counts expired clients out
// removes their record files with their markers (the markers alone left
// the records where no sweep would find them).
func TestEmbeddedCapPrunesRecords(t *testing.T) {
	ctx := context.Background()
	es, _ := unsweptStore(t, "cp")
	cp := Cap{Tag: "all", Max: 2}
	for _, id := range []string{"e1", "e2"} {
		if err := es.Create(ctx, &Record{ID: id, Data: []byte("x"), Tags: []string{"all"}, ExpiresAt: time.Now().Add(50 * time.Millisecond)}, cp); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if err := es.Create(ctx, &Record{ID: "n1", Data: []byte("x"), Tags: []string{"all"}}, cp); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"e1", "e2"} {
		if es.st.Exists(ctx, es.recordKey(id)) {
			t.Errorf("expired record %s left on disk", id)
		}
	}
}

// TestEmbeddedSweepRecords: the sweep also walks the records: an expired
// record without markers and an old temporary file go; a corrupt record
// and a recent temporary file stay; listings skip the corrupt record.
func TestEmbeddedSweepRecords(t *testing.T) {
	saved := sweepBudget
	sweepBudget = time.Minute // one slice sweeps everything, however slow the machine
	t.Cleanup(func() { sweepBudget = saved })
	ctx := context.Background()
	es, dir := unsweptStore(t, "sr")
	records := filepath.Join(dir, "sr", "records")
	if err := es.Create(ctx, &Record{ID: "old", Data: []byte("x"), ExpiresAt: time.Now().Add(50 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	if err := es.Create(ctx, &Record{ID: "live", Data: []byte("x"), Tags: []string{"all"}}); err != nil {
		t.Fatal(err)
	}
	if err := es.Create(ctx, &Record{ID: "bad", Data: []byte("x"), Tags: []string{"all"}}); err != nil {
		t.Fatal(err)
	}
	live, err := os.ReadFile(filepath.Join(records, fileName("live")))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte, age time.Duration) {
		p := filepath.Join(records, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		when := time.Now().Add(-age)
		if err := os.Chtimes(p, when, when); err != nil {
			t.Fatal(err)
		}
	}
	write("1234567", live, 2*time.Hour)                                              // a crash's complete temporary file
	write("7654321", nil, 2*time.Hour)                                               // an empty one
	write("2345678", live[:len(live)/2], 2*time.Hour)                                // a half-written one
	write("1111111", live, time.Minute)                                              // one being written
	write(fileName("bad"), []byte("{"), 0)                                           // damaged
	if err := es.Create(ctx, &Record{ID: "abc123", Data: []byte("x")}); err != nil { // hex name all digits
		t.Fatal(err)
	}
	write(fileName("abc123"), []byte("{"), 2*time.Hour) // damaged too, and old
	if recs, err := es.List(ctx, "all"); err != nil || len(recs) != 1 || recs[0].ID != "live" {
		t.Fatalf("List with a corrupt record: %v %v", recs, err)
	}
	time.Sleep(100 * time.Millisecond)
	es.nextSweep = time.Time{}
	if err := es.Create(ctx, &Record{ID: "new", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"1234567": false, "7654321": false, "2345678": false, "1111111": true,
		fileName("old"): false, fileName("bad"): true, fileName("live"): true, fileName("abc123"): true} {
		if _, err := os.Stat(filepath.Join(records, name)); (err == nil) != want {
			t.Errorf("%s: kept %v, want %v", name, err == nil, want)
		}
	}
}

// TestEmbeddedCapMemo: at its cap, a store remembers the exact count while
// the markers stay as they were and none has expired, and counts again
// when either changes.
func TestEmbeddedCapMemo(t *testing.T) {
	ctx := context.Background()
	es, _ := unsweptStore(t, "cm")
	cp := Cap{Tag: "all", Max: 3}
	recs := make([]*Record, 3)
	for i := range recs {
		recs[i] = &Record{ID: fmt.Sprint("c", i), Data: []byte("x"), Tags: []string{"all"}}
		if i == 2 {
			recs[i].ExpiresAt = time.Now().Add(time.Second)
		}
		if err := es.Create(ctx, recs[i], cp); err != nil {
			t.Fatal(err)
		}
	}
	var le *LimitError
	for i := 0; i < 3; i++ {
		if err := es.Create(ctx, &Record{ID: fmt.Sprint("x", i), Data: []byte("x"), Tags: []string{"all"}}, cp); !errors.As(err, &le) {
			t.Fatalf("at the cap: %v", err)
		}
	}
	if m, ok := es.capCounts["all"]; !ok || m.live != 3 || m.minExp == 0 {
		t.Fatalf("memo %+v", es.capCounts)
	}
	if err := es.Delete(ctx, recs[0]); err != nil {
		t.Fatal(err)
	}
	if err := es.Create(ctx, &Record{ID: "y", Data: []byte("x"), Tags: []string{"all"}}, cp); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
	if err := es.Create(ctx, &Record{ID: "z", Data: []byte("x"), Tags: []string{"all"}}, cp); !errors.As(err, &le) {
		t.Fatalf("at the cap again: %v", err)
	}
	time.Sleep(time.Until(recs[2].ExpiresAt) + 50*time.Millisecond) // c2 expires
	if err := es.Create(ctx, &Record{ID: "z", Data: []byte("x"), Tags: []string{"all"}}, cp); err != nil {
		t.Fatalf("after an expiry: %v", err)
	}

	// An update that gives a client an expiry sooner than any counted
	// (a use under a shorter idle_lifetime) does not leave the cap reached
	// once that client is gone.
	if err := es.Create(ctx, &Record{ID: "w", Data: []byte("x"), Tags: []string{"all"}}, cp); !errors.As(err, &le) {
		t.Fatalf("at the cap once more: %v", err)
	}
	cur, err := es.Get(ctx, "y")
	if err != nil {
		t.Fatal(err)
	}
	next := *cur
	next.ExpiresAt = time.Now().Add(300 * time.Millisecond)
	if err := es.Update(ctx, cur, &next); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	if err := es.Create(ctx, &Record{ID: "w", Data: []byte("x"), Tags: []string{"all"}}, cp); err != nil {
		t.Fatalf("after an updated client expired: %v", err)
	}
}

// clusterStore starts a cluster of three masters with replicas each and
// returns its nodes, a store on it under key prefix prefix+":" and the
// slot that store's keys are in.
func clusterStore(t *testing.T, replicas int, prefix string, timeout time.Duration) ([]*redistest.Server, *RedisStore, int) {
	t.Helper()
	nodes := redistest.StartClusterNodes(t, replicas)
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.Addr)
	}
	pool := NewRedisPool(RedisOptions{Addrs: addrs, Timeout: timeout})
	t.Cleanup(func() { pool.Destruct() })
	slot, err := strconv.Atoi(nodes[0].CLI("cluster", "keyslot", prefix))
	if err != nil {
		t.Fatal(err)
	}
	return nodes, pool.Store(prefix + ":"), slot
}

// startSlotMove marks slot as moving from the master serving it to another
// one (importing on the target, migrating on the source) and returns both,
// as redis-cli --cluster reshard does before it moves the keys.
func startSlotMove(t *testing.T, nodes []*redistest.Server, slot int) (src, dst *redistest.Server) {
	t.Helper()
	master := redistest.SlotMaster(t, nodes[0], slot)
	for _, n := range nodes {
		if n.Addr == master {
			src = n
		} else if dst == nil {
			dst = n
		}
	}
	if src == nil || dst == nil {
		t.Fatalf("slot %d: no source and target node", slot)
	}
	dst.CLI("cluster", "setslot", strconv.Itoa(slot), "importing", src.CLI("cluster", "myid"))
	src.CLI("cluster", "setslot", strconv.Itoa(slot), "migrating", dst.CLI("cluster", "myid"))
	return src, dst
}

// TestClusterSlotMigrating: while the store's slot moves between nodes, a
// script whose keys are split between them is refused with TRYAGAIN (it
// did not run); it is sent again until the move is over, within the
// store's timeout, rather than failing at once.
func TestClusterSlotMigrating(t *testing.T) {
	nodes, s, slot := clusterStore(t, 0, "mig", 3*time.Second)
	ctx := context.Background()
	if err := s.Create(ctx, &Record{ID: "before", Data: []byte("d"), Tags: []string{"all"}}); err != nil {
		t.Fatal(err)
	}
	src, dst := startSlotMove(t, nodes, slot)
	// The record's key is new (on neither node), the tag's is on the
	// source: Redis answers TRYAGAIN until the move ends (here: is called
	// off).
	done := make(chan error, 1)
	go func() {
		done <- s.Create(ctx, &Record{ID: "during", Data: []byte("d"), Tags: []string{"all"}})
	}()
	select {
	case err := <-done:
		t.Fatalf("create during the move returned at once: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	src.CLI("cluster", "setslot", strconv.Itoa(slot), "stable")
	dst.CLI("cluster", "setslot", strconv.Itoa(slot), "stable")
	if err := <-done; err != nil {
		t.Fatalf("create during the move: %v", err)
	}
	if recs, err := s.List(ctx, "all"); err != nil || len(recs) != 2 {
		t.Fatalf("after the move: %d records, %v", len(recs), err)
	}
}

// TestClusterMasterKilled: when the master serving the store's slot dies
// and a replica takes over, requests recover once the cluster has: the
// client looks up the slot map again after failures with no reply,
// instead of dialing the dead node until its periodic reload (a minute).
func TestClusterMasterKilled(t *testing.T) {
	nodes, s, slot := clusterStore(t, 1, "kill", 500*time.Millisecond)
	ctx := context.Background()
	for i := range 20 {
		if err := s.Create(ctx, &Record{ID: fmt.Sprint("before", i), Data: []byte("d"), Tags: []string{"all"}}); err != nil {
			t.Fatal(err)
		}
	}
	master := redistest.SlotMaster(t, nodes[0], slot)
	// Replication is asynchronous: let the master's replica catch up, or
	// the failover may lose what was written (as the README says it can).
	var masterNode *redistest.Server
	for _, n := range nodes {
		if n.Addr == master {
			masterNode = n
		}
	}
	redistest.WaitFor(t, 10*time.Second, "the replica in step with its master", func(context.Context) bool {
		want, same := masterNode.CLI("dbsize"), 0
		for _, n := range nodes {
			if n.CLI("dbsize") == want {
				same++
			}
		}
		return same >= 2
	})
	var witness *redistest.Server
	for _, n := range nodes {
		if n.Addr == master {
			n.Stop()
		} else if witness == nil {
			witness = n
		}
	}
	redistest.WaitFor(t, 20*time.Second, "a replica serving the slot", func(context.Context) bool {
		m := redistest.SlotMaster(t, witness, slot)
		return m != "" && m != master && redistest.ClusterOK(t, witness)
	})
	promoted := time.Now()
	var n int
	redistest.WaitFor(t, 20*time.Second, "a create after the failover", func(context.Context) bool {
		n++
		return s.Create(ctx, &Record{ID: fmt.Sprint("after", n), Data: []byte("d"), Tags: []string{"all"}}) == nil
	})
	t.Logf("first create %v after the promotion, attempt %d", time.Since(promoted).Round(time.Millisecond), n)
	if recs, err := s.List(ctx, "all"); err != nil || len(recs) < 21 {
		t.Fatalf("after the failover: %d records, %v", len(recs), err)
	}
}

// TestSentinelPlannedFailover: in a SENTINEL FAILOVER, the sentinel
// announces the switch only once it has reconfigured every replica (here
// one that does not answer: until its failover timeout), while the old
// master, left with no replica, takes writes that are discarded when it is
// demoted. The pool leaves the old master as soon as the sentinels name
// the new one, so writes after the promotion reach it and are kept.
func TestSentinelPlannedFailover(t *testing.T) {
	master, replicas, sentinel := redistest.StartSentinelReplicas(t, "planned", 5*time.Second)
	pool := NewRedisPool(RedisOptions{Addrs: []string{sentinel}, MasterName: "planned", Timeout: 500 * time.Millisecond})
	t.Cleanup(func() { pool.Destruct() })
	s := pool.Store("pf:")
	ctx := context.Background()
	if err := s.Create(ctx, &Record{ID: "before", Data: []byte("d"), Tags: []string{"all"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(watchFirst) // the watch has started

	// Once the sentinel has promoted the first replica, the second one
	// stops answering before it is told to follow: the sentinel waits for
	// it until its failover timeout before it announces the switch.
	var clients [2]*redis.Client
	for i, r := range replicas {
		clients[i] = redis.NewClient(&redis.Options{Addr: r.Addr})
		t.Cleanup(func() { clients[i].Close() })
	}
	redistest.CLI(t, "-p", strings.TrimPrefix(sentinel, "127.0.0.1:"), "sentinel", "failover", "planned")
	other := -1
	for deadline := time.Now().Add(10 * time.Second); other < 0; time.Sleep(5 * time.Millisecond) {
		for i, c := range clients {
			if strings.Contains(c.Info(ctx, "replication").Val(), "role:master") {
				other = 1 - i
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no replica was promoted")
		}
	}
	replicas[other].Pause()
	t.Cleanup(replicas[other].Resume)
	// The sentinel names the promoted replica once it has seen it answer
	// as master (it asks each second); the watch then follows within an
	// interval or two. Waited for, not guessed: on a loaded machine the
	// sentinel's next look can come late.
	promoted := replicas[1-other].Addr
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel})
	t.Cleanup(func() { sc.Close() })
	redistest.WaitFor(t, 15*time.Second, "the sentinel to name the promoted replica", func(ctx context.Context) bool {
		addr, err := sc.GetMasterAddrByName(ctx, "planned").Result()
		return err == nil && len(addr) == 2 && net.JoinHostPort(addr[0], addr[1]) == promoted
	})
	time.Sleep(3 * watchInterval)

	var written []string
	for i := range 10 {
		id := fmt.Sprint("after", i)
		if err := s.Create(ctx, &Record{ID: id, Data: []byte("d"), Tags: []string{"all"}}); err == nil {
			written = append(written, id)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(written) == 0 {
		t.Fatal("no write succeeded after the promotion")
	}
	replicas[other].Resume()
	// Asked through a client of its own: the sentinel closes the old
	// master's client connections when it demotes it, which a redis-cli
	// call in flight takes for a failure.
	old := redis.NewClient(&redis.Options{Addr: master.Addr})
	t.Cleanup(func() { old.Close() })
	redistest.WaitFor(t, 30*time.Second, "the old master demoted and in sync", func(ctx context.Context) bool {
		info, err := old.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "role:slave") && strings.Contains(info, "master_link_status:up")
	})
	for _, id := range written {
		if _, err := s.Get(ctx, id); err != nil {
			t.Errorf("%s, answered as written after the promotion: %v", id, err)
		}
	}
}

// TestSentinelDialerKeepsConnCheck: the connections the Sentinel pool
// watches still let go-redis check a plain TCP connection before reuse
// (through syscall.Conn), as without the watch.
func TestSentinelDialerKeepsConnCheck(t *testing.T) {
	srv := redistest.Start(t)
	w := newMasterWatch(RedisOptions{Addrs: []string{"127.0.0.1:1"}, MasterName: "m"}, time.Second)
	c, err := w.dialer(context.Background(), "tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(syscall.Conn); !ok {
		t.Fatalf("%T hides syscall.Conn", c)
	}
	if len(w.conns) != 1 {
		t.Fatalf("%d connections watched", len(w.conns))
	}
	c.Close()
	if len(w.conns) != 0 {
		t.Fatalf("a closed connection is still watched")
	}
}

// TestEmbeddedHitsBounded: the embedded store's rate-limit windows are
// looked through for expired ones once their number has doubled, not on
// every hit once many addresses have open windows (every registration then
// paid a scan of them all), and never grow past hitsMax: a new address
// beyond it is let through uncounted while the known ones stay limited.
func TestEmbeddedHitsBounded(t *testing.T) {
	defer func(p, m int) { hitsPruneMin, hitsMax = p, m }(hitsPruneMin, hitsMax)
	hitsPruneMin, hitsMax = 100, 1000
	es := NewEmbeddedStore(&certmagic.FileStorage{Path: t.TempDir()}, "hits")
	ctx := context.Background()
	hit := func(key string, win time.Duration) bool {
		ok, _, err := es.Hit(ctx, key, 1, win)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	// Short windows that expire are removed when the map reaches 100.
	for i := range 99 {
		hit(fmt.Sprintf("short%d", i), time.Millisecond)
	}
	time.Sleep(5 * time.Millisecond)
	hit("trigger", time.Hour)
	hit("trigger2", time.Hour)
	if n := len(es.hits); n != 2 {
		t.Fatalf("%d windows after expired ones were due for removal, want 2", n)
	}
	// Open windows: the next look is at twice what was left, so the map
	// grows past 100 without a scan at each hit.
	for i := range 500 {
		if !hit(fmt.Sprintf("long%d", i), time.Hour) {
			t.Fatalf("first hit of long%d limited", i)
		}
	}
	if es.hitsPrune < 256 || es.hitsPrune > 2*len(es.hits) {
		t.Errorf("next removal at %d windows with %d open", es.hitsPrune, len(es.hits))
	}
	// At hitsMax, new addresses pass uncounted, known ones stay limited.
	for i := range 2000 {
		hit(fmt.Sprintf("more%d", i), time.Hour)
	}
	if n := len(es.hits); n != hitsMax {
		t.Fatalf("%d windows, want at most %d", n, hitsMax)
	}
	for i := range 2 { // a limit of 1: the second hit would be refused if counted
		if !hit("newcomer", time.Hour) {
			t.Errorf("hit %d of an address beyond the cap is limited", i+1)
		}
	}
	if hit("long7", time.Hour) {
		t.Error("a known address is no longer limited")
	}

	// Once windows close, new addresses are counted again, although the
	// next look was due at more windows than the cap allows.
	es = NewEmbeddedStore(&certmagic.FileStorage{Path: t.TempDir()}, "hits2")
	for i := range 1500 {
		hit(fmt.Sprintf("brief%d", i), 50*time.Millisecond)
	}
	time.Sleep(1100 * time.Millisecond) // closed, and a second since the last look
	if !hit("late", time.Hour) || hit("late", time.Hour) {
		t.Error("a new address is not counted after the windows that filled the map closed")
	}
}

// deleteStored deletes the record id of s as it stands.
func deleteStored(t *testing.T, s *EmbeddedStore, id string) {
	t.Helper()
	rec, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
}

// TestEmbeddedMarkerCountMemo: below a cap, a registration does not read
// the names of the cap's directory again while nothing else changed it
// (this process's own registrations add to the count it has), and a change
// by another process sharing the storage, or by this one, is seen: the cap
// holds exactly.
func TestEmbeddedMarkerCountMemo(t *testing.T) {
	ctx := context.Background()
	fs := &certmagic.FileStorage{Path: t.TempDir()}
	a, b := NewEmbeddedStore(fs, "mm"), NewEmbeddedStore(fs, "mm")
	a.nextSweep, b.nextSweep = time.Now().Add(time.Hour), time.Now().Add(time.Hour)
	cp := Cap{Tag: "all", Max: 7}
	create := func(s *EmbeddedStore, id string) error {
		// Past the directory time's clock tick, so that each change shows.
		time.Sleep(10 * time.Millisecond)
		return s.Create(ctx, &Record{ID: id, Data: []byte("x"), Tags: []string{"all"}}, cp)
	}
	var firstRead time.Time
	for i := range 5 {
		if err := create(a, fmt.Sprint("a", i)); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			// Read for this registration (the first found no directory).
			firstRead = a.markers["all"].read
		}
	}
	if m := a.markers["all"]; m.n != 5 || firstRead.IsZero() || !m.read.Equal(firstRead) {
		t.Fatalf("count kept after this process's registrations, names read once: %+v (first read %v)", a.markers, firstRead)
	}
	for i := range 2 {
		if err := create(b, fmt.Sprint("b", i)); err != nil {
			t.Fatal(err)
		}
	}
	var le *LimitError
	if err := create(a, "a5"); !errors.As(err, &le) {
		t.Fatalf("another process's registrations not seen: %v", err)
	}
	deleteStored(t, a, "a0")
	if err := create(a, "a6"); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
	if err := create(b, "b2"); !errors.As(err, &le) {
		t.Fatalf("at the cap again: %v", err)
	}
}

// TestEmbeddedMarkerCountKeptAcrossChanges: this process's updates and
// deletes are counted into the remembered count, as its registrations
// are, instead of making the next registration read every marker's name
// again (with tens of thousands of clients, each registration after a
// PUT or DELETE took ten times as long); the count stays exact, and the
// cap holds.
func TestEmbeddedMarkerCountKeptAcrossChanges(t *testing.T) {
	ctx := context.Background()
	fs := &certmagic.FileStorage{Path: t.TempDir()}
	a := NewEmbeddedStore(fs, "mk")
	a.nextSweep = time.Now().Add(time.Hour)
	cp := Cap{Tag: "all", Max: 12}
	create := func(id string, tags ...string) error {
		return a.Create(ctx, &Record{ID: id, Data: []byte("x"), Tags: append([]string{"all"}, tags...)}, cp)
	}
	for i := range 6 {
		if err := create(fmt.Sprint("c", i), "owner"); err != nil {
			t.Fatal(err)
		}
	}
	first := a.markers["all"]
	if first.n != 6 || first.read.IsZero() {
		t.Fatalf("count after registrations: %+v", first)
	}
	names := func() int {
		dir, _ := a.osPath(a.tagDir("all"))
		n, err := dirNames(dir)
		if err != nil {
			t.Fatal(err)
		}
		return len(n)
	}
	check := func(what string) {
		t.Helper()
		m, ok := a.markers["all"]
		if !ok || !m.read.Equal(first.read) {
			t.Fatalf("%s: count forgotten or names read again: %+v (first read %v)", what, m, first.read)
		}
		if n, err := a.markerCount(ctx, "all"); err != nil || n != names() {
			t.Fatalf("%s: remembered count %d (%v), %d markers on disk", what, n, err, names())
		}
	}

	rec, err := a.Get(ctx, "c0")
	if err != nil {
		t.Fatal(err)
	}
	upd := &Record{ID: rec.ID, Data: []byte("y"), Tags: rec.Tags}
	if err := a.Update(ctx, rec, upd); err != nil {
		t.Fatal(err)
	}
	check("update, same tags")
	rec, _ = a.Get(ctx, "c0")
	if err := a.Update(ctx, rec, &Record{ID: rec.ID, Data: []byte("z"), Tags: []string{"all", "other"}}); err != nil {
		t.Fatal(err)
	}
	check("update, another owner")
	deleteStored(t, a, "c1")
	check("delete")
	if err := a.Purge(ctx, "c2", []string{"all", "owner"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Purge(ctx, "c2", []string{"all", "owner"}); err != nil {
		t.Fatal(err)
	}
	check("purge, and purge again")
	// A marker left by a write that failed half-way (markers go first) is
	// not counted twice when its id is registered.
	if err := fs.Store(ctx, path.Join(a.tagDir("all"), fileName("left")), []byte("0")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if err := create("c9"); err != nil {
		t.Fatal(err)
	}
	first = a.markers["all"] // read again: the stray marker changed the directory
	if err := create("left"); err != nil {
		t.Fatal(err)
	}
	check("registration over a stray marker")

	// 6 registered, 2 gone, 2 more: 6 live. The cap of 12 lets 6 more in.
	for i := range 6 {
		if err := create(fmt.Sprint("d", i)); err != nil {
			t.Fatalf("registration %d under the cap: %v", i, err)
		}
	}
	var le *LimitError
	if err := create("over"); !errors.As(err, &le) {
		t.Fatalf("past the cap: %v", err)
	}
}

// TestEmbeddedOtherProcessSeen: a change by another process sharing the
// storage is seen by the next write of this one even when it left the
// markers' directory with the time it had (a change within the clock tick
// of the one before, on file systems that stamp directories to the tick):
// the cap holds.
func TestEmbeddedOtherProcessSeen(t *testing.T) {
	ctx := context.Background()
	fs := &certmagic.FileStorage{Path: t.TempDir()}
	a, b := NewEmbeddedStore(fs, "op"), NewEmbeddedStore(fs, "op")
	if a.flockFile == "" {
		t.Fatal("no flock on this platform")
	}
	a.nextSweep, b.nextSweep = time.Now().Add(time.Hour), time.Now().Add(time.Hour)
	cp := Cap{Tag: "all", Max: 7}
	create := func(s *EmbeddedStore, id string) error {
		return s.Create(ctx, &Record{ID: id, Data: []byte("x"), Tags: []string{"all"}}, cp)
	}
	for i := range 5 {
		if err := create(a, fmt.Sprint("a", i)); err != nil {
			t.Fatal(err)
		}
	}
	if m := a.markers["all"]; m.n != 5 {
		t.Fatalf("count after a's registrations: %+v", m)
	}
	dir, _ := a.osPath(a.tagDir("all"))
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := create(b, fmt.Sprint("b", i)); err != nil {
			t.Fatal(err)
		}
	}
	// As if b's changes fell within the tick of a's last one.
	if err := os.Chtimes(dir, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	var le *LimitError
	if err := create(a, "a5"); !errors.As(err, &le) {
		t.Fatalf("another process's registrations within the tick not seen: %v", err)
	}
	// A refusal changes nothing: b keeps what it knows.
	b.markers["all"] = markerMemo{n: 7, mtime: fi.ModTime(), read: time.Now()}
	stamp := b.stamp
	if err := create(b, "b2"); !errors.As(err, &le) {
		t.Fatalf("at the cap: %v", err)
	}
	if b.stamp != stamp || a.stamp != stamp {
		t.Errorf("a refusal left a new stamp: %q %q %q", a.stamp, b.stamp, stamp)
	}
}

// TestEmbeddedCapCountAfterExpiry: a count kept at a cap does not outlive
// a client registered in a deleted one's place that expires sooner than
// those counted: once it expired, there is room again.
func TestEmbeddedCapCountAfterExpiry(t *testing.T) {
	ctx := context.Background()
	a := NewEmbeddedStore(&certmagic.FileStorage{Path: t.TempDir()}, "ce")
	a.nextSweep = time.Now().Add(time.Hour)
	cp := Cap{Tag: "all", Max: 3}
	create := func(id string, exp time.Time) error {
		return a.Create(ctx, &Record{ID: id, Data: []byte("x"), Tags: []string{"all"}, ExpiresAt: exp}, cp)
	}
	for i := range 3 {
		if err := create(fmt.Sprint("c", i), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	var le *LimitError
	if err := create("over", time.Time{}); !errors.As(err, &le) {
		t.Fatalf("past the cap: %v", err)
	}
	deleteStored(t, a, "c0")
	if err := create("brief", time.Now().Add(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	if err := create("after", time.Time{}); err != nil {
		t.Fatalf("refused with 2 live clients under a cap of 3: %v", err)
	}
}

// replyLossProxy forwards connections to a Redis server; once armed, the
// connection that sends a chunk containing match has the chunk delivered
// and is then closed before any reply comes back: Redis carries the
// command out, and the client never learns it. Armed to hold, the chunk is
// delivered only by release, after the client's connection was closed: a
// command that lands late.
type replyLossProxy struct {
	addr    string
	mu      sync.Mutex
	match   []byte
	hold    bool
	deliver func()
}

func startReplyLossProxy(t *testing.T, target string) *replyLossProxy {
	t.Helper()
	p := &replyLossProxy{}
	p.addr = redistest.Proxy(t, target, func(cc, sc net.Conn) {
		var lost atomic.Bool
		replies := make(chan struct{})
		go func() {
			defer close(replies)
			defer cc.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := sc.Read(buf)
				if n > 0 && !lost.Load() {
					_, _ = cc.Write(buf[:n])
				}
				if err != nil {
					return
				}
			}
		}()
		defer func() { <-replies }()
		defer sc.Close()
		buf := make([]byte, 64<<10)
		for {
			n, err := cc.Read(buf)
			if n > 0 {
				hit, hold := p.take(buf[:n])
				if hit {
					lost.Store(true)
				}
				if hold {
					chunk := slices.Clone(buf[:n])
					delivered := make(chan struct{})
					p.mu.Lock()
					p.deliver = func() { _, _ = sc.Write(chunk); close(delivered) }
					p.mu.Unlock()
					_ = cc.Close()
					<-delivered
					time.Sleep(50 * time.Millisecond)
					return
				}
				_, _ = sc.Write(buf[:n])
				if hit {
					time.Sleep(50 * time.Millisecond) // Redis runs it
					_ = cc.Close()
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
	return p
}

// arm makes the next chunk containing match (in lower case) lose its
// reply; with hold, it also reaches Redis only when released.
func (p *replyLossProxy) arm(match string, hold bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.match, p.hold = []byte(match), hold
}

func (p *replyLossProxy) take(chunk []byte) (hit, hold bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.match == nil || !bytes.Contains(bytes.ToLower(chunk), p.match) {
		return false, false
	}
	p.match = nil
	return true, p.hold
}

// release delivers the chunk held last.
func (p *replyLossProxy) release(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	deliver := p.deliver
	p.deliver = nil
	p.mu.Unlock()
	if deliver == nil {
		t.Fatal("nothing held")
	}
	deliver()
}

// TestRedisCapReplyLost: a registration at a cap whose reply is lost
// after Redis carried it out is not read back as created (a transaction's
// counts were in that reply): it is undone and the script decides, so the
// cap holds; below the cap, the create is made again and succeeds.
func TestRedisCapReplyLost(t *testing.T) {
	bothCreates(t, func(t *testing.T, tx bool) {
		srv := redistest.Start(t)
		px := startReplyLossProxy(t, srv.Addr)
		pool := NewRedisPool(RedisOptions{Addrs: []string{px.addr}, Timeout: 500 * time.Millisecond})
		t.Cleanup(func() { pool.Destruct() })
		pool.tx.Store(tx)
		s, ctx := pool.Store("lost:"), context.Background()
		create := func(id string, max int) error {
			return s.Create(ctx, &Record{ID: id, Data: []byte(id), Tags: []string{"all"}, FreshID: true}, Cap{Tag: "all", Max: max})
		}
		if err := create("a", 1); err != nil {
			t.Fatal(err)
		}
		match := map[bool]string{false: "evalsha", true: "\r\nexec\r\n"}[tx]
		px.arm(match, false)
		var le *LimitError
		if err := create("b", 1); err == nil || !errors.As(err, &le) && !IsUnavailable(err) {
			t.Fatalf("a create over the cap whose reply was lost: %v", err)
		}
		redistest.WaitFor(t, 5*time.Second, "only the first client", func(context.Context) bool {
			n, err := s.Count(ctx, "all")
			return err == nil && n == 1 && srv.CLI("exists", s.recordKey("b")) == "0"
		})
		px.arm(match, false)
		if err := create("c", 5); err != nil && !IsUnavailable(err) {
			t.Fatalf("a create under the cap whose reply was lost: %v", err)
		}
		redistest.WaitFor(t, 5*time.Second, "the create to stand or be undone whole", func(context.Context) bool {
			n, _ := s.Count(ctx, "all")
			exists := srv.CLI("exists", s.recordKey("c"))
			return n == 1 && exists == "0" || n == 2 && exists == "1"
		})
	})
}

// TestRedisCapLateTransaction: a capped transaction that reaches Redis
// only after its client gave up on it (the reply lost) is answered
// unavailable, never made again under its id, and removed when it lands:
// made again, it could have been changed by its own late commands after
// its client was told it exists. An undone one gives an index whose
// entries all expire its expiry back.
func TestRedisCapLateTransaction(t *testing.T) {
	srv := redistest.Start(t)
	px := startReplyLossProxy(t, srv.Addr)
	pool := NewRedisPool(RedisOptions{Addrs: []string{px.addr}, Timeout: 300 * time.Millisecond})
	t.Cleanup(func() { pool.Destruct() })
	saved := reapWaits
	reapWaits = []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
	t.Cleanup(func() { reapWaits = saved })
	pool.reaper.waits = reapWaits
	pool.tx.Store(true)
	s, ctx := pool.Store("late:"), context.Background()
	caps := []Cap{{Tag: "all", Max: 10}}
	px.arm("\r\nexec\r\n", true)
	if err := s.Create(ctx, &Record{ID: "late", Data: []byte("x"), Tags: []string{"all"}, FreshID: true}, caps...); !IsUnavailable(err) {
		t.Fatalf("a create whose transaction is held: %v", err)
	}
	px.release(t)
	redistest.WaitFor(t, 5*time.Second, "the late transaction's record to be removed", func(context.Context) bool {
		return srv.CLI("exists", s.recordKey("late")) == "0" && srv.CLI("zcard", s.tagKey("all")) == "0"
	})

	// The undo of a create over a cap leaves an index of expiring
	// entries its expiry, which the transaction took away (PERSIST).
	if err := s.Create(ctx, &Record{ID: "e", Data: []byte("x"), Tags: []string{"owner:o"}, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	var le *LimitError
	if err := s.Create(ctx, &Record{ID: "f", Data: []byte("x"), Tags: []string{"owner:o"}, FreshID: true}, Cap{Tag: "owner:o", Max: 1}); !errors.As(err, &le) {
		t.Fatalf("over the cap: %v", err)
	}
	if ttl, _ := strconv.Atoi(srv.CLI("pttl", s.tagKey("owner:o"))); ttl <= 0 {
		t.Errorf("the index's TTL after an undone create: %d", ttl)
	}
}

// TestRedisWaitMultiRefused: with wait_replicas, a create whose MULTI
// Redis refused (the user lost it while running) ran its commands one by
// one without WAIT's confirmation: it is undone, and answered unavailable,
// never reported as created, when no replica confirms the undo either
// (with replicas that do, the script makes it again: TestRedisAccessCheck
// has that path).
func TestRedisWaitMultiRefused(t *testing.T) {
	srv := redistest.Start(t)
	srv.CLI("ACL", "SETUSER", "u", "on", ">pw", "~*", "+@all")
	pool := NewRedisPool(RedisOptions{Addrs: []string{srv.Addr}, Username: "u", Password: "pw", WaitReplicas: 1, WaitTimeout: 50 * time.Millisecond})
	t.Cleanup(func() { pool.Destruct() })
	s, ctx := pool.Store("wm:"), context.Background()
	pool.tx.Store(true)
	srv.CLI("ACL", "SETUSER", "u", "-multi")
	err := s.Create(ctx, &Record{ID: "a", Data: []byte("x"), Tags: []string{"all"}, FreshID: true})
	if !IsUnavailable(err) {
		t.Fatalf("a create no replica confirmed: %v", err)
	}
	if pool.tx.Load() {
		t.Error("transactions still on after MULTI was refused")
	}
	if n := srv.CLI("dbsize"); n != "0" {
		t.Errorf("%s keys left by the refused create", n)
	}
}

// TestRedisFullCapSkipsTransactions: once a transaction has found a cap
// full, creates under it go to the script straight away for a while,
// rather than each paying a transaction, its undo and the script.
func TestRedisFullCapSkipsTransactions(t *testing.T) {
	srv := redistest.Start(t)
	pool := NewRedisPool(RedisOptions{Addrs: []string{srv.Addr}})
	t.Cleanup(func() { pool.Destruct() })
	pool.tx.Store(true)
	s, ctx := pool.Store("full:"), context.Background()
	create := func(id string) error {
		return s.Create(ctx, &Record{ID: id, Data: []byte("x"), Tags: []string{"all"}, FreshID: true}, Cap{Tag: "all", Max: 2})
	}
	for i := range 2 {
		if err := create(fmt.Sprint("ok", i)); err != nil {
			t.Fatal(err)
		}
	}
	before := execCalls(t, srv)
	var le *LimitError
	for i := range 10 {
		if err := create(fmt.Sprint("over", i)); !errors.As(err, &le) {
			t.Fatalf("over the cap: %v", err)
		}
	}
	if n := execCalls(t, srv) - before; n != 1 {
		t.Errorf("%d of 10 refused creates ran a transaction, want the first only", n)
	}
	if n := srv.CLI("zcard", s.tagKey("all")); n != "2" {
		t.Errorf("index entries: %s", n)
	}
}

// TestRedisRetireNamesPendingReaps: the reaps live in the process only, so a
// pool retired with some pending (Caddy stopping, or reloading, while Redis
// stalls) warns with their ids, for the operator to remove any that show up
// after Caddy exited. A pool with none says nothing.
func TestRedisRetireNamesPendingReaps(t *testing.T) {
	var mu sync.Mutex
	var msgs []string
	SetWarner(func(m, _ string) { mu.Lock(); msgs = append(msgs, m); mu.Unlock() })
	t.Cleanup(func() { warner.Store(nil) })

	// Nothing listens there: the reaps stay pending.
	quiet := NewRedisPool(RedisOptions{Addrs: []string{"127.0.0.1:1"}, Timeout: 50 * time.Millisecond})
	quiet.Retire(nil)
	pool := NewRedisPool(RedisOptions{Addrs: []string{"127.0.0.1:1"}, Timeout: 50 * time.Millisecond})
	s, other := pool.Store("reaps:"), pool.Store("other:")
	s.reapLater("id-one", "v1", nil)
	other.reapLater("id-three", "v3", nil)
	s.reapLater("id-two", "v2", []string{"owner"})
	pool.Retire(func(store string, ids []string) string { return store + "=" + strings.Join(ids, ",") })
	t.Cleanup(func() { pool.Destruct(); quiet.Destruct() })

	mu.Lock()
	if len(msgs) != 1 || !strings.Contains(msgs[0], "3 writes answered 503 may still be carried out") ||
		!strings.HasSuffix(msgs[0], "remove any of these that exist: other:=id-three; reaps:=id-one,id-two") {
		t.Fatalf("warnings: %q", msgs)
	}
	msgs = nil
	mu.Unlock()

	// Without a hint, the ids by store; past maxLoggedReaps, a count.
	many := NewRedisPool(RedisOptions{Addrs: []string{"127.0.0.1:1"}, Timeout: 50 * time.Millisecond})
	t.Cleanup(func() { many.Destruct() })
	ms := many.Store("many:")
	for i := range maxLoggedReaps + 2 {
		ms.reapLater("id"+strconv.Itoa(i), "v", nil)
	}
	many.Retire(nil)
	mu.Lock()
	defer mu.Unlock()
	if len(msgs) != 1 || !strings.Contains(msgs[0], `: store "many:": id0 id1 `) || !strings.HasSuffix(msgs[0], " (and 2 more)") ||
		strings.Contains(msgs[0], "id"+strconv.Itoa(maxLoggedReaps)) {
		t.Fatalf("warnings: %q", msgs)
	}
}

// TestRedisMultiRefusedInPassing: a MULTI refused for a reason that passes
// (NOAUTH while a password is being set, LOADING after a restart) fails the
// create, but does not turn transactions off for the pool: only the ACL's
// NOPERM does (TestRedisAccess). The server here is a stand-in that refuses
// every command as a Redis that now requires a password does.
func TestRedisMultiRefusedInPassing(t *testing.T) {
	var multis atomic.Int32
	ln := fakeRedis(t, func(c net.Conn, cmd []string) bool {
		switch strings.ToLower(cmd[0]) {
		case "hello":
			fmt.Fprintf(c, "-ERR unknown command 'hello'\r\n")
		case "multi":
			multis.Add(1)
			fmt.Fprintf(c, "-NOAUTH Authentication required.\r\n")
		default:
			fmt.Fprintf(c, "-NOAUTH Authentication required.\r\n")
		}
		return true
	})
	pool := NewRedisPool(RedisOptions{Addrs: []string{ln.Addr().String()}, Timeout: 500 * time.Millisecond})
	t.Cleanup(func() { pool.Destruct() })
	pool.tx.Store(true)
	s := pool.Store("p:")
	err := s.Create(context.Background(), &Record{ID: "x", Data: []byte("d"), Tags: []string{"all"}, FreshID: true})
	if err == nil || !IsUnavailable(err) || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("create refused with NOAUTH: %v", err)
	}
	if multis.Load() == 0 {
		t.Fatal("the create was not sent as a transaction")
	}
	if !pool.tx.Load() {
		t.Error("transactions turned off by a NOAUTH")
	}
}

// TestEmbeddedDamagedRecords: a record file that holds no record of its
// own id (JSON null, {}, another record's copy), one too large to be a
// record (read whole, it took the process's memory) or a directory in its
// place is a corrupt record, not an outage: reads of it fail as such,
// listings skip it, and Purge removes it with its markers.
func TestEmbeddedDamagedRecords(t *testing.T) {
	ctx := context.Background()
	es, dir := unsweptStore(t, "dr")
	records := filepath.Join(dir, "dr", "records")
	ids := []string{"c/null", "c/empty", "c/copy", "c/huge", "c/dir", "c/good"}
	for _, id := range ids {
		if err := es.Create(ctx, &Record{ID: id, Data: []byte("x"), Tags: []string{"all"}}); err != nil {
			t.Fatal(err)
		}
	}
	good, err := os.ReadFile(filepath.Join(records, fileName("c/good")))
	if err != nil {
		t.Fatal(err)
	}
	huge := append([]byte(`{"id":"c/huge","data":"`), bytes.Repeat([]byte("A"), maxRecordFile)...)
	huge = append(huge, `"}`...)
	for id, content := range map[string][]byte{"c/null": []byte("null"), "c/empty": []byte("{}"), "c/copy": good, "c/huge": huge} {
		if err := os.WriteFile(filepath.Join(records, fileName(id)), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(records, fileName("c/dir"))
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(p, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[:5] {
		if _, err := es.Get(ctx, id); !Corrupt(err) || !strings.Contains(err.Error(), fileName(id)) {
			t.Errorf("Get %s: %v, want a corrupt record naming its file", id, err)
		}
	}
	if recs, err := es.List(ctx, "all"); err != nil || len(recs) != 1 || recs[0].ID != "c/good" {
		t.Fatalf("List with damaged records: %v %v", recs, err)
	}
	for _, id := range ids[:5] {
		if err := es.Purge(ctx, id, []string{"all"}); err != nil {
			t.Fatalf("Purge %s: %v", id, err)
		}
		if _, err := es.Get(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get %s after its purge: %v", id, err)
		}
	}
	if n, err := es.Count(ctx, "all"); n != 1 || err != nil {
		t.Errorf("markers left: %d %v", n, err)
	}
	if names, _ := dirNames(filepath.Join(dir, "dr", "tags", fileName("all"))); len(names) != 1 {
		t.Errorf("markers left: %q", names)
	}
}

// TestEmbeddedRecordFileDenied: a record file its own permissions refuse
// (chmod 000), in a directory that can be searched, is taken for a damaged
// record (loadKey then fails it as corrupt, the case
// TestEmbeddedDamagedRecords covers for listings and Purge); refused with
// the file unreachable, it is the store that fails. (CI runs as root, which
// no file mode refuses: the error is made up.)
func TestEmbeddedRecordFileDenied(t *testing.T) {
	ctx := context.Background()
	es, _ := unsweptStore(t, "fd")
	if err := es.Create(ctx, &Record{ID: "c/denied", Data: []byte("x"), Tags: []string{"all"}}); err != nil {
		t.Fatal(err)
	}
	denied := &os.PathError{Op: "open", Path: "x", Err: syscall.EACCES}
	if !es.fileDenied(es.recordKey("c/denied"), denied) {
		t.Error("a refused record file in a reachable directory is not taken for a damaged record")
	}
	if es.fileDenied(es.recordKey("c/denied"), &os.PathError{Op: "open", Path: "x", Err: syscall.EIO}) {
		t.Error("an I/O error is taken for a damaged record")
	}
	if es.fileDenied("elsewhere/records/x", denied) {
		t.Error("a refusal where the file cannot be reached is taken for a damaged record")
	}
}

// TestCorruptReportedOnce: a damaged record met again and again is
// reported once, until corruptLogEvery has passed; another one is
// reported at once.
func TestCorruptReportedOnce(t *testing.T) {
	a := corruptFile("rec/once-a", errors.New("x"))
	b := corruptFile("rec/once-b", errors.New("x"))
	if !CorruptDue(a) || CorruptDue(a) || CorruptDue(fmt.Errorf("wrapped: %w", a)) {
		t.Error("the same damaged record is reported more than once")
	}
	if !CorruptDue(b) {
		t.Error("another damaged record is not reported")
	}
	if CorruptDue(errors.New("plain")) {
		t.Error("an error that is no damaged record is reported as one")
	}
	corruptLogged.Lock()
	corruptLogged.at[`record file "rec/once-a"`] = time.Now().Add(-corruptLogEvery)
	corruptLogged.Unlock()
	if !CorruptDue(a) {
		t.Error("a damaged record is not reported again after corruptLogEvery")
	}
}

// TestRedisDamagedRecord: a value at a record's key that is not one of
// ours, bytes or a value of another type (not an outage of the store), is
// a corrupt record; listings skip it and Purge removes it.
func TestRedisDamagedRecord(t *testing.T) {
	ctx := context.Background()
	srv, _, s := startRedisStore(t, "dm:")
	if err := s.Create(ctx, &Record{ID: "c/good", Data: []byte("x"), Tags: []string{"all"}}); err != nil {
		t.Fatal(err)
	}
	for _, damage := range []struct {
		name string
		cmds [][]string // run with the record's key after the command name
		want string     // in Get's error
	}{
		{"garbage", [][]string{{"set", "garbage"}}, "corrupt record"},
		{"a list", [][]string{{"del"}, {"rpush", "x"}}, "WRONGTYPE"},
	} {
		if err := s.Create(ctx, &Record{ID: "c/bad", Data: []byte("x"), Tags: []string{"all"}}); err != nil {
			t.Fatal(err)
		}
		for _, c := range damage.cmds {
			srv.CLI(append([]string{c[0], s.recordKey("c/bad")}, c[1:]...)...)
		}
		if _, err := s.Get(ctx, "c/bad"); !Corrupt(err) || !strings.Contains(err.Error(), damage.want) {
			t.Fatalf("%s: Get: %v, want a corrupt record", damage.name, err)
		}
		if recs, err := s.List(ctx, "all"); err != nil || len(recs) != 1 || recs[0].ID != "c/good" {
			t.Fatalf("%s: List with a damaged record: %v %v", damage.name, recs, err)
		}
		if err := s.Purge(ctx, "c/bad", []string{"all"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "c/bad"); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: after the purge: %v", damage.name, err)
		}
		if got := srv.CLI("zcard", s.tagKey("all")); got != "1" {
			t.Errorf("%s: index entries after the purge: %s", damage.name, got)
		}
	}
}

// TestEmbeddedCapMemoOutlivesItsAge: past capMemoAge, the count at a cap
// is taken again only when the markers' directory changed since: each
// count of a large store holds every write up for seconds.
func TestEmbeddedCapMemoOutlivesItsAge(t *testing.T) {
	ctx := context.Background()
	es, dir := unsweptStore(t, "ma")
	cp := Cap{Tag: "all", Max: 2}
	create := func(id string) error {
		return es.Create(ctx, &Record{ID: id, Data: []byte("x"), Tags: []string{"all"}}, cp)
	}
	for _, id := range []string{"a", "b"} {
		if err := create(id); err != nil {
			t.Fatal(err)
		}
	}
	var lim *LimitError
	if err := create("c"); !errors.As(err, &lim) {
		t.Fatalf("over the cap: %v", err)
	}
	old := time.Now().Add(-2 * capMemoAge)
	m := es.capCounts["all"]
	m.at = old
	es.capCounts["all"] = m
	if err := create("c"); !errors.As(err, &lim) || !es.capCounts["all"].at.Equal(old) {
		t.Fatalf("an unchanged directory was counted again: %v, counted at %v", err, es.capCounts["all"].at)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(dir, "ma", "tags", fileName("all")), later, later); err != nil {
		t.Fatal(err)
	}
	es.forgetMarkers()
	if err := create("c"); !errors.As(err, &lim) || es.capCounts["all"].at.Equal(old) {
		t.Fatalf("a changed directory was not counted again: %v", err)
	}
}

// unsweptStore is an embedded store under base in a new directory, which
// it also returns, whose sweep does not start within a test: what a test
// writes into the directory stays until the test lets a sweep run.
func unsweptStore(t *testing.T, base string) (*EmbeddedStore, string) {
	dir := t.TempDir()
	es := NewEmbeddedStore(&certmagic.FileStorage{Path: dir}, base)
	es.nextSweep = time.Now().Add(time.Hour)
	return es, dir
}

// TestRedisExpiredPrunedByAnyCreate: the ids of expired records leave the
// index even when the only registrations are of records that never expire
// (a transaction, which cannot prune): any create prunes its sets now and
// then, in passes of 256, until none is left.
func TestRedisExpiredPrunedByAnyCreate(t *testing.T) {
	ctx := context.Background()
	srv, _, s := startRedisStore(t, "pr:")
	s.pruneAt.Store(time.Now().Add(time.Hour).UnixNano()) // not due until the test says so
	if err := s.Create(ctx, &Record{ID: "keeper", Data: []byte("x"), Tags: []string{"all"}, FreshID: true}); err != nil {
		t.Fatal(err)
	}
	// 700 ids that expired long ago (as an older version, or a removed
	// IAM handler's clients, left them), in one command.
	args := []string{"zadd", s.tagKey("all")}
	for i := range 700 {
		args = append(args, strconv.Itoa(1000+i), fmt.Sprint("gone", i))
	}
	srv.CLI(args...)
	if err := s.Create(ctx, &Record{ID: "soon-pruned", Data: []byte("x"), Tags: []string{"all"}, FreshID: true}); err != nil {
		t.Fatal(err)
	}
	if got := srv.CLI("zcard", s.tagKey("all")); got != "702" {
		t.Fatalf("index before a pruning is due: %s ids", got)
	}
	s.pruneAt.Store(0) // due now
	if err := s.Create(ctx, &Record{ID: "trigger", Data: []byte("x"), Tags: []string{"all"}, FreshID: true}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.CLI("zcard", s.tagKey("all")) != "3" {
		if time.Now().After(deadline) {
			t.Fatalf("index still holds %s ids, want the 3 live ones", srv.CLI("zcard", s.tagKey("all")))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, _ := s.Count(ctx, "all"); n != 3 {
		t.Errorf("count %d", n)
	}
}

// TestRedisIndexExpiresWhenNoneNever: a set holding an id that never
// expires has no expiry; once an update gives that id one, or takes it
// out of the set, the set gets the expiry of its last id, as a delete
// gives it back: otherwise the set, and its entries once they expire,
// would stay for good.
func TestRedisIndexExpiresWhenNoneNever(t *testing.T) {
	ctx := context.Background()
	srv, _, s := startRedisStore(t, "ne:")
	soon := time.Now().Add(time.Hour)
	for _, id := range []string{"never", "expiring"} {
		rec := &Record{ID: id, Data: []byte("x"), Tags: []string{"owner:a", "all"}}
		if id == "expiring" {
			rec.ExpiresAt = soon
		}
		if err := s.Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	for _, tag := range []string{"owner:a", "all"} {
		if ttl := srv.CLI("pttl", s.tagKey(tag)); ttl != "-1" {
			t.Fatalf("%s with an id that never expires: pttl %s", tag, ttl)
		}
	}
	cur, err := s.Get(ctx, "never")
	if err != nil {
		t.Fatal(err)
	}
	// The update gives "never" an expiry in "all" and takes it out of
	// "owner:a".
	later := time.Now().Add(2 * time.Hour)
	if err := s.Update(ctx, cur, &Record{ID: "never", Data: []byte("y"), Tags: []string{"all"}, ExpiresAt: later}); err != nil {
		t.Fatal(err)
	}
	for tag, want := range map[string]time.Time{"owner:a": soon, "all": later} {
		ttl, _ := strconv.ParseInt(srv.CLI("pttl", s.tagKey(tag)), 10, 64)
		if left := time.Until(want); ttl <= 0 || time.Duration(ttl)*time.Millisecond > left+time.Second || time.Duration(ttl)*time.Millisecond < left-time.Minute {
			t.Errorf("%s: pttl %d ms, want about %v", tag, ttl, left)
		}
	}
}

// TestEmbeddedEmptyTagDirsRemoved: a tag's directory goes when its last
// marker does (tags named after one plugin or one token would each leave
// one for good), and a sweep removes those an older version left.
func TestEmbeddedEmptyTagDirsRemoved(t *testing.T) {
	ctx := context.Background()
	es, dir := unsweptStore(t, "ed")
	tags := func() []string {
		entries, _ := os.ReadDir(filepath.Join(dir, "ed", "tags"))
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	for _, id := range []string{"a", "b"} {
		if err := es.Create(ctx, &Record{ID: id, Data: []byte("x"), Tags: []string{"all", "installs:" + id}}); err != nil {
			t.Fatal(err)
		}
	}
	a, err := es.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := es.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got, want := tags(), []string{fileName("all"), fileName("installs:b")}; !slices.Equal(got, sortedCopy(want)) {
		t.Fatalf("tag directories after a delete: %v, want %v", got, want)
	}
	if n, err := es.Count(ctx, "all"); err != nil || n != 1 {
		t.Fatalf("count %d %v", n, err)
	}
	left := filepath.Join(dir, "ed", "tags", fileName("owner:token:old"))
	if err := os.Mkdir(left, 0o700); err != nil {
		t.Fatal(err)
	}
	es.nextSweep, es.sweepEvery = time.Time{}, 0
	if err := es.Create(ctx, &Record{ID: "c", Data: []byte("x"), Tags: []string{"all"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("an empty tag directory outlived a sweep: %v", err)
	}
	if n, err := es.Count(ctx, "installs:b"); err != nil || n != 1 {
		t.Errorf("installs:b: %d %v", n, err)
	}
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestEmbeddedListDuringDeletes: a list (which takes no lock) while other
// members of the tag come and go sees every member that stays. Caddy's
// file storage List fails as a whole when an entry vanishes during it,
// which read as an empty tag: an owner's clients listed as none, a token
// being revoked reported not found.
func TestEmbeddedListDuringDeletes(t *testing.T) {
	ctx := context.Background()
	es, _ := unsweptStore(t, "ld")
	for i := range 100 {
		if err := es.Create(ctx, &Record{ID: fmt.Sprint("stay", i), Data: []byte("x"), Tags: []string{"all"}}); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	churned := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				churned <- nil
				return
			default:
			}
			rec := &Record{ID: fmt.Sprint("churn", i%8), Data: []byte("x"), Tags: []string{"all"}}
			if err := es.Create(ctx, rec); err != nil {
				churned <- err
				return
			}
			if err := es.Delete(ctx, rec); err != nil {
				churned <- err
				return
			}
		}
	}()
	defer func() {
		close(stop)
		if err := <-churned; err != nil {
			t.Error(err)
		}
	}()
	for range 300 {
		recs, err := es.List(ctx, "all")
		if err != nil {
			t.Fatal(err)
		}
		stay := 0
		for _, r := range recs {
			if strings.HasPrefix(r.ID, "stay") {
				stay++
			}
		}
		if stay != 100 {
			t.Fatalf("a list during deletes holds %d of the 100 records that stay", stay)
		}
		if n, err := es.Count(ctx, "all"); err != nil || n < 100 {
			t.Fatalf("a count during deletes: %d %v", n, err)
		}
	}
}

// startRedisStore starts a Redis server and returns it with a pool on it
// (closed when the test ends) and that pool's store under keyPrefix.
func startRedisStore(t *testing.T, keyPrefix string) (*redistest.Server, *RedisPool, *RedisStore) {
	t.Helper()
	srv := redistest.Start(t)
	pool := NewRedisPool(RedisOptions{Addrs: []string{srv.Addr}})
	t.Cleanup(func() { pool.Destruct() })
	return srv, pool, pool.Store(keyPrefix)
}

// TestRedisIndexOfAnotherType: an index key holding another type (set by
// hand) fails a create or an update with Redis's WRONGTYPE, and nothing of
// it is left behind: not a record made by a transaction (EXEC rolls
// nothing back) nor one made by the script (which stops at its first
// error); an update leaves the record as it was. Deletes go on past it.
func TestRedisIndexOfAnotherType(t *testing.T) {
	ctx := context.Background()
	srv, _, s := startRedisStore(t, "wt:")
	if err := s.Create(ctx, &Record{ID: "c/old", Data: []byte("v1"), Tags: []string{"all", "owner"}, FreshID: true}); err != nil {
		t.Fatal(err)
	}
	srv.CLI("set", s.tagKey("owner"), "garbage")
	for _, rec := range []*Record{
		{ID: "c/tx", Data: []byte("x"), Tags: []string{"all", "owner"}, FreshID: true},
		{ID: "c/script", Data: []byte("x"), Tags: []string{"all", "owner"}, FreshID: true, ExpiresAt: time.Now().Add(time.Hour)},
	} {
		if err := s.Create(ctx, rec); !CorruptIndex(err) || !strings.Contains(err.Error(), "WRONGTYPE") || !strings.Contains(err.Error(), s.tagKey("owner")) {
			t.Fatalf("create %s: %v, want WRONGTYPE naming the index as damaged", rec.ID, err)
		}
		if got := srv.CLI("exists", s.recordKey(rec.ID)); got != "0" {
			t.Errorf("create %s answered an error left its record", rec.ID)
		}
		if got := srv.CLI("zscore", s.tagKey("all"), rec.ID); got != "" {
			t.Errorf("create %s answered an error left an index entry: %q", rec.ID, got)
		}
	}
	old, err := s.Get(ctx, "c/old")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, old, &Record{ID: "c/old", Data: []byte("v2"), Tags: []string{"all", "owner"}}); !CorruptIndex(err) || !strings.Contains(err.Error(), s.tagKey("owner")) {
		t.Fatalf("update: %v, want WRONGTYPE naming the index as damaged", err)
	}
	if _, err := s.List(ctx, "owner"); !CorruptIndex(err) {
		t.Errorf("list: %v, want a damaged index", err)
	}
	if _, err := s.Count(ctx, "owner"); !CorruptIndex(err) {
		t.Errorf("count: %v, want a damaged index", err)
	}
	if rec, err := s.Get(ctx, "c/old"); err != nil || string(rec.Data) != "v1" {
		t.Fatalf("after a failed update: %v %v", rec, err)
	}
	if err := s.Delete(ctx, old); err != nil {
		t.Fatalf("delete past an index of another type: %v", err)
	}
	if got := srv.CLI("zscore", s.tagKey("all"), "c/old"); got != "" {
		t.Errorf("delete left the all-clients entry: %q", got)
	}
}

// markerDeleteRefused is Caddy's file system storage refusing to delete
// index markers (the tags directory read-only for a store not run as
// root), as CI, which runs as root, cannot make a file mode do.
type markerDeleteRefused struct{ *certmagic.FileStorage }

func (m markerDeleteRefused) Delete(ctx context.Context, key string) error {
	if strings.Contains(key, "/tags/") {
		return &os.PathError{Op: "unlinkat", Path: key, Err: syscall.EACCES}
	}
	return m.FileStorage.Delete(ctx, key)
}

// TestEmbeddedDeleteDoneDespiteMarkers: a delete whose record is gone is
// done, even when its index markers cannot be removed: answered as done
// (a 503 would tell the client nothing happened, and its retry would find
// no client), the markers left for readers to skip and the sweep to
// remove (fault audit).
func TestEmbeddedDeleteDoneDespiteMarkers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fs := &certmagic.FileStorage{Path: dir}
	es := NewEmbeddedStore(fs, "dm")
	rec := &Record{ID: "c/gone", Data: []byte("x"), Tags: []string{"all", "owner"}}
	if err := es.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	es.st = markerDeleteRefused{fs}
	if err := es.Delete(ctx, rec); err != nil {
		t.Fatalf("delete with markers that cannot be removed: %v", err)
	}
	if _, err := es.Get(ctx, "c/gone"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after the delete: %v", err)
	}
	if recs, err := es.List(ctx, "owner"); err != nil || len(recs) != 0 {
		t.Errorf("listing after the delete: %v %v", recs, err)
	}
	if names, _ := dirNames(filepath.Join(dir, "dm", "tags", fileName("owner"))); len(names) != 1 {
		t.Errorf("markers %q: the refused one should stay for the sweep", names)
	}
}

// TestRedisRecordOfAnotherTypeAtWrite: a record's key set to another type
// between a read and the write that follows (an update, a delete) is that
// record's damage, named as such, not a damaged index.
func TestRedisRecordOfAnotherTypeAtWrite(t *testing.T) {
	ctx := context.Background()
	srv, _, s := startRedisStore(t, "rw:")
	if err := s.Create(ctx, &Record{ID: "c/x", Data: []byte("v1"), Tags: []string{"all"}, FreshID: true}); err != nil {
		t.Fatal(err)
	}
	old, err := s.Get(ctx, "c/x")
	if err != nil {
		t.Fatal(err)
	}
	srv.CLI("del", s.recordKey("c/x"))
	srv.CLI("rpush", s.recordKey("c/x"), "x")
	if err := s.Update(ctx, old, &Record{ID: "c/x", Data: []byte("v2"), Tags: []string{"all"}}); !Corrupt(err) || CorruptIndex(err) {
		t.Errorf("update: %v, want a damaged record", err)
	}
	if err := s.Delete(ctx, old); !Corrupt(err) || CorruptIndex(err) {
		t.Errorf("delete: %v, want a damaged record", err)
	}
}
