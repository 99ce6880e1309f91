package caddydcr

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-dcr/caddy-dcr/registry"
)

// TestCLI: `caddy client-registration` drives the admin API of a running
// Caddy from the command line (the binary built from cmd/caddy, against a
// Caddy running in this process).
func TestCLI(t *testing.T) {
	bin := builtCaddy(t)
	s, admin := startCaddyAdmin(t, "embedded", `	client_registration {
		{storage}
	}
	client_registration {
		{storage}
		prefix /t
		registration token
	}`)
	addr := strings.TrimPrefix(admin, "http://")
	run := func(args ...string) (string, string, error) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"client-registration"}, append(args, "--address", addr)...)...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		return out.String(), errOut.String(), err
	}
	ok := func(args ...string) string {
		t.Helper()
		out, stderr, err := run(args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s%s", args, err, out, stderr)
		}
		return out
	}
	object := func(out string) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("%v in %q", err, out)
		}
		return m
	}
	list := func(out string) []map[string]any {
		t.Helper()
		var l []map[string]any
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatalf("%v in %q", err, out)
		}
		return l
	}

	ids := func(l []map[string]any) []string {
		out := []string{}
		for _, c := range l {
			out = append(out, c["client_id"].(string))
		}
		return out
	}
	conf := rfcRegister(t, s, `{"redirect_uris":["https://a.example/cb"]}`)
	time.Sleep(5 * time.Millisecond) // listed by the millisecond of registration
	pub := rfcRegister(t, s, mcpBody)
	if got := ids(list(ok("clients"))); !slices.Equal(got, []string{conf.ID, pub.ID}) {
		t.Errorf("clients: %v, want %v, oldest first", got, []string{conf.ID, pub.ID})
	}
	if l := list(ok("clients", "--api", "iam")); len(l) != 0 {
		t.Errorf("clients --api iam: %v", l)
	}
	if m := object(ok("client", conf.ID)); m["client_id"] != conf.ID || m["api"] != "rfc7591" {
		t.Errorf("client: %v", m)
	}
	if m := object(ok("metadata", conf.ID)); m["client_id"] != conf.ID || m["token_endpoint_auth_method"] != "client_secret_basic" || m["client_secret"] != nil {
		t.Errorf("metadata: %v", m)
	}
	if m := object(ok("super", conf.ID)); m["super"] != true {
		t.Errorf("super: %v", m)
	}
	if m := object(ok("super", conf.ID, "--off")); m["super"] != false {
		t.Errorf("super --off: %v", m)
	}
	if m := object(ok("permit", conf.ID, "--off")); m["permitted"] != false {
		t.Errorf("permit --off: %v", m)
	}

	tok := object(ok("issue-token", "--name", "ci", "--expires-in", "1h", "--uses", "2"))
	if tok["name"] != "ci" || tok["uses"] != 2.0 || len(tok["token"].(string)) < 32 {
		t.Errorf("issue-token: %v", tok)
	}
	// A client registered with it is the token's: --owner finds it.
	resp, body := s.postJSON("/t/register", mcpBody, "Authorization: Bearer "+tok["token"].(string))
	if resp.StatusCode != 201 {
		t.Fatalf("register with the token: %d %s", resp.StatusCode, body)
	}
	byToken := object(body)["client_id"].(string)
	if got := ids(list(ok("clients", "--owner", "token:"+tok["id"].(string)))); !slices.Equal(got, []string{byToken}) {
		t.Errorf("clients --owner: %v, want [%s]", got, byToken)
	}
	if l := list(ok("tokens")); len(l) != 1 || l[0]["id"] != tok["id"] || l[0]["token"] != nil {
		t.Errorf("tokens: %v", l)
	}
	if out := ok("revoke-token", tok["id"].(string)); out != "" {
		t.Errorf("revoke-token printed %q", out)
	}
	if l := list(ok("tokens")); len(l) != 0 {
		t.Errorf("tokens after revoke-token: %v", l)
	}

	if out := ok("delete", pub.ID); out != "" {
		t.Errorf("delete printed %q", out)
	}
	resp, body = rfcGet(t, s, pub, pub.RAT)
	rfcWantUnauthorized(t, resp, body, rfcInvalidToken)

	// Without --address, as caddy reload: the admin address of --config,
	// else of a Caddyfile in the current directory.
	dir := t.TempDir()
	caddyfile := "{\n\tadmin " + addr + "\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "other.caddyfile"), []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"tokens"}, {"tokens", "--config", filepath.Join(dir, "other.caddyfile"), "--adapter", "caddyfile"}} {
		cmd := exec.Command(bin, append([]string{"client-registration"}, args...)...)
		if len(args) == 1 {
			cmd.Dir = dir
		}
		if out, err := cmd.Output(); err != nil || strings.TrimSpace(string(out)) != "[]" {
			t.Errorf("%v without --address: %v %s", args, err, out)
		}
	}

	// Failures exit 1 and say why.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"client", pub.ID}, "HTTP 404"},
		{[]string{"delete", pub.ID}, "HTTP 404"},
		{[]string{"clients", "--api", "oidc"}, "HTTP 400"},
		{[]string{"client"}, "client takes one argument, the id"},
		{[]string{"metadata", ""}, "metadata: the id is empty"},
		{[]string{"tokens", "x"}, "tokens takes no argument"},
		{[]string{"frobnicate"}, `unknown action \"frobnicate\"`},
		{[]string{}, "no action"},
		{[]string{"clients", "--store", "nope:"}, "HTTP 404"},
		{[]string{"delete", conf.ID, "--off"}, "--off does not apply to delete"},
		{[]string{"tokens", "--owner", "x"}, "--owner does not apply to tokens"},
		{[]string{"client", "."}, `client: \".\" is not an id`},
		{[]string{"delete", ".."}, `delete: \"..\" is not an id`},
		{[]string{"clients", "--owner", ""}, "--owner is empty"},
		{[]string{"permit", conf.ID, "--store", "a"}, "HTTP 404"},
	} {
		out, stderr, err := run(tc.args...)
		if ee, isExit := err.(*exec.ExitError); !isExit || ee.ExitCode() != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: %v, stdout %q, stderr %q; want exit 1 and %q", tc.args, err, out, stderr, tc.want)
		}
	}
}

// TestStoreSetNames: a handler's registration leaves with it, restoring
// the settings of the handlers still loaded; a store's unique name picks
// it even where it is also another store's short name.
func TestStoreSetNames(t *testing.T) {
	s := &storeSet{m: map[string]*storeEntry{}}
	old, rejected := registry.New(nil), registry.New(nil)
	s.add("k1", "caddy", "caddy", "rfc7591", old)
	h := s.add("k1", "caddy", "caddy", "rfc7591", rejected)
	s.add("k2", "caddy", "caddy@127.0.0.1:6379", "rfc7591", registry.New(nil))
	s.remove("k1", h)
	v, err := s.get("caddy")
	if err != nil || v != old {
		t.Errorf("get(caddy): %v, the remaining handler's registry: %v", err, v == old)
	}
	if v, err := s.get("caddy@127.0.0.1:6379"); err != nil || v == old {
		t.Errorf("get(caddy@...): %v", err)
	}
	if _, err := s.get(""); err == nil {
		t.Error("get(\"\") with two stores: no error")
	}

	// One store, two entries (connections that differ): the newest
	// handler of an API wins, whichever entry it is in.
	s = &storeSet{m: map[string]*storeEntry{}}
	older, newer := registry.New(nil), registry.New(nil)
	for i := range 20 {
		s.add("k"+strconv.Itoa(i), "dcr", "dcr@a", "kustvakt", registry.New(nil))
	}
	s.add("k3", "dcr", "dcr@a", "rfc7591", older)
	s.add("k17", "dcr", "dcr@a", "rfc7591", newer)
	newest := registry.New(nil)
	s.add("k5", "dcr", "dcr@a", "kustvakt", newest)
	for range 10 {
		if got := s.lifetimesOf("dcr@a", "rfc7591"); got != newer {
			t.Fatalf("lifetimesOf: the older handler's registry (%v)", got == older)
		}
		if v, err := s.get("dcr"); err != nil || v != newest {
			t.Fatalf("get: %v, not the newest handler's registry", err)
		}
	}
	if s.lifetimesOf("dcr@a", "iam") != nil || s.lifetimesOf("dcr@b", "rfc7591") != nil {
		t.Error("lifetimesOf: a registry for an API or store without handlers")
	}
}
