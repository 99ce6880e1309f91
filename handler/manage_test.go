package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-dcr/caddy-dcr/registry"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

// manageAPI is an RFC 7591 API on an embedded store in a fresh directory,
// with a clock the test moves.
func manageAPI(t *testing.T, now *time.Time) *RFC7591 {
	a := benchAPI(t)
	a.o.Registry = registry.New(storage.NewEmbeddedStore(&certmagic.FileStorage{Path: t.TempDir()}, "m"))
	a.o.Registry.Now = func() time.Time { return *now }
	return a
}

func serveJSON(a *RFC7591, method, path, token, body string) (int, map[string]any) {
	r := httptest.NewRequest(method, "http://as.example"+path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	a.Serve(w, r)
	var m map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &m)
	return w.Code, m
}

// TestUpdateRenewsExpiredSecret: an update of a client whose secret
// expired issues a new one (RFC 7592 section 2.2 allows it); without, the
// client could never authenticate again.
func TestUpdateRenewsExpiredSecret(t *testing.T) {
	now := time.Now()
	a := manageAPI(t, &now)
	lifetime := time.Hour
	a.o.SecretLifetime = &lifetime
	code, m := serveJSON(a, "POST", "/register", "", benchBody)
	if code != http.StatusCreated {
		t.Fatalf("%d %v", code, m)
	}
	id, rat, first := m["client_id"].(string), m["registration_access_token"].(string), m["client_secret"].(string)
	update := `{"client_id":"` + id + `","redirect_uris":["https://client.example.com/callback"]}`
	code, m = serveJSON(a, "PUT", "/register/"+id, rat, update)
	if code != http.StatusOK || m["client_secret"] != nil {
		t.Fatalf("update before expiry: %d %v (no new secret wanted)", code, m)
	}
	rat = m["registration_access_token"].(string)
	now = now.Add(2 * time.Hour)
	code, m = serveJSON(a, "PUT", "/register/"+id, rat, update)
	secret, _ := m["client_secret"].(string)
	if code != http.StatusOK || secret == "" || secret == first || int64(m["client_secret_expires_at"].(float64)) <= now.Unix() {
		t.Fatalf("update after expiry: %d %v", code, m)
	}
}

// TestFailedReadsDoNotKeepAlive: with an idle lifetime, a read with a wrong
// token does not push the client's expiry back; the client's own does.
func TestFailedReadsDoNotKeepAlive(t *testing.T) {
	now := time.Now()
	a := manageAPI(t, &now)
	a.o.Registry.IdleLifetime = 10 * time.Second
	code, m := serveJSON(a, "POST", "/register", "", benchBody)
	if code != http.StatusCreated {
		t.Fatalf("%d %v", code, m)
	}
	id, rat := m["client_id"].(string), m["registration_access_token"].(string)
	rec, _ := a.o.Registry.Store.Get(context.Background(), "c/"+id)
	before := rec.ExpiresAt
	now = now.Add(5 * time.Second)
	if code, _ := serveJSON(a, "GET", "/register/"+id, "bogus", ""); code != http.StatusUnauthorized {
		t.Fatalf("bogus token: %d", code)
	}
	if rec, _ = a.o.Registry.Store.Get(context.Background(), "c/"+id); !rec.ExpiresAt.Equal(before) {
		t.Fatalf("a failed read moved the expiry from %v to %v", before, rec.ExpiresAt)
	}
	if code, _ := serveJSON(a, "GET", "/register/"+id, rat, ""); code != http.StatusOK {
		t.Fatalf("own token: %d", code)
	}
	if rec, _ = a.o.Registry.Store.Get(context.Background(), "c/"+id); !rec.ExpiresAt.After(before) {
		t.Fatalf("the client's own read did not move the expiry (%v)", rec.ExpiresAt)
	}
}

// flakyStore passes skip updates, then fails fail of them with an error
// whose outcome is open (a reply lost), after calling onFail with the store
// underneath.
type flakyStore struct {
	storage.Store
	skip, fail int
	onFail     func(inner storage.Store)
}

func (s *flakyStore) Update(ctx context.Context, old, rec *storage.Record) error {
	if s.skip > 0 {
		s.skip--
		return s.Store.Update(ctx, old, rec)
	}
	if s.fail > 0 {
		s.fail--
		if s.onFail != nil {
			s.onFail(s.Store)
		}
		return &storage.UnavailableError{Op: "update", Err: context.DeadlineExceeded}
	}
	return s.Store.Update(ctx, old, rec)
}

// TestRetireRetried: a retire whose outcome is open is tried again and
// succeeds; one that finds the client's token superseded meanwhile (the old
// token made current again) is answered 503, not with the new token.
func TestRetireRetried(t *testing.T) {
	now := time.Now()
	a := manageAPI(t, &now)
	saved := retireRetryPause
	retireRetryPause = time.Millisecond
	t.Cleanup(func() { retireRetryPause = saved })
	fs := &flakyStore{Store: a.o.Registry.Store}
	a.o.Registry.Store = fs
	code, m := serveJSON(a, "POST", "/register", "", benchBody)
	if code != http.StatusCreated {
		t.Fatalf("%d %v", code, m)
	}
	id, rat := m["client_id"].(string), m["registration_access_token"].(string)
	update := `{"client_id":"` + id + `","redirect_uris":["https://client.example.com/callback"]}`

	// The update's own write passes; its retire fails twice, then passes.
	fs.skip, fs.fail = 1, 2
	code, m = serveJSON(a, "PUT", "/register/"+id, rat, update)
	if code != http.StatusOK {
		t.Fatalf("update whose retire failed twice: %d %v", code, m)
	}
	if code, _ := serveJSON(a, "GET", "/register/"+id, rat, ""); code != http.StatusUnauthorized {
		t.Errorf("the old token after the retried retire: %d", code)
	}
	rat = m["registration_access_token"].(string)

	// The retire keeps failing, and meanwhile the client's token is
	// replaced: 503, not a token that no longer works.
	fs.skip, fs.fail = 1, 100
	fs.onFail = func(inner storage.Store) {
		fs.onFail = nil
		_, _ = registry.New(inner).Update(context.Background(), id, func(c *registry.Client) error {
			c.RotateRAT(registry.NewRAT(id), "", now, time.Second)
			return nil
		})
	}
	if code, m = serveJSON(a, "PUT", "/register/"+id, rat, update); code != http.StatusServiceUnavailable {
		t.Errorf("update whose token was superseded: %d %v", code, m)
	}
}

// TestUpdateOfDepartedClient: an update whose client went away before its
// answer does not retire the token it was made with, since the new one can
// never reach the client; the old token works again once the update's
// pending time is over, instead of locking the client out.
func TestUpdateOfDepartedClient(t *testing.T) {
	now := time.Now()
	a := manageAPI(t, &now)
	id, rat := registerOne(t, a)
	w := updateDeparted(a, id, rat, `{"client_id":"`+id+`","redirect_uris":["https://client.example.com/callback"],"client_name":"changed"}`)
	if strings.Contains(w.Body.String(), "registration_access_token") {
		t.Fatalf("answered a departed client: %s", w.Body)
	}

	now = now.Add(2 * a.priorRATDelay())
	code, m := serveJSON(a, "GET", "/register/"+id, rat, "")
	if code != http.StatusOK || m["client_name"] != "changed" {
		t.Fatalf("the old token after an update nobody received: %d %v", code, m)
	}
}

// updateDeparted sends an RFC 7592 update of client id, made with token
// rat, whose client went away before the answer (its context is done).
func updateDeparted(a *RFC7591, id, rat, body string) *httptest.ResponseRecorder {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequestWithContext(ctx, "PUT", "http://as.example/register/"+id, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+rat)
	w := httptest.NewRecorder()
	a.Serve(w, r)
	return w
}

// TestRestoreFailsQuietlyInAnOutage: while writes fail, every read with
// the token of an update nobody received tries to make it the client's
// token again and fails; the outage is logged once (Health), not a warning
// per read.
func TestRestoreFailsQuietlyInAnOutage(t *testing.T) {
	now := time.Now()
	a := manageAPI(t, &now)
	core, logs := observer.New(zap.InfoLevel)
	a.o.Logger = zap.New(core)
	fs := &flakyStore{Store: a.o.Registry.Store}
	a.o.Registry.Store = fs
	id, rat := registerOne(t, a)
	updateDeparted(a, id, rat, `{"client_id":"`+id+`","redirect_uris":["https://client.example.com/callback"]}`)

	now = now.Add(2 * a.priorRATDelay())
	fs.fail = 100
	for range 5 {
		if code, m := serveJSON(a, "GET", "/register/"+id, rat, ""); code != http.StatusOK {
			t.Fatalf("read with the old token while writes fail: %d %v", code, m)
		}
	}
	if n := logs.FilterMessageSnippet("could not be made the client's token again").Len(); n != 0 {
		t.Errorf("%d warnings about the token, want none (the outage is logged as such)", n)
	}
	if n := logs.FilterMessageSnippet("client store unavailable").Len(); n != 1 {
		t.Errorf("%d outage lines, want 1", n)
	}
}

// TestConflictIsUnavailable: a change that gave up after losing to other
// writers for the whole retry budget is answered 503 (to be repeated), not
// 500, and declares no outage.
func TestConflictIsUnavailable(t *testing.T) {
	now := time.Now()
	a := manageAPI(t, &now)
	if !a.o.storeFailure(time.Now(), "update", fmt.Errorf("updating: %w", storage.ErrConflict)) {
		t.Fatal("a conflict is not answered as unavailable")
	}
	if !a.o.storeFailure(time.Now(), "update", &storage.UnavailableError{Op: "update", Err: context.DeadlineExceeded}) {
		t.Fatal("an outage is not answered as unavailable")
	}
	if a.o.storeFailure(time.Now(), "update", registry.ErrNotFound) {
		t.Fatal("not found is answered as unavailable")
	}
}

// racedStore runs race once, just before the first change (update or
// delete) goes to the store underneath: a write that lands between a
// request's token check and its own write.
type racedStore struct {
	storage.Store
	race func()
}

func (s *racedStore) raceOnce() {
	if race := s.race; race != nil {
		s.race = nil
		race()
	}
}

func (s *racedStore) Update(ctx context.Context, old, rec *storage.Record) error {
	s.raceOnce()
	return s.Store.Update(ctx, old, rec)
}

func (s *racedStore) Delete(ctx context.Context, rec *storage.Record) error {
	s.raceOnce()
	return s.Store.Delete(ctx, rec)
}

// TestChangeWaitsForRacingUpdate: a PUT or DELETE whose token was current
// when checked, but which an update made with the same token (its client
// gone before the answer) overtakes, waits for that update to settle, as a
// request that finds it pending does, and then goes through with the
// token: the rotation is no revocation, and a 401 would be final.
func TestChangeWaitsForRacingUpdate(t *testing.T) {
	for _, method := range []string{"PUT", "DELETE"} {
		t.Run(method, func(t *testing.T) {
			now := time.Now()
			a := manageAPI(t, &now)
			a.o.Registry.Now = time.Now // awaitSettled waits in real time
			rs := &racedStore{Store: a.o.Registry.Store}
			a.o.Registry.Store = rs
			id, rat := registerOne(t, a)
			update := func(name string) string {
				return `{"client_id":"` + id + `","redirect_uris":["https://client.example.com/callback"],"client_name":"` + name + `"}`
			}
			rs.race = func() { updateDeparted(a, id, rat, update("abandoned")) }
			body := ""
			if method == "PUT" {
				body = update("retried")
			}
			start := time.Now()
			code, m := serveJSON(a, method, "/register/"+id, rat, body)
			if method == "PUT" && (code != http.StatusOK || m["client_name"] != "retried") {
				t.Fatalf("update overtaken by one with its token: %d %v", code, m)
			}
			if method == "DELETE" && code != http.StatusNoContent {
				t.Fatalf("delete overtaken by an update with its token: %d %v", code, m)
			}
			if waited := time.Since(start); waited < a.priorRATDelay()/2 {
				t.Errorf("answered after %v, before the racing update could settle", waited)
			}
			if method == "PUT" {
				if code, _ := serveJSON(a, "GET", "/register/"+id, rat, ""); code != http.StatusUnauthorized {
					t.Errorf("the token of the answered update still works: %d", code)
				}
				if code, m := serveJSON(a, "GET", "/register/"+id, m["registration_access_token"].(string), ""); code != http.StatusOK || m["client_name"] != "retried" {
					t.Errorf("read with the new token: %d %v", code, m)
				}
			} else if _, err := a.o.Registry.Peek(context.Background(), id); !errors.Is(err, registry.ErrNotFound) {
				t.Errorf("the client after its delete: %v", err)
			}
		})
	}
}

// TestUpdateAnswerLost: a PUT whose request is gone before its answer (a
// client that half-closed its connection is one, and still reads) is
// answered as an update whose answer was lost, 503 in the API's format
// with no-store, never with an empty 200.
func TestUpdateAnswerLost(t *testing.T) {
	now := time.Now()
	a := manageAPI(t, &now)
	code, m := serveJSON(a, "POST", "/register", "", benchBody)
	if code != http.StatusCreated {
		t.Fatalf("%d %v", code, m)
	}
	id, rat := m["client_id"].(string), m["registration_access_token"].(string)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	body := `{"client_id":"` + id + `","redirect_uris":["https://client.example.com/other"]}`
	r := httptest.NewRequestWithContext(ctx, "PUT", "http://as.example/register/"+id, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+rat)
	w := httptest.NewRecorder()
	a.Serve(w, r)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Retry-After") == "" ||
		!strings.Contains(w.Body.String(), `"error":"temporarily_unavailable"`) {
		t.Fatalf("lost answer: %d %v %s", w.Code, w.Header(), w.Body)
	}
	c, err := a.o.Registry.Get(context.Background(), id)
	if err != nil || len(c.RedirectURIs) != 1 || c.RedirectURIs[0] != "https://client.example.com/other" {
		t.Fatalf("the update was not carried out: %v %v", c, err)
	}
}
