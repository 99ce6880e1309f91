package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
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

// conformance runs the same behaviour checks against every backend.
func conformance(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()

	t.Run("purge", func(t *testing.T) {
		s := newStore(t)
		for _, id := range []string{"c/p1", "c/p2"} {
			if err := s.Create(ctx, &Record{ID: id, Data: []byte("x"), Tags: []string{"all", "owner:carol"}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Purge(ctx, "c/p1", []string{"all", "owner:carol"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "c/p1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("purged record: %v", err)
		}
		for _, tag := range []string{"all", "owner:carol"} {
			if n, err := s.Count(ctx, tag); n != 1 || err != nil {
				t.Errorf("%s after the purge: %d %v", tag, n, err)
			}
		}
		if err := s.Purge(ctx, "c/p1", []string{"all"}); err != nil {
			t.Errorf("purging no record: %v", err)
		}
		if _, err := s.Get(ctx, "c/p2"); err != nil {
			t.Errorf("the other record: %v", err)
		}
	})

	t.Run("create get update delete", func(t *testing.T) {
		s := newStore(t)
		rec := &Record{ID: "c/one", Data: []byte(`{"a":1}`), Tags: []string{"all", "owner:alice"}}
		if err := s.Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if rec.Rev != 1 {
			t.Fatalf("rev = %d", rec.Rev)
		}
		if err := s.Create(ctx, &Record{ID: "c/one", Data: []byte("x")}); !errors.Is(err, ErrExists) {
			t.Fatalf("second create: %v", err)
		}
		got, err := s.Get(ctx, "c/one")
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Data) != `{"a":1}` || got.Rev != 1 || strings.Join(got.Tags, ",") != "all,owner:alice" {
			t.Fatalf("got %+v", got)
		}
		upd := &Record{ID: "c/one", Data: []byte(`{"a":2}`), Tags: []string{"all", "owner:bob"}}
		if err := s.Update(ctx, got, upd); err != nil {
			t.Fatal(err)
		}
		if upd.Rev != 2 {
			t.Fatalf("rev after update = %d", upd.Rev)
		}
		// The stale revision loses.
		if err := s.Update(ctx, got, &Record{ID: "c/one", Data: []byte("stale")}); !errors.Is(err, ErrConflict) {
			t.Fatalf("stale update: %v", err)
		}
		if n, _ := s.Count(ctx, "owner:alice"); n != 0 {
			t.Fatalf("alice still indexed: %d", n)
		}
		if l, _ := s.List(ctx, "owner:bob"); len(l) != 1 || string(l[0].Data) != `{"a":2}` {
			t.Fatalf("bob list %+v", l)
		}
		if err := s.Delete(ctx, got); !errors.Is(err, ErrConflict) {
			t.Fatalf("stale delete: %v", err)
		}
		if err := s.Delete(ctx, upd); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "c/one"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
		if n, _ := s.Count(ctx, "all"); n != 0 {
			t.Fatalf("count after delete = %d", n)
		}
		if err := s.Update(ctx, upd, &Record{ID: "c/one"}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("update after delete: %v", err)
		}
		if err := s.Delete(ctx, upd); !errors.Is(err, ErrNotFound) {
			t.Fatalf("delete after delete: %v", err)
		}
	})

	t.Run("ids are case sensitive and binary safe", func(t *testing.T) {
		s := newStore(t)
		for _, id := range []string{"c/AbC", "c/abc", "c/a:b{c}/d e"} {
			if err := s.Create(ctx, &Record{ID: id, Data: []byte(id), Tags: []string{"owner:ü ser/{x}"}}); err != nil {
				t.Fatalf("%q: %v", id, err)
			}
		}
		for _, id := range []string{"c/AbC", "c/abc", "c/a:b{c}/d e"} {
			r, err := s.Get(ctx, id)
			if err != nil || string(r.Data) != id {
				t.Fatalf("%q: %v %+v", id, err, r)
			}
		}
		if n, _ := s.Count(ctx, "owner:ü ser/{x}"); n != 3 {
			t.Fatalf("count = %d", n)
		}
	})

	// Fresh random ids without caps or expiry: what a Redis store whose
	// user may run MULTI and EXEC creates as a transaction.
	t.Run("fresh ids", func(t *testing.T) {
		s := newStore(t)
		// An index whose members all expire expires with them, until a
		// member that never expires joins it.
		if err := s.Create(ctx, &Record{ID: "c/soon", Data: []byte("s"), Tags: []string{"all"}, ExpiresAt: time.Now().Add(300 * time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"c/f1", "c/f2"} {
			rec := &Record{ID: id, Data: []byte(id), Tags: []string{"all", "owner:o"}, FreshID: true}
			if err := s.Create(ctx, rec); err != nil || rec.Rev != 1 {
				t.Fatalf("%s: %v rev %d", id, err, rec.Rev)
			}
		}
		if err := s.Create(ctx, &Record{ID: "c/f1", Data: []byte("again"), Tags: []string{"all"}, FreshID: true}); !errors.Is(err, ErrExists) {
			t.Fatalf("a taken fresh id: %v", err)
		}
		got, err := s.Get(ctx, "c/f1")
		if err != nil || string(got.Data) != "c/f1" || got.Rev != 1 || !got.ExpiresAt.IsZero() || strings.Join(got.Tags, ",") != "all,owner:o" {
			t.Fatalf("get: %v %+v", err, got)
		}
		time.Sleep(400 * time.Millisecond)
		if n, err := s.Count(ctx, "all"); n != 2 || err != nil {
			t.Fatalf("count after c/soon expired = %d %v", n, err)
		}
		if l, err := s.List(ctx, "owner:o"); len(l) != 2 || err != nil {
			t.Fatalf("list = %+v %v", l, err)
		}
		upd := &Record{ID: "c/f1", Data: []byte("v2"), Tags: []string{"all"}}
		if err := s.Update(ctx, got, upd); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.Count(ctx, "owner:o"); n != 1 {
			t.Fatalf("owner count after update = %d", n)
		}
		if err := s.Delete(ctx, upd); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.Count(ctx, "all"); n != 1 {
			t.Fatalf("count after delete = %d", n)
		}
	})

	t.Run("expiry", func(t *testing.T) {
		s := newStore(t)
		exp := time.Now().Add(300 * time.Millisecond)
		if err := s.Create(ctx, &Record{ID: "c/short", Data: []byte("x"), Tags: []string{"all"}, ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
		if err := s.Create(ctx, &Record{ID: "c/long", Data: []byte("y"), Tags: []string{"all"}}); err != nil {
			t.Fatal(err)
		}
		r, err := s.Get(ctx, "c/short")
		if err != nil || r.ExpiresAt.UnixMilli() != exp.UnixMilli() {
			t.Fatalf("%v %+v", err, r)
		}
		if n, _ := s.Count(ctx, "all"); n != 2 {
			t.Fatalf("count = %d", n)
		}
		time.Sleep(400 * time.Millisecond)
		if _, err := s.Get(ctx, "c/short"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("expired record still there: %v", err)
		}
		if n, _ := s.Count(ctx, "all"); n != 1 {
			t.Fatalf("count after expiry = %d", n)
		}
		if l, _ := s.List(ctx, "all"); len(l) != 1 || l[0].ID != "c/long" {
			t.Fatalf("list after expiry = %+v", l)
		}
		// The id is free again.
		if err := s.Create(ctx, &Record{ID: "c/short", Data: []byte("z")}); err != nil {
			t.Fatal(err)
		}
		// Refreshing an expiry through Update keeps the record alive.
		long, _ := s.Get(ctx, "c/long")
		upd := &Record{ID: "c/long", Data: long.Data, Tags: long.Tags, ExpiresAt: time.Now().Add(time.Hour)}
		if err := s.Update(ctx, long, upd); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.Count(ctx, "all"); n != 1 {
			t.Fatalf("count after refresh = %d", n)
		}
	})

	t.Run("caps hold under concurrency", func(t *testing.T) {
		s := newStore(t)
		var ok, limited atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 40; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				err := s.Create(ctx, &Record{ID: fmt.Sprintf("c/%d", i), Data: []byte("x"), Tags: []string{"all", "owner:o"}, FreshID: true},
					Cap{Tag: "all", Max: 100}, Cap{Tag: "owner:o", Max: 7})
				var le *LimitError
				switch {
				case err == nil:
					ok.Add(1)
				case errors.As(err, &le) && le.Cap.Tag == "owner:o":
					limited.Add(1)
				default:
					t.Errorf("create %d: %v", i, err)
				}
			}(i)
		}
		wg.Wait()
		if ok.Load() != 7 || limited.Load() != 33 {
			t.Fatalf("created %d, limited %d", ok.Load(), limited.Load())
		}
		if n, _ := s.Count(ctx, "owner:o"); n != 7 {
			t.Fatalf("count = %d", n)
		}
	})

	t.Run("no lost update", func(t *testing.T) {
		s := newStore(t)
		if err := s.Create(ctx, &Record{ID: "c/n", Data: []byte("0")}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					cur, err := s.Get(ctx, "c/n")
					if err != nil {
						t.Error(err)
						return
					}
					var n int
					fmt.Sscan(string(cur.Data), &n)
					err = s.Update(ctx, cur, &Record{ID: "c/n", Data: []byte(fmt.Sprint(n + 1))})
					if errors.Is(err, ErrConflict) {
						continue
					}
					if err != nil {
						t.Error(err)
					}
					return
				}
			}()
		}
		wg.Wait()
		cur, _ := s.Get(ctx, "c/n")
		if string(cur.Data) != "10" || cur.Rev != 11 {
			t.Fatalf("after 10 increments: %s rev %d", cur.Data, cur.Rev)
		}
	})

	t.Run("list", func(t *testing.T) {
		s := newStore(t)
		for _, id := range []string{"c/b", "c/a", "c/c"} {
			if err := s.Create(ctx, &Record{ID: id, Data: []byte(id), Tags: []string{"plugins"}}); err != nil {
				t.Fatal(err)
			}
		}
		l, err := s.List(ctx, "plugins")
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range l {
			ids = append(ids, r.ID)
		}
		sort.Strings(ids)
		if strings.Join(ids, ",") != "c/a,c/b,c/c" {
			t.Fatalf("ids %v", ids)
		}
		if l, err := s.List(ctx, "nothing"); err != nil || len(l) != 0 {
			t.Fatalf("empty list: %v %v", l, err)
		}
	})

	t.Run("hit", func(t *testing.T) {
		s := newStore(t)
		for i := 1; i <= 3; i++ {
			ok, _, err := s.Hit(ctx, "ip:1.2.3.4", 3, time.Second)
			if err != nil || !ok {
				t.Fatalf("hit %d: %v %v", i, ok, err)
			}
		}
		ok, retry, err := s.Hit(ctx, "ip:1.2.3.4", 3, time.Second)
		if err != nil || ok || retry <= 0 || retry > time.Second {
			t.Fatalf("4th hit: %v %v %v", ok, retry, err)
		}
		if ok, _, _ := s.Hit(ctx, "ip:5.6.7.8", 3, time.Second); !ok {
			t.Fatal("other key limited")
		}
	})
}

var prefixSeq atomic.Int32

func uniquePrefix() string { return fmt.Sprintf("t%d:", prefixSeq.Add(1)) }

// TestRedisSingle runs the checks with creates as transactions, which the
// access check turns on for a user allowed MULTI and EXEC (the default
// user), and TestRedisSingleScript with every create a script.
func TestRedisSingle(t *testing.T) {
	srv := redistest.Start(t)
	pool := NewRedisPool(RedisOptions{Addrs: []string{srv.Addr}})
	t.Cleanup(func() { pool.Destruct() })
	pool.CheckAccess("dcr:", func([]string, error) {}, nil)
	redistest.WaitFor(t, 10*time.Second, "the access check to allow transactions", func(context.Context) bool { return pool.tx.Load() })
	conformance(t, func(t *testing.T) Store { return pool.Store(uniquePrefix()) })
	if !strings.Contains(srv.CLI("info", "commandstats"), "cmdstat_exec:calls=") {
		t.Error("no create ran as a transaction")
	}
}

func TestRedisSingleScript(t *testing.T) {
	srv := redistest.Start(t)
	pool := NewRedisPool(RedisOptions{Addrs: []string{srv.Addr}})
	t.Cleanup(func() { pool.Destruct() })
	conformance(t, func(t *testing.T) Store { return pool.Store(uniquePrefix()) })
	if strings.Contains(srv.CLI("info", "commandstats"), "cmdstat_exec:calls=") {
		t.Error("a create ran as a transaction without the access check")
	}
}

// TestRedisWaitReplicas: with WaitReplicas, the store behaves the same
// with a replica that confirms its writes.
func TestRedisWaitReplicas(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	redistest.WaitFor(t, 10*time.Second, "the replica to sync", func(context.Context) bool {
		return strings.Contains(replica.CLI("info", "replication"), "master_link_status:up")
	})
	pool := NewRedisPool(RedisOptions{Addrs: []string{master.Addr}, WaitReplicas: 1})
	t.Cleanup(func() { pool.Destruct() })
	pool.tx.Store(true) // creates as transactions (see TestRedisSingle)
	conformance(t, func(t *testing.T) Store { return pool.Store(uniquePrefix()) })
	if !strings.Contains(master.CLI("info", "commandstats"), "cmdstat_wait:calls=") {
		t.Error("the writes sent no WAIT")
	}
}

// TestRedisWaitNoReplica: a write no replica confirms fails as an outage
// (the update one that may have been carried out); a refusal that wrote
// nothing keeps its own answer, as there is nothing to wait for.
func TestRedisWaitNoReplica(t *testing.T) {
	srv := redistest.Start(t)
	pool := NewRedisPool(RedisOptions{Addrs: []string{srv.Addr}, WaitReplicas: 1, WaitTimeout: 50 * time.Millisecond})
	t.Cleanup(func() { pool.Destruct() })
	s := pool.Store(uniquePrefix())
	ctx := context.Background()
	rec := &Record{ID: "c/x", Data: []byte("v1"), Tags: []string{"all"}}
	if err := s.Create(ctx, rec); !IsUnavailable(err) || !NotReplicated(err) || !strings.Contains(err.Error(), "reached 0 of the 1 replicas") {
		t.Fatalf("create: %v", err)
	}
	got, err := s.Get(ctx, "c/x") // on the master: reads do not wait
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if err := s.Create(ctx, &Record{ID: "c/x", Data: []byte("again")}); !errors.Is(err, ErrExists) {
		t.Errorf("create of an existing id: %v", err)
	}
	pool.tx.Store(true) // a fresh create as a transaction waits the same
	if err := s.Create(ctx, &Record{ID: "c/tx", Data: []byte("v1"), Tags: []string{"all"}, FreshID: true}); !IsUnavailable(err) || !NotReplicated(err) || !strings.Contains(err.Error(), "reached 0 of the 1 replicas") {
		t.Fatalf("create as a transaction: %v", err)
	}
	if !strings.Contains(srv.CLI("info", "commandstats"), "cmdstat_exec:calls=1,") {
		t.Error("the fresh create did not run as a transaction")
	}
	pool.tx.Store(false)
	if err := s.Update(ctx, &Record{ID: "c/x", Rev: 7}, &Record{ID: "c/x", Data: []byte("stale")}); !errors.Is(err, ErrConflict) {
		t.Errorf("update of a stale revision: %v", err)
	}
	if err := s.Update(ctx, got, &Record{ID: "c/x", Data: []byte("v2"), Tags: []string{"all"}}); !IsUnavailable(err) || Unwritten(err) {
		t.Errorf("update: %v (unwritten %v), want an outage that may have been carried out", err, Unwritten(err))
	}
	if err := s.Delete(ctx, &Record{ID: "c/gone", Rev: 1}); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete of a missing record: %v", err)
	}
	got, err = s.Get(ctx, "c/x")
	if err != nil || string(got.Data) != "v2" {
		t.Fatalf("get after the update: %v %+v", err, got)
	}
	if err := s.Delete(ctx, got); !IsUnavailable(err) {
		t.Errorf("delete: %v", err)
	}
	if ok, _, err := s.Hit(ctx, "k", 10, time.Minute); err != nil || !ok {
		t.Errorf("counters do not wait: %v %v", ok, err)
	}
	_ = s.Create(ctx, &Record{ID: "c/t", Data: []byte("v1"), Tags: []string{"all"}}) // on the master
	touched := &Record{ID: "c/t", Data: []byte("v1"), Tags: []string{"all"}, ExpiresAt: time.Now().Add(time.Hour), Touch: true}
	if got, err = s.Get(ctx, "c/t"); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, got, touched); err != nil {
		t.Errorf("an update that only pushes the expiry back waited: %v", err)
	}

	// WAIT's reply at the edge of the timeout: whether it comes in time
	// (0 replicas) or not (the reply of the script before it, which did
	// come, is then failed with the pipeline), the write is not done.
	edge := NewRedisPool(RedisOptions{Addrs: []string{srv.Addr}, Timeout: 100 * time.Millisecond, WaitReplicas: 1, WaitTimeout: 99 * time.Millisecond})
	t.Cleanup(func() { edge.Destruct() })
	es := edge.Store(uniquePrefix())
	for i := range 8 {
		err := es.Create(ctx, &Record{ID: fmt.Sprintf("c/edge%d", i), Data: []byte("v")})
		if !IsUnavailable(err) || !strings.Contains(err.Error(), "(wait_replicas)") {
			t.Errorf("create %d at the edge of the timeout: %v", i, err)
		}
	}
}

func TestRedisCluster(t *testing.T) {
	addrs := redistest.StartCluster(t)
	pool := NewRedisPool(RedisOptions{Addrs: addrs})
	t.Cleanup(func() { pool.Destruct() })
	conformance(t, func(t *testing.T) Store { return pool.Store(uniquePrefix()) })
}

func TestRedisClusterTLS(t *testing.T) {
	addrs, conf := redistest.StartClusterTLS(t)
	pool := NewRedisPool(RedisOptions{Addrs: addrs, TLS: conf})
	t.Cleanup(func() { pool.Destruct() })
	conformance(t, func(t *testing.T) Store { return pool.Store(uniquePrefix()) })
}

func TestRedisSentinel(t *testing.T) {
	_, sentinel := redistest.StartSentinel(t, "mymaster")
	pool := NewRedisPool(RedisOptions{Addrs: []string{sentinel}, MasterName: "mymaster"})
	t.Cleanup(func() { pool.Destruct() })
	pool.tx.Store(true) // creates as transactions (see TestRedisSingle)
	conformance(t, func(t *testing.T) Store { return pool.Store(uniquePrefix()) })
}

// TestRedisSentinelUnknownMaster: sentinels that answer but know no
// master of that name (a typo in master_name) are told from sentinels that
// cannot be reached, which go-redis's error reads as.
func TestRedisSentinelUnknownMaster(t *testing.T) {
	_, sentinel := redistest.StartSentinel(t, "mymaster")
	pool := NewRedisPool(RedisOptions{Addrs: []string{sentinel}, MasterName: "nosuch", Timeout: time.Second})
	t.Cleanup(func() { pool.Destruct() })
	_, err := pool.Store(uniquePrefix()).Get(context.Background(), "x")
	if err == nil || !MasterUnknown(err) {
		t.Fatalf("unknown master name: %v", err)
	}
	down := NewRedisPool(RedisOptions{Addrs: []string{"127.0.0.1:1"}, MasterName: "mymaster", Timeout: time.Second})
	t.Cleanup(func() { down.Destruct() })
	if _, err := down.Store(uniquePrefix()).Get(context.Background(), "x"); err == nil || MasterUnknown(err) {
		t.Fatalf("sentinel unreachable: %v", err)
	}
}

func TestRedisTLS(t *testing.T) {
	srv := redistest.StartTLS(t)
	pool := NewRedisPool(RedisOptions{Addrs: []string{srv.Addr}, TLS: srv.ClientConfig})
	t.Cleanup(func() { pool.Destruct() })
	pool.tx.Store(true) // creates as transactions (see TestRedisSingle)
	conformance(t, func(t *testing.T) Store { return pool.Store(uniquePrefix()) })
}

// TestRedisSentinelTLS: a Sentinel deployment that speaks only TLS, the
// sentinels and the master both; the master watch asks the sentinel over
// TLS too. A CA the client does not trust is refused.
func TestRedisSentinelTLS(t *testing.T) {
	master, sentinel := redistest.StartSentinelTLS(t, "tlsmaster")
	pool := NewRedisPool(RedisOptions{Addrs: []string{sentinel}, MasterName: "tlsmaster", TLS: master.ClientConfig})
	t.Cleanup(func() { pool.Destruct() })
	pool.tx.Store(true) // creates as transactions (see TestRedisSingle)
	conformance(t, func(t *testing.T) Store { return pool.Store(uniquePrefix()) })

	w := newMasterWatch(RedisOptions{Addrs: []string{sentinel}, MasterName: "tlsmaster", TLS: master.ClientConfig}, time.Second)
	t.Cleanup(func() {
		for _, s := range w.sentinels {
			s.Close()
		}
	})
	if got := w.master(); got != master.Addr {
		t.Errorf("the watch finds the master at %q over TLS, want %s", got, master.Addr)
	}

	other := redistest.StartTLS(t) // a CA of its own
	untrusted := NewRedisPool(RedisOptions{Addrs: []string{sentinel}, MasterName: "tlsmaster", TLS: other.ClientConfig, Timeout: time.Second})
	t.Cleanup(func() { untrusted.Destruct() })
	if err := untrusted.Store(uniquePrefix()).Create(context.Background(), &Record{ID: "x", Data: []byte("d")}); err == nil {
		t.Error("a sentinel whose certificate is not trusted was used")
	}
}

func TestEmbedded(t *testing.T) {
	conformance(t, func(t *testing.T) Store {
		return NewEmbeddedStore(&certmagic.FileStorage{Path: t.TempDir()}, "client_registration")
	})
}

// TestEmbeddedTwoProcesses: two stores on the same directory (as two Caddy
// processes sharing a data directory would be) still respect caps.
func TestEmbeddedSharedDirectory(t *testing.T) {
	dir := t.TempDir()
	a := NewEmbeddedStore(&certmagic.FileStorage{Path: dir}, "cr")
	b := NewEmbeddedStore(&certmagic.FileStorage{Path: dir}, "cr")
	ctx := context.Background()
	var wg sync.WaitGroup
	var ok atomic.Int32
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			if s.Create(ctx, &Record{ID: fmt.Sprint(i), Data: []byte("x"), Tags: []string{"all"}}, Cap{Tag: "all", Max: 3}) == nil {
				ok.Add(1)
			}
		}(i)
	}
	wg.Wait()
	if ok.Load() != 3 {
		t.Fatalf("created %d, want 3", ok.Load())
	}
	// On a local directory the lock is flock(2), not certmagic's lock
	// files (whose keep-fresh goroutines log errors under steady writes).
	if p := flockPath(a.st, "cr"); runtime.GOOS == "linux" && p == "" {
		t.Fatal("no flock on a FileStorage")
	} else if p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("flock file: %v", err)
		}
		if m, _ := filepath.Glob(filepath.Join(dir, "locks", "*.lock")); len(m) != 0 {
			t.Fatalf("certmagic lock files left: %v", m)
		}
	}
}

// TestRedisDownAndBack: errors while Redis is down are UnavailableError, and
// the same pool works again once Redis is back, without a new client.
func TestRedisDownAndBack(t *testing.T) {
	srv := redistest.Start(t)
	pool := NewRedisPool(RedisOptions{Addrs: []string{srv.Addr}, Timeout: 300 * time.Millisecond})
	t.Cleanup(func() { pool.Destruct() })
	s := pool.Store("down:")
	ctx := context.Background()
	if err := s.Create(ctx, &Record{ID: "a", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	_, err := s.Get(ctx, "a")
	if !IsUnavailable(err) {
		t.Fatalf("get with redis down: %v", err)
	}
	if err := s.Create(ctx, &Record{ID: "b", Data: []byte("x")}); !IsUnavailable(err) {
		t.Fatalf("create with redis down: %v", err)
	}
	srv.Restart()
	redistest.WaitFor(t, 5*time.Second, "redis to come back", func(ctx context.Context) bool {
		return s.Create(ctx, &Record{ID: "c", Data: []byte("x")}) == nil
	})
	if _, err := s.Get(ctx, "c"); err != nil {
		t.Fatal(err)
	}
}

// TestRedisKeyLayout: every key of a store shares one hash tag and starts
// with the key prefix; a record's expiry is a real Redis TTL.
func TestRedisKeyLayout(t *testing.T) {
	srv := redistest.Start(t)
	pool := NewRedisPool(RedisOptions{Addrs: []string{srv.Addr}})
	t.Cleanup(func() { pool.Destruct() })
	s := pool.Store("dcr:")
	ctx := context.Background()
	if err := s.Create(ctx, &Record{ID: "c/x", Data: []byte("x"), Tags: []string{"all"}, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	keys := srv.CLI("--scan")
	want := "dcr:{dcr}:r:c/x\ndcr:{dcr}:t:all"
	var got []string
	for _, k := range strings.Split(keys, "\n") {
		got = append(got, strings.TrimSpace(k))
	}
	sort.Strings(got)
	if strings.Join(got, "\n") != want {
		t.Fatalf("keys:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
	var ttl int
	fmt.Sscan(srv.CLI("ttl", "dcr:{dcr}:r:c/x"), &ttl)
	if ttl < 3500 || ttl > 3600 {
		t.Fatalf("record ttl %d", ttl)
	}
	fmt.Sscan(srv.CLI("ttl", "dcr:{dcr}:t:all"), &ttl)
	if ttl < 3500 || ttl > 3600 {
		t.Fatalf("tag ttl %d", ttl)
	}
}

// TestEmbeddedLongIDs: ids far longer than a file name may be are still
// ids (an unknown one is "not found", not an outage).
func TestEmbeddedLongIDs(t *testing.T) {
	s := NewEmbeddedStore(&certmagic.FileStorage{Path: t.TempDir()}, "cr")
	ctx := context.Background()
	long := "c/" + strings.Repeat("x", 5000)
	if _, err := s.Get(ctx, long); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown long id: %v", err)
	}
	if err := s.Create(ctx, &Record{ID: long, Data: []byte("x"), Tags: []string{strings.Repeat("t", 300)}}); err != nil {
		t.Fatal(err)
	}
	l, err := s.List(ctx, strings.Repeat("t", 300))
	if err != nil || len(l) != 1 || l[0].ID != long {
		t.Fatalf("list: %v %v", err, l)
	}
}

// Unwritten tells failures known to have changed nothing from writes whose
// outcome is open.
func TestUnwritten(t *testing.T) {
	boom := errors.New("i/o timeout")
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{boom, false},
		{&UnavailableError{Op: "get", Err: boom}, true},
		{&UnavailableError{Op: "lock", Err: boom}, true},
		{fmt.Errorf("wrapped: %w", &UnavailableError{Op: "list", Err: boom}), true},
		{&UnavailableError{Op: "update", Err: boom}, false},
		{&UnavailableError{Op: "write", Err: boom}, false},
		{&UnavailableError{Op: "update", Err: boom, Unwritten: true}, true},
	} {
		if got := Unwritten(tc.err); got != tc.want {
			t.Errorf("Unwritten(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestFull: a write refused for want of room or write access (a full,
// over-quota or read-only filesystem, a Redis out of memory) from other
// outages, a timeout above all.
func TestFull(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	srv.CLI("config", "set", "maxmemory-policy", "noeviction")
	srv.CLI("config", "set", "maxmemory", "1")
	oom := rdb.Set(context.Background(), "k", "v", 0).Err()
	srv.CLI("config", "set", "maxmemory", "0")
	if oom == nil {
		t.Fatal("Redis took a write over its maxmemory")
	}
	full := &os.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{full, false}, // no outage of ours
		{&UnavailableError{Op: "create", Err: full}, true},
		{fmt.Errorf("wrapped: %w", &UnavailableError{Op: "update", Err: &os.PathError{Err: syscall.EROFS}}), true},
		{&UnavailableError{Op: "write", Err: syscall.EDQUOT}, true},
		{&UnavailableError{Op: "get", Err: full}, false},
		{&UnavailableError{Op: "create", Err: oom}, true},
		{&UnavailableError{Op: "create", Err: context.DeadlineExceeded}, false},
		{&UnavailableError{Op: "create", Err: syscall.ECONNREFUSED}, false},
		{&UnavailableError{Op: "create", Err: errors.New("OOM command not allowed")}, false}, // not Redis's reply
	} {
		if got := Full(tc.err); got != tc.want {
			t.Errorf("Full(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestNeverScore: the scripts and the transactions score ids that never
// expire from the same number.
func TestNeverScore(t *testing.T) {
	if f, err := strconv.ParseFloat(neverScore, 64); err != nil || f != float64(neverScoreMs) {
		t.Errorf("neverScore %q, neverScoreMs %d", neverScore, neverScoreMs)
	}
}

// TestEmbeddedSyncsDirectories: a create is on disk, names included,
// before it is answered: the markers' directories (and tags/, where a new
// tag's directory goes) are synced before the record is written, and the
// records' directory after; a delete syncs the records' directory, so
// that a power cut cannot bring a deleted client back.
func TestEmbeddedSyncsDirectories(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var synced []string
	orig := syncDir
	syncDir = func(name string) error {
		mu.Lock()
		synced = append(synced, strings.TrimPrefix(name, dir))
		mu.Unlock()
		return orig(name)
	}
	t.Cleanup(func() { syncDir = orig })
	s := NewEmbeddedStore(&certmagic.FileStorage{Path: dir}, "cr")
	ctx := context.Background()
	rec := &Record{ID: "c1", Data: []byte("x"), Tags: []string{"clients", "owner:alice"}}
	if err := s.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	records := "/" + path.Dir(s.recordKey("c1"))
	want := []string{"/" + s.tagDir("clients"), "/" + s.tagDir("owner:alice"), "/" + path.Dir(s.tagDir("clients")), records}
	if !slices.Equal(synced, want) {
		t.Fatalf("create synced %q, want %q", synced, want)
	}
	synced = nil
	if err := s.Delete(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if len(synced) == 0 || synced[0] != records {
		t.Fatalf("delete synced %q, want %s first", synced, records)
	}
}

// TestEmbeddedStrayIndexEntry: a directory made by hand among an index's
// markers is skipped, said once, rather than failing every listing and
// count through that index as an outage.
func TestEmbeddedStrayIndexEntry(t *testing.T) {
	var mu sync.Mutex
	var msgs []string
	SetWarner(func(m, _ string) { mu.Lock(); msgs = append(msgs, m); mu.Unlock() })
	t.Cleanup(func() { warner.Store(nil) })
	fsys := &certmagic.FileStorage{Path: t.TempDir()}
	s := NewEmbeddedStore(fsys, "cr")
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if err := s.Create(ctx, &Record{ID: id, Data: []byte("x"), Tags: []string{"clients"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(fsys.Filename(path.Join(s.tagDir("clients"), fileName("stray"))), 0o700); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		l, err := s.List(ctx, "clients")
		if err != nil || len(l) != 2 {
			t.Fatalf("list: %d records, %v", len(l), err)
		}
		if n, err := s.Count(ctx, "clients"); err != nil || n != 2 {
			t.Fatalf("count: %d, %v", n, err)
		}
	}
	if len(msgs) != 1 || !strings.Contains(msgs[0], "is no marker") || !strings.Contains(msgs[0], "a directory") {
		t.Errorf("warnings: %q", msgs)
	}
}
