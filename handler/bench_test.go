package handler

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/registry"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

// memStore is the cheapest possible store, so that the benchmarks measure
// the handlers' own work.
type memStore struct {
	mu sync.Mutex
	m  map[string]*storage.Record
}

func (s *memStore) Create(_ context.Context, rec *storage.Record, _ ...storage.Cap) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[rec.ID]; ok {
		return storage.ErrExists
	}
	rec.Rev = 1
	s.m[rec.ID] = rec
	return nil
}

func (s *memStore) Get(_ context.Context, id string) (*storage.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.m[id]; ok {
		return r, nil
	}
	return nil, storage.ErrNotFound
}

func (s *memStore) Update(context.Context, *storage.Record, *storage.Record) error { return nil }
func (s *memStore) Delete(context.Context, *storage.Record) error                  { return nil }
func (s *memStore) Purge(context.Context, string, []string) error                  { return nil }
func (s *memStore) List(context.Context, string) ([]*storage.Record, error)        { return nil, nil }
func (s *memStore) Count(context.Context, string) (int, error)                     { return 0, nil }
func (s *memStore) Hit(context.Context, string, int, time.Duration) (bool, time.Duration, error) {
	return true, 0, nil
}

func benchAPI(testing.TB) *RFC7591 {
	reg := registry.New(&memStore{m: map[string]*storage.Record{}})
	return NewRFC7591(&Options{Registry: reg, Logger: zap.NewNop(), Health: new(Health), Metrics: NewMetrics(),
		Gate: Gate{RateLimit: 60, RateWindow: time.Hour, MaxClients: 10000, MaxClientsPerOwner: 100}})
}

const benchBody = `{"redirect_uris":["https://client.example.com/callback"],"client_name":"bench client","grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"client_secret_basic"}`

func BenchmarkRegister(b *testing.B) {
	a := benchAPI(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r := httptest.NewRequest("POST", "http://bench.example/register", strings.NewReader(benchBody))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		a.Serve(w, r)
		if w.Code != http.StatusCreated {
			b.Fatal(w.Code, w.Body)
		}
	}
}

// registerOne registers benchBody through a and returns the client's id
// and registration access token.
func registerOne(tb testing.TB, a *RFC7591) (id, tok string) {
	tb.Helper()
	r := httptest.NewRequest("POST", "http://bench.example/register", strings.NewReader(benchBody))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	a.Serve(w, r)
	if w.Code != http.StatusCreated {
		tb.Fatal(w.Code, w.Body)
	}
	m := w.Body.String()
	id = m[strings.Index(m, `"client_id":"`)+13:]
	id = id[:strings.IndexByte(id, '"')]
	tok = m[strings.Index(m, `"registration_access_token":"`)+29:]
	return id, tok[:strings.IndexByte(tok, '"')]
}

func BenchmarkRead(b *testing.B) {
	a := benchAPI(b)
	id, tok := registerOne(b, a)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := httptest.NewRequest("GET", "http://bench.example/register/"+id, nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		a.Serve(w, r)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code, w.Body)
		}
	}
}

// FuzzRFC7591Register: whatever the body, registration answers 201 or an
// RFC 7591 error, never a panic or a 5xx.
func FuzzRFC7591Register(f *testing.F) {
	for _, s := range []string{benchBody, `{}`, `{"redirect_uris":["http://[::1]:8/cb"],"application_type":"native","jwks":"{\"keys\":[]}"}`,
		`{"redirect_uris":["a:b"],"response_types":["code id_token token"],"grant_types":["implicit","authorization_code"]}`,
		`{"client_name#ja-Jpan-JP":"x","contacts":["a@b.c"],"scope":"a b","software_statement":"x.y.z"}`} {
		f.Add(s)
	}
	a := benchAPI(nil)
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "http://fuzz.example/register", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		a.Serve(w, r)
		if w.Code != http.StatusCreated && w.Code != http.StatusBadRequest {
			t.Fatalf("%q: %d %s", body, w.Code, w.Body)
		}
	})
}

// FuzzKustvaktRegister does the same for Kustvakt's registration.
func FuzzKustvaktRegister(f *testing.F) {
	for _, s := range []string{`{"name":"abc","type":"CONFIDENTIAL","description":"d","url":"http://a.example.com","redirect_uri":"http://localhost:1/x"}`,
		`{"name":1,"type":0,"description":[],"source":{"a":[1,"\u00e9"]},"refresh_token_expiry":"9"}`, `[`, `{"url":"http://[::1"}`} {
		f.Add(s)
	}
	reg := registry.New(&memStore{m: map[string]*storage.Record{}})
	a := NewKustvakt(&Options{Registry: reg, Logger: zap.NewNop(), Health: new(Health), Prefix: "/api",
		User: func(*http.Request) string { return "alice" }}, KustvaktOptions{})
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "http://fuzz.example/api/v1.0/oauth2/client/register", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		a.Serve(w, r)
		if w.Code != http.StatusOK && w.Code != http.StatusBadRequest {
			t.Fatalf("%q: %d %s", body, w.Code, w.Body)
		}
	})
}

// BenchmarkPassThrough measures what the site behind pays for each of the
// four APIs in front of it: their route checks on requests that are not
// theirs, paths near theirs included. The baseline sub-benchmark makes the
// same requests and only calls the next handler, so that the difference
// is the APIs' own cost.
func BenchmarkPassThrough(b *testing.B) {
	newOpts := func(prefix string) *Options {
		return &Options{Registry: registry.New(&memStore{m: map[string]*storage.Record{}}), Logger: zap.NewNop(),
			Health: new(Health), Metrics: NewMetrics(), Prefix: prefix}
	}
	apis := []API{NewRFC7591(newOpts("")), NewMediaGoblin(newOpts("")), NewIAM(newOpts("")),
		NewKustvakt(newOpts("/api"), KustvaktOptions{})}
	var reqs []*http.Request
	for _, p := range []string{"/", "/index.html", "/static/app.js", "/api/users/42", "/v1/orders", "/registers", "/api/v1.0/search"} {
		reqs = append(reqs, httptest.NewRequest("GET", "http://site.example"+p, nil))
	}
	served := 0
	next := func(http.ResponseWriter, *http.Request) { served++ }
	w := httptest.NewRecorder()
	b.Run("baseline", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			next(w, reqs[i%len(reqs)])
		}
	})
	b.Run("four-apis", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			r := reqs[i%len(reqs)]
			for _, a := range apis {
				if a.Serve(w, r) {
					b.Fatalf("an API served %s", r.URL.Path)
				}
			}
			next(w, r)
		}
	})
	if served == 0 {
		b.Fatal("the next handler never ran")
	}
}
