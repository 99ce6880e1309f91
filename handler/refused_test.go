package handler

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-dcr/caddy-dcr/registry"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

// TestRefusalsLoggedAtDebug: an error answer is logged at debug level with
// what the client was told, and a credential sent with the request is not.
func TestRefusalsLoggedAtDebug(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	reg := registry.New(&memStore{m: map[string]*storage.Record{}})
	a := NewRFC7591(&Options{Registry: reg, Logger: zap.New(core), Health: new(Health), Metrics: NewMetrics(),
		Gate: Gate{RateLimit: 60, RateWindow: time.Hour, MaxClients: 10000, MaxClientsPerOwner: 100}})

	r := httptest.NewRequest("POST", "http://as.example/register", strings.NewReader(`{"redirect_uris":["https://x.example/cb#frag"]}`))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	a.Serve(w, r)
	if w.Code != http.StatusBadRequest {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	got := logs.FilterMessage("request refused").AllUntimed()
	if len(got) != 1 || got[0].Level != zapcore.DebugLevel {
		t.Fatalf("entries %+v", got)
	}
	f := got[0].ContextMap()
	if f["api"] != "rfc7591" || f["status"] != int64(400) || f["error"] != "invalid_redirect_uri" || !strings.Contains(f["description"].(string), "https://x.example/cb#frag") {
		t.Errorf("fields %v", f)
	}

	const token = "not-a-real-token-but-secret-all-the-same"
	r = httptest.NewRequest("GET", "http://as.example/register/nope", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	w = httptest.NewRecorder()
	a.Serve(w, r)
	if w.Code != http.StatusUnauthorized || logs.FilterMessage("request refused").Len() != 2 {
		t.Fatalf("%d, %d entries", w.Code, logs.Len())
	}
	for _, e := range logs.All() {
		for k, v := range e.ContextMap() {
			if s, ok := v.(string); ok && strings.Contains(s, token) {
				t.Errorf("the token is logged in %s: %v", k, e)
			}
		}
	}
}

// TestTwoAuthorizationHeaders: a request with two Authorization headers is
// refused, whichever holds the right token.
func TestTwoAuthorizationHeaders(t *testing.T) {
	a := benchAPI(t)
	id, tok := registerOne(t, a)
	for _, order := range [][]string{{tok, "bogus"}, {"bogus", tok}} {
		r := httptest.NewRequest("GET", "http://as.example/register/"+id, nil)
		r.Header.Add("Authorization", "Bearer "+order[0])
		r.Header.Add("Authorization", "Bearer "+order[1])
		w := httptest.NewRecorder()
		a.Serve(w, r)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%d %s", w.Code, w.Body)
		}
	}
	r := httptest.NewRequest("GET", "http://as.example/register/"+id, nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	a.Serve(w, r)
	if w.Code != http.StatusOK {
		t.Errorf("one header: %d %s", w.Code, w.Body)
	}
}

// TestCorruptRecord: a client whose stored record cannot be read is
// answered 503 and logged as such, once however often it is asked for, not
// as an outage of the store.
func TestCorruptRecord(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	dir := t.TempDir()
	st := storage.NewEmbeddedStore(&certmagic.FileStorage{Path: dir}, "cr")
	a := NewRFC7591(&Options{Registry: registry.New(st), Logger: zap.New(core), Health: new(Health), Metrics: NewMetrics(),
		Gate: Gate{RateLimit: 60, RateWindow: time.Hour, MaxClients: 10000, MaxClientsPerOwner: 100}})
	id, rat := registerOne(t, a)
	files, _ := filepath.Glob(filepath.Join(dir, "cr", "records", "*"))
	if len(files) != 1 {
		t.Fatalf("records %q", files)
	}
	if err := os.WriteFile(files[0], []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if code, m := serveJSON(a, "GET", "/register/"+id, rat, ""); code != http.StatusServiceUnavailable {
			t.Fatalf("%d %v", code, m)
		}
	}
	// Reported once, not per request.
	if logs.FilterMessage("a stored client record cannot be read").Len() != 1 || logs.FilterMessageSnippet("unavailable").Len() != 0 {
		t.Errorf("logs %+v", logs.AllUntimed())
	}
}

// TestRefusalLogBounded: a description quoting a long value (the cloned
// APIs quote whole values, as the real servers do) is cut in the log, not
// in the answer.
func TestRefusalLogBounded(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	e := newMGEnv(t, func(o *Options) { o.Logger = zap.New(core) })
	long := strings.Repeat("é", 3000) // no '@'
	w := e.postJSON(`{"type": "client_associate", "application_type": "web", "contacts": "` + long + `"}`)
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), strings.Repeat(`\u00e9`, 3000)) {
		t.Fatalf("%d %.200s", w.Code, w.Body)
	}
	got := logs.FilterMessage("request refused").AllUntimed()
	if len(got) != 1 {
		t.Fatalf("entries %+v", got)
	}
	if _, ok := got[0].ContextMap()["error"]; ok {
		t.Errorf("a MediaGoblin refusal, which has no error code, logged one: %+v", got[0].ContextMap())
	}
	d := got[0].ContextMap()["description"].(string)
	if len(d) > maxLoggedDescription+40 || !utf8.ValidString(d) || !strings.HasSuffix(d, "… (6028 bytes)") || !strings.HasPrefix(d, "Email éé") {
		t.Errorf("description of %d bytes: %.80q ... %q", len(d), d, d[max(0, len(d)-40):])
	}
}
