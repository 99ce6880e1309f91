package caddydcr

// Black-box conformance suite for the RFC 7591 / 7592 / 8414 API
// (`client_registration` and `client_registration rfc7591`). Every test is
// named after, and every table row labelled with, the checklist ID of
// /work/shared/spec/dcr-anchors.md section (a) it covers. Everything goes
// through HTTP against an in-process Caddy, on both backends (forBackends).
//
// Helpers of this file are prefixed "rfc" so they never collide with the
// other API suites of the package.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-dcr/caddy-dcr/internal/redistest"
)

// ---------------------------------------------------------------------------
// Helpers

// rfcCB is a redirect URI every application type accepts.
const rfcCB = `"redirect_uris":["https://c.example/cb"]`

var (
	rfcIDRe     = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)
	rfcSecretRe = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
)

// rfcStart runs a site whose client_registration rfc7591 block holds the
// backend's storage plus extra subdirectives, followed by `respond "site"`.
func rfcStart(t *testing.T, backend string, extra ...string) *site {
	t.Helper()
	inner := "\t\t{storage}\n"
	for _, e := range extra {
		inner += "\t\t" + e + "\n"
	}
	return startCaddy(t, backend, "\tclient_registration rfc7591 {\n"+inner+"\t}\n\trespond \"site\"")
}

// rfcLoad loads a site on a given port (needed when the config must know its
// own URL, e.g. for `issuer`) with Caddy's global storage in dataDir. Bodies
// given to it say `rate_limit off` themselves, as startCaddy does: abuse
// controls are not what this suite tests.
func rfcLoad(t *testing.T, port int, dataDir, body string) *site {
	t.Helper()
	loadCaddyfile(t, testCaddyfile("admin off\ngrace_period 1ms\nstorage file_system "+dataDir, port, body))
	return &site{t: t, URL: "http://127.0.0.1:" + strconv.Itoa(port)}
}

// rfcRaw sends a request without touching *testing.T, so goroutines can use
// it.
func rfcRaw(method, url, body string, headers ...string) (*http.Response, string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, "", err
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

func rfcBearer(tok string) string { return "Authorization: Bearer " + tok }

// rfcPath turns an absolute URL of the site into a path for site.do.
func rfcPath(t *testing.T, s *site, abs string) string {
	t.Helper()
	p, ok := strings.CutPrefix(abs, s.URL)
	if !ok || !strings.HasPrefix(p, "/") {
		t.Fatalf("URL %q is not under the site %q", abs, s.URL)
	}
	return p
}

// rfcWantJSON checks Content-Type: application/json.
func rfcWantJSON(t *testing.T, resp *http.Response) {
	t.Helper()
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", resp.Header.Get("Content-Type"))
	}
}

// rfcWantNoStore checks S14: Cache-Control: no-store and Pragma: no-cache.
func rfcWantNoStore(t *testing.T, resp *http.Response) {
	t.Helper()
	if cc := resp.Header.Get("Cache-Control"); !slices.Contains(strings.Split(strings.ReplaceAll(cc, " ", ""), ","), "no-store") {
		t.Errorf("S14: Cache-Control = %q, want no-store (status %d)", cc, resp.StatusCode)
	}
	if p := resp.Header.Get("Pragma"); p != "no-cache" {
		t.Errorf("S14: Pragma = %q, want no-cache (status %d)", p, resp.StatusCode)
	}
}

// rfcWantError checks E1: the status, a JSON body with exactly "error"
// (= code, or any non-empty string when code is "") and "error_description"
// (a non-empty string), S14 headers, and no WWW-Authenticate except on 401.
func rfcWantError(t *testing.T, resp *http.Response, body string, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status = %d, want %d; body: %s", resp.StatusCode, status, body)
	}
	rfcWantJSON(t, resp)
	rfcWantNoStore(t, resp)
	if status != http.StatusUnauthorized {
		if wa := resp.Header.Get("WWW-Authenticate"); wa != "" {
			t.Errorf("E1: WWW-Authenticate = %q on a %d error, want none", wa, status)
		}
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Errorf("E1: error body is not a JSON object: %v: %q", err, body)
		return
	}
	if e, ok := m["error"].(string); !ok || e == "" || (code != "" && e != code) {
		t.Errorf("E1: error = %#v, want %q; body: %s", m["error"], code, body)
	}
	if d, ok := m["error_description"].(string); !ok || d == "" {
		t.Errorf("E1: error_description = %#v, want a non-empty string", m["error_description"])
	}
	for k := range m {
		if k != "error" && k != "error_description" {
			t.Errorf("E1: unexpected member %q in error body %s", k, body)
		}
	}
}

// rfcKeys returns the top-level member names of a JSON object in order.
func rfcKeys(t *testing.T, body string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %s", body)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("bad JSON %v: %s", err, body)
		}
		keys = append(keys, tok.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("bad JSON %v: %s", err, body)
		}
	}
	return keys
}

// rfcFixedOrder is the order of the leading members of a client
// information response; the optional metadata follow response_types.
var rfcFixedOrder = []string{
	"client_id", "client_secret", "client_id_issued_at", "client_secret_expires_at",
	"registration_access_token", "registration_client_uri",
	"redirect_uris", "token_endpoint_auth_method", "grant_types", "response_types",
}

// rfcWantOrder checks the member order of a client information response and
// that no member is duplicated.
func rfcWantOrder(t *testing.T, body string) {
	t.Helper()
	keys := rfcKeys(t, body)
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			t.Errorf("member %q appears twice: %s", k, body)
		}
		seen[k] = true
	}
	var want []string
	for _, k := range rfcFixedOrder {
		if seen[k] {
			want = append(want, k)
		}
	}
	if len(keys) < len(want) || !slices.Equal(keys[:len(want)], want) {
		t.Errorf("member order = %v, want it to start with %v", keys, want)
	}
}

// rfcInt returns an integer member (a JSON number without fraction or
// exponent).
func rfcInt(t *testing.T, m map[string]any, key string) int64 {
	t.Helper()
	n, ok := m[key].(json.Number)
	if !ok {
		t.Fatalf("%s = %#v (%T), want a JSON number", key, m[key], m[key])
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		t.Fatalf("%s = %s, want an integer", key, n)
	}
	return i
}

func rfcStrs(t *testing.T, m map[string]any, key string) []string {
	t.Helper()
	arr, ok := m[key].([]any)
	if !ok {
		t.Fatalf("%s = %#v, want an array", key, m[key])
	}
	out := make([]string, len(arr))
	for i, v := range arr {
		s, ok := v.(string)
		if !ok {
			t.Fatalf("%s[%d] = %#v, want a string", key, i, v)
		}
		out[i] = s
	}
	return out
}

func rfcWantStrs(t *testing.T, m map[string]any, key string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got := rfcStrs(t, m, key); !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", key, got, want)
	}
}

func rfcWantStr(t *testing.T, m map[string]any, key, want string) {
	t.Helper()
	if got, ok := m[key].(string); !ok || got != want {
		t.Errorf("%s = %#v, want %q", key, m[key], want)
	}
}

func rfcWantAbsent(t *testing.T, m map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if v, ok := m[k]; ok {
			t.Errorf("member %q = %#v present, want it absent", k, v)
		}
	}
}

// rfcClient is a registered client as the registration response gave it.
type rfcClient struct {
	ID, Secret, RAT, URI string
	Body                 map[string]any
	Raw                  string
}

// path is the client's configuration path on the site.
func (c rfcClient) path(t *testing.T, s *site) string { return rfcPath(t, s, c.URI) }

// rfcRegister posts body and checks the invariants of every successful
// registration (S1, S2 format, S3 format, S4, S5, S15, S14, order).
func rfcRegister(t *testing.T, s *site, body string) rfcClient {
	t.Helper()
	resp, raw := s.postJSON("/register", body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("S1: POST /register %s: status %d, want 201; body %s", body, resp.StatusCode, raw)
	}
	return rfcCheckCreated(t, s, resp, raw)
}

func rfcCheckCreated(t *testing.T, s *site, resp *http.Response, raw string) rfcClient {
	t.Helper()
	rfcWantJSON(t, resp)
	rfcWantNoStore(t, resp)
	m := object(t, raw)
	rfcWantOrder(t, raw)
	c := rfcClient{Body: m, Raw: raw}
	c.ID, _ = m["client_id"].(string)
	if !rfcIDRe.MatchString(c.ID) {
		t.Errorf("S2: client_id = %#v, want 22 base64url characters", m["client_id"])
	}
	if v, ok := m["client_secret"]; ok {
		c.Secret, _ = v.(string)
		if !rfcSecretRe.MatchString(c.Secret) {
			t.Errorf("S3: client_secret = %#v, want 43 base64url characters", v)
		}
		if rfcInt(t, m, "client_secret_expires_at") < 0 {
			t.Errorf("S4: client_secret_expires_at = %v, want >= 0", m["client_secret_expires_at"])
		}
	}
	issued := rfcInt(t, m, "client_id_issued_at")
	if now := time.Now().Unix(); issued < now-60 || issued > now+60 {
		t.Errorf("S5: client_id_issued_at = %d, want within 60 s of %d", issued, now)
	}
	c.RAT, _ = m["registration_access_token"].(string)
	if c.RAT == "" {
		t.Errorf("S15: registration_access_token = %#v, want a non-empty string", m["registration_access_token"])
	}
	c.URI, _ = m["registration_client_uri"].(string)
	if want := s.URL + "/register/" + c.ID; c.URI != want {
		t.Errorf("S15: registration_client_uri = %#v, want %q", m["registration_client_uri"], want)
	}
	if loc := resp.Header.Get("Location"); loc != c.URI {
		t.Errorf("S1: Location = %q, want registration_client_uri %q", loc, c.URI)
	}
	if _, ok := m["redirect_uris"].([]any); !ok {
		t.Errorf("S6: redirect_uris = %#v, want an array (always present)", m["redirect_uris"])
	}
	return c
}

// rfcGet reads a client with a token and returns the decoded body.
func rfcGet(t *testing.T, s *site, c rfcClient, tok string) (*http.Response, string) {
	t.Helper()
	return s.do(http.MethodGet, c.path(t, s), "", rfcBearer(tok))
}

func rfcPut(t *testing.T, s *site, c rfcClient, tok, body string) (*http.Response, string) {
	t.Helper()
	return s.do(http.MethodPut, c.path(t, s), body, "Content-Type: application/json", rfcBearer(tok))
}

// rfcMetadata returns the members of a client information body that are
// metadata (not credentials or server timestamps).
func rfcMetadata(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		switch k {
		case "client_secret", "registration_access_token", "client_id_issued_at", "client_secret_expires_at", "registration_client_uri":
			continue
		}
		out[k] = v
	}
	return out
}

func rfcWantUnauthorized(t *testing.T, resp *http.Response, body string, challenge string) {
	t.Helper()
	rfcWantError(t, resp, body, http.StatusUnauthorized, "invalid_token")
	if got := resp.Header.Get("WWW-Authenticate"); got != challenge {
		t.Errorf("WWW-Authenticate = %q, want %q", got, challenge)
	}
}

const rfcInvalidToken = `Bearer error="invalid_token"`

// ---------------------------------------------------------------------------
// A. Registration endpoint: request handling (R1-R3, R7, X1, D4)

func TestRFC7591Request(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := rfcStart(t, backend)
		okBody := `{` + rfcCB + `}`
		created := func(t *testing.T, resp *http.Response, body string) {
			t.Helper()
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("status %d, want 201: %s", resp.StatusCode, body)
			}
			rfcCheckCreated(t, s, resp, body)
		}
		rows := []struct {
			id, name string
			run      func(t *testing.T)
		}{
			{"R1", "application/json gives 201", func(t *testing.T) {
				resp, body := s.postJSON("/register", okBody)
				created(t, resp, body)
			}},
			{"R1", "charset parameter accepted", func(t *testing.T) {
				resp, body := s.do("POST", "/register", okBody, "Content-Type: application/json; charset=utf-8")
				created(t, resp, body)
			}},
			{"R1", "media type is case-insensitive", func(t *testing.T) {
				resp, body := s.do("POST", "/register", okBody, "Content-Type: Application/JSON;charset=UTF-8")
				created(t, resp, body)
			}},
			{"R1", "Accept application/json and no Authorization (open registration)", func(t *testing.T) {
				resp, body := s.do("POST", "/register", okBody, "Content-Type: application/json", "Accept: application/json")
				created(t, resp, body)
			}},
			{"D4", "/register at the issuer root (MCP default endpoint)", func(t *testing.T) {
				resp, body := s.postJSON("/register", `{"redirect_uris":["http://localhost:33418/callback"],"token_endpoint_auth_method":"none"}`)
				created(t, resp, body)
			}},
			{"R2", "compressed body", func(t *testing.T) {
				resp, body := s.do("POST", "/register", okBody, "Content-Type: application/json", "Content-Encoding: gzip")
				rfcWantError(t, resp, body, 400, "invalid_request")
				resp, body = s.do("POST", "/register", okBody, "Content-Type: application/json", "Content-Encoding: identity")
				created(t, resp, body)
			}},
			{"R2", "BOM and JSON white space only", func(t *testing.T) {
				resp, body := s.postJSON("/register", "\ufeff \r\n"+okBody+"\n")
				created(t, resp, body)
				resp, body = s.postJSON("/register", "\u00a0"+okBody)
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"R2", "null body", func(t *testing.T) {
				resp, body := s.postJSON("/register", `null`)
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"R2", "array body", func(t *testing.T) {
				resp, body := s.postJSON("/register", `[]`)
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"R2", "array of an object", func(t *testing.T) {
				resp, body := s.postJSON("/register", `[{`+rfcCB+`}]`)
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"R2", "bare string body", func(t *testing.T) {
				resp, body := s.postJSON("/register", `"x"`)
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"R2", "number body", func(t *testing.T) {
				resp, body := s.postJSON("/register", `42`)
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"R2", "malformed JSON", func(t *testing.T) {
				resp, body := s.postJSON("/register", `{"redirect_uris":`)
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"R2", "invalid UTF-8 is refused, not replaced", func(t *testing.T) {
				resp, body := s.postJSON("/register", "{\"redirect_uris\":[\"https://c.example/cb\xff\"]}")
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"R2", "trailing data after the object", func(t *testing.T) {
				resp, body := s.postJSON("/register", okBody+` {}`)
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"R2", "empty body", func(t *testing.T) {
				resp, body := s.postJSON("/register", ``)
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"R3", "form content type", func(t *testing.T) {
				resp, body := s.do("POST", "/register", "redirect_uris=https%3A%2F%2Fc.example%2Fcb", "Content-Type: application/x-www-form-urlencoded")
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"R3", "JSON body with form content type", func(t *testing.T) {
				resp, body := s.do("POST", "/register", okBody, "Content-Type: application/x-www-form-urlencoded")
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"R3", "missing content type", func(t *testing.T) {
				resp, body := s.do("POST", "/register", okBody)
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"R3", "text/plain", func(t *testing.T) {
				resp, body := s.do("POST", "/register", okBody, "Content-Type: text/plain")
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"R3", "multipart/form-data", func(t *testing.T) {
				resp, body := s.do("POST", "/register", okBody, "Content-Type: multipart/form-data; boundary=x")
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"R3", "application/json-patch+json is not application/json", func(t *testing.T) {
				resp, body := s.do("POST", "/register", okBody, "Content-Type: application/json-patch+json")
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"X1", "body of exactly 64 KiB accepted", func(t *testing.T) {
				b := okBody + strings.Repeat(" ", 64<<10-len(okBody))
				if len(b) != 64<<10 {
					t.Fatal(len(b))
				}
				resp, body := s.postJSON("/register", b)
				created(t, resp, body)
			}},
			{"X1", "body over 64 KiB gives 413 (Content-Length)", func(t *testing.T) {
				b := okBody + strings.Repeat(" ", 64<<10-len(okBody)+1)
				resp, body := s.postJSON("/register", b)
				rfcWantError(t, resp, body, http.StatusRequestEntityTooLarge, "")
			}},
			{"X1", "body over 64 KiB gives 413 (chunked)", func(t *testing.T) {
				b := `{"client_name":"` + strings.Repeat("a", 70<<10) + `",` + rfcCB + `}`
				// A MultiReader hides the length: the request is sent chunked.
				req, err := http.NewRequest("POST", s.URL+"/register", io.MultiReader(strings.NewReader(b)))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				resp, err := httpClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				raw, _ := io.ReadAll(resp.Body)
				rfcWantError(t, resp, string(raw), http.StatusRequestEntityTooLarge, "")
			}},
			{"X1", "10 redirect URIs accepted", func(t *testing.T) {
				var uris []string
				for i := range 10 {
					uris = append(uris, fmt.Sprintf(`"https://c.example/cb%d"`, i))
				}
				resp, body := s.postJSON("/register", `{"redirect_uris":[`+strings.Join(uris, ",")+`]}`)
				created(t, resp, body)
				if n := len(rfcStrs(t, object(t, body), "redirect_uris")); n != 10 {
					t.Errorf("%d redirect URIs echoed, want 10", n)
				}
			}},
			{"X1", "11 redirect URIs rejected", func(t *testing.T) {
				var uris []string
				for i := range 11 {
					uris = append(uris, fmt.Sprintf(`"https://c.example/cb%d"`, i))
				}
				resp, body := s.postJSON("/register", `{"redirect_uris":[`+strings.Join(uris, ",")+`]}`)
				rfcWantError(t, resp, body, 400, "invalid_redirect_uri")
			}},
		}
		for _, m := range []string{"GET", "PUT", "DELETE", "PATCH"} {
			rows = append(rows, struct {
				id, name string
				run      func(t *testing.T)
			}{"R7", m + " /register gives 405 Allow POST", func(t *testing.T) {
				body := ""
				var hdr []string
				if m == "PUT" || m == "PATCH" {
					body, hdr = okBody, []string{"Content-Type: application/json"}
				}
				resp, raw := s.do(m, "/register", body, hdr...)
				rfcWantError(t, resp, raw, http.StatusMethodNotAllowed, "")
				if a := resp.Header.Get("Allow"); a != "POST" {
					t.Errorf("Allow = %q, want POST", a)
				}
			}})
		}
		rows = append(rows, struct {
			id, name string
			run      func(t *testing.T)
		}{"R7", "HEAD /register gives 405 Allow POST", func(t *testing.T) {
			resp, _ := s.do("HEAD", "/register", "")
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
				t.Errorf("status %d Allow %q, want 405 POST", resp.StatusCode, resp.Header.Get("Allow"))
			}
		}})
		for _, r := range rows {
			t.Run(r.id+" "+r.name, r.run)
		}
	})
}

// TestRFC7591DirectiveForms: the bare directive and the explicit rfc7591
// argument serve the same API (R1).
func TestRFC7591DirectiveForms(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		for _, d := range []string{"client_registration", "client_registration rfc7591"} {
			t.Run("R1 "+d, func(t *testing.T) {
				s := startCaddy(t, backend, "\t"+d+" {\n\t\t{storage}\n\t}\n\trespond \"site\"")
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				resp, body := rfcGet(t, s, c, c.RAT)
				if resp.StatusCode != 200 {
					t.Errorf("GET: %d %s", resp.StatusCode, body)
				}
			})
		}
	})
}

// ---------------------------------------------------------------------------
// B. Successful registration response (S1-S7, S9-S12, S15, V13)

func TestRFC7591Response(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := rfcStart(t, backend)
		rows := []struct {
			id, name string
			run      func(t *testing.T)
		}{
			{"S1", "201 application/json with Location", func(t *testing.T) {
				resp, body := s.postJSON("/register", `{`+rfcCB+`}`)
				if resp.StatusCode != http.StatusCreated {
					t.Fatalf("status %d, want exactly 201: %s", resp.StatusCode, body)
				}
				rfcWantJSON(t, resp)
				c := rfcCheckCreated(t, s, resp, body)
				if resp.Header.Get("Location") != c.URI {
					t.Errorf("Location %q != registration_client_uri %q", resp.Header.Get("Location"), c.URI)
				}
			}},
			{"S2", "identical requests give distinct client ids", func(t *testing.T) {
				a := rfcRegister(t, s, `{`+rfcCB+`}`)
				b := rfcRegister(t, s, `{`+rfcCB+`}`)
				if a.ID == b.ID {
					t.Errorf("same client_id %q for two registrations", a.ID)
				}
				if a.Secret == b.Secret || a.RAT == b.RAT {
					t.Errorf("secrets or tokens repeat: %q/%q %q/%q", a.Secret, b.Secret, a.RAT, b.RAT)
				}
			}},
			{"S3", "none gives no client_secret", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`,"token_endpoint_auth_method":"none"}`)
				rfcWantAbsent(t, c.Body, "client_secret", "client_secret_expires_at")
				rfcWantStr(t, c.Body, "token_endpoint_auth_method", "none")
			}},
			{"S3", "default client_secret_basic gives a 256-bit secret", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				if !rfcSecretRe.MatchString(c.Secret) {
					t.Errorf("client_secret = %q, want 43 base64url characters", c.Secret)
				}
			}},
			{"S3", "client_secret_post gives a secret", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`,"token_endpoint_auth_method":"client_secret_post"}`)
				if c.Secret == "" {
					t.Error("no client_secret")
				}
			}},
			{"S3", "client_secret_jwt gives a secret", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`,"token_endpoint_auth_method":"client_secret_jwt"}`)
				if c.Secret == "" {
					t.Error("no client_secret")
				}
			}},
			{"S3", "private_key_jwt gives no secret", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`,"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://c.example/jwks.json"}`)
				rfcWantAbsent(t, c.Body, "client_secret", "client_secret_expires_at")
			}},
			{"S4", "client_secret_expires_at is the number 0 with a secret", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				if string(c.Body["client_secret_expires_at"].(json.Number)) != "0" {
					t.Errorf("client_secret_expires_at = %v, want 0", c.Body["client_secret_expires_at"])
				}
				if !strings.Contains(c.Raw, `"client_secret_expires_at":0`) {
					t.Errorf("client_secret_expires_at not the JSON number 0: %s", c.Raw)
				}
			}},
			{"S5", "client_id_issued_at is integer Unix seconds near now", func(t *testing.T) {
				before := time.Now().Unix()
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				if got := rfcInt(t, c.Body, "client_id_issued_at"); got < before-1 || got > time.Now().Unix()+1 {
					t.Errorf("client_id_issued_at = %d, want in [%d, now]", got, before)
				}
			}},
			{"S6", "every recognized member echoed, in order", func(t *testing.T) {
				req := `{"redirect_uris":["https://c.example/cb","https://c.example/cb2"],` +
					`"token_endpoint_auth_method":"client_secret_post",` +
					`"grant_types":["authorization_code","refresh_token"],"response_types":["code"],` +
					`"application_type":"web","client_name":"Example <App> & \"Co\"","client_uri":"https://c.example/",` +
					`"logo_uri":"https://c.example/logo.png","tos_uri":"https://c.example/tos","policy_uri":"https://c.example/policy",` +
					`"jwks_uri":"https://c.example/jwks.json","scope":"read write","contacts":["admin@c.example","ops@c.example"],` +
					`"software_id":"4NRB1-0XZABZI9E6-5SM3R","software_version":"2.1"}`
				c := rfcRegister(t, s, req)
				m := c.Body
				rfcWantStrs(t, m, "redirect_uris", "https://c.example/cb", "https://c.example/cb2")
				rfcWantStr(t, m, "token_endpoint_auth_method", "client_secret_post")
				rfcWantStrs(t, m, "grant_types", "authorization_code", "refresh_token")
				rfcWantStrs(t, m, "response_types", "code")
				for k, v := range map[string]string{
					"application_type": "web", "client_name": `Example <App> & "Co"`, "client_uri": "https://c.example/",
					"logo_uri": "https://c.example/logo.png", "tos_uri": "https://c.example/tos", "policy_uri": "https://c.example/policy",
					"jwks_uri": "https://c.example/jwks.json", "scope": "read write", "software_id": "4NRB1-0XZABZI9E6-5SM3R", "software_version": "2.1",
				} {
					rfcWantStr(t, m, k, v)
				}
				rfcWantStrs(t, m, "contacts", "admin@c.example", "ops@c.example")
				if !strings.Contains(c.Raw, `"client_name":"Example <App> & \"Co\""`) {
					t.Errorf("client_name not echoed byte-exact (HTML-escaped?): %s", c.Raw)
				}
			}},
			{"S6", "redirect_uris echoed as [] when none", func(t *testing.T) {
				c := rfcRegister(t, s, `{"grant_types":["client_credentials"]}`)
				if !strings.Contains(c.Raw, `"redirect_uris":[]`) {
					t.Errorf("want \"redirect_uris\":[] in %s", c.Raw)
				}
			}},
			{"S7", "defaults for auth method, grant and response types", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				rfcWantStr(t, c.Body, "token_endpoint_auth_method", "client_secret_basic")
				rfcWantStrs(t, c.Body, "grant_types", "authorization_code")
				rfcWantStrs(t, c.Body, "response_types", "code")
				if c.Secret == "" {
					t.Error("default client_secret_basic issued no secret")
				}
			}},
			{"S7", "no defaults invented for optional members", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				rfcWantAbsent(t, c.Body, "application_type", "client_name", "scope", "contacts", "jwks", "jwks_uri", "logo_uri")
			}},
			{"S9", "the response is authoritative: GET returns what 201 said", func(t *testing.T) {
				c := rfcRegister(t, s, `{"redirect_uris":["https://c.example/cb"],"grant_types":["refresh_token","authorization_code"],"scope":"a b","client_name":"n"}`)
				resp, body := rfcGet(t, s, c, c.RAT)
				if resp.StatusCode != 200 {
					t.Fatalf("GET %d %s", resp.StatusCode, body)
				}
				if got, want := rfcMetadata(object(t, body)), rfcMetadata(c.Body); !reflect.DeepEqual(got, want) {
					t.Errorf("GET metadata\n%v\nwant (201)\n%v", got, want)
				}
			}},
			{"S10", "unknown members ignored and not echoed", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`,"example_extension_parameter":"x","resource":"https://mcp.example/",`+
					`"nested_unknown":{"a":[1,2,{"b":null}]},"software_id#en":"x","client_name#":"x","client_name#!!":"x","id_token_signed_response_alg":"RS256"}`)
				rfcWantAbsent(t, c.Body, "example_extension_parameter", "resource", "nested_unknown", "software_id#en", "client_name#", "client_name#!!", "id_token_signed_response_alg")
			}},
			{"S10", "lone surrogate escapes in unknown members ignored", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`,"x_text":"\ud800","x_obj":{"\udc00":["a\ud83d"]}}`)
				rfcWantAbsent(t, c.Body, "x_text", "x_obj")
			}},
			{"S10", "deeply nested unknown member ignored", func(t *testing.T) {
				deep := strings.Repeat(`{"a":[`, 2000) + strings.Repeat(`]}`, 2000)
				c := rfcRegister(t, s, `{`+rfcCB+`,"x_nested":`+deep+`}`)
				rfcWantAbsent(t, c.Body, "x_nested")
			}},
			{"R2", "nesting beyond the JSON decoder's limit is 400, not 500", func(t *testing.T) {
				deep := strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001)
				resp, body := s.postJSON("/register", `{`+rfcCB+`,"x_nested":`+deep+`}`)
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"S11", "language-tagged members stored and echoed byte-exact", func(t *testing.T) {
				tagged := []string{
					`"client_name#ja-Jpan-JP":"クライアント名"`,
					`"client_name#en":"Client \"Name\" <b>"`,
					`"tos_uri#de":"https://c.example/tos/de"`,
					`"policy_uri#fr-CA":"https://c.example/policy/fr"`,
					`"logo_uri#en-US":"https://c.example/logo-en.png"`,
					`"client_uri#ja-Jpan-JP":"https://c.example/ja/"`,
				}
				c := rfcRegister(t, s, `{`+rfcCB+`,"client_name":"Client Name",`+strings.Join(tagged, ",")+`}`)
				rfcWantStr(t, c.Body, "client_name", "Client Name")
				for _, m := range tagged {
					if !strings.Contains(c.Raw, m) {
						t.Errorf("201 body lacks %s: %s", m, c.Raw)
					}
				}
				resp, body := rfcGet(t, s, c, c.RAT)
				if resp.StatusCode != 200 {
					t.Fatalf("GET %d %s", resp.StatusCode, body)
				}
				for _, m := range tagged {
					if !strings.Contains(body, m) {
						t.Errorf("GET body lacks %s: %s", m, body)
					}
				}
			}},
			{"S11", "a tagged URL is validated like the untagged one", func(t *testing.T) {
				resp, body := s.postJSON("/register", `{`+rfcCB+`,"logo_uri#en":"javascript:alert(1)"}`)
				rfcWantError(t, resp, body, 400, "invalid_client_metadata")
			}},
			{"S12", "jwks object echoed as an object, no jwks_uri", func(t *testing.T) {
				jwks := `{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRjtwaVQhEJRP5aJcEnkoxQKvdNpiIOXGXmvJ1g","use":"sig","kid":"1"}]}`
				c := rfcRegister(t, s, `{`+rfcCB+`,"token_endpoint_auth_method":"private_key_jwt","jwks":`+jwks+`}`)
				if !strings.Contains(c.Raw, `"jwks":`+jwks) {
					t.Errorf("jwks not echoed exactly: %s", c.Raw)
				}
				if _, ok := c.Body["jwks"].(map[string]any); !ok {
					t.Errorf("jwks = %T, want an object", c.Body["jwks"])
				}
				rfcWantAbsent(t, c.Body, "jwks_uri")
			}},
			{"S12", "jwks string echoed as a string", func(t *testing.T) {
				jwks := `"{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k\"}]}"`
				c := rfcRegister(t, s, `{`+rfcCB+`,"jwks":`+jwks+`}`)
				if !strings.Contains(c.Raw, `"jwks":`+jwks) {
					t.Errorf("jwks string not echoed exactly: %s", c.Raw)
				}
				if _, ok := c.Body["jwks"].(string); !ok {
					t.Errorf("jwks = %T, want a string", c.Body["jwks"])
				}
			}},
			{"S12", "jwks with whitespace echoed as the same JSON value", func(t *testing.T) {
				jwks := `{ "keys" : [ { "kty" : "RSA", "n" : "0vx7", "e" : "AQAB", "ext" : true, "key_ops" : [ "verify" ] } ] }`
				c := rfcRegister(t, s, `{`+rfcCB+`,"jwks":`+jwks+`}`)
				var want any
				_ = json.Unmarshal([]byte(jwks), &want)
				b, _ := json.Marshal(c.Body["jwks"])
				var got any
				_ = json.Unmarshal(b, &got)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("jwks = %s, want the value of %s", b, jwks)
				}
			}},
			{"S12", "jwks_uri echoed, no jwks", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`,"jwks_uri":"https://c.example/jwks.json"}`)
				rfcWantStr(t, c.Body, "jwks_uri", "https://c.example/jwks.json")
				rfcWantAbsent(t, c.Body, "jwks")
			}},
			{"S15", "registration_access_token and absolute registration_client_uri work", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				resp, body := s.do("GET", c.path(t, s), "", rfcBearer(c.RAT))
				if resp.StatusCode != 200 {
					t.Errorf("GET registration_client_uri: %d %s", resp.StatusCode, body)
				}
			}},
			{"V13", "client cannot choose id, secret, token, timestamps or URI", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`,"client_id":"mine","client_secret":"mine","client_id_issued_at":1,`+
					`"client_secret_expires_at":5,"registration_access_token":"mine","registration_client_uri":"https://evil.example/"}`)
				if c.ID == "mine" || c.Secret == "mine" || c.RAT == "mine" {
					t.Errorf("client-chosen values taken: %s", c.Raw)
				}
				if !rfcSecretRe.MatchString(c.Secret) {
					t.Errorf("client_secret = %q, want a server-generated 43-character secret", c.Secret)
				}
				if got := rfcInt(t, c.Body, "client_id_issued_at"); got < time.Now().Unix()-60 {
					t.Errorf("client_id_issued_at = %d taken from the request", got)
				}
				if got := rfcInt(t, c.Body, "client_secret_expires_at"); got != 0 {
					t.Errorf("client_secret_expires_at = %d taken from the request", got)
				}
			}},
			{"V13", "client_secret without a secret method is not stored", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`,"token_endpoint_auth_method":"none","client_secret":"mine"}`)
				rfcWantAbsent(t, c.Body, "client_secret", "client_secret_expires_at")
			}},
		}
		for _, r := range rows {
			t.Run(r.id+" "+r.name, r.run)
		}
	})
}

// TestRFC7591SecretLifetime: S4 with a configured lifetime, at registration,
// on read and when an update issues a secret.
func TestRFC7591SecretLifetime(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := rfcStart(t, backend, "secret_lifetime 1h")
		near := func(t *testing.T, got int64) {
			t.Helper()
			if want := time.Now().Add(time.Hour).Unix(); got < want-60 || got > want+60 {
				t.Errorf("S4: client_secret_expires_at = %d, want about now+1h = %d", got, want)
			}
		}
		c := rfcRegister(t, s, `{`+rfcCB+`}`)
		exp := rfcInt(t, c.Body, "client_secret_expires_at")
		near(t, exp)
		resp, body := rfcGet(t, s, c, c.RAT)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %d %s", resp.StatusCode, body)
		}
		if got := rfcInt(t, object(t, body), "client_secret_expires_at"); got != exp {
			t.Errorf("S4: GET client_secret_expires_at = %d, want %d", got, exp)
		}
		p := rfcRegister(t, s, `{`+rfcCB+`,"token_endpoint_auth_method":"none"}`)
		resp, body = rfcPut(t, s, p, p.RAT, `{"client_id":"`+p.ID+`",`+rfcCB+`,"token_endpoint_auth_method":"client_secret_post"}`)
		if resp.StatusCode != 200 {
			t.Fatalf("PUT %d %s", resp.StatusCode, body)
		}
		near(t, rfcInt(t, object(t, body), "client_secret_expires_at"))
	})
}

// ---------------------------------------------------------------------------
// C. Validation (E1, V1-V5, V7-V15)

type rfcCase struct {
	id, name string
	body     string
	code     string // "" = 201 expected
	check    func(t *testing.T, m map[string]any)
}

func rfcValidationCases() []rfcCase {
	wantType := func(want string) func(t *testing.T, m map[string]any) {
		return func(t *testing.T, m map[string]any) { rfcWantStr(t, m, "application_type", want) }
	}
	noType := func(t *testing.T, m map[string]any) { rfcWantAbsent(t, m, "application_type") }
	const badRedirect, badMeta = "invalid_redirect_uri", "invalid_client_metadata"
	const implicitWeb = `"application_type":"web","grant_types":["implicit"],"response_types":["token"]`
	cases := []rfcCase{
		// E1: shape of the two metadata error codes (checked on every row).
		{"E1", "invalid_redirect_uri shape", `{"redirect_uris":["/cb"]}`, badRedirect, nil},
		{"E1", "invalid_client_metadata shape", `{` + rfcCB + `,"logo_uri":"javascript:alert(1)"}`, badMeta, nil},

		// V1: redirect-based grants need redirect_uris.
		{"V1", "empty object", `{}`, badRedirect, nil},
		{"V1", "empty redirect_uris", `{"redirect_uris":[]}`, badRedirect, nil},
		{"V1", "null redirect_uris", `{"redirect_uris":null}`, badRedirect, nil},
		{"V1", "implicit without redirect_uris", `{"response_types":["token"]}`, badRedirect, nil},
		{"V1", "authorization_code+refresh_token without redirect_uris", `{"grant_types":["authorization_code","refresh_token"]}`, badRedirect, nil},
		{"V1", "client_credentials alone needs no redirect", `{"grant_types":["client_credentials"]}`, "", func(t *testing.T, m map[string]any) {
			rfcWantStrs(t, m, "grant_types", "client_credentials")
			rfcWantStrs(t, m, "response_types")
			rfcWantStrs(t, m, "redirect_uris")
			if _, ok := m["client_secret"]; !ok {
				t.Error("client_credentials client with default auth got no secret")
			}
		}},
		{"V1", "device_code public client needs no redirect", `{"grant_types":["urn:ietf:params:oauth:grant-type:device_code"],"token_endpoint_auth_method":"none"}`, "", func(t *testing.T, m map[string]any) {
			rfcWantStrs(t, m, "response_types")
		}},

		// V2: absolute, no fragment.
		{"V2", "fragment", `{"redirect_uris":["https://c.example/cb#x"]}`, badRedirect, nil},
		{"V2", "empty fragment", `{"redirect_uris":["https://c.example/cb#"]}`, badRedirect, nil},
		{"V2", "relative path", `{"redirect_uris":["/cb"]}`, badRedirect, nil},
		{"V2", "no scheme", `{"redirect_uris":["c.example/cb"]}`, badRedirect, nil},
		{"V2", "scheme-relative", `{"redirect_uris":["//c.example/cb"]}`, badRedirect, nil},
		{"V2", "empty string", `{"redirect_uris":[""]}`, badRedirect, nil},
		{"V2", "https without host", `{"redirect_uris":["https:///cb"]}`, badRedirect, nil},
		{"V2", "one bad among good", `{"redirect_uris":["https://c.example/cb","https://c.example/cb2#f"]}`, badRedirect, nil},
		{"V2", "port out of range", `{"redirect_uris":["https://c.example:65536/cb"]}`, badRedirect, nil},
		{"V2", "loopback port out of range", `{"redirect_uris":["http://127.0.0.1:99999/cb"]}`, badRedirect, nil},
		{"V2", "repeated member: the last one counts", `{"redirect_uris":["https://c.example/cb"],"redirect_uris":"https://c.example/cb"}`, badRedirect, nil},
		{"V2", "repeated member with an escaped name: the last one counts", `{"redirect_uris":"x","redirect\u005furis":["https://c.example/cb"]}`, "", func(t *testing.T, m map[string]any) {
			rfcWantStrs(t, m, "redirect_uris", "https://c.example/cb")
		}},
		{"V2", "query allowed", `{"redirect_uris":["https://c.example/cb?x=1&y=2"]}`, "", func(t *testing.T, m map[string]any) {
			rfcWantStrs(t, m, "redirect_uris", "https://c.example/cb?x=1&y=2")
		}},

		// V4: native.
		{"V4", "native http non-loopback", `{"application_type":"native","redirect_uris":["http://evil.example/cb"]}`, badRedirect, nil},
		{"V4", "native http localhost.evil.example", `{"application_type":"native","redirect_uris":["http://localhost.evil.example/cb"]}`, badRedirect, nil},
		{"V4", "native http 127.0.0.1.evil.example", `{"application_type":"native","redirect_uris":["http://127.0.0.1.evil.example/cb"]}`, badRedirect, nil},
		{"V4", "native http 127.0.0.1 port", `{"application_type":"native","redirect_uris":["http://127.0.0.1:5555/cb"]}`, "", wantType("native")},
		{"V4", "native http ::1", `{"application_type":"native","redirect_uris":["http://[::1]/cb"]}`, "", wantType("native")},
		{"V4", "native http ::1 port", `{"application_type":"native","redirect_uris":["http://[::1]:8080/cb"]}`, "", nil},
		{"V4", "native http localhost port", `{"application_type":"native","redirect_uris":["http://localhost:33418/callback"]}`, "", nil},
		{"V4", "native http 127/8", `{"application_type":"native","redirect_uris":["http://127.8.9.10:1/cb"]}`, "", nil},
		{"V4", "native custom scheme", `{"application_type":"native","redirect_uris":["com.example.app:/cb"]}`, "", func(t *testing.T, m map[string]any) {
			rfcWantStrs(t, m, "redirect_uris", "com.example.app:/cb")
		}},
		{"V4", "native custom scheme with authority", `{"application_type":"native","redirect_uris":["com.example.app://oauth/cb"]}`, "", nil},
		{"V4", "native https claimed URL", `{"application_type":"native","redirect_uris":["https://app.example/cb"]}`, "", nil},
		{"V4", "native https localhost", `{"application_type":"native","redirect_uris":["https://localhost/cb"]}`, badRedirect, nil},
		{"V4", "native https 127.0.0.1", `{"application_type":"native","redirect_uris":["https://127.0.0.1:8443/cb"]}`, badRedirect, nil},
		{"V4", "native https ::1", `{"application_type":"native","redirect_uris":["https://[::1]/cb"]}`, badRedirect, nil},
		{"V4", "native implicit http loopback", `{"application_type":"native","grant_types":["implicit"],"response_types":["token"],"redirect_uris":["http://127.0.0.1/cb"]}`, badRedirect, nil},

		// V5: web.
		{"V5", "web implicit http localhost", `{` + implicitWeb + `,"redirect_uris":["http://localhost/cb"]}`, badRedirect, nil},
		{"V5", "web implicit https localhost", `{` + implicitWeb + `,"redirect_uris":["https://localhost/cb"]}`, badRedirect, nil},
		{"V5", "web implicit http 127.0.0.1", `{` + implicitWeb + `,"redirect_uris":["http://127.0.0.1:8080/cb"]}`, badRedirect, nil},
		{"V5", "web id_token http localhost", `{"application_type":"web","response_types":["id_token"],"redirect_uris":["http://localhost/cb"]}`, badRedirect, nil},
		{"V5", "web implicit https", `{` + implicitWeb + `,"redirect_uris":["https://c.example/cb"]}`, "", func(t *testing.T, m map[string]any) {
			rfcWantStrs(t, m, "grant_types", "implicit")
			rfcWantStrs(t, m, "response_types", "token")
			rfcWantStr(t, m, "application_type", "web")
		}},
		{"V5", "web http non-loopback", `{"application_type":"web","redirect_uris":["http://evil.example/cb"]}`, badRedirect, nil},
		{"V5", "web custom scheme", `{"application_type":"web","redirect_uris":["com.example.app:/cb"]}`, badRedirect, nil},
		{"V5", "web http 127.0.0.1 without implicit", `{"application_type":"web","redirect_uris":["http://127.0.0.1:8080/cb"]}`, "", wantType("web")},
		{"V5", "web http localhost without implicit", `{"application_type":"web","redirect_uris":["http://localhost/cb"]}`, "", nil},

		// V7: application_type omitted (Claude Code and other MCP clients).
		{"V7", "no type http 127.0.0.1", `{"redirect_uris":["http://127.0.0.1:33418/callback"]}`, "", noType},
		{"V7", "no type http localhost", `{"redirect_uris":["http://localhost:8080/callback"],"token_endpoint_auth_method":"none"}`, "", noType},
		{"V7", "no type http ::1", `{"redirect_uris":["http://[::1]:8080/cb"]}`, "", noType},
		{"V7", "no type https", `{"redirect_uris":["https://c.example/cb"]}`, "", noType},
		{"V7", "no type custom scheme", `{"redirect_uris":["com.example.app:/cb"]}`, "", noType},
		{"V7", "no type mixed list echoed in order", `{"redirect_uris":["http://localhost:1/cb","https://claude.ai/api/mcp/auth_callback","com.example.app:/cb"],"grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"none"}`, "", func(t *testing.T, m map[string]any) {
			rfcWantStrs(t, m, "redirect_uris", "http://localhost:1/cb", "https://claude.ai/api/mcp/auth_callback", "com.example.app:/cb")
			noType(t, m)
		}},
		{"V7", "no type http non-loopback", `{"redirect_uris":["http://c.example/cb"]}`, badRedirect, nil},
		{"V7", "no type implicit http loopback", `{"grant_types":["implicit"],"redirect_uris":["http://127.0.0.1/cb"]}`, badRedirect, nil},
		{"V7", "web echoed when sent", `{"application_type":"web",` + rfcCB + `}`, "", wantType("web")},

		// V8: grant/response consistency and derivation.
		{"V8", "implicit with code", `{` + rfcCB + `,"grant_types":["implicit"],"response_types":["code"]}`, badMeta, nil},
		{"V8", "authorization_code with token", `{` + rfcCB + `,"grant_types":["authorization_code"],"response_types":["token"]}`, badMeta, nil},
		{"V8", "authorization_code with code and token", `{` + rfcCB + `,"grant_types":["authorization_code"],"response_types":["code","token"]}`, badMeta, nil},
		{"V8", "implicit grant without token response", `{` + rfcCB + `,"grant_types":["authorization_code","implicit"],"response_types":["code"]}`, badMeta, nil},
		{"V8", "client_credentials with code", `{` + rfcCB + `,"grant_types":["client_credentials"],"response_types":["code"]}`, badMeta, nil},
		{"V8", "implicit alone derives token", `{` + rfcCB + `,"grant_types":["implicit"]}`, "", func(t *testing.T, m map[string]any) {
			rfcWantStrs(t, m, "response_types", "token")
		}},
		{"V8", "code alone derives authorization_code", `{` + rfcCB + `,"response_types":["code"]}`, "", func(t *testing.T, m map[string]any) {
			rfcWantStrs(t, m, "grant_types", "authorization_code")
		}},
		{"V8", "token alone derives implicit", `{` + rfcCB + `,"response_types":["token"]}`, "", func(t *testing.T, m map[string]any) {
			rfcWantStrs(t, m, "grant_types", "implicit")
		}},
		{"V8", "authorization_code+refresh_token derives code", `{` + rfcCB + `,"grant_types":["authorization_code","refresh_token"]}`, "", func(t *testing.T, m map[string]any) {
			rfcWantStrs(t, m, "response_types", "code")
		}},
		{"V8", "hybrid consistent pair", `{` + rfcCB + `,"grant_types":["authorization_code","implicit"],"response_types":["code id_token"]}`, "", func(t *testing.T, m map[string]any) {
			rfcWantStrs(t, m, "response_types", "code id_token")
		}},

		// V9/S12: never both key sources.
		{"V9", "jwks and jwks_uri", `{` + rfcCB + `,"jwks":{"keys":[]},"jwks_uri":"https://c.example/jwks.json"}`, badMeta, nil},
		{"V9", "jwks string and jwks_uri", `{` + rfcCB + `,"jwks":"{\"keys\":[]}","jwks_uri":"https://c.example/jwks.json"}`, badMeta, nil},

		// V10: private_key_jwt needs keys.
		{"V10", "private_key_jwt without keys", `{` + rfcCB + `,"token_endpoint_auth_method":"private_key_jwt"}`, badMeta, nil},
		{"V10", "private_key_jwt with jwks", `{` + rfcCB + `,"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[{"kty":"EC"}]}}`, "", func(t *testing.T, m map[string]any) {
			rfcWantAbsent(t, m, "client_secret", "client_secret_expires_at")
		}},
		{"V10", "private_key_jwt with jwks_uri", `{` + rfcCB + `,"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://c.example/jwks.json"}`, "", nil},

		// V11: unsupported enum values.
		{"V11", "unknown grant type", `{` + rfcCB + `,"grant_types":["urn:x:nope"]}`, badMeta, nil},
		{"V11", "refresh_token accepted", `{` + rfcCB + `,"grant_types":["authorization_code","refresh_token"]}`, "", func(t *testing.T, m map[string]any) {
			rfcWantStrs(t, m, "grant_types", "authorization_code", "refresh_token")
		}},
		{"V11", "unknown response type", `{` + rfcCB + `,"response_types":["bogus"]}`, badMeta, nil},
		{"V11", "unknown auth method", `{` + rfcCB + `,"token_endpoint_auth_method":"bogus"}`, badMeta, nil},
		{"V11", "unknown application_type", `{` + rfcCB + `,"application_type":"desktop"}`, badMeta, nil},

		// V12: type errors.
		{"V12", "redirect_uris a string", `{"redirect_uris":"https://c.example/cb"}`, badRedirect, nil},
		{"V12", "redirect_uris holds a number", `{"redirect_uris":[1]}`, badRedirect, nil},
		{"V12", "redirect_uris holds null", `{"redirect_uris":[null]}`, badRedirect, nil},
		{"V12", "redirect_uris an object", `{"redirect_uris":{"a":"https://c.example/cb"}}`, badRedirect, nil},
		{"V12", "grant_types a string", `{` + rfcCB + `,"grant_types":"authorization_code"}`, badMeta, nil},
		{"V12", "response_types holds a number", `{` + rfcCB + `,"response_types":[1]}`, badMeta, nil},
		{"V12", "scope a number", `{` + rfcCB + `,"scope":1}`, badMeta, nil},
		{"V12", "scope an array", `{` + rfcCB + `,"scope":["openid"]}`, badMeta, nil},
		{"V12", "client_name a number", `{` + rfcCB + `,"client_name":5}`, badMeta, nil},
		{"V12", "tagged client_name a number", `{` + rfcCB + `,"client_name#ja-Jpan-JP":5}`, badMeta, nil},
		{"V12", "contacts a string", `{` + rfcCB + `,"contacts":"a@c.example"}`, badMeta, nil},
		{"V12", "token_endpoint_auth_method a boolean", `{` + rfcCB + `,"token_endpoint_auth_method":true}`, badMeta, nil},
		{"V12", "application_type a number", `{` + rfcCB + `,"application_type":1}`, badMeta, nil},
		{"V12", "logo_uri an object", `{` + rfcCB + `,"logo_uri":{}}`, badMeta, nil},
		{"V12", "software_id a number", `{` + rfcCB + `,"software_id":1}`, badMeta, nil},
		{"V12", "jwks a number", `{` + rfcCB + `,"jwks":5}`, badMeta, nil},
		{"V12", "jwks without keys", `{` + rfcCB + `,"jwks":{"nokeys":true}}`, badMeta, nil},
		{"V12", "jwks string that is not a JWK set", `{` + rfcCB + `,"jwks":"not json"}`, badMeta, nil},

		// V14: scope syntax (the configured-scopes policy has no Caddyfile option; see unit tests).
		{"V14", "scope echoed", `{` + rfcCB + `,"scope":"read write"}`, "", func(t *testing.T, m map[string]any) {
			rfcWantStr(t, m, "scope", "read write")
		}},
		{"V14", "scope with a forbidden character", `{` + rfcCB + `,"scope":"read wr\\ite"}`, badMeta, nil},

		// V15: contacts and metadata URLs.
		{"V15", "logo_uri javascript", `{` + rfcCB + `,"logo_uri":"javascript:alert(1)"}`, badMeta, nil},
		{"V15", "client_uri ftp", `{` + rfcCB + `,"client_uri":"ftp://c.example/"}`, badMeta, nil},
		{"V15", "tos_uri relative", `{` + rfcCB + `,"tos_uri":"/tos"}`, badMeta, nil},
		{"V15", "policy_uri data", `{` + rfcCB + `,"policy_uri":"data:text/html,x"}`, badMeta, nil},
		{"V15", "jwks_uri file", `{` + rfcCB + `,"jwks_uri":"file:///etc/jwks.json"}`, badMeta, nil},
		{"V15", "client_uri without host", `{` + rfcCB + `,"client_uri":"https://"}`, badMeta, nil},
		{"V15", "client_uri port out of range", `{` + rfcCB + `,"client_uri":"https://c.example:70000/"}`, badMeta, nil},
		{"V15", "http metadata URLs accepted", `{` + rfcCB + `,"client_uri":"http://c.example/","logo_uri":"https://c.example/l.png"}`, "", func(t *testing.T, m map[string]any) {
			rfcWantStr(t, m, "client_uri", "http://c.example/")
		}},
		// "Ways to contact people ..., typically email addresses" (RFC 7591
		// section 2): addresses with a name, mailto: URIs and web pages too,
		// echoed as sent; anything else is refused.
		{"V15", "contacts of other kinds accepted", `{` + rfcCB + `,"contacts":["Admin <admin@c.example>","<admin@c.example>","mailto:admin@c.example","https://c.example/support"]}`, "", func(t *testing.T, m map[string]any) {
			rfcWantStrs(t, m, "contacts", "Admin <admin@c.example>", "<admin@c.example>", "mailto:admin@c.example", "https://c.example/support")
		}},
		{"V15", "contact not an address", `{` + rfcCB + `,"contacts":["not-an-email"]}`, badMeta, nil},
		{"V15", "contact javascript URL", `{` + rfcCB + `,"contacts":["javascript:alert(1)"]}`, badMeta, nil},
		{"V15", "plain contacts accepted", `{` + rfcCB + `,"contacts":["admin@c.example","ops@c.example"]}`, "", func(t *testing.T, m map[string]any) {
			rfcWantStrs(t, m, "contacts", "admin@c.example", "ops@c.example")
		}},
	}
	// V3: dangerous schemes, for every application type.
	for _, scheme := range []string{
		"javascript:alert(1)", "JavaScript:alert(1)", "data:text/html;base64,PHNjcmlwdD4=", "vbscript:msgbox(1)",
		"file:///etc/passwd", "blob:https://c.example/0b1c", "about:blank",
	} {
		for _, at := range []string{"", "native", "web"} {
			typ := ""
			if at != "" {
				typ = `"application_type":"` + at + `",`
			}
			b, _ := json.Marshal(scheme)
			name := strings.SplitN(scheme, ":", 2)[0] + " type=" + at
			cases = append(cases, rfcCase{"V3", name, `{` + typ + `"redirect_uris":[` + string(b) + `]}`, badRedirect, nil})
		}
	}
	return cases
}

func TestRFC7591Validation(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := rfcStart(t, backend)
		for _, c := range rfcValidationCases() {
			t.Run(c.id+" "+c.name, func(t *testing.T) {
				resp, body := s.postJSON("/register", c.body)
				if c.code != "" {
					rfcWantError(t, resp, body, http.StatusBadRequest, c.code)
					return
				}
				if resp.StatusCode != http.StatusCreated {
					t.Fatalf("POST %s: status %d, want 201; body %s", c.body, resp.StatusCode, body)
				}
				reg := rfcCheckCreated(t, s, resp, body)
				if c.check != nil {
					c.check(t, reg.Body)
				}
			})
		}
	})
}

// ---------------------------------------------------------------------------
// S14: every response of /register and /register/{id} carries no-store.

func TestRFC7591NoStoreEverywhere(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := rfcStart(t, backend)
		c := rfcRegister(t, s, `{`+rfcCB+`}`)
		p := c.path(t, s)
		type call struct {
			name   string
			status int
			do     func() *http.Response
		}
		var rat = c.RAT
		calls := []call{
			{"POST 201", 201, func() *http.Response { r, _ := s.postJSON("/register", `{`+rfcCB+`}`); return r }},
			{"POST 400 metadata", 400, func() *http.Response { r, _ := s.postJSON("/register", `{}`); return r }},
			{"POST 400 content type", 400, func() *http.Response { r, _ := s.do("POST", "/register", `{}`, "Content-Type: text/plain"); return r }},
			{"POST 413", 413, func() *http.Response {
				r, _ := s.postJSON("/register", `{"x":"`+strings.Repeat("a", 70<<10)+`"}`)
				return r
			}},
			{"GET /register 405", 405, func() *http.Response { r, _ := s.do("GET", "/register", ""); return r }},
			{"GET 200", 200, func() *http.Response { r, _ := s.do("GET", p, "", rfcBearer(rat)); return r }},
			{"GET 401 no token", 401, func() *http.Response { r, _ := s.do("GET", p, ""); return r }},
			{"GET 401 bad token", 401, func() *http.Response { r, _ := s.do("GET", p, "", rfcBearer("bad")); return r }},
			{"PATCH 405", 405, func() *http.Response { r, _ := s.do("PATCH", p, "", rfcBearer(rat)); return r }},
			{"PUT 400", 400, func() *http.Response {
				r, _ := s.do("PUT", p, `{"client_id":"other"}`, "Content-Type: application/json", rfcBearer(rat))
				return r
			}},
			{"PUT 200", 200, func() *http.Response {
				r, b := s.do("PUT", p, `{"client_id":"`+c.ID+`",`+rfcCB+`}`, "Content-Type: application/json", rfcBearer(rat))
				var m map[string]any
				_ = json.Unmarshal([]byte(b), &m)
				if nt, ok := m["registration_access_token"].(string); ok {
					rat = nt
				}
				return r
			}},
			{"DELETE 204", 204, func() *http.Response { r, _ := s.do("DELETE", p, "", rfcBearer(rat)); return r }},
			{"DELETE 401 after delete", 401, func() *http.Response { r, _ := s.do("DELETE", p, "", rfcBearer(rat)); return r }},
		}
		for _, cl := range calls {
			t.Run("S14 "+cl.name, func(t *testing.T) {
				r := cl.do()
				if r.StatusCode != cl.status {
					t.Errorf("status %d, want %d", r.StatusCode, cl.status)
				}
				rfcWantNoStore(t, r)
			})
		}
	})
}

// ---------------------------------------------------------------------------
// D. RFC 7592 management (M1-M8)

func TestRFC7592Management(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := rfcStart(t, backend)
		full := `{"redirect_uris":["https://c.example/cb"],"client_name":"Full","client_name#ja-Jpan-JP":"フル",` +
			`"logo_uri":"https://c.example/logo.png","contacts":["admin@c.example"],"scope":"read",` +
			`"grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"client_secret_post","application_type":"web"}`
		rows := []struct {
			id, name string
			run      func(t *testing.T)
		}{
			{"M1", "GET gives 200 with full info and the presented token, but no secret", func(t *testing.T) {
				c := rfcRegister(t, s, full)
				resp, body := rfcGet(t, s, c, c.RAT)
				if resp.StatusCode != 200 {
					t.Fatalf("GET %d %s", resp.StatusCode, body)
				}
				rfcWantJSON(t, resp)
				rfcWantNoStore(t, resp)
				rfcWantOrder(t, body)
				m := object(t, body)
				// RFC 7592 section 3: registration_access_token and
				// registration_client_uri are REQUIRED in every client
				// information response; the secret is only kept hashed.
				rfcWantAbsent(t, m, "client_secret")
				rfcWantStr(t, m, "registration_access_token", c.RAT)
				rfcWantStr(t, m, "registration_client_uri", c.URI)
				if got := rfcInt(t, m, "client_secret_expires_at"); got != 0 {
					t.Errorf("client_secret_expires_at = %d, want 0", got)
				}
				if got, want := rfcInt(t, m, "client_id_issued_at"), rfcInt(t, c.Body, "client_id_issued_at"); got != want {
					t.Errorf("client_id_issued_at = %d, want %d", got, want)
				}
				if got, want := rfcMetadata(m), rfcMetadata(c.Body); !reflect.DeepEqual(got, want) {
					t.Errorf("GET metadata\n%v\nwant\n%v", got, want)
				}
				if resp.Header.Get("WWW-Authenticate") != "" {
					t.Errorf("WWW-Authenticate on 200: %q", resp.Header.Get("WWW-Authenticate"))
				}
			}},
			{"M1", "GET of a public client has no client_secret_expires_at", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`,"token_endpoint_auth_method":"none"}`)
				resp, body := rfcGet(t, s, c, c.RAT)
				if resp.StatusCode != 200 {
					t.Fatalf("GET %d %s", resp.StatusCode, body)
				}
				m := object(t, body)
				rfcWantAbsent(t, m, "client_secret", "client_secret_expires_at")
				rfcWantStr(t, m, "registration_access_token", c.RAT)
			}},
			{"M1", "GET does not rotate the token", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				for range 2 {
					if resp, body := rfcGet(t, s, c, c.RAT); resp.StatusCode != 200 {
						t.Fatalf("GET %d %s", resp.StatusCode, body)
					}
				}
			}},
			{"M1", "Bearer scheme is case-insensitive", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				resp, body := s.do("GET", c.path(t, s), "", "Authorization: bearer "+c.RAT)
				if resp.StatusCode != 200 {
					t.Errorf("GET with 'bearer': %d %s", resp.StatusCode, body)
				}
			}},
			{"M2", "no token gives 401 Bearer without error", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				for _, m := range []string{"GET", "PUT", "DELETE"} {
					resp, body := s.do(m, c.path(t, s), "")
					rfcWantUnauthorized(t, resp, body, "Bearer")
				}
			}},
			{"M2", "non-Bearer credentials count as no token (RFC 6750 3.1)", func(t *testing.T) {
				// RFC 6750 section 3.1: a request that "attempted using an
				// unsupported authentication method" lacks authentication
				// information, and the challenge SHOULD NOT carry an error code.
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				resp, body := s.do("GET", c.path(t, s), "", "Authorization: Basic "+"Y2xpZW50OnNlY3JldA==")
				rfcWantUnauthorized(t, resp, body, "Bearer")
			}},
			{"M2", "bad token gives 401 invalid_token", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				for _, tok := range []string{"bad", c.RAT + "x", strings.ToUpper(c.RAT), c.Secret} {
					resp, body := rfcGet(t, s, c, tok)
					rfcWantUnauthorized(t, resp, body, rfcInvalidToken)
				}
				if resp, body := rfcGet(t, s, c, c.RAT); resp.StatusCode != 200 {
					t.Errorf("own token after bad attempts: %d %s", resp.StatusCode, body)
				}
			}},
			{"M2", "empty Bearer token gives 401 invalid_token", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				resp, body := s.do("GET", c.path(t, s), "", "Authorization: Bearer ")
				if resp.StatusCode != 401 {
					t.Errorf("status %d, want 401: %s", resp.StatusCode, body)
				}
			}},
			{"M3", "unknown client gives 401 (never 404) and revokes the token", func(t *testing.T) {
				a := rfcRegister(t, s, `{`+rfcCB+`}`)
				resp, body := s.do("GET", "/register/nonexistent", "", rfcBearer(a.RAT))
				rfcWantUnauthorized(t, resp, body, rfcInvalidToken)
				resp, body = rfcGet(t, s, a, a.RAT)
				rfcWantUnauthorized(t, resp, body, rfcInvalidToken)
			}},
			{"M3", "unknown client with a random token gives 401", func(t *testing.T) {
				for _, m := range []string{"GET", "PUT", "DELETE"} {
					resp, body := s.do(m, "/register/AAAAAAAAAAAAAAAAAAAAAA", `{"client_id":"AAAAAAAAAAAAAAAAAAAAAA"}`, "Content-Type: application/json", rfcBearer("random-token"))
					rfcWantUnauthorized(t, resp, body, rfcInvalidToken)
				}
			}},
			{"M3", "a forged token naming a client does not revoke its real token", func(t *testing.T) {
				a := rfcRegister(t, s, `{`+rfcCB+`}`)
				b := rfcRegister(t, s, `{`+rfcCB+`}`)
				resp, body := rfcGet(t, s, b, "forged."+a.ID)
				rfcWantUnauthorized(t, resp, body, rfcInvalidToken)
				if resp, body := rfcGet(t, s, a, a.RAT); resp.StatusCode != 200 {
					t.Errorf("A's real token revoked by a forged one: %d %s", resp.StatusCode, body)
				}
			}},
			{"M4", "token of another client gives 401 and is revoked", func(t *testing.T) {
				a := rfcRegister(t, s, `{`+rfcCB+`}`)
				b := rfcRegister(t, s, `{`+rfcCB+`}`)
				for _, m := range []string{"GET", "PUT", "DELETE"} {
					resp, body := s.do(m, b.path(t, s), `{"client_id":"`+b.ID+`",`+rfcCB+`}`, "Content-Type: application/json", rfcBearer(a.RAT))
					rfcWantUnauthorized(t, resp, body, rfcInvalidToken)
				}
				resp, body := rfcGet(t, s, a, a.RAT)
				rfcWantUnauthorized(t, resp, body, rfcInvalidToken)
				if resp, body := rfcGet(t, s, b, b.RAT); resp.StatusCode != 200 {
					t.Errorf("B untouched: GET %d %s", resp.StatusCode, body)
				}
			}},
			{"M6", "PUT is a full replacement", func(t *testing.T) {
				c := rfcRegister(t, s, full)
				resp, body := rfcPut(t, s, c, c.RAT, `{"client_id":"`+c.ID+`","client_secret":"`+c.Secret+`","redirect_uris":["https://c.example/new"]}`)
				if resp.StatusCode != 200 {
					t.Fatalf("PUT %d %s", resp.StatusCode, body)
				}
				rfcWantJSON(t, resp)
				rfcWantNoStore(t, resp)
				rfcWantOrder(t, body)
				m := object(t, body)
				rfcWantStrs(t, m, "redirect_uris", "https://c.example/new")
				rfcWantStr(t, m, "token_endpoint_auth_method", "client_secret_basic")
				rfcWantStrs(t, m, "grant_types", "authorization_code")
				rfcWantStrs(t, m, "response_types", "code")
				rfcWantAbsent(t, m, "client_name", "client_name#ja-Jpan-JP", "logo_uri", "contacts", "scope", "application_type", "client_secret")
				rfcWantStr(t, m, "client_id", c.ID)
				if got, want := rfcInt(t, m, "client_id_issued_at"), rfcInt(t, c.Body, "client_id_issued_at"); got != want {
					t.Errorf("client_id_issued_at changed: %d, was %d", got, want)
				}
				newRAT, _ := m["registration_access_token"].(string)
				resp, body = rfcGet(t, s, c, newRAT)
				if resp.StatusCode != 200 {
					t.Fatalf("GET after PUT %d %s", resp.StatusCode, body)
				}
				if got, want := rfcMetadata(object(t, body)), rfcMetadata(m); !reflect.DeepEqual(got, want) {
					t.Errorf("GET after PUT\n%v\nwant\n%v", got, want)
				}
			}},
			{"M6", "PUT without client_id gives invalid_request", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				resp, body := rfcPut(t, s, c, c.RAT, `{`+rfcCB+`}`)
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"M6", "PUT with another client_id gives invalid_request", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				o := rfcRegister(t, s, `{`+rfcCB+`}`)
				resp, body := rfcPut(t, s, c, c.RAT, `{"client_id":"`+o.ID+`",`+rfcCB+`}`)
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"M6", "PUT with a non-string client_id gives invalid_request", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				resp, body := rfcPut(t, s, c, c.RAT, `{"client_id":1,`+rfcCB+`}`)
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"M6", "PUT with forbidden members gives invalid_request", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				for _, f := range []string{
					`"registration_access_token":"` + c.RAT + `"`,
					`"registration_client_uri":"` + c.URI + `"`,
					`"client_secret_expires_at":0`,
					`"client_id_issued_at":` + string(c.Body["client_id_issued_at"].(json.Number)),
				} {
					resp, body := rfcPut(t, s, c, c.RAT, `{"client_id":"`+c.ID+`",`+rfcCB+`,`+f+`}`)
					rfcWantError(t, resp, body, 400, "invalid_request")
				}
				if resp, body := rfcGet(t, s, c, c.RAT); resp.StatusCode != 200 {
					t.Errorf("token changed by rejected PUTs: %d %s", resp.StatusCode, body)
				}
			}},
			{"M6", "PUT with a wrong client_secret gives invalid_request", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				for _, sec := range []string{`"wrong"`, `"` + c.RAT + `"`, `5`} {
					resp, body := rfcPut(t, s, c, c.RAT, `{"client_id":"`+c.ID+`",`+rfcCB+`,"client_secret":`+sec+`}`)
					rfcWantError(t, resp, body, 400, "invalid_request")
				}
			}},
			{"M6", "PUT with a client_secret for a public client gives invalid_request", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`,"token_endpoint_auth_method":"none"}`)
				resp, body := rfcPut(t, s, c, c.RAT, `{"client_id":"`+c.ID+`",`+rfcCB+`,"token_endpoint_auth_method":"none","client_secret":"x"}`)
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"M6", "PUT with the current secret keeps it", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				resp, body := rfcPut(t, s, c, c.RAT, `{"client_id":"`+c.ID+`",`+rfcCB+`,"client_secret":"`+c.Secret+`","client_name":"x"}`)
				if resp.StatusCode != 200 {
					t.Fatalf("PUT %d %s", resp.StatusCode, body)
				}
				m := object(t, body)
				rfcWantAbsent(t, m, "client_secret")
				rat := m["registration_access_token"].(string)
				// The same secret is still the current one.
				resp, body = rfcPut(t, s, c, rat, `{"client_id":"`+c.ID+`",`+rfcCB+`,"client_secret":"`+c.Secret+`"}`)
				if resp.StatusCode != 200 {
					t.Errorf("second PUT with the original secret: %d %s", resp.StatusCode, body)
				}
			}},
			{"M6", "invalid metadata on PUT gives RFC 7591 codes and keeps the token", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				resp, body := rfcPut(t, s, c, c.RAT, `{"client_id":"`+c.ID+`","redirect_uris":["https://c.example/cb#f"]}`)
				rfcWantError(t, resp, body, 400, "invalid_redirect_uri")
				resp, body = rfcPut(t, s, c, c.RAT, `{"client_id":"`+c.ID+`",`+rfcCB+`,"logo_uri":"javascript:x"}`)
				rfcWantError(t, resp, body, 400, "invalid_client_metadata")
				resp, body = rfcPut(t, s, c, c.RAT, `{"client_id":"`+c.ID+`"}`)
				rfcWantError(t, resp, body, 400, "invalid_redirect_uri")
				resp, body = rfcGet(t, s, c, c.RAT)
				if resp.StatusCode != 200 {
					t.Fatalf("token lost after rejected PUTs: %d %s", resp.StatusCode, body)
				}
				if got, want := rfcMetadata(object(t, body)), rfcMetadata(c.Body); !reflect.DeepEqual(got, want) {
					t.Errorf("rejected PUTs changed the client:\n%v\nwant\n%v", got, want)
				}
			}},
			{"M6", "PUT body must be a JSON object with JSON content type", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				resp, body := s.do("PUT", c.path(t, s), `{"client_id":"`+c.ID+`",`+rfcCB+`}`, "Content-Type: application/x-www-form-urlencoded", rfcBearer(c.RAT))
				rfcWantError(t, resp, body, 400, "invalid_request")
				resp, body = rfcPut(t, s, c, c.RAT, `null`)
				rfcWantError(t, resp, body, 400, "invalid_request")
				resp, body = rfcPut(t, s, c, c.RAT, `[`)
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"M6", "PUT body over 64 KiB gives 413 and keeps the token", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				resp, body := rfcPut(t, s, c, c.RAT, `{"client_id":"`+c.ID+`",`+rfcCB+`,"x":"`+strings.Repeat("a", 70<<10)+`"}`)
				rfcWantError(t, resp, body, http.StatusRequestEntityTooLarge, "")
				if resp, body := rfcGet(t, s, c, c.RAT); resp.StatusCode != 200 {
					t.Errorf("token after a 413: %d %s", resp.StatusCode, body)
				}
			}},
			{"M7", "PUT rotates the registration access token", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				resp, body := rfcPut(t, s, c, c.RAT, `{"client_id":"`+c.ID+`",`+rfcCB+`,"client_name":"v2"}`)
				if resp.StatusCode != 200 {
					t.Fatalf("PUT %d %s", resp.StatusCode, body)
				}
				m := object(t, body)
				newRAT, _ := m["registration_access_token"].(string)
				if newRAT == "" || newRAT == c.RAT {
					t.Fatalf("registration_access_token = %q, want a new one (old %q)", newRAT, c.RAT)
				}
				rfcWantStr(t, m, "registration_client_uri", c.URI)
				rfcWantStr(t, m, "client_name", "v2")
				if _, ok := m["client_secret_expires_at"]; !ok {
					t.Error("client_secret_expires_at missing from the PUT response of a confidential client")
				}
				resp, body = rfcGet(t, s, c, c.RAT)
				rfcWantUnauthorized(t, resp, body, rfcInvalidToken)
				resp, body = rfcGet(t, s, c, newRAT)
				if resp.StatusCode != 200 {
					t.Errorf("new token: %d %s", resp.StatusCode, body)
				}
			}},
			{"M7", "switching to none drops the secret", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				resp, body := rfcPut(t, s, c, c.RAT, `{"client_id":"`+c.ID+`",`+rfcCB+`,"token_endpoint_auth_method":"none"}`)
				if resp.StatusCode != 200 {
					t.Fatalf("PUT %d %s", resp.StatusCode, body)
				}
				m := object(t, body)
				rfcWantAbsent(t, m, "client_secret", "client_secret_expires_at")
				rat := m["registration_access_token"].(string)
				resp, body = rfcGet(t, s, c, rat)
				if resp.StatusCode != 200 {
					t.Fatalf("GET with the new token: %d %s", resp.StatusCode, body)
				}
				rfcWantAbsent(t, object(t, body), "client_secret", "client_secret_expires_at")
				// The old secret is no longer the client's.
				resp, body = rfcPut(t, s, c, rat, `{"client_id":"`+c.ID+`",`+rfcCB+`,"client_secret":"`+c.Secret+`"}`)
				rfcWantError(t, resp, body, 400, "invalid_request")
			}},
			{"M7", "switching from none to a secret method issues a secret", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`,"token_endpoint_auth_method":"none"}`)
				resp, body := rfcPut(t, s, c, c.RAT, `{"client_id":"`+c.ID+`",`+rfcCB+`,"token_endpoint_auth_method":"client_secret_post"}`)
				if resp.StatusCode != 200 {
					t.Fatalf("PUT %d %s", resp.StatusCode, body)
				}
				rfcWantOrder(t, body)
				m := object(t, body)
				sec, _ := m["client_secret"].(string)
				if !rfcSecretRe.MatchString(sec) {
					t.Fatalf("client_secret = %#v, want a new 43-character secret", m["client_secret"])
				}
				if got := rfcInt(t, m, "client_secret_expires_at"); got != 0 {
					t.Errorf("client_secret_expires_at = %d, want 0", got)
				}
				rat := m["registration_access_token"].(string)
				resp, body = rfcPut(t, s, c, rat, `{"client_id":"`+c.ID+`",`+rfcCB+`,"token_endpoint_auth_method":"client_secret_post","client_secret":"`+sec+`"}`)
				if resp.StatusCode != 200 {
					t.Errorf("PUT with the newly issued secret: %d %s", resp.StatusCode, body)
				}
			}},
			{"M8", "DELETE gives 204 and invalidates the client", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				resp, body := s.do("DELETE", c.path(t, s), "", rfcBearer(c.RAT))
				if resp.StatusCode != http.StatusNoContent || body != "" {
					t.Fatalf("DELETE: %d %q, want 204 with an empty body", resp.StatusCode, body)
				}
				rfcWantNoStore(t, resp)
				resp, body = rfcGet(t, s, c, c.RAT)
				rfcWantUnauthorized(t, resp, body, rfcInvalidToken)
				resp, body = s.do("DELETE", c.path(t, s), "", rfcBearer(c.RAT))
				rfcWantUnauthorized(t, resp, body, rfcInvalidToken)
				resp, body = rfcPut(t, s, c, c.RAT, `{"client_id":"`+c.ID+`",`+rfcCB+`}`)
				rfcWantUnauthorized(t, resp, body, rfcInvalidToken)
			}},
			{"M8", "DELETE with a wrong token keeps the client", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				resp, body := s.do("DELETE", c.path(t, s), "", rfcBearer("wrong"))
				rfcWantUnauthorized(t, resp, body, rfcInvalidToken)
				resp, body = s.do("DELETE", c.path(t, s), "")
				rfcWantUnauthorized(t, resp, body, "Bearer")
				if resp, body := rfcGet(t, s, c, c.RAT); resp.StatusCode != 200 {
					t.Errorf("client gone after refused DELETEs: %d %s", resp.StatusCode, body)
				}
			}},
			{"M8", "DELETE of one client leaves the others", func(t *testing.T) {
				a := rfcRegister(t, s, `{`+rfcCB+`}`)
				b := rfcRegister(t, s, `{`+rfcCB+`}`)
				if resp, body := s.do("DELETE", a.path(t, s), "", rfcBearer(a.RAT)); resp.StatusCode != 204 {
					t.Fatalf("DELETE %d %s", resp.StatusCode, body)
				}
				if resp, body := rfcGet(t, s, b, b.RAT); resp.StatusCode != 200 {
					t.Errorf("B after deleting A: %d %s", resp.StatusCode, body)
				}
			}},
			{"M8", "other methods on /register/{id} give 405", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`}`)
				for _, m := range []string{"POST", "PATCH", "OPTIONS"} {
					resp, body := s.do(m, c.path(t, s), `{}`, "Content-Type: application/json", rfcBearer(c.RAT))
					rfcWantError(t, resp, body, http.StatusMethodNotAllowed, "")
					if a := resp.Header.Get("Allow"); a != "GET, HEAD, PUT, DELETE" {
						t.Errorf("%s: Allow = %q, want \"GET, HEAD, PUT, DELETE\"", m, a)
					}
				}
				// HEAD is GET without the body (RFC 9110 section 9.3.2).
				resp, body := s.do("HEAD", c.path(t, s), "", rfcBearer(c.RAT))
				if resp.StatusCode != 200 || body != "" || resp.Header.Get("Cache-Control") != "no-store" {
					t.Errorf("HEAD: %d %v %q", resp.StatusCode, resp.Header, body)
				}
				if resp, _ := s.do("HEAD", c.path(t, s), ""); resp.StatusCode != 401 {
					t.Errorf("HEAD without a token: %d", resp.StatusCode)
				}
				if resp, body := rfcGet(t, s, c, c.RAT); resp.StatusCode != 200 {
					t.Errorf("token after 405s: %d %s", resp.StatusCode, body)
				}
			}},
		}
		for _, r := range rows {
			t.Run(r.id+" "+r.name, r.run)
		}
	})
}

// ---------------------------------------------------------------------------
// E. RFC 8414 metadata (D1, D2, D4) and routing

func rfcWantMetadata(t *testing.T, resp *http.Response, body, issuer, base string) {
	t.Helper()
	if resp.StatusCode != 200 {
		t.Fatalf("D1: metadata status %d, want 200: %s", resp.StatusCode, body)
	}
	rfcWantJSON(t, resp)
	m := object(t, body)
	rfcWantStr(t, m, "issuer", issuer)
	rfcWantStr(t, m, "registration_endpoint", base+"/register")
	rfcWantStr(t, m, "authorization_endpoint", base+"/authorize")
	rfcWantStr(t, m, "token_endpoint", base+"/token")
	if rt := rfcStrs(t, m, "response_types_supported"); !slices.Contains(rt, "code") {
		t.Errorf("D2: response_types_supported = %q, want it to contain code", rt)
	}
	if gt := rfcStrs(t, m, "grant_types_supported"); !slices.Contains(gt, "authorization_code") || !slices.Contains(gt, "refresh_token") {
		t.Errorf("D2: grant_types_supported = %q", gt)
	}
	if am := rfcStrs(t, m, "token_endpoint_auth_methods_supported"); !slices.Contains(am, "none") || !slices.Contains(am, "client_secret_basic") {
		t.Errorf("D2: token_endpoint_auth_methods_supported = %q, want none and client_secret_basic", am)
	}
	rfcWantStrs(t, m, "code_challenge_methods_supported", "S256")
	// RFC 8414 section 2: required once a JWT authentication method is listed.
	rfcWantStrs(t, m, "token_endpoint_auth_signing_alg_values_supported", "HS256", "RS256", "PS256", "ES256", "EdDSA")
}

func TestRFC8414Metadata(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		t.Run("default", func(t *testing.T) {
			s := rfcStart(t, backend)
			rows := []struct {
				id, name string
				run      func(t *testing.T)
			}{
				{"D1", "GET metadata: issuer is the origin, absolute endpoints", func(t *testing.T) {
					resp, body := s.do("GET", "/.well-known/oauth-authorization-server", "")
					rfcWantMetadata(t, resp, body, s.URL, s.URL)
				}},
				{"D1", "HEAD metadata: 200 without a body, with GET's length", func(t *testing.T) {
					resp, body := s.do("HEAD", "/.well-known/oauth-authorization-server", "")
					if resp.StatusCode != 200 || body != "" {
						t.Errorf("HEAD: %d %q", resp.StatusCode, body)
					}
					rfcWantJSON(t, resp)
					_, get := s.do("GET", "/.well-known/oauth-authorization-server", "")
					if n := resp.Header.Get("Content-Length"); n != strconv.Itoa(len(get)) {
						t.Errorf("HEAD Content-Length %q, GET body %d bytes", n, len(get))
					}
				}},
				{"D1", "metadata of an issuer without a path also at the well-known path with a \"/\"", func(t *testing.T) {
					// Libraries that read "https://host" as "https://host/"
					// (Java's URI, the WHATWG URL) insert the well-known
					// string before that "/": the MCP Kotlin conformance client.
					resp, body := s.do("GET", "/.well-known/oauth-authorization-server/", "")
					if resp.StatusCode != 200 || object(t, body)["issuer"] != s.URL {
						t.Errorf("GET: %d %s", resp.StatusCode, body)
					}
				}},
				{"D2", "registration_endpoint from the metadata registers", func(t *testing.T) {
					_, body := s.do("GET", "/.well-known/oauth-authorization-server", "")
					ep := object(t, body)["registration_endpoint"].(string)
					resp, raw := s.postJSON(rfcPath(t, s, ep), `{`+rfcCB+`,"token_endpoint_auth_method":"none"}`)
					if resp.StatusCode != 201 {
						t.Fatalf("POST %s: %d %s", ep, resp.StatusCode, raw)
					}
				}},
				{"D4", "paths not ours fall through to the site", func(t *testing.T) {
					for _, p := range []string{"/other", "/register/a/b", "/register/", "/registerx", "/.well-known/oauth-authorization-server/x", "/.well-known%2Foauth-authorization-server", "/.well-known/openid-configuration/x", "/oauth/register"} {
						resp, body := s.do("GET", p, "")
						if resp.StatusCode != 200 || body != "site" {
							t.Errorf("GET %s: %d %q, want the site's response", p, resp.StatusCode, body)
						}
					}
					for _, p := range []string{"/register/a/b", "/register/"} {
						resp, body := s.postJSON(p, `{}`)
						if body != "site" {
							t.Errorf("POST %s: %d %q, want the site's response", p, resp.StatusCode, body)
						}
					}
				}},
			}
			for _, r := range rows {
				t.Run(r.id+" "+r.name, r.run)
			}
		})
		t.Run("prefix", func(t *testing.T) {
			s := rfcStart(t, backend, "prefix /oauth")
			t.Run("D1 routes move under the prefix", func(t *testing.T) {
				resp, body := s.postJSON("/oauth/register", `{`+rfcCB+`}`)
				if resp.StatusCode != 201 {
					t.Fatalf("POST /oauth/register: %d %s", resp.StatusCode, body)
				}
				m := object(t, body)
				c := rfcClient{ID: m["client_id"].(string), RAT: m["registration_access_token"].(string)}
				c.URI, _ = m["registration_client_uri"].(string)
				if want := s.URL + "/oauth/register/" + c.ID; c.URI != want || resp.Header.Get("Location") != want {
					t.Errorf("registration_client_uri %q Location %q, want %q", c.URI, resp.Header.Get("Location"), want)
				}
				if resp, body := rfcGet(t, s, c, c.RAT); resp.StatusCode != 200 {
					t.Errorf("GET %s: %d %s", c.URI, resp.StatusCode, body)
				}
				resp, body = s.do("GET", "/oauth/.well-known/oauth-authorization-server", "")
				rfcWantMetadata(t, resp, body, s.URL, s.URL+"/oauth")
			})
			t.Run("D1 root well-known of the origin issuer points under the prefix", func(t *testing.T) {
				resp, body := s.do("GET", "/.well-known/oauth-authorization-server", "")
				rfcWantMetadata(t, resp, body, s.URL, s.URL+"/oauth")
			})
			t.Run("D4 paths outside the prefix fall through", func(t *testing.T) {
				for _, p := range []string{"/register", "/oauthx/register", "/other", "/oauth/other", "/oauth/register/a/b", "/oauth/register/"} {
					resp, body := s.do("POST", p, `{`+rfcCB+`}`, "Content-Type: application/json")
					if body != "site" {
						t.Errorf("POST %s: %d %q, want the site's response", p, resp.StatusCode, body)
					}
				}
			})
		})
		t.Run("issuer with a terminating slash", func(t *testing.T) {
			// RFC 8414 3.1 drops the "/" before inserting the well-known
			// string; the Go MCP SDK keeps it. Both forms answer.
			port := redistest.FreePort(t)
			iss := fmt.Sprintf("http://127.0.0.1:%d/oauth/", port)
			s := rfcLoad(t, port, t.TempDir(), "\tclient_registration rfc7591 {\n\t\t"+storageConfig(backend)+"\n\t\trate_limit off\n\t\tprefix /oauth\n\t\tissuer "+iss+"\n\t}\n\trespond \"site\"")
			for _, p := range []string{"/.well-known/oauth-authorization-server/oauth", "/.well-known/oauth-authorization-server/oauth/"} {
				resp, body := s.do("GET", p, "")
				if resp.StatusCode != 200 || object(t, body)["issuer"] != iss {
					t.Errorf("GET %s: %d %s", p, resp.StatusCode, body)
				}
			}
		})
		t.Run("issuer with path", func(t *testing.T) {
			port := redistest.FreePort(t)
			iss := fmt.Sprintf("http://127.0.0.1:%d/oauth", port)
			s := rfcLoad(t, port, t.TempDir(), "\tclient_registration rfc7591 {\n\t\t"+storageConfig(backend)+"\n\t\trate_limit off\n\t\tprefix /oauth\n\t\tissuer "+iss+"\n\t}\n\trespond \"site\"")
			t.Run("D1 metadata at the RFC 8414 path-insert location", func(t *testing.T) {
				resp, body := s.do("GET", "/.well-known/oauth-authorization-server/oauth", "")
				rfcWantMetadata(t, resp, body, iss, iss)
			})
			t.Run("D1 metadata under the prefix", func(t *testing.T) {
				resp, body := s.do("GET", "/oauth/.well-known/oauth-authorization-server", "")
				rfcWantMetadata(t, resp, body, iss, iss)
			})
			t.Run("D1 no trailing slash form without one in the issuer", func(t *testing.T) {
				if resp, body := s.do("GET", "/.well-known/oauth-authorization-server/oauth/", ""); body != "site" {
					t.Errorf("%d %q, want the site's response", resp.StatusCode, body)
				}
			})
			t.Run("D1 root well-known is not this issuer's", func(t *testing.T) {
				resp, body := s.do("GET", "/.well-known/oauth-authorization-server", "")
				if body != "site" {
					t.Errorf("GET /.well-known/oauth-authorization-server: %d %q, want the site's response", resp.StatusCode, body)
				}
			})
			t.Run("D1 registration under the issuer", func(t *testing.T) {
				resp, body := s.postJSON("/oauth/register", `{`+rfcCB+`}`)
				if resp.StatusCode != 201 {
					t.Fatalf("POST: %d %s", resp.StatusCode, body)
				}
				m := object(t, body)
				id := m["client_id"].(string)
				if want := iss + "/register/" + id; m["registration_client_uri"] != want || resp.Header.Get("Location") != want {
					t.Errorf("registration_client_uri %v Location %q, want %q", m["registration_client_uri"], resp.Header.Get("Location"), want)
				}
				resp, body = s.do("GET", "/oauth/register/"+id, "", rfcBearer(m["registration_access_token"].(string)))
				if resp.StatusCode != 200 {
					t.Errorf("GET: %d %s", resp.StatusCode, body)
				}
			})
		})
	})
}

// ---------------------------------------------------------------------------
// Concurrency: parallel registrations, racing updates.

func TestRFC7591Concurrency(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := rfcStart(t, backend)
		t.Run("S2 20 parallel registrations give 20 distinct clients", func(t *testing.T) {
			const n = 20
			type res struct {
				status int
				body   string
				err    error
			}
			out := make([]res, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					resp, body, err := rfcRaw("POST", s.URL+"/register", fmt.Sprintf(`{"redirect_uris":["https://c.example/cb%d"],"client_name":"c%d"}`, i, i), "Content-Type: application/json")
					out[i] = res{err: err, body: body}
					if resp != nil {
						out[i].status = resp.StatusCode
					}
				})
			}
			wg.Wait()
			ids, secrets, rats := map[string]bool{}, map[string]bool{}, map[string]bool{}
			var clients []rfcClient
			for i, r := range out {
				if r.err != nil || r.status != 201 {
					t.Errorf("registration %d: %v %d %s", i, r.err, r.status, r.body)
					continue
				}
				m := object(t, r.body)
				c := rfcClient{ID: m["client_id"].(string), Secret: m["client_secret"].(string), RAT: m["registration_access_token"].(string), URI: m["registration_client_uri"].(string), Body: m}
				ids[c.ID], secrets[c.Secret], rats[c.RAT] = true, true, true
				clients = append(clients, c)
			}
			if len(ids) != n || len(secrets) != n || len(rats) != n {
				t.Errorf("distinct ids %d, secrets %d, tokens %d; want %d each", len(ids), len(secrets), len(rats), n)
			}
			for _, c := range clients {
				resp, body := rfcGet(t, s, c, c.RAT)
				if resp.StatusCode != 200 {
					t.Errorf("GET %s: %d %s", c.ID, resp.StatusCode, body)
					continue
				}
				if got, want := rfcMetadata(object(t, body)), rfcMetadata(c.Body); !reflect.DeepEqual(got, want) {
					t.Errorf("client %s stored as %v, registered as %v", c.ID, got, want)
				}
			}
		})
		t.Run("M7 concurrent PUTs with one token: exactly one wins", func(t *testing.T) {
			c := rfcRegister(t, s, `{`+rfcCB+`}`)
			const n = 10
			type res struct {
				status int
				body   string
				wa     string
				err    error
			}
			out := make([]res, n)
			bodies := make([]string, n)
			for i := range n {
				bodies[i] = fmt.Sprintf(`{"client_id":%q,"redirect_uris":["https://c.example/w%d"],"client_name":"writer %d","contacts":["w%d@c.example"]}`, c.ID, i, i, i)
			}
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					resp, body, err := rfcRaw("PUT", c.URI, bodies[i], "Content-Type: application/json", rfcBearer(c.RAT))
					out[i] = res{err: err, body: body}
					if resp != nil {
						out[i].status, out[i].wa = resp.StatusCode, resp.Header.Get("WWW-Authenticate")
					}
				})
			}
			close(start)
			wg.Wait()
			winner := -1
			for i, r := range out {
				switch {
				case r.err != nil:
					t.Errorf("PUT %d: %v", i, r.err)
				case r.status == 200:
					if winner >= 0 {
						t.Errorf("PUTs %d and %d both succeeded with the same token", winner, i)
					}
					winner = i
				case r.status == 401:
					if r.wa != rfcInvalidToken {
						t.Errorf("PUT %d: WWW-Authenticate %q", i, r.wa)
					}
				default:
					t.Errorf("PUT %d: status %d, want 200 or 401: %s", i, r.status, r.body)
				}
			}
			if winner < 0 {
				t.Fatal("no PUT succeeded")
			}
			wm := object(t, out[winner].body)
			resp, body := rfcGet(t, s, c, wm["registration_access_token"].(string))
			if resp.StatusCode != 200 {
				t.Fatalf("GET with the winner's token: %d %s", resp.StatusCode, body)
			}
			got := object(t, body)
			rfcWantStr(t, got, "client_name", fmt.Sprintf("writer %d", winner))
			rfcWantStrs(t, got, "redirect_uris", fmt.Sprintf("https://c.example/w%d", winner))
			rfcWantStrs(t, got, "contacts", fmt.Sprintf("w%d@c.example", winner))
			if g, w := rfcMetadata(got), rfcMetadata(wm); !reflect.DeepEqual(g, w) {
				t.Errorf("stored %v, winner's response %v", g, w)
			}
			resp, body = rfcGet(t, s, c, c.RAT)
			rfcWantUnauthorized(t, resp, body, rfcInvalidToken)
		})
	})
}

// ---------------------------------------------------------------------------
// X2: secrets and registration access tokens are stored hashed.

// rfcCredentials registers clients and rotates credentials, returning every
// plain secret and token the server handed out and the client ids.
func rfcCredentials(t *testing.T, s *site) (creds, ids []string) {
	t.Helper()
	add := func(c ...string) {
		for _, v := range c {
			if v == "" {
				continue
			}
			creds = append(creds, v)
			if r, _, ok := strings.Cut(v, "."); ok && len(r) >= 16 {
				creds = append(creds, r) // the random part of a token
			}
		}
	}
	for range 3 {
		c := rfcRegister(t, s, `{`+rfcCB+`}`)
		add(c.Secret, c.RAT)
		ids = append(ids, c.ID)
		resp, body := rfcPut(t, s, c, c.RAT, `{"client_id":"`+c.ID+`",`+rfcCB+`,"client_name":"rotated"}`)
		if resp.StatusCode != 200 {
			t.Fatalf("PUT %d %s", resp.StatusCode, body)
		}
		add(object(t, body)["registration_access_token"].(string))
	}
	p := rfcRegister(t, s, `{`+rfcCB+`,"token_endpoint_auth_method":"none"}`)
	ids = append(ids, p.ID)
	add(p.RAT)
	resp, body := rfcPut(t, s, p, p.RAT, `{"client_id":"`+p.ID+`",`+rfcCB+`,"token_endpoint_auth_method":"client_secret_basic"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("PUT %d %s", resp.StatusCode, body)
	}
	m := object(t, body)
	if m["client_secret"] == nil {
		t.Fatalf("no secret issued by PUT: %s", body)
	}
	add(m["client_secret"].(string), m["registration_access_token"].(string))
	return creds, ids
}

func rfcWantNoCredentials(t *testing.T, where, dump string, creds, ids []string) {
	t.Helper()
	for _, c := range creds {
		if strings.Contains(dump, c) {
			t.Errorf("X2: %s contains the plain credential %q", where, c)
		}
	}
	for _, id := range ids {
		if !strings.Contains(dump, id) {
			t.Errorf("X2 (sanity): %s does not contain client %q; wrong data inspected?", where, id)
		}
	}
	if !strings.Contains(dump, "sha256:") {
		t.Errorf("X2 (sanity): %s holds no hash", where)
	}
}

func TestRFC7591CredentialsHashedAtRest(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		prefix := fmt.Sprintf("rfcx2%d:", time.Now().UnixNano())
		port := redistest.FreePort(t)
		s := rfcLoad(t, port, t.TempDir(), fmt.Sprintf("\tclient_registration rfc7591 {\n\t\tstorage redis {\n\t\t\taddress %s\n\t\t\tkey_prefix %s\n\t\t}\n\t\trate_limit off\n\t}\n\trespond \"site\"", sharedRedis.Addr, prefix))
		creds, ids := rfcCredentials(t, s)
		rdb := redis.NewClient(&redis.Options{Addr: sharedRedis.Addr})
		defer rdb.Close()
		ctx := context.Background()
		var dump strings.Builder
		nkeys := 0
		iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			key := iter.Val()
			nkeys++
			dump.WriteString(key + "\n")
			typ, err := rdb.Type(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			var v any
			switch typ {
			case "string":
				v, err = rdb.Get(ctx, key).Result()
			case "hash":
				v, err = rdb.HGetAll(ctx, key).Result()
			case "zset":
				v, err = rdb.ZRangeWithScores(ctx, key, 0, -1).Result()
			case "set":
				v, err = rdb.SMembers(ctx, key).Result()
			case "list":
				v, err = rdb.LRange(ctx, key, 0, -1).Result()
			default:
				t.Errorf("key %s of unexpected type %s", key, typ)
			}
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&dump, "%v\n", v)
		}
		if err := iter.Err(); err != nil {
			t.Fatal(err)
		}
		if nkeys == 0 {
			t.Fatalf("no Redis keys under %q", prefix)
		}
		rfcWantNoCredentials(t, "the Redis keys under "+prefix, dump.String(), creds, ids)
	})
	t.Run("embedded", func(t *testing.T) {
		dir := t.TempDir()
		s := rfcLoad(t, redistest.FreePort(t), dir, "\tclient_registration rfc7591 {\n\t\tstorage caddy\n\t\trate_limit off\n\t}\n\trespond \"site\"")
		creds, ids := rfcCredentials(t, s)
		var dump bytes.Buffer
		nfiles := 0
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			nfiles++
			dump.WriteString(p + "\n")
			dump.Write(b)
			dump.WriteByte('\n')
			// Records wrap the client JSON as base64 "data"; look inside too.
			var rec struct {
				Data []byte `json:"data"`
			}
			if json.Unmarshal(b, &rec) == nil && len(rec.Data) > 0 {
				dump.Write(rec.Data)
				dump.WriteByte('\n')
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if nfiles == 0 {
			t.Fatalf("no files under %s", dir)
		}
		rfcWantNoCredentials(t, "the storage directory", dump.String(), creds, ids)
	})
}

// TestRFC7591StoreUnavailable: with the store down, every response is still
// a JSON error with no-store (S14, E1), never a hang or a 500.
func TestRFC7591StoreUnavailable(t *testing.T) {
	dead := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	s := rfcLoad(t, redistest.FreePort(t), t.TempDir(), "\tclient_registration rfc7591 {\n\t\tstorage redis {\n\t\t\taddress "+dead+"\n\t\t\ttimeout 500ms\n\t\t}\n\t\trate_limit off\n\t}\n\trespond \"site\"")
	for _, r := range []struct {
		name, method, path, body string
	}{
		{"POST /register", "POST", "/register", `{` + rfcCB + `}`},
		{"GET /register/{id}", "GET", "/register/AAAAAAAAAAAAAAAAAAAAAA", ""},
		{"PUT /register/{id}", "PUT", "/register/AAAAAAAAAAAAAAAAAAAAAA", `{"client_id":"AAAAAAAAAAAAAAAAAAAAAA",` + rfcCB + `}`},
		{"DELETE /register/{id}", "DELETE", "/register/AAAAAAAAAAAAAAAAAAAAAA", ""},
	} {
		t.Run("S14 "+r.name, func(t *testing.T) {
			resp, body := s.do(r.method, r.path, r.body, "Content-Type: application/json", rfcBearer("x.AAAAAAAAAAAAAAAAAAAAAA"))
			rfcWantError(t, resp, body, http.StatusServiceUnavailable, "")
			if resp.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
}

// TestRFC7591ConfiguredPolicy: V14 (scope limited to the configured scopes,
// default scope when omitted) and the other operator policies, with the
// metadata document publishing what validation enforces (D2, V11, X1).
func TestRFC7591ConfiguredPolicy(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := rfcStart(t, backend,
			"allowed_scopes read write",
			"default_scope read",
			"allowed_grant_types authorization_code refresh_token",
			"allowed_auth_methods none client_secret_basic",
			"max_redirect_uris 2",
		)
		reg := func(t *testing.T, body string) map[string]any {
			t.Helper()
			return rfcRegister(t, s, body).Body
		}
		rows := []struct {
			id, name string
			run      func(t *testing.T)
		}{
			{"V14", "default scope when omitted", func(t *testing.T) {
				rfcWantStr(t, reg(t, `{`+rfcCB+`}`), "scope", "read")
			}},
			{"V14", "default scope when empty", func(t *testing.T) {
				rfcWantStr(t, reg(t, `{`+rfcCB+`,"scope":""}`), "scope", "read")
			}},
			{"V14", "allowed scope kept", func(t *testing.T) {
				rfcWantStr(t, reg(t, `{`+rfcCB+`,"scope":"write"}`), "scope", "write")
			}},
			{"V14", "all allowed scopes kept", func(t *testing.T) {
				rfcWantStr(t, reg(t, `{`+rfcCB+`,"scope":"read write"}`), "scope", "read write")
			}},
			{"V14", "unknown scope refused", func(t *testing.T) {
				resp, body := s.postJSON("/register", `{`+rfcCB+`,"scope":"admin"}`)
				rfcWantError(t, resp, body, 400, "invalid_client_metadata")
			}},
			{"V14", "unknown scope among allowed ones refused", func(t *testing.T) {
				resp, body := s.postJSON("/register", `{`+rfcCB+`,"scope":"read admin"}`)
				rfcWantError(t, resp, body, 400, "invalid_client_metadata")
			}},
			{"V14", "PUT applies the same scope policy", func(t *testing.T) {
				c := rfcRegister(t, s, `{`+rfcCB+`,"scope":"write"}`)
				resp, body := rfcPut(t, s, c, c.RAT, `{"client_id":"`+c.ID+`",`+rfcCB+`,"scope":"admin"}`)
				rfcWantError(t, resp, body, 400, "invalid_client_metadata")
				resp, body = rfcPut(t, s, c, c.RAT, `{"client_id":"`+c.ID+`",`+rfcCB+`}`)
				if resp.StatusCode != 200 {
					t.Fatalf("PUT %d %s", resp.StatusCode, body)
				}
				rfcWantStr(t, object(t, body), "scope", "read")
			}},
			{"V11", "grant type outside the configured ones refused", func(t *testing.T) {
				resp, body := s.postJSON("/register", `{"grant_types":["client_credentials"]}`)
				rfcWantError(t, resp, body, 400, "invalid_client_metadata")
			}},
			{"V11", "a derived grant type obeys the configured ones", func(t *testing.T) {
				// response_types ["token"] alone derives grant_types
				// ["implicit"] (RFC 7591 2.1), which this server does not allow:
				// refuse it, or register only allowed values (S9).
				resp, body := s.postJSON("/register", `{`+rfcCB+`,"response_types":["token"]}`)
				if resp.StatusCode != 201 {
					rfcWantError(t, resp, body, 400, "invalid_client_metadata")
					return
				}
				for _, g := range rfcStrs(t, object(t, body), "grant_types") {
					if g != "authorization_code" && g != "refresh_token" {
						t.Errorf("201 registers grant type %q outside allowed_grant_types (authorization_code refresh_token): %s", g, body)
					}
				}
			}},
			{"V11", "configured grant types accepted", func(t *testing.T) {
				rfcWantStrs(t, reg(t, `{`+rfcCB+`,"grant_types":["authorization_code","refresh_token"]}`), "grant_types", "authorization_code", "refresh_token")
			}},
			{"V11", "auth method outside the configured ones refused", func(t *testing.T) {
				resp, body := s.postJSON("/register", `{`+rfcCB+`,"token_endpoint_auth_method":"client_secret_post"}`)
				rfcWantError(t, resp, body, 400, "invalid_client_metadata")
			}},
			{"S7", "default auth method kept when configured", func(t *testing.T) {
				rfcWantStr(t, reg(t, `{`+rfcCB+`}`), "token_endpoint_auth_method", "client_secret_basic")
			}},
			{"X1", "configured redirect cap", func(t *testing.T) {
				reg(t, `{"redirect_uris":["https://c.example/1","https://c.example/2"]}`)
				resp, body := s.postJSON("/register", `{"redirect_uris":["https://c.example/1","https://c.example/2","https://c.example/3"]}`)
				rfcWantError(t, resp, body, 400, "invalid_redirect_uri")
			}},
			{"D2", "metadata publishes the configured policy", func(t *testing.T) {
				resp, body := s.do("GET", "/.well-known/oauth-authorization-server", "")
				if resp.StatusCode != 200 {
					t.Fatalf("%d %s", resp.StatusCode, body)
				}
				m := object(t, body)
				rfcWantStrs(t, m, "scopes_supported", "read", "write")
				rfcWantStrs(t, m, "grant_types_supported", "authorization_code", "refresh_token")
				rfcWantStrs(t, m, "token_endpoint_auth_methods_supported", "none", "client_secret_basic")
				rfcWantStrs(t, m, "code_challenge_methods_supported", "S256")
			}},
		}
		for _, r := range rows {
			t.Run(r.id+" "+r.name, r.run)
		}
	})
}

// TestAdvertiseRegistration (dcr-anchors D3): the metadata leaves out
// registration_endpoint when registering needs an initial access token,
// unless advertise_registration says otherwise.
func TestAdvertiseRegistration(t *testing.T) {
	for _, c := range []struct {
		name, options string
		want          bool
	}{
		{"open", "", true},
		{"token", "registration token", false},
		{"token, advertised", "registration token\n\t\tadvertise_registration on", true},
		{"open, not advertised", "advertise_registration off", false},
		{"user", "registration user", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := startCaddy(t, "embedded", "\tclient_registration {\n\t\t{storage}\n\t\t"+c.options+"\n\t}")
			resp, body := s.do("GET", "/.well-known/oauth-authorization-server", "")
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			_, got := object(t, body)["registration_endpoint"]
			if got != c.want {
				t.Errorf("registration_endpoint published: %v, want %v: %s", got, c.want, body)
			}
		})
	}
}

// TestRFC7591SigningAlg: token_endpoint_auth_signing_alg (OpenID Connect
// Dynamic Client Registration, in RFC 7591's registry) is stored and echoed,
// read back, and dropped by an update that leaves it out; one the metadata
// does not publish, or that does not suit the method, is refused.
func TestRFC7591SigningAlg(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := rfcStart(t, backend)
		c := rfcRegister(t, s, `{"redirect_uris":["https://c.example/cb"],"token_endpoint_auth_method":"client_secret_jwt","token_endpoint_auth_signing_alg":"HS256"}`)
		rfcWantStr(t, c.Body, "token_endpoint_auth_signing_alg", "HS256")
		resp, body := rfcGet(t, s, c, c.RAT)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %d %s", resp.StatusCode, body)
		}
		rfcWantStr(t, object(t, body), "token_endpoint_auth_signing_alg", "HS256")
		resp, body = rfcPut(t, s, c, c.RAT, `{"client_id":"`+c.ID+`","redirect_uris":["https://c.example/cb"],"token_endpoint_auth_method":"client_secret_jwt"}`)
		if resp.StatusCode != 200 {
			t.Fatalf("PUT %d %s", resp.StatusCode, body)
		}
		rfcWantAbsent(t, object(t, body), "token_endpoint_auth_signing_alg")

		resp, body = s.postJSON("/register", `{"redirect_uris":["https://c.example/cb"],"token_endpoint_auth_method":"client_secret_jwt","token_endpoint_auth_signing_alg":"RS256"}`)
		if want := `{"error":"invalid_client_metadata","error_description":"token_endpoint_auth_signing_alg 'RS256' does not suit client_secret_jwt, which is signed with the client secret (HS256)"}`; resp.StatusCode != 400 || body != want {
			t.Errorf("RS256 with client_secret_jwt: %d %s, want 400 %s", resp.StatusCode, body, want)
		}
	})
}

// TestRFC7592Preconditions: clients have no entity tags, so an If-Match
// with tags, or If-None-Match "*" on a client that exists, stops a PUT or
// DELETE with 412 (RFC 9110 section 13.1), and a partial PUT (Content-Range)
// is refused with 400 (section 14.5); If-Match "*" holds. Nothing changes.
// A read answers 304 where a change answers If-None-Match's 412.
func TestRFC7592Preconditions(t *testing.T) {
	s := startCaddy(t, "embedded", `	client_registration {
		{storage}
		rate_limit off
	}`)
	c := rfcRegister(t, s, mcpBody)
	put := `{"client_id":"` + c.ID + `","redirect_uris":["http://127.0.0.1:33418/callback"],"token_endpoint_auth_method":"none"}`
	for _, tc := range []struct {
		method, header string
		status         int
	}{
		{http.MethodPut, `If-Match: "abc"`, 412},
		{http.MethodDelete, `If-Match: "abc", *`, 412},
		{http.MethodPut, `If-None-Match: *`, 412},
		{http.MethodDelete, `If-None-Match: "x", *`, 412},
		{http.MethodPut, `Content-Range: bytes 0-10/200`, 400},
		{http.MethodDelete, "If-Match: \"x\"\nContent-Range: bytes 0-1/2", 412},
	} {
		body := ""
		if tc.method == http.MethodPut {
			body = put
		}
		resp, raw := s.do(tc.method, c.path(t, s), body, append([]string{rfcBearer(c.RAT), "Content-Type: application/json"}, strings.Split(tc.header, "\n")...)...)
		rfcWantError(t, resp, raw, tc.status, "invalid_request")
	}
	// The token was not rotated, nor the client deleted.
	if resp, body := rfcGet(t, s, c, c.RAT); resp.StatusCode != 200 {
		t.Fatalf("GET after refused changes: %d %s", resp.StatusCode, body)
	}
	// Reads: a false If-None-Match is 304 for them (section 13.1.2), with
	// no body and still not for caches; If-Match is evaluated first.
	for _, tc := range []struct {
		method, header string
		status         int
	}{
		{http.MethodGet, `If-None-Match: *`, 304},
		{http.MethodHead, `If-None-Match: "x", *`, 304},
		{http.MethodGet, "If-Match: *\nIf-None-Match: *", 304},
		{http.MethodGet, `If-None-Match: "x"`, 200},
		{http.MethodGet, `If-Match: *`, 200},
		{http.MethodGet, "If-Match: \"abc\"\nIf-None-Match: *", 412},
	} {
		resp, raw := s.do(tc.method, c.path(t, s), "", append([]string{rfcBearer(c.RAT)}, strings.Split(tc.header, "\n")...)...)
		switch tc.status {
		case 412:
			rfcWantError(t, resp, raw, tc.status, "invalid_request")
		case 304:
			if resp.StatusCode != 304 || len(raw) != 0 || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
				t.Errorf("%s %s: %d %v %q, want 304 with no body, Cache-Control: no-store, Pragma: no-cache", tc.method, tc.header, resp.StatusCode, resp.Header, raw)
			}
		default:
			if resp.StatusCode != tc.status {
				t.Errorf("%s %s: %d %s, want %d", tc.method, tc.header, resp.StatusCode, raw, tc.status)
			}
		}
	}
	// A 304 needs the token all the same.
	if resp, raw := s.do(http.MethodGet, c.path(t, s), "", rfcBearer("wrong"), `If-None-Match: *`); resp.StatusCode != 401 {
		t.Fatalf("GET If-None-Match: * with a wrong token: %d %s", resp.StatusCode, raw)
	}
	resp, body := s.do(http.MethodPut, c.path(t, s), put, rfcBearer(c.RAT), "Content-Type: application/json", "If-Match: *")
	if resp.StatusCode != 200 {
		t.Fatalf("PUT If-Match *: %d %s", resp.StatusCode, body)
	}
	rat := object(t, body)["registration_access_token"].(string)
	resp, body = s.do(http.MethodDelete, c.path(t, s), "", rfcBearer(rat), `If-None-Match: "x"`)
	if resp.StatusCode != 204 {
		t.Fatalf("DELETE If-None-Match with a tag: %d %s", resp.StatusCode, body)
	}
}

// TestTwoContentTypes: a body sent with two different Content-Type fields,
// which the hops in front may read differently, is refused (RFC 9110
// section 5.3), in RFC 7591 and IAM.
func TestTwoContentTypes(t *testing.T) {
	s := startCaddy(t, "embedded", `	client_registration {
		{storage}
	}
	client_registration iam {
		{storage}
	}`)
	for _, p := range []string{"/register", "/v1/clients"} {
		for _, second := range []string{"text/plain", "application/json; charset=utf-8"} {
			resp, body := s.do("POST", p, `{"redirect_uris":["https://app.example/cb"],"client_name":"x"}`, "Content-Type: application/json", "Content-Type: "+second)
			if resp.StatusCode != 400 || !strings.Contains(body, "Content-Type") {
				t.Errorf("POST %s with a second Content-Type %s: %d %s", p, second, resp.StatusCode, body)
			}
		}
		// The same one twice is no ambiguity.
		both := strings.Replace(iamMinimalRequest, "{", `{"redirect_uris":["https://app.example/cb"],`, 1)
		resp, body := s.do("POST", p, both, "Content-Type: application/json", "Content-Type: application/json")
		if resp.StatusCode >= 300 {
			t.Errorf("POST %s with Content-Type twice the same: %d %s", p, resp.StatusCode, body)
		}
	}
}
