package handler

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus collectors of the handlers. One set exists per
// process; the Caddy module registers it with each config's registry.
type Metrics struct {
	Registrations *prometheus.CounterVec
	Operations    *prometheus.CounterVec
	StorageErrors *prometheus.CounterVec
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

func (m *Metrics) registration(api, result string) {
	if m != nil {
		m.Registrations.WithLabelValues(api, result).Inc()
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
		m.Operations.WithLabelValues(api, op, class).Inc()
	}
}

func (m *Metrics) storageError(api string) {
	if m != nil {
		m.StorageErrors.WithLabelValues(api).Inc()
	}
}
