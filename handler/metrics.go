package handler

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus collectors of the handlers: one set per API,
// the API being a constant label of its set. They are created once per
// process, so that counts carry on across config reloads, and each config
// registers with its own registry only the sets of the APIs it serves: a
// config that failed to load, or an API a reload removed, shows no series.
// A handler takes its API's set once, when it is made (Options.setAPI).
type Metrics struct {
	mu   sync.Mutex
	apis map[string]*apiMetrics
}

// apiMetrics is the set of one API. Its methods do nothing on nil (no
// Metrics given).
type apiMetrics struct {
	registrations *prometheus.CounterVec // by result
	operations    *prometheus.CounterVec // by operation and status class
	storageErrors prometheus.Counter

	// counters caches the children of the vectors by label values, copied
	// on write: there are a few dozen combinations, and WithLabelValues
	// hashes the values and takes the vector's lock on every call.
	counters atomic.Pointer[map[counterKey]prometheus.Counter]
	mu       sync.Mutex
}

type counterKey struct {
	registration bool // of registrations, else of operations
	a, b         string
}

// NewMetrics returns an empty set of collectors. Labels never carry client
// ids.
func NewMetrics() *Metrics { return new(Metrics) }

// forAPI returns api's set, created on first use; nil for nil m.
func (m *Metrics) forAPI(api string) *apiMetrics {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if am, ok := m.apis[api]; ok {
		return am
	}
	const ns, sub = "caddy", "client_registration"
	constLabels := prometheus.Labels{"api": api}
	am := &apiMetrics{
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "registrations_total", ConstLabels: constLabels,
			Help: "Client registration requests by API and result (created, rejected, unauthorized, limited, unavailable, error).",
		}, []string{"result"}),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "operations_total", ConstLabels: constLabels,
			Help: "Requests other than registration (read, update, delete, info, ...) by API, operation and HTTP status class.",
		}, []string{"operation", "status"}),
		storageErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "storage_errors_total", ConstLabels: constLabels,
			Help: "Requests that failed because the client store was unavailable.",
		}),
	}
	if m.apis == nil {
		m.apis = map[string]*apiMetrics{}
	}
	m.apis[api] = am
	return am
}

// Collectors lists the collectors of api, for a config serving it to
// register.
func (m *Metrics) Collectors(api string) []prometheus.Collector {
	am := m.forAPI(api)
	return []prometheus.Collector{am.registrations, am.operations, am.storageErrors}
}

// counter returns the child of registrations (registration) or operations
// for the label values.
func (am *apiMetrics) counter(registration bool, a, b string) prometheus.Counter {
	k := counterKey{registration: registration, a: a, b: b}
	if p := am.counters.Load(); p != nil {
		if c, ok := (*p)[k]; ok {
			return c
		}
	}
	var c prometheus.Counter
	if registration {
		c = am.registrations.WithLabelValues(a)
	} else {
		c = am.operations.WithLabelValues(a, b)
	}
	am.mu.Lock()
	defer am.mu.Unlock()
	next := map[counterKey]prometheus.Counter{k: c}
	if p := am.counters.Load(); p != nil {
		for k2, c2 := range *p {
			next[k2] = c2
		}
	}
	am.counters.Store(&next)
	return c
}

// registrationResults are the values of registrations_total's result label.
var registrationResults = []string{"created", "rejected", "unauthorized", "limited", "unavailable", "error"}

// Init makes the series of api's registrations and storage errors exist at
// zero, so that they are scraped (and rate() and alerts on them work) before
// the first event, as Prometheus recommends for label values known in
// advance. Operations, whose combinations depend on the API, appear with
// their first request.
func (m *Metrics) Init(api string) {
	if am := m.forAPI(api); am != nil {
		for _, result := range registrationResults {
			am.counter(true, result, "")
		}
	}
}

func (am *apiMetrics) registration(result string) {
	if am != nil {
		am.counter(true, result, "").Inc()
	}
}

func (am *apiMetrics) operation(op string, status int) {
	if am != nil {
		class := "2xx"
		switch {
		case status >= 500:
			class = "5xx"
		case status >= 400:
			class = "4xx"
		case status >= 300:
			class = "3xx"
		}
		am.counter(false, op, class).Inc()
	}
}

func (am *apiMetrics) storageError() {
	if am != nil {
		am.storageErrors.Inc()
	}
}

// opRegister names registrations among the operations observed; they are
// counted in registrations_total by result, the others in operations_total.
const opRegister = "register"

// observed is the response of one request to a route of ours. It records
// the status the handler answered with, so the metrics count every answer,
// whichever path wrote it (a validation error, a refusal of the gate, an
// outage), from one place.
type observed struct {
	http.ResponseWriter
	status int
	// op is the operation, once the route is known; "" is not counted. A
	// handler may change it when the body tells what the request is
	// (MediaGoblin's client_update).
	op string
	// body tracks an HTTP/1 request body, if there is one (see observe);
	// req, set then, is the request whose Body it replaces until done.
	body trackedBody
	req  *http.Request
	// expects is set for an HTTP/1.1 request that waits for "100
	// Continue" before sending its body.
	expects bool
	// drain is a body refused unread, to be dropped once the answer is
	// out (see drainAfter). Meanwhile the answer is held (held, heldCode),
	// so that linger sends it whole, with its length: sent as it was
	// written, chunked, it ended only once the drain did.
	drain    io.Reader
	held     []byte
	heldCode int
	// readFirst is set when the rest of a small body is to be read before
	// the held answer goes out (see answeringBeforeBody): the connection
	// is closed only if it does not end in time.
	readFirst bool
}

// linger sends the answer held for a refused body, then reads and drops
// what is left of the body (see drainAfter): until the body ended,
// unreadLinger passed, drainMax bytes were dropped, or, when not one byte
// of it came, drainIdle passed after the answer (a client waiting for "100
// Continue" sends none: net/http sends it no "100 Continue" once the
// answer is out). Bytes that came before the answer count: a stalled
// upload is given unreadLinger.
func (o *observed) linger() {
	rc := http.NewResponseController(o.ResponseWriter)
	if o.readFirst && !o.bodyEnds(rc) {
		closeUnread(o.ResponseWriter)
		if rest := o.drain; rest != nil {
			o.drain = nil
			drainAfter(o, rest) // dropped after the answer, if it may be
		}
	}
	if o.heldCode != 0 {
		o.ResponseWriter.Header().Set("Content-Length", strconv.Itoa(len(o.held)))
		o.ResponseWriter.WriteHeader(o.heldCode)
		_, _ = o.ResponseWriter.Write(o.held)
	}
	if rc.Flush() != nil || o.drain == nil {
		return
	}
	end := time.Now().Add(unreadLinger)
	bp := drainBuffers.Get().(*[]byte)
	defer drainBuffers.Put(bp)
	buf := *bp
	for n := 0; n < drainMax; {
		// Idle only while nothing came: one that sends, in bursts say
		// (a streamed upload, a long round trip), has the whole second.
		deadline := end
		if d := time.Now().Add(drainIdle); n == 0 && d.Before(end) {
			deadline = d
		}
		if rc.SetReadDeadline(deadline) != nil {
			return
		}
		k, err := o.drain.Read(buf)
		n += k
		if err != nil {
			return
		}
	}
}

// drainBuffers hold what linger and bodyEnds read of a body to drop it.
var drainBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// bodyEnds reads what is left of a small body refused unread (readFirst),
// for at most unreadLinger, and reports whether it ended: then the held
// answer goes out with the connection kept, as net/http would have kept
// it. A reverse proxy that streams request bodies (nginx's
// proxy_request_buffering off) drops its client's connection after an
// answer that closes the upstream one before the body is through, and its
// next request with it. Otherwise the connection is closed, the rest
// dropped after the answer if it is still coming (drain), or not after a
// read that timed out (drain nil: Caddy's body reader then fails every
// read after it).
func (o *observed) bodyEnds(rc *http.ResponseController) bool {
	end := time.Now().Add(unreadLinger)
	bp := drainBuffers.Get().(*[]byte)
	defer drainBuffers.Put(bp)
	buf := *bp
	// The whole second even when nothing came yet: a proxy that streams
	// bodies may start one late (nginx answers "100 Continue" itself, and
	// its client's body then takes a round trip).
	if rc.SetReadDeadline(end) != nil {
		return false
	}
	for n := 0; n <= readFirstMax; {
		k, err := o.drain.Read(buf)
		n += k
		if err == io.EOF {
			_ = rc.SetReadDeadline(time.Time{})
			o.drain = nil
			return true
		}
		if err != nil {
			o.drain = nil
			return false
		}
	}
	return false
}

func (o *observed) WriteHeader(code int) {
	if o.status == 0 && code >= 200 {
		o.status = code
		o.answeringBeforeBody(code)
	}
	if o.drain != nil && code >= 200 {
		if o.heldCode == 0 {
			o.heldCode = code
		}
		return
	}
	o.ResponseWriter.WriteHeader(code)
}

func (o *observed) Write(b []byte) (int, error) {
	if o.status == 0 {
		o.WriteHeader(http.StatusOK)
	}
	if o.drain != nil {
		o.held = append(o.held, b...)
		return len(b), nil
	}
	return o.ResponseWriter.Write(b)
}

// answeringBeforeBody decides how an answer given before the request's
// body was read to its end goes out. Left to net/http, it went out only
// once up to 256 KiB of the body had been read: a client waiting for "100
// Continue" waited until its own timeout before sending the body, and a
// stalled upload got its refusal only when the connection timed out (RFC
// 9110 section 10.1.1: an answer decided by the header fields is sent at
// once; the client may then close or send the body, which nobody reads).
//   - Any answer to a client that waits for "100 Continue", and a refusal
//     of a body announced over readFirstMax, goes out at once; the
//     connection then closes, what still arrives dropped first (drainAfter).
//   - Another refusal (one decided by the header fields: a wrong method,
//     media type or token) is held while the rest of the body is read, for
//     a second at most (bodyEnds): the connection is kept if it ends.
//   - A success that needs no body (a DELETE or GET that came with one) is
//     left to net/http, and keeps its connection.
func (o *observed) answeringBeforeBody(code int) {
	if o.req == nil || o.body.ended || (code < 400 && !o.expects) || o.drain != nil {
		return
	}
	if o.expects || o.body.left > readFirstMax {
		closeUnread(o.ResponseWriter)
		drainAfter(o, &o.body)
		return
	}
	// A small body, most likely arriving: read first (bodyEnds), the
	// answer held meanwhile.
	o.drain, o.readFirst = &o.body, true
}

// trackedBody records whether a handler read a request body to its end:
// to EOF, or to its announced length (left, -1 for none: a reader may
// stop there without asking for the EOF, as io.ReadFull does).
type trackedBody struct {
	io.ReadCloser
	left  int64
	ended bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.left > 0 {
		b.left -= int64(n)
	}
	if err == io.EOF || b.left == 0 {
		b.ended = true
	}
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (o *observed) Unwrap() http.ResponseWriter { return o.ResponseWriter }

// setOp renames the operation of w, if w is observed, or wraps (Unwrap)
// an observed writer.
func setOp(w http.ResponseWriter, op string) {
	if ob := observedOf(w); ob != nil {
		ob.op = op
	}
}

// observedOf is w, if observed, or the observed writer w wraps (Unwrap),
// or nil.
func observedOf(w http.ResponseWriter) *observed {
	for w != nil {
		if ob, ok := w.(*observed); ok {
			return ob
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
	return nil
}

var observedPool = sync.Pool{New: func() any { return new(observed) }}

// observe starts watching the answer to r for op. The wrapper is reused:
// it must not be kept once done has counted it. The body of an HTTP/1
// request is watched too, so that an answer given before it was read to
// its end closes the connection (answeringBeforeBody); done gives r its
// own body back.
func observe(w http.ResponseWriter, r *http.Request, op string) *observed {
	ob := observedPool.Get().(*observed)
	ob.ResponseWriter, ob.op = w, op
	if r.ProtoMajor == 1 && r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		ob.body = trackedBody{ReadCloser: r.Body, left: r.ContentLength}
		ob.req = r
		ob.expects = strings.EqualFold(r.Header.Get("Expect"), "100-continue")
		r.Body = &ob.body
	}
	return ob
}

// done counts the answer ob recorded and releases ob.
func (am *apiMetrics) done(ob *observed) {
	if ob.drain != nil {
		ob.linger()
	}
	if ob.req != nil {
		ob.req.Body = ob.body.ReadCloser
	}
	status, op := ob.status, ob.op
	*ob = observed{}
	observedPool.Put(ob)
	if am == nil || op == "" {
		return
	}
	if status == 0 {
		status = http.StatusOK // nothing written: net/http answers 200
	}
	if op == opRegister {
		am.registration(registrationResult(status))
		return
	}
	am.operation(op, status)
}

// registrationResult is the result label of a registration answered with
// status.
func registrationResult(status int) string {
	switch {
	case status < 300:
		return "created"
	case status == http.StatusTooManyRequests:
		return "limited"
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return "unauthorized"
	case status == http.StatusServiceUnavailable:
		return "unavailable"
	case status >= 500:
		return "error"
	}
	return "rejected"
}
