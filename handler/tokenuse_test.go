package handler

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caddy-dcr/caddy-dcr/registry"
	"github.com/caddy-dcr/caddy-dcr/storage"
	"github.com/caddyserver/certmagic"
)

// outageStore fails the store's writes while down is set: creates with an
// outcome that is open, and updates either unapplied or, with lostReply,
// applied with their answer lost (a Redis that carried a command out and
// stalled before replying).
type outageStore struct {
	storage.Store
	mu              sync.Mutex
	down, lostReply bool
	failCreate      bool
}

func (s *outageStore) state() (down, lost, create bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down, s.lostReply, s.failCreate
}

func (s *outageStore) set(down, lost, create bool) {
	s.mu.Lock()
	s.down, s.lostReply, s.failCreate = down, lost, create
	s.mu.Unlock()
}

func (s *outageStore) Create(ctx context.Context, rec *storage.Record, caps ...storage.Cap) error {
	if _, _, create := s.state(); create {
		return &storage.UnavailableError{Op: "create", Err: context.DeadlineExceeded}
	}
	return s.Store.Create(ctx, rec, caps...)
}

func (s *outageStore) Update(ctx context.Context, old, rec *storage.Record) error {
	down, lost, _ := s.state()
	if !down {
		return s.Store.Update(ctx, old, rec)
	}
	if lost {
		if err := s.Store.Update(ctx, old, rec); err != nil {
			return err
		}
	}
	return &storage.UnavailableError{Op: "update", Err: context.DeadlineExceeded}
}

// TestTokenUseGivenBack: a one-use initial access token whose registration
// fails on the store keeps its use, however the failure falls: the
// registration fails and so does the give-back at first (it is tried again
// in the background once the store answers), or the count was made but
// its answer lost (given back, as the count may have been made), or it
// was not made (nothing given back). Each time the token then registers
// exactly one client.
func TestTokenUseGivenBack(t *testing.T) {
	setReturnPause(t, 10*time.Millisecond)
	for _, tc := range []struct {
		name string
		// fault is applied before the registration; heal after its 503.
		fault func(s *outageStore)
	}{
		{"create and give-back fail", func(s *outageStore) { s.set(true, false, true) }},
		{"count made, answer lost", func(s *outageStore) { s.set(true, true, false) }},
		{"count not made", func(s *outageStore) { s.set(true, false, false) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, fs, tok := oneUseTokenAPI(t)
			registerDuringOutage(t, a, fs, tok, tc.fault)
			deadline := time.Now().Add(5 * time.Second)
			for {
				got, err := a.o.Registry.CheckToken(context.Background(), tok)
				if err == nil && got.Used == 0 && len(got.RecentUses) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the use was not given back: %+v %v", got, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			registersOnce(t, a, tok, "after the outage")
		})
	}
}

// TestTokenUseIdempotent: counting a use again, or giving it back twice,
// or giving back a use never counted, changes nothing; the names of
// recent uses are bounded.
func TestTokenUseIdempotent(t *testing.T) {
	now := time.Now()
	reg := manageAPI(t, &now).o.Registry
	ctx := context.Background()
	tok, _, err := reg.IssueToken(ctx, "t", 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	used := func() int {
		got, err := reg.CheckToken(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		return got.Used
	}
	u1, u2 := registry.NewUseID(), registry.NewUseID()
	for range 2 {
		if err := reg.UseToken(ctx, tok, u1); err != nil {
			t.Fatal(err)
		}
	}
	if n := used(); n != 1 {
		t.Fatalf("used %d after counting one use twice", n)
	}
	if err := reg.ReturnTokenUse(ctx, tok, u2); err != nil || used() != 1 {
		t.Fatalf("giving back a use never counted: %v, used %d", err, used())
	}
	for range 2 {
		if err := reg.ReturnTokenUse(ctx, tok, u1); err != nil || used() != 0 {
			t.Fatalf("giving back a use: %v, used %d", err, used())
		}
	}
	unlimited, _, _ := reg.IssueToken(ctx, "u", 0, 0)
	for range 100 {
		if err := reg.UseToken(ctx, unlimited, registry.NewUseID()); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := reg.CheckToken(ctx, unlimited); got.Used != 100 || len(got.RecentUses) != 64 {
		t.Fatalf("used %d, %d recent uses kept", got.Used, len(got.RecentUses))
	}
}

// TestTokenUseSettledOnRetry: a client that tries again with its token as
// soon as the store is back gets the use that is still waiting to be given
// back, rather than 401 until the background give-back comes round.
func TestTokenUseSettledOnRetry(t *testing.T) {
	setReturnPause(t, 2*time.Second) // the background give-back comes too late
	a, fs, tok := oneUseTokenAPI(t)
	registerDuringOutage(t, a, fs, tok, func(s *outageStore) { s.set(true, false, true) })
	registersOnce(t, a, tok, "right after the outage")
}

// oneUseTokenAPI is an RFC 7591 API that registers with initial access
// tokens only, on a store the test can fail, and a token with one use.
func oneUseTokenAPI(t *testing.T) (*RFC7591, *outageStore, string) {
	t.Helper()
	now := time.Now()
	a := manageAPI(t, &now)
	a.o.Gate.Mode = ModeToken
	fs := &outageStore{Store: a.o.Registry.Store}
	a.o.Registry.Store = fs
	tok, _, err := a.o.Registry.IssueToken(context.Background(), "t", 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	return a, fs, tok
}

// registerDuringOutage registers with tok while fault holds, expects 503,
// and ends the outage.
func registerDuringOutage(t *testing.T, a *RFC7591, fs *outageStore, tok string, fault func(*outageStore)) {
	t.Helper()
	fault(fs)
	if code, m := serveJSON(a, "POST", "/register", tok, benchBody); code != http.StatusServiceUnavailable {
		t.Fatalf("during the outage: %d %v", code, m)
	}
	fs.set(false, false, false)
}

// registersOnce checks that the one-use token tok registers a client
// now, and then no other.
func registersOnce(t *testing.T, a *RFC7591, tok, when string) {
	t.Helper()
	if code, m := serveJSON(a, "POST", "/register", tok, benchBody); code != http.StatusCreated {
		t.Fatalf("%s: %d %v", when, code, m)
	}
	if code, _ := serveJSON(a, "POST", "/register", tok, benchBody); code != http.StatusUnauthorized {
		t.Fatalf("a second use of a one-use token: %d", code)
	}
}

// setReturnPause sets the first pause of the background give-backs for
// the test.
func setReturnPause(t *testing.T, d time.Duration) {
	tokenReturns.mu.Lock()
	tokenReturns.pauseMin = d
	tokenReturns.mu.Unlock()
	t.Cleanup(func() {
		tokenReturns.mu.Lock()
		tokenReturns.pauseMin = 0
		tokenReturns.mu.Unlock()
	})
}

// blockedStore fails every read, once released: a store that is down.
type blockedStore struct {
	storage.Store
	release chan struct{}
}

func (s blockedStore) Get(context.Context, string) (*storage.Record, error) {
	<-s.release
	return nil, errors.New("store down")
}

// TestReturnQueueBound: the give-backs a round is trying count against
// the bound too; otherwise each round, while the store fails, would let as
// many more wait again.
func TestReturnQueueBound(t *testing.T) {
	st := blockedStore{Store: storage.NewEmbeddedStore(&certmagic.FileStorage{Path: t.TempDir()}, "q"), release: make(chan struct{})}
	reg := registry.New(st)
	q := &returnQueue{pauseMin: time.Millisecond}
	// Waiting past returnPatience already: once released, the round
	// drops them and ends.
	since := time.Now().Add(-2 * returnPatience)
	for i := 0; i < maxPendingReturns; i++ {
		q.add(pendingReturn{reg: reg, token: "t", use: strconv.Itoa(i), since: since})
	}
	// The round takes those added so far, and blocks on the first.
	deadline := time.Now().Add(5 * time.Second)
	for {
		q.mu.Lock()
		taken := q.trying > 0
		q.mu.Unlock()
		if taken {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the round did not start")
		}
		time.Sleep(time.Millisecond)
	}
	q.add(pendingReturn{reg: reg, token: "t", use: "more", since: since})
	q.mu.Lock()
	waiting, trying := len(q.pending), q.trying
	q.mu.Unlock()
	close(st.release)
	if waiting+trying != maxPendingReturns {
		t.Fatalf("%d give-backs wait while %d are tried, over the bound of %d", waiting, trying, maxPendingReturns)
	}
}
