package caddydcr

import (
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-dcr/caddy-dcr/internal/redistest"
)

func TestSmoke(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, "\tclient_registration {\n\t\t{storage}\n\t}\n\trespond \"site\"")
		resp, body := s.postJSON("/register", `{"redirect_uris":["https://c.example/cb"]}`)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		_, body = s.do("GET", "/other", "")
		if body != "site" {
			t.Fatalf("passthrough: %q", body)
		}
	})
}

// TestCaddyfileExampleServes runs Caddyfile.example itself (on a free port,
// its storage in a temporary directory) and checks what `make run` users
// meet: the APIs answer, the stand-in site has a home page and answers 404
// elsewhere, so that clients probing for documents such as
// /.well-known/oauth-protected-resource are not handed a 200 page.
func TestCaddyfileExampleServes(t *testing.T) {
	b, err := os.ReadFile("Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	port := redistest.FreePort(t)
	cfg := string(b)
	for old, repl := range map[string]string{
		"http://localhost:8080 {": "http://127.0.0.1:" + strconv.Itoa(port) + " {",
		"\n{\n":                   "\n{\n\tadmin off\n\tpersist_config off\n\tstorage file_system " + dataDir(t) + "\n\tlog {\n\t\toutput discard\n\t}\n",
	} {
		if !strings.Contains(cfg, old) {
			t.Fatalf("Caddyfile.example has no %q", old)
		}
		cfg = strings.Replace(cfg, old, repl, 1)
	}
	loadCaddyfile(t, cfg)
	s := &site{t: t, URL: "http://127.0.0.1:" + strconv.Itoa(port)}

	for path, want := range map[string]int{
		"/": 200, "/.well-known/oauth-authorization-server": 200,
		"/.well-known/oauth-protected-resource": 404, "/index.html": 404,
	} {
		if resp, body := s.do("GET", path, ""); resp.StatusCode != want {
			t.Errorf("GET %s: %d %q, want %d", path, resp.StatusCode, body, want)
		}
	}
	for path, body := range map[string]string{
		"/register":            `{"redirect_uris":["http://localhost:9/cb"]}`,
		"/api/client/register": `{"type":"client_associate","application_type":"native"}`,
		"/v1/clients":          iamMinimalRequest,
	} {
		if resp, got := s.postJSON(path, body); resp.StatusCode != 200 && resp.StatusCode != 201 {
			t.Errorf("POST %s: %d %s", path, resp.StatusCode, got)
		}
	}
	// Kustvakt: without credentials, the guest gets Kustvakt's own 401;
	// with alice's, the service (the example's hash is bcrypt at cost 14:
	// a second or so, far more under -race, so no wrong-password case).
	if resp, body := s.postJSON("/api/v1.0/oauth2/client/register", `{"name":"abc","type":"PUBLIC","description":"d"}`); resp.StatusCode != 401 ||
		body != `{"errors":[[2010,"Unauthorized operation for user: guest","guest"]]}`+"\n" {
		t.Errorf("Kustvakt without a user: %d %q, want Kustvakt's 401 for the guest", resp.StatusCode, body)
	}
	basic := func(pw string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:"+pw))
	}
	req, _ := http.NewRequest("POST", s.URL+"/api/v1.0/oauth2/client/register", strings.NewReader(`{"name":"abc","type":"PUBLIC","description":"d"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", basic("wonderland"))
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("Kustvakt as alice: %d %s", resp.StatusCode, body)
	}
}
