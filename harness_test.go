package caddydcr

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/caddy-dcr/caddy-dcr/internal/redistest"
)

// The end-to-end tests of this package run Caddy in-process (caddy.Load, as
// `caddy run` does) with the plugin, against a real redis-server started
// once for the package, and against the embedded store. They must not run
// in parallel: there is one Caddy per process.

var (
	sharedRedis *redistest.Server
	// dataRoot holds the Caddy storage directories of the tests. They are
	// removed when the package's tests end, not when each test does: the
	// running Caddy may still write to its storage in the background.
	dataRoot string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		// A fuzzing worker runs only a fuzz function, none of which needs
		// Redis. A redis-server started here would inherit the worker's
		// pipes to the coordinator and, when the worker crashes, keep them
		// open: the coordinator would wait forever instead of reporting
		// the crashing input.
		os.Exit(m.Run())
	}
	mt := redistest.Main()
	sharedRedis = redistest.Start(mt)
	dataRoot = mt.TempDir()
	code := m.Run()
	_ = caddy.Stop()
	mt.Close()
	os.Exit(code)
}

// dataDir returns a fresh directory for a Caddy storage.
func dataDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp(dataRoot, "data")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// backends are the two stores every API is tested on.
var backends = []string{"redis", "embedded"}

var prefixSeq atomic.Int64

// storageConfig returns the storage subdirective for a backend, with a key
// prefix of its own so tests never see each other's clients.
func storageConfig(backend string) string {
	if backend == "embedded" {
		return "storage caddy"
	}
	return fmt.Sprintf("storage redis {\n\t\t\taddress %s\n\t\t\tkey_prefix t%d:\n\t\t}", sharedRedis.Addr, prefixSeq.Add(1))
}

// site is a running Caddy site.
type site struct {
	t   *testing.T
	URL string
}

// startCaddy loads a config whose only site is http://127.0.0.1:<free port>
// with the given body; "{storage}" in the body becomes the backend's storage
// subdirective (and "rate_limit off", unless the body sets a rate limit).
// The embedded store lives in a fresh directory.
func startCaddy(t *testing.T, backend, body string) *site {
	t.Helper()
	return startCaddyWith(t, backend, "admin off", body)
}

// startCaddyAdmin is startCaddy with Caddy's admin endpoint on; it returns
// the site and the admin endpoint's base URL.
func startCaddyAdmin(t *testing.T, backend, body string) (*site, string) {
	t.Helper()
	admin := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	return startCaddyWith(t, backend, "admin "+admin, body), "http://" + admin
}

func startCaddyWith(t *testing.T, backend, admin, body string) *site {
	t.Helper()
	port := redistest.FreePort(t)
	st := storageConfig(backend)
	// Every test registers from 127.0.0.1; the default rate limit (60 per
	// hour) is turned off unless the test is about it.
	if !strings.Contains(body, "rate_limit") {
		st += "\n\t\trate_limit off"
	}
	body = strings.ReplaceAll(body, "{storage}", st)
	loadCaddyfile(t, testCaddyfile(admin+"\ngrace_period 1ms\nstorage file_system "+dataDir(t), port, body))
	return &site{t: t, URL: "http://127.0.0.1:" + strconv.Itoa(port)}
}

// testCaddyfile is a Caddyfile for the tests: the global options given
// (one per line: admin, storage, servers, grace_period...) with autosave
// and automatic HTTPS off and, unless they configure a log, Caddy's log
// discarded; then the site http://127.0.0.1:<port> with body.
func testCaddyfile(globals string, port int, body string) string {
	if !strings.Contains(globals, "log {") {
		globals += "\nlog {\n\toutput discard\n}"
	}
	globals = "\t" + strings.ReplaceAll(strings.TrimSpace(globals), "\n", "\n\t")
	return fmt.Sprintf("{\n%s\n\tpersist_config off\n\tauto_https off\n}\n\nhttp://127.0.0.1:%d {\n%s\n}\n", globals, port, body)
}

// loadCaddyfile adapts and loads a whole Caddyfile.
func loadCaddyfile(t *testing.T, cfg string) {
	t.Helper()
	js, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
	if err != nil {
		t.Fatalf("adapting config: %v\n%s", err, cfg)
	}
	for _, w := range warnings {
		if w.Message != "Caddyfile input is not formatted; run 'caddy fmt --overwrite' to fix inconsistencies" {
			t.Logf("adapt warning: %s", w.String())
		}
	}
	if err := caddy.Load(js, true); err != nil {
		t.Fatalf("loading config: %v\n%s", err, cfg)
	}
}

var httpClient = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
	return http.ErrUseLastResponse
}}

// do sends a request; headers are "Name: value" strings.
func (s *site) do(method, path, body string, headers ...string) (*http.Response, string) {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		if k = strings.TrimSpace(k); strings.EqualFold(k, "Host") {
			req.Host = strings.TrimSpace(v)
			continue
		}
		req.Header.Add(k, strings.TrimSpace(v))
	}
	resp, err := httpClient.Do(req)
	for try := 0; err != nil && len(body) > 64<<10 && try < 2 && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)); try++ {
		// A body over the limit is refused before it is all read, and the
		// connection closed: a client still writing it (a slow test run,
		// -race) may be reset before it reads the answer. The refusal
		// changed nothing, so it is asked again.
		req.Body, _ = req.GetBody()
		resp, err = httpClient.Do(req)
	}
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp, string(b)
}

// postJSON posts a JSON body.
func (s *site) postJSON(path, body string, headers ...string) (*http.Response, string) {
	s.t.Helper()
	for _, h := range headers {
		if k, _, _ := strings.Cut(h, ":"); strings.EqualFold(strings.TrimSpace(k), "Content-Type") {
			return s.do(http.MethodPost, path, body, headers...) // a Content-Type of the test's own
		}
	}
	return s.do(http.MethodPost, path, body, append([]string{"Content-Type: application/json"}, headers...)...)
}

// object decodes a JSON object body or fails the test.
func object(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader([]byte(body)))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, body)
	}
	return m
}

// forBackends runs f once per backend as subtests.
func forBackends(t *testing.T, f func(t *testing.T, backend string)) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) { f(t, b) })
	}
}
