package caddydcr

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestShortSecretWarning: a secret the operator chose (a static initial
// access token, a super client's secret, Kustvakt's admin token) that is
// short enough to be guessed is warned about when the config loads, without
// being shown; long ones are not.
func TestShortSecretWarning(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	short, long := "s3cret-guessable", "Qm9uIGpvdXIgbGUgbW9uZGUgZW50aWVy"
	h := Handler{
		API: "kustvakt", logger: zap.New(core),
		InitialAccessTokens: []string{short, long},
		SuperClients:        []SuperClient{{ClientID: "weak", Secret: short}, {ClientID: "strong", Secret: long}},
		AdminToken:          short,
	}
	repl := caddy.NewReplacer()
	if _, err := h.gate(repl); err != nil {
		t.Fatal(err)
	}
	if _, err := h.kustvaktOptions(repl); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range logs.All() {
		if strings.Contains(e.Message, "s3cret") || strings.Contains(e.Message, long) {
			t.Errorf("a secret is shown: %s", e.Message)
		}
		got = append(got, e.Message)
	}
	want := []string{"an initial_access_token is only 16", `super_client "weak"'s secret is only 16`, "admin_token is only 16"}
	if len(got) != len(want) {
		t.Fatalf("warnings %q, want %d", got, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("warning %q, want it to start with %q", got[i], w)
		}
	}
}
