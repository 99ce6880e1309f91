package caddydcr

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-dcr/caddy-dcr/internal/redistest"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

// Operating the plugin: reloads, metrics, placeholders, Redis faults.

// TestReloadKeepsPoolAndConnections: reloading the config while requests
// run drops none of them, and the Redis client is reused, not recreated.
func TestReloadKeepsPoolAndConnections(t *testing.T) {
	port := redistest.FreePort(t)
	prefix := fmt.Sprintf("reload%d:", prefixSeq.Add(1))
	cfg := func(name string) string {
		return testCaddyfile("admin off\ngrace_period 5s", port, fmt.Sprintf(`	client_registration {
		storage redis {
			address %s
			key_prefix %s
		}
		rate_limit off
	}
	client_registration iam {
		storage redis {
			address %s
			key_prefix %s
		}
		rate_limit off
	}
	respond %q`, sharedRedis.Addr, prefix, sharedRedis.Addr, prefix, name))
	}
	loadCaddyfile(t, cfg("one"))
	s := &site{t: t, URL: "http://127.0.0.1:" + strconv.Itoa(port)}

	opts, err := (&RedisConfig{Address: []string{sharedRedis.Addr}, KeyPrefix: prefix}).options(caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	key := "redis:" + opts.fingerprint
	before, _, _ := pools.LoadOrNew(key, func() (caddy.Destructor, error) { t.Fatal("pool missing"); return nil, nil })
	if refs, ok := pools.References(key); !ok || refs != 3 { // two handlers + our LoadOrNew
		t.Fatalf("references %d %v", refs, ok)
	}
	pools.Delete(key)

	var failures, resets, done atomic.Int32
	// Every acknowledged registration must still be readable afterwards.
	var ackMu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", s.URL+"/register", strings.NewReader(mcpBody))
				req.Header.Set("Content-Type", "application/json")
				// A request written onto a keep-alive connection that the
				// old server is closing fails before the server reads it
				// (HTTP/1.1's race, not a dropped request); the key lets
				// Go's client retry it, as it does for GET.
				req.Header.Set("Idempotency-Key", strconv.Itoa(int(done.Load())))
				resp, err := httpClient.Do(req)
				if err != nil {
					// Caddy's own hand-over of the listener on a reload can
					// close a connection under a request (a plain respond
					// route loses the same few); that is not the plugin's
					// doing, but an answer with an error status would be.
					resets.Add(1)
					done.Add(1)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 201 {
					if failures.Add(1) < 3 {
						t.Logf("request failed: %d %s", resp.StatusCode, b)
					}
				} else {
					ackMu.Lock()
					acked = append(acked, string(b))
					ackMu.Unlock()
				}
				done.Add(1)
			}
		}()
	}
	for i := 0; i < 5; i++ {
		time.Sleep(100 * time.Millisecond)
		loadCaddyfile(t, cfg(fmt.Sprint("v", i)))
	}
	close(stop)
	wg.Wait()
	if failures.Load() != 0 || done.Load() < 20 || resets.Load() > 10 {
		t.Fatalf("%d of %d requests failed across reloads, %d connections reset", failures.Load(), done.Load(), resets.Load())
	}
	after, _, _ := pools.LoadOrNew(key, func() (caddy.Destructor, error) { t.Fatal("pool gone"); return nil, nil })
	pools.Delete(key)
	if before != after {
		t.Fatal("a reload replaced the Redis client")
	}
	if _, body := s.do("GET", "/other", ""); body != "v4" {
		t.Fatalf("new config not active: %q", body)
	}
	for _, b := range acked {
		m := object(t, b)
		c := rfcClient{URI: m["registration_client_uri"].(string)}
		if resp, body := rfcGet(t, s, c, m["registration_access_token"].(string)); resp.StatusCode != 200 {
			t.Fatalf("a client acknowledged during the reloads cannot be read: %d %s", resp.StatusCode, body)
		}
	}
}

// TestReloadNewPoolFinishesInFlight: a reload that changes the Redis
// settings (another timeout: another client) lets the requests the old
// config was serving finish on the old client, which closes only after
// them: none fails, and every acknowledged client is there.
func TestReloadNewPoolFinishesInFlight(t *testing.T) {
	srv := redistest.Start(t)
	port := redistest.FreePort(t)
	cfg := func(timeout string) string {
		return testCaddyfile("admin off\ngrace_period 10s", port, fmt.Sprintf(`	client_registration {
		storage redis {
			address %s
			timeout %s
		}
		rate_limit off
	}`, srv.Addr, timeout))
	}
	loadCaddyfile(t, cfg("3s"))
	s := &site{t: t, URL: "http://127.0.0.1:" + strconv.Itoa(port)}
	if resp, body := s.postJSON("/register", mcpBody); resp.StatusCode != 201 {
		t.Fatalf("warm-up: %d %s", resp.StatusCode, body)
	}
	// Every command waits while Redis pauses its clients: the requests are
	// in flight on the old config's client when the new config replaces it.
	srv.CLI("CLIENT", "PAUSE", "1000", "ALL")
	const n = 8
	var wg sync.WaitGroup
	codes := make(chan int, n)
	for range n {
		wg.Go(func() {
			resp, body := s.postJSON("/register", mcpBody)
			if resp.StatusCode != 201 {
				t.Logf("%d %s", resp.StatusCode, body)
			}
			codes <- resp.StatusCode
		})
	}
	time.Sleep(300 * time.Millisecond)
	loadCaddyfile(t, cfg("2s"))
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 201 {
			t.Fatalf("a request in flight across the reload was answered %d", c)
		}
	}
	if got := srv.CLI("ZCARD", "dcr:{dcr}:t:clients"); got != strconv.Itoa(n+1) {
		t.Errorf("clients indexed: %s, want %d", got, n+1)
	}
}

// TestMetrics: the counters reach Caddy's metrics endpoint, and every
// answer is counted once, by result or status class, whichever path wrote it.
func TestMetrics(t *testing.T) {
	s, admin := startCaddyAdmin(t, "redis", `	client_registration {
		{storage}
	}
	client_registration mediagoblin {
		{storage}
	}
	client_registration iam {
		{storage}
		registration token
		initial_access_token metrics-test-token
	}`)
	// The counters belong to the process, which other tests share: compare
	// what this test's requests added.
	scrape := func() string {
		resp, err := httpClient.Get(admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	before := scrape()
	// Known series exist before their first event (at 0 in a fresh process).
	for _, series := range []string{
		`caddy_client_registration_registrations_total{api="iam",result="unavailable"} `,
		`caddy_client_registration_registrations_total{api="mediagoblin",result="limited"} `,
		`caddy_client_registration_storage_errors_total{api="rfc7591"} `,
	} {
		if !strings.Contains(before, series) {
			t.Errorf("%s not scraped before its first event", series)
		}
	}
	c := rfcRegister(t, s, mcpBody)
	s.postJSON("/register", `{"redirect_uris":["javascript:x"]}`)
	s.postJSON("/register", `{`)
	rfcGet(t, s, c, c.RAT)
	rfcGet(t, s, c, c.RAT)
	rfcGet(t, s, c, "wrong")
	s.do("GET", "/register/unknown-id", "")
	s.postJSON("/api/client/register", `{"type":"client_update","client_id":"nope","client_secret":"nope","application_type":"web"}`)
	s.postJSON("/api/client/register", `{"type":"client_associate","application_type":"web"}`)
	// A HEAD registers nothing: not counted.
	s.do("HEAD", "/api/client/register", `{"type":"client_associate","application_type":"web"}`, "Content-Type: application/json")
	s.postJSON("/v1/clients", iamBody) // no initial access token
	s.postJSON("/v1/clients", iamBody, "Authorization: Bearer metrics-test-token")
	s.do("GET", "/.well-known/oauth-authorization-server", "")
	s.do("GET", "/register", "") // 405: not an operation, not counted
	// Answers of the checks made before an operation's own work count too.
	badHost := func(method, path, body string) {
		req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
		req.Host = strings.TrimPrefix(s.URL, "http://") + ",evil.example"
		req.Header.Set("Content-Type", "application/json")
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s %s with a bad Host: %d", method, path, resp.StatusCode)
		}
	}
	badHost("POST", "/register", mcpBody)
	badHost("GET", "/.well-known/oauth-authorization-server", "")
	badHost("GET", "/register/"+c.ID, "")
	badHost("POST", "/v1/clients", iamBody)
	after := scrape()
	const reg, ops = "caddy_client_registration_registrations_total", "caddy_client_registration_operations_total"
	for series, want := range map[string]float64{
		reg + `{api="rfc7591",result="created"}`:                    1,
		reg + `{api="rfc7591",result="rejected"}`:                   3,
		ops + `{api="rfc7591",operation="read",status="2xx"}`:       2,
		ops + `{api="rfc7591",operation="read",status="4xx"}`:       3,
		ops + `{api="rfc7591",operation="metadata",status="4xx"}`:   1,
		reg + `{api="iam",result="rejected"}`:                       1,
		ops + `{api="mediagoblin",operation="update",status="4xx"}`: 1,
		reg + `{api="mediagoblin",result="created"}`:                1,
		reg + `{api="iam",result="unauthorized"}`:                   1,
		reg + `{api="iam",result="created"}`:                        1,
		ops + `{api="rfc7591",operation="metadata",status="2xx"}`:   1,
	} {
		if got := metricValue(after, series) - metricValue(before, series); got != want {
			t.Errorf("%s grew by %v, want %v", series, got, want)
		}
	}
}

// TestMetricsFollowConfig: a site's metrics handler shows the series of
// the APIs the running config serves, not those of a config that failed to
// load (nor an API name it got wrong), nor those of an API a reload
// removed. (Caddy's admin endpoint is not used: after a failed load it
// serves the failed config's registry until the next load succeeds.)
func TestMetricsFollowConfig(t *testing.T) {
	s := startCaddy(t, "redis", `	metrics /metrics
	client_registration {
		{storage}
	}
	client_registration mediagoblin {
		{storage}
	}`)
	scrape := func() string {
		_, text := s.do("GET", "/metrics", "")
		return text
	}
	const family = "caddy_client_registration_registrations_total"
	has := func(text, api string) bool { return strings.Contains(text, family+`{api="`+api+`",`) }
	if text := scrape(); !has(text, "rfc7591") || !has(text, "mediagoblin") {
		t.Fatalf("the configured APIs' series are missing:\n%s", text)
	}

	// Two configs that fail to load: Kustvakt with a super client's secret
	// that resolves to nothing, and an API of no name we know (JSON, which
	// no adapter checks).
	cfg := testCaddyfile("admin off", redistest.FreePort(t), "\tclient_registration kustvakt {\n\t\tsuper_client sc {env.DCR_TEST_UNSET_SECRET}\n\t}")
	js, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(js, true); err == nil {
		t.Fatal("a config with a secret that resolves to nothing loaded")
	}
	bogus := bytes.Replace(js, []byte(`"api":"kustvakt"`), []byte(`"api":"bogusapi"`), 1)
	if bytes.Equal(bogus, js) {
		t.Fatalf(`no "api":"kustvakt" in %s`, js)
	}
	if err := caddy.Load(bogus, true); err == nil {
		t.Fatal("a config with an unknown API loaded")
	}
	text := scrape()
	if has(text, "kustvakt") || has(text, "bogusapi") {
		t.Errorf("series of configs that failed to load:\n%s", text)
	}
	if !has(text, "mediagoblin") || !has(text, "rfc7591") {
		t.Errorf("the running config's series went with the failed loads:\n%s", text)
	}

	// A reload without the MediaGoblin handler: its series go.
	s = startCaddy(t, "redis", "\tmetrics /metrics\n\tclient_registration {\n\t\t{storage}\n\t}")
	if text := scrape(); has(text, "mediagoblin") || !has(text, "rfc7591") {
		t.Errorf("after the reload that removed MediaGoblin:\n%s", text)
	}
}

// metricValue is the value of one series in Prometheus's text format (0
// when absent).
func metricValue(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// TestPlaceholder: after a registration, {http.client_registration.client_id}
// is set for the handlers and logs that follow.
func TestPlaceholder(t *testing.T) {
	h := &Handler{Storage: &StorageConfig{Redis: &RedisConfig{Address: []string{sharedRedis.Addr}, KeyPrefix: fmt.Sprintf("ph%d:", prefixSeq.Add(1))}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	repl := caddy.NewReplacer()
	extra := new(caddyhttp.ExtraLogFields)
	req := httptest.NewRequest("POST", "http://example.test/register", strings.NewReader(mcpBody))
	req.Header.Set("Content-Type", "application/json")
	req = req.WithContext(context.WithValue(context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl), caddyhttp.ExtraLogFieldsCtxKey, extra))
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { t.Fatal("next called"); return nil })
	if err := h.ServeHTTP(w, req, next); err != nil || w.Code != 201 {
		t.Fatalf("%v %d %s", err, w.Code, w.Body)
	}
	id, _ := repl.GetString("http.client_registration.client_id")
	if id == "" || !strings.Contains(w.Body.String(), `"client_id":"`+id+`"`) {
		t.Fatalf("placeholder %q, body %s", id, w.Body)
	}
	// Other requests go to the next handler untouched.
	called := false
	next = caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { called = true; return nil })
	req = httptest.NewRequest("GET", "http://example.test/index.html", nil)
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	if err := h.ServeHTTP(httptest.NewRecorder(), req, next); err != nil || !called {
		t.Fatalf("pass-through: %v %v", err, called)
	}
}

// TestPlaceholderInHeader: the README's deferred header carries the id of
// a registration, is empty on the plugin's other answers (never the
// placeholder's text), and the matcher keeps it off the site's pages. With
// two handlers in a row (the second skips clearing what the first
// cleared), a page passed on by both and a registration by the second come
// out the same.
func TestPlaceholderInHeader(t *testing.T) {
	s := startCaddy(t, "embedded", `	header /register* >X-Client-Id {http.client_registration.client_id}
	header /v1/clients >X-Client-Id {http.client_registration.client_id}
	header /page >X-Unscoped {http.client_registration.client_id}
	client_registration
	client_registration iam
	respond "site" 200`)
	for range 3 {
		resp, body := s.do("POST", "/v1/clients", `{"client_name":"x","client_type":"public","token_endpoint_auth_method":"client_secret_post","grant_types":["authorization_code"],"response_types":["code"],"scopes":["openid"]}`, "Content-Type: application/json")
		if id := resp.Header.Get("X-Client-Id"); resp.StatusCode != http.StatusOK || id == "" || !strings.Contains(body, `"client_id":"`+id+`"`) {
			t.Fatalf("registration through the second handler: %d %q %s", resp.StatusCode, resp.Header.Values("X-Client-Id"), body)
		}
	}
	resp, body := s.do("POST", "/register", mcpBody, "Content-Type: application/json")
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("X-Client-Id") == "" ||
		!strings.Contains(body, `"client_id":"`+resp.Header.Get("X-Client-Id")+`"`) {
		t.Fatalf("registration: %d %q %s", resp.StatusCode, resp.Header.Values("X-Client-Id"), body)
	}
	resp, _ = s.do("POST", "/register", `{"redirect_uris":["x"]}`, "Content-Type: application/json")
	if v := resp.Header.Values("X-Client-Id"); resp.StatusCode != http.StatusBadRequest || len(v) != 1 || v[0] != "" {
		t.Errorf("refused registration: %d, X-Client-Id %q", resp.StatusCode, v)
	}
	resp, _ = s.do("GET", "/page", "")
	if v := resp.Header.Values("X-Unscoped"); len(v) != 1 || v[0] != "" || resp.Header.Get("X-Client-Id") != "" {
		t.Errorf("site page: X-Unscoped %q, X-Client-Id %q", v, resp.Header.Values("X-Client-Id"))
	}
}

// TestHandlePath: behind handle_path (or uri strip_prefix) the URLs given
// out include the stripped prefix, so that clients come back through the
// same route; the site's other paths still reach the next handler.
func TestHandlePath(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			s := startCaddy(t, backend, `	handle_path /auth/* {
		client_registration {
			{storage}
		}
		respond "inner" 200
	}
	handle /legacy/* {
		uri strip_prefix /legacy
		client_registration iam {
			{storage}
		}
	}
	respond "site" 200`)
			registerMounted(t, s, "/auth")
			// A path not in normal form after the prefix: Caddy cleans it
			// before it strips, and the URL given out still comes back here.
			resp, body := s.postJSON("/auth//register", mcpBody)
			var c struct {
				URI   string `json:"registration_client_uri"`
				Token string `json:"registration_access_token"`
			}
			if err := json.Unmarshal([]byte(body), &c); err != nil || resp.StatusCode != 201 || !strings.HasPrefix(c.URI, s.URL+"/auth/register/") {
				t.Fatalf("registration at /auth//register: %d %s", resp.StatusCode, body)
			}
			if resp, body := s.do("GET", strings.TrimPrefix(c.URI, s.URL), "", rfcBearer(c.Token)); resp.StatusCode != 200 {
				t.Fatalf("read at the URL given out: %d %s", resp.StatusCode, body)
			}
			if _, body := s.do("GET", "/auth/./.well-known/oauth-authorization-server", ""); !strings.Contains(body, `"registration_endpoint":"`+s.URL+`/auth/register"`) {
				t.Fatalf("metadata at a path with a dot segment: %s", body)
			}
			// Dot segments written as escapes, which Caddy's cleaning
			// leaves and clients' parsers remove: the URLs given out are
			// as the parsers would write them.
			for path, want := range map[string]string{
				"/auth/x/%2e%2E/register":                          "/auth/register/",
				"/auth/%2e/register":                               "/auth/register/",
				"/auth/register/%2e":                               "/auth/register/",
				"/auth/register/%2E/%2e":                           "/auth/register/",
				"/auth/.well-known/oauth-authorization-server/%2e": `"registration_endpoint":"` + s.URL + `/auth/register"`,
				"/auth/%2e/.well-known/oauth-authorization-server": `"registration_endpoint":"` + s.URL + `/auth/register"`,
			} {
				var resp *http.Response
				var body string
				if strings.Contains(path, "/register") {
					resp, body = s.postJSON(path, mcpBody)
				} else {
					resp, body = s.do("GET", path, "")
				}
				if resp.StatusCode >= 300 || !strings.Contains(body, want) || strings.Contains(strings.ToLower(body), "%2e") {
					t.Fatalf("%s: %d %s, want %s", path, resp.StatusCode, body, want)
				}
			}
			if resp, body := s.postJSON("/legacy/v1//clients", iamMinimalRequest); resp.StatusCode != 200 || !strings.Contains(body, s.URL+"/legacy/") {
				t.Fatalf("iam behind strip_prefix, path not in normal form: %d %s", resp.StatusCode, body)
			}
			_, body = s.do("GET", "/auth/.well-known/oauth-authorization-server", "")
			for _, want := range []string{
				`"issuer":"` + s.URL + `"`,
				`"registration_endpoint":"` + s.URL + `/auth/register"`,
				`"authorization_endpoint":"` + s.URL + `/auth/authorize"`,
			} {
				if !strings.Contains(body, want) {
					t.Fatalf("metadata lacks %s: %s", want, body)
				}
			}
			if _, body = s.do("GET", "/auth/other", ""); body != "inner" {
				t.Fatalf("pass-through inside handle_path: %q", body)
			}
			if _, body = s.do("GET", "/register", ""); body != "site" {
				t.Fatalf("outside handle_path: %q", body)
			}
			// IAM's endpoints default under the same base.
			resp, body = s.postJSON("/legacy/v1/clients", iamMinimalRequest)
			if resp.StatusCode != 200 || !strings.Contains(body, s.URL+"/legacy/") {
				t.Fatalf("iam behind strip_prefix: %d %s", resp.StatusCode, body)
			}
		})
	}
}

// TestRedisOutage: with Redis down every API answers 503 with Retry-After
// in its own format, and recovers by itself when Redis is back.
func TestRedisOutage(t *testing.T) {
	srv := redistest.Start(t)
	block := fmt.Sprintf("storage redis {\n\t\t\taddress %s\n\t\t\ttimeout 300ms\n\t\t}\n\t\trate_limit off", srv.Addr)
	s := startCaddy(t, "redis", authedAPIs(t, block, "", "mediagoblin", "kustvakt", "iam"))
	reqs := []struct {
		name   string
		send   func() (*http.Response, string)
		prefix string
	}{
		{"rfc7591", func() (*http.Response, string) { return s.postJSON("/register", mcpBody) }, `{"error":"temporarily_unavailable"`},
		{"mediagoblin", func() (*http.Response, string) {
			return s.postJSON("/api/client/register", `{"type":"client_associate","application_type":"web"}`)
		}, `{"error": "`},
		{"kustvakt", func() (*http.Response, string) {
			return s.kvRegister("alice", `{"name":"abc","type":"PUBLIC","description":"d"}`)
		}, `{"errors":[[116,`},
		{"iam", func() (*http.Response, string) {
			return s.postJSON("/v1/clients", iamBody)
		}, `{"error_code":"IIC.503"`},
	}
	for _, r := range reqs {
		if resp, body := r.send(); resp.StatusCode >= 300 {
			t.Fatalf("%s before: %d %s", r.name, resp.StatusCode, body)
		}
	}
	srv.Stop()
	for _, r := range reqs {
		resp, body := r.send()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.HasPrefix(body, r.prefix) {
			t.Fatalf("%s down: %d %v %s", r.name, resp.StatusCode, resp.Header, body)
		}
	}
	srv.Restart()
	for _, r := range reqs {
		redistest.WaitFor(t, 5*time.Second, r.name+" to recover", func(context.Context) bool {
			resp, _ := r.send()
			return resp.StatusCode < 300
		})
	}
}

// TestRedisStoreName: the outage log tells apart pools on other databases
// of one Redis, and pools waiting for replicas.
func TestRedisStoreName(t *testing.T) {
	for _, c := range []struct {
		opts storage.RedisOptions
		want string
	}{
		{storage.RedisOptions{Addrs: []string{"localhost:6379"}}, "redis localhost:6379"},
		{storage.RedisOptions{Addrs: []string{"localhost:6379"}, DB: 1}, "redis localhost:6379/1"},
		{storage.RedisOptions{Addrs: []string{"a:1", "b:2"}, WaitReplicas: 1}, "redis a:1 b:2 (wait_replicas 1)"},
	} {
		if got := redisStoreName(c.opts); got != c.want {
			t.Errorf("%+v: %q, want %q", c.opts, got, c.want)
		}
	}
}

// A Redis that hangs (stopped, not gone: connections stay open and nothing
// answers) costs each request at most about the configured timeout, then a
// 503 in the API's format; requests recover when it answers again.
func TestRedisHung(t *testing.T) {
	srv := redistest.Start(t)
	s := redisSite(t, "address "+srv.Addr+"\ntimeout 300ms")
	if resp, body := s.postJSON("/register", mcpBody); resp.StatusCode != 201 {
		t.Fatalf("before: %d %s", resp.StatusCode, body)
	}
	srv.Pause()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			resp, body := s.postJSON("/register", mcpBody)
			if took := time.Since(start); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" ||
				!strings.HasPrefix(body, `{"error":"temporarily_unavailable"`) || took > 5*time.Second {
				t.Errorf("hung: %d after %v, %v %s", resp.StatusCode, took, resp.Header, body)
			}
		}()
	}
	wg.Wait()
	srv.Resume()
	redistest.WaitFor(t, 5*time.Second, "registration to recover", func(context.Context) bool {
		resp, _ := s.postJSON("/register", mcpBody)
		return resp.StatusCode == 201
	})
}

// An RFC 7592 update answered 503 but carried out later: a proxy holds the
// update's script on its way to Redis past the timeout (reads go on, so the
// read-back finds the old record) and delivers it once the client has given
// up, as a slow network would. The client never got the new registration
// access token, so the one it sent stays valid: it reads the updated
// registration with it (which makes it the client's token again) and sends
// the update again; the repeat issues the secret the lost answer carried,
// and, answered, retires the old token.
func TestRedisUpdateAnsweredUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	px := startHoldingProxy(t, srv.Addr)
	s := redisSite(t, "address "+px.addr+"\ntimeout 300ms")
	c := rfcRegister(t, s, `{`+rfcCB+`,"token_endpoint_auth_method":"none"}`)
	// A first update loads the update script into Redis (the held one
	// is sent by its SHA-1, and Redis would refuse it unknown).
	resp, body := rfcPut(t, s, c, c.RAT, `{"client_id":"`+c.ID+`",`+rfcCB+`,"token_endpoint_auth_method":"none"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("first PUT: %d %s", resp.StatusCode, body)
	}
	c.RAT = object(t, body)["registration_access_token"].(string)
	update := `{"client_id":"` + c.ID + `",` + rfcCB + `,"client_name":"v2","token_endpoint_auth_method":"client_secret_basic"}`

	px.hold("evalsha", 0)
	resp, body = rfcPut(t, s, c, c.RAT, update)
	if resp.StatusCode != 503 {
		t.Fatalf("PUT with its script held: %d %s, want 503", resp.StatusCode, body)
	}
	px.release()
	redistest.WaitFor(t, 5*time.Second, "the held update to be carried out and its token accepted", func(context.Context) bool {
		resp, body := rfcGet(t, s, c, c.RAT)
		return resp.StatusCode == 200 && object(t, body)["client_name"] == "v2"
	})
	_, body = rfcGet(t, s, c, c.RAT)
	m := object(t, body)
	rfcWantStr(t, m, "registration_access_token", c.RAT)
	rfcWantStr(t, m, "token_endpoint_auth_method", "client_secret_basic")

	resp, body = rfcPut(t, s, c, c.RAT, update)
	if resp.StatusCode != 200 {
		t.Fatalf("repeated PUT: %d %s", resp.StatusCode, body)
	}
	m = object(t, body)
	rat, _ := m["registration_access_token"].(string)
	if rat == "" || rat == c.RAT {
		t.Fatalf("repeated PUT: registration_access_token %q, want a new one", rat)
	}
	if secret, _ := m["client_secret"].(string); len(secret) != 43 {
		t.Errorf("repeated PUT: client_secret %q, want the secret the lost answer carried issued again", secret)
	}
	resp, body = rfcGet(t, s, c, c.RAT)
	rfcWantUnauthorized(t, resp, body, rfcInvalidToken)
	if resp, body = rfcGet(t, s, c, rat); resp.StatusCode != 200 {
		t.Errorf("new token: %d %s", resp.StatusCode, body)
	}
	// An answered update leaves no second token behind, and a later
	// update issues no other secret.
	resp, body = rfcPut(t, s, c, rat, update)
	if resp.StatusCode != 200 {
		t.Fatalf("third PUT: %d %s", resp.StatusCode, body)
	}
	rfcWantAbsent(t, object(t, body), "client_secret")
	time.Sleep(time.Second) // past the 300ms after which an unanswered update's token would count
	if resp, body = rfcGet(t, s, c, rat); resp.StatusCode != 401 {
		t.Errorf("token of an answered update: %d %s, want 401", resp.StatusCode, body)
	}
}

// An update carried out whose old token could not then be retired (the
// read before the retiring write timed out) is answered 503, not 200: a
// 200 would leave the old token valid for up to an hour. The client
// repeats it with that token, as after any 503, and gets its new token.
func TestRedisUpdateNotRetired(t *testing.T) {
	px, s, c, update := proxiedClient(t, "300ms")

	// A PUT reads the client twice (to check the token, then to update
	// it), writes, and reads once more to retire the old token: the third
	// read is held past the timeout.
	px.hold("\r\nget\r\n", 2)
	resp, body := rfcPut(t, s, c, c.RAT, update)
	px.release()
	if resp.StatusCode != 503 {
		t.Fatalf("PUT whose old token could not be retired: %d %s, want 503", resp.StatusCode, body)
	}
	resp, body = rfcGet(t, s, c, c.RAT)
	if resp.StatusCode != 200 || object(t, body)["client_name"] != "v2" {
		t.Fatalf("GET with the old token after the 503: %d %s, want the update carried out", resp.StatusCode, body)
	}
	resp, body = rfcPut(t, s, c, c.RAT, update)
	if resp.StatusCode != 200 {
		t.Fatalf("repeated PUT: %d %s", resp.StatusCode, body)
	}
	time.Sleep(time.Second)
	if resp, body = rfcGet(t, s, c, c.RAT); resp.StatusCode != 401 {
		t.Errorf("token of an answered update: %d %s, want 401", resp.StatusCode, body)
	}
}

// An update whose old token could not be retired because the store failed
// at once (not after its timeout) is answered 503 quickly; the client's
// immediate repeat with the old token is held until the token is accepted
// again (at most one timeout), not refused with 401, which a client takes
// as final, and succeeds.
func TestRedisUpdateNotRetiredRetry(t *testing.T) {
	px, s, c, update := proxiedClient(t, "1s")

	px.cut("\r\nget\r\n", 2) // the retiring read: its connection drops
	start := time.Now()
	resp, body := rfcPut(t, s, c, c.RAT, update)
	if resp.StatusCode != 503 || time.Since(start) > 900*time.Millisecond {
		t.Fatalf("PUT whose old token could not be retired: %d after %v %s, want a quick 503", resp.StatusCode, time.Since(start), body)
	}
	start = time.Now()
	resp, body = rfcPut(t, s, c, c.RAT, update)
	if resp.StatusCode != 200 || time.Since(start) > 2*time.Second {
		t.Fatalf("immediate repeat: %d after %v %s, want 200 within the timeout", resp.StatusCode, time.Since(start), body)
	}
	if resp, body = rfcGet(t, s, c, c.RAT); resp.StatusCode != 401 {
		t.Errorf("token of the answered update: %d %s, want 401", resp.StatusCode, body)
	}
}

// An update whose retiring write is lost on its way (the connection drops
// with it; the read-back finds it not done) tries it again, and is answered
// only once the old token is retired: before, it was answered 200 with the
// old token still valid, and a later read with that token made it the
// client's token again, undoing the one the client had been given.
func TestRedisRetireRetried(t *testing.T) {
	px, s, c, update := proxiedClient(t, "1s")

	px.cut("evalsha", 1) // the update's script passes, the retire's is cut
	resp, body := rfcPut(t, s, c, c.RAT, update)
	if resp.StatusCode != 200 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	rat := object(t, body)["registration_access_token"].(string)
	if resp, body = rfcGet(t, s, c, c.RAT); resp.StatusCode != 401 {
		t.Fatalf("the old token after an answered update: %d %s, want 401", resp.StatusCode, body)
	}
	if resp, body = rfcGet(t, s, c, rat); resp.StatusCode != 200 {
		t.Errorf("the token the update was answered with: %d %s", resp.StatusCode, body)
	}
}

// TestRedisTransactionFaults: a registration stored as a transaction
// (no caps, no expiry) whose MULTI/EXEC is held up past the timeout, or
// whose connection is cut before it is sent, is answered 503 and leaves
// nothing behind: the held one is carried out when Redis gets it, and
// removed, record and index entries, as nobody has its credentials.
func TestRedisTransactionFaults(t *testing.T) {
	srv := redistest.Start(t)
	px := startHoldingProxy(t, srv.Addr)
	s := startCaddy(t, "redis", fmt.Sprintf(`	client_registration {
		storage redis {
			address %s
			timeout 300ms
		}
		rate_limit off
		max_clients off
		max_clients_per_owner off
	}`, px.addr))
	redistest.WaitFor(t, 10*time.Second, "registrations as transactions", func(context.Context) bool {
		rfcRegister(t, s, mcpBody)
		return strings.Contains(srv.CLI("info", "commandstats"), "cmdstat_exec:")
	})
	keys := srv.CLI("dbsize")
	clients := srv.CLI("zcard", "dcr:{dcr}:t:clients")

	px.cut("multi", 0)
	if resp, body := s.postJSON("/register", mcpBody); resp.StatusCode != 503 {
		t.Fatalf("registration whose connection is cut: %d %s", resp.StatusCode, body)
	}
	px.hold("multi", 0)
	if resp, body := s.postJSON("/register", mcpBody); resp.StatusCode != 503 {
		t.Fatalf("registration held past the timeout: %d %s", resp.StatusCode, body)
	}
	execs := srv.CLI("info", "commandstats")
	px.release()
	redistest.WaitFor(t, 5*time.Second, "the held transaction to be carried out", func(context.Context) bool {
		return srv.CLI("info", "commandstats") != execs
	})
	redistest.WaitFor(t, 10*time.Second, "its record to be removed", func(context.Context) bool {
		return srv.CLI("dbsize") == keys && srv.CLI("zcard", "dcr:{dcr}:t:clients") == clients
	})
	rfcRegister(t, s, mcpBody)
}

// proxiedClient starts a site on Redis behind a holdingProxy, with the
// given store timeout, registers a client, and returns an update of it.
func proxiedClient(t *testing.T, timeout string) (*holdingProxy, *site, rfcClient, string) {
	t.Helper()
	srv := redistest.Start(t)
	px := startHoldingProxy(t, srv.Addr)
	s := redisSite(t, "address "+px.addr+"\ntimeout "+timeout)
	c := rfcRegister(t, s, `{`+rfcCB+`}`)
	// The first registration starts the index's pruning in the background,
	// a script of its own: let it reach Redis before a test counts the
	// scripts that pass the proxy, or it may be the one counted (or cut).
	var last string
	redistest.WaitFor(t, 5*time.Second, "the registration's background pruning", func(context.Context) bool {
		time.Sleep(100 * time.Millisecond)
		var stats []string
		for l := range strings.SplitSeq(srv.CLI("info", "commandstats"), "\n") {
			if strings.HasPrefix(l, "cmdstat_") && !strings.HasPrefix(l, "cmdstat_info:") {
				stats = append(stats, l)
			}
		}
		now := strings.Join(stats, ",")
		settled := now == last && strings.Contains(now, "cmdstat_evalsha:")
		last = now
		return settled
	})
	return px, s, c, `{"client_id":"` + c.ID + `",` + rfcCB + `,"client_name":"v2"}`
}

// holdingProxy forwards TCP connections to a Redis server; once told to
// hold, a connection that sends a chunk containing the given text has that
// chunk and all it sends after kept back until release, and delivered then
// even if the client has closed its side meanwhile.
type holdingProxy struct {
	addr     string
	mu       sync.Mutex
	match    string
	skip     int // matching chunks still let through before holding
	cutting  bool
	released chan struct{}
}

func startHoldingProxy(t *testing.T, target string) *holdingProxy {
	t.Helper()
	p := &holdingProxy{released: make(chan struct{})}
	close(p.released)
	p.addr = redistest.Proxy(t, target, func(cc, sc net.Conn) {
		replies := make(chan struct{})
		go func() { _, _ = io.Copy(cc, sc); _ = cc.Close(); close(replies) }()
		p.forward(cc, sc)
		<-replies
	})
	t.Cleanup(p.release) // before the proxy's own cleanup: held chunks go on
	return p
}

func (p *holdingProxy) forward(cc, sc net.Conn) {
	defer func() { _ = sc.(*net.TCPConn).CloseWrite() }()
	buf := make([]byte, 64<<10)
	for {
		n, err := cc.Read(buf)
		if n > 0 {
			p.mu.Lock()
			held := false
			if p.match != "" && bytes.Contains(bytes.ToLower(buf[:n]), []byte(p.match)) {
				held = p.skip == 0
				p.skip = max(p.skip-1, 0)
			}
			released, cutting := p.released, p.cutting
			if held && cutting {
				p.match, p.cutting = "", false
			}
			p.mu.Unlock()
			if held && cutting {
				_ = cc.Close() // the client reads EOF at once
				return
			}
			if held {
				<-released
			}
			if _, werr := sc.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// hold starts keeping back chunks that contain match (in lower case),
// after letting skip of them through.
func (p *holdingProxy) hold(match string, skip int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.match, p.skip, p.released = match, skip, make(chan struct{})
}

// cut closes the connection that next sends a chunk containing match,
// after letting skip of them through; the chunk is not delivered.
func (p *holdingProxy) cut(match string, skip int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.match, p.skip, p.cutting = match, skip, true
}

// release delivers what was held and stops holding.
func (p *holdingProxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.match != "" {
		p.match = ""
		close(p.released)
	}
}

// A file system that refuses writes and reads under the embedded store (here
// its records directory replaced by a file) gives 503 in the API's format,
// never a 500 or a half-written client; requests recover once it is back.
func TestEmbeddedStorageFault(t *testing.T) {
	dir := dataDir(t)
	s := rfcLoad(t, redistest.FreePort(t), dir, "\tclient_registration {\n\t\trate_limit off\n\t}")
	c := rfcRegister(t, s, mcpBody)
	var records string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "records" {
			records = p
		}
		return nil
	})
	if records == "" {
		t.Fatalf("no records directory under %s", dir)
	}
	if err := os.Rename(records, records+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(records, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	read := func() (*http.Response, string) { return rfcGet(t, s, c, c.RAT) }
	for name, send := range map[string]func() (*http.Response, string){
		"register": func() (*http.Response, string) { return s.postJSON("/register", mcpBody) },
		"read":     read,
	} {
		resp, body := send()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" ||
			!strings.HasPrefix(body, `{"error":"temporarily_unavailable"`) {
			t.Errorf("%s with the store broken: %d %v %s", name, resp.StatusCode, resp.Header, body)
		}
	}
	if err := os.Remove(records); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(records+".away", records); err != nil {
		t.Fatal(err)
	}
	if resp, body := read(); resp.StatusCode != 200 {
		t.Fatalf("read after repair: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.postJSON("/register", mcpBody); resp.StatusCode != 201 {
		t.Fatalf("register after repair: %d %s", resp.StatusCode, body)
	}
}

// TestRedisAuth: a password-protected Redis (requirepass) and an ACL user,
// with the secrets from {env.*}; a wrong password loads but answers 503
// until it is fixed.
func TestRedisAuth(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "default-secret", "--user", "dcr", "on", ">acl-secret", "~*", "&*", "+@all")
	t.Setenv("DCR_TEST_AUTH_PASSWORD", "default-secret")
	t.Setenv("DCR_TEST_ACL_PASSWORD", "acl-secret")
	for _, c := range []struct{ name, auth string }{
		{"requirepass", "password {env.DCR_TEST_AUTH_PASSWORD}"},
		{"acl user", "username dcr\n\t\t\t\tpassword {env.DCR_TEST_ACL_PASSWORD}"},
	} {
		t.Run(c.name, func(t *testing.T) {
			registerAndRead(t, redisSite(t, "address "+srv.Addr+"\n"+c.auth))
		})
	}
	// The same as redis:// URLs (what REDIS_URL holds on most platforms),
	// with the database in the path.
	t.Setenv("DCR_TEST_REDIS_URL", "redis://:default-secret@"+srv.Addr+"/3")
	t.Setenv("DCR_TEST_REDIS_ACL_URL", "redis://dcr:acl-secret@"+srv.Addr)
	for _, url := range []string{"{env.DCR_TEST_REDIS_URL}", "{env.DCR_TEST_REDIS_ACL_URL}"} {
		registerAndRead(t, redisSite(t, "address "+url+"\nkey_prefix url:"))
	}
	if n := srv.CLI("--user", "dcr", "--pass", "acl-secret", "--no-auth-warning", "-n", "3", "EVAL", "return #redis.call('KEYS', 'url:*')", "0"); n != "2" {
		t.Fatalf("keys in db 3: %s, want the record and its index", n)
	}
	s := redisSite(t, "address "+srv.Addr+"\npassword wrong\ntimeout 300ms")
	resp, body := s.postJSON("/register", mcpBody)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || strings.Contains(body, "wrong") {
		t.Fatalf("wrong password: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	// Concurrent requests share pipelines, whose commands go-redis leaves
	// without an error when AUTH fails: still 503 every one (they were
	// 500s, a create read as "exists" until its retries ran out).
	var wg sync.WaitGroup
	statuses := make(chan int, 32)
	for range 32 {
		wg.Go(func() {
			resp, _ := s.postJSON("/register", mcpBody)
			statuses <- resp.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != 503 {
			t.Errorf("concurrent registration with a wrong password: %d, want 503", st)
		}
	}
}

// TestRedisURLTLS: a rediss:// address turns TLS on, with the server's
// certificate checked (against the system's roots, or a tls block's
// ca_file).
func TestRedisURLTLS(t *testing.T) {
	srv := redistest.StartTLS(t)
	registerAndRead(t, redisSite(t, "address rediss://"+srv.Addr+"\ntls {\nca_file "+srv.CAFile+"\n}"))
	// Without the CA, the certificate is refused.
	s := redisSite(t, "address rediss://"+srv.Addr+"\ntimeout 500ms")
	if resp, body := s.postJSON("/register", mcpBody); resp.StatusCode != 503 {
		t.Fatalf("unknown CA: %d %s", resp.StatusCode, body)
	}
	// Logged as a TLS handshake that fails, not as a Redis that does not
	// answer; a Redis that is not there is the latter.
	pool := storage.NewRedisPool(storage.RedisOptions{Addrs: []string{srv.Addr}, TLS: &tls.Config{}, Timeout: time.Second})
	defer pool.Destruct()
	if err := pool.Ping(context.Background()); err == nil || !tlsRefused(err) {
		t.Errorf("untrusted certificate: %v, want a TLS refusal", err)
	}
	gone := storage.NewRedisPool(storage.RedisOptions{Addrs: []string{"127.0.0.1:1"}, Timeout: time.Second})
	defer gone.Destruct()
	if err := gone.Ping(context.Background()); err == nil || tlsRefused(err) {
		t.Errorf("no Redis: %v, want no TLS refusal", err)
	}
}

// redisSite starts a site with the RFC 7591 API on Redis, lines being
// those of its storage redis block, and no rate limit.
func redisSite(t *testing.T, lines string) *site {
	t.Helper()
	return startCaddy(t, "redis", fmt.Sprintf("\troute {\n\t\tclient_registration {\n\t\t\tstorage redis {\n%s\n\t\t\t}\n\t\t\trate_limit off\n\t\t}\n\t}", lines))
}

// registerAndRead registers a client and reads it back with its
// registration access token.
func registerAndRead(t *testing.T, s *site) {
	t.Helper()
	c := rfcRegister(t, s, mcpBody)
	if resp, body := rfcGet(t, s, c, c.RAT); resp.StatusCode != 200 {
		t.Fatalf("read: %d %s", resp.StatusCode, body)
	}
}

// TestSentinelAuth: sentinels that require a password of their own get
// sentinel_password; password stays the master's. Without it, 503.
func TestSentinelAuth(t *testing.T) {
	_, sentinel := redistest.StartSentinelAuth(t, "authmaster", "master-secret", "sentinel-secret")
	t.Setenv("DCR_TEST_SENTINEL_PASSWORD", "sentinel-secret")
	registerAndRead(t, redisSite(t, "address "+sentinel+"\nmaster_name authmaster\npassword master-secret\nsentinel_password {env.DCR_TEST_SENTINEL_PASSWORD}"))
	s := redisSite(t, "address "+sentinel+"\nmaster_name authmaster\npassword master-secret\ntimeout 300ms\nkey_prefix other:")
	if resp, body := s.postJSON("/register", mcpBody); resp.StatusCode != 503 {
		t.Fatalf("without sentinel_password: %d %s", resp.StatusCode, body)
	}
}

// TestSentinelFailover: with Sentinel, losing the master costs a few
// seconds of 503s, then registrations go to the promoted replica, which
// still serves the clients registered (and replicated) before.
func TestSentinelFailover(t *testing.T) {
	master, replica, sentinel := redistest.StartSentinelFailover(t, "dcrmaster")
	s := startCaddy(t, "redis", fmt.Sprintf(`	route {
		client_registration {
			storage redis {
				address %s
				master_name dcrmaster
				timeout 500ms
			}
			rate_limit off
		}
	}`, sentinel))
	c := rfcRegister(t, s, mcpBody)
	// Replication is asynchronous: wait until the replica has the write.
	if out := master.CLI("wait", "1", "5000"); strings.TrimSpace(out) != "1" {
		t.Fatalf("WAIT 1: %q", out)
	}
	master.Stop()
	redistest.WaitFor(t, 30*time.Second, "a registration after the failover", func(context.Context) bool {
		resp, body := s.postJSON("/register", mcpBody)
		switch resp.StatusCode {
		case 201:
			return true
		case 503:
			if resp.Header.Get("Retry-After") == "" || !strings.HasPrefix(body, `{"error":"temporarily_unavailable"`) {
				t.Errorf("during the failover: %d %v %s", resp.StatusCode, resp.Header, body)
			}
		default:
			t.Errorf("during the failover: %d %s", resp.StatusCode, body)
		}
		return false
	})
	if role := replica.CLI("role"); !strings.HasPrefix(role, "master") {
		t.Fatalf("the replica was not promoted: %q", role)
	}
	if resp, body := rfcGet(t, s, c, c.RAT); resp.StatusCode != 200 {
		t.Fatalf("client registered before the failover: %d %s", resp.StatusCode, body)
	}
}

// TestSentinelFailoverWaitReplicas: with wait_replicas, a client is
// answered 201 only once the replica has it, so it survives a failover
// that follows at once: here the replica lags (paused) when the
// registration arrives, and the master is killed right after the answer.
func TestSentinelFailoverWaitReplicas(t *testing.T) {
	master, replica, sentinel := redistest.StartSentinelFailover(t, "dcrmaster")
	waitReplicaLink(t, replica)
	s := startCaddy(t, "redis", fmt.Sprintf(`	route {
		client_registration {
			storage redis {
				address %s
				master_name dcrmaster
				timeout 3s
				wait_replicas 1 2s
			}
			rate_limit off
		}
	}`, sentinel))
	clients := []rfcClient{rfcRegister(t, s, mcpBody)}

	replica.Pause()
	answered := make(chan rfcClient, 1)
	go func() {
		resp, body := s.postJSON("/register", mcpBody)
		if resp.StatusCode != 201 {
			t.Errorf("registration while the replica lags: %d %s", resp.StatusCode, body)
			close(answered)
			return
		}
		m := object(t, body)
		answered <- rfcClient{ID: m["client_id"].(string), RAT: m["registration_access_token"].(string), URI: m["registration_client_uri"].(string)}
	}()
	select {
	case <-answered:
		t.Fatal("answered while the replica lagged behind")
	case <-time.After(300 * time.Millisecond):
	}
	replica.Resume()
	c, ok := <-answered
	if !ok {
		t.FailNow()
	}
	master.Stop()
	clients = append(clients, c)

	redistest.WaitFor(t, 30*time.Second, "the replica to be promoted", func(context.Context) bool {
		return strings.HasPrefix(replica.CLI("role"), "master")
	})
	redistest.WaitFor(t, 30*time.Second, "a read after the failover", func(context.Context) bool {
		resp, _ := rfcGet(t, s, clients[0], clients[0].RAT)
		return resp.StatusCode == 200
	})
	for i, c := range clients {
		if resp, body := rfcGet(t, s, c, c.RAT); resp.StatusCode != 200 {
			t.Errorf("client %d of %d registered before the failover: %d %s", i+1, len(clients), resp.StatusCode, body)
		}
	}
}

// TestRedisWaitReplicas: with wait_replicas, a write its replica does not
// confirm in time is answered 503 in the API's format, as an outage;
// reads go on; the unconfirmed registration is removed again, and the
// token an unconfirmed update was sent with is accepted again.
func TestRedisWaitReplicas(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	waitReplicaLink(t, replica)
	// Every handler waits for the replica, each on a store of its own.
	store := func(prefix string) string {
		return fmt.Sprintf("storage redis {\n\t\t\taddress %s\n\t\t\tkey_prefix %s\n\t\t\ttimeout 1s\n\t\t\twait_replicas 1 300ms\n\t\t}", master.Addr, prefix)
	}
	s, admin := startCaddyAdmin(t, "redis", `	route {
		client_registration {
			`+store("dcr:")+`
			rate_limit off
		}
		client_registration {
			prefix /tok
			`+store("tok:")+`
			registration token
			rate_limit off
		}
		client_registration iam {
			`+store("dcr:")+`
			rate_limit off
		}
		client_registration {
			prefix /idle
			`+store("idle:")+`
			idle_lifetime 2s
			rate_limit off
		}
	}`)
	c := rfcRegister(t, s, mcpBody)
	resp, body := s.postJSON("/idle/register", mcpBody)
	if resp.StatusCode != 201 {
		t.Fatalf("idle: %d %s", resp.StatusCode, body)
	}
	m := object(t, body)
	idle := rfcClient{ID: m["client_id"].(string), RAT: m["registration_access_token"].(string), URI: m["registration_client_uri"].(string)}
	// Answered only once the replica has it.
	if v := replica.CLI("get", "dcr:{dcr}:r:c/"+c.ID); v == "" {
		t.Fatalf("the replica lacks client %s right after its 201", c.ID)
	}
	update := `{"client_id":"` + c.ID + `",` + rfcCB + `,"client_name":"v2","token_endpoint_auth_method":"none"}`
	// Reads never wait.
	waits := waitCalls(t, master)
	if waits == 0 {
		t.Fatal("the registration sent no WAIT")
	}
	for range 5 {
		if resp, body := rfcGet(t, s, c, c.RAT); resp.StatusCode != 200 {
			t.Fatalf("read: %d %s", resp.StatusCode, body)
		}
	}
	if n := waitCalls(t, master); n != waits {
		t.Errorf("reads sent WAIT: %d calls before, %d after", waits, n)
	}

	status, tok := s.adminJSON(admin, "POST", "/client_registration/initial_access_tokens?store=tok:", `{"uses":1}`)
	if status != 201 {
		t.Fatalf("issuing a token: %d %v", status, tok)
	}
	time.Sleep(300 * time.Millisecond) // the idle client's next read pushes its expiry back

	replica.Pause()
	// A registration refused for want of a replica does not spend a
	// one-use token.
	if resp, body := s.postJSON("/tok/register", mcpBody, "Authorization: Bearer "+tok["token"].(string)); resp.StatusCode != 503 {
		t.Errorf("registration with a token, the replica paused: %d %s", resp.StatusCode, body)
	}
	start := time.Now()
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		resp, body := s.postJSON("/register", mcpBody)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.HasPrefix(body, `{"error":"temporarily_unavailable"`) {
			t.Errorf("registration with the replica paused: %d %v %s", resp.StatusCode, resp.Header, body)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("answered after %s, before the 300ms wait", d)
		}
	}()
	// Reads do not queue behind the registration's WAIT, and a read that
	// pushes an idle expiry back does not wait either.
	time.Sleep(50 * time.Millisecond)
	if resp, body := rfcGet(t, s, c, c.RAT); resp.StatusCode != 200 {
		t.Errorf("read during a registration's wait: %d %s", resp.StatusCode, body)
	}
	if resp, body := rfcGet(t, s, idle, idle.RAT); resp.StatusCode != 200 {
		t.Errorf("read of the idle client: %d %s", resp.StatusCode, body)
	}
	if exp := master.CLI("pttl", "idle:{idle}:r:c/"+idle.ID); exp == "-1" || exp == "-2" {
		t.Errorf("the idle client has no expiry: %s", exp)
	} else if ms, _ := strconv.Atoi(exp); ms < 1800 {
		t.Errorf("the idle client's read did not push its expiry back: %dms left", ms)
	}
	select {
	case <-answered:
		t.Error("the reads were answered only after the registration's wait")
	default:
	}
	<-answered
	resp, body = s.postJSON("/v1/clients", iamMinimalRequest)
	if resp.StatusCode != 503 || !strings.Contains(body, `"error_code"`) {
		t.Errorf("iam registration with the replica paused: %d %s", resp.StatusCode, body)
	}
	if resp, body := rfcGet(t, s, c, c.RAT); resp.StatusCode != 200 {
		t.Errorf("read with the replica paused: %d %s", resp.StatusCode, body)
	}
	if resp, body = rfcPut(t, s, c, c.RAT, update); resp.StatusCode != 503 {
		t.Errorf("update with the replica paused: %d %s", resp.StatusCode, body)
	}
	replica.Resume()

	// The update is on the master: its token is accepted again, and shows
	// it; the registrations nobody got an answer for leave the store.
	redistest.WaitFor(t, 10*time.Second, "the unconfirmed update's token to be accepted again", func(context.Context) bool {
		resp, body := rfcGet(t, s, c, c.RAT)
		return resp.StatusCode == 200 && object(t, body)["client_name"] == "v2"
	})
	redistest.WaitFor(t, 30*time.Second, "the unconfirmed registrations to be removed", func(context.Context) bool {
		return master.CLI("zcard", "dcr:{dcr}:t:clients") == "1"
	})
	if resp, body = rfcPut(t, s, c, c.RAT, update); resp.StatusCode != 200 {
		t.Errorf("update once the replica is back: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.postJSON("/tok/register", mcpBody, "Authorization: Bearer "+tok["token"].(string)); resp.StatusCode != 201 {
		t.Errorf("the one-use token once the replica is back: %d %s", resp.StatusCode, body)
	}
	rfcRegister(t, s, mcpBody)
}

// waitCalls is how many WAIT commands srv has run.
func waitCalls(t *testing.T, srv *redistest.Server) int {
	t.Helper()
	for line := range strings.SplitSeq(srv.CLI("info", "commandstats"), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_wait:calls="); ok {
			n, err := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			if err != nil {
				t.Fatalf("commandstats: %q", line)
			}
			return n
		}
	}
	return 0
}

// waitReplicaLink waits until replica is in sync with its master.
func waitReplicaLink(t *testing.T, replica *redistest.Server) {
	t.Helper()
	redistest.WaitFor(t, 10*time.Second, "the replica to sync", func(context.Context) bool {
		return strings.Contains(replica.CLI("info", "replication"), "master_link_status:up")
	})
}

// TestRedisOutOfMemory: a Redis that refuses writes (maxmemory reached,
// noeviction) gives 503 in each API's format, never a 500, and reads of
// existing clients keep working. Without caps, RFC 7591 registrations
// are transactions (MULTI/EXEC), the others scripts: both are refused
// whole.
func TestRedisOutOfMemory(t *testing.T) {
	srv := redistest.Start(t)
	s := startCaddy(t, "redis", fmt.Sprintf(`	route {
		client_registration {
			storage redis {
				address %s
			}
			rate_limit off
			max_clients off
			max_clients_per_owner off
		}
		client_registration mediagoblin {
			storage redis {
				address %[1]s
			}
			rate_limit off
		}
	}`, srv.Addr))
	c := rfcRegister(t, s, mcpBody)
	redistest.WaitFor(t, 10*time.Second, "registrations as transactions", func(context.Context) bool {
		rfcRegister(t, s, mcpBody)
		return strings.Contains(srv.CLI("info", "commandstats"), "cmdstat_exec:")
	})
	// A limit below what is already used: every write is refused.
	srv.CLI("config", "set", "maxmemory-policy", "noeviction")
	srv.CLI("config", "set", "maxmemory", "1")
	keys := srv.CLI("dbsize")
	resp, body := s.postJSON("/register", mcpBody)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.HasPrefix(body, `{"error":"temporarily_unavailable"`) {
		t.Errorf("rfc7591 with Redis full: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	resp, body = s.postJSON("/api/client/register", `{"type":"client_associate","application_type":"web"}`)
	if resp.StatusCode != 503 || !strings.HasPrefix(body, `{"error": "`) {
		t.Errorf("mediagoblin with Redis full: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if resp, body := rfcGet(t, s, c, c.RAT); resp.StatusCode != 200 {
		t.Errorf("read with Redis full: %d %s", resp.StatusCode, body)
	}
	if after := srv.CLI("dbsize"); after != keys {
		t.Errorf("refused registrations wrote to Redis: %s keys before, %s after", keys, after)
	}
	srv.CLI("config", "set", "maxmemory", "0")
	if resp, body := s.postJSON("/register", mcpBody); resp.StatusCode != 201 {
		t.Errorf("after: %d %s", resp.StatusCode, body)
	}
}

// TestRedisUnixSocketE2E: `address` may be the path of a local Redis's
// unix socket.
func TestRedisUnixSocketE2E(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "r.sock")
	redistest.Start(t, "--unixsocket", sock, "--unixsocketperm", "700")
	s := startCaddy(t, "redis", fmt.Sprintf(`	client_registration {
		storage redis {
			address %s
		}
	}`, sock))
	c := rfcRegister(t, s, mcpBody)
	if resp, body := rfcGet(t, s, c, c.RAT); resp.StatusCode != 200 {
		t.Fatalf("read over the socket: %d %s", resp.StatusCode, body)
	}
}

// TestPrefixEscaped: a prefix with characters that a URL must escape is
// escaped in the URLs given out, which then work as they are: a space, and
// ? and #, which would otherwise end the path.
func TestPrefixEscaped(t *testing.T) {
	s := startCaddy(t, "redis", `	client_registration {
		{storage}
		prefix "/my oauth"
	}
	client_registration {
		{storage}
		prefix "/q?a#b"
	}`)
	registerMounted(t, s, "/my%20oauth")
	registerMounted(t, s, "/q%3Fa%23b")
}

// registerMounted registers a client at base+"/register" and checks that
// its registration_client_uri is under base and works as given.
func registerMounted(t *testing.T, s *site, base string) {
	t.Helper()
	resp, raw := s.postJSON(base+"/register", mcpBody)
	if resp.StatusCode != 201 {
		t.Fatalf("register: %d %s", resp.StatusCode, raw)
	}
	m := object(t, raw)
	c := rfcClient{URI: fmt.Sprint(m["registration_client_uri"]), RAT: fmt.Sprint(m["registration_access_token"])}
	if want := s.URL + base + "/register/" + fmt.Sprint(m["client_id"]); c.URI != want {
		t.Fatalf("registration_client_uri %q, want %q", c.URI, want)
	}
	if resp, body := rfcGet(t, s, c, c.RAT); resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", c.URI, resp.StatusCode, body)
	}
}

// TestHalfClosedClient: a client that closes its sending side after the
// request (nc -N, some proxies) still waits for the answer; Go cancels the
// request's context then, which must not turn into a store outage (503).
func TestHalfClosedClient(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			s := startCaddy(t, backend, `	client_registration {
		{storage}
	}`)
			addr := strings.TrimPrefix(s.URL, "http://")
			req := fmt.Sprintf("POST /register HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", addr, len(mcpBody), mcpBody)
			var wg sync.WaitGroup
			var bad atomic.Int32
			var first atomic.Value
			for w := 0; w < 8; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 15; i++ {
						c, err := net.Dial("tcp", addr)
						if err != nil {
							bad.Add(1)
							continue
						}
						c.Write([]byte(req))
						c.(*net.TCPConn).CloseWrite()
						b, _ := io.ReadAll(c)
						c.Close()
						if !strings.HasPrefix(string(b), "HTTP/1.1 201 ") {
							bad.Add(1)
							first.CompareAndSwap(nil, string(b))
						}
					}
				}()
			}
			wg.Wait()
			if n := bad.Load(); n > 0 {
				t.Fatalf("%d of 120 half-closed registrations failed; first: %v", n, first.Load())
			}
		})
	}
}

// TestBadHostHeader: a Host header that is not host[:port] reaches the
// plugin (Caddy matches sites by name only) but is not copied into the
// issuer or the URLs given out: such requests are refused where an answer
// would carry URLs built from it, and other paths are not affected.
func TestBadHostHeader(t *testing.T) {
	s := startCaddy(t, "redis", `	route {
		client_registration {
			{storage}
		}
		client_registration iam {
			{storage}
		}
		respond "site" 200
	}`)
	get := func(method, path, host, body string) (int, string) {
		req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
		req.Host = host
		req.Header.Set("Content-Type", "application/json")
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	addr := strings.TrimPrefix(s.URL, "http://")
	for _, host := range []string{addr + ",evil.example", "127.0.0.1:evil"} {
		for _, c := range []struct{ method, path, body, want string }{
			{"GET", "/.well-known/oauth-authorization-server", "", `"error":"invalid_request"`},
			{"POST", "/register", mcpBody, `"error":"invalid_request"`},
			{"GET", "/register/some-id", "", `"error":"invalid_request"`},
			{"POST", "/v1/clients", iamMinimalRequest, `"error_code":"IIC.400"`},
		} {
			code, body := get(c.method, c.path, host, c.body)
			if code != 400 || !strings.Contains(body, c.want) || strings.Contains(body, "evil") {
				t.Errorf("%s %s with Host %q: %d %s", c.method, c.path, host, code, body)
			}
		}
		if code, body := get("GET", "/index.html", host, ""); code != 200 || body != "site" {
			t.Errorf("pass-through with Host %q: %d %s", host, code, body)
		}
	}
	if code, body := get("GET", "/.well-known/oauth-authorization-server", "127.0.0.1:9999", ""); code != 200 || !strings.Contains(body, `"issuer":"http://127.0.0.1:9999"`) {
		t.Errorf("valid host: %d %s", code, body)
	}
}

// TestStrippedPrefix: what an earlier handler removed from the front of the
// path, cleaned of dot and empty segments, escaped as sent.
func TestStrippedPrefix(t *testing.T) {
	for _, tc := range []struct{ orig, cur, want string }{
		{"/oauth/register", "/register", "/oauth"},
		{"/register", "/register", ""},
		{"/reg", "/register", ""},
		{"/a/x/../oauth/register", "/register", "/a/oauth"},
		{"//oauth/register", "/register", "/oauth"},
		{"/./register", "/register", ""},
		{"/a%2Fb/register", "/register", "/a%2Fb"},
		{"/oauth/register", "register", ""},
		// The rest of the path not in normal form: Caddy cleaned it all
		// before it stripped the prefix.
		{"/y/oauth//register", "/oauth/register", "/y"},
		{"/y/oauth/./register", "/oauth/register", "/y"},
		{"/y%2Foauth/register", "/oauth/register", "/y"},
		{"/x%2Fregister", "/register", "/x"},
		{"/%C3%A9%20x/oauth//register", "/oauth/register", "/%C3%A9%20x"},
		{"/y/oauth//register", "/other", ""},
		{"/auth//register", "/register", "/auth"},
		// A %2F is no slash to Caddy's cleaning: the ".." takes "a%2Fb"
		// away whole, and a path cleaned without a strip names no prefix.
		{"/auth/a%2Fb/../oauth//register", "/oauth/register", "/auth"},
		{"/a%2Fb/../oauth//register", "/oauth/register", ""},
		{"/X%2Fy/../register", "/register", ""},
	} {
		orig := httptest.NewRequest("GET", "http://h.example"+tc.orig, nil)
		r := httptest.NewRequest("GET", "http://h.example"+tc.orig, nil)
		r.URL.Path, r.URL.RawPath = tc.cur, ""
		r = r.WithContext(context.WithValue(r.Context(), caddyhttp.OriginalRequestCtxKey, *orig))
		if got := strippedPrefix(r); got != tc.want {
			t.Errorf("%s -> %s: %q, want %q", tc.orig, tc.cur, got, tc.want)
		}
	}
}

// A site with an access log gets the registered client's id in each
// registration's line (and a site without one is not charged for it).
func TestAccessLogClientID(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "access.log")
	s := startCaddy(t, "embedded", fmt.Sprintf(`	log {
		output file %s
		format json
	}
	route {
		client_registration {
			{storage}
		}
	}`, logFile))
	c := rfcRegister(t, s, mcpBody)
	redistest.WaitFor(t, 5*time.Second, "the access log line", func(context.Context) bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), `"client_id":"`+c.ID+`"`)
	})
}

// TestRefusedLoadLeavesNoTrace: a config that fails to load after some of
// its handlers were provisioned must not leave their settings behind for
// the admin API: here an idle_lifetime that would make the running
// config's clients expire when the admin API reads them.
func TestRefusedLoadLeavesNoTrace(t *testing.T) {
	srv, s, admin := startRedisAdminSite(t)
	c := rfcRegister(t, s, mcpBody)
	bad := fmt.Sprintf(`{"admin":{"listen":%q},"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:%d"],"routes":[{"handle":[
		{"handler":"client_registration","storage":{"redis":{"address":[%q]}},"idle_lifetime":"1h"},
		{"handler":"client_registration","api":"kustvakt","timezone":"Bad/Zone"}]}]}}}}}`,
		strings.TrimPrefix(admin, "http://"), redistest.FreePort(t), srv.Addr)
	if err := caddy.Load([]byte(bad), true); err == nil {
		t.Fatal("the bad config loaded")
	}
	if resp, body := s.adminRaw(admin, "GET", "/client_registration/clients/"+c.ID+"/metadata"); resp.StatusCode != 200 {
		t.Fatalf("admin metadata: %d %s", resp.StatusCode, body)
	}
	if got := srv.CLI("pttl", "dcr:{dcr}:r:c/"+c.ID); got != "-1" {
		t.Errorf("after the refused load, an admin read set the client's expiry: PTTL %s", got)
	}
}

// TestLifetimesFollowTheClientsAPI: handlers of two APIs on one store, with
// different lifetimes; a Kustvakt client info read and secret reset of an
// RFC 7591 client keep the RFC 7591 handler's lifetimes (they set the
// Kustvakt handler's before: the client's expiry jumped to 30 days, or it
// was deleted when the Kustvakt client_lifetime was shorter than its age).
func TestLifetimesFollowTheClientsAPI(t *testing.T) {
	srv := redistest.Start(t)
	s := startCaddy(t, "redis", fmt.Sprintf(`	basic_auth /api/* {
		root %s
	}
	route {
		client_registration kustvakt {
			storage redis {
				address %[2]s
			}
			super_client superclient s3cret
			admin_user root
			idle_lifetime 720h
		}
		client_registration {
			storage redis {
				address %[2]s
			}
			client_lifetime 1h
		}
	}`, basicHash(t), srv.Addr))
	c := rfcRegister(t, s, `{"redirect_uris":["https://c.example/cb"]}`)
	pttl := func() int {
		t.Helper()
		n, err := strconv.Atoi(srv.CLI("pttl", "dcr:{dcr}:r:c/"+c.ID))
		if err != nil || n <= 0 || n > int(time.Hour/time.Millisecond) {
			t.Fatalf("PTTL %d (%v): not within the RFC 7591 handler's client_lifetime", n, err)
		}
		return n
	}
	pttl()
	if resp, body := s.kvForm("/api/v1.0/oauth2/client/"+c.ID, "root", superForm()); resp.StatusCode != 200 {
		t.Fatalf("Kustvakt client info: %d %s", resp.StatusCode, body)
	}
	pttl()
	resp, body := s.kvForm("/api/v1.0/oauth2/client/reset", "root", url.Values{"client_id": {c.ID}})
	if resp.StatusCode != 200 {
		t.Fatalf("Kustvakt reset: %d %s", resp.StatusCode, body)
	}
	pttl()
	if resp, body := s.do("GET", "/register/"+c.ID, "", "Authorization: Bearer "+c.RAT); resp.StatusCode != 200 ||
		!strings.Contains(body, fmt.Sprintf(`"client_secret_expires_at":%v`, c.Body["client_secret_expires_at"])) {
		t.Errorf("the client after the reset: %d %s", resp.StatusCode, body)
	}
}

// TestAnsweredBeforeBody: an answer that does not need the body is sent
// at once, without the server waiting for a body it will not read, and
// the connection is then closed.
//   - A client that sends "Expect: 100-continue" and waits gets an answer
//     decided by the header fields (RFC 9110 section 10.1.1); one whose
//     body is wanted gets "100 Continue".
//   - A body announced over 64 KiB gets its refusal, in each API's format
//     (Caddy's idle-timeout wrapper made net/http drain up to 256 KiB of it
//     first, so a client that waits for the answer before uploading got it
//     only at the body timeout).
//   - A request refused from its header fields whose body stalls gets
//     its answer within a second, the connection closed (net/http read up
//     to 256 KiB of the body before the answer went out, until a 60 s
//     timeout); one whose body comes, if after the headers, is answered
//     once it has, the connection kept, as is a body read in full and one
//     sent with a request answered with success.
func TestAnsweredBeforeBody(t *testing.T) {
	s := startCaddy(t, "embedded", authedAPIs(t, "{storage}", "", "mediagoblin", "iam", "kustvakt"))
	addr := strings.TrimPrefix(s.URL, "http://")
	answer := func(t *testing.T, head string) *http.Response {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "%sHost: %s\r\n\r\n{", head, addr)
		// Well before the 30 s body timeout or a client's wait for
		// "100 Continue": the answer must not wait for the body.
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no answer before the body was sent: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Close {
			// Nor may closing wait: net/http went on reading up to 256
			// KiB of the body after the answer, until a timeout (60 s).
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("after an answer that closes the connection, the server kept it open: %v", err)
			}
		}
		return resp
	}
	expect := "Expect: 100-continue\r\nContent-Length: 2\r\n"
	for _, c := range []struct {
		name, head string
		status     int
	}{
		{"expect rfc7591 content type", "POST /register HTTP/1.1\r\nContent-Type: text/plain\r\n" + expect, 400},
		{"expect rfc7592 wrong token", "PUT /register/abc HTTP/1.1\r\nContent-Type: application/json\r\nAuthorization: Bearer x\r\n" + expect, 401},
		{"expect iam method", "PUT /v1/clients HTTP/1.1\r\nContent-Type: application/json\r\n" + expect, 405},
		{"expect kustvakt method", "PUT /api/v1.0/oauth2/client/register HTTP/1.1\r\nContent-Type: application/json\r\n" + basicAuth("alice") + "\r\n" + expect, 405},
		{"expect kustvakt content type", "POST /api/v1.0/oauth2/client/register HTTP/1.1\r\nContent-Type: text/plain\r\n" + basicAuth("alice") + "\r\n" + expect, 415},
		{"expect mediagoblin content type", "POST /api/client/register HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=x\r\n" + expect, 400},
		{"expect mediagoblin no content type", "POST /api/client/register HTTP/1.1\r\n" + expect, 400},
		{"expect mediagoblin body wanted", "POST /api/client/register HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n" + expect, 100},
		{"expect body wanted", "POST /register HTTP/1.1\r\nContent-Type: application/json\r\n" + expect, 100},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			resp := answer(t, c.head)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			if c.status != 100 && !resp.Close {
				t.Error("the connection is kept open for a body that is not read")
			}
		})
		if c.status == 100 {
			continue
		}
		// The same request without Expect, its body stalled after a byte.
		t.Run(strings.Replace(c.name, "expect", "stalled", 1), func(t *testing.T) {
			t.Parallel()
			resp := answer(t, strings.Replace(c.head, expect, "Content-Length: 100\r\n", 1))
			if resp.StatusCode != c.status || !resp.Close {
				t.Fatalf("status %d (close %v), want %d and the connection closed", resp.StatusCode, resp.Close, c.status)
			}
		})
	}
	t.Run("read in full", func(t *testing.T) {
		resp := answer(t, "POST /register HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 1\r\n")
		if resp.StatusCode != 400 || resp.Close {
			t.Fatalf("status %d (close %v), want 400 and the connection kept open", resp.StatusCode, resp.Close)
		}
	})
	t.Run("body after the headers", func(t *testing.T) {
		// As a proxy that streams bodies sends them: the refusal waits for
		// the body and keeps the connection (nginx with
		// proxy_request_buffering off dropped its client's next request
		// after an upstream closed early).
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "PUT /register/abc HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n", addr)
		// Later than the 0.2 s a drain gives a body none of which came:
		// nginx answers "100 Continue" itself, and its client's body takes
		// a round trip.
		time.Sleep(300 * time.Millisecond)
		fmt.Fprint(conn, "{}")
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(conn)
		for i := range 2 {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("answer %d: %v", i, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if want := []int{401, 200}[i]; resp.StatusCode != want || resp.Close {
				t.Fatalf("answer %d: status %d (close %v), want %d and the connection kept open", i, resp.StatusCode, resp.Close, want)
			}
			if i == 0 {
				fmt.Fprintf(conn, "GET /.well-known/oauth-authorization-server HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
			}
		}
	})
	t.Run("success without the body", func(t *testing.T) {
		resp := answer(t, "GET /.well-known/oauth-authorization-server HTTP/1.1\r\nContent-Length: 1\r\n")
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("status %d (close %v), want 200 and the connection kept open", resp.StatusCode, resp.Close)
		}
	})
	for _, c := range []struct {
		path, auth string
		status     int
	}{
		{"/register", "", 413},
		{"/api/client/register", "", 413},
		{"/v1/clients", "", 400},
		{"/api/v1.0/oauth2/client/register", basicAuth("alice") + "\r\n", 0},
	} {
		for _, length := range []int{100_000, 10_000_000} {
			t.Run(fmt.Sprintf("oversize %s %d", c.path, length), func(t *testing.T) {
				t.Parallel()
				resp := answer(t, fmt.Sprintf("POST %s HTTP/1.1\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n", c.path, c.auth, length))
				if c.status != 0 && resp.StatusCode != c.status || resp.StatusCode < 400 {
					t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
				}
				if !resp.Close {
					t.Error("the connection is kept open for a body that is not wanted")
				}
			})
		}
	}
}

// TestAdminDeletesDamagedClient: a client whose stored record cannot be
// read leaves the admin listing working and is removed by the admin
// API's DELETE (the operator's way to remove clients), which the record's
// damage used to answer 503.
func TestAdminDeletesDamagedClient(t *testing.T) {
	srv, s, admin := startRedisAdminSite(t)
	bad, good := rfcRegister(t, s, mcpBody), rfcRegister(t, s, mcpBody)
	srv.CLI("set", "dcr:{dcr}:r:c/"+bad.ID, "garbage")
	resp, body := s.adminRaw(admin, "GET", "/client_registration/clients")
	if resp.StatusCode != 200 || !strings.Contains(body, good.ID) || strings.Contains(body, bad.ID) {
		t.Fatalf("list with a damaged client: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.adminRaw(admin, "DELETE", "/client_registration/clients/"+bad.ID); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.adminRaw(admin, "GET", "/client_registration/clients/"+bad.ID); resp.StatusCode != http.StatusNotFound {
		t.Errorf("after the delete: %d %s", resp.StatusCode, body)
	}
	if got := srv.CLI("zcard", "dcr:{dcr}:t:clients"); got != "1" {
		t.Errorf("index entries after the delete: %s", got)
	}
}

// TestAdminRefusalsNotLoggedAsErrors: the admin API's refusals (no such
// client, a bad request) are answered as Caddy's admin server answers
// errors, byte for byte, without the error line Caddy writes for each:
// an operator looking a client up in several stores filled the log.
func TestAdminRefusalsNotLoggedAsErrors(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	admin := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	s := startCaddyWith(t, "embedded", fmt.Sprintf("admin %s\nlog {\n\toutput file %s\n\tformat json\n}", admin, logFile), `	client_registration {
		{storage}
	}`)
	resp, body := s.adminRaw("http://"+admin, "GET", "/client_registration/clients/nosuchclient")
	if resp.StatusCode != http.StatusNotFound || body != "{\"error\":\"no client \\\"nosuchclient\\\"\"}\n" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp, body := s.adminRaw("http://"+admin, "GET", "/client_registration/clients?api=nope"); resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(body, `{"error":"unknown api \"nope\"`) {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"level":"error"`) {
		t.Errorf("refusals logged as errors:\n%s", b)
	}
}

// startRedisAdminSite starts a Redis of the test's own and Caddy with its
// admin endpoint and an RFC 7591 handler on that Redis, under the default
// key prefix (keys the test may read or write as "dcr:{dcr}:...").
func startRedisAdminSite(t *testing.T) (*redistest.Server, *site, string) {
	t.Helper()
	srv := redistest.Start(t)
	s, admin := startCaddyAdmin(t, "redis", fmt.Sprintf(`	client_registration {
		storage redis {
			address %s
		}
	}`, srv.Addr))
	return srv, s, admin
}

// TestSinglePageAppRecipe: the README's try_files written out as its
// matcher and rewrite, with the plugin's paths left out, sends the app's
// paths to index.html and the plugin's to the plugin.
func TestSinglePageAppRecipe(t *testing.T) {
	root := t.TempDir()
	for name, text := range map[string]string{"index.html": "app", "a.txt": "file a"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := startCaddy(t, "embedded", fmt.Sprintf(`	root * %s
	@spa {
		not path /register /register/* /.well-known/*
		file {path} /index.html
	}
	rewrite @spa {file_match.relative}
	client_registration {
		{storage}
	}
	file_server`, root))
	for path, want := range map[string]string{"/": "app", "/some/route": "app", "/a.txt": "file a"} {
		if resp, body := s.do("GET", path, ""); resp.StatusCode != 200 || body != want {
			t.Errorf("GET %s: %d %q, want %q", path, resp.StatusCode, body, want)
		}
	}
	if resp, body := s.do("GET", "/.well-known/oauth-authorization-server", ""); resp.StatusCode != 200 || !strings.Contains(body, `"registration_endpoint"`) {
		t.Errorf("metadata: %d %s", resp.StatusCode, body)
	}
	c := rfcRegister(t, s, mcpBody)
	if resp, body := rfcGet(t, s, c, c.RAT); resp.StatusCode != 200 {
		t.Errorf("read: %d %s", resp.StatusCode, body)
	}
}

// TestRequestBodyLimitInFront: behind Caddy's request_body with a smaller
// max_size, a body over it sent without a Content-Length (an announced one
// Caddy refuses itself, before the plugin) is refused in each API's format
// naming the limit in force, not the plugin's own 65536.
func TestRequestBodyLimitInFront(t *testing.T) {
	s := startCaddy(t, "embedded", fmt.Sprintf(`	request_body {
		max_size 1000
	}
	@authed header_regexp Authorization ^(?i)basic\s
	basic_auth @authed {
		alice %s
	}
	client_registration
	client_registration iam
	client_registration kustvakt
	respond "site" 200`, basicHash(t)))
	big := strings.Repeat("x", 2000)
	for _, tc := range []struct{ path, contentType, body, want string }{
		{"/register", "application/json", `{"redirect_uris":["https://app.example/cb"],"client_name":"` + big + `"}`,
			`413 {"error":"invalid_request","error_description":"the request body is larger than 1000 bytes"}`},
		{"/v1/clients", "application/json", `{"client_name":"` + big + `"}`,
			`400 Bad Request: request body is larger than 1000 bytes.`},
		{"/api/v1.0/oauth2/client/register", "application/json", `{"name":"` + big + `","type":"PUBLIC"}`,
			`413 {"errors":[[107,"Request body is larger than 1000 bytes",null]]}`},
		{"/api/v1.0/oauth2/client/list", "application/x-www-form-urlencoded", "super_client_id=" + big,
			`413 {"errors":[[107,"Request body is larger than 1000 bytes",null]]}`},
	} {
		// A reader of unknown length: the request goes out chunked.
		req, err := http.NewRequest("POST", s.URL+tc.path, io.MultiReader(strings.NewReader(tc.body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", tc.contentType)
		req.SetBasicAuth("alice", "pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := fmt.Sprintf("%d %s", resp.StatusCode, b); !strings.Contains(got, tc.want[4:]) || got[:3] != tc.want[:3] {
			t.Errorf("%s: %s, want %s", tc.path, got, tc.want)
		}
	}
}

// TestOversizeBodyBehindProxy: a body over 64 KiB, refused before it is
// read, gets its 413, whole and with its length, while its client, or a
// reverse proxy in front, is still sending it (one that forwards "Expect:
// 100-continue" too): the rest is read and dropped after the answer. The
// connection used to be closed at once with the body's bytes arriving,
// which reset it: the answer was lost (a proxy said 502), for bodies over
// 256 KiB and for clients that ask to close the connection above all,
// whose bodies net/http drains none of.
func TestOversizeBodyBehindProxy(t *testing.T) {
	port, front := redistest.FreePort(t), redistest.FreePort(t)
	loadCaddyfile(t, testCaddyfile("admin off\nstorage file_system "+dataDir(t), port, `	client_registration {
		rate_limit off
	}
	client_registration mediagoblin {
		rate_limit off
	}`)+fmt.Sprintf("\nhttp://127.0.0.1:%d {\n\treverse_proxy 127.0.0.1:%d\n}\n", front, port))
	send := func(addr, path, conn string, size int) (int, error) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			// Sent whole while the answer is read, as a client that does
			// not look for an early answer does; a write error is the
			// answer's closing the connection.
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n{%s",
				path, size, conn, strings.Repeat("a", size-1))
		}()
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		for err == nil && resp.StatusCode < 200 {
			// "100 Continue" from the proxy, whose own reading of the
			// body asks for it.
			resp, err = http.ReadResponse(br, nil)
		}
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		if resp.ContentLength <= 0 {
			// Sent chunked, the answer would end only with the drain.
			return 0, fmt.Errorf("answer %d without Content-Length", resp.StatusCode)
		}
		return resp.StatusCode, nil
	}
	for _, tc := range []struct {
		name, addr, conn string
		sizes            []int
		n                int
	}{
		{"proxy", "127.0.0.1:" + strconv.Itoa(front), "", []int{65537, 200 << 10, 300 << 10, 1 << 20}, 240},
		{"direct, Connection: close", "127.0.0.1:" + strconv.Itoa(port), "Connection: close\r\n", []int{65537, 200 << 10, 300 << 10, 1 << 20}, 240},
		// A proxy forwards Expect and sends the body at once (as does
		// curl, after a second): dropped too.
		{"proxy, Expect", "127.0.0.1:" + strconv.Itoa(front), "Expect: 100-continue\r\n", []int{65537, 300 << 10, 2 << 20}, 90},
		{"direct, Expect", "127.0.0.1:" + strconv.Itoa(port), "Expect: 100-continue\r\n", []int{65537, 300 << 10, 2 << 20}, 90},
	} {
		statuses := map[string]int{}
		for i := range tc.n {
			size := tc.sizes[i%len(tc.sizes)] + i
			path := []string{"/register", "/api/client/register"}[i/len(tc.sizes)%2]
			status, err := send(tc.addr, path, tc.conn, size)
			if err != nil {
				statuses[err.Error()]++
				continue
			}
			statuses[strconv.Itoa(status)]++
		}
		if len(statuses) != 1 || statuses["413"] != tc.n {
			t.Errorf("%s: answers %v, want 413 only", tc.name, statuses)
		}
	}

	// A client that sends in bursts, pausing longer than the idle limit
	// between them, and reads the answer once it has sent everything (as
	// Python's http.client does).
	for _, path := range []string{"/register", "/api/client/register"} {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 200000\r\n\r\n{", path)
		var werr error
		for range 3 {
			time.Sleep(300 * time.Millisecond)
			if _, werr = c.Write([]byte(strings.Repeat("a", 50000))); werr != nil {
				break
			}
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if werr != nil || err != nil || resp.StatusCode >= 500 || resp.StatusCode < 400 {
			t.Errorf("%s, body sent in bursts: write %v, answer %v %v", path, werr, resp, err)
		}
	}

	// A chunked body whose client waits for "100 Continue": it is sent
	// once the handler reads it, and dropped after the 413 too.
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 2 * time.Second, DisableKeepAlives: true}}
	bad := 0
	for i := range 60 {
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/register", port),
			io.MultiReader(strings.NewReader("{"), strings.NewReader(strings.Repeat("a", 70<<10+i*3000))))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Expect", "100-continue")
		resp, err := client.Do(req)
		if err != nil {
			bad++
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("chunked bodies after 100 Continue: %d of 60 without their 413", bad)
	}
}
