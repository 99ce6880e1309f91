// Command bench load-tests a built Caddy with this plugin (`make bench`).
//
// It starts its own redis-server on a free port, adapts bench/Caddyfile
// (Redis storage, errors-only logging, no rate limit, no client caps) with
// the built binary, starts that binary on free ports, registers one client,
// and then runs wrk against:
//
//   - the ceiling: GET /ceiling, a static response whose body is a real RFC
//     7591 registration response (same bytes, same size) with its headers,
//     answered by the same server and route block: the most any route here
//     can do on this machine;
//   - POST /register (RFC 7591) and GET /register/{id} with its Bearer
//     registration access token (RFC 7592);
//   - GET /site, the ceiling's response again, from a route after all the
//     plugin's handlers, which pass the request on: what fronting a site
//     costs it;
//   - the cloned APIs' registrations: POST /api/client/register
//     (MediaGoblin), POST /v1/clients (Huawei IAM Identity Center) and POST
//     /api/v1.0/oauth2/client/register (Kustvakt, behind basic_auth, whose
//     hash cache makes bcrypt run once rather than per request).
//
// The ceiling runs again right before each scenario, and each ratio is to
// that neighbouring run, so that other work on a shared machine skews both
// alike. With -rounds N the whole sequence runs N times and each scenario
// is reported by its median round, with the range of its ratios. An API
// that is not implemented falls through to `respond 404` and shows up as
// non-2xx. The table gives requests per second, median and 99th
// percentile latency, the ratio to the ceiling, wrk's error counts, and the
// CPU that caddy, redis-server and wrk used; targets are >= 0.5x the
// ceiling for registrations and >= 0.6x for the read (the site behind has
// none). -strict exits 1 when a target is missed.
//
// Usage (from the repository root, after `make build`):
//
//	go run ./bench [-caddy bin/caddy] [-duration 10s] [-rounds 1] [-threads 2] [-connections 64]
//	               [-strict] [-keep] [-profile dir] [-only regexp]
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/caddy-dcr/caddy-dcr/internal/redistest"
)

const ceilingMarker = "BENCH_CEILING_BODY"

type options struct {
	caddy, config, lua string
	duration, timeout  time.Duration
	threads, conns     int
	strict, keep       bool
	profile            string
	only               string
	rounds             int
}

func main() {
	var o options
	flag.StringVar(&o.caddy, "caddy", filepath.Join("bin", "caddy"), "Caddy binary with the plugin (make build)")
	flag.StringVar(&o.config, "config", filepath.Join("bench", "Caddyfile"), "benchmark Caddyfile")
	flag.StringVar(&o.lua, "lua", filepath.Join("bench", "wrk.lua"), "wrk script")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "wrk -d: length of each run")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Second, "wrk --timeout: a slower response counts as a timeout")
	flag.IntVar(&o.threads, "threads", 2, "wrk -t")
	flag.IntVar(&o.conns, "connections", 64, "wrk -c")
	flag.BoolVar(&o.strict, "strict", false, "exit 1 when a target is missed or a route does not answer 2xx")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (config, bodies, caddy.log)")
	flag.StringVar(&o.profile, "profile", "", "directory to save a Caddy CPU profile of each run in, and allocation profiles before and after it (go tool pprof, -base)")
	flag.StringVar(&o.only, "only", "", "run only the scenarios whose name matches this regular expression")
	flag.IntVar(&o.rounds, "rounds", 1, "run every scenario, each after its own ceiling run, this many times, and report each one's median round")
	flag.Parse()
	os.Exit(run(o))
}

// fatal aborts run; run recovers it, cleans up and exits 1. redistest's
// MainT panics the same way.
type fatal struct{ err error }

func failf(format string, args ...any) { panic(fatal{fmt.Errorf(format, args...)}) }

func run(o options) (code int) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			msg := fmt.Sprint(r)
			if f, ok := r.(fatal); ok {
				msg = f.err.Error()
			}
			fmt.Fprintf(os.Stderr, "bench: %s\n", msg)
			code = 1
		}
	}()

	for _, tool := range []string{"wrk", "redis-server", o.caddy} {
		if _, err := exec.LookPath(tool); err != nil {
			failf("%s not found (make bench installs wrk and redis-server, and builds bin/caddy): %v", tool, err)
		}
	}
	caddyBin, err := filepath.Abs(o.caddy)
	if err != nil {
		failf("%v", err)
	}
	if src := newerSource(caddyBin, "."); src != "" {
		// Measuring an old build is an easy mistake after an edit, and
		// its figures look as plausible as any.
		fmt.Fprintf(os.Stderr, "bench: warning: %s is older than %s: run make build (make bench does)\n", o.caddy, src)
	}

	work, err := os.MkdirTemp("", "caddy-dcr-bench-")
	if err != nil {
		failf("%v", err)
	}
	cleanups = append(cleanups, func() {
		if o.keep {
			fmt.Printf("work directory kept: %s\n", work)
			return
		}
		_ = os.RemoveAll(work)
	})

	mt := redistest.Main()
	cleanups = append(cleanups, mt.Close)
	redis := redistest.Start(mt)

	redisPID := 0
	for _, line := range strings.Split(redis.CLI("info", "server"), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			redisPID, _ = strconv.Atoi(v)
		}
	}

	port := redistest.FreePort(mt)
	admin := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(mt))
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	env := append(os.Environ(),
		"BENCH_PORT="+strconv.Itoa(port), "BENCH_ADMIN="+admin, "BENCH_REDIS="+redis.Addr, "BENCH_DIR="+work,
		"HOME="+work, "XDG_DATA_HOME="+filepath.Join(work, "data"), "XDG_CONFIG_HOME="+filepath.Join(work, "config"))

	// Adapt with the binary under test; the bench config must be clean.
	adapt := exec.CommandContext(ctx, caddyBin, "adapt", "--config", o.config, "--adapter", "caddyfile")
	adapt.Env = env
	var adaptErr bytes.Buffer
	adapt.Stderr = &adaptErr
	cfgJSON, err := adapt.Output()
	if err != nil {
		failf("caddy adapt %s: %v\n%s", o.config, err, adaptErr.String())
	}
	if strings.Contains(adaptErr.String(), `"level":"warn"`) {
		failf("caddy adapt %s warns:\n%s", o.config, adaptErr.String())
	}
	cfgFile := filepath.Join(work, "caddy.json")
	if err := os.WriteFile(cfgFile, cfgJSON, 0o600); err != nil {
		failf("%v", err)
	}

	logFile, err := os.Create(filepath.Join(work, "caddy.log"))
	if err != nil {
		failf("%v", err)
	}
	caddy := exec.Command(caddyBin, "run", "--config", cfgFile)
	caddy.Env = env
	caddy.Stdout, caddy.Stderr = logFile, logFile
	if err := caddy.Start(); err != nil {
		failf("starting caddy: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- caddy.Wait() }()
	cleanups = append(cleanups, func() {
		_ = caddy.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = caddy.Process.Kill()
			<-exited
		}
		logFile.Close()
	})
	caddyLog := func() string {
		b, _ := os.ReadFile(logFile.Name())
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		return string(b)
	}
	waitReady(ctx, base+"/ceiling", exited, caddyLog)

	// One real registration: its response is the ceiling's body, and its
	// credentials drive the read benchmark.
	client := &http.Client{Timeout: 30 * time.Second}
	rfcBody := `{"redirect_uris":["https://client.example.com/callback"],"client_name":"bench client","token_endpoint_auth_method":"client_secret_basic"}`
	status, regBody, err := send(client, "POST", base+"/register", rfcBody, jsonHeader)
	if err != nil || status != http.StatusCreated {
		failf("registering the first client: %d %v\n%s\n%s", status, err, regBody, caddyLog())
	}
	var reg struct {
		ClientID  string `json:"client_id"`
		Token     string `json:"registration_access_token"`
		ClientURI string `json:"registration_client_uri"`
	}
	if err := json.Unmarshal(regBody, &reg); err != nil || reg.Token == "" || reg.ClientURI == "" {
		failf("registration response lacks registration_access_token/registration_client_uri: %v\n%s", err, regBody)
	}
	readURL := reg.ClientURI
	if u, err := url.Parse(reg.ClientURI); err == nil {
		readURL = base + u.EscapedPath() // the URI names the Host we used; be sure it is ours
	}

	// Reload with the ceiling body set to that very response.
	patched, err := setCeiling(cfgJSON, regBody)
	if err != nil {
		failf("%v", err)
	}
	if status, body, err := send(client, "POST", "http://"+admin+"/load", string(patched), jsonHeader); err != nil || status != http.StatusOK {
		failf("loading the config with the ceiling body: %d %v %s", status, err, body)
	}
	for _, p := range []string{"/ceiling", "/site"} {
		if status, body, err := send(client, "GET", base+p, ""); err != nil || status != 200 || len(body) != len(regBody) {
			failf("%s answers %d with %d bytes (%v), want 200 with %d", p, status, len(body), err, len(regBody))
		}
	}

	basic := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("bench:bench"))
	ceiling := scenario{name: "ceiling (static respond)", kind: kindCeiling, method: "GET", url: base + "/ceiling"}
	scenarios := []scenario{
		{name: "rfc7591 POST /register", kind: kindRegister, method: "POST", url: base + "/register",
			body: rfcBody, headers: []string{jsonHeader}},
		{name: "rfc7592 GET /register/{id}", kind: kindRead, method: "GET", url: readURL,
			headers: []string{"Authorization: Bearer " + reg.Token}},
		{name: "pass-through GET /site", kind: kindPassThrough, method: "GET", url: base + "/site"},
		{name: "mediagoblin POST /api/client/register", kind: kindRegister, method: "POST", url: base + "/api/client/register",
			body:    `{"type":"client_associate","application_type":"web","application_name":"bench client","redirect_uris":"https://client.example.com/callback"}`,
			headers: []string{jsonHeader}},
		{name: "iam POST /v1/clients", kind: kindRegister, method: "POST", url: base + "/v1/clients",
			body:    `{"client_name":"bench client","client_type":"public","token_endpoint_auth_method":"client_secret_post","grant_types":["authorization_code"],"response_types":["code"],"scopes":["openid"]}`,
			headers: []string{jsonHeader}},
		{name: "kustvakt POST /api/v1.0/oauth2/client/register", kind: kindRegister, method: "POST",
			url:     base + "/api/v1.0/oauth2/client/register",
			body:    `{"name":"bench client","type":"CONFIDENTIAL","description":"load test client","redirect_uri":"https://client.example.com/callback"}`,
			headers: []string{jsonHeader, basic}},
	}

	if o.only != "" {
		re, err := regexp.Compile(o.only)
		if err != nil {
			failf("-only: %v", err)
		}
		kept := scenarios[:0]
		for _, sc := range scenarios {
			if re.MatchString(sc.name) {
				kept = append(kept, sc)
			}
		}
		scenarios = kept
		if len(scenarios) == 0 {
			failf("-only %q matches no scenario", o.only)
		}
	}

	// measure runs wrk once and records what it and the servers used.
	run := 0
	measure := func(s *scenario, bodyFile string) {
		fmt.Printf("  %-48s ", s.name)
		profiled := startProfile(o, admin, run, s.name)
		run++
		caddy0, redis0, t0 := cpuTime(caddy.Process.Pid), cpuTime(redisPID), time.Now()
		var wrkCPU time.Duration
		s.res, wrkCPU = runWrk(ctx, o, s, bodyFile)
		wall := time.Since(t0).Seconds()
		s.cpu = cpuUse{
			caddy: (cpuTime(caddy.Process.Pid) - caddy0).Seconds() / wall,
			redis: (cpuTime(redisPID) - redis0).Seconds() / wall,
			wrk:   wrkCPU.Seconds() / wall,
		}
		fmt.Printf("%8.0f req/s%s\n", s.res.rps(), profiled())
		if ctx.Err() != nil {
			failf("interrupted")
		}
	}

	fmt.Printf("wrk -t%d -c%d -d%s against %s (registration response: %d bytes; redis %s; load average %s)\n",
		o.threads, o.conns, o.duration, base, len(regBody), redis.Addr, loadAverage())
	bodyFiles := make([]string, len(scenarios))
	for i := range scenarios {
		s := &scenarios[i]
		// One request first: shows what the route answers (a stub's 404)
		// and warms caches (basic_auth's bcrypt result).
		status, body, err := send(client, s.method, s.url, s.body, s.headers...)
		if err != nil {
			failf("%s: %v", s.name, err)
		}
		s.probe = fmt.Sprintf("%d, %dB", status, len(body))
		s.probeOK = status >= 200 && status < 300
		bodyFiles[i] = "-"
		if s.body != "" {
			bodyFiles[i] = filepath.Join(work, fmt.Sprintf("body%d.json", i))
			if err := os.WriteFile(bodyFiles[i], []byte(s.body), 0o600); err != nil {
				failf("%v", err)
			}
		}
	}
	var ceilings []scenario
	rounds := make([][]scenario, len(scenarios))
	for r := range max(o.rounds, 1) {
		if o.rounds > 1 {
			fmt.Printf("round %d of %d\n", r+1, o.rounds)
		}
		for i := range scenarios {
			// The ceiling runs right before each scenario, and the ratio
			// compares the two: runs seconds apart see the same machine,
			// which matters where other work shares the CPUs.
			c, s := ceiling, scenarios[i]
			measure(&c, "-")
			ceilings = append(ceilings, c)
			s.ceiling = c.res.rps()
			measure(&s, bodyFiles[i])
			rounds[i] = append(rounds[i], s)
		}
	}
	for i := range scenarios {
		scenarios[i] = median(rounds[i])
	}
	select {
	case err := <-exited:
		failf("caddy exited during the benchmark: %v\n%s", err, caddyLog())
	default:
	}

	missed := report(os.Stdout, ceilings, scenarios)
	if o.strict && missed > 0 {
		return 1
	}
	return 0
}

const jsonHeader = "Content-Type: application/json"

// median returns the run of a scenario whose ratio to its ceiling is the
// median of its rounds (the lower middle one of an even number), with the
// range of those ratios: on a shared machine single runs of the same
// binary scatter by a tenth of the ceiling or more.
func median(runs []scenario) scenario {
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b scenario) int { return cmp.Compare(a.ratio(), b.ratio()) })
	m := sorted[(len(sorted)-1)/2]
	m.rounds = len(runs)
	m.lowest, m.highest = sorted[0].ratio(), sorted[len(sorted)-1].ratio()
	return m
}

type kind int

const (
	kindCeiling kind = iota
	kindRegister
	kindRead
	kindPassThrough
)

type scenario struct {
	name        string
	kind        kind
	method, url string
	body        string
	headers     []string
	probe       string
	probeOK     bool
	res         wrkResult
	cpu         cpuUse
	ceiling     float64 // req/s of the ceiling run just before this one
	// rounds is how many runs median chose this one from, and lowest
	// and highest their extreme ratios.
	rounds          int
	lowest, highest float64
}

// ratio is the run's req/s over that of the ceiling run just before it.
func (s scenario) ratio() float64 {
	if s.ceiling <= 0 {
		return 0
	}
	return s.res.rps() / s.ceiling
}

// cpuUse is the CPU each process used during a run, in cores (CPU seconds
// per wall-clock second).
type cpuUse struct{ caddy, redis, wrk float64 }

type wrkResult struct {
	Requests      int64 `json:"requests"`
	DurationUS    int64 `json:"duration_us"`
	Bytes         int64 `json:"bytes"`
	P50US         int64 `json:"p50_us"`
	P99US         int64 `json:"p99_us"`
	MaxUS         int64 `json:"max_us"`
	StatusErrors  int64 `json:"status_errors"`
	ConnectErrors int64 `json:"connect_errors"`
	ReadErrors    int64 `json:"read_errors"`
	WriteErrors   int64 `json:"write_errors"`
	Timeouts      int64 `json:"timeouts"`
}

func (r wrkResult) rps() float64 {
	if r.DurationUS == 0 {
		return 0
	}
	return float64(r.Requests) / (float64(r.DurationUS) / 1e6)
}

func (r wrkResult) socketErrors() int64 {
	return r.ConnectErrors + r.ReadErrors + r.WriteErrors + r.Timeouts
}

// runWrk runs wrk for one scenario; it returns wrk's result and the CPU
// time wrk used.
func runWrk(ctx context.Context, o options, s *scenario, bodyFile string) (wrkResult, time.Duration) {
	args := []string{"-t", strconv.Itoa(o.threads), "-c", strconv.Itoa(o.conns), "-d", wrkDuration(o.duration),
		"--timeout", wrkDuration(o.timeout), "-s", o.lua, s.url, "--", s.method, bodyFile}
	args = append(args, s.headers...)
	cmd := exec.CommandContext(ctx, "wrk", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ctx.Err() != nil {
		failf("interrupted")
	}
	if err != nil {
		failf("wrk %s: %v\n%s%s", s.name, err, out, stderr.String())
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "BENCH_RESULT "); ok {
			var r wrkResult
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				failf("wrk %s: %v in %q", s.name, err, rest)
			}
			return r, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
	}
	failf("wrk %s printed no BENCH_RESULT line:\n%s%s", s.name, out, stderr.String())
	return wrkResult{}, 0
}

// cpuTime is the user+system CPU time of a process so far, from
// /proc/<pid>/stat; 0 where that is not available.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil || pid == 0 {
		return 0
	}
	// Fields after the command name, which is in parentheses and may
	// contain blanks: state is field 3, utime 14 and stime 15.
	_, rest, ok := bytes.Cut(b, []byte(") "))
	if !ok {
		return 0
	}
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clockTicks = 100 // USER_HZ, 100 on every Linux platform Go supports
	return time.Duration(ut+st) * time.Second / clockTicks
}

// wrkDuration writes a duration the way wrk parses it (whole seconds, or
// milliseconds below one second).
func wrkDuration(d time.Duration) string {
	if d < time.Second {
		return strconv.FormatInt(max(d.Milliseconds(), 1), 10) + "ms"
	}
	return strconv.FormatInt(int64(d.Round(time.Second)/time.Second), 10) + "s"
}

// report prints the table and the targets; it returns how many rows missed
// a target or did not answer 2xx. The ceiling row averages the ceiling runs.
func report(w io.Writer, ceilings, scenarios []scenario) int {
	n := float64(len(ceilings))
	var c scenario
	var lo, hi float64
	for i, r := range ceilings {
		rps := r.res.rps()
		if i == 0 || rps < lo {
			lo = rps
		}
		hi = max(hi, rps)
		c.res.Requests += r.res.Requests
		c.res.DurationUS += r.res.DurationUS
		c.res.P50US += int64(float64(r.res.P50US) / n)
		c.res.P99US += int64(float64(r.res.P99US) / n)
		c.res.StatusErrors += r.res.StatusErrors
		c.res.ConnectErrors += r.res.socketErrors()
		c.cpu.caddy += r.cpu.caddy / n
		c.cpu.redis += r.cpu.redis / n
		c.cpu.wrk += r.cpu.wrk / n
	}
	c.name = fmt.Sprintf("ceiling (static respond), %d runs", len(ceilings))
	c.ceiling = c.res.rps()
	c.probe, c.probeOK = ceilings[0].probe, true
	rows := append([]scenario{c}, scenarios...)

	width := len("name")
	for _, s := range rows {
		width = max(width, len(s.name))
	}
	row := func(cells ...string) {
		fmt.Fprintf(w, "%-*s  %8s  %8s  %8s  %9s  %7s  %6s  %-14s  %s\n", width, cells[0], cells[1], cells[2], cells[3],
			cells[4], cells[5], cells[6], cells[7], cells[8])
	}
	fmt.Fprintln(w)
	row("name", "req/s", "p50", "p99", "x ceiling", "non-2xx", "socket", "cpu c/r/w", "target")
	missed := 0
	for i, s := range rows {
		ratio := s.ratio()
		target, verdict := 0.0, "-"
		switch s.kind {
		case kindRegister:
			target = 0.5
		case kindRead:
			target = 0.6
		}
		switch {
		case i == 0:
			verdict = fmt.Sprintf("runs: %.0f to %.0f req/s", lo, hi)
		case !s.probeOK || s.res.StatusErrors > 0:
			verdict = "NOT 2xx (first answer " + s.probe + "): not implemented, or a bad request?"
			missed++
		case s.kind == kindPassThrough:
			// No target: most of what it costs is Caddy's, for the
			// longer route (see the README).
			verdict = "no target"
		case ratio >= target:
			verdict = fmt.Sprintf("ok (>= %.1fx)", target)
		default:
			verdict = fmt.Sprintf("MISSED (< %.1fx)", target)
			missed++
		}
		if i > 0 && s.rounds > 1 {
			verdict += fmt.Sprintf(", rounds %.2f to %.2f", s.lowest, s.highest)
		}
		row(s.name, fmt.Sprintf("%.0f", s.res.rps()), us(s.res.P50US), us(s.res.P99US), fmt.Sprintf("%.2f", ratio),
			strconv.FormatInt(s.res.StatusErrors, 10), strconv.FormatInt(s.res.socketErrors(), 10),
			fmt.Sprintf("%.2f/%.2f/%.2f", s.cpu.caddy, s.cpu.redis, s.cpu.wrk), verdict)
	}
	fmt.Fprintln(w, "\nx ceiling: req/s over that of the ceiling run made just before (the ceiling row: their mean).")
	if len(scenarios) > 0 && scenarios[0].rounds > 1 {
		fmt.Fprintf(w, "Each row is its scenario's median round of %d, by x ceiling; the target column gives the range of all of them.\n", scenarios[0].rounds)
	}
	if hi > 1.15*lo {
		fmt.Fprintf(w, "The ceiling runs differ by %.0f%%: other work shared the CPUs, so figures are rough.\n", (hi/lo-1)*100)
	}
	fmt.Fprintln(w, "non-2xx: responses with a status >= 400, as wrk counts them; socket: connect, read, write errors and timeouts.")
	fmt.Fprintf(w, "cpu c/r/w: cores used by caddy, redis-server and wrk during the run (this machine has %d).\n", runtime.NumCPU())
	return missed
}

// startProfile fetches a CPU profile of Caddy from its admin endpoint while
// wrk runs; the returned function waits for it and describes the result.
func startProfile(o options, admin string, i int, name string) func() string {
	if o.profile == "" {
		return func() string { return "" }
	}
	secs := max(int((o.duration-time.Second)/time.Second), 1)
	file := filepath.Join(o.profile, fmt.Sprintf("%d-%s.pprof", i, strings.Fields(name)[0]))
	done := make(chan string, 1)
	go func() {
		c := &http.Client{Timeout: time.Duration(secs+30) * time.Second}
		// Allocation profiles are cumulative: the one taken before the
		// run is the base to subtract (go tool pprof -base).
		allocs := func(suffix string) {
			if resp, err := c.Get(fmt.Sprintf("http://%s/debug/pprof/allocs", admin)); err == nil {
				if b, err := io.ReadAll(resp.Body); err == nil && resp.StatusCode == http.StatusOK && os.MkdirAll(o.profile, 0o755) == nil {
					_ = os.WriteFile(strings.TrimSuffix(file, ".pprof")+suffix, b, 0o644)
				}
				resp.Body.Close()
			}
		}
		allocs(".allocs-base.pprof")
		resp, err := c.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, secs))
		allocs(".allocs.pprof")
		if err != nil {
			done <- fmt.Sprintf(" (profile: %v)", err)
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if err == nil {
			err = os.MkdirAll(o.profile, 0o755)
		}
		if err == nil {
			err = os.WriteFile(file, b, 0o644)
		}
		if err != nil {
			done <- fmt.Sprintf(" (profile: %v)", err)
			return
		}
		done <- " (profile: " + file + ")"
	}()
	return func() string { return <-done }
}

// loadAverage is the 1-minute load average, or "?" where /proc has none.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

func us(v int64) string {
	d := time.Duration(v) * time.Microsecond
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%dus", v)
	}
}

func send(c *http.Client, method, u, body string, headers ...string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func waitReady(ctx context.Context, u string, exited <-chan error, logTail func() string) {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case err := <-exited:
			failf("caddy exited at start: %v\n%s", err, logTail())
		default:
		}
		if resp, err := c.Get(u); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	failf("caddy did not answer %s within 30s\n%s", u, logTail())
}

// setCeiling puts body, with a registration response's headers, into the
// static_response handler whose body is the marker.
func setCeiling(cfg, body []byte) ([]byte, error) {
	var v any
	if err := json.Unmarshal(cfg, &v); err != nil {
		return nil, err
	}
	found := 0
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["handler"] == "static_response" && v["body"] == ceilingMarker {
				v["body"] = string(body)
				v["headers"] = map[string][]string{
					"Content-Type":  {"application/json"},
					"Cache-Control": {"no-store"},
					"Pragma":        {"no-cache"},
				}
				found++
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(v)
	if found != 2 {
		return nil, errors.New("bench config: want exactly two `respond <path> \"" + ceilingMarker + "\"`, /ceiling and /site")
	}
	return json.Marshal(v)
}

// newerSource returns a Go file of the module rooted at dir (tests, this
// benchmark and the separate modules under test/ left out) modified after
// the binary bin, or "" when there is none or dir is not the module's root.
func newerSource(bin, dir string) string {
	fi, err := os.Stat(bin)
	if err != nil {
		return ""
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return ""
	}
	built := fi.ModTime()
	var newer string
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable: not a source of the binary, as far as can be known
		}
		if d.IsDir() {
			switch name := d.Name(); {
			case path == dir:
			case strings.HasPrefix(name, "."), name == "bin", name == "bench", name == "test", name == "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		name := d.Name()
		if !strings.HasSuffix(name, ".go") && name != "go.mod" && name != "go.sum" || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		if info, err := d.Info(); err == nil && info.ModTime().After(built) {
			newer = path
			return filepath.SkipAll
		}
		return nil
	})
	return newer
}
