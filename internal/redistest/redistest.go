// Package redistest starts real redis-server processes for tests: a single
// node, a three-master cluster, a master watched by a sentinel, and a TLS
// node. Tests fail (never skip) when redis-server is missing; `make test`
// installs it.
package redistest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// T is what these helpers need of a test: *testing.T and *testing.B have
// it, and so does the value Main returns for TestMain.
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// Server is one redis-server process.
type Server struct {
	Port int
	Addr string
	dir  string
	args []string
	cmd  *exec.Cmd
	t    T
	// cliTLS is what redis-cli needs to reach a TLS-only server.
	cliTLS []string
}

// MainT lets TestMain start servers shared by a whole test binary. Close
// stops them.
type MainT struct {
	cleanups []func()
	dirs     []string
}

// Main returns a T for TestMain; its Fatal panics.
func Main() *MainT { return &MainT{} }

func (m *MainT) Helper()                           {}
func (m *MainT) Fatal(args ...any)                 { panic(fmt.Sprint(args...)) }
func (m *MainT) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (m *MainT) Cleanup(f func())                  { m.cleanups = append(m.cleanups, f) }
func (m *MainT) TempDir() string {
	d, err := os.MkdirTemp("", "redistest")
	if err != nil {
		panic(err)
	}
	m.dirs = append(m.dirs, d)
	return d
}

// Close runs the cleanups and removes the directories.
func (m *MainT) Close() {
	for i := len(m.cleanups) - 1; i >= 0; i-- {
		m.cleanups[i]()
	}
	for _, d := range m.dirs {
		_ = os.RemoveAll(d)
	}
}

func binary(t T, name string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found on PATH: run `make test`, which installs it (%v)", name, err)
	}
	return p
}

// FreePort returns a TCP port that was free a moment ago, on every
// interface (Caddy binds ":port").
//
// It is not one the kernel hands out itself (port 0): those come from the
// ephemeral range, where any outgoing connection of this machine (a Redis
// client, an HTTP client, a download running next to the tests) may take
// it before the server binds it, and then the server fails with "address
// already in use". The ports given here lie below that range, which no
// outgoing connection uses. They are handed out in turn from a random
// point, so that a process never gives out the same port twice within a
// run and two test processes running side by side meet only by chance.
func FreePort(t T) int {
	ports.mu.Lock()
	defer ports.mu.Unlock()
	if ports.lo == 0 {
		ports.lo, ports.hi = portRange()
		if ports.hi > ports.lo {
			ports.next = ports.lo + mrand.N(ports.hi-ports.lo)
		}
	}
	for range ports.hi - ports.lo {
		p := ports.next
		if ports.next++; ports.next >= ports.hi {
			ports.next = ports.lo
		}
		if bindable(p) {
			return p
		}
	}
	// No range, or every port of it is taken: the kernel's choice.
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var ports struct {
	mu           sync.Mutex
	lo, hi, next int
}

// portRange is where FreePort looks: from 10000 up to the start of the
// ephemeral range (Linux's ip_local_port_range; 32768 when unknown, which
// is below the IANA range other systems use), less 10000 at the top for
// Redis Cluster's bus port (port+10000) when a test leaves it implicit.
func portRange() (lo, hi int) {
	lo, hi = 10000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n < hi {
				hi = n
			}
		}
	}
	return lo, hi - 10000
}

// bindable reports whether port can be listened on, on every interface
// and on the loopback address (a server elsewhere may hold either).
func bindable(port int) bool {
	for _, addr := range []string{":", "127.0.0.1:"} {
		l, err := net.Listen("tcp", addr+strconv.Itoa(port))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// Start runs a redis-server on a free port with persistence off; extra
// arguments are appended to its command line. It is stopped when the test ends.
func Start(t T, extra ...string) *Server {
	t.Helper()
	port := FreePort(t)
	return run(t, port, append([]string{"--port", strconv.Itoa(port)}, extra...))
}

func run(t T, port int, args []string) *Server {
	t.Helper()
	s := &Server{Port: port, Addr: "127.0.0.1:" + strconv.Itoa(port), dir: t.TempDir(), t: t}
	s.args = append([]string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--protected-mode", "no"}, args...)
	// A port found free a moment ago may be taken by the time the server
	// binds it (another test's server, or an outgoing connection's port):
	// the server then exits at once, and is started again on other ports.
	for attempt := 0; !s.tryStart(); attempt++ {
		if attempt == 4 {
			t.Fatalf("redis-server exited at start, %d times on other ports (ports taken?)", attempt+1)
		}
		s.newPorts()
	}
	t.Cleanup(s.Stop)
	return s
}

// newPorts replaces the server's port, and a cluster bus port, with
// others free now.
func (s *Server) newPorts() {
	old := strconv.Itoa(s.Port)
	s.Port = FreePort(s.t)
	s.Addr = "127.0.0.1:" + strconv.Itoa(s.Port)
	for i, a := range s.args {
		switch {
		case a == old && i > 0 && (s.args[i-1] == "--port" || s.args[i-1] == "--tls-port"):
			s.args[i] = strconv.Itoa(s.Port)
		case i > 0 && s.args[i-1] == "--cluster-port":
			s.args[i] = strconv.Itoa(FreePort(s.t))
		}
	}
}

func (s *Server) start() {
	s.t.Helper()
	if !s.tryStart() {
		s.t.Fatalf("redis-server on %s exited at start (port taken?)", s.Addr)
	}
}

// tryStart starts the server and waits until it is ready; it reports
// false when the server exited before that.
func (s *Server) tryStart() bool {
	s.t.Helper()
	s.cmd = exec.Command(binary(s.t, "redis-server"), s.args...)
	out := &startLog{}
	s.cmd.Stdout = out
	s.cmd.Stderr = nil
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	exited := make(chan struct{})
	cmd := s.cmd
	go func() {
		_, _ = cmd.Process.Wait()
		close(exited)
	}()
	if !s.waitReady(exited, out) {
		_ = cmd.Process.Kill()
		<-exited
		s.cmd = nil
		return false
	}
	return true
}

// startLog keeps what redis-server logs to its standard output until it
// says it is ready, and drops the rest.
type startLog struct {
	mu    sync.Mutex
	b     []byte
	ready bool
}

func (l *startLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.ready {
		l.b = append(l.b, p...)
		// "Ready to accept connections" (TCP or TLS), "The server is now
		// ready to accept connections at <socket>" (a socket only): both
		// come after every listener is bound.
		l.ready = bytes.Contains(l.b, []byte("eady to accept connections"))
		if l.ready {
			l.b = nil
		}
	}
	return len(p), nil
}

func (l *startLog) isReady() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ready
}

// waitReady waits until the server accepts connections on its TCP port
// and, when it has one, on its unix socket: redis-server binds the socket
// after the port, so a client of the socket could otherwise be refused.
// A dial alone does not tell this server from another listener on the
// port (this one then exits, unable to bind it, maybe only after a while
// on a loaded machine): it is ready once its log also says so.
func (s *Server) waitReady(exited <-chan struct{}, out *startLog) bool {
	s.t.Helper()
	listeners := [][2]string{{"tcp", s.Addr}}
	for i, a := range s.args {
		if a == "--unixsocket" && i+1 < len(s.args) {
			listeners = append(listeners, [2]string{"unix", s.args[i+1]})
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, l := range listeners {
		for {
			c, err := net.DialTimeout(l[0], l[1], 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				s.t.Fatalf("redis-server on %s did not start: %v", l[1], err)
			}
			select {
			case <-exited:
				return false
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	for !out.isReady() {
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s did not log that it is ready", s.Addr)
		}
		select {
		case <-exited:
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	return true
}

// Stop kills the process (it may be restarted with Restart).
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// Pause freezes the process (SIGSTOP): connections stay open and nothing
// answers, as with a hung server or a network partition. Resume undoes it.
func (s *Server) Pause() { s.signal(sigStop) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(sigCont) }

func (s *Server) signal(sig os.Signal) {
	s.t.Helper()
	if sig == nil {
		s.t.Fatalf("pausing redis-server needs SIGSTOP, which this system lacks")
	}
	if s.cmd == nil || s.cmd.Process == nil {
		s.t.Fatalf("redis-server on %s is not running", s.Addr)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signalling redis-server: %v", err)
	}
}

// Restart starts the server again on the same port, with an empty dataset.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// CLI runs redis-cli against the server and returns its output.
func (s *Server) CLI(args ...string) string {
	s.t.Helper()
	return CLI(s.t, append(append([]string{"-p", strconv.Itoa(s.Port)}, s.cliTLS...), args...)...)
}

// CLI runs redis-cli with the given arguments, for at most a minute
// (redis-cli --cluster create waits for ever for nodes that cannot meet).
func CLI(t T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary(t, "redis-cli"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// StartCluster runs three masters and joins them into a cluster; it returns
// their addresses once every slot is served.
func StartCluster(t T) []string {
	t.Helper()
	var addrs []string
	for _, s := range StartClusterNodes(t, 0) {
		addrs = append(addrs, s.Addr)
	}
	return addrs
}

// StartClusterNodes runs three masters with replicas replicas each, joined
// into a cluster, and returns them once every slot is served.
func StartClusterNodes(t T, replicas int) []*Server {
	t.Helper()
	return startCluster(t, replicas, nil)
}

// StartClusterTLS runs three TLS-only masters (their cluster bus on TLS
// too) joined into a cluster; it returns their addresses and a client
// config that trusts their CA, once every slot is served.
func StartClusterTLS(t T) ([]string, *tls.Config) {
	t.Helper()
	caFile, certFile, keyFile, pool := writeCerts(t, t.TempDir())
	var addrs []string
	for _, s := range startCluster(t, 0, &tlsFiles{caFile, certFile, keyFile}) {
		addrs = append(addrs, s.Addr)
	}
	return addrs, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// tlsFiles are a server's certificate and key and their CA, PEM files.
type tlsFiles struct{ ca, cert, key string }

// startCluster runs the nodes of StartClusterNodes; with certs, they take
// only TLS connections, the cluster bus's and replication's included.
func startCluster(t T, replicas int, certs *tlsFiles) []*Server {
	t.Helper()
	var nodes []*Server
	var addrs []string
	var cli []string
	for i := 0; i < 3*(1+replicas); i++ {
		port := FreePort(t)
		args := []string{"--port", strconv.Itoa(port)}
		if certs != nil {
			args = []string{"--port", "0", "--tls-port", strconv.Itoa(port), "--tls-cert-file", certs.cert,
				"--tls-key-file", certs.key, "--tls-ca-cert-file", certs.ca, "--tls-auth-clients", "no",
				"--tls-cluster", "yes", "--tls-replication", "yes"}
			cli = []string{"--tls", "--cacert", certs.ca}
		}
		// The bus port is chosen too: by default it is the port plus
		// 10000, which may be taken, or beyond 65535 (redis-server then
		// refuses to start).
		s := run(t, port, append(args, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
			"--cluster-port", strconv.Itoa(FreePort(t)), "--repl-diskless-sync-delay", "0"))
		s.cliTLS = cli
		nodes = append(nodes, s)
		addrs = append(addrs, s.Addr)
	}
	CLI(t, append(append(append(cli, "--cluster", "create"), addrs...), "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")...)
	WaitFor(t, 15*time.Second, "cluster_state:ok on every node, every replica in sync", func(context.Context) bool {
		synced := 0
		for _, s := range nodes {
			if !ClusterOK(t, s) {
				return false
			}
			// A replica that never synced would not take over its master.
			info := s.CLI("info", "replication")
			if strings.Contains(info, "role:slave") && strings.Contains(info, "master_link_status:up") {
				synced++
			}
		}
		return synced == 3*replicas
	})
	return nodes
}

// ClusterOK reports whether the node sees its cluster as serving every slot.
func ClusterOK(t T, s *Server) bool {
	t.Helper()
	return strings.Contains(s.CLI("cluster", "info"), "cluster_state:ok")
}

// SlotMaster returns the address of the master serving slot, as node s
// sees it, or "" if none does.
func SlotMaster(t T, s *Server, slot int) string {
	t.Helper()
	for _, line := range strings.Split(s.CLI("cluster", "nodes"), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
			continue
		}
		for _, r := range f[8:] {
			lo, hi, found := strings.Cut(r, "-")
			if !found {
				hi = lo
			}
			a, errA := strconv.Atoi(lo)
			b, errB := strconv.Atoi(hi)
			if errA == nil && errB == nil && a <= slot && slot <= b {
				addr, _, _ := strings.Cut(f[1], "@")
				return addr
			}
		}
	}
	return ""
}

// StartSentinel runs a master and one sentinel watching it under the given
// master name; it returns the master and the sentinel's address.
func StartSentinel(t T, masterName string) (*Server, string) {
	t.Helper()
	master := Start(t)
	return master, startSentinel(t, masterName, master, nil, "sentinel down-after-milliseconds %[1]s 1000\n")
}

// StartSentinelTLS runs a TLS-only master and a TLS-only sentinel that
// watches it over TLS; both certificates come from the master's CA
// (ClientConfig trusts it).
func StartSentinelTLS(t T, masterName string) (*TLSServer, string) {
	t.Helper()
	master := StartTLS(t)
	return master, startSentinel(t, masterName, master.Server, &master.files, "sentinel down-after-milliseconds %[1]s 1000\n")
}

// StartSentinelFailover runs a master, a replica of it and one sentinel
// that fails over quickly (the master is down after 300ms): stop the
// master and the replica becomes the master within a few seconds.
func StartSentinelFailover(t T, masterName string) (master, replica *Server, sentinel string) {
	t.Helper()
	master = Start(t)
	replica = Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	sentinel = startSentinel(t, masterName, master, nil,
		"sentinel down-after-milliseconds %[1]s 300\nsentinel failover-timeout %[1]s 2000\n")
	return master, replica, sentinel
}

// StartSentinelReplicas runs a master, two replicas of it (in sync) and one
// sentinel watching them, with a failover timeout of failoverTimeout; a
// node is down for it after 10s (a paused replica is waited for).
func StartSentinelReplicas(t T, masterName string, failoverTimeout time.Duration) (master *Server, replicas [2]*Server, sentinel string) {
	t.Helper()
	master = Start(t)
	for i := range replicas {
		replicas[i] = Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port), "--repl-diskless-sync-delay", "0")
	}
	WaitFor(t, 10*time.Second, "both replicas in sync", func(context.Context) bool {
		return strings.Contains(master.CLI("info", "replication"), "connected_slaves:2") &&
			strings.Contains(replicas[0].CLI("info", "replication"), "master_link_status:up") &&
			strings.Contains(replicas[1].CLI("info", "replication"), "master_link_status:up")
	})
	sentinel = startSentinel(t, masterName, master, nil, fmt.Sprintf(
		"sentinel down-after-milliseconds %%[1]s 10000\nsentinel failover-timeout %%[1]s %d\n", failoverTimeout.Milliseconds()))
	return master, replicas, sentinel
}

// StartSentinelAuth runs a master that requires masterPassword and one
// sentinel watching it that requires sentinelPassword of its clients.
func StartSentinelAuth(t T, masterName, masterPassword, sentinelPassword string) (*Server, string) {
	t.Helper()
	master := Start(t, "--requirepass", masterPassword)
	return master, startSentinel(t, masterName, master, nil, "sentinel down-after-milliseconds %[1]s 1000\n"+
		"sentinel auth-pass %[1]s "+masterPassword+"\nrequirepass "+sentinelPassword+"\n")
}

// startSentinel runs a sentinel of master; with certs, it accepts only TLS
// connections and reaches the master over TLS, with those files.
func startSentinel(t T, masterName string, master *Server, certs *tlsFiles, extra string) string {
	t.Helper()
	port := FreePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	listen := fmt.Sprintf("port %d\n", port)
	var cli []string
	if certs != nil {
		listen = fmt.Sprintf("port 0\ntls-port %d\ntls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\ntls-auth-clients no\ntls-replication yes\n",
			port, certs.cert, certs.key, certs.ca)
		cli = []string{"--tls", "--cacert", certs.ca}
	}
	body := fmt.Sprintf("%sbind 127.0.0.1\nprotected-mode no\ndir %s\nsentinel monitor %s 127.0.0.1 %d 1\n",
		listen, dir, masterName, master.Port) + fmt.Sprintf(extra, masterName)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary(t, "redis-server"), conf, "--sentinel")
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting sentinel: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		args := append([]string{"-p", strconv.Itoa(port)}, cli...)
		if pw := sentinelPassword(extra); pw != "" {
			args = append(args, "-a", pw, "--no-auth-warning")
		}
		out, err := exec.Command("redis-cli", append(args, "sentinel", "get-master-addr-by-name", masterName)...).CombinedOutput()
		if err == nil && strings.Contains(string(out), strconv.Itoa(master.Port)) {
			return addr
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("sentinel did not start")
	return ""
}

// TLSServer is a redis-server that accepts only TLS connections.
type TLSServer struct {
	*Server
	// CAFile is the PEM file of the CA that signed the server certificate.
	CAFile string
	// ClientConfig trusts that CA.
	ClientConfig *tls.Config
	files        tlsFiles
}

// StartTLS runs a TLS-only redis-server with a fresh CA and certificate for
// 127.0.0.1; clients are not asked for certificates.
func StartTLS(t T) *TLSServer {
	t.Helper()
	dir := t.TempDir()
	caFile, certFile, keyFile, pool := writeCerts(t, dir)
	port := FreePort(t)
	s := run(t, port, []string{"--port", "0", "--tls-port", strconv.Itoa(port), "--tls-cert-file", certFile,
		"--tls-key-file", keyFile, "--tls-ca-cert-file", caFile, "--tls-auth-clients", "no"})
	s.cliTLS = []string{"--tls", "--cacert", caFile}
	return &TLSServer{Server: s, CAFile: caFile, ClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		files: tlsFiles{caFile, certFile, keyFile}}
}

func writeCerts(t T, dir string) (caFile, certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redistest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTpl, caTpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		// Client authentication too: cluster nodes present it to each
		// other on the TLS cluster bus.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(dir, "ca.pem")
	certFile = filepath.Join(dir, "cert.pem")
	keyFile = filepath.Join(dir, "key.pem")
	writePEM(t, caFile, "CERTIFICATE", caDER)
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return caFile, certFile, keyFile, pool
}

func writePEM(t T, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// WaitFor polls f until it returns true or the timeout passes.
func WaitFor(t T, timeout time.Duration, what string, f func(context.Context) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ok := f(ctx)
		cancel()
		if ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// sentinelPassword is the requirepass line of a sentinel's extra config.
func sentinelPassword(extra string) string {
	for _, line := range strings.Split(extra, "\n") {
		if pw, ok := strings.CutPrefix(line, "requirepass "); ok {
			return pw
		}
	}
	return ""
}
