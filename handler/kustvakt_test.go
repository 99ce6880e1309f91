package handler

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/internal/jsonw"
	"github.com/caddy-dcr/caddy-dcr/registry"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

func TestJavaZonedDateTime(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	utc, _ := time.LoadLocation("UTC")
	kolkata, _ := time.LoadLocation("Asia/Kolkata")
	cases := []struct {
		t    time.Time
		loc  *time.Location
		want string
	}{
		{time.Date(2022, 5, 4, 11, 4, 34, 415000000, time.UTC), berlin, "2022-05-04T13:04:34.415+02:00[Europe/Berlin]"},
		{time.Date(2026, 11, 26, 7, 0, 0, 123000000, time.UTC), utc, "2026-11-26T07:00:00.123Z[UTC]"},
		{time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC), utc, "2026-11-26T07:00Z[UTC]"},
		{time.Date(2026, 11, 26, 7, 0, 5, 0, time.UTC), utc, "2026-11-26T07:00:05Z[UTC]"},
		{time.Date(2026, 11, 26, 7, 0, 5, 120000, time.UTC), utc, "2026-11-26T07:00:05.000120Z[UTC]"},
		{time.Date(2026, 11, 26, 7, 0, 5, 7, time.UTC), utc, "2026-11-26T07:00:05.000000007Z[UTC]"},
		{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), kolkata, "2026-01-02T08:34:05+05:30[Asia/Kolkata]"},
	}
	for _, c := range cases {
		if got := JavaZonedDateTime(c.t, c.loc); got != c.want {
			t.Errorf("got %s want %s", got, c.want)
		}
	}
}

func TestCompareJava(t *testing.T) {
	// U+FF21 (one UTF-16 unit) sorts after U+1F600 (a surrogate pair) in
	// Java, the other way round in UTF-8 byte order.
	if compareJava("\U0001F600", "\uFF21") >= 0 {
		t.Fatal("surrogates sort before U+FF21 in Java")
	}
	if compareJava("B", "a") >= 0 || compareJava("a", "ab") >= 0 || compareJava("x", "x") != 0 {
		t.Fatal("basic order")
	}
}

func TestBindKustvaktJSON(t *testing.T) {
	in, msg := bindKustvaktJSON([]byte(`{"name":12,"type":1,"description":false,"refresh_token_expiry":"100","source":null}`))
	if msg != "" || *in.name != "12" || *in.clientType != "PUBLIC" || *in.description != "false" || in.refreshTokenExpiry != 100 || in.source != nil {
		t.Fatalf("%+v %s", in, msg)
	}
	// A lone surrogate, which Jackson accepts, is kept as U+FFFD.
	in, msg = bindKustvaktJSON([]byte(`{"name":"a\ud800b","description":"\udc00"}`))
	if msg != "" || *in.name != "a\ufffdb" || *in.description != "\ufffd" {
		t.Fatalf("lone surrogates: %+v %s", in, msg)
	}
	in, msg = bindKustvaktJSON([]byte(`{"refresh_token_expiry":1.9}`))
	if msg != "" || in.refreshTokenExpiry != 1 {
		t.Fatalf("truncation: %+v %s", in, msg)
	}
	for _, bad := range []string{`{"refresh_token_expiry":true}`, `{"refresh_token_expiry":3000000000}`, `{"type":2}`, `{"type":""}`, `{"x":1}`, `{"name":{}}`, `{`, `null`,
		// Jackson parses a string for an int with Long.parseLong.
		`{"refresh_token_expiry":"1.5"}`, `{"refresh_token_expiry":"1e3"}`, `{"refresh_token_expiry":"3000000000"}`,
		// An enum name is matched case-sensitively (trimmed, as an index is).
		`{"type":" public"}`, `{"type":"public"}`, `{"type":"PUB LIC"}`, "{\"type\":\"PUBLIC\u00a0\"}", `{"type":"2"}`, `{"type":"  "}`, `{"type":"-1"}`, `{"type":1.0}`,
		// Jackson 2.17 and later (databind#4403): a leading zero is no index.
		`{"type":"01"}`, `{"type":"00"}`, `{"type":"001"}`, `{"type":"+1"}`, `{"type":"1x"}`,
		// A repeated key is bound once per occurrence: a bad first one fails.
		`{"name":{},"name":"abc"}`,
		// Jackson refuses bytes that are not UTF-8, and Unicode spaces around the object.
		"{\"name\":\"ab\xff\"}", "\u00a0{}",
		// Jackson (2.15+) refuses nesting deeper than 1000, the object counted.
		`{"source":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}`,
	} {
		if _, msg := bindKustvaktJSON([]byte(bad)); msg == "" {
			t.Errorf("%s accepted", bad)
		}
	}
	for _, c := range []struct {
		body, typ string
		expiry    int64
		name      string
	}{
		{`{"type":"1"}`, "PUBLIC", 0, ""},
		{`{"type":" 0 "}`, "CONFIDENTIAL", 0, ""},
		// Jackson 2.12 and later look a name up trimmed (String.trim).
		{`{"type":" PUBLIC "}`, "PUBLIC", 0, ""},
		{`{"type":"CONFIDENTIAL\n\t"}`, "CONFIDENTIAL", 0, ""},
		{`{"type":"PUBLIC","refresh_token_expiry":" 42 "}`, "PUBLIC", 42, ""},
		{`{"type":"PUBLIC","refresh_token_expiry":"null"}`, "PUBLIC", 0, ""},
		{`{"type":"PUBLIC","refresh_token_expiry":"  "}`, "PUBLIC", 0, ""},
		{`{"type":"PUBLIC","refresh_token_expiry":"+7"}`, "PUBLIC", 7, ""},
		{`{"type":"PUBLIC","refresh_token_expiry":1e3}`, "PUBLIC", 1000, ""},
		// The last of repeated keys wins.
		{`{"type":"PUBLIC","name":"one","name":"two","type":"CONFIDENTIAL"}`, "CONFIDENTIAL", 0, "two"},
		// A byte order mark and JSON white space around the object.
		{"\ufeff \r\n\t{\"type\":\"PUBLIC\"}\n", "PUBLIC", 0, ""},
		// 1000 levels, the object counted, are fine; brackets in strings do not count.
		{`{"type":"PUBLIC","source":` + strings.Repeat("[", 999) + strings.Repeat("]", 999) + `}`, "PUBLIC", 0, ""},
		{`{"type":"PUBLIC","name":"` + strings.Repeat("[", 2000) + `"}`, "PUBLIC", 0, strings.Repeat("[", 2000)},
		// Jackson leaves what follows the object unread.
		{`{"type":"PUBLIC"} x`, "PUBLIC", 0, ""},
		{"{\"type\":\"PUBLIC\"}}\xff", "PUBLIC", 0, ""},
	} {
		in, msg := bindKustvaktJSON([]byte(c.body))
		if msg != "" || in.clientType == nil || *in.clientType != c.typ || in.refreshTokenExpiry != c.expiry || (c.name != "" && *in.name != c.name) {
			t.Errorf("%s: %+v %s", c.body, in, msg)
		}
	}
	// A later null source undoes an earlier one.
	if in, msg := bindKustvaktJSON([]byte(`{"source":{"a":1},"source":null}`)); msg != "" || in.source != nil {
		t.Errorf("source: %+v %s", in, msg)
	}
	// Jackson reports the first problem in document order.
	if _, msg := bindKustvaktJSON([]byte(`{"zzz":1,"name":{}}`)); !strings.Contains(msg, `"zzz"`) {
		t.Errorf("first problem: %s", msg)
	}
}

// ---- a Kustvakt API on a real embedded store ---------------------------------

type kvEnv struct {
	t   testing.TB
	api *Kustvakt
	reg *registry.Registry
}

// kvUserHeader carries the test's user, as {http.auth.user.id} would.
const kvUserHeader = "X-Test-User"

func newKVEnv(t testing.TB, configure func(o *Options, k *KustvaktOptions)) *kvEnv {
	t.Helper()
	st := storage.NewEmbeddedStore(&certmagic.FileStorage{Path: t.TempDir()}, "cr")
	e := &kvEnv{t: t, reg: registry.New(st)}
	o := &Options{
		Registry: e.reg,
		Logger:   zap.NewNop(),
		Prefix:   "/api",
		User:     func(r *http.Request) string { return r.Header.Get(kvUserHeader) },
		Health:   new(Health),
		Metrics:  NewMetrics(),
	}
	k := KustvaktOptions{
		SuperClients: []SuperClient{{ClientID: "superclient", SecretHash: registry.Hash("s3cret")}, {ClientID: "publicsuper"}},
		AdminUsers:   []string{"root"},
	}
	if configure != nil {
		configure(o, &k)
	}
	e.api = NewKustvakt(o, k)
	return e
}

// do sends a request; ct "" sends no Content-Type, user "" no user.
func (e *kvEnv) do(method, path, ct, body, user string) *httptest.ResponseRecorder {
	e.t.Helper()
	r := httptest.NewRequest(method, "http://kv.example"+path, strings.NewReader(body))
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	if user != "" {
		r.Header.Set(kvUserHeader, user)
	}
	w := httptest.NewRecorder()
	if !e.api.Serve(w, r) {
		w.Code = -1 // passed on
	}
	return w
}

const (
	kvJSON = "application/json"
	kvForm = "application/x-www-form-urlencoded"
)

// register creates a client as user and returns its id and secret.
func (e *kvEnv) register(user, body string) (id, secret string) {
	e.t.Helper()
	w := e.do("POST", "/api/v1.0/oauth2/client/register", kvJSON, body, user)
	var m map[string]string
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &m) != nil {
		e.t.Fatalf("register %s: %d %s", body, w.Code, w.Body)
	}
	return m["client_id"], m["client_secret"]
}

// kvWant is an expected answer: an OAuth2 error (code and description), a
// notification (its JSON without the newline), or a body.
type kvWant struct {
	status      int
	code, desc  string
	notif, body string
}

func checkKV(t testing.TB, w *httptest.ResponseRecorder, want kvWant) {
	t.Helper()
	body := w.Body.String()
	h := w.Header()
	switch {
	case want.code != "":
		exp := `{"error_description":` + string(jsonw.AppendString(nil, want.desc, jsonw.JSONSmart)) + `,"error":"` + want.code + `"}`
		if w.Code != want.status || body != exp {
			t.Fatalf("got %d %s\nwant %d %s", w.Code, body, want.status, exp)
		}
		if h.Get("Cache-Control") != "no-store" || h.Get("Pragma") != "no-store" {
			t.Fatalf("headers %v", h)
		}
		if ch := strings.Join(h.Values("WWW-Authenticate"), " | "); (want.status == 401) != (ch == `Basic realm="Kustvakt"`) {
			t.Fatalf("challenge %q", ch)
		}
	case want.notif != "":
		if w.Code != want.status || body != want.notif+"\n" {
			t.Fatalf("got %d %q\nwant %d %q", w.Code, body, want.status, want.notif+"\n")
		}
		if ch := strings.Join(h.Values("WWW-Authenticate"), " | "); (want.status == 401) != (ch == `Basic realm="Kustvakt" | Bearer realm="Kustvakt"`) {
			t.Fatalf("challenges %q", ch)
		}
	default:
		if w.Code != want.status || body != want.body {
			t.Fatalf("got %d %q\nwant %d %q", w.Code, body, want.status, want.body)
		}
	}
	if w.Code > 0 && body != "" && h.Get("Content-Type") != kustvaktJSON {
		t.Fatalf("content type %q", h.Get("Content-Type"))
	}
}

// TestKustvaktRequests: routes, check order and the format of each answer,
// for odd and hostile requests.
func TestKustvaktRequests(t *testing.T) {
	e := newKVEnv(t, nil)
	id, _ := e.register("alice", `{"name":"abc","type":"CONFIDENTIAL","description":"d"}`)
	const sc = "super_client_id=superclient&super_client_secret=s3cret"
	huge := strings.Repeat("a", MaxBodyBytes+1)
	unauthorizedGuest := kvWant{status: 401, notif: `{"errors":[[2010,"Unauthorized operation for user: guest","guest"]]}`}
	cases := []struct {
		name, method, path, ct, body, user string
		want                               kvWant
	}{
		// Jersey matches a path with one trailing slash too.
		{"register with slash", "POST", "/api/v1.0/oauth2/client/register/", kvJSON, `{"type":"PUBLIC"}`, "alice",
			kvWant{status: 400, code: "invalid_request", desc: "client_name is null"}},
		{"deregister without id", "DELETE", "/api/v1.0/oauth2/client/deregister/", "", "", "alice",
			kvWant{status: 405, notif: `{"errors":[[109,"Method DELETE is not allowed; use POST",null]]}`}},
		{"empty client id", "POST", "/api/v1.0/oauth2/client/", kvForm, sc, "alice", kvWant{status: -1}},
		{"deeper path", "POST", "/api/v1.0/oauth2/client/register/x", kvJSON, `{}`, "alice", kvWant{status: -1}},
		{"other version", "POST", "/api/v2.0/oauth2/client/register", kvJSON, `{}`, "alice", kvWant{status: -1}},
		// The user is checked before the form is read, as Jersey's filters run
		// before it binds @FormParam.
		{"guest, huge list form", "POST", "/api/v1.0/oauth2/client/list", kvForm, huge, "", unauthorizedGuest},
		{"guest, huge reset form", "POST", "/api/oauth2/client/reset", "", huge, "", unauthorizedGuest},
		{"guest, huge plugin form", "POST", "/api/v1.0/plugins/install", kvForm, huge, "", unauthorizedGuest},
		// ... but after the media type (JAX-RS picks the method first).
		{"guest, JSON list", "POST", "/api/v1.0/oauth2/client/list", kvJSON, `{}`, "",
			kvWant{status: 415, notif: `{"errors":[[108,"Unsupported Content-Type \"application/json\"; send application/x-www-form-urlencoded",null]]}`}},
		{"guest, form register", "POST", "/api/v1.0/oauth2/client/register", kvForm, `name=abc`, "",
			kvWant{status: 415, notif: `{"errors":[[108,"Unsupported Content-Type; send application/json",null]]}`}},
		{"bad media type", "POST", "/api/v1.0/oauth2/client/" + id, "application/x-www-form-urlencoded; =", sc, "alice",
			kvWant{status: 415, notif: `{"errors":[[108,"Unsupported Content-Type \"application/x-www-form-urlencoded; =\"; send application/x-www-form-urlencoded",null]]}`}},
		{"huge info form", "POST", "/api/v1.0/oauth2/client/" + id, kvForm, huge, "alice",
			kvWant{status: 413, notif: `{"errors":[[107,"Request body is larger than 65536 bytes",null]]}`}},
		// Registration bodies.
		{"byte order mark", "POST", "/api/v1.0/oauth2/client/register", kvJSON, "\ufeff" + `{"name":"abc","type":"PUBLIC","description":"d","url":5}`, "alice",
			kvWant{status: 400, code: "invalid_request", desc: "Invalid URL"}},
		{"not UTF-8", "POST", "/api/v1.0/oauth2/client/register", kvJSON, "{\"name\":\"ab\xff\",\"type\":\"PUBLIC\",\"description\":\"d\"}", "alice",
			kvWant{status: 400, notif: `{"errors":[[201,"Malformed JSON: the request body is not valid UTF-8",null]]}`}},
		{"first problem wins", "POST", "/api/v1.0/oauth2/client/register", kvJSON, `{"zzz":1,"name":{}}`, "alice",
			kvWant{status: 400, notif: `{"errors":[[201,"Unrecognized field \"zzz\": known fields are name, type, description, url, redirect_uri, refresh_token_expiry, source",null]]}`}},
		{"type by index string", "POST", "/api/v1.0/oauth2/client/register", kvJSON, `{"name":"abc","type":"1","description":"d","refresh_token_expiry":"5"}`, "alice",
			kvWant{status: 400, code: "invalid_request", desc: "Custom refresh token expiry is only applicable for confidential clients"}},
		{"fractional string expiry", "POST", "/api/v1.0/oauth2/client/register", kvJSON, `{"name":"abc","type":"CONFIDENTIAL","description":"d","refresh_token_expiry":"1.5"}`, "alice",
			kvWant{status: 400, notif: `{"errors":[[201,"Field \"refresh_token_expiry\" must be an integer number of seconds",null]]}`}},
		{"json-smart escaping", "POST", "/api/v1.0/oauth2/client/%E2%80%A8%22%2F%C2%80", kvForm, sc, "",
			kvWant{status: 401, code: "invalid_client", desc: "Unknown client: \u2028\"/\u0080"}},
		// Names are measured in UTF-16 units, as Java's String.length().
		{"two accented letters", "POST", "/api/v1.0/oauth2/client/register", kvJSON, `{"name":"éé","type":"PUBLIC","description":"d"}`, "alice",
			kvWant{status: 400, code: "invalid_request", desc: "client_name must contain at least 3 characters"}},
		{"bidi override in the name", "POST", "/api/v1.0/oauth2/client/register", kvJSON, `{"name":"\u202eelgooG","type":"PUBLIC","description":"d"}`, "alice",
			kvWant{status: 400, code: "invalid_request", desc: "client_name must not contain control characters, line separators or bidirectional overrides"}},
		{"bidi override in the description", "POST", "/api/v1.0/oauth2/client/register", kvJSON, `{"name":"abc","type":"PUBLIC","description":"evil\u202eexe.txt"}`, "alice",
			kvWant{status: 400, code: "invalid_request", desc: "description must not contain control characters other than tabs and line breaks, nor line separators or bidirectional overrides"}},
		{"NUL in the description", "POST", "/api/v1.0/oauth2/client/register", kvJSON, `{"name":"abc","type":"PUBLIC","description":"a\u0000b"}`, "alice",
			kvWant{status: 400, code: "invalid_request", desc: "description must not contain control characters other than tabs and line breaks, nor line separators or bidirectional overrides"}},
		// That check is ours: Kustvakt's own come first, in its order.
		{"bidi override, no type", "POST", "/api/v1.0/oauth2/client/register", kvJSON, `{"name":"abc\u202e","description":"d"}`, "alice",
			kvWant{status: 400, code: "invalid_request", desc: "client_type is null"}},
		{"tab in the name, bad url", "POST", "/api/v1.0/oauth2/client/register", kvJSON, `{"name":"a\tbc","type":"PUBLIC","description":"d","url":"x"}`, "alice",
			kvWant{status: 400, code: "invalid_request", desc: "Invalid URL"}},
		{"surrogate pair and a letter", "POST", "/api/v1.0/oauth2/client/register", kvJSON, `{"name":"\ud83d\ude00x","type":"PUBLIC","description":"d","url":"x"}`, "alice",
			kvWant{status: 400, code: "invalid_request", desc: "Invalid URL"}},
		// Super client authentication: a declared super client without a
		// secret (which the config refuses) is not let in as one.
		{"super without a secret", "POST", "/api/v1.0/plugins/installed", kvForm, "super_client_id=publicsuper&super_client_secret=x", "alice",
			kvWant{status: 401, code: "unauthorized_client", desc: "Only super client is allowed to use this service"}},
		{"repeated parameter", "POST", "/api/v1.0/plugins/installed", kvForm, sc + "&super_client_secret=wrong", "alice", kvWant{status: 200, body: "[]"}},
		{"malformed pair skipped", "POST", "/api/v1.0/plugins/installed", kvForm, "super_client_id=%zz&" + sc, "alice", kvWant{status: 200, body: "[]"}},
		{"uninstall without client", "POST", "/api/v1.0/plugins/uninstall", kvForm, sc + "&client_id=", "alice",
			kvWant{status: 400, notif: `{"errors":[[107,"client_id is empty","client_id"]]}`}},
		// Kustvakt's OAuth2 handler answers an exception whose entity is an
		// OAuth2 error code in that format, and the entity of "not your
		// client" is the user's name.
		{"not the owner", "DELETE", "/api/v1.0/oauth2/client/deregister/" + id, "", "", "bob",
			kvWant{status: 401, notif: `{"errors":[[2010,"Unauthorized operation for user: bob","bob"]]}`}},
		{"not the owner, named invalid_request", "DELETE", "/api/v1.0/oauth2/client/deregister/" + id, "", "", "invalid_request",
			kvWant{status: 400, code: "invalid_request", desc: "Unauthorized operation for user: invalid_request"}},
		{"not the owner, named invalid_client", "POST", "/api/v1.0/oauth2/client/reset", kvForm, "client_id=" + id, "invalid_client",
			kvWant{status: 401, code: "invalid_client", desc: "Unauthorized operation for user: invalid_client"}},
		{"not the owner, named insufficient_scope", "POST", "/api/oauth2/client/reset", kvForm, "client_id=" + id, "insufficient_scope",
			kvWant{status: 403, code: "insufficient_scope", desc: "Unauthorized operation for user: insufficient_scope"}},
		{"not the owner, named server_error", "DELETE", "/api/oauth2/client/deregister/" + id, "", "", "server_error",
			kvWant{status: 401, notif: `{"errors":[[2010,"Unauthorized operation for user: server_error","server_error"]]}`}},
		{"privilege for a guest", "POST", "/api/v1.0/admin/oauth2/client/privilege", kvForm, "client_id=" + id + "&super=true", "",
			unauthorizedGuest},
		{"privilege without client", "POST", "/api/v1.0/admin/oauth2/client/privilege", kvForm, "super=true", "root",
			kvWant{status: 400, notif: `{"errors":[[107,"client_id is null","client_id"]]}`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkKV(t, e.do(c.method, c.path, c.ct, c.body, c.user), c.want)
		})
	}
	// Tabs and line breaks are a description's own.
	if w := e.do("POST", "/api/v1.0/oauth2/client/register", kvJSON, `{"name":"abc","type":"PUBLIC","description":"one\r\ntwo\tthree\n"}`, "alice"); w.Code != 200 {
		t.Errorf("lines and tabs in the description: %d %s", w.Code, w.Body)
	}
}

// kvFailingStore fails every operation with err.
type kvFailingStore struct {
	storage.Store
	err error
}

func (s kvFailingStore) Create(context.Context, *storage.Record, ...storage.Cap) error  { return s.err }
func (s kvFailingStore) Get(context.Context, string) (*storage.Record, error)           { return nil, s.err }
func (s kvFailingStore) Update(context.Context, *storage.Record, *storage.Record) error { return s.err }
func (s kvFailingStore) Delete(context.Context, *storage.Record) error                  { return s.err }
func (s kvFailingStore) List(context.Context, string) ([]*storage.Record, error)        { return nil, s.err }

// TestKustvaktStoreFailure: an outage, or any other store error, is a 503
// notification with Retry-After on every route, never a 500.
// TestKustvaktDemoUser: a user named like Kustvakt's demo user ("guest",
// in any case, User.UserFactory.isDemo) is nobody, as there: refused by
// the BlockingFilter's routes, and never the owner of a client that
// anonymous callers of client info would then see in full.
func TestKustvaktDemoUser(t *testing.T) {
	e := newKVEnv(t, nil)
	unauthorizedGuest := kvWant{status: 401, notif: `{"errors":[[2010,"Unauthorized operation for user: guest","guest"]]}`}
	for _, user := range []string{"guest", "Guest", "GUEST"} {
		checkKV(t, e.do("POST", "/api/v1.0/oauth2/client/register", kvJSON, `{"name":"abc","type":"PUBLIC","description":"d"}`, user), unauthorizedGuest)
		checkKV(t, e.do("POST", "/api/v1.0/oauth2/client/list", kvForm, "super_client_id=superclient&super_client_secret=s3cret", user), unauthorizedGuest)
	}
	// A client whose owner is "guest" (registered through another API by
	// a user of that name) is described in the reduced view, to anyone
	// but an admin.
	c := &registry.Client{API: registry.APIRFC7591, Owner: "guest", ClientName: "g", TokenEndpointAuthMethod: "none",
		RedirectURIs: []string{"https://g.example.com/cb"}, GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}}
	iss, err := e.reg.Register(context.Background(), c, registry.Issue{Format: registry.FormatRFC7591})
	if err != nil {
		t.Fatal(err)
	}
	info := "/api/v1.0/oauth2/client/" + iss.Client.ID
	const sc = "super_client_id=superclient&super_client_secret=s3cret"
	for _, user := range []string{"", "guest", "Guest"} {
		w := e.do("POST", info, kvForm, sc, user)
		if w.Code != 200 || strings.Contains(w.Body.String(), "registered_by") || strings.Contains(w.Body.String(), "client_redirect_uri") {
			t.Errorf("info as %q: %d %s, want the reduced view", user, w.Code, w.Body)
		}
	}
	if w := e.do("POST", info, kvForm, sc, "root"); w.Code != 200 || !strings.Contains(w.Body.String(), `"registered_by":"guest"`) {
		t.Errorf("info as an admin: %d %s, want the full view", w.Code, w.Body)
	}
}

func TestKustvaktStoreFailure(t *testing.T) {
	for _, storeErr := range []error{&storage.UnavailableError{Op: "test", Err: errors.New("connection refused")}, errors.New("a bug")} {
		var m *Metrics
		e := newKVEnv(t, func(o *Options, _ *KustvaktOptions) { m = o.Metrics })
		e.reg.Store = kvFailingStore{Store: e.reg.Store, err: storeErr}
		const sc = "super_client_id=superclient&super_client_secret=s3cret"
		for _, r := range [][4]string{
			{"POST", "/api/v1.0/oauth2/client/register", kvJSON, `{"name":"abc","type":"CONFIDENTIAL","description":"d"}`},
			{"POST", "/api/v1.0/oauth2/client/MfJMHP77FrM4pbN46rtHdM", kvForm, sc},
			{"POST", "/api/v1.0/oauth2/client/MfJMHP77FrM4pbN46rtHdM", kvForm, "super_client_id=stored"},
			{"DELETE", "/api/v1.0/oauth2/client/deregister/MfJMHP77FrM4pbN46rtHdM", "", ""},
			{"POST", "/api/v1.0/oauth2/client/reset", kvForm, "client_id=MfJMHP77FrM4pbN46rtHdM"},
			{"POST", "/api/v1.0/oauth2/client/list", kvForm, sc},
			{"POST", "/api/v1.0/plugins", kvForm, sc},
			{"POST", "/api/v1.0/plugins/install", kvForm, sc + "&client_id=MfJMHP77FrM4pbN46rtHdM"},
			{"POST", "/api/v1.0/plugins/installed", kvForm, sc},
			{"POST", "/api/v1.0/plugins/uninstall", kvForm, sc + "&client_id=MfJMHP77FrM4pbN46rtHdM"},
			{"POST", "/api/v1.0/admin/oauth2/client/privilege", kvForm, "client_id=MfJMHP77FrM4pbN46rtHdM&super=true"},
		} {
			w := e.do(r[0], r[1], r[2], r[3], "root")
			checkKV(t, w, kvWant{status: 503, notif: `{"errors":[[116,"Service temporarily unavailable; try again later",null]]}`})
			if w.Header().Get("Retry-After") != RetryAfterSeconds {
				t.Errorf("%s %s: Retry-After %q", r[0], r[1], w.Header().Get("Retry-After"))
			}
		}
		// Each of these answers is counted, as a 5xx.
		if got := m.value("registrations", registry.APIKustvakt, "unavailable"); got != 1 {
			t.Errorf("registrations unavailable: %v", got)
		}
		for op, n := range map[string]float64{"info": 2, "deregister": 1, "reset": 1, "list": 1, "plugins": 1, "install": 1, "installed": 1, "uninstall": 1, "privilege": 1} {
			if got := m.value("operations", registry.APIKustvakt, op, "5xx"); got != n {
				t.Errorf("%s 5xx: %v, want %v", op, got, n)
			}
		}
	}
}

// TestKustvaktNoServerError: whatever the route, method, media type, body
// and user, the answer is never a 5xx and always in one of the two formats.
func TestKustvaktNoServerError(t *testing.T) {
	e := newKVEnv(t, nil)
	id, _ := e.register("alice", `{"name":"abc","type":"CONFIDENTIAL","description":"d"}`)
	paths := []string{"oauth2/client/register", "oauth2/client/" + id, "oauth2/client/deregister/" + id, "oauth2/client/reset",
		"oauth2/client/list", "plugins", "plugins/install", "plugins/installed", "plugins/uninstall", "admin/oauth2/client/privilege"}
	bodies := []string{"", "{", "null", "[]", `"x"`, "\x00\xff", "a=%zz&b", "client_id=" + id + "&super_client_id=superclient&super_client_secret=s3cret&super=true&permitted=true",
		`{"name":"abc","type":"CONFIDENTIAL","description":"d","source":{"a":[1,{}]},"url":"http://[::1]:0/#"}`, `{"name":"abc","type":"PUBLIC","description":"d","redirect_uri":"http://xn--/"}`,
		`{"name":"abc","type":0,"description":"d","url":"http://` + strings.Repeat("a.", 130) + `de"}`}
	for _, p := range paths {
		for _, m := range []string{"POST", "DELETE", "GET", "PUT"} {
			for _, ct := range []string{"", kvJSON, kvForm, "text/plain", "multipart/form-data; boundary=x", ";;"} {
				for _, b := range bodies {
					for _, u := range []string{"", "alice", "root"} {
						w := e.do(m, "/api/v1.0/"+p, ct, b, u)
						if w.Code >= 500 || w.Code == -1 {
							t.Fatalf("%s %s %q %q %q: %d %s", m, p, ct, b, u, w.Code, w.Body)
						}
						body := w.Body.String()
						if w.Code != 200 && !strings.HasPrefix(body, `{"error_description":`) && !(strings.HasPrefix(body, `{"errors":[[`) && strings.HasSuffix(body, "]]}\n")) {
							t.Fatalf("%s %s %q %q %q: %d %s", m, p, ct, b, u, w.Code, body)
						}
					}
				}
			}
		}
	}
}

func TestParseJerseyForm(t *testing.T) {
	got := parseJerseyForm("super_client_id=superclient0;x&a=1+2&&a=%41&a&bad=%zz&=e&flag&flag=1&k%3Dy=v%26w", nil)
	// "flag" first without '=' is null in Jersey, whatever follows; a
	// later null of "a" changes nothing; "=e" is dropped.
	want := url.Values{"super_client_id": {"superclient0;x"}, "a": {"1 2", "A"}, "k=y": {"v&w"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// The services' form keeps only what they read.
	got = parseJerseyForm("a=1&client_id=x&super=true&client_id=y&super_client_secret", kustvaktFormKey)
	want = url.Values{"client_id": {"x", "y"}, "super": {"true"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestBindKustvaktJSONDepth: Jackson stops at the 1001st level of nesting
// whatever follows, also where encoding/json would stop later for its own
// limit (10,000) or a syntax error; a syntax error before that level is
// what it reports.
func TestBindKustvaktJSONDepth(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`{"source":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}`, jacksonDepthError},
		{`{"source":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, jacksonDepthError},
		{`{"source":` + strings.Repeat("[", 1000) + `x`, jacksonDepthError},
		{`{"source":x,"a":` + strings.Repeat("[", 20000), "Malformed JSON"},
		{`{"source":"` + strings.Repeat("[", 20000) + `",}`, "Malformed JSON"},
	} {
		if _, msg := bindKustvaktJSON([]byte(c.body)); !strings.HasPrefix(msg, c.want) {
			t.Errorf("%.40s...: %q, want %q", c.body, msg, c.want)
		}
	}
}

// damagingStore reads the records named in damaged as garbage, as a store
// whose copy of them was overwritten would.
type damagingStore struct {
	storage.Store
	damaged map[string]bool
}

func (s *damagingStore) Get(ctx context.Context, id string) (*storage.Record, error) {
	rec, err := s.Store.Get(ctx, id)
	if err == nil && s.damaged[id] {
		damaged := *rec
		damaged.Data = []byte("garbage")
		return &damaged, nil
	}
	return rec, err
}

func (s *damagingStore) List(ctx context.Context, tag string) ([]*storage.Record, error) {
	recs, err := s.Store.List(ctx, tag)
	for i, rec := range recs {
		if s.damaged[rec.ID] {
			damaged := *rec
			damaged.Data = []byte("garbage")
			recs[i] = &damaged
		}
	}
	return recs, err
}

// TestKustvaktInstalledSkipsDamaged: plugins/installed lists a user's
// installations without a damaged plugin record or installation record,
// as every other listing does, instead of answering 503 until an operator
// removes it.
func TestKustvaktInstalledSkipsDamaged(t *testing.T) {
	e := newKVEnv(t, nil)
	ctx := context.Background()
	var ids []string
	for _, name := range []string{"Alpha", "Beta", "Gamma"} {
		id, _ := e.register("alice", `{"name":"`+name+`","type":"CONFIDENTIAL","description":"d","url":"https://plugin.example.de","source":{"x":1}}`)
		if err := e.reg.Install(ctx, &registry.Installation{User: "bob", SuperClientID: "superclient", ClientID: id}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	ds := &damagingStore{Store: e.reg.Store, damaged: map[string]bool{
		"c/" + ids[0]:                       true, // the plugin's client record
		"i/bob\x00superclient\x00" + ids[1]: true, // the installation itself
	}}
	e.reg.Store = ds
	w := e.do("POST", "/api/v1.0/plugins/installed", kvForm, "super_client_id=superclient&super_client_secret=s3cret", "bob")
	if body := w.Body.String(); w.Code != 200 || strings.Count(body, `"client_id"`) != 1 || !strings.Contains(body, ids[2]) {
		t.Fatalf("%d %s", w.Code, body)
	}
}

// TestKustvaktInstalledDropsGone: a listing leaves out the installation of
// a plugin that is gone (expired: its record went, its installations
// stayed) and removes it, instead of reading it again at every listing.
func TestKustvaktInstalledDropsGone(t *testing.T) {
	e := newKVEnv(t, nil)
	ctx := context.Background()
	var ids []string
	for _, name := range []string{"Kept", "Gone"} {
		id, _ := e.register("alice", `{"name":"`+name+`","type":"CONFIDENTIAL","description":"d","url":"https://plugin.example.de","source":{"x":1}}`)
		if err := e.reg.Install(ctx, &registry.Installation{User: "bob", SuperClientID: "superclient", ClientID: id}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rec, err := e.reg.Store.Get(ctx, "c/"+ids[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := e.reg.Store.Delete(ctx, rec); err != nil { // as an expiry does
		t.Fatal(err)
	}
	w := e.do("POST", "/api/v1.0/plugins/installed", kvForm, "super_client_id=superclient&super_client_secret=s3cret", "bob")
	if body := w.Body.String(); w.Code != 200 || strings.Count(body, `"client_id"`) != 1 || !strings.Contains(body, ids[0]) {
		t.Fatalf("%d %s", w.Code, body)
	}
	if _, err := e.reg.Store.Get(ctx, "i/bob\x00superclient\x00"+ids[1]); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the gone plugin's installation: %v", err)
	}
	if _, err := e.reg.Store.Get(ctx, "i/bob\x00superclient\x00"+ids[0]); err != nil {
		t.Fatalf("the kept plugin's installation: %v", err)
	}
}

// TestKustvaktInstallIsTheUse: with an idle lifetime, installing a plugin
// is a use of it, but an install that is refused (not permitted, installed
// already) is not, nor is a listing of the installed plugins: otherwise
// whoever holds the super client's credentials could keep any client from
// expiring.
func TestKustvaktInstallIsTheUse(t *testing.T) {
	now := time.Now()
	e := newKVEnv(t, func(o *Options, _ *KustvaktOptions) {
		o.Registry.IdleLifetime = time.Minute
		o.Registry.Now = func() time.Time { return now }
	})
	id, _ := e.register("alice", `{"name":"Plugin","type":"CONFIDENTIAL","description":"d","url":"https://plugin.example.com","source":{"a":1}}`)
	expiry := func() time.Time {
		t.Helper()
		rec, err := e.reg.Store.Get(context.Background(), "c/"+id)
		if err != nil {
			t.Fatal(err)
		}
		return rec.ExpiresAt
	}
	install := "super_client_id=superclient&super_client_secret=s3cret&client_id=" + id
	step := func(what string, do func() *httptest.ResponseRecorder, status int, moves bool) {
		t.Helper()
		before := expiry()
		if w := do(); w.Code != status {
			t.Fatalf("%s: %d %s, want %d", what, w.Code, w.Body, status)
		}
		if after := expiry(); after.After(before) != moves {
			t.Errorf("%s: expiry %v -> %v, moved %v, want %v", what, before, after, !moves, moves)
		}
	}
	now = now.Add(10 * time.Second)
	step("install, not permitted", func() *httptest.ResponseRecorder {
		return e.do("POST", "/api/v1.0/plugins/install", kvForm, install, "bob")
	}, 400, false)
	if w := e.do("POST", "/api/v1.0/admin/oauth2/client/privilege", kvForm, "client_id="+id+"&permitted=true", "root"); w.Code != 200 {
		t.Fatalf("privilege: %d %s", w.Code, w.Body)
	}
	now = now.Add(10 * time.Second)
	step("install", func() *httptest.ResponseRecorder {
		return e.do("POST", "/api/v1.0/plugins/install", kvForm, install, "bob")
	}, 200, true)
	now = now.Add(10 * time.Second)
	step("install again", func() *httptest.ResponseRecorder {
		return e.do("POST", "/api/v1.0/plugins/install", kvForm, install, "bob")
	}, 400, false)
	now = now.Add(10 * time.Second)
	step("installed", func() *httptest.ResponseRecorder {
		return e.do("POST", "/api/v1.0/plugins/installed", kvForm, "super_client_id=superclient&super_client_secret=s3cret", "bob")
	}, 200, false)
}
