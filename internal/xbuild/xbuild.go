// Package xbuild builds this repository's Caddy binary from xcaddy.json.
//
// xcaddy.json is written in the JSON shape of the xcaddy library's Builder
// type (github.com/caddyserver/xcaddy v0.4.5: caddy_version, plugins[]
// {module_path, version}, replacements[] {old, new}, race_detector,
// build_flags and the embedded Compile fields os, arch, arm, cgo), so the
// same file describes what `xcaddy build <caddy_version> --with
// <module_path>=.` would produce.
//
// xcaddy itself builds in a temporary module and fetches every plugin
// through the Go module proxy first; a proxy that answers 403 for this
// module's path (rather than the usual 404) makes that fail even though the
// plugin is replaced by a local directory. xbuild therefore builds in place:
// it checks that the manifest describes exactly this module, replaced by
// ".", at the Caddy version go.mod requires, and that cmd/caddy/main.go
// imports Caddy's standard modules and every plugin; then it runs `go build
// ./cmd/caddy`. The result is the binary xcaddy would build from the same
// manifest, with go.sum's exact dependency versions.
package xbuild

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// CaddyModule is Caddy's module path.
const CaddyModule = "github.com/caddyserver/caddy/v2"

// Main packages xbuild builds and checks.
const (
	MainPackage    = "./cmd/caddy"
	caddycmdImport = CaddyModule + "/cmd"
	standardImport = CaddyModule + "/modules/standard"
)

// Manifest is the part of xcaddy's Builder JSON that xbuild understands.
// Other Builder fields (timeouts, skip_*, debug, mod_flags, embed_dir) are
// rejected rather than ignored: they describe xcaddy's temporary module,
// which an in-place build does not have.
type Manifest struct {
	CaddyVersion string       `json:"caddy_version,omitempty"`
	Plugins      []Dependency `json:"plugins,omitempty"`
	Replacements []Replace    `json:"replacements,omitempty"`
	RaceDetector bool         `json:"race_detector,omitempty"`
	BuildFlags   string       `json:"build_flags,omitempty"`

	// xcaddy's Compile fields (target platform and cgo). Cgo is a pointer
	// so that an absent key leaves CGO_ENABLED as the environment has it
	// (xcaddy would set CGO_ENABLED=0); true or false sets it.
	OS   string `json:"os,omitempty"`
	Arch string `json:"arch,omitempty"`
	ARM  string `json:"arm,omitempty"`
	Cgo  *bool  `json:"cgo,omitempty"`
}

// Dependency is xcaddy's plugin entry.
type Dependency struct {
	ModulePath string `json:"module_path,omitempty"`
	Version    string `json:"version,omitempty"`
}

// Replace is xcaddy's module replacement; Old may carry "@version".
type Replace struct {
	Old string `json:"old,omitempty"`
	New string `json:"new,omitempty"`
}

// supportedKeys lists the top-level keys for error messages.
const supportedKeys = "caddy_version, plugins, replacements, race_detector, build_flags, os, arch, arm, cgo"

// ReadManifest reads and strictly decodes an xcaddy.json file.
func ReadManifest(file string) (*Manifest, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return ParseManifest(file, b)
}

// ParseManifest strictly decodes manifest JSON; name is used in errors.
func ParseManifest(name string, b []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		msg := fmt.Sprintf("%s: %v", name, err)
		if strings.Contains(err.Error(), "unknown field") {
			msg += "\n  (xbuild reads these keys of xcaddy's Builder JSON: " + supportedKeys +
				"; a plugin entry has only module_path and version, and a local plugin is" +
				` written as a plugin plus a replacement {"old": "<module_path>", "new": "."})`
		}
		return nil, errors.New(msg)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: trailing data after the JSON object", name)
	}
	return &m, nil
}

// GoMod is what xbuild needs from go.mod.
type GoMod struct {
	Module   string
	Requires map[string]string // module path -> version
	Replaces map[string]string // old path -> new path[@version]
}

// ReadGoMod parses dir/go.mod with `go mod edit -json`, the go command's
// own parser (no network, no dependency of ours).
func ReadGoMod(dir string) (*GoMod, error) {
	cmd := exec.Command(goTool(), "mod", "edit", "-json", filepath.Join(dir, "go.mod"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go mod edit -json: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var raw struct {
		Module  struct{ Path string }
		Require []struct{ Path, Version string }
		Replace []struct {
			Old, New struct{ Path, Version string }
		}
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("decoding go mod edit -json: %v", err)
	}
	gm := &GoMod{Module: raw.Module.Path, Requires: map[string]string{}, Replaces: map[string]string{}}
	for _, r := range raw.Require {
		gm.Requires[r.Path] = r.Version
	}
	for _, r := range raw.Replace {
		n := r.New.Path
		if r.New.Version != "" {
			n += "@" + r.New.Version
		}
		gm.Replaces[r.Old.Path] = n
	}
	return gm, nil
}

// goTool is the go command: $GO if set, else "go" from PATH.
func goTool() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

// Check verifies that the manifest describes what an in-place build of the
// module in dir produces. It reports every problem at once.
func Check(m *Manifest, gm *GoMod, dir string) error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	want, ok := gm.Requires[CaddyModule]
	switch {
	case !ok:
		add("go.mod does not require %s", CaddyModule)
	case m.CaddyVersion == "":
		add("caddy_version is missing: set it to %q, the version go.mod requires", want)
	case m.CaddyVersion != want:
		add("caddy_version is %q but go.mod requires %s %s: set caddy_version to %q (or change go.mod)",
			m.CaddyVersion, CaddyModule, want, want)
	}
	if r, ok := gm.Replaces[CaddyModule]; ok {
		add("go.mod replaces %s with %s, which caddy_version cannot describe", CaddyModule, r)
	}

	if len(m.Plugins) == 0 {
		add("plugins is empty: list %s", gm.Module)
	}
	seen := map[string]bool{}
	for i, p := range m.Plugins {
		switch {
		case p.ModulePath == "":
			add("plugins[%d] has no module_path", i)
			continue
		case p.ModulePath != gm.Module:
			add("plugins[%d] is %s, not this module (%s): xbuild builds this module from its own source only;"+
				" build other plugin sets with xcaddy itself", i, p.ModulePath, gm.Module)
			continue
		case seen[p.ModulePath]:
			add("plugins[%d] lists %s twice", i, p.ModulePath)
		}
		seen[p.ModulePath] = true
		if p.Version != "" {
			add("plugins[%d] (%s) has version %q: the plugin is built from this directory, so leave version out",
				i, p.ModulePath, p.Version)
		}
	}

	replaced := map[string]bool{}
	for i, r := range m.Replacements {
		oldPath, _, _ := strings.Cut(r.Old, "@")
		if oldPath != gm.Module || !seen[oldPath] {
			add("replacements[%d] (%s => %s) is not supported: only the plugin %s replaced by \".\" is",
				i, r.Old, r.New, gm.Module)
			continue
		}
		if r.Old != oldPath {
			add("replacements[%d] old is %q: write the module path without a version", i, r.Old)
		}
		if n := filepath.ToSlash(r.New); path.Clean(n) != "." {
			add("replacements[%d] replaces %s by %q: it must be \".\" (this directory, where xcaddy.json is)",
				i, oldPath, r.New)
		}
		replaced[oldPath] = true
	}
	for p := range seen {
		if !replaced[p] {
			add(`plugin %s is not replaced by this directory: add {"old": %q, "new": "."} to replacements`, p, p)
		}
	}
	if _, err := SplitFlags(m.BuildFlags); err != nil {
		add("build_flags: %v", err)
	}

	if imports, err := MainImports(dir); err != nil {
		add("%v", err)
	} else {
		need := []string{caddycmdImport, standardImport}
		for p := range seen {
			need = append(need, p)
		}
		sort.Strings(need[2:])
		for _, p := range need {
			if !imports[p] {
				add("%s/main.go does not import %q, which the manifest's build needs", MainPackage, p)
			}
		}
	}

	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("xcaddy.json does not match this module:\n  - %s", strings.Join(problems, "\n  - "))
}

// MainImports returns the import paths of dir/cmd/caddy/main.go.
func MainImports(dir string) (map[string]bool, error) {
	file := filepath.Join(dir, filepath.FromSlash(MainPackage), "main.go")
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
	if err != nil {
		return nil, fmt.Errorf("reading the main package: %v", err)
	}
	imports := map[string]bool{}
	for _, im := range f.Imports {
		p, err := strconv.Unquote(im.Path.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: bad import %s", file, im.Path.Value)
		}
		imports[p] = true
	}
	return imports, nil
}

// Command returns the `go build` command that builds the manifest in dir
// into out. Check the manifest first.
func Command(m *Manifest, dir, out string) (*exec.Cmd, error) {
	flags, err := SplitFlags(m.BuildFlags)
	if err != nil {
		return nil, fmt.Errorf("build_flags: %v", err)
	}
	args := []string{"build", "-o", out}
	if m.RaceDetector {
		args = append(args, "-race")
	}
	args = append(args, flags...)
	args = append(args, MainPackage)
	cmd := exec.Command(goTool(), args...)
	cmd.Dir = dir
	env := os.Environ()
	set := func(k, v string) {
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	set("GOOS", m.OS)
	set("GOARCH", m.Arch)
	set("GOARM", m.ARM)
	switch {
	case m.RaceDetector:
		set("CGO_ENABLED", "1") // the race detector needs cgo, as in xcaddy
	case m.Cgo != nil && *m.Cgo:
		set("CGO_ENABLED", "1")
	case m.Cgo != nil:
		set("CGO_ENABLED", "0")
	}
	cmd.Env = env
	return cmd, nil
}

// SplitFlags splits build_flags like a POSIX shell word splitter: blanks
// separate words, single and double quotes group, a backslash escapes the
// next character outside single quotes.
func SplitFlags(s string) ([]string, error) {
	var (
		words   []string
		cur     strings.Builder
		inWord  bool
		quote   rune
		escaped bool
	)
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\' && quote != '\'':
			escaped, inWord = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote in %q", quote, s)
	}
	if escaped {
		return nil, fmt.Errorf("trailing backslash in %q", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// Verify reads the module information embedded in the built binary (`go
// version -m`, which also works for other platforms' binaries) and checks
// that its main module is the plugin and that it links caddy_version.
func Verify(m *Manifest, gm *GoMod, binary string) error {
	out, err := exec.Command(goTool(), "version", "-m", binary).Output()
	if err != nil {
		return fmt.Errorf("go version -m %s: %v", binary, err)
	}
	var mainMod, caddyVer string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "mod":
			mainMod = f[1]
		case len(f) >= 3 && f[0] == "dep" && f[1] == CaddyModule:
			caddyVer = f[2]
		}
	}
	if mainMod != gm.Module {
		return fmt.Errorf("%s: main module is %q, want %s", binary, mainMod, gm.Module)
	}
	if caddyVer != m.CaddyVersion {
		return fmt.Errorf("%s: links %s %q, want caddy_version %q", binary, CaddyModule, caddyVer, m.CaddyVersion)
	}
	return nil
}
