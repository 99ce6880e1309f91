package caddydcr

import (
	"net/http"
	"testing"
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
