package handler

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// Bodies of the largest size accepted, built to cost the most per byte:
// thousands of members or elements the APIs never read. What they cost
// (BenchmarkHostileBodies) should stay within a few times what a body of
// the same size holding one long string costs.

const hostileSize = MaxBodyBytes - 64

// hostileObject is a JSON object: the members of head (without braces),
// then short unknown members up to hostileSize.
func hostileObject(head string) string {
	var b strings.Builder
	b.WriteString("{" + head)
	for i := 0; b.Len() < hostileSize; i++ {
		b.WriteString(`,"m` + strconv.Itoa(i) + `":1`)
	}
	return b.String() + "}"
}

// hostileTagged is hostileObject with language-tagged variants of
// client_name (null, which are skipped) for members.
func hostileTagged(head string) string {
	var b strings.Builder
	b.WriteString("{" + head)
	for i := 0; b.Len() < hostileSize; i++ {
		b.WriteString(`,"client_name#a` + strconv.Itoa(i) + `":null`)
	}
	return b.String() + "}"
}

// hostileForm is a form: head, then short unknown fields up to hostileSize.
func hostileForm(head string) string {
	var b strings.Builder
	b.WriteString(head)
	for i := 0; b.Len() < hostileSize; i++ {
		b.WriteString("&m" + strconv.Itoa(i) + "=1")
	}
	return b.String()
}

// hostileList is a JSON array of empty strings.
func hostileList() string {
	return "[" + strings.Repeat(`"",`, hostileSize/3) + `""]`
}

// hostileMember is an object whose member name (after head) is a list of
// empty strings up to hostileSize.
func hostileMember(head, name string) string {
	return "{" + head + `,"` + name + `":` + hostileList()[:hostileSize-len(head)-len(name)-8] + `""]}`
}

// hostileNested is head, then lists and objects nested 900 deep around a
// long string, then tail.
func hostileNested(head, tail string) string {
	const depth = 900
	open := strings.Repeat(`[{"k":`, depth/2)
	closing := strings.Repeat(`}]`, depth/2)
	fill := hostileSize - len(head) - len(tail) - len(open) - len(closing) - 2
	return head + open + `"` + strings.Repeat("x", fill) + `"` + closing + tail
}

// longString is the baseline: an object whose one unknown member is a long
// string.
func longString(head string) string {
	return "{" + head + `,"m":"` + strings.Repeat("x", hostileSize-len(head)) + `"}`
}

type hostileCase struct {
	name, path, ct, body string
}

func hostileCases() map[string][]hostileCase {
	const rfc = `"redirect_uris":["https://a.example/cb"]`
	const iam = `"client_name":"x","client_type":"public","token_endpoint_auth_method":"client_secret_post","grant_types":["authorization_code"],"response_types":["code"]`
	const mg = `"type":"client_associate","application_type":"web"`
	const kv = `"name":"abc","type":"PUBLIC","description":"d"`
	return map[string][]hostileCase{
		"rfc7591": {
			{"baseline", "/register", "application/json", longString(rfc)},
			{"members", "/register", "application/json", hostileObject(rfc)},
			{"tagged members", "/register", "application/json", hostileTagged(rfc)},
			{"list", "/register", "application/json", hostileList()},
			{"redirect_uris list", "/register", "application/json", hostileMember(rfc[:len(rfc)-len(`,"redirect_uris":["https://a.example/cb"]`)+1]+`"client_name":"x"`, "redirect_uris")},
			{"contacts list", "/register", "application/json", hostileMember(rfc, "contacts")},
		},
		"iam": {
			{"baseline", "/v1/clients", "application/json", longString(iam)},
			{"members", "/v1/clients", "application/json", hostileObject(iam)},
			{"scopes list", "/v1/clients", "application/json", hostileMember(iam, "scopes")},
		},
		"mediagoblin": {
			{"baseline", "/api/client/register", "application/json", longString(mg)},
			{"members", "/api/client/register", "application/json", hostileObject(mg)},
			{"list", "/api/client/register", "application/json", hostileList()},
			{"logo list", "/api/client/register", "application/json", hostileMember(mg, "logo_uri")},
			{"logo nested", "/api/client/register", "application/json", hostileNested("{"+mg+`,"logo_uri":`, "}")},
			{"form", "/api/client/register", "application/x-www-form-urlencoded", hostileForm("type=client_associate&application_type=web")},
		},
		"kustvakt": {
			{"baseline", "/api/v1.0/oauth2/client/register", "application/json", longString(kv)},
			{"members", "/api/v1.0/oauth2/client/register", "application/json", hostileObject(kv)},
			{"list form", "/api/v1.0/oauth2/client/list", "application/x-www-form-urlencoded", hostileForm("super_client_id=superclient&super_client_secret=s3cret")},
		},
	}
}

// hostileServers returns each API's Serve, on the in-memory store, so
// that what is measured is the handling of the body.
func hostileServers(tb testing.TB) map[string]func(http.ResponseWriter, *http.Request) bool {
	off := func(o *Options) {
		o.Gate.RateLimit, o.Gate.MaxClients, o.Gate.MaxClientsPerOwner = 0, 0, 0
		o.Registry.Store = &memStore{m: map[string]*storage.Record{}}
	}
	return map[string]func(http.ResponseWriter, *http.Request) bool{
		"rfc7591":     benchAPI(tb).Serve,
		"iam":         newIAMEnv(tb, off).api.Serve,
		"mediagoblin": newMGEnv(tb, off).api.Serve,
		"kustvakt":    newKVEnv(tb, func(o *Options, _ *KustvaktOptions) { off(o) }).api.Serve,
	}
}

func serveHostile(tb testing.TB, serve func(http.ResponseWriter, *http.Request) bool, c hostileCase) int {
	r := httptest.NewRequest(http.MethodPost, "http://h.example"+c.path, strings.NewReader(c.body))
	r.Header.Set("Content-Type", c.ct)
	r.Header.Set(kvUserHeader, "alice")
	w := httptest.NewRecorder()
	if !serve(w, r) {
		tb.Fatalf("%s %s: not served", c.path, c.name)
	}
	return w.Code
}

// BenchmarkHostileBodies: the cost of the costliest bodies against that of
// the baseline, per API (compare the ns/op and B/op of the sub-benchmarks).
func BenchmarkHostileBodies(b *testing.B) {
	servers := hostileServers(b)
	for api, cases := range hostileCases() {
		for _, c := range cases {
			b.Run(api+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(c.body)))
				for b.Loop() {
					serveHostile(b, servers[api], c)
				}
			})
		}
	}
}

// TestHostileBodiesAnswered: every such body gets a 4xx or a 2xx, never a
// 5xx (the benchmark measures their cost).
func TestHostileBodiesAnswered(t *testing.T) {
	servers := hostileServers(t)
	for api, cases := range hostileCases() {
		for _, c := range cases {
			if len(c.body) > MaxBodyBytes {
				t.Fatalf("%s %s: body of %d bytes", api, c.name, len(c.body))
			}
			if code := serveHostile(t, servers[api], c); code >= 500 {
				t.Errorf("%s %s: %d", api, c.name, code)
			}
		}
	}
}
