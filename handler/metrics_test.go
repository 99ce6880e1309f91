package handler

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// value reads one of api's counters: "registrations" by result,
// "operations" by operation and status class, "storage_errors" by none.
func (m *Metrics) value(name, api string, labels ...string) float64 {
	am := m.forAPI(api)
	var c prometheus.Counter
	switch name {
	case "registrations":
		c = am.registrations.WithLabelValues(labels...)
	case "operations":
		c = am.operations.WithLabelValues(labels...)
	default:
		c = am.storageErrors
	}
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		return -1
	}
	return d.GetCounter().GetValue()
}

// TestMetricsPerAPI: a registry shows the series of the APIs registered
// with it only, under one family per name, and the counts of an API carry
// on into the next registry (the next config) that serves it.
func TestMetricsPerAPI(t *testing.T) {
	m := NewMetrics()
	register := func(apis ...string) *prometheus.Registry {
		reg := prometheus.NewPedanticRegistry()
		for _, api := range apis {
			for _, c := range m.Collectors(api) {
				if err := reg.Register(c); err != nil {
					t.Fatal(err)
				}
			}
			m.Init(api)
		}
		return reg
	}
	series := func(reg *prometheus.Registry) map[string]float64 {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, f := range families {
			for _, s := range f.GetMetric() {
				var labels []string
				for _, l := range s.GetLabel() {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
				out[strings.TrimPrefix(f.GetName(), "caddy_client_registration_")+"{"+strings.Join(labels, ",")+"}"] = s.GetCounter().GetValue()
			}
		}
		return out
	}

	first := register("rfc7591", "iam")
	m.forAPI("rfc7591").registration("created")
	m.forAPI("rfc7591").registration("created")
	m.forAPI("iam").operation("read", 503)
	m.forAPI("iam").storageError()
	got := series(first)
	for k, want := range map[string]float64{
		"registrations_total{api=rfc7591,result=created}":     2,
		"registrations_total{api=iam,result=unavailable}":     0,
		"operations_total{api=iam,operation=read,status=5xx}": 1,
		"storage_errors_total{api=iam}":                       1,
		"storage_errors_total{api=rfc7591}":                   0,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
		}
	}
	if len(got) != 2*(len(registrationResults)+1)+1 {
		t.Errorf("%d series: %v", len(got), got)
	}

	// The next config serves rfc7591 only: iam's series are gone from it,
	// rfc7591's count goes on.
	second := register("rfc7591")
	got = series(second)
	for k := range got {
		if strings.Contains(k, "api=iam") {
			t.Errorf("series of an API the config does not serve: %s", k)
		}
	}
	if v := got["registrations_total{api=rfc7591,result=created}"]; v != 2 {
		t.Errorf("count after the reload: %v, want 2", v)
	}
	// Two handlers of one API in a config: the second registration is
	// refused as already made, which Provision accepts.
	for _, c := range m.Collectors("rfc7591") {
		if _, ok := second.Register(c).(prometheus.AlreadyRegisteredError); !ok {
			t.Errorf("registering %v twice: not AlreadyRegisteredError", c)
		}
	}
}

// TestSetOpThroughWrappers: an operation renamed through a writer that
// wraps the observed one (MediaGoblin's for credentialed CORS) is renamed
// on the observed writer, which the metrics read.
func TestSetOpThroughWrappers(t *testing.T) {
	r := httptest.NewRequest("POST", "/api/client/register", nil)
	ob := observe(httptest.NewRecorder(), r, opRegister)
	setOp(mgCredentialed{ob, "https://app.example"}, "update")
	if ob.op != "update" {
		t.Fatalf("op %q, want update", ob.op)
	}
	setOp(httptest.NewRecorder(), "update") // not observed: nothing to do
}
