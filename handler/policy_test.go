package handler

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-dcr/caddy-dcr/registry"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

// TestCORSPreflightRequestHeaders: browser MCP clients send
// MCP-Protocol-Version (and other headers of their own) with their
// requests; a preflight that does not allow the headers it asks for makes
// the browser drop the request, so the allowed origins get them.
func TestCORSPreflightRequestHeaders(t *testing.T) {
	c := &CORS{Origins: []string{"https://app.example"}}
	r := httptest.NewRequest(http.MethodOptions, "/.well-known/oauth-authorization-server", nil)
	r.Header.Set("Origin", "https://app.example")
	r.Header.Set("Access-Control-Request-Method", "GET")
	r.Header.Set("Access-Control-Request-Headers", "mcp-protocol-version, authorization")
	w := httptest.NewRecorder()
	if !c.apply(w, r, "GET, HEAD") {
		t.Fatal("preflight not answered")
	}
	h := w.Header()
	allowed := strings.ToLower(h.Get("Access-Control-Allow-Headers"))
	for _, want := range []string{"mcp-protocol-version", "authorization", "content-type"} {
		if !strings.Contains(allowed, want) {
			t.Errorf("Access-Control-Allow-Headers %q lacks %s", allowed, want)
		}
	}
	if vary := strings.Join(h.Values("Vary"), ", "); !strings.Contains(vary, "Access-Control-Request-Headers") {
		t.Errorf("Vary %q", vary)
	}
	// A header list that is not a list of tokens is not echoed.
	r.Header.Set("Access-Control-Request-Headers", "x-ok, bad header\r\n")
	w = httptest.NewRecorder()
	c.apply(w, r, "GET, HEAD")
	if got := w.Header().Get("Access-Control-Allow-Headers"); strings.Contains(got, "bad") {
		t.Errorf("malformed request headers echoed: %q", got)
	}
	// Another origin gets no permission at all.
	r.Header.Set("Origin", "https://evil.example")
	w = httptest.NewRecorder()
	c.apply(w, r, "GET, HEAD")
	if got := w.Header().Get("Access-Control-Allow-Headers"); got != "" {
		t.Errorf("other origin: %q", got)
	}
}

// TestCORSExposesRequestID: IAM's answers carry X-Request-Id, the id its
// error bodies name; a browser client can only read it when exposed.
func TestCORSExposesRequestID(t *testing.T) {
	c := &CORS{Origins: []string{"*"}}
	r := httptest.NewRequest(http.MethodPost, "/v1/clients", nil)
	r.Header.Set("Origin", "https://app.example")
	w := httptest.NewRecorder()
	c.apply(w, r, "POST")
	if got := w.Header().Get("Access-Control-Expose-Headers"); !strings.Contains(got, "X-Request-Id") {
		t.Fatalf("Access-Control-Expose-Headers %q", got)
	}
}

// TestRetryAfterAtLeastOne: a 429 whose window ends in less than half a
// second still asks the client to wait; "0" invites an immediate retry
// that is refused again.
func TestRetryAfterAtLeastOne(t *testing.T) {
	for _, d := range []time.Duration{0, time.Millisecond, 999 * time.Millisecond} {
		den := &Denial{Status: http.StatusTooManyRequests, RetryAfter: d}
		h := http.Header{}
		den.SetHeaders(h)
		if h.Get("Retry-After") != "1" {
			t.Errorf("%v: Retry-After %q", d, h.Get("Retry-After"))
		}
	}
	den := &Denial{Status: http.StatusTooManyRequests, RetryAfter: 1500 * time.Millisecond}
	if got := den.RetryAfterHeader(); got != "2" {
		t.Errorf("1.5s: %q", got)
	}
}

func TestRateLimitAddress(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"::ffff:192.0.2.7":     "192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":      "2001:db8:1:3::/64",
		"not an address":       "not an address",
		"":                     "",
	} {
		if got := rateLimitAddress(in); got != want {
			t.Errorf("rateLimitAddress(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestHealthFlapping: a store that keeps failing and recovering is logged
// once as unavailable and once as back, not once per request; the outages
// left out are counted on the next line.
func TestHealthFlapping(t *testing.T) {
	h, log, logs := observedHealth()
	for i := 0; i < 50; i++ {
		h.Fail(log, "rfc7591", "register", errors.New("disk full"))
		h.OK(log, time.Now(), true)
	}
	if n := logs.FilterMessageSnippet("unavailable").Len(); n != 1 {
		t.Errorf("%d unavailable lines, want 1", n)
	}
	if n := logs.FilterMessage("client store available again").Len(); n != 1 {
		t.Errorf("%d recovery lines, want 1", n)
	}
	// Both name the store: an operator may have several.
	for _, e := range logs.All() {
		if e.ContextMap()["store"] != "redis r1:6379" {
			t.Errorf("%q: store field %v", e.Message, e.ContextMap()["store"])
		}
	}
	// Once the interval has passed, a new outage is an error again.
	h.lastError = time.Now().Add(-outageLogInterval - time.Second)
	h.Fail(log, "rfc7591", "register", errors.New("disk full"))
	if n := logs.FilterMessageSnippet("unavailable").Len(); n != 2 {
		t.Errorf("after the interval: %d unavailable lines, want 2", n)
	}
	if f := logs.FilterMessageSnippet("unavailable").All()[1].ContextMap()["outages_not_logged"]; f != int64(49) {
		t.Errorf("outages_not_logged = %v, want 49", f)
	}
	h.OK(log, time.Now(), true)

	// Within the interval, an outage that goes on is logged all the same
	// once it has lasted outageConfirm.
	h.Fail(log, "rfc7591", "register", errors.New("connection refused"))
	if n := logs.FilterMessageSnippet("unavailable").Len(); n != 2 {
		t.Errorf("short outage in the interval: %d unavailable lines, want 2", n)
	}
	h.since = time.Now().Add(-outageConfirm - time.Second)
	h.Fail(log, "rfc7591", "register", errors.New("connection refused"))
	h.Fail(log, "rfc7591", "register", errors.New("connection refused"))
	if n := logs.FilterMessageSnippet("unavailable").Len(); n != 3 {
		t.Errorf("lasting outage in the interval: %d unavailable lines, want 3", n)
	}
}

// observedHealth is a Health and a logger whose lines (info and above) the
// test can read.
func observedHealth() (*Health, *zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.InfoLevel)
	return &Health{Store: "redis r1:6379"}, zap.New(core), logs
}

// TestHealthOneKindRefused: while one kind of operation fails and the
// other succeeds, the other's successes do not end the outage, so it is
// logged once and ends when one of its own kind succeeds:
//   - writes refused, reads served (a Redis out of memory): a write ends
//     it, or a read once no write failed for outageLogInterval (under a
//     read-only load the outage is over, so the next is logged as such);
//   - reads refused, writes served (a Redis user that lost GET): a read
//     ends it, or a write once no read failed for outageConfirm;
//   - deletes refused, other writes served (a Redis user that lost ZREM):
//     a delete ends it, or a write once no delete failed for outageConfirm.
//
// An outage of the other kind then ends with that kind's success.
func TestHealthOneKindRefused(t *testing.T) {
	create := &storage.UnavailableError{Op: "create", Err: errors.New("OOM command not allowed")}
	get := &storage.UnavailableError{Op: "get", Err: errors.New("NOPERM this user has no permissions to run the 'get' command")}
	del := &storage.UnavailableError{Op: "delete", Err: errors.New("NOPERM this user has no permissions to run the 'zrem' command")}
	write := func(h *Health, log *zap.Logger) { h.OK(log, time.Now(), true) }
	read := func(h *Health, log *zap.Logger) { h.OK(log, time.Now(), false) }
	deleted := func(h *Health, log *zap.Logger) { h.Deleted(log, time.Now()) }
	for _, tc := range []struct {
		name             string
		refused          error
		refusedOK, other func(h *Health, log *zap.Logger) // a success of the refused kind, of the other
		quiet            func(h *Health)
		otherErr         error
	}{
		{"writes", create, write, read, func(h *Health) { h.lastWriteFail = time.Now().Add(-outageLogInterval - time.Second) }, get},
		{"reads", get, read, write, func(h *Health) { h.lastReadFail = time.Now().Add(-outageConfirm - time.Second) }, create},
		{"deletes", del, deleted, write, func(h *Health) { h.lastDeleteFail = time.Now().Add(-outageConfirm - time.Second) }, create},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, log, logs := observedHealth()
			recoveries := func() int { return logs.FilterMessage("client store available again").Len() }
			for i := 0; i < 20; i++ {
				h.Fail(log, "rfc7591", "op", tc.refused)
				tc.other(h, log)
			}
			if n := logs.FilterMessageSnippet("unavailable").Len(); n != 1 {
				t.Errorf("%d unavailable lines, want 1", n)
			}
			if n := recoveries(); n != 0 {
				t.Fatalf("the other kind ended the outage: %d recovery lines", n)
			}
			tc.refusedOK(h, log)
			if n := recoveries(); n != 1 {
				t.Fatalf("%d recovery lines after a success of the refused kind, want 1", n)
			}
			h.lastError = time.Time{}
			h.Fail(log, "rfc7591", "op", tc.refused)
			tc.quiet(h)
			tc.other(h, log)
			if n := recoveries(); n != 2 {
				t.Fatalf("%d recovery lines once the refused kind stopped failing, want 2", n)
			}
			h.lastError = time.Time{}
			h.Fail(log, "rfc7591", "op", tc.otherErr)
			tc.other(h, log)
			if n := recoveries(); n != 3 {
				t.Fatalf("%d recovery lines after an outage of the other kind, want 3", n)
			}
		})
	}
}

// TestHealthUnloggedCount: an outage first left out of the log (it began
// soon after another) and then logged because it lasted is not counted
// among those left out.
func TestHealthUnloggedCount(t *testing.T) {
	h, log, logs := observedHealth()
	down := errors.New("connection refused")
	h.Fail(log, "rfc7591", "read", down)
	h.OK(log, time.Now(), true)
	h.Fail(log, "rfc7591", "read", down) // within the interval: left out
	h.since = time.Now().Add(-outageConfirm - time.Second)
	h.Fail(log, "rfc7591", "read", down) // lasted: logged
	lines := logs.FilterMessageSnippet("unavailable").All()
	if len(lines) != 2 {
		t.Fatalf("%d unavailable lines, want 2", len(lines))
	}
	if _, ok := lines[1].ContextMap()["outages_not_logged"]; ok {
		t.Errorf("the logged outage counted itself: %v", lines[1].ContextMap())
	}
}

// TestHealthHangUpHint: an outage whose error is only "EOF", which is what
// go-redis reports of a server that hangs up at once (a TLS-only Redis
// reached without TLS), is logged with a hint at the likely causes, unless
// the store answered before (then it crashed or dropped the connection).
func TestHealthHangUpHint(t *testing.T) {
	h, log, logs := observedHealth()
	h.Fail(log, "rfc7591", "read", &storage.UnavailableError{Op: "get", Err: io.EOF})
	lines := logs.FilterMessageSnippet("unavailable").All()
	if len(lines) != 1 || !strings.Contains(fmt.Sprint(lines[0].ContextMap()["hint"]), "TLS") {
		t.Fatalf("%v", lines)
	}
	h2, log2, logs2 := observedHealth()
	h2.Fail(log2, "rfc7591", "read", errors.New("connection refused"))
	if _, ok := logs2.All()[0].ContextMap()["hint"]; ok {
		t.Errorf("hint on a refused connection: %v", logs2.All()[0].ContextMap())
	}
	h3, log3, logs3 := observedHealth()
	h3.OK(log3, time.Now(), false)
	h3.Fail(log3, "rfc7591", "read", &storage.UnavailableError{Op: "get", Err: io.EOF})
	if _, ok := logs3.All()[0].ContextMap()["hint"]; ok {
		t.Errorf("hint on a store that answered before: %v", logs3.All()[0].ContextMap())
	}
}

// TestHealthConcurrent: failures and successes racing each other never
// leave the state "announced" while the store is up, which would keep the
// next outage from being logged.
func TestHealthConcurrent(t *testing.T) {
	log := zap.NewNop()
	h := new(Health)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20000; i++ {
				if (i+g)%2 == 0 {
					h.Fail(log, "rfc7591", "register", errors.New("x"))
				} else {
					h.OK(log, time.Now(), g%2 == 0)
				}
			}
		}(g)
	}
	wg.Wait()
	h.OK(log, time.Now(), true)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down.Load() || h.announced {
		t.Fatalf("after recovery: down %v, announced %v", h.down.Load(), h.announced)
	}
}

// TestMetadataOnlyRegistrable: the metadata publishes only grant and
// response types a registration can carry, and leaves out an empty
// response_types_supported (RFC 8414 section 3.2).
func TestMetadataOnlyRegistrable(t *testing.T) {
	a := benchAPI(t)
	a.o.Policy.GrantTypes = []string{"client_credentials", "implicit"}
	a.o.Policy.ResponseTypes = []string{"code"}
	w := httptest.NewRecorder()
	a.Serve(w, httptest.NewRequest(http.MethodGet, "http://auth.example/.well-known/oauth-authorization-server", nil))
	body := w.Body.String()
	if w.Code != http.StatusOK || strings.Contains(body, "response_types_supported") || !strings.Contains(body, `"grant_types_supported":["client_credentials"]`) {
		t.Errorf("%d %s", w.Code, body)
	}
}

// TestIssuerPathWarning: an issuer whose path is not where the routes are
// is worth one warning; a matching one (prefix, or a handle_path mount
// spelled in any case) none.
func TestIssuerPathWarning(t *testing.T) {
	for _, tc := range []struct {
		issuer, prefix, mount string
		warn                  bool
	}{
		{"https://auth.example/oauth", "", "", true},
		{"https://auth.example", "/oauth", "", true},
		{"https://auth.example/oauth/", "/oauth", "", false},
		{"https://auth.example/auth", "", "/AUTH", false},
		{"https://auth.example/auth/oauth", "/oauth", "/%61uth", false},
		{"https://auth.example", "", "", false},
	} {
		core, logs := observer.New(zapcore.WarnLevel)
		a := benchAPI(t)
		a.o.Logger = zap.New(core)
		a.o.Issuer, a.o.Prefix = tc.issuer, tc.prefix
		a.o.Mount = func(*http.Request) string { return tc.mount }
		for range 2 {
			w := httptest.NewRecorder()
			a.Serve(w, httptest.NewRequest(http.MethodPost, "http://auth.example"+tc.prefix+"/register", strings.NewReader(benchBody)))
		}
		if n := logs.FilterMessageSnippet("the issuer's path").Len(); n != map[bool]int{true: 1, false: 0}[tc.warn] {
			t.Errorf("%+v: %d warnings", tc, n)
		}
	}
}

// TestHealthRetired: a store left while its outage was logged says so
// once; one left without a logged outage says nothing.
func TestHealthRetired(t *testing.T) {
	h, log, logs := observedHealth()
	h.Retired(log)
	h.Fail(log, "rfc7591", "register", errors.New("connection refused"))
	h.Retired(log)
	h.Retired(log)
	if n := logs.FilterMessage("client store no longer used, still unavailable when it was left").Len(); n != 1 {
		t.Fatalf("%d lines for a store left in an outage, want 1", n)
	}
}

// TestHealthSettle: a success of an operation sent before the outage
// began (a delete of several round trips that a hung Redis answers late)
// does not end it; one sent after it does.
func TestHealthSettle(t *testing.T) {
	h, log, logs := observedHealth()
	sent := time.Now()
	h.Fail(log, "rfc7591", "register", errors.New("TRYAGAIN"))
	h.OK(log, sent, true)
	h.Deleted(log, sent)
	if !h.down.Load() || logs.FilterMessage("client store available again").Len() != 0 {
		t.Fatal("an operation in flight when the outage began ended it")
	}
	h.OK(log, time.Now(), true)
	if h.down.Load() || logs.FilterMessage("client store available again").Len() != 1 {
		t.Fatal("a success sent after the outage began did not end it")
	}
}

// TestSpanText: rate-limit windows read as people write them.
func TestSpanText(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Hour: "hour", 24 * time.Hour: "day", 48 * time.Hour: "2 days", 90 * time.Minute: "90 minutes",
		10 * time.Minute: "10 minutes", time.Second: "second", 90 * time.Second: "90 seconds",
		1500 * time.Millisecond: "1.5s",
	} {
		if got := spanText(d); got != want {
			t.Errorf("spanText(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestReservedUserWarning: a user named as the owners of token-registered
// clients are is treated as no user, and warned about once, naming the API.
func TestReservedUserWarning(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	o := &Options{Logger: zap.New(core), User: func(*http.Request) string { return "token:abc" }}
	NewKustvakt(o, KustvaktOptions{})
	r := httptest.NewRequest(http.MethodPost, "/api/v1.0/oauth2/client/list", nil)
	for range 3 {
		if u := o.user(r); u != "" {
			t.Fatalf("user %q, want none", u)
		}
	}
	lines := logs.FilterMessageSnippet("is reserved").All()
	if len(lines) != 1 {
		t.Fatalf("%d warnings, want 1", len(lines))
	}
	if f := lines[0].ContextMap(); f["api"] != registry.APIKustvakt || f["user"] != `"token:abc"` {
		t.Fatalf("fields %v", f)
	}
}

// TestUnsafeUserWarning: a user name with control characters,
// bidirectional overrides or invalid UTF-8 (from a header, as forward_auth
// copies it) is treated as no user, and warned about once, escaped.
func TestUnsafeUserWarning(t *testing.T) {
	for _, name := range []string{"\u202eecila", "bob\x00", "al\xffice", "eve\u2066",
		// Invisible ones: each shows as "bob", and would be another owner.
		"bob\u200f", "bob\u200b", "\u061cbob", "\ufeffbob", "bo\u00adb"} {
		core, logs := observer.New(zapcore.InfoLevel)
		o := &Options{Logger: zap.New(core), User: func(*http.Request) string { return name }}
		NewRFC7591(o)
		r := httptest.NewRequest(http.MethodPost, "/register", nil)
		for range 3 {
			if u := o.user(r); u != "" {
				t.Fatalf("user %q for %q, want none", u, name)
			}
		}
		lines := logs.FilterMessageSnippet("is not taken as a user").All()
		if len(lines) != 1 {
			t.Fatalf("%q: %d warnings, want 1", name, len(lines))
		}
		if f := lines[0].ContextMap(); f["user"] != strconv.QuoteToASCII(name) {
			t.Fatalf("%q: fields %v", name, f)
		}
	}
	o := &Options{User: func(*http.Request) string { return "José Ñandú 李 ✓" }}
	if u := o.user(httptest.NewRequest(http.MethodGet, "/", nil)); u != "José Ñandú 李 ✓" {
		t.Fatalf("a plain Unicode name refused: %q", u)
	}
}

// TestPrefixSpellings: the prefix matches however the request spells its
// characters (RFC 3986 section 6.2.2: percent-encoding, either case of
// hex, sub-delimiters as is or encoded), as Caddy's path matchers in front
// take them; a different path, an encoded "/" or a longer segment does not.
func TestPrefixSpellings(t *testing.T) {
	for _, tc := range []struct {
		prefix, path string
		want         []string // nil: outside the prefix
	}{
		{"/dcr", "/dcr/register", []string{"register"}},
		{"/dcr", "/%64cr/register", []string{"register"}},
		{"/dcr", "/%64%63%72", []string{""}},
		{"/dcr", "/dcrx/register", nil},
		{"/dcr", "/DCR/register", nil},
		{"/dcr", "/dc%72x/register", nil},
		{"/dcr", "/register", nil},
		{"/a/b", "/a%2Fb/register", nil},
		{"/a/b", "/a/%62/register", []string{"register"}},
		{"/a/b", "/a/register", nil},
		{"/é", "/%C3%A9/register", []string{"register"}},
		{"/é", "/%c3%a9/register", []string{"register"}},
		{"/é", "/%c3/register", nil},
		{"/o(auth)!", "/o(auth)!/register", []string{"register"}},
		{"/o(auth)!", "/o%28auth%29%21/register", []string{"register"}},
		{"/my oauth", "/my%20oauth/register/x", []string{"register", "x"}},
		{"/my%20oauth", "/my%2520oauth/register", []string{"register"}},
		{"/my%20oauth", "/my%20oauth/register", nil}, // that is "/my oauth"
	} {
		o := &Options{Prefix: tc.prefix}
		r := httptest.NewRequest(http.MethodGet, "http://auth.example"+tc.path, nil)
		got, ok := o.segments(r, nil)
		if ok != (tc.want != nil) || (ok && !slices.Equal(got, tc.want)) {
			t.Errorf("prefix %q, path %q: %q %v, want %q", tc.prefix, tc.path, got, ok, tc.want)
		}
	}
	// And through the API: a registration at the literal spelling.
	a := benchAPI(t)
	a.o.Prefix = "/o(auth)!"
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "http://auth.example/o(auth)!/register", strings.NewReader(benchBody))
	r.Header.Set("Content-Type", "application/json")
	if !a.Serve(w, r) || w.Code != http.StatusCreated {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if loc := w.Header().Get("Location"); !strings.HasPrefix(loc, "http://auth.example/o%28auth%29%21/register/") {
		t.Errorf("Location %q", loc)
	}
}
