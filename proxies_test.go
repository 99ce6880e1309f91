package caddydcr

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-dcr/caddy-dcr/internal/redistest"
)

// TestLaxProxiesWarning: a server that trusts proxies without
// trusted_proxies_strict gets one warning from a rate-limited handler, at
// the first request that comes through a trusted proxy (only such a request
// shows that the server trusts proxies); a strict server, requests from
// elsewhere or a handler without a rate limit get none.
func TestLaxProxiesWarning(t *testing.T) {
	for _, tc := range []struct {
		name      string
		srv       *caddyhttp.Server
		trusted   []bool // per request: whether it came through a trusted proxy
		rateLimit bool
		warned    int
	}{
		{"lax", &caddyhttp.Server{}, []bool{true, true, true}, true, 1},
		{"lax, proxied later", &caddyhttp.Server{}, []bool{false, false, true, true}, true, 1},
		{"strict", &caddyhttp.Server{TrustedProxiesStrict: 1}, []bool{true, true}, true, 0},
		{"no proxy", &caddyhttp.Server{}, []bool{false, false}, true, 0},
		{"no rate limit", &caddyhttp.Server{}, []bool{true}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.WarnLevel)
			h := &Handler{logger: zap.New(core), rateLimit: tc.rateLimit, proxyWarned: new(atomic.Bool)}
			h.proxyWarned.Store(!tc.rateLimit) // as Provision sets it
			for _, trusted := range tc.trusted {
				r := httptest.NewRequest("GET", "http://a.example/", nil)
				ctx := context.WithValue(r.Context(), caddyhttp.ServerCtxKey, tc.srv)
				ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{caddyhttp.TrustedProxyVarKey: trusted})
				if !h.proxyWarned.Load() {
					h.warnLaxProxies(r.WithContext(ctx))
				}
			}
			if n := logs.FilterMessageSnippet("trusted_proxies_strict").Len(); n != tc.warned {
				t.Errorf("%d warnings, want %d", n, tc.warned)
			}
		})
	}
}

// TestLaxProxiesWarningE2E: through Caddy itself, which drops a server's
// trusted_proxies config once it has loaded it, a lax server is still
// warned about, once.
func TestLaxProxiesWarningE2E(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("strict=%v", strict), func(t *testing.T) {
			servers := "servers {\n\ttrusted_proxies static 127.0.0.1/32\n}"
			if strict {
				servers = "servers {\n\ttrusted_proxies static 127.0.0.1/32\n\ttrusted_proxies_strict\n}"
			}
			port := redistest.FreePort(t)
			logFile := filepath.Join(t.TempDir(), "caddy.log")
			loadCaddyfile(t, testCaddyfile(fmt.Sprintf("admin off\nstorage file_system %s\n%s\nlog {\n\toutput file %s\n\tformat json\n}",
				dataDir(t), servers, logFile), port, "\tclient_registration {\n\t\trate_limit 100 1h\n\t}"))
			s := &site{t: t, URL: "http://127.0.0.1:" + strconv.Itoa(port)}
			for range 3 {
				if resp, body := s.postJSON("/register", mcpBody, "X-Forwarded-For: 203.0.113.9"); resp.StatusCode != 201 {
					t.Fatalf("register: %d %s", resp.StatusCode, body)
				}
			}
			b, err := os.ReadFile(logFile)
			if err != nil {
				t.Fatal(err)
			}
			want := 1
			if strict {
				want = 0
			}
			if n := strings.Count(string(b), "trusted_proxies is set without trusted_proxies_strict"); n != want {
				t.Fatalf("%d warnings, want %d:\n%s", n, want, b)
			}
		})
	}
}
