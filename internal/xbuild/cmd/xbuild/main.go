// Command xbuild builds bin/caddy (Caddy with this plugin) from xcaddy.json.
//
// Usage, from the repository root (as `make build` does):
//
//	go run ./internal/xbuild/cmd/xbuild [-manifest xcaddy.json] [-o bin/caddy] [-check]
//
// It checks that xcaddy.json agrees with go.mod and cmd/caddy/main.go, runs
// `go build -o <out> ./cmd/caddy` in the manifest's directory, and checks
// the module versions embedded in the result. -check stops after the first
// step. See package xbuild for why it does not run xcaddy.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/caddy-dcr/caddy-dcr/internal/xbuild"
)

func main() {
	manifest := flag.String("manifest", "xcaddy.json", "build manifest (xcaddy Builder JSON); its directory is the module root")
	out := flag.String("o", filepath.Join("bin", "caddy"), "output binary, relative to the current directory")
	check := flag.Bool("check", false, "only check the manifest against go.mod and the main package")
	flag.Parse()
	if flag.NArg() > 0 {
		fail(fmt.Errorf("unexpected arguments: %s", strings.Join(flag.Args(), " ")))
	}
	if err := run(*manifest, *out, *check); err != nil {
		fail(err)
	}
}

func run(manifestFile, out string, checkOnly bool) error {
	dir := filepath.Dir(manifestFile)
	m, err := xbuild.ReadManifest(manifestFile)
	if err != nil {
		return err
	}
	gm, err := xbuild.ReadGoMod(dir)
	if err != nil {
		return err
	}
	if err := xbuild.Check(m, gm, dir); err != nil {
		return err
	}
	if checkOnly {
		fmt.Printf("xbuild: %s agrees with go.mod: caddy %s + %s => .\n", manifestFile, m.CaddyVersion, gm.Module)
		return nil
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(absOut), 0o755); err != nil {
		return err
	}
	cmd, err := xbuild.Command(m, dir, absOut)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	fmt.Printf("xbuild: caddy %s + %s => . : %s\n", m.CaddyVersion, gm.Module, strings.Join(cmd.Args, " "))
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %v", err)
	}
	if err := xbuild.Verify(m, gm, absOut); err != nil {
		return err
	}
	fmt.Printf("xbuild: built %s\n", out)
	return nil
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "xbuild: %v\n", err)
	os.Exit(1)
}
