package xbuild

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const mod = "example.com/plug"

// moduleDir writes a main package importing the given paths.
func moduleDir(t *testing.T, imports ...string) string {
	t.Helper()
	dir := t.TempDir()
	src := "package main\n\nimport (\n"
	for _, p := range imports {
		src += "\t_ \"" + p + "\"\n"
	}
	src += ")\n\nfunc main() {}\n"
	if err := os.MkdirAll(filepath.Join(dir, "cmd", "caddy"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cmd", "caddy", "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func goMod() *GoMod {
	return &GoMod{Module: mod, Requires: map[string]string{CaddyModule: "v2.11.9"}, Replaces: map[string]string{}}
}

const good = `{"caddy_version": "v2.11.9", "plugins": [{"module_path": "example.com/plug"}],
	"replacements": [{"old": "example.com/plug", "new": "."}]}`

func TestParseManifest(t *testing.T) {
	m, err := ParseManifest("x.json", []byte(`{"caddy_version": "v2.11.9", "plugins": [{"module_path": "example.com/plug"}],
		"replacements": [{"old": "example.com/plug", "new": "./"}], "race_detector": true,
		"build_flags": "-trimpath -ldflags '-w -s'", "os": "linux", "arch": "arm", "arm": "7", "cgo": false}`))
	if err != nil {
		t.Fatal(err)
	}
	f := false
	want := &Manifest{CaddyVersion: "v2.11.9", Plugins: []Dependency{{ModulePath: mod}},
		Replacements: []Replace{{Old: mod, New: "./"}}, RaceDetector: true, BuildFlags: "-trimpath -ldflags '-w -s'",
		OS: "linux", Arch: "arm", ARM: "7", Cgo: &f}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("got %+v\nwant %+v", m, want)
	}

	for name, tc := range map[string]struct{ in, want string }{
		"replace key in plugin":   {`{"plugins": [{"module_path": "example.com/plug", "replace": "."}]}`, `unknown field "replace"`},
		"unsupported builder key": {`{"embed_dir": [{"dir": "x"}]}`, `unknown field "embed_dir"`},
		"not json":                {`caddy_version = 1`, "invalid character"},
		"trailing data":           {`{} {}`, "trailing data"},
		"wrong type":              {`{"plugins": "example.com/plug"}`, "cannot unmarshal"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseManifest("x.json", []byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "x.json: ") {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	okDir := moduleDir(t, caddycmdImport, standardImport, mod)
	for _, tc := range []struct {
		name     string
		manifest string
		dir      string
		edit     func(*GoMod)
		want     []string // substrings of the error; none: no error
	}{
		{name: "good", manifest: good},
		{name: "good, ./ and ./.", manifest: `{"caddy_version": "v2.11.9", "plugins": [{"module_path": "example.com/plug"}],
			"replacements": [{"old": "example.com/plug", "new": "./."}]}`},
		{name: "version mismatch", manifest: strings.Replace(good, "v2.11.9", "v2.10.0", 1),
			want: []string{`caddy_version is "v2.10.0" but go.mod requires github.com/caddyserver/caddy/v2 v2.11.9`}},
		{name: "version missing", manifest: strings.Replace(good, `"caddy_version": "v2.11.9",`, "", 1),
			want: []string{`caddy_version is missing: set it to "v2.11.9"`}},
		{name: "version without v", manifest: strings.Replace(good, "v2.11.9", "2.11.9", 1),
			want: []string{`set caddy_version to "v2.11.9"`}},
		{name: "go.mod without caddy", manifest: good, edit: func(g *GoMod) { delete(g.Requires, CaddyModule) },
			want: []string{"go.mod does not require github.com/caddyserver/caddy/v2"}},
		{name: "go.mod replaces caddy", manifest: good, edit: func(g *GoMod) { g.Replaces[CaddyModule] = "../caddy" },
			want: []string{"go.mod replaces github.com/caddyserver/caddy/v2 with ../caddy"}},
		{name: "no plugins", manifest: `{"caddy_version": "v2.11.9"}`, want: []string{"plugins is empty"}},
		{name: "foreign plugin", manifest: `{"caddy_version": "v2.11.9", "plugins": [{"module_path": "example.com/plug"},
			{"module_path": "github.com/mholt/caddy-ratelimit"}], "replacements": [{"old": "example.com/plug", "new": "."}]}`,
			want: []string{"plugins[1] is github.com/mholt/caddy-ratelimit, not this module (example.com/plug)"}},
		{name: "plugin twice", manifest: `{"caddy_version": "v2.11.9", "plugins": [{"module_path": "example.com/plug"},
			{"module_path": "example.com/plug"}], "replacements": [{"old": "example.com/plug", "new": "."}]}`,
			want: []string{"plugins[1] lists example.com/plug twice"}},
		{name: "plugin without path", manifest: `{"caddy_version": "v2.11.9", "plugins": [{"version": "v1.0.0"}]}`,
			want: []string{"plugins[0] has no module_path"}},
		{name: "plugin with version", manifest: strings.Replace(good, `"example.com/plug"}`, `"example.com/plug", "version": "v1.2.3"}`, 1),
			want: []string{`plugins[0] (example.com/plug) has version "v1.2.3"`}},
		{name: "not replaced", manifest: `{"caddy_version": "v2.11.9", "plugins": [{"module_path": "example.com/plug"}]}`,
			want: []string{`plugin example.com/plug is not replaced by this directory: add {"old": "example.com/plug", "new": "."}`}},
		{name: "replaced elsewhere", manifest: strings.Replace(good, `"new": "."`, `"new": "../plug"`, 1),
			want: []string{`replaces example.com/plug by "../plug": it must be "."`}},
		{name: "replacement with version", manifest: strings.Replace(good, `"old": "example.com/plug"`, `"old": "example.com/plug@v1.0.0"`, 1),
			want: []string{`old is "example.com/plug@v1.0.0": write the module path without a version`}},
		{name: "other replacement", manifest: strings.Replace(good, `]}`, `, {"old": "golang.org/x/net", "new": "../net"}]}`, 1),
			want: []string{"replacements[1] (golang.org/x/net => ../net) is not supported"}},
		{name: "bad build flags", manifest: strings.Replace(good, `{"caddy`, `{"build_flags": "-ldflags '-w", "caddy`, 1),
			want: []string{"build_flags: unterminated ' quote"}},
		{name: "main without plugin", manifest: good, dir: moduleDir(t, caddycmdImport, standardImport),
			want: []string{`cmd/caddy/main.go does not import "example.com/plug"`}},
		{name: "main without standard modules", manifest: good, dir: moduleDir(t, caddycmdImport, mod),
			want: []string{`does not import "github.com/caddyserver/caddy/v2/modules/standard"`}},
		{name: "no main", manifest: good, dir: t.TempDir(), want: []string{"reading the main package"}},
		{name: "several problems at once", manifest: `{"caddy_version": "v2.0.0", "plugins": [{"module_path": "example.com/plug", "version": "v1"}]}`,
			want: []string{`caddy_version is "v2.0.0"`, `has version "v1"`, "is not replaced by this directory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseManifest("x.json", []byte(tc.manifest))
			if err != nil {
				t.Fatal(err)
			}
			gm := goMod()
			if tc.edit != nil {
				tc.edit(gm)
			}
			dir := tc.dir
			if dir == "" {
				dir = okDir
			}
			err = Check(m, gm, dir)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestSplitFlags(t *testing.T) {
	for in, want := range map[string][]string{
		"":                                   nil,
		"  -trimpath  ":                      {"-trimpath"},
		`-ldflags "-w -s" -trimpath`:         {"-ldflags", "-w -s", "-trimpath"},
		`-ldflags '-X "a=b c"'`:              {"-ldflags", `-X "a=b c"`},
		`-tags=a\ b x""y`:                    {"-tags=a b", "xy"},
		`-gcflags ''`:                        {"-gcflags", ""},
		"-ldflags=-extldflags=-static\t-v\n": {"-ldflags=-extldflags=-static", "-v"},
	} {
		got, err := SplitFlags(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("SplitFlags(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{`"-v`, `'-v`, `-v \`} {
		if _, err := SplitFlags(in); err == nil {
			t.Errorf("SplitFlags(%q): no error", in)
		}
	}
}

func TestCommand(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name string
		m    Manifest
		args []string
		env  []string
	}{
		{name: "plain", m: Manifest{}, args: []string{"build", "-o", "/o/caddy", "./cmd/caddy"}},
		{name: "race and flags", m: Manifest{RaceDetector: true, BuildFlags: `-trimpath -ldflags "-w -s"`},
			args: []string{"build", "-o", "/o/caddy", "-race", "-trimpath", "-ldflags", "-w -s", "./cmd/caddy"},
			env:  []string{"CGO_ENABLED=1"}},
		{name: "platform", m: Manifest{OS: "linux", Arch: "arm", ARM: "7", Cgo: &no},
			args: []string{"build", "-o", "/o/caddy", "./cmd/caddy"},
			env:  []string{"GOOS=linux", "GOARCH=arm", "GOARM=7", "CGO_ENABLED=0"}},
		{name: "cgo", m: Manifest{Cgo: &yes}, args: []string{"build", "-o", "/o/caddy", "./cmd/caddy"}, env: []string{"CGO_ENABLED=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, err := Command(&tc.m, "/src", "/o/caddy")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cmd.Args[1:], tc.args) || cmd.Dir != "/src" {
				t.Fatalf("args %q in %s, want %q in /src", cmd.Args[1:], cmd.Dir, tc.args)
			}
			added := cmd.Env[len(os.Environ()):]
			if !slices.Equal(added, tc.env) {
				t.Fatalf("env additions %q, want %q", added, tc.env)
			}
		})
	}
}
