package handler

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus collectors of the handlers. One set exists per
// process; the Caddy module registers it with each config's registry.
type Metrics struct {
	Registrations *prometheus.CounterVec
	Operations    *prometheus.CounterVec
	StorageErrors *prometheus.CounterVec

	// counters caches the children of the vectors by label values, copied
	// on write: there are a few dozen combinations, and WithLabelValues
	// hashes the values and takes the vector's lock on every call.
	counters atomic.Pointer[map[counterKey]prometheus.Counter]
	mu       sync.Mutex
}

type counterKey struct {
	vec     *prometheus.CounterVec
	a, b, c string
}

// NewMetrics builds the collectors. Labels never carry client ids.
func NewMetrics() *Metrics {
	const ns, sub = "caddy", "client_registration"
	return &Metrics{
		Registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "registrations_total",
			Help: "Client registration requests by API and result (created, rejected, limited, unavailable).",
		}, []string{"api", "result"}),
		Operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "operations_total",
			Help: "Requests other than registration (read, update, delete, info, ...) by API, operation and HTTP status class.",
		}, []string{"api", "operation", "status"}),
		StorageErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "storage_errors_total",
			Help: "Requests that failed because the client store was unavailable.",
		}, []string{"api"}),
	}
}

// Collectors lists every collector, for registration.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Registrations, m.Operations, m.StorageErrors}
}

// counter returns the child of vec for the label values (one to three).
func (m *Metrics) counter(vec *prometheus.CounterVec, values ...string) prometheus.Counter {
	k := counterKey{vec: vec, a: values[0]}
	if len(values) > 1 {
		k.b = values[1]
	}
	if len(values) > 2 {
		k.c = values[2]
	}
	if p := m.counters.Load(); p != nil {
		if c, ok := (*p)[k]; ok {
			return c
		}
	}
	c := vec.WithLabelValues(values...)
	m.mu.Lock()
	defer m.mu.Unlock()
	next := map[counterKey]prometheus.Counter{k: c}
	if p := m.counters.Load(); p != nil {
		for k2, c2 := range *p {
			next[k2] = c2
		}
	}
	m.counters.Store(&next)
	return c
}

func (m *Metrics) registration(api, result string) {
	if m != nil {
		m.counter(m.Registrations, api, result).Inc()
	}
}

func (m *Metrics) operation(api, op string, status int) {
	if m != nil {
		class := "2xx"
		switch {
		case status >= 500:
			class = "5xx"
		case status >= 400:
			class = "4xx"
		case status >= 300:
			class = "3xx"
		}
		m.counter(m.Operations, api, op, class).Inc()
	}
}

func (m *Metrics) storageError(api string) {
	if m != nil {
		m.counter(m.StorageErrors, api).Inc()
	}
}
