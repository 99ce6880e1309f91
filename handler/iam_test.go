package handler

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
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

// iamNow is the issue time of the reference's example response, so the
// example's timestamps come out exactly.
var iamNow = time.Unix(1677175760, 250_000_000)

var iamUUIDPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

type iamEnv struct {
	t          testing.TB
	api        *IAM
	reg        *registry.Registry
	logs       *observer.ObservedLogs
	metrics    *Metrics
	registered []string
}

// newIAMEnv serves the API on a real embedded store in a temporary
// directory; configure adjusts the options before use.
func newIAMEnv(t testing.TB, configure func(o *Options)) *iamEnv {
	t.Helper()
	st := storage.NewEmbeddedStore(&certmagic.FileStorage{Path: t.TempDir()}, "cr")
	reg := registry.New(st)
	reg.Now = func() time.Time { return iamNow }
	core, logs := observer.New(zapcore.DebugLevel)
	e := &iamEnv{t: t, reg: reg, logs: logs, metrics: NewMetrics()}
	o := &Options{
		Registry:   reg,
		Logger:     zap.New(core),
		User:       func(*http.Request) string { return "alice" },
		Registered: func(_ *http.Request, id string) { e.registered = append(e.registered, id) },
		Health:     new(Health),
		Metrics:    e.metrics,
	}
	if configure != nil {
		configure(o)
	}
	e.api = NewIAM(o)
	return e
}

// serve sends a request to the API and fails unless the API answers it.
func (e *iamEnv) serve(r *http.Request) *httptest.ResponseRecorder {
	e.t.Helper()
	w := httptest.NewRecorder()
	if !e.api.Serve(w, r) {
		e.t.Fatalf("%s %s: not served", r.Method, r.URL.Path)
	}
	return w
}

func (e *iamEnv) post(contentType, body string) *httptest.ResponseRecorder {
	e.t.Helper()
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080/v1/clients", strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return e.serve(r)
}

// iamField is one member of a request body, raw JSON.
type iamField struct{ key, raw string }

// iamExample is the request of the reference (seed 004), member order kept.
var iamExample = []iamField{
	{"client_name", `"exampleClient"`},
	{"client_type", `"public"`},
	{"token_endpoint_auth_method", `"client_secret_post"`},
	{"scopes", `["openid"]`},
	{"grant_types", `["authorization_code","urn:ietf:params:oauth:grant-type:device_code"]`},
	{"response_types", `["code"]`},
}

// iamBody builds a body from the example with changes: "key=raw" replaces
// (or appends) a member, "-key" drops it.
func iamBody(changes ...string) string {
	fields := append([]iamField(nil), iamExample...)
	for _, ch := range changes {
		if key, ok := strings.CutPrefix(ch, "-"); ok {
			for i, f := range fields {
				if f.key == key {
					fields = append(fields[:i], fields[i+1:]...)
					break
				}
			}
			continue
		}
		key, raw, _ := strings.Cut(ch, "=")
		found := false
		for i, f := range fields {
			if f.key == key {
				fields[i].raw, found = raw, true
			}
		}
		if !found {
			fields = append(fields, iamField{key, raw})
		}
	}
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = fmt.Sprintf("%q:%s", f.key, f.raw)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// checkIAMError checks status, headers and the exact error body, whose
// request_id must be a UUID v4 equal to the X-Request-Id header.
func checkIAMError(t *testing.T, w *httptest.ResponseRecorder, status int, code, msg string) {
	t.Helper()
	if w.Code != status {
		t.Errorf("status %d, want %d; body %s", w.Code, status, w.Body)
	}
	h := w.Header()
	rid := h.Get("X-Request-Id")
	if !iamUUIDPattern.MatchString(rid) {
		t.Errorf("X-Request-Id %q is not a lowercase UUID v4", rid)
	}
	for k, v := range map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache"} {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	want := fmt.Sprintf(`{"error_code":%q,"error_msg":%q,"request_id":%q}`, code, msg, rid)
	if got := w.Body.String(); got != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
}

func TestIAMValidation(t *testing.T) {
	const ct = "application/json"
	long := strings.Repeat("a", 1025)
	grantsMsg := "must be authorization_code or urn:ietf:params:oauth:grant-type:device_code"
	scopeMsg := "is not a valid scope token (RFC 6749 section 3.3)"
	cases := []struct {
		name, contentType, body, problem string
	}{
		// Media type, checked first.
		{"no content type", "", iamBody(), "the request body must be JSON (Content-Type: application/json)"},
		{"text/plain", "text/plain", iamBody(), "the request body must be JSON (Content-Type: application/json)"},
		{"form", "application/x-www-form-urlencoded", "client_name=x", "the request body must be JSON (Content-Type: application/json)"},
		{"json suffix type", "application/jsonx", iamBody(), "the request body must be JSON (Content-Type: application/json)"},
		{"malformed content type", "application/json; charset", iamBody(), "the request body must be JSON (Content-Type: application/json)"},
		{"content type before JSON", "text/plain", "{", "the request body must be JSON (Content-Type: application/json)"},

		// The body as a whole.
		{"empty", ct, "", "the request body is empty; send a JSON object"},
		{"whitespace", ct, " \r\n\t", "the request body is empty; send a JSON object"},
		{"null", ct, "null", "the request body must be a JSON object"},
		{"array", ct, "[" + iamBody() + "]", "the request body must be a JSON object"},
		{"string", ct, `"x"`, "the request body must be a JSON object"},
		{"number", ct, "5", "the request body must be a JSON object"},
		{"true", ct, "true", "the request body must be a JSON object"},
		{"not JSON", ct, "client_name=x", "the request body must be a JSON object"},
		{"truncated", ct, iamBody()[:40], "the request body is not valid JSON"},
		{"missing value", ct, `{"client_name":}`, "the request body is not valid JSON"},
		{"trailing comma", ct, `{"client_name":"x",}`, "the request body is not valid JSON"},
		{"two objects", ct, iamBody() + "{}", "the request body is not valid JSON"},
		{"trailing garbage", ct, iamBody() + "x", "the request body is not valid JSON"},
		{"single quotes", ct, `{'client_name':'x'}`, "the request body is not valid JSON"},
		{"lone surrogate in a member read", ct, iamBody(`client_name="a\ud800"`), "the request body escapes a lone surrogate, which is no Unicode character"},
		{"empty object", ct, "{}", "client_name is required"},
		{"Unicode space", ct, "\u00a0" + iamBody(), "the request body must be a JSON object"},
		{"deeply nested member", ct, strings.TrimSuffix(iamBody(), "}") + `,"x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "}", "the request body nests arrays and objects too deeply"},
		{"deep and broken before", ct, `{"client_name":x,"y":` + strings.Repeat("[", 20000), "the request body is not valid JSON"},

		// A repeated member: the last one counts (as in encoding/json and
		// JavaScript's JSON.parse), also when its name is spelled with escapes.
		{"repeated member, last invalid", ct, strings.TrimSuffix(iamBody(), "}") + `,"client_name":""}`, "client_name must be 1 to 1024 characters long"},
		{"repeated member, escaped name", ct, strings.TrimSuffix(iamBody(), "}") + `,"client\u005ftype":"PUBLIC"}`, "client_type must be public"},
		{"repeated member, last null", ct, strings.TrimSuffix(iamBody(), "}") + `,"grant_types":null}`, "grant_types is required"},

		// client_name.
		{"client_name missing", ct, iamBody("-client_name"), "client_name is required"},
		{"client_name null", ct, iamBody("client_name=null"), "client_name is required"},
		{"client_name number", ct, iamBody("client_name=5"), "client_name must be a string"},
		{"client_name bool", ct, iamBody("client_name=true"), "client_name must be a string"},
		{"client_name array", ct, iamBody(`client_name=["x"]`), "client_name must be a string"},
		{"client_name object", ct, iamBody(`client_name={}`), "client_name must be a string"},
		{"client_name empty", ct, iamBody(`client_name=""`), "client_name must be 1 to 1024 characters long"},
		{"client_name escape sequence", ct, iamBody(`client_name="a\u001b[31m"`), "client_name must not contain control characters, line separators or bidirectional overrides"},
		{"client_name 1025", ct, iamBody(`client_name="` + long + `"`), "client_name must be 1 to 1024 characters long"},
		{"client_name 1025 non-ASCII", ct, iamBody(`client_name="` + strings.Repeat("é", 1025) + `"`), "client_name must be 1 to 1024 characters long"},

		// client_type.
		{"client_type missing", ct, iamBody("-client_type"), "client_type is required"},
		{"client_type null", ct, iamBody("client_type=null"), "client_type is required"},
		{"client_type number", ct, iamBody("client_type=1"), "client_type must be a string"},
		{"client_type array", ct, iamBody(`client_type=["public"]`), "client_type must be a string"},
		{"client_type upper case", ct, iamBody(`client_type="PUBLIC"`), "client_type must be public"},
		{"client_type confidential", ct, iamBody(`client_type="confidential"`), "client_type must be public"},
		{"client_type empty", ct, iamBody(`client_type=""`), "client_type must be public"},
		{"client_type padded", ct, iamBody(`client_type=" public"`), "client_type must be public"},

		// token_endpoint_auth_method.
		{"method missing", ct, iamBody("-token_endpoint_auth_method"), "token_endpoint_auth_method is required"},
		{"method null", ct, iamBody("token_endpoint_auth_method=null"), "token_endpoint_auth_method is required"},
		{"method number", ct, iamBody("token_endpoint_auth_method=0"), "token_endpoint_auth_method must be a string"},
		{"method basic", ct, iamBody(`token_endpoint_auth_method="client_secret_basic"`), "token_endpoint_auth_method must be client_secret_post"},
		{"method none", ct, iamBody(`token_endpoint_auth_method="none"`), "token_endpoint_auth_method must be client_secret_post"},
		{"method upper case", ct, iamBody(`token_endpoint_auth_method="CLIENT_SECRET_POST"`), "token_endpoint_auth_method must be client_secret_post"},

		// scopes.
		{"scopes string", ct, iamBody(`scopes="openid"`), "scopes must be an array of strings"},
		{"scopes object", ct, iamBody(`scopes={}`), "scopes must be an array of strings"},
		{"scopes number item", ct, iamBody(`scopes=["openid",1]`), "scopes must be an array of strings"},
		{"scopes null item", ct, iamBody(`scopes=[null]`), "scopes must be an array of strings"},
		{"scopes nested array", ct, iamBody(`scopes=[["openid"]]`), "scopes must be an array of strings"},
		{"scope empty", ct, iamBody(`scopes=[""]`), "scopes[0] " + scopeMsg},
		{"scope with space", ct, iamBody(`scopes=["openid profile"]`), "scopes[0] " + scopeMsg},
		{"scope with quote", ct, iamBody(`scopes=["openid","a\"b"]`), "scopes[1] " + scopeMsg},
		{"scope with backslash", ct, iamBody(`scopes=["a\\b"]`), "scopes[0] " + scopeMsg},
		{"scope non-ASCII", ct, iamBody(`scopes=["openid","email","é"]`), "scopes[2] " + scopeMsg},
		{"scope control character", ct, iamBody(`scopes=["a\tb"]`), "scopes[0] " + scopeMsg},
		{"scopes too long in all", ct, iamBody(`scopes=["` + strings.Repeat("a", 2048) + `","` + strings.Repeat("b", 2048) + `"]`), "scopes may be at most 4096 characters long in all, separated by spaces"},

		// grant_types.
		{"grant_types missing", ct, iamBody("-grant_types"), "grant_types is required"},
		{"grant_types null", ct, iamBody("grant_types=null"), "grant_types is required"},
		{"grant_types empty", ct, iamBody("grant_types=[]"), "grant_types must not be empty"},
		{"grant_types string", ct, iamBody(`grant_types="authorization_code"`), "grant_types must be an array of strings"},
		{"grant_types number item", ct, iamBody(`grant_types=[1]`), "grant_types must be an array of strings"},
		{"grant type implicit", ct, iamBody(`grant_types=["implicit"]`), "grant_types[0] " + grantsMsg},
		{"grant type refresh_token", ct, iamBody(`grant_types=["authorization_code","refresh_token"]`), "grant_types[1] " + grantsMsg},
		{"grant type case", ct, iamBody(`grant_types=["Authorization_Code"]`), "grant_types[0] " + grantsMsg},
		{"grant type empty string", ct, iamBody(`grant_types=[""]`), "grant_types[0] " + grantsMsg},

		// response_types.
		{"response_types missing", ct, iamBody("-response_types"), "response_types is required"},
		{"response_types null", ct, iamBody("response_types=null"), "response_types is required"},
		{"response_types empty", ct, iamBody("response_types=[]"), "response_types must not be empty"},
		{"response_types string", ct, iamBody(`response_types="code"`), "response_types must be an array of strings"},
		{"response_types bool item", ct, iamBody(`response_types=[true]`), "response_types must be an array of strings"},
		{"response type token", ct, iamBody(`response_types=["token"]`), "response_types[0] must be code"},
		{"response type combined", ct, iamBody(`response_types=["code","code id_token"]`), "response_types[1] must be code"},
		{"response type case", ct, iamBody(`response_types=["CODE"]`), "response_types[0] must be code"},

		// With several problems, the first member in the table's order wins.
		{"order name before type", ct, iamBody("-client_name", `client_type="x"`, "grant_types=[]"), "client_name is required"},
		{"order type before method", ct, iamBody(`token_endpoint_auth_method="none"`, `client_type="x"`), "client_type must be public"},
		{"order method before scopes", ct, iamBody(`scopes=[1]`, `token_endpoint_auth_method="none"`), "token_endpoint_auth_method must be client_secret_post"},
		{"order scopes before grants", ct, iamBody(`grant_types=[]`, `scopes=[""]`), "scopes[0] " + scopeMsg},
		{"order grants before responses", ct, iamBody(`response_types=[]`, `grant_types=["x"]`), "grant_types[0] " + grantsMsg},
		{"order member position irrelevant", ct, `{"response_types":[],"client_name":""}`, "client_name must be 1 to 1024 characters long"},
	}
	e := newIAMEnv(t, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := e.post(tc.contentType, tc.body)
			checkIAMError(t, w, http.StatusBadRequest, "IIC.400", "Bad Request: "+tc.problem+".")
		})
	}
	clients, err := e.reg.List(context.Background(), registry.TagClients)
	if err != nil || len(clients) != 0 {
		t.Errorf("rejected requests stored clients: %d, %v", len(clients), err)
	}
	if got := e.metrics.value("registrations", registry.APIIAM, "rejected"); got != float64(len(cases)) {
		t.Errorf("rejected counter %v, want %d", got, len(cases))
	}
}

func TestIAMBodyTooLarge(t *testing.T) {
	e := newIAMEnv(t, nil)
	const msg = "Bad Request: request body is larger than 65536 bytes."
	// A valid request padded with whitespace to exactly the limit passes.
	body := iamBody()
	exact := body + strings.Repeat(" ", MaxBodyBytes-len(body))
	if w := e.post("application/json", exact); w.Code != http.StatusOK {
		t.Fatalf("body of exactly %d bytes: %d %s", MaxBodyBytes, w.Code, w.Body)
	}
	// One byte more fails, whether or not the length is announced, with 400
	// like every other invalid request (spec section 0), not 413.
	over := exact + " "
	checkIAMError(t, e.post("application/json", over), http.StatusBadRequest, "IIC.400", msg)
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080/v1/clients", strings.NewReader(over))
	r.Header.Set("Content-Type", "application/json")
	r.ContentLength = -1 // chunked: only reading finds out
	checkIAMError(t, e.serve(r), http.StatusBadRequest, "IIC.400", msg)
	// The media type is checked before the size.
	checkIAMError(t, e.post("text/plain", over), http.StatusBadRequest, "IIC.400",
		"Bad Request: the request body must be JSON (Content-Type: application/json).")
}

// A compressed body is refused with a message that says so, not parsed as
// garbage JSON (nor, with an unknown coding, stored as if it were plain).
func TestIAMContentEncoding(t *testing.T) {
	e := newIAMEnv(t, nil)
	for _, ce := range []string{"gzip", "bogus", strings.Repeat("x", 40)} {
		r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080/v1/clients", strings.NewReader(iamBody()))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Content-Encoding", ce)
		want := ce
		if len(want) > 32 {
			want = want[:32] + "..."
		}
		checkIAMError(t, e.serve(r), http.StatusBadRequest, "IIC.400",
			"Bad Request: Content-Encoding "+want+" is not supported; send the body uncompressed.")
	}
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080/v1/clients", strings.NewReader(iamBody()))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Content-Encoding", "Identity")
	if w := e.serve(r); w.Code != http.StatusOK {
		t.Fatalf("Content-Encoding identity: %d %s", w.Code, w.Body)
	}
}

func TestIAMMethodNotAllowed(t *testing.T) {
	e := newIAMEnv(t, nil)
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions, "PROPFIND"} {
		t.Run(m, func(t *testing.T) {
			w := e.serve(httptest.NewRequest(m, "http://127.0.0.1:8080/v1/clients", strings.NewReader(iamBody())))
			checkIAMError(t, w, http.StatusMethodNotAllowed, "IIC.405", "Method Not Allowed: use POST.")
			if got := w.Header().Get("Allow"); got != "POST" {
				t.Errorf("Allow %q", got)
			}
		})
	}
}

func TestIAMOtherPathsFallThrough(t *testing.T) {
	check := func(t *testing.T, e *iamEnv, paths ...string) {
		t.Helper()
		for _, p := range paths {
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080"+p, strings.NewReader(iamBody()))
			r.Header.Set("Content-Type", "application/json")
			if e.api.Serve(w, r) {
				t.Errorf("%s was served", p)
			}
			if len(w.Header()) != 0 || w.Body.Len() != 0 {
				t.Errorf("%s: wrote %v %q", p, w.Header(), w.Body)
			}
		}
	}
	check(t, newIAMEnv(t, nil), "/", "/v1", "/v1/client", "/v1/clients/", "/v1/clients/x", "/v1/clientsx", "/V1/clients", "/register", "/x/v1/clients")
	withPrefix := newIAMEnv(t, func(o *Options) { o.Prefix = "/iam" })
	check(t, withPrefix, "/v1/clients", "/iamx/v1/clients", "/iam", "/iam/v1/clients/")
}

var iamSuccess = regexp.MustCompile(`^\{"client_info":\{"authorization_endpoint":"([^"]*)","client_id":"([A-Za-z0-9_-]{22})","client_id_issued_at":(\d+),"client_secret":"([A-Za-z0-9_-]{43})","client_secret_expires_at":(\d+),"token_endpoint":"([^"]*)"(,"scopes":\[.*\])?\}\}$`)

// iamIssued is a parsed success response.
type iamIssued struct {
	authz, id, issued, secret, expires, token, scopes string
}

func checkIAMSuccess(t *testing.T, w *httptest.ResponseRecorder) iamIssued {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	h := w.Header()
	for k, v := range map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache"} {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if rid := h.Get("X-Request-Id"); !iamUUIDPattern.MatchString(rid) {
		t.Errorf("X-Request-Id %q", rid)
	}
	m := iamSuccess.FindStringSubmatch(w.Body.String())
	if m == nil {
		t.Fatalf("unexpected success body %s", w.Body)
	}
	return iamIssued{m[1], m[2], m[3], m[4], m[5], m[6], strings.TrimPrefix(m[7], `,"scopes":`)}
}

func TestIAMRegisterExample(t *testing.T) {
	e := newIAMEnv(t, nil)
	w := e.post("application/json", iamBody())
	got := checkIAMSuccess(t, w)
	// The reference's example timestamps: issued 1677175760, expires 90 days later.
	want := `{"client_info":{"authorization_endpoint":"http://127.0.0.1:8080/v1/authorize","client_id":"` + got.id +
		`","client_id_issued_at":1677175760,"client_secret":"` + got.secret +
		`","client_secret_expires_at":1684951760,"token_endpoint":"http://127.0.0.1:8080/v1/tokens","scopes":["openid"]}}`
	if w.Body.String() != want {
		t.Errorf("body\n got %s\nwant %s", w.Body, want)
	}

	c, err := e.reg.Get(context.Background(), got.id)
	if err != nil {
		t.Fatal(err)
	}
	if c.API != registry.APIIAM || c.Owner != "alice" || !c.Permitted || c.ClientName != "exampleClient" ||
		c.TokenEndpointAuthMethod != "client_secret_post" || c.Scope != "openid" ||
		strings.Join(c.GrantTypes, " ") != "authorization_code urn:ietf:params:oauth:grant-type:device_code" ||
		strings.Join(c.ResponseTypes, " ") != "code" || c.SecretExpiresAt != 1684951760 || c.RATHash != "" {
		t.Errorf("stored client %+v", c)
	}
	if !registry.Verify(c.SecretHash, got.secret) || strings.Contains(c.SecretHash, got.secret) {
		t.Error("the stored secret hash does not match the issued secret")
	}
	if len(e.registered) != 1 || e.registered[0] != got.id {
		t.Errorf("Registered callback: %v", e.registered)
	}

	// Logged once, with the id and never the secret.
	logs := e.logs.FilterMessage("client registered").All()
	if len(logs) != 1 || logs[0].Level != zapcore.InfoLevel || logs[0].ContextMap()["client_id"] != got.id {
		t.Fatalf("log entries %+v", logs)
	}
	for _, entry := range e.logs.All() {
		if strings.Contains(fmt.Sprint(entry.ContextMap()), got.secret) {
			t.Errorf("secret logged: %+v", entry)
		}
	}
	if n := e.metrics.value("registrations", registry.APIIAM, "created"); n != 1 {
		t.Errorf("created counter %v", n)
	}
}

func TestIAMRegisterVariants(t *testing.T) {
	e := newIAMEnv(t, nil)
	ctx := context.Background()
	cases := []struct {
		name, contentType, body string
		scopes                  string // echoed scopes member, "" when absent
		stored                  string // stored scope
		grants, responses       string // stored, space-separated
	}{
		{"scopes omitted", "application/json", iamBody("-scopes"), "", "", "authorization_code urn:ietf:params:oauth:grant-type:device_code", "code"},
		{"scopes null", "application/json", iamBody("scopes=null"), "", "", "authorization_code urn:ietf:params:oauth:grant-type:device_code", "code"},
		{"scopes empty", "application/json", iamBody("scopes=[]"), `[]`, "", "authorization_code urn:ietf:params:oauth:grant-type:device_code", "code"},
		{"scopes echoed as sent, stored once each", "application/json", iamBody(`scopes=["openid","profile","openid","email","profile"]`), `["openid","profile","openid","email","profile"]`, "openid profile email", "authorization_code urn:ietf:params:oauth:grant-type:device_code", "code"},
		{"scope token characters", "application/json", iamBody(`scopes=["!#[]~","https://api.example/read"]`), `["!#[]~","https://api.example/read"]`, "!#[]~ https://api.example/read", "authorization_code urn:ietf:params:oauth:grant-type:device_code", "code"},
		{"device code only", "application/json", iamBody(`grant_types=["urn:ietf:params:oauth:grant-type:device_code"]`), `["openid"]`, "openid", "urn:ietf:params:oauth:grant-type:device_code", "code"},
		{"types deduplicated", "application/json", iamBody(`grant_types=["authorization_code","authorization_code"]`, `response_types=["code","code"]`), `["openid"]`, "openid", "authorization_code", "code"},
		{"charset parameter", "application/json; charset=utf-8", iamBody(), `["openid"]`, "openid", "authorization_code urn:ietf:params:oauth:grant-type:device_code", "code"},
		{"byte order mark", "application/json", "\ufeff" + iamBody(), `["openid"]`, "openid", "authorization_code urn:ietf:params:oauth:grant-type:device_code", "code"},
		{"media type case", "Application/JSON", iamBody(), `["openid"]`, "openid", "authorization_code urn:ietf:params:oauth:grant-type:device_code", "code"},
		{"unknown members ignored", "application/json", iamBody(`redirect_uris=["https://x.example/cb"]`, `client_secret="mine"`, `client_id="mine"`, `extra={"a":[1,null,{"b":true}]}`, `scope="admin"`), `["openid"]`, "openid", "authorization_code urn:ietf:params:oauth:grant-type:device_code", "code"},
		{"lone surrogates in members not read", "application/json", iamBody(`extra="\ud800"`, `x={"\udc00":["\ud800"]}`, `redirect_uris=["https://x.example/\ud800"]`, `scopes=["openid"]`), `["openid"]`, "openid", "authorization_code urn:ietf:params:oauth:grant-type:device_code", "code"},
		{"repeated member, last valid", "application/json", `{"client_name":"","grant_types":"x",` + iamBody()[1:], `["openid"]`, "openid", "authorization_code urn:ietf:params:oauth:grant-type:device_code", "code"},
		{"reordered members", "application/json", `{"response_types":["code"],"grant_types":["authorization_code"],"token_endpoint_auth_method":"client_secret_post","client_type":"public","client_name":"exampleClient"}`, "", "", "authorization_code", "code"},
		{"pretty printed", "application/json", "\n{ \"client_name\" : \"exampleClient\", \"client_type\" : \"public\", \"token_endpoint_auth_method\" : \"client_secret_post\", \"scopes\" : [ \"openid\" ], \"grant_types\" : [ \"authorization_code\", \"urn:ietf:params:oauth:grant-type:device_code\"], \"response_types\" : [ \"code\" ] }\n", `["openid"]`, "openid", "authorization_code urn:ietf:params:oauth:grant-type:device_code", "code"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := checkIAMSuccess(t, e.post(tc.contentType, tc.body))
			if got.scopes != tc.scopes {
				t.Errorf("scopes %q, want %q", got.scopes, tc.scopes)
			}
			c, err := e.reg.Get(ctx, got.id)
			if err != nil {
				t.Fatal(err)
			}
			if c.Scope != tc.stored || strings.Join(c.GrantTypes, " ") != tc.grants || strings.Join(c.ResponseTypes, " ") != tc.responses {
				t.Errorf("stored scope %q grants %v responses %v", c.Scope, c.GrantTypes, c.ResponseTypes)
			}
			if got.secret == "mine" || got.id == "mine" || len(c.RedirectURIs) != 0 {
				t.Errorf("client-chosen credentials or unknown members were used: %+v", c)
			}
		})
	}
}

func TestIAMClientNameLength(t *testing.T) {
	e := newIAMEnv(t, nil)
	for _, name := range []string{"x", strings.Repeat("a", 1024), strings.Repeat("é", 1024), strings.Repeat("😀", 1024), "名前 with \"quotes\" and \\"} {
		raw := fmt.Sprintf("%q", name)
		got := checkIAMSuccess(t, e.post("application/json", iamBody("client_name="+raw)))
		c, err := e.reg.Get(context.Background(), got.id)
		if err != nil || c.ClientName != name {
			t.Errorf("stored name %q, want %q (%v)", c.ClientName, name, err)
		}
	}
}

func TestIAMConfiguredEndpoints(t *testing.T) {
	oneHour, zero := time.Hour, time.Duration(0)
	cases := []struct {
		name         string
		configure    func(o *Options)
		url          string
		authz, token string
		lifetime     int64 // expires - issued; -1: expires is 0 (never)
	}{
		{"defaults", nil, "http://127.0.0.1:8080/v1/clients",
			"http://127.0.0.1:8080/v1/authorize", "http://127.0.0.1:8080/v1/tokens", 7776000},
		{"tls request", nil, "https://idp.example/v1/clients",
			"https://idp.example/v1/authorize", "https://idp.example/v1/tokens", 7776000},
		{"prefix", func(o *Options) { o.Prefix = "/iam" }, "http://127.0.0.1:8080/iam/v1/clients",
			"http://127.0.0.1:8080/iam/v1/authorize", "http://127.0.0.1:8080/iam/v1/tokens", 7776000},
		{"issuer", func(o *Options) { o.Issuer = "https://oidc.example:443/" }, "http://127.0.0.1:8080/v1/clients",
			"https://oidc.example:443/v1/authorize", "https://oidc.example:443/v1/tokens", 7776000},
		{"explicit endpoints", func(o *Options) {
			o.AuthorizationEndpoint, o.TokenEndpoint = "https://idp.example/v1/authorize", "https://idp.example/v1/tokens"
		}, "http://127.0.0.1:8080/v1/clients", "https://idp.example/v1/authorize", "https://idp.example/v1/tokens", 7776000},
		{"placeholders", func(o *Options) {
			o.AuthorizationEndpoint = "https://{host}/authz"
			o.Expand = func(r *http.Request, s string) string { return strings.ReplaceAll(s, "{host}", r.Host) }
		}, "http://127.0.0.1:8080/v1/clients", "https://127.0.0.1:8080/authz", "http://127.0.0.1:8080/v1/tokens", 7776000},
		{"secret lifetime", func(o *Options) { o.SecretLifetime = &oneHour }, "http://127.0.0.1:8080/v1/clients",
			"http://127.0.0.1:8080/v1/authorize", "http://127.0.0.1:8080/v1/tokens", 3600},
		{"secret never expires", func(o *Options) { o.SecretLifetime = &zero }, "http://127.0.0.1:8080/v1/clients",
			"http://127.0.0.1:8080/v1/authorize", "http://127.0.0.1:8080/v1/tokens", -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newIAMEnv(t, tc.configure)
			r := httptest.NewRequest(http.MethodPost, tc.url, strings.NewReader(iamBody()))
			r.Header.Set("Content-Type", "application/json")
			got := checkIAMSuccess(t, e.serve(r))
			if got.authz != tc.authz || got.token != tc.token {
				t.Errorf("endpoints %s %s, want %s %s", got.authz, got.token, tc.authz, tc.token)
			}
			if got.issued != "1677175760" {
				t.Errorf("client_id_issued_at %s", got.issued)
			}
			var issued, expires int64
			fmt.Sscan(got.issued, &issued)
			fmt.Sscan(got.expires, &expires)
			if tc.lifetime < 0 {
				if expires != 0 {
					t.Errorf("client_secret_expires_at %d, want 0", expires)
				}
			} else if expires-issued != tc.lifetime {
				t.Errorf("expires - issued = %d, want %d", expires-issued, tc.lifetime)
			}
		})
	}
}

func TestIAMFreshCredentials(t *testing.T) {
	e := newIAMEnv(t, nil)
	ids, secrets, rids := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for i := 0; i < 5; i++ {
		w := e.post("application/json", iamBody())
		got := checkIAMSuccess(t, w)
		if ids[got.id] || secrets[got.secret] || rids[w.Header().Get("X-Request-Id")] {
			t.Fatalf("repeated id, secret or request id: %+v", got)
		}
		ids[got.id], secrets[got.secret], rids[w.Header().Get("X-Request-Id")] = true, true, true
	}
	clients, err := e.reg.List(context.Background(), registry.TagClients)
	if err != nil || len(clients) != 5 {
		t.Errorf("stored %d clients (%v), want 5", len(clients), err)
	}
}

// iamFailingStore fails every Create with err.
type iamFailingStore struct {
	storage.Store
	err error
}

func (s iamFailingStore) Create(context.Context, *storage.Record, ...storage.Cap) error { return s.err }

func TestIAMStoreUnavailable(t *testing.T) {
	e := newIAMEnv(t, nil)
	e.reg.Store = iamFailingStore{Store: e.reg.Store, err: &storage.UnavailableError{Op: "create", Err: errors.New("connection refused")}}
	for i := 0; i < 2; i++ {
		w := e.post("application/json", iamBody())
		checkIAMError(t, w, http.StatusServiceUnavailable, "IIC.503", "Service Unavailable: the client store is unavailable, retry later.")
		if got := w.Header().Get("Retry-After"); got != RetryAfterSeconds {
			t.Errorf("Retry-After %q", got)
		}
	}
	if n := e.metrics.value("registrations", registry.APIIAM, "unavailable"); n != 2 {
		t.Errorf("unavailable counter %v", n)
	}
	if n := e.metrics.value("storage_errors", registry.APIIAM); n != 2 {
		t.Errorf("storage error counter %v", n)
	}
	// The outage is logged once, not per request.
	if n := e.logs.FilterLevelExact(zapcore.ErrorLevel).Len(); n != 1 {
		t.Errorf("%d error log entries, want 1", n)
	}
	// Validation still answers 400 during an outage: it needs no store.
	checkIAMError(t, e.post("application/json", "{}"), http.StatusBadRequest, "IIC.400", "Bad Request: client_name is required.")
}

func TestIAMStoreBug(t *testing.T) {
	e := newIAMEnv(t, nil)
	e.reg.Store = iamFailingStore{Store: e.reg.Store, err: errors.New("not an outage")}
	checkIAMError(t, e.post("application/json", iamBody()), http.StatusInternalServerError, "IIC.500",
		"Internal Server Error: the client could not be registered.")
	if n := e.logs.FilterMessage("unexpected error").Len(); n != 1 {
		t.Errorf("%d unexpected-error log entries", n)
	}
}

func TestIAMRequestID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := iamRequestID()
		if !iamUUIDPattern.MatchString(id) || seen[id] {
			t.Fatalf("request id %q (repeated: %v)", id, seen[id])
		}
		seen[id] = true
	}
}

// FuzzIAMRequest checks that no body makes the parser panic, that every
// problem is a sentence fragment the caller can end with one period, and
// that whatever is accepted satisfies the reference's constraints.
func FuzzIAMRequest(f *testing.F) {
	for _, s := range []string{"", "{}", "null", "[", iamBody(), iamBody("scopes=[]"), iamBody(`scopes=["a","a"]`),
		iamBody(`client_name="` + strings.Repeat("é", 1024) + `"`), `{"client_name":"\ud800"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, problem := parseIAMRequest(body)
		if problem != "" {
			if req != nil || strings.HasSuffix(problem, ".") {
				t.Fatalf("problem %q with request %v", problem, req)
			}
			return
		}
		n := len([]rune(req.name))
		if n < 1 || n > 1024 || len(req.grants) == 0 || len(req.responses) == 0 {
			t.Fatalf("accepted %+v", req)
		}
		for _, s := range req.scopes {
			if !iamScopeToken(s) {
				t.Fatalf("accepted scope %q", s)
			}
		}
	})
}

// TestIAMScopesAtTheLimit: the limit applies to the scope as stored, each
// scope once, joined by spaces: 4096 characters pass however many repeats
// were sent (and echoed).
func TestIAMScopesAtTheLimit(t *testing.T) {
	e := newIAMEnv(t, nil)
	a, b := strings.Repeat("a", 2047), strings.Repeat("b", 2048)
	got := checkIAMSuccess(t, e.post("application/json", iamBody(`scopes=["`+a+`","`+b+`","`+a+`","`+a+`"]`)))
	if got.scopes != `["`+a+`","`+b+`","`+a+`","`+a+`"]` {
		t.Errorf("echoed %.60s...", got.scopes)
	}
	c, err := e.reg.Get(context.Background(), got.id)
	if err != nil || c.Scope != a+" "+b {
		t.Fatalf("stored %d characters (%v)", len(c.Scope), err)
	}
}

// TestIAMDefaultScope: an empty scopes list gets default_scope, and the
// answer lists that rather than the empty list it was sent; with no scopes
// member, none is echoed (the answer echoes scopes only when sent).
func TestIAMDefaultScope(t *testing.T) {
	e := newIAMEnv(t, func(o *Options) { o.Policy.DefaultScope = "openid profile" })
	cases := []struct{ name, body, scopes string }{
		{"empty list", iamBody("scopes=[]"), `["openid","profile"]`},
		{"omitted", iamBody("-scopes"), ""},
		{"sent", iamBody(`scopes=["email"]`), `["email"]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := checkIAMSuccess(t, e.post("application/json", tc.body))
			if got.scopes != tc.scopes {
				t.Errorf("scopes %q, want %q", got.scopes, tc.scopes)
			}
			c, err := e.reg.Get(context.Background(), got.id)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.Trim(strings.ReplaceAll(strings.ReplaceAll(tc.scopes, `"`, ""), ",", " "), "[]"); want != "" && c.Scope != want {
				t.Errorf("stored scope %q, want %q", c.Scope, want)
			}
		})
	}
}
