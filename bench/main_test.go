package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func round(rps, ceiling float64) scenario {
	return scenario{name: "reg", kind: kindRegister, probeOK: true, ceiling: ceiling,
		res: wrkResult{Requests: int64(rps), DurationUS: 1e6}}
}

// TestMedianRound: a scenario is reported by its median round by ratio
// (not by req/s), with the range of its ratios, and the verdict follows
// the median.
func TestMedianRound(t *testing.T) {
	m := median([]scenario{round(600, 1000), round(900, 2000), round(400, 1000)})
	if m.res.Requests != 900 || m.rounds != 3 || m.lowest != 0.4 || m.highest != 0.6 {
		t.Fatalf("median = %d req, %d rounds, %.2f to %.2f; want the 0.45 round of 3 (0.40 to 0.60)",
			m.res.Requests, m.rounds, m.lowest, m.highest)
	}
	if m = median([]scenario{round(500, 1000), round(700, 1000)}); m.res.Requests != 500 {
		t.Fatalf("median of two = %d req, want the lower one", m.res.Requests)
	}

	var out bytes.Buffer
	ceil := scenario{kind: kindCeiling, probeOK: true, res: wrkResult{Requests: 1000, DurationUS: 1e6}}
	missed := report(&out, []scenario{ceil}, []scenario{median([]scenario{round(450, 1000), round(520, 1000), round(560, 1000)})})
	if missed != 0 || !strings.Contains(out.String(), "ok (>= 0.5x), rounds 0.45 to 0.56") ||
		!strings.Contains(out.String(), "median round of 3") {
		t.Fatalf("missed %d, report:\n%s", missed, out.String())
	}
}

func TestNewerSource(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mod time.Time) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("package x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	built := time.Now().Add(-time.Hour)
	old, later := built.Add(-time.Minute), built.Add(time.Minute)
	write("go.mod", old)
	write("module.go", old)
	write("bin/caddy", built)
	bin := filepath.Join(dir, "bin", "caddy")
	if got := newerSource(bin, dir); got != "" {
		t.Errorf("nothing changed since the build: got %q", got)
	}
	// What the binary does not contain does not count.
	write("module_test.go", later)
	write("bench/main.go", later)
	write("test/mcpgo/main.go", later)
	write("README.md", later)
	if got := newerSource(bin, dir); got != "" {
		t.Errorf("only tests, the benchmark and docs changed: got %q", got)
	}
	write("handler/handler.go", later)
	if got := newerSource(bin, dir); got != filepath.Join(dir, "handler", "handler.go") {
		t.Errorf("got %q, want handler/handler.go", got)
	}
	if got := newerSource(filepath.Join(dir, "missing"), dir); got != "" {
		t.Errorf("no binary: got %q", got)
	}
}
