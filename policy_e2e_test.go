package caddydcr

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/redis/go-redis/v9"

	"github.com/caddy-dcr/caddy-dcr/internal/redistest"
)

// Registration policy and abuse controls (issue 4), end to end.

// iamBody is a minimal valid IAM RegisterClient request.
const iamBody = `{"client_name":"x","client_type":"public","token_endpoint_auth_method":"client_secret_post","grant_types":["authorization_code"],"response_types":["code"]}`

const mcpBody = `{"redirect_uris":["http://127.0.0.1:33418/callback"],"token_endpoint_auth_method":"none","client_name":"MCP"}`

func (s *site) adminJSON(admin, method, path, body string) (int, map[string]any) {
	s.t.Helper()
	req, _ := http.NewRequest(method, admin+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestPolicyStaticTokens(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s, admin := startCaddyAdmin(t, backend, `	client_registration {
		{storage}
		registration token
		initial_access_token s3cret-token other-token
	}
	client_registration iam {
		{storage}
		registration token
		initial_access_token s3cret-token
	}`)
		resp, body := s.postJSON("/register", mcpBody)
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` || object(t, body)["error"] != "invalid_token" {
			t.Fatalf("no token: %d %v %s", resp.StatusCode, resp.Header, body)
		}
		resp, body = s.postJSON("/register", mcpBody, "Authorization: Bearer wrong")
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
			t.Fatalf("wrong token: %d %v %s", resp.StatusCode, resp.Header, body)
		}
		// Two headers, the right token in one of them: refused, saying
		// what to send rather than that no token came.
		resp, body = s.postJSON("/register", mcpBody, "Authorization: Bearer s3cret-token", "Authorization: Bearer other")
		if resp.StatusCode != 401 || object(t, body)["error"] != "invalid_token" ||
			object(t, body)["error_description"] != "send the initial access token in one Authorization header, as Bearer <token>" {
			t.Fatalf("two Authorization headers: %d %v %s", resp.StatusCode, resp.Header, body)
		}
		// A token in the body is not a token.
		if resp, _ := s.postJSON("/register", `{"initial_access_token":"s3cret-token","redirect_uris":["https://a.example/cb"]}`); resp.StatusCode != 401 {
			t.Fatalf("token in body: %d", resp.StatusCode)
		}
		resp, body = s.postJSON("/register", mcpBody, "Authorization: Bearer s3cret-token")
		if resp.StatusCode != 201 {
			t.Fatalf("good token: %d %s", resp.StatusCode, body)
		}
		// The token is the owner, named without being revealed.
		id := object(t, body)["client_id"].(string)
		_, c := s.adminJSON(admin, "GET", "/client_registration/clients/"+id, "")
		owner, _ := c["owner"].(string)
		if !strings.HasPrefix(owner, "token:static-") || strings.Contains(owner, "s3cret") {
			t.Fatalf("owner %q", owner)
		}
		// Other APIs refuse in their own format.
		resp, body = s.postJSON("/v1/clients", iamBody)
		if resp.StatusCode != 401 || !strings.HasPrefix(body, `{"error_code":"IIC.401","error_msg":"Unauthorized: registration requires an initial access token`) {
			t.Fatalf("iam: %d %s", resp.StatusCode, body)
		}
	})
}

func TestPolicyRuntimeTokens(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s, admin := startCaddyAdmin(t, backend, `	client_registration {
		{storage}
		registration token
	}`)
		status, tok := s.adminJSON(admin, "POST", "/client_registration/initial_access_tokens", `{"name":"ci","expires_in":"1h","uses":2}`)
		if status != 201 || tok["token"] == nil || tok["uses"].(float64) != 2 {
			t.Fatalf("issue: %d %v", status, tok)
		}
		bearerTok := "Authorization: Bearer " + tok["token"].(string)
		for i := 0; i < 2; i++ {
			if resp, body := s.postJSON("/register", mcpBody, bearerTok); resp.StatusCode != 201 {
				t.Fatalf("use %d: %d %s", i, resp.StatusCode, body)
			}
		}
		if resp, _ := s.postJSON("/register", mcpBody, bearerTok); resp.StatusCode != 401 {
			t.Fatalf("third use: %d", resp.StatusCode)
		}
		// An invalid registration does not burn a use.
		_, tok2 := s.adminJSON(admin, "POST", "/client_registration/initial_access_tokens", `{"uses":1}`)
		b2 := "Authorization: Bearer " + tok2["token"].(string)
		if resp, _ := s.postJSON("/register", `{"redirect_uris":["javascript:x"]}`, b2); resp.StatusCode != 400 {
			t.Fatalf("invalid: %d", resp.StatusCode)
		}
		if resp, body := s.postJSON("/register", mcpBody, b2); resp.StatusCode != 201 {
			t.Fatalf("after invalid: %d %s", resp.StatusCode, body)
		}
		// Listed without the token; revoked tokens stop working.
		req, _ := http.NewRequest("GET", admin+"/client_registration/initial_access_tokens", nil)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var list []map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if len(list) != 2 || list[0]["token"] != nil || list[0]["used"].(float64) != 2 || list[0]["name"] != "ci" {
			t.Fatalf("list: %v", list)
		}
		// Misspelt members and bare-number durations are refused, not
		// silently turned into a token that never (or already) expires.
		for _, bad := range []string{`{"expire_in":"1h"}`, `{"expires_in":3600}`, `{"uses":1} {}`} {
			if status, body := s.adminJSON(admin, "POST", "/client_registration/initial_access_tokens", bad); status != 400 {
				t.Fatalf("issue %s: %d %v", bad, status, body)
			}
		}
		// A negative value is refused naming the member that has it.
		for bad, want := range map[string]string{`{"uses":-3}`: "uses must not be negative", `{"expires_in":"-1h","uses":2}`: "expires_in must not be negative",
			`{"expires_in":"1ns"}`: "expires_in 1ns is too short: at least 1s",
			`{"expires_in":"0s"}`:  `expires_in "0s" is too short: at least 1s (leave expires_in out for a token that does not expire)`, `{"name":"ci\u202eelgoog"}`: "name must not contain control characters, line separators or bidirectional overrides (found U+202E)",
			`{"name":"a\nb"}`: "name must not contain control characters, line separators or bidirectional overrides (found U+000A)"} {
			if status, body := s.adminJSON(admin, "POST", "/client_registration/initial_access_tokens", bad); status != 400 || body["error"] != want {
				t.Fatalf("issue %s: %d %v, want 400 %q", bad, status, body, want)
			}
		}
		_, tok3 := s.adminJSON(admin, "POST", "/client_registration/initial_access_tokens", `{}`)
		if status, _ := s.adminJSON(admin, "DELETE", "/client_registration/initial_access_tokens/"+tok3["id"].(string), ""); status != 204 {
			t.Fatalf("revoke: %d", status)
		}
		if resp, _ := s.postJSON("/register", mcpBody, "Authorization: Bearer "+tok3["token"].(string)); resp.StatusCode != 401 {
			t.Fatalf("revoked: %d", resp.StatusCode)
		}
		// Expiry.
		_, tok4 := s.adminJSON(admin, "POST", "/client_registration/initial_access_tokens", `{"expires_in":"1s"}`)
		time.Sleep(1100 * time.Millisecond)
		if resp, _ := s.postJSON("/register", mcpBody, "Authorization: Bearer "+tok4["token"].(string)); resp.StatusCode != 401 {
			t.Fatalf("expired: %d", resp.StatusCode)
		}
		// Concurrent last uses: exactly the allowed number succeed.
		_, tok5 := s.adminJSON(admin, "POST", "/client_registration/initial_access_tokens", `{"uses":5}`)
		var created atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("POST", s.URL+"/register", strings.NewReader(mcpBody))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+tok5["token"].(string))
				resp, err := httpClient.Do(req)
				if err == nil {
					if resp.StatusCode == 201 {
						created.Add(1)
					}
					resp.Body.Close()
				}
			}()
		}
		wg.Wait()
		if created.Load() != 5 {
			t.Fatalf("created %d with a 5-use token", created.Load())
		}
	})
}

func TestPolicyUserMode(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		h := basicHash(t)
		s, admin := startCaddyAdmin(t, backend, fmt.Sprintf(`	@authed header Authorization Basic*
	basic_auth @authed {
		alice %s
	}
	client_registration {
		{storage}
		registration user
		max_clients_per_owner 2
	}`, h))
		if resp, _ := s.postJSON("/register", mcpBody); resp.StatusCode != 401 {
			t.Fatalf("anonymous: %d", resp.StatusCode)
		}
		resp, body := s.postJSON("/register", mcpBody, basicAuth("alice"))
		if resp.StatusCode != 201 {
			t.Fatalf("alice: %d %s", resp.StatusCode, body)
		}
		_, c := s.adminJSON(admin, "GET", "/client_registration/clients/"+object(t, body)["client_id"].(string), "")
		if c["owner"] != "alice" {
			t.Fatalf("owner %v", c)
		}
		s.postJSON("/register", mcpBody, basicAuth("alice"))
		resp, body = s.postJSON("/register", mcpBody, basicAuth("alice"))
		if resp.StatusCode != 429 || object(t, body)["error"] != "too_many_requests" || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("third for alice: %d %v %s", resp.StatusCode, resp.Header, body)
		}
	})
}

// signer makes software statements.
type signer struct {
	alg jose.SignatureAlgorithm
	key any
}

func (sg signer) sign(t *testing.T, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: sg.alg, Key: sg.key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writePEMKey(t *testing.T, dir, name string, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestPolicySoftwareStatements(t *testing.T) {
	dir := t.TempDir()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rsaFile := writePEMKey(t, dir, "rsa.pem", &rsaKey.PublicKey)
	edFile := writePEMKey(t, dir, "ed.pem", edPub)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &ecKey.PublicKey, KeyID: "ec1", Algorithm: "ES256"}}})
	jwksServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(jwks) }))
	defer jwksServer.Close()
	rs := signer{jose.RS256, rsaKey}
	es := signer{jose.ES256, jose.JSONWebKey{Key: ecKey, KeyID: "ec1"}}
	ed := signer{jose.EdDSA, edPriv}
	hs := signer{jose.HS256, []byte("a-shared-secret-of-32-bytes-long!")}
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	now := time.Now().Unix()
	claims := func(kv ...any) map[string]any {
		m := map[string]any{"iss": "https://issuer.example", "software_id": "app-1", "client_name": "From Statement",
			"redirect_uris": []string{"https://app.example/cb"}, "iat": now, "exp": now + 600}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	cfg := fmt.Sprintf(`	client_registration {
		{storage}
		software_statement {
			issuer https://issuer.example {
				key %s %s %s
				secret a-shared-secret-of-32-bytes-long!
				software_id app-1 app-2
			}
			issuer https://other.example {
				key %s
			}
		}
%%s
	}`, rsaFile, edFile, jwksServer.URL, rsaFile)
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, fmt.Sprintf(cfg, ""))
		register := func(stmt string, extra string) (*http.Response, map[string]any) {
			body := fmt.Sprintf(`{"software_statement":%q,"client_name":"Plain","redirect_uris":["https://plain.example/cb"]%s}`, stmt, extra)
			resp, b := s.postJSON("/register", body)
			return resp, object(t, b)
		}
		for name, sg := range map[string]signer{"RS256": rs, "ES256 via JWKS URL": es, "EdDSA": ed, "HS256": hs} {
			stmt := sg.sign(t, claims())
			resp, m := register(stmt, "")
			if resp.StatusCode != 201 || m["client_name"] != "From Statement" || m["software_statement"] != stmt ||
				m["redirect_uris"].([]any)[0] != "https://app.example/cb" || m["software_id"] != "app-1" {
				t.Fatalf("%s: %d %v", name, resp.StatusCode, m)
			}
		}
		// Claims take precedence, plain members fill the rest.
		stmt := rs.sign(t, claims("client_name", nil))
		if resp, m := register(stmt, `,"client_uri":"https://plain.example"`); resp.StatusCode != 201 || m["client_name"] != "Plain" || m["client_uri"] != "https://plain.example" {
			t.Fatalf("merge: %d %v", resp.StatusCode, m)
		}
		bad := map[string]string{
			"tampered":       rs.sign(t, claims())[:40] + "x" + rs.sign(t, claims())[41:],
			"wrong key":      signer{jose.RS256, otherRSA}.sign(t, claims()),
			"unknown issuer": rs.sign(t, claims("iss", "https://evil.example")),
			"no issuer":      rs.sign(t, claims("iss", nil)),
			"expired":        rs.sign(t, claims("exp", now-10)),
			"alg none": base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." +
				base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"https://issuer.example","software_id":"app-1"}`)) + ".",
			"not a JWS":               "hello",
			"HS256 with the RSA key":  signer{jose.HS256, x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)}.sign(t, claims()),
			"other issuer's RSA only": hs.sign(t, claims("iss", "https://other.example")),
		}
		for name, stmt := range bad {
			resp, m := register(stmt, "")
			if resp.StatusCode != 400 || m["error"] != "invalid_software_statement" {
				t.Errorf("%s: %d %v", name, resp.StatusCode, m)
			}
		}
		resp, m := register(rs.sign(t, claims("software_id", "app-9")), "")
		if resp.StatusCode != 400 || m["error"] != "unapproved_software_statement" {
			t.Fatalf("unapproved: %d %v", resp.StatusCode, m)
		}
		// Without require_software_statement, a plain registration works.
		if resp, _ := s.postJSON("/register", `{"redirect_uris":["https://plain.example/cb"]}`); resp.StatusCode != 201 {
			t.Fatalf("plain: %d", resp.StatusCode)
		}
		// A software_id of its own is the client's claim; an approved one
		// only comes with a statement that vouches for it: not alone, not
		// beside a statement without it, not kept by an update that drops
		// the statement.
		if c := rfcRegister(t, s, `{"redirect_uris":["https://plain.example/cb"],"software_id":"my-app"}`); c.Body["software_id"] != "my-app" {
			t.Fatalf("own software_id: %v", c.Body)
		}
		for name, body := range map[string]string{
			"alone":                      `{"redirect_uris":["https://plain.example/cb"],"software_id":"app-2"}`,
			"beside a statement without": fmt.Sprintf(`{"software_statement":%q,"software_id":"app-1"}`, rs.sign(t, claims("iss", "https://other.example", "software_id", nil))),
		} {
			resp, b := s.postJSON("/register", body)
			if m := object(t, b); resp.StatusCode != 400 || m["error"] != "invalid_client_metadata" || !strings.Contains(m["error_description"].(string), "software statement vouches") {
				t.Errorf("approved software_id %s: %d %s", name, resp.StatusCode, b)
			}
		}
		vouched := rfcRegister(t, s, fmt.Sprintf(`{"software_statement":%q}`, rs.sign(t, claims())))
		shed := `{"client_id":%q,"redirect_uris":["https://evil.example/cb"]%s}`
		if resp, b := rfcPut(t, s, vouched, vouched.RAT, fmt.Sprintf(shed, vouched.ID, `,"software_id":"app-1","client_name":"From Statement"`)); resp.StatusCode != 400 || object(t, b)["error"] != "invalid_client_metadata" {
			t.Errorf("update keeping the software_id without the statement: %d %s", resp.StatusCode, b)
		}
		if resp, b := rfcPut(t, s, vouched, vouched.RAT, fmt.Sprintf(shed, vouched.ID, "")); resp.StatusCode != 200 || object(t, b)["software_id"] != nil || object(t, b)["software_statement"] != nil {
			t.Errorf("update without the statement and its software_id: %d %s", resp.StatusCode, b)
		}
		s = startCaddy(t, backend, fmt.Sprintf(cfg, "\t\trequire_software_statement"))
		resp, body := s.postJSON("/register", `{"redirect_uris":["https://plain.example/cb"]}`)
		if resp.StatusCode != 400 || object(t, body)["error"] != "invalid_software_statement" {
			t.Fatalf("required: %d %s", resp.StatusCode, body)
		}
	})
}

func TestPolicyRedirectHostsAndNarrowing(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		h := basicHash(t)
		s := startCaddy(t, backend, fmt.Sprintf(`	@authed header Authorization Basic*
	basic_auth @authed {
		alice %s
	}
	route {
		client_registration {
			{storage}
			allowed_redirect_hosts app.example *.trusted.org
			max_redirect_uris 2
			allowed_grant_types authorization_code
			allowed_auth_methods none client_secret_basic
			allowed_scopes read write
			default_scope read
		}
		client_registration kustvakt {
			{storage}
			allowed_redirect_hosts app.example.com
		}
		client_registration mediagoblin {
			{storage}
			allowed_redirect_hosts app.example bücher.example
		}
		client_registration iam {
			{storage}
			allowed_scopes openid
		}
	}`, h))
		cases := []struct {
			body, code string
		}{
			{`{"redirect_uris":["https://app.example/cb"]}`, ""},
			{`{"redirect_uris":["https://x.trusted.org/cb"]}`, ""},
			{`{"redirect_uris":["http://localhost:8765/cb"]}`, ""},
			{`{"redirect_uris":["https://trusted.org/cb"]}`, "invalid_redirect_uri"},
			{`{"redirect_uris":["https://evil.example/cb"]}`, "invalid_redirect_uri"},
			{`{"redirect_uris":["https://app.example/1","https://app.example/2","https://app.example/3"]}`, "invalid_redirect_uri"},
			{`{"redirect_uris":["https://app.example/cb"],"grant_types":["authorization_code","refresh_token"]}`, "invalid_client_metadata"},
			{`{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"client_secret_post"}`, "invalid_client_metadata"},
			{`{"redirect_uris":["https://app.example/cb"],"scope":"read admin"}`, "invalid_client_metadata"},
		}
		for _, c := range cases {
			resp, body := s.postJSON("/register", c.body)
			m := object(t, body)
			if c.code == "" && resp.StatusCode != 201 || c.code != "" && (resp.StatusCode != 400 || m["error"] != c.code) {
				t.Errorf("%s: %d %s", c.body, resp.StatusCode, body)
			}
		}
		_, body := s.postJSON("/register", `{"redirect_uris":["https://app.example/cb"],"grant_types":["authorization_code","refresh_token"]}`)
		if d := object(t, body)["error_description"].(string); !strings.Contains(d, `'refresh_token'`) {
			t.Fatalf("the refused value is named: %s", d)
		}
		_, body = s.postJSON("/register", `{"redirect_uris":["https://app.example/cb"]}`)
		if object(t, body)["scope"] != "read" {
			t.Fatalf("default scope: %s", body)
		}
		_, body = s.do("GET", "/.well-known/oauth-authorization-server", "")
		meta := object(t, body)
		if fmt.Sprint(meta["grant_types_supported"]) != "[authorization_code]" || fmt.Sprint(meta["scopes_supported"]) != "[read write]" ||
			fmt.Sprint(meta["token_endpoint_auth_methods_supported"]) != "[none client_secret_basic]" {
			t.Fatalf("metadata: %s", body)
		}
		// The same allowlist in the cloned APIs, in their formats.
		resp, body := s.kvRegister("alice", `{"name":"abc","type":"PUBLIC","description":"d","redirect_uri":"https://evil.example.com/cb"}`)
		checkOAuthError(t, resp, body, 400, "invalid_request", "Invalid redirect URI")
		if resp, body := s.kvRegister("alice", `{"name":"abc","type":"PUBLIC","description":"d","redirect_uri":"https://app.example.com/cb"}`); resp.StatusCode != 200 {
			t.Fatalf("kustvakt allowed host: %d %s", resp.StatusCode, body)
		}
		resp, body = s.postJSON("/api/client/register", `{"type":"client_associate","application_type":"web","redirect_uris":"https://app.example/cb https://evil.example/cb"}`)
		if resp.StatusCode != 400 || body != `{"error": "URI https://evil.example/cb is not a valid URI"}` {
			t.Fatalf("mediagoblin: %d %s", resp.StatusCode, body)
		}
		// MediaGoblin's own rule accepts relative URIs, which a browser
		// resolves to another host: with a host list they are refused.
		for _, uri := range []string{`//evil.example/cb`, `\\\\evil.example/cb`, `https://evil.example\\@app.example/`, `cb`} {
			resp, body = s.postJSON("/api/client/register", `{"type":"client_associate","application_type":"web","redirect_uris":"`+uri+`"}`)
			if resp.StatusCode != 400 || !strings.HasSuffix(body, `is not a valid URI"}`) {
				t.Errorf("mediagoblin %s: %d %s", uri, resp.StatusCode, body)
			}
		}
		// An internationalized host matches in either form, as a browser
		// looks it up.
		for _, uri := range []string{`https://xn--bcher-kva.example/cb`, `https://BÜCHER.example/cb`} {
			resp, body = s.postJSON("/api/client/register", `{"type":"client_associate","application_type":"web","redirect_uris":"`+uri+`"}`)
			if resp.StatusCode != 200 {
				t.Errorf("mediagoblin %s: %d %s", uri, resp.StatusCode, body)
			}
		}
		resp, body = s.postJSON("/register", `{"redirect_uris":["ws://evil.example/cb"]}`)
		if m := object(t, body); resp.StatusCode != 400 || m["error"] != "invalid_redirect_uri" {
			t.Errorf("rfc7591 ws: %d %s", resp.StatusCode, body)
		}
		resp, body = s.postJSON("/v1/clients", `{"client_name":"x","client_type":"public","token_endpoint_auth_method":"client_secret_post","grant_types":["authorization_code"],"response_types":["code"],"scopes":["openid","admin"]}`)
		if resp.StatusCode != 400 || !strings.Contains(body, "scope admin is not allowed") {
			t.Fatalf("iam scopes: %d %s", resp.StatusCode, body)
		}
	})
}

func TestPolicyServerControlledFields(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := kustvaktSite(t, backend, "")
		resp, body := s.postJSON("/register", `{"redirect_uris":["https://a.example/cb"],"client_id":"mine","client_secret":"mine","client_id_issued_at":1,"client_secret_expires_at":5,"registration_access_token":"mine","owner":"x","super":true}`)
		m := object(t, body)
		if resp.StatusCode != 201 || m["client_id"] == "mine" || m["client_secret"] == "mine" || m["registration_access_token"] == "mine" ||
			m["client_secret_expires_at"].(json.Number) != "0" || m["super"] != nil || m["owner"] != nil {
			t.Fatalf("rfc7591: %d %s", resp.StatusCode, body)
		}
		resp, body = s.postJSON("/api/client/register", `{"type":"client_associate","application_type":"web","client_id":"mine"}`)
		if resp.StatusCode != 400 || body != `{"error": "Only set client_id for update."}` {
			t.Fatalf("mediagoblin: %d %s", resp.StatusCode, body)
		}
		for _, field := range []string{`"super":true`, `"client_id":"mine"`, `"client_secret":"mine"`, `"registered_by":"x"`} {
			resp, body = s.kvRegister("alice", `{"name":"abc","type":"CONFIDENTIAL","description":"d",`+field+`}`)
			if resp.StatusCode != 400 || !strings.HasPrefix(body, `{"errors":[[201,"Unrecognized field`) {
				t.Fatalf("kustvakt %s: %d %s", field, resp.StatusCode, body)
			}
		}
		resp, body = s.postJSON("/v1/clients", `{"client_name":"x","client_type":"public","token_endpoint_auth_method":"client_secret_post","grant_types":["authorization_code"],"response_types":["code"],"client_id":"mine","client_secret":"mine","client_id_issued_at":1}`)
		info, _ := object(t, body)["client_info"].(map[string]any)
		if resp.StatusCode != 200 || info["client_id"] == "mine" || info["client_secret"] == "mine" || info["client_id_issued_at"].(json.Number) == "1" {
			t.Fatalf("iam: %d %s", resp.StatusCode, body)
		}
	})
}

func TestPolicyRateLimit(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, authedAPIs(t, "{storage}\n\t\t\trate_limit 3 1m", "", "mediagoblin", "kustvakt", "iam"))
		type api struct {
			name string
			send func() (*http.Response, string)
			want func(status int, body string) bool
		}
		apis := []api{
			{"rfc7591", func() (*http.Response, string) { return s.postJSON("/register", mcpBody) },
				func(st int, b string) bool {
					return st == 429 && strings.HasPrefix(b, `{"error":"too_many_requests","error_description":"too many registrations from this address`)
				}},
			{"mediagoblin", func() (*http.Response, string) {
				return s.postJSON("/api/client/register", `{"type":"client_associate","application_type":"native"}`)
			}, func(st int, b string) bool {
				return st == 429 && strings.HasPrefix(b, `{"error": "Too many registrations from this address`)
			}},
			{"kustvakt", func() (*http.Response, string) {
				return s.kvRegister("alice", `{"name":"abc","type":"PUBLIC","description":"d"}`)
			}, func(st int, b string) bool {
				return st == 429 && strings.HasPrefix(b, `{"errors":[[109,"Too many registrations`)
			}},
			{"iam", func() (*http.Response, string) {
				return s.postJSON("/v1/clients", iamBody)
			}, func(st int, b string) bool { return st == 429 && strings.Contains(b, `"error_code":"IIC.429"`) }},
		}
		// Malformed requests are refused for what they are and do not use
		// up the allowance.
		bad := map[string]func() (*http.Response, string){
			"rfc7591":     func() (*http.Response, string) { return s.postJSON("/register", `{`) },
			"mediagoblin": func() (*http.Response, string) { return s.postJSON("/api/client/register", `{`) },
			"kustvakt":    func() (*http.Response, string) { return s.kvRegister("alice", `{`) },
			"iam":         func() (*http.Response, string) { return s.postJSON("/v1/clients", `{`) },
		}
		for _, a := range apis {
			for i := 0; i < 5; i++ {
				if resp, body := bad[a.name](); resp.StatusCode != 400 {
					t.Fatalf("%s malformed %d: %d %s", a.name, i, resp.StatusCode, body)
				}
			}
			for i := 0; i < 3; i++ {
				if resp, body := a.send(); resp.StatusCode >= 300 {
					t.Fatalf("%s %d: %d %s", a.name, i, resp.StatusCode, body)
				}
			}
			resp, body := a.send()
			ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			if !a.want(resp.StatusCode, body) || ra < 1 || ra > 60 {
				t.Fatalf("%s limited: %d %v %s", a.name, resp.StatusCode, resp.Header, body)
			}
		}
	})
}

// TestPolicyTrustedProxies: behind a trusted proxy the limit applies to the
// client address from X-Forwarded-For, not to the proxy's.
func TestPolicyTrustedProxies(t *testing.T) {
	port := redistest.FreePort(t)
	loadCaddyfile(t, testCaddyfile(`admin off
servers {
	trusted_proxies static 127.0.0.1/32
	client_ip_headers X-Forwarded-For
}`, port, fmt.Sprintf(`	client_registration {
		storage redis {
			address %s
			key_prefix tp%d:
		}
		rate_limit 2 1m
	}`, sharedRedis.Addr, prefixSeq.Add(1))))
	s := &site{t: t, URL: "http://127.0.0.1:" + strconv.Itoa(port)}
	for _, ip := range []string{"203.0.113.1", "203.0.113.2"} {
		for i := 0; i < 2; i++ {
			if resp, _ := s.postJSON("/register", mcpBody, "X-Forwarded-For: "+ip); resp.StatusCode != 201 {
				t.Fatalf("%s #%d: %d", ip, i, resp.StatusCode)
			}
		}
		if resp, _ := s.postJSON("/register", mcpBody, "X-Forwarded-For: "+ip); resp.StatusCode != 429 {
			t.Fatalf("%s third: %d", ip, resp.StatusCode)
		}
	}
}

func TestPolicyMaxClientsConcurrent(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, `	client_registration {
		{storage}
		max_clients 10
	}`)
		var created, limited atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 100; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("POST", s.URL+"/register", strings.NewReader(mcpBody))
				req.Header.Set("Content-Type", "application/json")
				resp, err := httpClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case 201:
					created.Add(1)
				case 429:
					limited.Add(1)
				default:
					t.Errorf("status %d", resp.StatusCode)
				}
			}()
		}
		wg.Wait()
		if created.Load() != 10 || limited.Load() != 90 {
			t.Fatalf("created %d, limited %d", created.Load(), limited.Load())
		}
	})
}

// TestPolicyCapRetryAfter: a cap's 429 says to come back in an hour, or
// when clients live shorter than that, after their lifetime, by which time
// places have freed up.
func TestPolicyCapRetryAfter(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		for _, c := range []struct{ lifetimes, want string }{
			{"", "3600"},
			{"client_lifetime 2m", "120"},
			{"client_lifetime 2m\n\t\tidle_lifetime 90s", "90"},
		} {
			s := startCaddy(t, backend, `	client_registration {
		{storage}
		max_clients 1
		`+c.lifetimes+`
	}`)
			if resp, body := s.postJSON("/register", mcpBody); resp.StatusCode != 201 {
				t.Fatalf("%q: first: %d %s", c.lifetimes, resp.StatusCode, body)
			}
			resp, body := s.postJSON("/register", mcpBody)
			if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != c.want {
				t.Errorf("%q: over the cap: %d, Retry-After %q (want %s) %s", c.lifetimes, resp.StatusCode, resp.Header.Get("Retry-After"), c.want, body)
			}
		}
	})
}

var (
	caddyBinOnce sync.Once
	caddyBin     string
	caddyBinErr  error
)

// builtCaddy builds cmd/caddy once per test run, under dataRoot, which
// TestMain removes (a 90 MB binary per run must not pile up in /tmp).
func builtCaddy(t *testing.T) string {
	t.Helper()
	caddyBinOnce.Do(func() {
		dir, err := os.MkdirTemp(dataRoot, "bin")
		if err != nil {
			caddyBinErr = err
			return
		}
		caddyBin = filepath.Join(dir, "caddy")
		out, err := exec.Command("go", "build", "-o", caddyBin, "./cmd/caddy").CombinedOutput()
		if err != nil {
			caddyBinErr = fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
		}
	})
	if caddyBinErr != nil {
		t.Fatal(caddyBinErr)
	}
	return caddyBin
}

// TestPolicyTwoInstances: two Caddy processes on one Redis share the rate
// limit and the caps.
func TestPolicyTwoInstances(t *testing.T) {
	bin := builtCaddy(t)
	prefix := fmt.Sprintf("two%d:", prefixSeq.Add(1))
	block := fmt.Sprintf(`client_registration {
		storage redis {
			address %s
			key_prefix %s
		}
		rate_limit 5 1m
		max_clients 8
	}`, sharedRedis.Addr, prefix)
	// Instance A: a separate process.
	portA := redistest.FreePort(t)
	dir := t.TempDir()
	cfgA := filepath.Join(dir, "Caddyfile")
	os.WriteFile(cfgA, []byte(fmt.Sprintf("{\n\tadmin off\n\tpersist_config off\n\tauto_https off\n}\n\nhttp://127.0.0.1:%d {\n\t%s\n}\n", portA, block)), 0o600)
	cmd := exec.Command(bin, "run", "--config", cfgA, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	a := &site{t: t, URL: "http://127.0.0.1:" + strconv.Itoa(portA)}
	redistest.WaitFor(t, 20*time.Second, "caddy process", func(context.Context) bool {
		resp, err := httpClient.Get(a.URL + "/.well-known/oauth-authorization-server")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	// Instance B: in this process.
	b := startCaddy(t, "redis", "\t"+block)
	statuses := func(s *site, n int) []int {
		var out []int
		for i := 0; i < n; i++ {
			resp, _ := s.postJSON("/register", mcpBody)
			out = append(out, resp.StatusCode)
		}
		return out
	}
	got := fmt.Sprint(statuses(a, 3), statuses(b, 3))
	if got != "[201 201 201] [201 201 429]" {
		t.Fatalf("shared rate limit: %s", got)
	}
	// The cap: 5 created so far; 3 more fit, whoever asks.
	rdb := redis.NewClient(&redis.Options{Addr: sharedRedis.Addr})
	defer rdb.Close()
	rdb.Del(context.Background(), prefix+"h:{reg:rfc7591:60000:127.0.0.1}")
	got = fmt.Sprint(statuses(a, 2), statuses(b, 2))
	if got != "[201 201] [201 429]" {
		t.Fatalf("shared cap: %s", got)
	}
}

func TestPolicyLifetimes(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, `	route {
		client_registration {
			{storage}
			client_lifetime 1s
		}
		client_registration mediagoblin {
			{storage}
			client_lifetime 1s
		}
		client_registration kustvakt {
			{storage}
			super_client superclient s3cret
			registration open
			client_lifetime 1s
		}
	}`)
		resp, body := s.postJSON("/register", `{"redirect_uris":["https://app.example/cb"]}`)
		reg := object(t, body)
		if resp.StatusCode != 201 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		tok := "Authorization: Bearer " + reg["registration_access_token"].(string)
		uri := strings.TrimPrefix(reg["registration_client_uri"].(string), s.URL)
		_, body = s.postJSON("/api/client/register", `{"type":"client_associate","application_type":"web"}`)
		mg := object(t, body)
		_, body = s.postJSON("/api/v1.0/oauth2/client/register", `{"name":"abc","type":"CONFIDENTIAL","description":"d"}`)
		kv := object(t, body)
		if resp, _ := s.do("GET", uri, "", tok); resp.StatusCode != 200 {
			t.Fatalf("before expiry: %d", resp.StatusCode)
		}
		// The secret expires with the client.
		_, body = s.do("GET", uri, "", tok)
		if exp, _ := object(t, body)["client_secret_expires_at"].(json.Number).Int64(); exp == 0 || exp > time.Now().Unix()+2 {
			t.Fatalf("client_secret_expires_at %d", exp)
		}
		time.Sleep(1200 * time.Millisecond)
		if resp, _ := s.do("GET", uri, "", tok); resp.StatusCode != 401 {
			t.Fatalf("after expiry: %d", resp.StatusCode)
		}
		upd := fmt.Sprintf(`{"type":"client_update","client_id":%q,"client_secret":%q,"application_type":"web"}`, mg["client_id"], mg["client_secret"])
		if resp, body := s.postJSON("/api/client/register", upd); resp.StatusCode != 403 {
			t.Fatalf("mediagoblin after expiry: %d %s", resp.StatusCode, body)
		}
		resp, body = s.kvForm("/api/v1.0/oauth2/client/"+kv["client_id"].(string), "", superForm())
		checkOAuthError(t, resp, body, 401, "invalid_client", "Unknown client: "+kv["client_id"].(string))
	})
	t.Run("idle", func(t *testing.T) {
		s := startCaddy(t, "redis", `	client_registration {
		{storage}
		idle_lifetime 1s
	}`)
		_, body := s.postJSON("/register", mcpBody)
		reg := object(t, body)
		tok := "Authorization: Bearer " + reg["registration_access_token"].(string)
		uri := strings.TrimPrefix(reg["registration_client_uri"].(string), s.URL)
		for i := 0; i < 4; i++ { // 4 x 0.6s = 2.4s alive because it is used
			time.Sleep(600 * time.Millisecond)
			if resp, _ := s.do("GET", uri, "", tok); resp.StatusCode != 200 {
				t.Fatalf("use %d: %d", i, resp.StatusCode)
			}
		}
		time.Sleep(1200 * time.Millisecond)
		if resp, _ := s.do("GET", uri, "", tok); resp.StatusCode != 401 {
			t.Fatalf("idle: %d", resp.StatusCode)
		}
	})
}

func TestPolicyCORS(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, `	route {
		client_registration {
			{storage}
			cors https://app.example
		}
		client_registration mediagoblin {
			{storage}
			cors https://app.example
		}
		client_registration iam {
			{storage}
			cors https://app.example
		}
		client_registration kustvakt {
			{storage}
			cors https://app.example
		}
	}`)
		resp, _ := s.do("OPTIONS", "/register", "", "Origin: https://app.example", "Access-Control-Request-Method: POST",
			"Access-Control-Request-Headers: content-type")
		h := resp.Header
		if resp.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != "https://app.example" ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") || !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Content-Type") {
			t.Fatalf("preflight: %d %v", resp.StatusCode, h)
		}
		// A plain OPTIONS gets the preflight's Allow, not a 405 without OPTIONS.
		for _, p := range []string{"/register", "/register/abc", "/.well-known/oauth-authorization-server", "/v1/clients"} {
			plain, _ := s.do("OPTIONS", p, "")
			// The registration routes' answers are never cached, CORS
			// ones included; the metadata is public and may be.
			if noStore := plain.Header.Get("Cache-Control") == "no-store" && plain.Header.Get("Pragma") == "no-cache"; noStore == strings.HasPrefix(p, "/.well-known") {
				t.Errorf("OPTIONS %s: Cache-Control %q Pragma %q", p, plain.Header.Get("Cache-Control"), plain.Header.Get("Pragma"))
			}
			if pre, _ := s.do("OPTIONS", p, "", "Origin: https://app.example", "Access-Control-Request-Method: GET"); plain.StatusCode != 204 ||
				plain.Header.Get("Allow") != pre.Header.Get("Allow") || !strings.Contains(plain.Header.Get("Allow"), "OPTIONS") {
				t.Errorf("OPTIONS %s: %d Allow %q, preflight Allow %q", p, plain.StatusCode, plain.Header.Get("Allow"), pre.Header.Get("Allow"))
			}
		}
		// A 405 lists every method the route takes, OPTIONS included
		// (RFC 9110 section 15.5.6), as OPTIONS itself does.
		for _, tc := range []struct{ method, path, allow string }{
			{"GET", "/register", "POST, OPTIONS"},
			{"POST", "/register/abc", "GET, HEAD, PUT, DELETE, OPTIONS"},
			{"POST", "/.well-known/oauth-authorization-server", "GET, HEAD, OPTIONS"},
			{"GET", "/v1/clients", "POST, OPTIONS"},
			{"GET", "/api/v1.0/oauth2/client/register", "POST, OPTIONS"},
		} {
			resp, _ := s.do(tc.method, tc.path, "")
			plain, _ := s.do("OPTIONS", tc.path, "")
			if resp.StatusCode != 405 || resp.Header.Get("Allow") != tc.allow || plain.Header.Get("Allow") != tc.allow {
				t.Errorf("%s %s: %d Allow %q (OPTIONS: Allow %q); want 405 Allow %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), plain.Header.Get("Allow"), tc.allow)
			}
		}
		// A listed origin's page may send the browser's credentials, and
		// read the answer; Allow is readable too (a 405's).
		if h.Get("Access-Control-Allow-Credentials") != "true" {
			t.Fatalf("preflight without credentials allowed: %v", h)
		}
		resp, _ = s.postJSON("/register", mcpBody, "Origin: https://app.example")
		if resp.StatusCode != 201 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
			resp.Header.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "Allow") {
			t.Fatalf("post: %d %v", resp.StatusCode, resp.Header)
		}
		resp, _ = s.postJSON("/register", mcpBody, "Origin: https://evil.example")
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("other origin allowed: %v", resp.Header)
		}
		resp, _ = s.do("GET", "/.well-known/oauth-authorization-server", "", "Origin: https://app.example")
		if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
			t.Fatalf("metadata: %v", resp.Header)
		}
		// MediaGoblin keeps its fixed headers.
		resp, _ = s.postJSON("/api/client/register", `{"type":"client_associate","application_type":"web"}`, "Origin: https://app.example")
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Fatalf("mediagoblin: %v", resp.Header)
		}
	})
}

// TestPolicyDefaults: without any policy option, registration is limited
// (60 per hour per address) and capped.
func TestPolicyDefaults(t *testing.T) {
	s := startCaddy(t, "redis", `	client_registration {
		{storage}
		# rate_limit: the default
	}`)
	for i := 0; i < 60; i++ {
		if resp, body := s.postJSON("/register", mcpBody); resp.StatusCode != 201 {
			t.Fatalf("#%d: %d %s", i, resp.StatusCode, body)
		}
	}
	resp, _ := s.postJSON("/register", mcpBody)
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); resp.StatusCode != 429 || ra < 3500 {
		t.Fatalf("61st: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestPolicyUserPlaceholder: the user can come from another placeholder,
// such as a header that forward_auth copies from the auth service.
func TestPolicyUserPlaceholder(t *testing.T) {
	s, admin := startCaddyAdmin(t, "redis", `	client_registration {
		{storage}
		registration user
		user {http.request.header.X-Remote-User}
	}`)
	if resp, _ := s.postJSON("/register", mcpBody); resp.StatusCode != 401 {
		t.Fatalf("no user: %d", resp.StatusCode)
	}
	resp, body := s.postJSON("/register", mcpBody, "X-Remote-User: carol")
	if resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if _, c := s.adminJSON(admin, "GET", "/client_registration/clients/"+object(t, body)["client_id"].(string), ""); c["owner"] != "carol" {
		t.Fatalf("owner %v", c)
	}
}

// TestForwardAuthRecipe: the README's forward_auth recipe. The user comes
// from the header the auth service answers with, never from the client's
// own copy; RFC 7592 management (registration access token) and the
// metadata stay reachable without the auth service's session.
func TestForwardAuthRecipe(t *testing.T) {
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer carol-session" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, "auth service says no")
			return
		}
		w.Header().Set("Remote-User", "carol")
	}))
	defer auth.Close()
	// The README's client-id header, kept to the plugin's own successes:
	// the auth service's 401 never went through the plugin, and would
	// carry the placeholder's text.
	s, admin := startCaddyAdmin(t, "redis", `	header /register* {
		>X-Client-Id {http.client_registration.client_id}
		match {
			status 2xx
		}
	}
	forward_auth /register `+strings.TrimPrefix(auth.URL, "http://")+` {
		uri /verify
		copy_headers Remote-User
	}
	client_registration {
		{storage}
		registration user
		user {http.request.header.Remote-User}
	}`)
	for _, headers := range [][]string{nil, {"Remote-User: mallory"}, {"Remote-User: mallory", "Authorization: Bearer wrong"}} {
		if resp, body := s.postJSON("/register", mcpBody, headers...); resp.StatusCode != 401 || body != "auth service says no" || resp.Header.Values("X-Client-Id") != nil {
			t.Fatalf("registration with %q: %d %q %s", headers, resp.StatusCode, resp.Header.Values("X-Client-Id"), body)
		}
	}
	resp, body := s.postJSON("/register", mcpBody, "Authorization: Bearer carol-session", "Remote-User: mallory")
	if resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	c := object(t, body)
	id, rat := c["client_id"].(string), c["registration_access_token"].(string)
	if got := resp.Header.Get("X-Client-Id"); got != id {
		t.Errorf("X-Client-Id %q, want %q", got, id)
	}
	if _, c := s.adminJSON(admin, "GET", "/client_registration/clients/"+id, ""); c["owner"] != "carol" {
		t.Fatalf("owner %v", c)
	}
	if resp, body := s.do("GET", "/register/"+id, "", "Authorization: Bearer "+rat); resp.StatusCode != 200 {
		t.Errorf("RFC 7592 read: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.do("GET", "/.well-known/oauth-authorization-server", ""); resp.StatusCode != 200 {
		t.Errorf("metadata: %d %s", resp.StatusCode, body)
	}
}

// TestPolicyUserTemplate: a user template with text around its
// placeholder names nobody when the placeholder is empty: an anonymous
// request is refused, not registered as the user "kv:".
func TestPolicyUserTemplate(t *testing.T) {
	s, admin := startCaddyAdmin(t, "embedded", `	client_registration {
		{storage}
		registration user
		user kv:{http.request.header.X-Remote-User}
	}`)
	if resp, body := s.postJSON("/register", mcpBody); resp.StatusCode != 401 {
		t.Fatalf("no user: %d %s", resp.StatusCode, body)
	}
	resp, body := s.postJSON("/register", mcpBody, "X-Remote-User: carol")
	if resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if _, c := s.adminJSON(admin, "GET", "/client_registration/clients/"+object(t, body)["client_id"].(string), ""); c["owner"] != "kv:carol" {
		t.Fatalf("owner %v", c)
	}
}

// TestPolicyReservedUser: the owners of clients registered with initial
// access tokens are named "token:…", so a user of such a name (an
// identity provider behind forward_auth may allow ":") is no user at all:
// it neither registers as one nor deregisters a token's clients through
// Kustvakt.
func TestPolicyReservedUser(t *testing.T) {
	s, admin := startCaddyAdmin(t, "redis", `	client_registration {
		{storage}
		registration token
		initial_access_token reserved-user-test-token
	}
	client_registration /user/* {
		{storage}
		prefix /user
		registration user
		user {http.request.header.X-Remote-User}
	}
	client_registration kustvakt {
		{storage}
		user {http.request.header.X-Remote-User}
	}`)
	resp, body := s.postJSON("/register", mcpBody, "Authorization: Bearer reserved-user-test-token")
	if resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	id := object(t, body)["client_id"].(string)
	_, c := s.adminJSON(admin, "GET", "/client_registration/clients/"+id, "")
	owner, _ := c["owner"].(string)
	if !strings.HasPrefix(owner, "token:static-") {
		t.Fatalf("owner %v", c)
	}
	if resp, body := s.do("DELETE", "/api/v1.0/oauth2/client/deregister/"+id, "", "X-Remote-User: "+owner); resp.StatusCode == 200 {
		t.Fatalf("deregistered by the user %q: %s", owner, body)
	}
	if status, c := s.adminJSON(admin, "GET", "/client_registration/clients/"+id, ""); status != 200 {
		t.Fatalf("client gone: %d %v", status, c)
	}
	if resp, body := s.postJSON("/user/register", mcpBody, "X-Remote-User: token:mine"); resp.StatusCode != 401 {
		t.Fatalf("registered as the user token:mine: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.postJSON("/user/register", mcpBody, "X-Remote-User: tokenmine"); resp.StatusCode != 201 {
		t.Fatalf("tokenmine: %d %s", resp.StatusCode, body)
	}
}

// TestPolicyUserCrossSiteMediaGoblin: with registration user, a MediaGoblin
// form another site's page makes a browser post (with the credentials it
// keeps for this site) would register a client as that user; such a
// request is refused. The same request from the site itself, or from a
// client that is not a browser, registers.
func TestPolicyUserCrossSiteMediaGoblin(t *testing.T) {
	s, admin := startCaddyAdmin(t, "embedded", `	client_registration mediagoblin {
		{storage}
		registration user
		user {http.request.header.X-Remote-User}
		cors https://app.example
	}`)
	form := "type=client_associate&application_type=web&application_name=Evil&redirect_uris=https://evil.example/cb"
	post := func(headers ...string) (*http.Response, string) {
		t.Helper()
		return s.do(http.MethodPost, "/api/client/register", form, append([]string{"Content-Type: application/x-www-form-urlencoded", "X-Remote-User: alice"}, headers...)...)
	}
	for _, h := range [][]string{
		{"Origin: https://evil.example", "Sec-Fetch-Site: cross-site"},
		{"Origin: https://evil.example"},
	} {
		if resp, body := post(h...); resp.StatusCode != 403 || body != `{"error": "Cross-site requests are refused."}` ||
			resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Allow-Credentials") != "" ||
			!slices.Contains(resp.Header.Values("Vary"), "Origin") {
			t.Fatalf("%v: %d %v %s", h, resp.StatusCode, resp.Header, body)
		}
	}
	for _, h := range [][]string{nil, {"Origin: " + s.URL, "Sec-Fetch-Site: same-origin"}} {
		if resp, body := post(h...); resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("%v: %d %v %s", h, resp.StatusCode, resp.Header, body)
		}
	}
	// The page listed under cors gets past the refusal, and can read the
	// answer to a request sent with the browser's credentials: its own
	// origin with credentials allowed, not "*" (which browsers refuse
	// for those: the client would be registered, its secret unread).
	for _, want := range []int{200, 400} {
		f := form
		if want == 400 {
			f = "type=client_associate"
		}
		resp, body := s.do(http.MethodPost, "/api/client/register", f, "Content-Type: application/x-www-form-urlencoded", "X-Remote-User: alice",
			"Origin: https://app.example", "Sec-Fetch-Site: cross-site")
		if h := resp.Header; resp.StatusCode != want || h.Get("Access-Control-Allow-Origin") != "https://app.example" ||
			h.Get("Access-Control-Allow-Credentials") != "true" || !slices.Contains(h.Values("Vary"), "Origin") {
			t.Fatalf("listed page: %d %v %s", resp.StatusCode, h, body)
		}
	}
	resp, body := s.adminRaw(admin, "GET", "/client_registration/clients?owner=alice")
	var views []map[string]any
	if err := json.Unmarshal([]byte(body), &views); resp.StatusCode != 200 || err != nil || len(views) != 3 {
		t.Fatalf("alice's clients: %d %s", resp.StatusCode, body)
	}
}
