package caddydcr

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-dcr/caddy-dcr/internal/xbuild"
)

// These tests keep xcaddy.json, go.mod and cmd/caddy in step, and build the
// binary `make run` builds the way it builds it.

func buildManifest(t *testing.T) (*xbuild.Manifest, *xbuild.GoMod) {
	t.Helper()
	m, err := xbuild.ReadManifest("xcaddy.json")
	if err != nil {
		t.Fatal(err)
	}
	gm, err := xbuild.ReadGoMod(".")
	if err != nil {
		t.Fatal(err)
	}
	return m, gm
}

// TestBuildManifest checks that xcaddy.json builds Caddy at go.mod's version
// with this module, from this directory, and nothing else. (Test binaries
// carry no dependency versions; TestBuildBinary checks the linked version.)
func TestBuildManifest(t *testing.T) {
	m, gm := buildManifest(t)
	if err := xbuild.Check(m, gm, "."); err != nil {
		t.Fatal(err)
	}
	if gm.Module != "github.com/caddy-dcr/caddy-dcr" {
		t.Errorf("go.mod module is %s; the module path must be the repository path", gm.Module)
	}
	if len(m.Plugins) != 1 || m.Plugins[0].ModulePath != gm.Module {
		t.Errorf("plugins %+v, want exactly %s", m.Plugins, gm.Module)
	}
	if m.CaddyVersion != gm.Requires[xbuild.CaddyModule] {
		t.Errorf("caddy_version %s, go.mod requires %s", m.CaddyVersion, gm.Requires[xbuild.CaddyModule])
	}

	// And the module registers what the README and the example use.
	if _, err := caddy.GetModule("http.handlers.client_registration"); err != nil {
		t.Errorf("module not registered: %v", err)
	}
}

// TestBuildBinary builds bin/caddy's equivalent into a temporary directory
// as `make build` does, then runs it the ways users do.
func TestBuildBinary(t *testing.T) {
	m, gm := buildManifest(t)
	if err := xbuild.Check(m, gm, "."); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "caddy")
	cmd, err := xbuild.Command(m, ".", bin)
	if err != nil {
		t.Fatal(err)
	}
	// No VCS stamp: a checkout owned by another user must not fail the build.
	cmd.Env = append(cmd.Env, "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -buildvcs=false"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	if err := xbuild.Verify(m, gm, bin); err != nil {
		t.Fatal(err)
	}

	home := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		c := exec.Command(bin, args...)
		c.Env = append(os.Environ(), "HOME="+home, "XDG_DATA_HOME="+filepath.Join(home, "data"),
			"XDG_CONFIG_HOME="+filepath.Join(home, "config"))
		var stdout, stderr bytes.Buffer
		c.Stdout, c.Stderr = &stdout, &stderr
		if err := c.Run(); err != nil {
			t.Fatalf("caddy %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		return stdout.String() + stderr.String()
	}
	if out := run("version"); !strings.HasPrefix(out, m.CaddyVersion+" ") {
		t.Errorf("caddy version: %q, want %s", out, m.CaddyVersion)
	}
	if out := run("list-modules", "--skip-standard"); !strings.Contains(out, "http.handlers.client_registration") {
		t.Errorf("caddy list-modules does not list http.handlers.client_registration:\n%s", out)
	}
	// fmt exits non-zero when the file is not formatted.
	run("fmt", "Caddyfile.example")
	// validate provisions every module (basic_auth's hash, the handlers)
	// without listening; the embedded store needs no server.
	if out := run("validate", "--config", "Caddyfile.example"); strings.Contains(out, `"level":"warn"`) {
		t.Errorf("caddy validate warns:\n%s", out)
	}
	// A config whose Redis cannot be reached still adapts and validates:
	// provisioning does no network I/O.
	unreachable := filepath.Join(home, "Caddyfile")
	if err := os.WriteFile(unreachable, []byte("http://localhost:8080 {\n\tclient_registration {\n\t\tstorage redis {\n\t\t\taddress 127.0.0.1:1\n\t\t\tpassword {env.DCR_BUILD_TEST_PASSWORD}\n\t\t}\n\t}\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DCR_BUILD_TEST_PASSWORD", "hunter2")
	if out := run("adapt", "--config", unreachable); !strings.Contains(out, "{env.DCR_BUILD_TEST_PASSWORD}") || strings.Contains(out, "hunter2") {
		t.Errorf("adapt resolved the placeholder or failed:\n%s", out)
	}
	run("validate", "--config", unreachable)
	// The same with the variable unset: said when it loads (an outage,
	// NOAUTH, at every request if a password was meant).
	t.Setenv("DCR_BUILD_TEST_PASSWORD", "")
	if out := run("validate", "--config", unreachable); !strings.Contains(out, "storage redis password is set from a placeholder that resolves to an empty value") {
		t.Errorf("validate with the password unset does not warn:\n%s", out)
	}
}
