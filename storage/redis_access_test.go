package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-dcr/caddy-dcr/internal/redistest"
)

// aclGrants is the README's Redis ACL line, after the user name, password
// and key pattern: the commands a store runs.
const aclGrants = "resetchannels -@all +get +set +del +getrange +incr +pexpire +pexpireat +pttl +persist " +
	"+zadd +zcount +zrem +zrangebyscore +zremrangebyrank +zcard +zrange +exists +eval +evalsha +multi +exec +info"

// TestREADMEACLLine: the README's ACL line grants what the tests grant.
func TestREADMEACLLine(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "redis-cli ACL SETUSER dcr reset on '>a long random password' '~dcr:*' ")
	block, _, _ := strings.Cut(after, "\n```")
	if !ok || strings.Join(strings.Fields(strings.ReplaceAll(block, "\\\n", " ")), " ") != aclGrants {
		t.Errorf("README's ACL line grants %q, the tests %q", block, aclGrants)
	}
}

// clusterGrants are what the README adds to aclGrants for Redis Cluster:
// the client reads the slot map and the command table, and follows a slot
// being moved.
const clusterGrants = " +cluster|slots +asking +command"

// accessResult is what CheckAccess reported.
type accessResult struct {
	refused []string
	err     error
}

// accessReport opens a pool with o, asks it twice to check the access of
// the store "dcr:", and returns the pool and the one report it makes.
func accessReport(t *testing.T, o RedisOptions) (*RedisPool, accessResult) {
	t.Helper()
	pool := NewRedisPool(o)
	t.Cleanup(func() { pool.Destruct() })
	got := make(chan accessResult, 2)
	report := func(refused []string, err error) { got <- accessResult{refused, err} }
	pool.CheckAccess("dcr:", report, nil)
	pool.CheckAccess("dcr:", report, nil) // once per prefix
	select {
	case r := <-got:
		select {
		case again := <-got:
			t.Fatalf("%s: reported twice: %v", o.Username, again)
		case <-time.After(100 * time.Millisecond):
		}
		return pool, r
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no report", o.Username)
	}
	return nil, accessResult{}
}

// TestRedisAccessCheckCluster: on Redis Cluster the README's line with its
// cluster grants lets a store read a record whose slot is being moved
// (ASKING) without go-redis asking for the command table before each
// command, and the check at start names a missing grant.
func TestRedisAccessCheckCluster(t *testing.T) {
	defer func(first, retry time.Duration) { evictionFirst, evictionRetry = first, retry }(evictionFirst, evictionRetry)
	evictionFirst, evictionRetry = 10*time.Millisecond, 50*time.Millisecond
	nodes := redistest.StartClusterNodes(t, 0)
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.Addr)
		for name, rules := range map[string]string{
			"full":     "~dcr:* " + aclGrants + clusterGrants,
			"noasking": "~dcr:* " + aclGrants + " +cluster|slots",
			"noslots":  "~dcr:* " + aclGrants + " +asking +command",
		} {
			n.CLI(append([]string{"ACL", "SETUSER", name, "reset", "on", ">pw"}, strings.Fields(rules)...)...)
		}
	}
	check := func(user string) (*RedisPool, []string, error) {
		t.Helper()
		pool, r := accessReport(t, RedisOptions{Addrs: addrs, Username: user, Password: "pw", Timeout: time.Second})
		return pool, r.refused, r.err
	}
	pool, refused, err := check("full")
	if len(refused) != 0 || err != nil {
		t.Fatalf("full grants: %v %v", refused, err)
	}
	if _, refused, err := check("noasking"); !slices.Equal(refused, []string{"asking", "command"}) || err != nil {
		t.Errorf("without asking and command: %v %v", refused, err)
	}
	if _, refused, err := check("noslots"); !slices.Equal(refused, []string{"cluster|slots"}) || err != nil {
		t.Errorf("without cluster|slots: %v %v", refused, err)
	}

	// The record moves to another node while its slot is migrating: a read
	// is sent on with ASK, which needs ASKING.
	s, ctx := pool.Store("dcr:"), context.Background()
	if err := s.Create(ctx, &Record{ID: "a", Data: []byte("x"), Tags: []string{"all"}}); err != nil {
		t.Fatal(err)
	}
	slot, err := strconv.Atoi(nodes[0].CLI("cluster", "keyslot", s.recordKey("a")))
	if err != nil {
		t.Fatal(err)
	}
	src, dst := startSlotMove(t, nodes, slot)
	if out := src.CLI("migrate", "127.0.0.1", strconv.Itoa(dst.Port), s.recordKey("a"), "0", "5000"); out != "OK" {
		t.Fatalf("migrate: %s", out)
	}
	if rec, err := s.Get(ctx, "a"); err != nil || string(rec.Data) != "x" {
		t.Fatalf("read during the move: %v %v", rec, err)
	}

	// With COMMAND granted, go-redis reads the command table once, not
	// before every command that is not pipelined (each a round trip more,
	// and logged).
	var asked atomic.Int64
	SetLogger(func(m string) {
		if strings.Contains(m, "command info") {
			asked.Add(1)
		}
	})
	defer SetLogger(func(string) {})
	for i := range 20 {
		if _, _, err := s.Hit(ctx, strconv.Itoa(i), 5, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("go-redis failed to read the command table %d times", n)
	}
}

// TestRedisAccessCheck: with the README's ACL a store does all it does
// and the check finds nothing; a missing grant, a key pattern that leaves
// out the store's keys, a user who may not run scripts and a wrong
// password are each reported once, when the store starts.
func TestRedisAccessCheck(t *testing.T) {
	defer func(first, retry time.Duration) { evictionFirst, evictionRetry = first, retry }(evictionFirst, evictionRetry)
	evictionFirst, evictionRetry = 10*time.Millisecond, 50*time.Millisecond
	srv := redistest.Start(t)
	users := map[string]string{
		"full":     "~dcr:* " + aclGrants,
		"nozrem":   "~dcr:* " + strings.Replace(aclGrants, " +zrem ", " ", 1),
		"tagsonly": "~dcr:{dcr}:* " + aclGrants,
		"noscript": "~dcr:* " + aclGrants + " -eval -evalsha",
		"notx":     "~dcr:* " + strings.Replace(aclGrants, " +multi +exec", "", 1),
	}
	for name, rules := range users {
		srv.CLI(append([]string{"ACL", "SETUSER", name, "reset", "on", ">pw-" + name}, strings.Fields(rules)...)...)
	}
	check := func(user, password string) (*RedisPool, accessResult) {
		t.Helper()
		return accessReport(t, RedisOptions{Addrs: []string{srv.Addr}, Username: user, Password: password, Timeout: time.Second})
	}

	pool, r := check("full", "pw-full")
	if len(r.refused) != 0 || r.err != nil {
		t.Fatalf("full grants: %v", r)
	}
	// What the grants are for: everything a store does.
	s, ctx := pool.Store("dcr:"), context.Background()
	rec := &Record{ID: "a", Data: []byte("x"), Tags: []string{"all"}, ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.Create(ctx, rec, Cap{Tag: "all", Max: 10}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	next := &Record{ID: "a", Data: []byte("y"), Tags: []string{"other"}}
	if err := s.Update(ctx, got, next); err != nil {
		t.Fatal(err)
	}
	if l, err := s.List(ctx, "other"); err != nil || len(l) != 1 {
		t.Fatalf("list: %v %v", l, err)
	}
	if n, err := s.Count(ctx, "all"); err != nil || n != 0 {
		t.Fatalf("count: %d %v", n, err)
	}
	got, err = s.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, got); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := s.Hit(ctx, "addr", 5, time.Minute); !ok || err != nil {
		t.Fatalf("hit: %v %v", ok, err)
	}

	// The README's line allows creates as transactions; one without
	// MULTI and EXEC (an earlier version's) keeps them scripts, and a
	// user who loses either later goes back to the script at once,
	// without losing a create.
	redistest.WaitFor(t, 5*time.Second, "transactions allowed", func(context.Context) bool { return pool.tx.Load() })
	fresh := func(s *RedisStore, id string) {
		t.Helper()
		if err := s.Create(ctx, &Record{ID: id, Data: []byte(id), Tags: []string{"all", "owner:" + id}, FreshID: true}); err != nil {
			t.Fatalf("create %s: %v", id, err)
		}
		if got, err := s.Get(ctx, id); err != nil || string(got.Data) != id {
			t.Fatalf("get %s: %v", id, err)
		}
		if n, err := s.Count(ctx, "owner:"+id); n != 1 || err != nil {
			t.Fatalf("%s indexed %d times: %v", id, n, err)
		}
	}
	before := execCalls(t, srv)
	fresh(s, "tx")
	if execCalls(t, srv) != before+1 {
		t.Errorf("the create did not run as a transaction")
	}
	srv.CLI("ACL", "SETUSER", "full", "-multi")
	fresh(s, "nomulti")
	if pool.tx.Load() {
		t.Error("transactions still on after MULTI was refused")
	}
	// Under a cap too: the commands run one by one are undone and the
	// script makes the create, rather than it being answered unavailable
	// and left to the reaper (which would name it to the operator).
	pool.tx.Store(true)
	if err := s.Create(ctx, &Record{ID: "nomulticap", Data: []byte("x"), Tags: []string{"all"}, FreshID: true}, Cap{Tag: "all", Max: 100}); err != nil {
		t.Fatalf("create under a cap without MULTI: %v", err)
	}
	if got, err := s.Get(ctx, "nomulticap"); err != nil || string(got.Data) != "x" {
		t.Fatalf("get: %v", err)
	}
	if s.reaper.busy() {
		t.Error("a create made again by the script left a reap pending")
	}
	pool.tx.Store(true)
	srv.CLI("ACL", "SETUSER", "full", "+multi", "-exec")
	fresh(s, "noexec")
	if pool.tx.Load() {
		t.Error("transactions still on after EXEC was refused")
	}
	fresh(s, "script")
	// A grant given back is found by the next config load's check.
	srv.CLI("ACL", "SETUSER", "full", "+exec")
	pool.CheckAccess("dcr:", func([]string, error) {}, nil)
	redistest.WaitFor(t, 5*time.Second, "transactions back on", func(context.Context) bool { return pool.tx.Load() })
	notx, r := check("notx", "pw-notx")
	if len(r.refused) != 0 || r.err != nil || notx.tx.Load() {
		t.Errorf("without multi and exec: %v, transactions %v", r, notx.tx.Load())
	}
	fresh(notx.Store("dcr:"), "notx")
	srv.CLI("ACL", "SETUSER", "notx", "+multi", "+exec")
	notx.CheckAccess("dcr:", func([]string, error) {}, nil)
	redistest.WaitFor(t, 5*time.Second, "transactions on once granted", func(context.Context) bool { return notx.tx.Load() })

	if _, r := check("nozrem", "pw-nozrem"); !slices.Equal(r.refused, []string{"zrem dcr:{dcr}:t:acl-check"}) || r.err != nil {
		t.Errorf("without zrem: %v", r)
	}
	if _, r := check("tagsonly", "pw-tagsonly"); !slices.Equal(r.refused, []string{"incr dcr:h:{acl-check}", "pexpire dcr:h:{acl-check}", "pttl dcr:h:{acl-check}"}) || r.err != nil {
		t.Errorf("a key pattern without the counters: %v", r)
	}
	if _, r := check("noscript", "pw-noscript"); !slices.Equal(r.refused, []string{"eval"}) || r.err != nil {
		t.Errorf("without scripts: %v (want eval refused, as a missing grant)", r)
	}
	if _, r := check("full", "wrong"); r.err == nil || !strings.HasPrefix(r.err.Error(), "WRONGPASS") {
		t.Errorf("wrong password: %v", r)
	}
}

// TestRedisPruneBounded: a registration removes at most 256 of the index
// entries of clients that have expired, however many expired together, so
// that no script holds Redis for long; those left are not counted by caps.
func TestRedisPruneBounded(t *testing.T) {
	srv, _, s := startRedisStore(t, "pb:")
	ctx := context.Background()
	// A client that never expires keeps the index (which otherwise
	// expires with its last member).
	if err := s.Create(ctx, &Record{ID: "keep", Data: []byte("x"), Tags: []string{"all"}}); err != nil {
		t.Fatal(err)
	}
	// All 600 must be made before they expire: a create prunes expired
	// entries too, so one made after the expiry would remove some (make
	// test runs packages side by side, and 600 creates took over 200 ms).
	exp := time.Now().Add(2500 * time.Millisecond)
	for i := range 600 {
		if err := s.Create(ctx, &Record{ID: fmt.Sprint("e", i), Data: []byte("x"), Tags: []string{"all"}, ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
	}
	if time.Now().After(exp) {
		t.Fatal("600 creates outlasted their 2.5 s lifetime")
	}
	time.Sleep(time.Until(exp) + 50*time.Millisecond)
	cp := Cap{Tag: "all", Max: 2}
	if err := s.Create(ctx, &Record{ID: "live", Data: []byte("x"), Tags: []string{"all"}}, cp); err != nil {
		t.Fatalf("expired clients counted by the cap: %v", err)
	}
	if n := srv.CLI("ZCARD", s.tagKey("all")); n != "346" {
		t.Errorf("index entries after one registration: %s, want 1+600-256+1", n)
	}
	var le *LimitError
	if err := s.Create(ctx, &Record{ID: "more", Data: []byte("x"), Tags: []string{"all"}}, cp); !errors.As(err, &le) {
		t.Fatalf("at the cap: %v", err)
	}
	if n, err := s.Count(ctx, "all"); err != nil || n != 2 {
		t.Fatalf("count: %d %v", n, err)
	}
}

// TestRedisListBatches: a list longer than one batch is read whole, in
// order, each record once, also when a score many ids share (those
// created in the same millisecond) spans the end of a batch.
func TestRedisListBatches(t *testing.T) {
	srv, _, s := startRedisStore(t, "lb:")
	ctx := context.Background()
	n := 2*listBatch + 500
	for i := range n {
		if err := s.Create(ctx, &Record{ID: fmt.Sprintf("c%05d", i), Data: []byte("x"), Tags: []string{"all"}}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := s.List(ctx, "all")
	if err != nil || len(l) != n {
		t.Fatalf("list: %d records, %v", len(l), err)
	}
	for i, r := range l {
		if r.ID != fmt.Sprintf("c%05d", i) {
			t.Fatalf("record %d is %s", i, r.ID)
		}
	}
	// Ties: runs of 700 ids on one score (ends of batches fall inside
	// them), then every id on one score. Ids of one score sort by name.
	key := s.tagKey("all")
	for _, run := range []int{700, n} {
		args := []string{"zadd", key, "xx"}
		for i := range n {
			args = append(args, strconv.Itoa(int(neverScoreMs)+i/run), fmt.Sprintf("c%05d", i))
		}
		srv.CLI(args...)
		l, err := s.List(ctx, "all")
		if err != nil || len(l) != n {
			t.Fatalf("runs of %d on one score: %d records, %v", run, len(l), err)
		}
		for i, r := range l {
			if r.ID != fmt.Sprintf("c%05d", i) {
				t.Fatalf("runs of %d on one score: record %d is %s", run, i, r.ID)
			}
		}
	}
}

// TestRedisDanglingIndexEntries: index entries whose records are gone
// without them (evicted under an eviction policy, deleted by hand) stop
// counting against a cap once it looks reached, instead of holding it
// reached for good; live entries still count.
func TestRedisDanglingIndexEntries(t *testing.T) { bothCreates(t, testRedisDanglingIndexEntries) }

func testRedisDanglingIndexEntries(t *testing.T, tx bool) {
	srv := redistest.Start(t)
	pool := NewRedisPool(RedisOptions{Addrs: []string{srv.Addr}})
	t.Cleanup(func() { pool.Destruct() })
	pool.tx.Store(tx)
	s, ctx := pool.Store("dg:"), context.Background()
	create := func(id string, max int) error {
		return s.Create(ctx, &Record{ID: id, Data: []byte("x"), Tags: []string{"all"}, FreshID: true}, Cap{Tag: "all", Max: max})
	}
	for i := range 20 {
		if err := create(fmt.Sprint("c", i), 20); err != nil {
			t.Fatal(err)
		}
	}
	var le *LimitError
	if err := create("over", 20); !errors.As(err, &le) {
		t.Fatalf("at the cap: %v", err)
	}
	for i := range 5 {
		srv.CLI("DEL", s.recordKey(fmt.Sprint("c", i)))
	}
	for i := range 5 {
		if err := create(fmt.Sprint("n", i), 20); err != nil {
			t.Fatalf("registration %d after 5 records vanished: %v", i, err)
		}
	}
	if err := create("over", 20); !errors.As(err, &le) {
		t.Fatalf("at the cap again: %v", err)
	}
	if n := srv.CLI("ZCARD", s.tagKey("all")); n != "20" {
		t.Errorf("index entries: %s, want 20", n)
	}

	// A large index: each refusal looks at 64 entries from a random
	// place, so the dangling ones go over a few attempts.
	for i := range 500 {
		if err := create(fmt.Sprint("m", i), 1000); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 300 {
		srv.CLI("DEL", s.recordKey(fmt.Sprint("m", i)))
	}
	created := 0
	for i := range 200 {
		if create(fmt.Sprint("x", i), 520) == nil {
			created++
		}
	}
	if created < 150 {
		t.Errorf("%d of 200 registrations after 300 of 520 records vanished, want most", created)
	}

	// A user granted only an older version's commands (no zcard, zrange,
	// exists) still gets the cap's refusal, and no record is left behind
	// by a script stopped after its SET.
	old := slices.DeleteFunc(strings.Fields(aclGrants), func(g string) bool { return g == "+zcard" || g == "+zrange" || g == "+exists" })
	srv.CLI(append([]string{"ACL", "SETUSER", "older", "reset", "on", ">pw", "~dg:*"}, old...)...)
	opool := NewRedisPool(RedisOptions{Addrs: []string{srv.Addr}, Username: "older", Password: "pw"})
	t.Cleanup(func() { opool.Destruct() })
	os := opool.Store("dg:")
	for i := range 5 {
		id := fmt.Sprint("o", i)
		err := os.Create(ctx, &Record{ID: id, Data: []byte("x"), Tags: []string{"all"}, ExpiresAt: time.Now().Add(time.Hour)}, Cap{Tag: "all", Max: 20})
		if !errors.As(err, &le) {
			t.Fatalf("at the cap, with an older ACL: %v", err)
		}
		if n := srv.CLI("EXISTS", os.recordKey(id)); n != "0" {
			t.Fatalf("record %s left behind by a refused registration", id)
		}
	}
	// And everything else works for that user, as the README says: only
	// the clean-ups those commands do are skipped. A delete once needed
	// ZRANGE (to give an index back its expiry) and failed.
	rec := &Record{ID: "kept", Data: []byte("x"), Tags: []string{"other"}, ExpiresAt: time.Now().Add(time.Hour)}
	if err := os.Create(ctx, rec); err != nil {
		t.Fatalf("create, with an older ACL: %v", err)
	}
	got, err := os.Get(ctx, "kept")
	if err != nil {
		t.Fatalf("get, with an older ACL: %v", err)
	}
	upd := &Record{ID: "kept", Data: []byte("y"), Tags: []string{"other", "more"}}
	if err := os.Update(ctx, got, upd); err != nil {
		t.Fatalf("update, with an older ACL: %v", err)
	}
	if l, err := os.List(ctx, "more"); err != nil || len(l) != 1 {
		t.Fatalf("list, with an older ACL: %v %v", l, err)
	}
	if err := os.Delete(ctx, upd); err != nil {
		t.Fatalf("delete, with an older ACL: %v", err)
	}
	if n := srv.CLI("EXISTS", os.recordKey("kept"), os.tagKey("other"), os.tagKey("more")); n != "0" {
		t.Fatalf("%s keys left after the delete", n)
	}
}

// execCalls returns how many EXEC commands srv has run.
func execCalls(t *testing.T, srv *redistest.Server) int {
	t.Helper()
	stats := srv.CLI("info", "commandstats")
	_, rest, ok := strings.Cut(stats, "cmdstat_exec:calls=")
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
	if err != nil {
		t.Fatalf("INFO commandstats: %q", stats)
	}
	return n
}

// TestRedisAccessCheckUnreachable: a Redis that does not answer at start
// is said once (reach with the error), however many times the check asks
// again, and its answering later is said once too (reach with nil), before
// the check's own report.
func TestRedisAccessCheckUnreachable(t *testing.T) {
	defer func(first, retry time.Duration) { evictionFirst, evictionRetry = first, retry }(evictionFirst, evictionRetry)
	evictionFirst, evictionRetry = 10*time.Millisecond, 50*time.Millisecond
	srv := redistest.Start(t)
	srv.Stop()
	pool := NewRedisPool(RedisOptions{Addrs: []string{srv.Addr}})
	t.Cleanup(func() { pool.Destruct() })
	events := make(chan string, 16)
	pool.CheckAccess("dcr:", func(refused []string, err error) {
		events <- fmt.Sprintf("report %v %v", refused, err)
	}, func(err error) {
		if err != nil {
			events <- "unreachable"
		} else {
			events <- "reachable"
		}
	})
	next := func(want string) {
		t.Helper()
		select {
		case got := <-events:
			if got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("nothing said; want %q", want)
		}
	}
	next("unreachable")
	select {
	case got := <-events:
		t.Fatalf("said again while still unreachable: %q", got)
	case <-time.After(300 * time.Millisecond): // several more attempts
	}
	srv.Restart()
	next("reachable")
	next("report [] <nil>")
}

// TestRedisScriptsWholeUnderACL: a grant taken from the store's user while
// it runs makes a script refuse before its first write, not after it (Redis
// checks a script's commands only when it reaches them, and keeps what was
// written before): a create answered unavailable is not stored, listed or
// counted, a refused update leaves the record as it was, a refused delete
// leaves it there, and a refused hit leaves no counter without expiry.
func TestRedisScriptsWholeUnderACL(t *testing.T) {
	srv := redistest.Start(t)
	srv.CLI(append([]string{"ACL", "SETUSER", "dcr", "reset", "on", ">pw", "~dcr:*"},
		strings.Fields(strings.Replace(aclGrants, " +multi +exec", "", 1))...)...) // scripts only
	pool := NewRedisPool(RedisOptions{Addrs: []string{srv.Addr}, Username: "dcr", Password: "pw", Timeout: time.Second})
	t.Cleanup(func() { pool.Destruct() })
	s, ctx := pool.Store("dcr:"), context.Background()
	exists := func(key string) bool { return srv.CLI("EXISTS", key) == "1" }
	revoked := func(grant string, run func() error) {
		t.Helper()
		srv.CLI("ACL", "SETUSER", "dcr", "-"+grant)
		defer srv.CLI("ACL", "SETUSER", "dcr", "+"+grant)
		if err := run(); !IsUnavailable(err) || !strings.Contains(err.Error(), "nothing was written") {
			t.Fatalf("without %s: %v, want unavailable before any write", grant, err)
		}
	}

	for _, tc := range []struct {
		grant string
		rec   *Record
		caps  []Cap
	}{
		{"persist", &Record{ID: "p", Data: []byte("x"), Tags: []string{"all", "owner:p"}, FreshID: true}, nil},
		{"zadd", &Record{ID: "z", Data: []byte("x"), Tags: []string{"all"}, FreshID: true}, []Cap{{Tag: "all", Max: 10}}},
		{"pexpireat", &Record{ID: "e", Data: []byte("x"), Tags: []string{"all"}, ExpiresAt: time.Now().Add(time.Hour)}, nil},
		{"zremrangebyrank", &Record{ID: "r", Data: []byte("x"), Tags: []string{"all"}, ExpiresAt: time.Now().Add(time.Hour)}, nil},
	} {
		revoked(tc.grant, func() error { return s.Create(ctx, tc.rec, tc.caps...) })
		if exists(s.recordKey(tc.rec.ID)) || exists(s.tagKey("all")) {
			t.Fatalf("a create refused for %s left a record or an index entry", tc.grant)
		}
	}

	rec := &Record{ID: "a", Data: []byte("old"), Tags: []string{"all", "owner:a"}}
	if err := s.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	for _, grant := range []string{"zadd", "zrem", "pexpireat", "getrange"} {
		next := &Record{ID: "a", Data: []byte("new"), Tags: []string{"all", "owner:b"}, ExpiresAt: time.Now().Add(time.Hour)}
		revoked(grant, func() error { return s.Update(ctx, got, next) })
		if now, err := s.Get(ctx, "a"); err != nil || string(now.Data) != "old" || now.Rev != got.Rev || !now.ExpiresAt.IsZero() {
			t.Fatalf("an update refused for %s changed the record: %+v %v", grant, now, err)
		}
		if n, err := s.Count(ctx, "owner:a"); n != 1 || err != nil || exists(s.tagKey("owner:b")) {
			t.Fatalf("an update refused for %s changed the index: %d %v", grant, n, err)
		}
	}
	for _, grant := range []string{"zrem", "getrange"} {
		revoked(grant, func() error { return s.Delete(ctx, got) })
		if _, err := s.Get(ctx, "a"); err != nil {
			t.Fatalf("a delete refused for %s removed the record: %v", grant, err)
		}
	}
	if err := s.Delete(ctx, got); err != nil {
		t.Fatal(err)
	}

	revoked("pexpire", func() error { _, _, err := s.Hit(ctx, "addr", 5, time.Minute); return err })
	if exists(s.hitKey("addr")) {
		t.Fatal("a hit refused for pexpire left a counter")
	}
}
