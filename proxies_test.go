package caddydcr

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestLaxProxiesWarning: a server that trusts proxies without
// trusted_proxies_strict gets one warning from a rate-limited handler, at
// its first request; a strict one, one without trusted proxies or a
// handler without a rate limit gets none.
func TestLaxProxiesWarning(t *testing.T) {
	proxies := json.RawMessage(`{"source":"static","ranges":["127.0.0.1/32"]}`)
	for _, tc := range []struct {
		name      string
		srv       *caddyhttp.Server
		rateLimit bool
		warned    int
	}{
		{"lax", &caddyhttp.Server{TrustedProxiesRaw: proxies}, true, 1},
		{"strict", &caddyhttp.Server{TrustedProxiesRaw: proxies, TrustedProxiesStrict: 1}, true, 0},
		{"no proxies", &caddyhttp.Server{}, true, 0},
		{"no rate limit", &caddyhttp.Server{TrustedProxiesRaw: proxies}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.WarnLevel)
			h := &Handler{logger: zap.New(core), rateLimit: tc.rateLimit, proxyCheck: new(sync.Once)}
			for range 3 {
				r := httptest.NewRequest("GET", "http://a.example/", nil)
				r = r.WithContext(context.WithValue(r.Context(), caddyhttp.ServerCtxKey, tc.srv))
				h.proxyCheck.Do(func() { h.warnLaxProxies(r) })
			}
			if n := logs.FilterMessageSnippet("trusted_proxies_strict").Len(); n != tc.warned {
				t.Errorf("%d warnings, want %d", n, tc.warned)
			}
		})
	}
}
