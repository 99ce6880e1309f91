package handler

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-dcr/caddy-dcr/registry"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

// The expected bytes in these tests were produced by CPython (json.loads,
// str(), str.split(), json.dumps) from the same inputs.

const mgNoCT = "\x00none" // send no Content-Type header at all

var (
	mgIDPattern     = regexp.MustCompile(`^[A-Za-z0-9]{22}$`)
	mgSecretPattern = regexp.MustCompile(`^[A-Za-z0-9]{43}$`)
	mgSuccess       = regexp.MustCompile(`^\{"client_id": "([^"]*)", "client_secret": "([^"]*)", "expires_at": (\d+)\}$`)
)

type mgEnv struct {
	t          testing.TB
	api        *MediaGoblin
	reg        *registry.Registry
	logs       *observer.ObservedLogs
	metrics    *Metrics
	registered []string
	now        time.Time
}

// newMGEnv serves the API on a real embedded store in a temporary
// directory; configure adjusts the options before use.
func newMGEnv(t testing.TB, configure func(o *Options)) *mgEnv {
	t.Helper()
	st := storage.NewEmbeddedStore(&certmagic.FileStorage{Path: t.TempDir()}, "cr")
	e := &mgEnv{t: t, reg: registry.New(st), metrics: NewMetrics(), now: time.Unix(1700000000, 0)}
	e.reg.Now = func() time.Time { return e.now }
	core, logs := observer.New(zapcore.DebugLevel)
	e.logs = logs
	o := &Options{
		Registry:   e.reg,
		Logger:     zap.New(core),
		User:       func(*http.Request) string { return "alice" },
		Registered: func(_ *http.Request, id string) { e.registered = append(e.registered, id) },
		Health:     new(Health),
		Metrics:    e.metrics,
	}
	if configure != nil {
		configure(o)
	}
	e.api = NewMediaGoblin(o)
	return e
}

func (e *mgEnv) serve(r *http.Request) *httptest.ResponseRecorder {
	e.t.Helper()
	w := httptest.NewRecorder()
	if !e.api.Serve(w, r) {
		e.t.Fatalf("%s %s was not served", r.Method, r.URL.Path)
	}
	return w
}

// send makes a request to the endpoint; ct mgNoCT sends no Content-Type.
func (e *mgEnv) send(method, ct, body string) *httptest.ResponseRecorder {
	e.t.Helper()
	r := httptest.NewRequest(method, mgPath, strings.NewReader(body))
	if ct != mgNoCT {
		r.Header.Set("Content-Type", ct)
	}
	return e.serve(r)
}

func (e *mgEnv) postJSON(body string) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.send(http.MethodPost, "application/json", body)
}

func (e *mgEnv) postForm(body string) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.send(http.MethodPost, "application/x-www-form-urlencoded", body)
}

// register creates a client through the API and returns its credentials.
func (e *mgEnv) register(body string) (id, secret string) {
	e.t.Helper()
	w := e.postJSON(body)
	id, secret, _ = checkMGSuccess(e.t, w)
	return id, secret
}

func (e *mgEnv) client(id string) *registry.Client {
	e.t.Helper()
	c, err := e.reg.Get(context.Background(), id)
	if err != nil {
		e.t.Fatalf("client %s: %v", id, err)
	}
	return c
}

// checkMGHeaders checks what every answer of the endpoint carries.
func checkMGHeaders(t testing.TB, w *httptest.ResponseRecorder) {
	t.Helper()
	for k, v := range map[string]string{
		"Content-Type":                 "application/json",
		"Access-Control-Allow-Origin":  "*",
		"Access-Control-Allow-Methods": "POST, GET, OPTIONS",
		"Access-Control-Allow-Headers": "Content-Type, X-Requested-With",
	} {
		if got := w.Header().Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
}

// checkMGError checks an error answer byte for byte.
func checkMGError(t testing.TB, w *httptest.ResponseRecorder, status int, msg string) {
	t.Helper()
	want := `{"error": "` + msg + `"}`
	if w.Code != status || w.Body.String() != want {
		t.Errorf("got %d %s\nwant %d %s", w.Code, w.Body.String(), status, want)
	}
	checkMGHeaders(t, w)
	if w.Header().Get("Cache-Control") != "" || w.Header().Get("Pragma") != "" {
		t.Errorf("error answer with cache headers: %v", w.Header())
	}
}

func checkMGSuccess(t testing.TB, w *httptest.ResponseRecorder) (id, secret, expires string) {
	t.Helper()
	m := mgSuccess.FindStringSubmatch(w.Body.String())
	if w.Code != http.StatusOK || m == nil {
		t.Fatalf("got %d %s, want 200 and credentials", w.Code, w.Body.String())
	}
	checkMGHeaders(t, w)
	if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Pragma") != "no-cache" {
		t.Errorf("credentials without no-store: %v", w.Header())
	}
	return m[1], m[2], m[3]
}

func TestMGRoutes(t *testing.T) {
	e := newMGEnv(t, nil)
	for _, p := range []string{"/", "/api/client/register/", "/api/client/registe", "/api/client/register/x", "/API/client/register", "/x/api/client/register"} {
		if e.api.Serve(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, p, nil)) {
			t.Errorf("%s was served", p)
		}
	}
	// Every method reaches the view; without a body there is no type.
	for _, m := range []string{http.MethodGet, http.MethodOptions, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		checkMGError(t, e.send(m, mgNoCT, ""), http.StatusBadRequest, mgNoType)
	}
	// The path is matched after percent-decoding, as werkzeug does.
	w := e.serve(httptest.NewRequest(http.MethodGet, "/api/client/%72egister?type=client_associate", nil))
	checkMGError(t, w, http.StatusBadRequest, mgNoType)

	p := newMGEnv(t, func(o *Options) { o.Prefix = "/mg" })
	if p.api.Serve(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, mgPath, nil)) {
		t.Error("unprefixed path served under a prefix")
	}
	w = httptest.NewRecorder()
	if !p.api.Serve(w, httptest.NewRequest(http.MethodPost, "/mg"+mgPath, nil)) {
		t.Fatal("prefixed path not served")
	}
	checkMGError(t, w, http.StatusBadRequest, mgNoType)
}

// TestMGDecoding covers table 1.2: which content types decode how.
func TestMGDecoding(t *testing.T) {
	e := newMGEnv(t, nil)
	const minimalJSON = `{"type": "client_associate", "application_type": "native"}`
	const minimalForm = "type=client_associate&application_type=native"
	cases := []struct {
		ct, body string
		status   int
		msg      string // "" for success
	}{
		{"application/json", minimalJSON, 200, ""},
		{"application/json; charset=utf-8", minimalJSON, 200, ""},
		{" application/json ; charset=latin-1", minimalJSON, 200, ""},
		{"application/json,text/plain", minimalJSON, 200, ""},
		{"application/json garbage", minimalJSON, 200, ""},
		{"application/json\t;x", minimalJSON, 200, ""},
		{"application/json\xa0", minimalJSON, 200, ""},     // Latin-1 NBSP is whitespace to Python
		{"\x1capplication/json\x85", minimalJSON, 200, ""}, // so are the information separators and NEL
		{"application/json;", minimalJSON, 200, ""},
		{"application/json; charset*=utf-8''%E2%82%AC; x", minimalJSON, 200, ""},
		{"application/x-www-form-urlencoded", minimalForm, 200, ""},
		{"application/x-www-form-urlencoded; charset=utf-8", minimalForm, 200, ""},
		// The match is exact and case-sensitive.
		{"Application/JSON", minimalJSON, 400, mgUnknownCT},
		{"application/jsonx", minimalJSON, 400, mgUnknownCT},
		{"APPLICATION/X-WWW-FORM-URLENCODED", minimalForm, 400, mgUnknownCT},
		{"text/plain", minimalJSON, 400, mgUnknownCT},
		{"multipart/form-data; boundary=x", minimalForm, 400, mgUnknownCT},
		{"application/json\xc2\xa0", minimalJSON, 400, mgUnknownCT}, // UTF-8 NBSP is two Latin-1 characters
		// No main value at all: werkzeug gives the (empty) form.
		{mgNoCT, minimalForm, 400, mgNoType},
		{"", minimalForm, 400, mgNoType},
		{";charset=utf-8", minimalJSON, 400, mgNoType},
		{",application/json", minimalJSON, 400, mgNoType},
		{"  ", minimalJSON, 400, mgNoType},
		// A form content type with a JSON body: one key, no type.
		{"application/x-www-form-urlencoded", minimalJSON, 400, mgNoType},
		// A JSON content type with a form body.
		{"application/json", minimalForm, 400, mgDecodeError},
	}
	for _, c := range cases {
		w := e.send(http.MethodPost, c.ct, c.body)
		if c.msg == "" {
			checkMGSuccess(t, w)
			continue
		}
		t.Run(c.ct, func(t *testing.T) { checkMGError(t, w, c.status, c.msg) })
	}
}

// TestMGJSONBodies covers json.loads and what the view does with values
// that are not objects.
func TestMGJSONBodies(t *testing.T) {
	e := newMGEnv(t, nil)
	cases := []struct{ body, msg string }{
		{"", mgDecodeError},
		{" \t\r\n", mgDecodeError},
		{"{", mgDecodeError},
		{`{"type": "client_associate", "application_type": "web",}`, mgDecodeError},
		{`{"type": "client_associate"} x`, mgDecodeError},
		{"\ufeff{}", mgDecodeError},                     // json.loads refuses a byte order mark
		{"{\"type\": \"a\xffb\"}", mgDecodeError},       // invalid UTF-8
		{"{\"type\": \"\xed\xa0\x80\"}", mgDecodeError}, // an encoded surrogate is invalid UTF-8 too
		{"{\"type\": \"a\tb\"}", mgDecodeError},         // control characters must be escaped
		{`{"type": "\x41"}`, mgDecodeError},
		{`{'type': 1}`, mgDecodeError},
		{`{"a": 01}`, mgDecodeError},
		{`{"a": 1.}`, mgDecodeError},
		{`{"a": -NaN}`, mgDecodeError},
		{`{"a": ` + strings.Repeat("9", 4301) + `}`, mgDecodeError}, // Python's int digit limit
		{strings.Repeat("[", 1001) + strings.Repeat("]", 1001), mgDecodeError},
		// Not objects.
		{`""`, mgUnknownCT},
		{`"abc"`, mgNoType},
		{`"prototype"`, mgDecodeError}, // "type" in "prototype" holds, then data.get crashes
		{`[]`, mgNoType},
		{`["a", ["type"], {"type": 1}]`, mgNoType},
		{`["type"]`, mgDecodeError},
		{`null`, mgDecodeError},
		{`0`, mgDecodeError},
		{`-1.5e3`, mgDecodeError},
		{`true`, mgDecodeError},
		{`NaN`, mgDecodeError},
		// Objects that are fine as JSON.
		{`{}`, mgNoType},
		{" {\"a\": [NaN, Infinity, -Infinity, 1e400, " + strings.Repeat("9", 4300) + "]}\n", mgNoType},
		{strings.Repeat("[", 999) + "{}" + strings.Repeat("]", 999), mgNoType},
		{`{"type": 1, "application_type": "web", "type": "client_associate"}`, ""}, // last duplicate wins
		{`{"type": "client_associate", "application_type": "web", "type": 1}`, mgInvalidType},
		{`{"t\u0079pe": "client\u005fassociate", "application_type": "web"}`, ""},
		// A lone surrogate passes the view's checks, then cannot be stored
		// in a text column (the real server's 500); its JSON columns
		// (contacts, redirect URIs) store it escaped.
		{`{"type": "client_associate", "application_type": "web", "application_name": "a\ud800b"}`, mgDecodeError},
		{`{"type": "client_associate", "application_type": "web", "logo_uri": "http://a.example/\udc00"}`, mgDecodeError},
		{`{"type": "client_associate", "application_type": "web", "contacts": "a@b.c x\udfff@y.z"}`, ""},
		{`{"type": "client_associate", "application_type": "web", "redirect_uris": "a\ud800@b"}`, ""},
		// sqlite3 binds integers of 64 bits, and no more (OverflowError).
		{`{"type": "client_associate", "application_type": "web", "application_name": 9223372036854775807}`, ""},
		{`{"type": "client_associate", "application_type": "web", "application_name": -9223372036854775809}`, mgDecodeError},
		{`{"type": "client_associate", "application_type": "web", "application_name": 9223372036854775808}`, mgDecodeError},
		{`{"type": "client_associate", "application_type": "web", "application_name": "\ud83d\ude00"}`, ""},
	}
	for _, c := range cases {
		w := e.postJSON(c.body)
		if c.msg == "" {
			checkMGSuccess(t, w)
			continue
		}
		name := c.body
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) { checkMGError(t, w, http.StatusBadRequest, c.msg) })
	}
}

// TestMGErrorOrder walks table 1.3: each row's condition with every later
// row's condition also present, so the first failing check must win.
func TestMGErrorOrder(t *testing.T) {
	e := newMGEnv(t, nil)
	id, secret := e.register(`{"type": "client_associate", "application_type": "web"}`)
	cases := []struct {
		body   string
		status int
		msg    string
	}{
		{`{"application_type": "nope", "client_id": 1}`, 400, mgNoType},
		{`{"type": "client_update", "client_id": "x"}`, 400, mgUnknownAppType},
		{`{"type": "client_update", "application_type": null}`, 400, mgUnknownAppType},
		{`{"type": "client_associate", "application_type": "WEB"}`, 400, mgUnknownAppType},
		{`{"type": "nope", "application_type": ["web"]}`, 400, mgUnknownAppType},
		{`{"type": "client_update", "application_type": "web", "client_secret": "x"}`, 400, mgNeedID},
		{`{"type": "client_update", "application_type": "web", "client_id": "x"}`, 400, mgNeedSecret},
		{`{"type": "client_update", "application_type": "web", "client_id": null}`, 400, mgNeedSecret},
		{`{"type": "client_update", "application_type": "web", "client_id": "x", "client_secret": "y", "contacts": 5}`, 403, mgUnauthorized},
		{`{"type": "client_update", "application_type": "web", "client_id": "` + id + `", "client_secret": "y"}`, 403, mgUnauthorized},
		{`{"type": "client_update", "application_type": "web", "client_id": "` + id + `", "client_secret": "` + secret + `x"}`, 403, mgUnauthorized},
		{`{"type": "client_update", "application_type": "web", "client_id": "` + strings.ToLower(id) + `", "client_secret": "` + secret + `"}`, 403, mgUnauthorized},
		// A list or an object cannot be a query parameter: a 500 in the
		// real server, so the 400 of undecodable data.
		{`{"type": "client_update", "application_type": "web", "client_id": ["` + id + `"], "client_secret": "` + secret + `"}`, 400, mgDecodeError},
		{`{"type": "client_update", "application_type": "web", "client_id": "` + id + `", "client_secret": {}}`, 400, mgDecodeError},
		{`{"type": "client_update", "application_type": "web", "client_id": 5, "client_secret": true}`, 403, mgUnauthorized},
		{`{"type": "client_update", "application_type": "web", "client_id": "` + id + `", "client_secret": "\ud800"}`, 400, mgDecodeError},
		{`{"type": "client_update", "application_type": "web", "client_id": 9223372036854775808, "client_secret": "x"}`, 400, mgDecodeError},
		{`{"type": "client_update", "application_type": "web", "client_id": 9223372036854775807, "client_secret": "x"}`, 403, mgUnauthorized},
		{`{"type": "client_associate", "application_type": "web", "application_name": ["x"], "contacts": 1}`, 400, mgContactsType},
		{`{"type": "client_associate", "application_type": "web", "application_name": ["x"]}`, 400, mgDecodeError},
		{`{"type": "client_associate", "application_type": "web", "application_name": {"a": 1}, "redirect_uris": "http://a/cb"}`, 400, mgDecodeError},
		{`{"type": "client_update", "application_type": "web", "client_id": "` + id + `", "client_secret": null}`, 403, mgUnauthorized},
		{`{"type": "client_update", "application_type": "web", "client_id": "", "client_secret": ""}`, 403, mgUnauthorized},
		{`{"type": "client_update", "application_type": "web", "client_id": "` + strings.Repeat("a", 5000) + `", "client_secret": "x"}`, 403, mgUnauthorized},
		{`{"type": "client_associate", "application_type": "web", "client_id": null, "access_token": 1, "client_secret": 1}`, 400, mgOnlyIDForUpdate},
		{`{"type": "client_associate", "application_type": "web", "access_token": "", "client_secret": 1}`, 400, mgNoAccessToken},
		{`{"type": "client_associate", "application_type": "web", "client_secret": "", "logo_uri": 1}`, 400, mgOnlySecretUpdate},
		{`{"type": "Client_Associate", "application_type": "web", "logo_uri": 1}`, 400, mgInvalidType},
		{`{"type": null, "application_type": "native"}`, 400, mgInvalidType},
		{`{"type": ["client_associate"], "application_type": "native"}`, 400, mgInvalidType},
		{`{"type": "client_associate", "application_type": "web", "logo_uri": "http://[::1", "contacts": 1}`, 400, "Logo URI http://[::1 is not a valid URI."},
		{`{"type": "client_associate", "application_type": "web", "logo_uri": 7, "contacts": 1}`, 400, "Logo URI 7 is not a valid URI."},
		{`{"type": "client_associate", "application_type": "web", "logo_uri": " JavaScript:alert(1)"}`, 400, "Logo URI  JavaScript:alert(1) is not a valid URI."},
		{`{"type": "client_associate", "application_type": "web", "logo_url": "data:text/html,x"}`, 400, "Logo URI data:text/html,x is not a valid URI."},
		{`{"type": "client_associate", "application_type": "web", "application_name": "a\u2028b"}`, 400, "Application name must not contain control characters, line separators or bidirectional overrides."},
		// Our name check comes after every check of MediaGoblin's, whose
		// answers it must not change.
		{`{"type": "client_associate", "application_type": "web", "application_name": "a\u0007b", "contacts": "nobody"}`, 400, "Email nobody is not a valid email."},
		{`{"type": "client_associate", "application_type": "web", "application_name": "a\u202eb", "redirect_uris": ["x"]}`, 400, mgRedirectsType},
		{`{"type": "client_associate", "application_type": "web", "application_name": "a\u202eb", "redirect_uris": "http://[x"}`, 400, "URI http://[x is not a valid URI"},
		// Nor URLs or contacts with such characters, after MediaGoblin's
		// own checks too, with its messages for those fields (escaped
		// in the answer as json.dumps escapes them).
		{`{"type": "client_associate", "application_type": "web", "logo_uri": "https://l.example/\u0001"}`, 400, `Logo URI https://l.example/\u0001 is not a valid URI.`},
		{`{"type": "client_associate", "application_type": "web", "contacts": "a@b.example \u202e@x"}`, 400, `Email \u202e@x is not a valid email.`},
		{`{"type": "client_associate", "application_type": "web", "redirect_uris": "https://a\u0000b.example/cb"}`, 400, `URI https://a\u0000b.example/cb is not a valid URI`},
		{`{"type": "client_associate", "application_type": "web", "redirect_uris": "https://x.example/\u2066cb"}`, 400, `URI https://x.example/\u2066cb is not a valid URI`},
		{`{"type": "client_associate", "application_type": "web", "contacts": "\u202e@x", "redirect_uris": "http://[x"}`, 400, "URI http://[x is not a valid URI"},
		{`{"type": "client_associate", "application_type": "web", "contacts": ["a@b"], "redirect_uris": 1}`, 400, mgContactsType},
		{`{"type": "client_associate", "application_type": "web", "contacts": "a@b nomail", "redirect_uris": 1}`, 400, "Email nomail is not a valid email."},
		{`{"type": "client_associate", "application_type": "web", "contacts": "", "redirect_uris": ["http://x"]}`, 400, mgRedirectsType},
		{`{"type": "client_associate", "application_type": "web", "redirect_uris": "http://ok/ http://[::1 http://[x"}`, 400, "URI http://[::1 is not a valid URI"},
		// The redirect policy: never a dangerous scheme (however spelled),
		// at most 10 URIs by default; plain http stays allowed.
		{`{"type": "client_associate", "application_type": "web", "redirect_uris": "http://ok.example/cb javascript:alert(1)"}`, 400, "URI javascript:alert(1) is not a valid URI"},
		{`{"type": "client_associate", "application_type": "web", "redirect_uris": "JavaScript:alert(1)"}`, 400, "URI JavaScript:alert(1) is not a valid URI"},
		{`{"type": "client_associate", "application_type": "web", "redirect_uris": "data:text/html,x"}`, 400, "URI data:text/html,x is not a valid URI"},
		{`{"type": "client_associate", "application_type": "web", "redirect_uris": "file:///etc/passwd"}`, 400, "URI file:///etc/passwd is not a valid URI"},
		{`{"type": "client_associate", "application_type": "web", "redirect_uris": "vbscript:x"}`, 400, "URI vbscript:x is not a valid URI"},
		{`{"type": "client_associate", "application_type": "web", "redirect_uris": "` + strings.Repeat("http://a.example/ ", 10) + `http://eleven.example/"}`, 400, "URI http://eleven.example/ is not a valid URI"},
		// The policy's checks come after every check of MediaGoblin's:
		// a request it refuses keeps its answer.
		{`{"type": "client_associate", "application_type": "web", "logo_uri": "javascript:x", "contacts": "nope"}`, 400, "Email nope is not a valid email."},
		{`{"type": "client_associate", "application_type": "web", "logo_uri": "data:,x", "redirect_uris": "http://[::1"}`, 400, "URI http://[::1 is not a valid URI"},
		{`{"type": "client_associate", "application_type": "web", "logo_uri": "javascript:x", "redirect_uris": ["x"]}`, 400, mgRedirectsType},
		{`{"type": "client_associate", "application_type": "web", "redirect_uris": "javascript:x http://[::1"}`, 400, "URI http://[::1 is not a valid URI"},
		{`{"type": "client_associate", "application_type": "web", "redirect_uris": "a b c d e f g h i j k http://[::1"}`, 400, "URI http://[::1 is not a valid URI"},
		{`{"type": "client_associate", "application_type": "web", "logo_uri": "javascript:x", "redirect_uris": "javascript:y"}`, 400, "Logo URI javascript:x is not a valid URI."},
		{`{"type": "client_associate", "application_type": "web", "application_name": "a\u0007b", "logo_uri": "javascript:x"}`, 400, "Application name must not contain control characters, line separators or bidirectional overrides."},
		// And after the stand-ins for the real server's failures at its
		// database (a 500 there).
		{`{"type": "client_associate", "application_type": "web", "application_name": ["a"], "logo_uri": "javascript:x"}`, 400, mgDecodeError},
		{`{"type": "client_associate", "application_type": "web", "application_name": "\ud800", "redirect_uris": "javascript:x"}`, 400, mgDecodeError},
		// Update runs the same tail once authorized.
		{`{"type": "client_update", "application_type": "web", "client_id": "` + id + `", "client_secret": "` + secret + `", "redirect_uris": "javascript:alert(1)"}`, 400, "URI javascript:alert(1) is not a valid URI"},
		{`{"type": "client_update", "application_type": "web", "client_id": "` + id + `", "client_secret": "` + secret + `", "logo_uri": false}`, 400, "Logo URI False is not a valid URI."},
		{`{"type": "client_update", "application_type": "web", "client_id": "` + id + `", "client_secret": "` + secret + `", "contacts": {}}`, 400, mgContactsType},
		{`{"type": "client_update", "application_type": "web", "client_id": "` + id + `", "client_secret": "` + secret + `", "contacts": "x"}`, 400, "Email x is not a valid email."},
		{`{"type": "client_update", "application_type": "web", "client_id": "` + id + `", "client_secret": "` + secret + `", "redirect_uris": 1.5}`, 400, mgRedirectsType},
		{`{"type": "client_update", "application_type": "web", "client_id": "` + id + `", "client_secret": "` + secret + `", "redirect_uris": "http://[127.0.0.1]/"}`, 400, "URI http://[127.0.0.1]/ is not a valid URI"},
	}
	for i, c := range cases {
		w := e.postJSON(c.body)
		if w.Code != c.status || w.Body.String() != `{"error": "`+c.msg+`"}` {
			t.Errorf("case %d %s:\n got %d %s\nwant %d %s", i, c.body, w.Code, w.Body.String(), c.status, c.msg)
		}
		checkMGHeaders(t, w)
	}
	// None of the refused updates changed the client.
	if c := e.client(id); c.UpdatedMs != 0 || c.LogoURI != "" || c.Contacts != nil {
		t.Errorf("refused updates changed the client: %+v", c)
	}
}

// TestMGDerivedExamples are the black-box cases of section 1.7 item 5.
func TestMGDerivedExamples(t *testing.T) {
	e := newMGEnv(t, nil)
	checkMGError(t, e.postForm("type=client_update&application_type=web"), 400, mgNeedID)
	checkMGError(t, e.postForm("type=client_update&application_type=web&client_id=x&client_secret=y"), 403, mgUnauthorized)
	checkMGError(t, e.postForm("type=client_associate"), 400, mgUnknownAppType)
	checkMGError(t, e.postJSON(`{"type":"client_associate","application_type":"web","contacts":["a@b"]}`), 400, mgContactsType)
}

// TestMGLogoRendering checks that non-string values print as Python's str().
func TestMGLogoRendering(t *testing.T) {
	e := newMGEnv(t, nil)
	cases := []struct{ value, body string }{
		{`5`, `{"error": "Logo URI 5 is not a valid URI."}`},
		{`-0`, `{"error": "Logo URI 0 is not a valid URI."}`},
		{`12345678901234567890123456789`, `{"error": "Logo URI 12345678901234567890123456789 is not a valid URI."}`},
		{`1.5`, `{"error": "Logo URI 1.5 is not a valid URI."}`},
		{`-0.0`, `{"error": "Logo URI -0.0 is not a valid URI."}`},
		{`1e16`, `{"error": "Logo URI 1e+16 is not a valid URI."}`},
		{`1E5`, `{"error": "Logo URI 100000.0 is not a valid URI."}`},
		{`1e-5`, `{"error": "Logo URI 1e-05 is not a valid URI."}`},
		{`0.0001`, `{"error": "Logo URI 0.0001 is not a valid URI."}`},
		{`1e400`, `{"error": "Logo URI inf is not a valid URI."}`},
		{`-1e400`, `{"error": "Logo URI -inf is not a valid URI."}`},
		{`NaN`, `{"error": "Logo URI nan is not a valid URI."}`},
		{`Infinity`, `{"error": "Logo URI inf is not a valid URI."}`},
		{`-Infinity`, `{"error": "Logo URI -inf is not a valid URI."}`},
		{`true`, `{"error": "Logo URI True is not a valid URI."}`},
		{`false`, `{"error": "Logo URI False is not a valid URI."}`},
		{`[]`, `{"error": "Logo URI [] is not a valid URI."}`},
		{`{}`, `{"error": "Logo URI {} is not a valid URI."}`},
		{`["a", "b"]`, `{"error": "Logo URI ['a', 'b'] is not a valid URI."}`},
		{`[1, [2.5, null], {"k": true}]`, `{"error": "Logo URI [1, [2.5, None], {'k': True}] is not a valid URI."}`},
		{`{"k": 1, "j": [false], "k": 2}`, `{"error": "Logo URI {'k': 2, 'j': [False]} is not a valid URI."}`},
		{`["it's"]`, `{"error": "Logo URI [\"it's\"] is not a valid URI."}`},
		{`["say \"hi\""]`, `{"error": "Logo URI ['say \"hi\"'] is not a valid URI."}`},
		{`["both ' and \""]`, `{"error": "Logo URI ['both \\' and \"'] is not a valid URI."}`},
		{`["back\\slash"]`, `{"error": "Logo URI ['back\\\\slash'] is not a valid URI."}`},
		{`["tab\t nl\n cr\r"]`, `{"error": "Logo URI ['tab\\t nl\\n cr\\r'] is not a valid URI."}`},
		{`["\u0001\u007f"]`, `{"error": "Logo URI ['\\x01\\x7f'] is not a valid URI."}`},
		{`["\u00e9\u00a0\u00ad"]`, `{"error": "Logo URI ['\u00e9\\xa0\\xad'] is not a valid URI."}`},
		{`["\u2028\u3000\u0378"]`, `{"error": "Logo URI ['\\u2028\\u3000\\u0378'] is not a valid URI."}`},
		{`["\ud83d\ude00"]`, `{"error": "Logo URI ['\ud83d\ude00'] is not a valid URI."}`},
		{`["\ud800"]`, `{"error": "Logo URI ['\\ud800'] is not a valid URI."}`},
		{`{"\u00e9": "\ud800"}`, `{"error": "Logo URI {'\u00e9': '\\ud800'} is not a valid URI."}`},
		{`"http://[::1"`, `{"error": "Logo URI http://[::1 is not a valid URI."}`},
		{`"http://\u2100"`, `{"error": "Logo URI http://\u2100 is not a valid URI."}`},
		{`"http://[\ud800"`, `{"error": "Logo URI http://[\ud800 is not a valid URI."}`},
		{`"http://[127.0.0.1]/x.png"`, `{"error": "Logo URI http://[127.0.0.1]/x.png is not a valid URI."}`},
	}
	for _, c := range cases {
		w := e.postJSON(`{"type": "client_associate", "application_type": "web", "logo_uri": ` + c.value + `}`)
		if w.Code != http.StatusBadRequest || w.Body.String() != c.body {
			t.Errorf("logo %s:\n got %d %s\nwant 400 %s", c.value, w.Code, w.Body.String(), c.body)
		}
	}
	// The documented name is accepted; the code's name wins over it.
	checkMGError(t, e.postJSON(`{"type": "client_associate", "application_type": "web", "logo_url": "http://[::1"}`), 400, "Logo URI http://[::1 is not a valid URI.")
	checkMGSuccess(t, e.postJSON(`{"type": "client_associate", "application_type": "web", "logo_uri": "http://ok/", "logo_url": "http://[::1"}`))
	checkMGSuccess(t, e.postJSON(`{"type": "client_associate", "application_type": "web", "logo_uri": null, "logo_url": "http://[::1"}`))
	checkMGError(t, e.postJSON(`{"type": "client_associate", "application_type": "web", "logo_uri": "http://[::1", "logo_url": "http://ok/"}`), 400, "Logo URI http://[::1 is not a valid URI.")
}

// TestMGMessagesEscaping: the values in messages go through json.dumps, so
// non-ASCII is escaped, and form values are decoded like werkzeug's.
func TestMGMessagesEscaping(t *testing.T) {
	e := newMGEnv(t, nil)
	cases := []struct{ ct, body, want string }{
		{"application/json", `{"type": "client_associate", "application_type": "web", "contacts": "caf\u00e9 \ud83d\ude00"}`, `{"error": "Email caf\u00e9 is not a valid email."}`},
		{"application/json", `{"type": "client_associate", "application_type": "web", "contacts": "\ud800x"}`, `{"error": "Email \ud800x is not a valid email."}`},
		{"application/json", `{"type": "client_associate", "application_type": "web", "contacts": "a@b \u007f"}`, `{"error": "Email \u007f is not a valid email."}`},
		{"application/json", `{"type": "client_associate", "application_type": "web", "contacts": "\"q\\"}`, `{"error": "Email \"q\\ is not a valid email."}`},
		{"application/json", `{"type": "client_associate", "application_type": "web", "redirect_uris": "http://\ufe6b"}`, `{"error": "URI http://\ufe6b is not a valid URI"}`},
		{"application/x-www-form-urlencoded", "type=client_associate&application_type=web&contacts=%C3%A9+%E2%82+%ff", `{"error": "Email \u00e9 is not a valid email."}`},
		{"application/x-www-form-urlencoded", "type=client_associate&application_type=web&contacts=a@b+%E2%82", `{"error": "Email \ufffd is not a valid email."}`},
		{"application/x-www-form-urlencoded", "type=client_associate&application_type=web&contacts=%ZZ%4", `{"error": "Email %ZZ%4 is not a valid email."}`},
		{"application/x-www-form-urlencoded", "type=client_associate&application_type=web&redirect_uris=http%3A%2F%2F%5B%3A%3A1", `{"error": "URI http://[::1 is not a valid URI"}`},
	}
	for _, c := range cases {
		w := e.send(http.MethodPost, c.ct, c.body)
		if w.Code != http.StatusBadRequest || w.Body.String() != c.want {
			t.Errorf("%s:\n got %d %s\nwant 400 %s", c.body, w.Code, w.Body.String(), c.want)
		}
	}
}

func TestMGFormDecoding(t *testing.T) {
	for _, c := range []struct {
		body string
		want map[string]string
	}{
		{"", map[string]string{}},
		{"a=1&a=2&b", map[string]string{"a": "1", "b": ""}},
		{"&&a=1&&", map[string]string{"a": "1"}},
		{"a+b=c+d&x=%20%2B%2b", map[string]string{"a b": "c d", "x": " ++"}},
		{"k=a=b", map[string]string{"k": "a=b"}},
		{"=v", map[string]string{"": "v"}},
		{"k=%zz%4%", map[string]string{"k": "%zz%4%"}},
		{"k=%%41", map[string]string{"k": "%A"}},
		{"k=a;b=c", map[string]string{"k": "a;b=c"}},
		{"%6B=%C3%A9", map[string]string{"k": "\u00e9"}},
		{"k=%ff%C3", map[string]string{"k": "\ufffd\ufffd"}},
		{"k=\xe2\x82\xac\xe2\x82", map[string]string{"k": "\u20ac\ufffd"}},
	} {
		d := mgParseForm([]byte(c.body), nil)
		if len(d.keys) != len(c.want) {
			t.Errorf("%q: keys %q, want %v", c.body, d.keys, c.want)
			continue
		}
		for k, v := range c.want {
			if got := d.vals[k]; !got.isStr(v) {
				t.Errorf("%q: %q = %q, want %q", c.body, k, got.s, v)
			}
		}
	}
}

func TestMGDecodeUTF8Replace(t *testing.T) {
	for in, want := range map[string]string{
		"abc":                      "abc",
		"\xff":                     "\ufffd",
		"\xe2\x82":                 "\ufffd",
		"\xe2\x82x":                "\ufffdx",
		"\xf0\x9f\x98":             "\ufffd",
		"\xf0\x9f\x98\x80":         "\U0001F600",
		"\xed\xa0\x80":             "\ufffd\ufffd\ufffd",
		"\xe0\x80\x80":             "\ufffd\ufffd\ufffd",
		"\xc0\xaf":                 "\ufffd\ufffd",
		"\xf4\x90\x80\x80":         "\ufffd\ufffd\ufffd\ufffd",
		"\xf1\x80\x80\xe2\x82\xac": "\ufffd\u20ac",
	} {
		if got := pyDecodeUTF8Replace(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

func TestMGSplit(t *testing.T) {
	// Every character Python's str.split() splits on.
	ws := "\t\n\v\f\r\x1c\x1d\x1e\x1f \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
	for _, r := range ws {
		if got := pySplit("a" + string(r) + string(r) + "b"); len(got) != 2 || got[0] != "a" || got[1] != "b" {
			t.Errorf("U+%04X does not split: %q", r, got)
		}
	}
	// And some it does not.
	for _, r := range "\u180e\u200b\u2060\ufeff\x00\x7f" {
		if got := pySplit("a" + string(r) + "b"); len(got) != 1 {
			t.Errorf("U+%04X splits: %q", r, got)
		}
	}
	for in, want := range map[string][]string{
		"":                   {},
		"   ":                {},
		" a@b  c@d\n":        {"a@b", "c@d"},
		"x\xed\xa0\x80 y":    {"x\xed\xa0\x80", "y"},
		"\u3000a\u00a0b\x1c": {"a", "b"},
	} {
		got := pySplit(in)
		if len(got) != len(want) || strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

func TestMGFloatRepr(t *testing.T) {
	for f, want := range map[float64]string{
		0: "0.0", 1: "1.0", 1.5: "1.5", -2.25: "-2.25", 100000: "100000.0", 1e15: "1000000000000000.0", 1e16: "1e+16",
		9999999999999998: "9999999999999998.0", 1.2345678901234568e+17: "1.2345678901234568e+17", 0.0001: "0.0001", 1e-05: "1e-05",
		0.00012: "0.00012", 1.5e-7: "1.5e-07", 0.30000000000000004: "0.30000000000000004", 1.0 / 3: "0.3333333333333333",
		5e-324: "5e-324", math.MaxFloat64: "1.7976931348623157e+308", 1e100: "1e+100", 123.456: "123.456", 1e22: "1e+22",
	} {
		if got := pyFloatRepr(f); got != want {
			t.Errorf("%v: %s, want %s", f, got, want)
		}
	}
	for f, want := range map[float64]string{math.Copysign(0, -1): "-0.0", math.Inf(1): "inf", math.Inf(-1): "-inf", math.NaN(): "nan"} {
		if got := pyFloatRepr(f); got != want {
			t.Errorf("%v: %s, want %s", f, got, want)
		}
	}
}

// TestMGStr checks str() of decoded values (the rendering of messages and
// of non-string application names).
func TestMGStr(t *testing.T) {
	for in, want := range map[string]string{
		`"plain"`:                             "plain",
		`null`:                                "None",
		`[true, false, null]`:                 "[True, False, None]",
		`-0`:                                  "0",
		`[1e16, 2.50, -0.0]`:                  "[1e+16, 2.5, -0.0]",
		`{"b": 1, "a": {"c": []}, "b": 2}`:    "{'b': 2, 'a': {'c': []}}",
		`["it's", "say \"hi\"", "both ' \""]`: `["it's", 'say "hi"', 'both \' "']`,
		`["\\", "\t\n\r\u0000\u001f\u007f"]`:  `['\\', '\t\n\r\x00\x1f\x7f']`,
		`["\u00e9\u00a0\u00ad\u0378\u2028\u3000\ue000\ufffe"]`: "['\u00e9\\xa0\\xad\\u0378\\u2028\\u3000\\ue000\\ufffe']",
		`["\ud83d\ude00", "\udbff\udfff"]`:                     "['\U0001F600', '\\U0010ffff']",
		`["\ud800", "\udc00\ud800", "\ud800\u0041"]`:           `['\ud800', '\udc00\ud800', '\ud800A']`,
		`[{"k": [{"n": NaN}]}, Infinity, -Infinity]`:           "[{'k': [{'n': nan}]}, inf, -inf]",
		// Containers below the top level are printed from their text.
		" [ { \"b\" : [ ] , \"a\":{}, \"b\" : { \"x\":1,\"x\":[2, \"]\"]} } , [[ ]] ] ": "[{'b': {'x': [2, ']']}, 'a': {}}, [[]]]",
		`{"a": [{"k\u0027": "}{", "k'": 1}], "z": {"": null}}`:                          `{'a': [{"k'": 1}], 'z': {'': None}}`,
		`[["\"]", {"\\": ["}"]}], 1.5, [{}, []]]`:                                       `[['"]', {'\\': ['}']}], 1.5, [{}, []]]`,
	} {
		v, ok := pyJSONLoads([]byte(in))
		if !ok {
			t.Errorf("%s: not decoded", in)
			continue
		}
		if got := v.str(); got != want {
			t.Errorf("%s:\n got %s\nwant %s", in, pyJSONString(got), pyJSONString(want))
		}
	}
}

func TestMGJSONString(t *testing.T) {
	for in, want := range map[string]string{
		"a\"\\/\b\f\n\r\t\x01\x7f":   `"a\"\\/\b\f\n\r\t\u0001\u007f"`,
		"\u00e9\U0001F600":           `"\u00e9\ud83d\ude00"`,
		"x\xed\xa0\x80y\xed\xbf\xbf": `"x\ud800y\udfff"`,
	} {
		if got := string(pyJSONString(in)); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
}

// TestMGAssociate registers the full example of the real server's tests
// and checks what was stored.
func TestMGAssociate(t *testing.T) {
	e := newMGEnv(t, nil)
	w := e.postForm("type=client_associate&application_type=web&application_name=Testificate MD&contacts=someone@someplace.com tuteo@tsengeo.lu&logo_uri=http://ayrel.com/utral.png&redirect_uris=http://navi-kosman.lu http://gmg-yawne-oeru.lu")
	id, secret, exp := checkMGSuccess(t, w)
	if !mgIDPattern.MatchString(id) || !mgSecretPattern.MatchString(secret) || exp != "0" {
		t.Fatalf("credentials %q %q %s", id, secret, exp)
	}
	c := e.client(id)
	if c.API != registry.APIMediaGoblin || c.Owner != "alice" || !c.Permitted || c.ApplicationType != "web" ||
		c.ClientName != "Testificate MD" || c.LogoURI != "http://ayrel.com/utral.png" ||
		strings.Join(c.Contacts, " ") != "someone@someplace.com tuteo@tsengeo.lu" ||
		strings.Join(c.RedirectURIs, " ") != "http://navi-kosman.lu http://gmg-yawne-oeru.lu" ||
		c.TokenEndpointAuthMethod != registry.AuthClientSecretBasic || strings.Join(c.GrantTypes, ",") != "authorization_code" ||
		strings.Join(c.ResponseTypes, ",") != "code" || c.SecretExpiresAt != 0 || c.CreatedMs != e.now.UnixMilli() {
		t.Errorf("stored %+v", c)
	}
	if !registry.Verify(c.SecretHash, secret) || strings.Contains(c.SecretHash, secret) {
		t.Error("secret not stored as its hash")
	}
	if len(e.registered) != 1 || e.registered[0] != id {
		t.Errorf("registered callback: %v", e.registered)
	}
	if n := e.metrics.value("registrations", registry.APIMediaGoblin, "created"); n != 1 {
		t.Errorf("created counter %v", n)
	}
	logs := e.logs.FilterMessage("client registered").All()
	if len(logs) != 1 || logs[0].ContextMap()["client_id"] != id {
		t.Errorf("logs: %v", logs)
	}
	for _, l := range e.logs.All() {
		for _, f := range l.Context {
			if strings.Contains(f.String, secret) {
				t.Errorf("secret logged: %v", l)
			}
		}
	}

	// Names: a scalar is stored as its str(), null as no name; the
	// documented redirect_uri is accepted, redirect_uris wins over it.
	for body, want := range map[string][3]string{
		`{"type": "client_associate", "application_type": "native", "application_name": 1.0}`:                             {"1.0", "", ""},
		`{"type": "client_associate", "application_type": "native", "application_name": true}`:                            {"True", "", ""},
		`{"type": "client_associate", "application_type": "native", "application_name": null, "logo_uri": ""}`:            {"", "", ""},
		`{"type": "client_associate", "application_type": "native", "redirect_uri": "a:b c"}`:                             {"", "a:b c", ""},
		`{"type": "client_associate", "application_type": "native", "redirect_uris": "x", "redirect_uri": "http://[::1"}`: {"", "x", ""},
		`{"type": "client_associate", "application_type": "native", "contacts": "  ", "redirect_uris": null}`:             {"", "", ""},
	} {
		id, _ := e.register(body)
		c := e.client(id)
		if c.ClientName != want[0] || strings.Join(c.RedirectURIs, " ") != want[1] || c.LogoURI != want[2] {
			t.Errorf("%s: stored %+v", body, c)
		}
	}

	// Every registration gets fresh credentials.
	seen := map[string]bool{}
	for range 20 {
		id, secret := e.register(`{"type": "client_associate", "application_type": "native"}`)
		if seen[id] || seen[secret] || !mgIDPattern.MatchString(id) || !mgSecretPattern.MatchString(secret) {
			t.Fatalf("credentials %q %q", id, secret)
		}
		seen[id], seen[secret] = true, true
	}
}

// TestMGUpdate checks the update path and its quirks.
func TestMGUpdate(t *testing.T) {
	e := newMGEnv(t, nil)
	id, secret := e.register(`{"type": "client_associate", "application_type": "native", "application_name": "one",
		"logo_uri": "http://a/logo.png", "contacts": "a@b", "redirect_uris": "http://a/cb"}`)
	e.now = e.now.Add(time.Minute)

	cred := `"client_id": "` + id + `", "client_secret": "` + secret + `"`
	w := e.postJSON(`{"type": "client_update", "application_type": "web", ` + cred + `}`)
	gotID, gotSecret, exp := checkMGSuccess(t, w)
	if gotID != id || gotSecret != secret || exp != "0" {
		t.Fatalf("echo %q %q %s", gotID, gotSecret, exp)
	}
	c := e.client(id)
	// application_type overwritten, application_name reset, the rest kept.
	if c.ApplicationType != "web" || c.ClientName != "" || c.LogoURI != "http://a/logo.png" ||
		strings.Join(c.Contacts, " ") != "a@b" || strings.Join(c.RedirectURIs, " ") != "http://a/cb" ||
		c.UpdatedMs != e.now.UnixMilli() || !registry.Verify(c.SecretHash, secret) {
		t.Errorf("after update: %+v", c)
	}

	// The documented example (without its trailing comma), as a form too.
	w = e.postForm("type=client_update&client_id=" + id + "&client_secret=" + secret +
		"&application_type=native&application_name=MyClient!&logo_url=https://myclient.org/images/my_logo.png" +
		"&contacts=myemail@someprovider.com+another_developer@provider.net&redirect_uri=")
	checkMGSuccess(t, w)
	c = e.client(id)
	if c.ApplicationType != "native" || c.ClientName != "MyClient!" || c.LogoURI != "https://myclient.org/images/my_logo.png" ||
		strings.Join(c.Contacts, " ") != "myemail@someprovider.com another_developer@provider.net" || len(c.RedirectURIs) != 0 {
		t.Errorf("after form update: %+v", c)
	}

	// A null logo clears it; the secret keeps working.
	checkMGSuccess(t, e.postJSON(`{"type": "client_update", "application_type": "web", "logo_uri": null, `+cred+`}`))
	if c = e.client(id); c.LogoURI != "" || c.ClientName != "" {
		t.Errorf("after logo null: %+v", c)
	}
	if n := e.metrics.value("operations", registry.APIMediaGoblin, "update", "2xx"); n != 3 {
		t.Errorf("update counter %v", n)
	}
	checkMGError(t, e.postJSON(`{"type": "client_update", "application_type": "web", "client_id": "`+id+`", "client_secret": "nope"}`), 403, mgUnauthorized)
	if n := e.metrics.value("operations", registry.APIMediaGoblin, "update", "4xx"); n != 1 {
		t.Errorf("refused update counter %v", n)
	}
	if len(e.logs.FilterMessage("client updated").All()) != 3 {
		t.Error("updates not logged")
	}
}

// TestMGUpdateStoredLogo: when the request has no logo, the stored one is
// validated again, as the real view does with client.logo_url.
func TestMGUpdateStoredLogo(t *testing.T) {
	e := newMGEnv(t, nil)
	c := &registry.Client{API: registry.APIMediaGoblin, TokenEndpointAuthMethod: registry.AuthClientSecretBasic, LogoURI: "http://[::1"}
	iss, err := e.reg.Register(context.Background(), c, registry.Issue{Format: registry.FormatMediaGoblin, Secret: true})
	if err != nil {
		t.Fatal(err)
	}
	cred := `"client_id": "` + c.ID + `", "client_secret": "` + iss.Secret + `"`
	checkMGError(t, e.postJSON(`{"type": "client_update", "application_type": "web", `+cred+`}`), 400, "Logo URI http://[::1 is not a valid URI.")
	w := e.postJSON(`{"type": "client_update", "application_type": "web", "logo_uri": "http://ok/", ` + cred + `}`)
	if id, secret, _ := checkMGSuccess(t, w); id != c.ID || secret != iss.Secret {
		t.Errorf("echo %q %q", id, secret)
	}
	if got := e.client(c.ID); got.API != registry.APIMediaGoblin || got.LogoURI != "http://ok/" || got.TokenEndpointAuthMethod != registry.AuthClientSecretBasic {
		t.Errorf("after update: %+v", got)
	}
}

// TestMGUpdateCredentials: only a stored, matching, unexpired secret lets
// an update through.
func TestMGUpdateCredentials(t *testing.T) {
	lifetime := time.Hour
	e := newMGEnv(t, func(o *Options) { o.SecretLifetime = &lifetime })
	id, secret, exp := checkMGSuccess(t, e.postJSON(`{"type": "client_associate", "application_type": "web"}`))
	if want := e.now.Add(time.Hour).Unix(); exp != strconv.FormatInt(want, 10) {
		t.Fatalf("expires_at %s, want %d", exp, want)
	}
	update := `{"type": "client_update", "application_type": "web", "client_id": "` + id + `", "client_secret": "` + secret + `"}`
	if _, _, got := checkMGSuccess(t, e.postJSON(update)); got != exp {
		t.Errorf("update expires_at %s, want %s", got, exp)
	}
	// Good through the second expires_at names, refused after it.
	e.now = e.now.Add(time.Hour)
	if _, _, got := checkMGSuccess(t, e.postJSON(update)); got != exp {
		t.Errorf("update in the expiry second: expires_at %s, want %s", got, exp)
	}
	e.now = e.now.Add(time.Second)
	checkMGError(t, e.postJSON(update), 403, mgUnauthorized)

	// A client without a secret (a public client of another API).
	pub := &registry.Client{API: registry.APIRFC7591, TokenEndpointAuthMethod: registry.AuthNone}
	if _, err := e.reg.Register(context.Background(), pub, registry.Issue{Format: registry.FormatRFC7591}); err != nil {
		t.Fatal(err)
	}
	checkMGError(t, e.postJSON(`{"type": "client_update", "application_type": "web", "client_id": "`+pub.ID+`", "client_secret": ""}`), 403, mgUnauthorized)
}

func TestMGBodyTooLarge(t *testing.T) {
	e := newMGEnv(t, nil)
	big := `{"type": "client_associate", "application_type": "web", "x": "` + strings.Repeat("a", MaxBodyBytes) + `"}`
	for _, ct := range []string{"application/json", "text/plain", mgNoCT} {
		checkMGError(t, e.send(http.MethodPost, ct, big), http.StatusRequestEntityTooLarge, mgTooLarge)
	}
	// Without a Content-Length, the limit applies while reading.
	r := httptest.NewRequest(http.MethodPost, mgPath, strings.NewReader(big))
	r.ContentLength = -1
	r.Header.Set("Content-Type", "application/json")
	checkMGError(t, e.serve(r), http.StatusRequestEntityTooLarge, mgTooLarge)
	// Just under the limit is fine.
	ok := `{"type": "client_associate", "application_type": "web", "x": "`
	ok += strings.Repeat("a", MaxBodyBytes-len(ok)-2) + `"}`
	checkMGSuccess(t, e.postJSON(ok))
}

// mgFailingStore is a store whose client operations fail like an outage
// (or, with a plain error, like a bug).
type mgFailingStore struct {
	storage.Store
	err error
}

func (s mgFailingStore) Create(context.Context, *storage.Record, ...storage.Cap) error  { return s.err }
func (s mgFailingStore) Get(context.Context, string) (*storage.Record, error)           { return nil, s.err }
func (s mgFailingStore) Update(context.Context, *storage.Record, *storage.Record) error { return s.err }

func TestMGStoreUnavailable(t *testing.T) {
	for _, storeErr := range []error{&storage.UnavailableError{Op: "test", Err: errors.New("connection refused")}, errors.New("a bug")} {
		e := newMGEnv(t, nil)
		e.reg.Store = mgFailingStore{Store: e.reg.Store, err: storeErr}
		for _, body := range []string{
			`{"type": "client_associate", "application_type": "web"}`,
			`{"type": "client_update", "application_type": "web", "client_id": "abc", "client_secret": "def"}`,
		} {
			w := e.postJSON(body)
			checkMGError(t, w, http.StatusServiceUnavailable, mgUnavailable)
			if w.Header().Get("Retry-After") != RetryAfterSeconds {
				t.Errorf("Retry-After %q", w.Header().Get("Retry-After"))
			}
		}
		// Requests refused before the store is reached are unaffected.
		checkMGError(t, e.postJSON(`{"type": "client_associate"}`), 400, mgUnknownAppType)
		if n := e.metrics.value("registrations", registry.APIMediaGoblin, "unavailable"); n != 1 {
			t.Errorf("unavailable counter %v", n)
		}
	}
}

// FuzzMGRequest: whatever the body and content type, the answer is one of
// the API's, in its format, and never a panic or a 5xx.
func FuzzMGRequest(f *testing.F) {
	for _, s := range [][2]string{
		{"application/json", `{"type": "client_associate", "application_type": "web", "logo_uri": [1.5, {"a": null}], "contacts": "a@b"}`},
		{"application/json", `{"type": "client_update", "application_type": "native", "client_id": "x", "client_secret": 1}`},
		{"application/json", `["type", "\ud800"]`},
		{"application/json", `{"type": "client_associate", "application_type": "web", "redirect_uris": "http://[v1.x] http://[\ud800"}`},
		{"application/x-www-form-urlencoded", "type=client_associate&application_type=web&contacts=%E2%82&logo_uri=%5B"},
		{"", "type=x"},
		{"text/plain", "x"},
	} {
		f.Add(s[0], s[1])
	}
	e := newMGEnv(f, nil)
	f.Fuzz(func(t *testing.T, ct, body string) {
		e.t = t
		r := httptest.NewRequest(http.MethodPost, mgPath, strings.NewReader(body))
		r.Header.Set("Content-Type", ct)
		w := httptest.NewRecorder()
		e.api.Serve(w, r)
		switch w.Code {
		case 200:
			checkMGSuccess(t, w)
		case 400, 403:
			if !strings.HasPrefix(w.Body.String(), `{"error": "`) || !strings.HasSuffix(w.Body.String(), `"}`) {
				t.Fatalf("answer %s", w.Body.String())
			}
		default:
			t.Fatalf("status %d %s", w.Code, w.Body.String())
		}
	})
}

// TestPyReplaceSurrogates: contacts and redirect URIs keep their text,
// with U+FFFD for each lone surrogate (held in its 3-byte form).
func TestPyReplaceSurrogates(t *testing.T) {
	in := []string{"a\xed\xa0\x80b\xed\xbf\xbf", "ok", "\U0001F600"}
	got := pyReplaceSurrogates(in)
	if want := []string{"a\uFFFDb\uFFFD", "ok", "\U0001F600"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if plain := []string{"x"}; &pyReplaceSurrogates(plain)[0] != &plain[0] {
		t.Error("a list without surrogates was copied")
	}
}
