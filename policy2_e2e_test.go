package caddydcr

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-dcr/caddy-dcr/internal/redistest"
)

// More registration policy checks (issue 4), API by API.

// TestPolicyClientIPFallback: without the address Caddy determined, the
// rate limit keys on the peer's address, not on address and port (one
// counter per connection would be no limit).
func TestPolicyClientIPFallback(t *testing.T) {
	r := httptest.NewRequest("POST", "/register", nil)
	r.RemoteAddr = "192.0.2.7:40123"
	if got := clientIP(r); got != "192.0.2.7" {
		t.Fatalf("clientIP %q", got)
	}
	r.RemoteAddr = "[2001:db8::1]:443"
	if got := clientIP(r); got != "2001:db8::1" {
		t.Fatalf("clientIP %q", got)
	}
}

// TestPolicyValidateStatements: require_software_statement on an API that
// cannot receive statements would be ignored, leaving registration open;
// a repeated issuer would have its second keys ignored.
func TestPolicyValidateStatements(t *testing.T) {
	ss := &SoftwareStatementConfig{Issuers: []StatementIssuerConfig{{Issuer: "https://i.example", Secret: strings.Repeat("s", 32)}}}
	for _, api := range []string{"mediagoblin", "kustvakt", "iam"} {
		h := &Handler{API: api, SoftwareStatement: ss, RequireSoftwareStatement: true}
		if err := h.Validate(); err == nil || !strings.Contains(err.Error(), "require_software_statement") {
			t.Errorf("%s: %v", api, err)
		}
	}
	if err := (&Handler{SoftwareStatement: ss, RequireSoftwareStatement: true}).Validate(); err != nil {
		t.Errorf("rfc7591: %v", err)
	}
	twice := &SoftwareStatementConfig{Issuers: append(ss.Issuers, StatementIssuerConfig{Issuer: "https://i.example", Secret: strings.Repeat("t", 32)})}
	if err := (&Handler{SoftwareStatement: twice}).Validate(); err == nil {
		t.Error("an issuer listed twice was accepted")
	}
	// An HS256 secret shorter than the hash could never verify a statement.
	short := &SoftwareStatementConfig{Issuers: []StatementIssuerConfig{{Issuer: "https://i.example", Secret: "topsecret"}}}
	if err := (&Handler{SoftwareStatement: short}).Validate(); err == nil || !strings.Contains(err.Error(), "at least 32 bytes") || strings.Contains(err.Error(), "topsecret") {
		t.Errorf("short HS256 secret: %v", err)
	}
}

// TestPolicyCORSEveryAPI: preflights on the registration and management
// routes of each API (MediaGoblin keeps its fixed headers) allow the
// headers browser MCP clients ask for.
func TestPolicyCORSEveryAPI(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		h := basicHash(t)
		s := startCaddy(t, backend, fmt.Sprintf(`	@authed header Authorization Basic*
	basic_auth @authed {
		alice %s
	}
	route {
		client_registration {
			{storage}
			cors https://app.example
		}
		client_registration kustvakt {
			{storage}
			cors https://app.example
		}
		client_registration iam {
			{storage}
			cors *
		}
	}`, h))
		routes := map[string]string{
			"/register": "POST", "/register/abc": "GET", "/.well-known/oauth-authorization-server": "GET",
			"/api/v1.0/oauth2/client/register": "POST", "/api/v1.0/oauth2/client/deregister/abc": "DELETE",
			"/v1/clients": "POST",
		}
		for path, method := range routes {
			resp, _ := s.do("OPTIONS", path, "", "Origin: https://app.example", "Access-Control-Request-Method: "+method,
				"Access-Control-Request-Headers: authorization, content-type, mcp-protocol-version")
			h := resp.Header
			if resp.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != "https://app.example" ||
				!strings.Contains(h.Get("Access-Control-Allow-Methods"), method) ||
				!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "mcp-protocol-version") {
				t.Errorf("%s: %d %v", path, resp.StatusCode, h)
			}
		}
		resp, _ := s.postJSON("/v1/clients", `{}`, "Origin: https://app.example")
		// "*" lets any page in, never with the browser's credentials.
		if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "X-Request-Id") ||
			resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("iam error: %v", resp.Header)
		}
	})
}

// TestPolicyOneUseTokenEveryAPI: one run-time token with one use, spent
// concurrently through several APIs, registers exactly one client; used
// up and expired tokens get the Bearer challenge in each API's format.
func TestPolicyOneUseTokenEveryAPI(t *testing.T) {
	const mgBody = `{"type":"client_associate","application_type":"native"}`
	forBackends(t, func(t *testing.T, backend string) {
		s, admin := startCaddyAdmin(t, backend, `	route {
		client_registration {
			{storage}
			registration token
		}
		client_registration mediagoblin {
			{storage}
			registration token
		}
		client_registration iam {
			{storage}
			registration token
		}
	}`)
		reqs := []struct{ path, body string }{{"/register", mcpBody}, {"/api/client/register", mgBody}, {"/v1/clients", iamBody}}
		for round := 0; round < 3; round++ {
			_, tok := s.adminJSON(admin, "POST", "/client_registration/initial_access_tokens", `{"uses":1}`)
			var created atomic.Int32
			var wg sync.WaitGroup
			for i := 0; i < 24; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					q := reqs[i%len(reqs)]
					req, _ := http.NewRequest("POST", s.URL+q.path, strings.NewReader(q.body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer "+tok["token"].(string))
					resp, err := httpClient.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					resp.Body.Close()
					switch {
					case resp.StatusCode < 300:
						created.Add(1)
					case resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token"`:
						t.Errorf("%s: %d %v", q.path, resp.StatusCode, resp.Header)
					}
				}()
			}
			wg.Wait()
			if created.Load() != 1 {
				t.Fatalf("round %d: %d clients with a one-use token", round, created.Load())
			}
		}
		_, tok := s.adminJSON(admin, "POST", "/client_registration/initial_access_tokens", `{"expires_in":"1s","uses":3}`)
		time.Sleep(1100 * time.Millisecond)
		want := map[string]string{
			"/register":            `{"error":"invalid_token","error_description":"the initial access token is invalid, expired or used up"}`,
			"/api/client/register": `{"error": "The initial access token is invalid, expired or used up."}`,
			"/v1/clients":          `"error_code":"IIC.401","error_msg":"Unauthorized: the initial access token is invalid, expired or used up."`,
		}
		for _, q := range reqs {
			resp, body := s.postJSON(q.path, q.body, "Authorization: Bearer "+tok["token"].(string))
			if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` || !strings.Contains(body, want[q.path]) {
				t.Errorf("expired token on %s: %d %v %s", q.path, resp.StatusCode, resp.Header, body)
			}
		}
	})
}

// TestPolicyStatementJSONSerialization: a statement must be a JWT, in the
// compact serialization; the JSON serialization of a valid signature is
// invalid_software_statement.
func TestPolicyStatementJSONSerialization(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	file := writePEMKey(t, t.TempDir(), "ec.pem", &key.PublicKey)
	sg := signer{jose.ES256, key}
	stmt := sg.sign(t, map[string]any{"iss": "https://issuer.example", "client_name": "S", "exp": time.Now().Unix() + 600})
	jws, err := jose.ParseSignedCompact(stmt, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	s := startCaddy(t, "embedded", fmt.Sprintf(`	client_registration {
		{storage}
		software_statement {
			issuer https://issuer.example {
				key %s
			}
		}
	}`, filepath.ToSlash(file)))
	body := fmt.Sprintf(`{"software_statement":%q,"redirect_uris":["https://a.example/cb"]}`, jws.FullSerialize())
	resp, b := s.postJSON("/register", body)
	if resp.StatusCode != 400 || object(t, b)["error"] != "invalid_software_statement" {
		t.Fatalf("JSON serialization: %d %s", resp.StatusCode, b)
	}
	body = fmt.Sprintf(`{"software_statement":%q,"redirect_uris":["https://a.example/cb"]}`, stmt)
	if resp, b := s.postJSON("/register", body); resp.StatusCode != 201 || object(t, b)["software_statement"] != stmt {
		t.Fatalf("compact: %d %s", resp.StatusCode, b)
	}
}

// TestPolicyUnlimitedTokenCountsUses: a token without a use limit still
// reports how many registrations it made (the admin API's "used").
func TestPolicyUnlimitedTokenCountsUses(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s, admin := startCaddyAdmin(t, backend, `	client_registration {
		{storage}
		registration token
	}`)
		_, tok := s.adminJSON(admin, "POST", "/client_registration/initial_access_tokens", `{"name":"unlimited"}`)
		for i := 0; i < 2; i++ {
			if resp, body := s.postJSON("/register", mcpBody, "Authorization: Bearer "+tok["token"].(string)); resp.StatusCode != 201 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
		}
		// An invalid registration is not counted.
		s.postJSON("/register", `{"redirect_uris":["javascript:x"]}`, "Authorization: Bearer "+tok["token"].(string))
		resp, err := httpClient.Get(admin + "/client_registration/initial_access_tokens")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var list []map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&list)
		if len(list) != 1 || list[0]["used"].(float64) != 2 || list[0]["uses"] != nil {
			t.Fatalf("list: %v", list)
		}
	})
}

// TestPolicyKustvaktTokenMode: Kustvakt with `registration token` answers a
// missing or wrong initial access token with RFC 7591's Bearer challenge
// first, then its own, in its notification format; a good token registers.
func TestPolicyKustvaktTokenMode(t *testing.T) {
	const body = `{"name":"abc","type":"PUBLIC","description":"d"}`
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, authedAPIs(t, "{storage}\n\t\t\tregistration token\n\t\t\tinitial_access_token s3cret-token", "kustvakt"))
		for _, c := range []struct{ auth, want string }{
			{"", `{"errors":[[2010,"Unauthorized operation for user: guest","guest"]]}`},
			// Signed in, but without the token: refused by name.
			{basicAuth("alice"), `{"errors":[[2010,"Unauthorized operation for user: alice","alice"]]}`},
			{"Authorization: Bearer wrong", `{"errors":[[2011,"Access token is invalid","invalid_token"]]}`},
		} {
			var headers []string
			if c.auth != "" {
				headers = append(headers, c.auth)
			}
			resp, got := s.postJSON("/api/v1.0/oauth2/client/register", body, headers...)
			if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` ||
				strings.TrimSpace(got) != c.want {
				t.Errorf("%q: %d %v %s", c.auth, resp.StatusCode, resp.Header, got)
			}
		}
		resp, got := s.postJSON("/api/v1.0/oauth2/client/register", body, "Authorization: Bearer s3cret-token")
		if resp.StatusCode != 200 || !strings.Contains(got, `"client_id"`) {
			t.Errorf("good token: %d %s", resp.StatusCode, got)
		}
	})
}

// TestPolicyAllowedListsOnClonedAPIs: the cloned APIs fix the grant types
// and authentication method of what they register; an operator's allowed_*
// lists still apply, each refusal in the API's own format.
func TestPolicyAllowedListsOnClonedAPIs(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, authedAPIs(t, "{storage}\n\t\t\tallowed_auth_methods none", "mediagoblin", "kustvakt", "iam"))
		resp, body := s.postJSON("/api/client/register", `{"type":"client_associate","application_type":"web"}`)
		if resp.StatusCode != 400 || body != `{"error": "Token endpoint authentication method client_secret_basic is not allowed here."}` {
			t.Errorf("mediagoblin: %d %s", resp.StatusCode, body)
		}
		resp, body = s.kvRegister("alice", `{"name":"abc","type":"CONFIDENTIAL","description":"d","url":"https://example.com"}`)
		if resp.StatusCode != 400 || !strings.Contains(body, `Token endpoint authentication method client_secret_basic is not allowed here.`) {
			t.Errorf("kustvakt confidential: %d %s", resp.StatusCode, body)
		}
		if resp, body := s.kvRegister("alice", `{"name":"abc","type":"PUBLIC","description":"d"}`); resp.StatusCode != 200 {
			t.Errorf("kustvakt public: %d %s", resp.StatusCode, body)
		}
		resp, body = s.postJSON("/v1/clients", iamBody)
		if resp.StatusCode != 400 || !strings.Contains(body, `"error_msg":"Bad Request: token_endpoint_auth_method client_secret_post is not allowed here."`) {
			t.Errorf("iam: %d %s", resp.StatusCode, body)
		}
	})
}

// TestAdminStoresWithOnePrefix: two Redis deployments with the same key
// prefix are two stores to the admin API; the bare prefix is ambiguous and
// prefix@address picks one.
func TestAdminStoresWithOnePrefix(t *testing.T) {
	other := redistest.Start(t)
	s, admin := startCaddyAdmin(t, "redis", fmt.Sprintf(`	route {
		client_registration {
			storage redis {
				address %s
				key_prefix same:
			}
			registration token
		}
		client_registration iam {
			storage redis {
				address %s
				key_prefix same:
			}
			registration token
		}
		# The same data as the IAM handler's, through a connection of its
		# own (another timeout, a URL with a password): one store.
		client_registration mediagoblin {
			storage redis {
				address redis://:hunter2@%[2]s
				key_prefix same:
				timeout 3s
			}
			registration token
		}
	}`, sharedRedis.Addr, other.Addr))
	status, body := s.adminJSON(admin, "POST", "/client_registration/initial_access_tokens?store=same:", `{"uses":1}`)
	if status != 400 || !strings.Contains(fmt.Sprint(body), "several stores are named") {
		t.Fatalf("bare prefix: %d %v", status, body)
	}
	if strings.Contains(fmt.Sprint(body), "hunter2") || strings.Count(fmt.Sprint(body), "same:@") != 2 {
		t.Errorf("store names: %v, want the two deployments, without the password", body)
	}
	// An unknown route is a 404, however many stores there are.
	if status, body := s.adminJSON(admin, "GET", "/client_registration/nope", ""); status != 404 || !strings.Contains(fmt.Sprint(body), "unknown client_registration admin route") {
		t.Errorf("unknown route: %d %v", status, body)
	}
	status, tok := s.adminJSON(admin, "POST", "/client_registration/initial_access_tokens?store=same:@"+other.Addr, `{"uses":1}`)
	if status != 201 && status != 200 {
		t.Fatalf("prefix@address: %d %v", status, tok)
	}
	// The token lives in the second deployment: the IAM handler takes it,
	// the RFC 7591 one (first deployment) does not know it.
	resp, got := s.postJSON("/register", mcpBody, "Authorization: Bearer "+tok["token"].(string))
	if resp.StatusCode != 401 {
		t.Errorf("token of the other deployment on /register: %d %s", resp.StatusCode, got)
	}
	resp, got = s.postJSON("/v1/clients", iamBody,
		"Authorization: Bearer "+tok["token"].(string))
	if resp.StatusCode != 200 {
		t.Errorf("token on its own deployment: %d %s", resp.StatusCode, got)
	}
}

// TestAdminClients: an operator reads a client and changes its flags
// through the admin API; mistakes in the request are refused, not ignored.
func TestAdminClients(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s, admin := startCaddyAdmin(t, backend, `	client_registration {
		{storage}
	}`)
		conf := rfcRegister(t, s, `{"redirect_uris":["https://a.example/cb"]}`)
		pub := rfcRegister(t, s, mcpBody)
		path := "/client_registration/clients/"
		status, c := s.adminJSON(admin, "GET", path+conf.ID, "")
		if status != 200 || c["client_id"] != conf.ID || c["api"] != "rfc7591" || c["super"] != false || c["permitted"] != true {
			t.Fatalf("GET: %d %v", status, c)
		}
		if status, c = s.adminJSON(admin, "PATCH", path+conf.ID, `{"super":true,"permitted":false}`); status != 200 || c["super"] != true || c["permitted"] != false {
			t.Fatalf("PATCH: %d %v", status, c)
		}
		if _, c = s.adminJSON(admin, "GET", path+conf.ID, ""); c["super"] != true || c["permitted"] != false {
			t.Fatalf("PATCH not stored: %v", c)
		}
		for _, tc := range []struct {
			method, id, body string
			status           int
		}{
			{"PATCH", conf.ID, `{"permited":true}`, 400},
			{"PATCH", conf.ID, `{"super":"yes"}`, 400},
			{"PATCH", conf.ID, `{`, 400},
			{"PATCH", conf.ID, `{"super":true}}`, 400},
			{"PATCH", conf.ID, `{}`, 400},
			{"PATCH", conf.ID, `null`, 400},
			{"GET", conf.ID + "?store=a&store=b", ``, 400},
			{"PATCH", conf.ID, `{"super":true,"x":"` + strings.Repeat("a", 70<<10) + `"}`, 413},
			{"PATCH", pub.ID, `{"super":true}`, 400}, // public clients cannot be super
			{"PATCH", "no-such-client", `{"super":false}`, 404},
			{"GET", "no-such-client", ``, 404},
			{"DELETE", "no-such-client", ``, 404},
			{"PUT", conf.ID, ``, 405},
		} {
			if status, body := s.adminJSON(admin, tc.method, path+tc.id, tc.body); status != tc.status {
				t.Errorf("%s %s %s: %d %v, want %d", tc.method, tc.id, tc.body, status, body, tc.status)
			}
		}
		if _, c = s.adminJSON(admin, "GET", path+conf.ID, ""); c["super"] != true || c["permitted"] != false {
			t.Fatalf("refused PATCHes changed the client: %v", c)
		}
		// A 405 names the methods that work (RFC 9110 section 15.5.6).
		for _, tc := range []struct{ method, path, allow string }{
			{"PUT", path + conf.ID, "GET, HEAD, PATCH, DELETE"},
			{"POST", "/client_registration/clients", "GET, HEAD"},
			{"PUT", "/client_registration/initial_access_tokens", "GET, POST"},
			{"GET", "/client_registration/initial_access_tokens/x", "DELETE"},
		} {
			req, _ := http.NewRequest(tc.method, admin+tc.path, nil)
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 405 || resp.Header.Get("Allow") != tc.allow {
				t.Errorf("%s %s: %d, Allow %q; want 405, Allow %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), tc.allow)
			}
		}
		// Super clients are confidential: a client that gives up its secret
		// (RFC 7592 switch to "none") gives up the privilege with it.
		put := fmt.Sprintf(`{"client_id":%q,"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"none"}`, conf.ID)
		if resp, body := s.do("PUT", conf.path(t, s), put, "Content-Type: application/json", rfcBearer(conf.RAT)); resp.StatusCode != 200 {
			t.Fatalf("PUT to none: %d %s", resp.StatusCode, body)
		}
		if _, c = s.adminJSON(admin, "GET", path+conf.ID, ""); c["super"] != false {
			t.Fatalf("public client still super: %v", c)
		}

		// What an authorization server reads and checks.
		cc := rfcRegister(t, s, `{"redirect_uris":["https://a.example/cb"]}`)
		resp, body := s.adminRaw(admin, "GET", path+cc.ID+"/metadata")
		md := object(t, body)
		if resp.StatusCode != 200 || md["client_id"] != cc.ID || md["token_endpoint_auth_method"] != "client_secret_basic" ||
			md["client_secret_expires_at"] == nil || md["api"] != "rfc7591" {
			t.Errorf("metadata: %d %s", resp.StatusCode, body)
		}
		rfcWantStrs(t, md, "redirect_uris", "https://a.example/cb")
		for _, k := range []string{"client_secret", "registration_access_token", "registration_client_uri"} {
			rfcWantAbsent(t, md, k)
		}
		if resp, body := s.adminRaw(admin, "GET", path+pub.ID+"/metadata"); resp.StatusCode != 200 || strings.Contains(body, "client_secret_expires_at") {
			t.Errorf("metadata of a public client: %d %s", resp.StatusCode, body)
		}
		for _, tc := range []struct {
			id, body string
			status   int
			want     map[string]any
		}{
			{cc.ID, `{"client_secret":"` + cc.Secret + `"}`, 200, map[string]any{"valid": true}},
			{cc.ID, `{"client_secret":"` + cc.Secret + `x"}`, 200, map[string]any{"valid": false, "reason": "mismatch"}},
			{conf.ID, `{"client_secret":"` + conf.Secret + `"}`, 200, map[string]any{"valid": false, "reason": "no_secret"}}, // made public above
			{pub.ID, `{"client_secret":""}`, 200, map[string]any{"valid": false, "reason": "no_secret"}},
			{cc.ID, `{}`, 400, nil},
			{cc.ID, `{"secret":"x"}`, 400, nil},
			{"no-such-client", `{"client_secret":"x"}`, 404, nil},
		} {
			status, got := s.adminJSON(admin, "POST", path+tc.id+"/verify_secret", tc.body)
			if status != tc.status || (tc.want != nil && fmt.Sprint(got) != fmt.Sprint(tc.want)) {
				t.Errorf("verify_secret %s %s: %d %v, want %d %v", tc.id, tc.body, status, got, tc.status, tc.want)
			}
		}
		// The documented shape, "valid" first.
		if _, body := s.adminRaw(admin, "POST", path+cc.ID+"/verify_secret", `{"client_secret":"nope"}`); strings.TrimSpace(body) != `{"valid":false,"reason":"mismatch"}` {
			t.Errorf("verify_secret body %q", body)
		}
		if status, _ := s.adminJSON(admin, "GET", path+cc.ID+"/verify_secret", ""); status != 405 {
			t.Errorf("GET verify_secret: %d", status)
		}

		// The list, oldest first, by API and by owner; then a removal.
		ids := func(query string, wantStatus int) []string {
			t.Helper()
			resp, body := s.adminRaw(admin, "GET", "/client_registration/clients"+query)
			if resp.StatusCode != wantStatus {
				t.Fatalf("list%s: %d %s", query, resp.StatusCode, body)
			}
			if wantStatus != 200 {
				return nil
			}
			var views []map[string]any
			if err := json.Unmarshal([]byte(body), &views); err != nil {
				t.Fatalf("list%s: %v in %s", query, err, body)
			}
			out := []string{}
			for _, v := range views {
				out = append(out, v["client_id"].(string))
			}
			return out
		}
		third := rfcRegister(t, s, mcpBody)
		if got, want := ids("", 200), []string{conf.ID, pub.ID, cc.ID, third.ID}; !sameSet(got, want) {
			t.Errorf("list: %v, want %v", got, want)
		}
		if got := ids("?api=rfc7591", 200); len(got) != 4 {
			t.Errorf("list ?api=rfc7591: %v", got)
		}
		if got := ids("?api=iam", 200); len(got) != 0 {
			t.Errorf("list ?api=iam: %v", got)
		}
		if got := ids("?owner=alice", 200); len(got) != 0 {
			t.Errorf("list ?owner=alice: %v", got)
		}
		ids("?api=oidc", 400)
		ids("?owner=", 400)
		ids("?owner=a&owner=b", 400)
		ids("?Owner=alice", 400) // misspelled: not every client
		if status, body := s.adminJSON(admin, "GET", path+pub.ID+"?verbose=1", ""); status != 400 {
			t.Errorf("GET with an unknown query parameter: %d %v", status, body)
		}
		if status, body := s.adminJSON(admin, "DELETE", path+pub.ID, ""); status != 204 {
			t.Fatalf("DELETE: %d %v", status, body)
		}
		if status, _ := s.adminJSON(admin, "GET", path+pub.ID, ""); status != 404 {
			t.Errorf("GET after DELETE: %d", status)
		}
		resp, body = rfcGet(t, s, pub, pub.RAT)
		rfcWantUnauthorized(t, resp, body, rfcInvalidToken)
		if got, want := ids("", 200), []string{conf.ID, cc.ID, third.ID}; !sameSet(got, want) {
			t.Errorf("list after DELETE: %v, want %v", got, want)
		}
	})
}

// sameSet reports whether a and b hold the same strings.
func sameSet(a, b []string) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(s string) bool { return !slices.Contains(b, s) })
}

// adminRaw sends a request, with a JSON body if one is given, to Caddy's
// admin endpoint and returns the answer.
func (s *site) adminRaw(admin, method, path string, body ...string) (*http.Response, string) {
	s.t.Helper()
	req, _ := http.NewRequest(method, admin+path, strings.NewReader(strings.Join(body, "")))
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestPolicySameHostURIs: with require_same_host_uris, every API refuses a
// page to show users (client_uri, logo_uri, tos_uri, policy_uri; Kustvakt's
// url) that is not on the scheme and host of a redirect URI, in its own
// error format, on registration and on update.
func TestPolicySameHostURIs(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, authedAPIs(t, "{storage}\n\t\t\trequire_same_host_uris", "", "mediagoblin", "kustvakt"))

		// RFC 7591: registration and a full replacement (RFC 7592).
		resp, body := s.postJSON("/register", `{"redirect_uris":["https://app.example/cb"],"logo_uri":"https://evil.example/l.png"}`)
		if want := `{"error":"invalid_client_metadata","error_description":"logo_uri 'https://evil.example/l.png' must have the scheme and host of a redirect URI"}`; resp.StatusCode != 400 || body != want {
			t.Errorf("rfc7591 register: %d %s, want 400 %s", resp.StatusCode, body, want)
		}
		c := rfcRegister(t, s, `{"redirect_uris":["https://app.example/cb"],"client_uri":"https://app.example/","logo_uri":"https://APP.example:8443/l.png"}`)
		resp, body = rfcPut(t, s, c, c.RAT, `{"client_id":"`+c.ID+`","redirect_uris":["https://app.example/cb"],"tos_uri":"http://app.example/tos"}`)
		if resp.StatusCode != 400 || !strings.Contains(body, `tos_uri 'http://app.example/tos' must have the scheme and host of a redirect URI`) {
			t.Errorf("rfc7591 update: %d %s", resp.StatusCode, body)
		}
		if resp, body := rfcGet(t, s, c, c.RAT); resp.StatusCode != 200 || !strings.Contains(body, `"client_uri":"https://app.example/"`) {
			t.Errorf("the refused update changed the client: %d %s", resp.StatusCode, body)
		}
		// No redirect URIs, no user sent anywhere: not compared.
		rfcRegister(t, s, `{"grant_types":["client_credentials"],"response_types":[],"client_uri":"https://elsewhere.example/"}`)

		// MediaGoblin: registration, then an update that changes only the
		// redirect URIs away from the logo's host.
		resp, body = s.postJSON("/api/client/register", `{"type":"client_associate","application_type":"web","redirect_uris":"https://app.example/cb","logo_uri":"https://evil.example/l.png"}`)
		if want := `{"error": "The logo_uri \"https://evil.example/l.png\" must have the scheme and host of a redirect URI."}`; resp.StatusCode != 400 || body != want {
			t.Errorf("mediagoblin register: %d %s, want 400 %s", resp.StatusCode, body, want)
		}
		resp, body = s.postJSON("/api/client/register", `{"type":"client_associate","application_type":"web","redirect_uris":"https://app.example/cb","logo_uri":"https://app.example/l.png"}`)
		if resp.StatusCode != 200 {
			t.Fatalf("mediagoblin register: %d %s", resp.StatusCode, body)
		}
		mg := object(t, body)
		resp, body = s.postJSON("/api/client/register", fmt.Sprintf(`{"type":"client_update","client_id":%q,"client_secret":%q,"application_type":"web","redirect_uris":"https://other.example/cb"}`, mg["client_id"], mg["client_secret"]))
		if want := `{"error": "The logo_uri \"https://app.example/l.png\" must have the scheme and host of a redirect URI."}`; resp.StatusCode != 400 || body != want {
			t.Errorf("mediagoblin update: %d %s, want 400 %s", resp.StatusCode, body, want)
		}

		// Kustvakt: its url against its redirect_uri.
		resp, body = s.kvRegister("alice", `{"name":"abc","type":"PUBLIC","description":"d","url":"https://evil.example.org","redirect_uri":"https://app.example.com/cb"}`)
		if want := `{"error_description":"The url \"https:\/\/evil.example.org\" must have the scheme and host of a redirect URI.","error":"invalid_request"}`; resp.StatusCode != 400 || body != want {
			t.Errorf("kustvakt: %d %s", resp.StatusCode, body)
		}
		if resp, body := s.kvRegister("alice", `{"name":"abc","type":"PUBLIC","description":"d","url":"https://app.example.com","redirect_uri":"https://app.example.com/cb"}`); resp.StatusCode != 200 {
			t.Errorf("kustvakt same host: %d %s", resp.StatusCode, body)
		}
	})
}

// TestAdminLifetimesPerAPI: a read through the admin API that counts as a
// use (metadata) applies the idle lifetime of the API the client was
// registered through, whichever handler was provisioned last.
func TestAdminLifetimesPerAPI(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s, admin := startCaddyAdmin(t, backend, `	route {
		client_registration {
			{storage}
			idle_lifetime 1s
		}
		client_registration iam {
			{storage}
		}
	}`)
		resp, body := s.postJSON("/v1/clients", iamMinimalRequest)
		if resp.StatusCode != 200 {
			t.Fatalf("iam: %d %s", resp.StatusCode, body)
		}
		iamID := object(t, body)["client_info"].(map[string]any)["client_id"].(string)
		rfc := rfcRegister(t, s, mcpBody)
		path := "/client_registration/clients/"

		// The RFC 7591 client stays alive while it is used, past its 1s.
		for range 3 {
			time.Sleep(600 * time.Millisecond)
			if resp, body := s.adminRaw(admin, "GET", path+rfc.ID+"/metadata"); resp.StatusCode != 200 {
				t.Fatalf("metadata of the RFC 7591 client, used every 0.6s: %d %s", resp.StatusCode, body)
			}
		}
		// The IAM client has no idle lifetime: a use gives it none.
		if resp, body := s.adminRaw(admin, "GET", path+iamID); resp.StatusCode != 200 {
			t.Fatalf("the IAM client after 1.8s: %d %s", resp.StatusCode, body)
		}
		// Reading the summary is not a use: the RFC 7591 client lapses.
		time.Sleep(1200 * time.Millisecond)
		if resp, _ := s.adminRaw(admin, "GET", path+rfc.ID); resp.StatusCode != 404 {
			t.Errorf("the RFC 7591 client 1.2s after its last use: %d, want 404", resp.StatusCode)
		}
	})
}

// TestIdleReadsWithWritesRefused: with an idle lifetime, a read that would
// push the expiry back still answers when Redis refuses writes.
func TestIdleReadsWithWritesRefused(t *testing.T) {
	srv := redistest.Start(t)
	s, admin := startCaddyAdmin(t, "redis", fmt.Sprintf(`	client_registration {
		storage redis {
			address %s
		}
		idle_lifetime 2s
	}`, srv.Addr))
	c := rfcRegister(t, s, mcpBody)
	// Past a tenth of the idle lifetime, a read pushes the expiry back.
	time.Sleep(300 * time.Millisecond)
	srv.CLI("config", "set", "maxmemory-policy", "noeviction")
	srv.CLI("config", "set", "maxmemory", "1")
	t.Cleanup(func() { srv.CLI("config", "set", "maxmemory", "0") })
	if resp, body := rfcGet(t, s, c, c.RAT); resp.StatusCode != 200 {
		t.Errorf("RFC 7592 read with writes refused: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.adminRaw(admin, "GET", "/client_registration/clients/"+c.ID+"/metadata"); resp.StatusCode != 200 {
		t.Errorf("admin metadata with writes refused: %d %s", resp.StatusCode, body)
	}
	if got := srv.CLI("pttl", "dcr:{dcr}:r:c/"+c.ID); got == "-2" {
		t.Fatal("the client is gone")
	}
	// A change through the admin API is refused as an outage, with when
	// to retry.
	req, _ := http.NewRequest("PATCH", admin+"/client_registration/clients/"+c.ID, strings.NewReader(`{"permitted":false}`))
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "5" {
		t.Errorf("admin PATCH with writes refused: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestSecretFollowsClientLifetime: a secret issued by an RFC 7592 update
// expires with a client of fixed lifetime, as one issued at registration.
func TestSecretFollowsClientLifetime(t *testing.T) {
	s := startCaddy(t, "embedded", `	client_registration {
		{storage}
		client_lifetime 1h
	}`)
	c := rfcRegister(t, s, mcpBody)
	resp, body := rfcPut(t, s, c, c.RAT, `{"client_id":"`+c.ID+`","redirect_uris":["http://127.0.0.1:33418/callback"],"token_endpoint_auth_method":"client_secret_basic"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	m := object(t, body)
	if got, want := rfcInt(t, m, "client_secret_expires_at"), rfcInt(t, c.Body, "client_id_issued_at")+3600; got != want {
		t.Errorf("client_secret_expires_at %d, want %d (the client's end)", got, want)
	}
}

// TestAdminChangesLogged: every change made through the admin API is
// logged by the handlers' logger (an audit trail) naming the store, never
// with a token.
func TestAdminChangesLogged(t *testing.T) {
	s, admin, logFile := startLoggedCaddy(t, "\tclient_registration {\n\t\trate_limit off\n\t}")
	resp, body := s.postJSON("/register", `{"redirect_uris":["https://app.example/cb"]}`)
	if resp.StatusCode != 201 {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	id := object(t, body)["client_id"].(string)

	status, tok := s.adminJSON(admin, "POST", "/client_registration/initial_access_tokens", `{"name":"ci","uses":2}`)
	if status != 201 {
		t.Fatalf("issue: %d %v", status, tok)
	}
	if status, body := s.adminJSON(admin, "PATCH", "/client_registration/clients/"+id, `{"super":true}`); status != 200 {
		t.Fatalf("permit: %d %v", status, body)
	}
	// The same again changes nothing, and is not logged as a change.
	if status, body := s.adminJSON(admin, "PATCH", "/client_registration/clients/"+id, `{"super":true,"permitted":true}`); status != 200 || body["super"] != true {
		t.Fatalf("permit again: %d %v", status, body)
	}
	if status, _ := s.adminJSON(admin, "DELETE", "/client_registration/initial_access_tokens/"+tok["id"].(string), ""); status != 204 {
		t.Fatalf("revoke: %d", status)
	}
	if status, _ := s.adminJSON(admin, "DELETE", "/client_registration/clients/"+id, ""); status != 204 {
		t.Fatalf("delete: %d", status)
	}
	want := []string{
		`"msg":"initial access token issued","store":"caddy","token_id":"` + tok["id"].(string) + `","name":"ci","uses":2`,
		`"msg":"client privileges changed","store":"caddy","api":"rfc7591","client_id":"` + id + `","permitted":true,"super":true,"by":"admin API"`,
		`"msg":"initial access token revoked","store":"caddy","token_id":"` + tok["id"].(string) + `","by":"admin API"`,
		`"msg":"client deleted","store":"caddy","api":"rfc7591","client_id":"` + id + `","by":"admin API"`,
	}
	var log string
	redistest.WaitFor(t, 5*time.Second, "the admin API's log lines", func(context.Context) bool {
		b, _ := os.ReadFile(logFile)
		log = string(b)
		for _, w := range want {
			if !strings.Contains(log, w) {
				return false
			}
		}
		return true
	})
	if strings.Contains(log, tok["token"].(string)) {
		t.Errorf("the token is in the log")
	}
	if n := strings.Count(log, "client privileges changed"); n != 1 {
		t.Errorf("%d lines of privileges changed, want 1 (the second PATCH changed nothing)", n)
	}
}

// TestAdminWrongSecretIsNoUse: under idle_lifetime, a secret that verifies
// keeps a client alive and a wrong one does not (anyone who knows a client
// id could otherwise keep it from expiring).
func TestAdminWrongSecretIsNoUse(t *testing.T) {
	s, admin := startCaddyAdmin(t, "embedded", `	client_registration {
		{storage}
		idle_lifetime 1s
	}`)
	c := rfcRegister(t, s, `{"redirect_uris":["https://a.example/cb"]}`)
	path := "/client_registration/clients/" + c.ID
	for range 2 {
		time.Sleep(400 * time.Millisecond)
		status, got := s.adminJSON(admin, "POST", path+"/verify_secret", `{"client_secret":"wrong"}`)
		if status == 404 {
			break // expired already (a slow machine)
		}
		if status != 200 || got["valid"] != false {
			t.Fatalf("wrong secret: %d %v", status, got)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if status, got := s.adminJSON(admin, "GET", path, ""); status != 404 {
		t.Errorf("1.3 s after registering, with wrong secrets only: %d %v, want 404 (expired)", status, got)
	}
}

// TestUnreachableRedisSaidAtStart: a config whose Redis does not answer
// loads, and the handlers' logger says so at start (a warning naming the
// store), not only once a request has failed.
func TestUnreachableRedisSaidAtStart(t *testing.T) {
	redisPort := redistest.FreePort(t)
	s, _, logFile := startLoggedCaddy(t, fmt.Sprintf("\tclient_registration {\n\t\tstorage redis {\n\t\t\taddress 127.0.0.1:%d\n\t\t}\n\t}\n\trespond \"site\"", redisPort))
	want := fmt.Sprintf(`"logger":"http.handlers.client_registration","msg":"Redis does not answer: the plugin's routes will answer 503 until it does; asking again in the background","redis":"127.0.0.1:%d"`, redisPort)
	redistest.WaitFor(t, 10*time.Second, "the warning", func(context.Context) bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), want)
	})
	if resp, body := s.do("GET", "/other", ""); resp.StatusCode != 200 || body != "site" {
		t.Fatalf("the site: %d %s", resp.StatusCode, body)
	}
}

// TestClientStoreReadySaidAtStart: when a store is first used, the
// handlers' logger says how many clients it holds, naming the store (the
// Redis address and key prefix, or Caddy's storage), so that a key_prefix
// or storage path other than the one meant shows at start. Said again
// after a restart, with the clients registered meanwhile.
func TestClientStoreReadySaidAtStart(t *testing.T) {
	srv := redistest.Start(t)
	port, adminPort := redistest.FreePort(t), redistest.FreePort(t)
	data, logFile := dataDir(t), filepath.Join(t.TempDir(), "caddy.log")
	cfg := testCaddyfile(fmt.Sprintf("admin 127.0.0.1:%d\nstorage file_system %s\nlog {\n\toutput file %s\n\tformat json\n}", adminPort, data, logFile), port,
		fmt.Sprintf("\tclient_registration {\n\t\tstorage redis {\n\t\t\taddress %s\n\t\t\tkey_prefix ready:\n\t\t}\n\t\trate_limit off\n\t}\n\tclient_registration {\n\t\tprefix /e\n\t\trate_limit off\n\t}", srv.Addr))
	s := &site{t: t, URL: "http://127.0.0.1:" + strconv.Itoa(port)}
	said := func(redisClients, embeddedClients int) {
		t.Helper()
		want := []string{
			fmt.Sprintf(`"logger":"http.handlers.client_registration","msg":"client store ready","redis":"%s","key_prefix":"ready:","clients":%d}`, srv.Addr, redisClients),
			fmt.Sprintf(`"logger":"http.handlers.client_registration","msg":"client store ready","storage":"FileStorage:%s","clients":%d}`, data, embeddedClients),
		}
		for _, w := range want {
			redistest.WaitFor(t, 10*time.Second, w, func(context.Context) bool {
				b, _ := os.ReadFile(logFile)
				return strings.Contains(string(b), w)
			})
		}
		time.Sleep(1500 * time.Millisecond)
		b, _ := os.ReadFile(logFile)
		if n := strings.Count(string(b), `"msg":"client store ready"`); n != len(want) {
			t.Errorf("client store ready said %d times, want %d", n, len(want))
		}
	}
	// A reload at once, before the store has been counted, does not stop
	// the count being said, nor make it said twice.
	loadCaddyfile(t, cfg)
	loadCaddyfile(t, strings.Replace(cfg, "rate_limit off", "rate_limit 100 1h", 1))
	said(0, 0)
	rfcRegister(t, s, mcpBody)
	rfcRegister(t, s, mcpBody)
	if resp, body := s.postJSON("/e/register", mcpBody); resp.StatusCode != 201 {
		t.Fatalf("embedded registration: %d %s", resp.StatusCode, body)
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(logFile, 0); err != nil {
		t.Fatal(err)
	}
	loadCaddyfile(t, cfg)
	said(2, 1)
}

// startLoggedCaddy loads a Caddy with siteBody as its one site, an admin
// endpoint and its whole log written as JSON to logFile.
func startLoggedCaddy(t *testing.T, siteBody string) (s *site, admin, logFile string) {
	t.Helper()
	port, adminPort := redistest.FreePort(t), redistest.FreePort(t)
	logFile = filepath.Join(t.TempDir(), "caddy.log")
	loadCaddyfile(t, testCaddyfile(fmt.Sprintf(`admin 127.0.0.1:%d
storage file_system %s
log {
	output file %s
	format json
}`, adminPort, dataDir(t), logFile), port, siteBody))
	return &site{t: t, URL: "http://127.0.0.1:" + strconv.Itoa(port)}, "http://127.0.0.1:" + strconv.Itoa(adminPort), logFile
}

// TestRedisIndexOfAnotherTypeLogged: an index key set by hand to another
// type fails the registrations that go through it with a 503, logged as a
// damaged index naming the key, not as an outage of the store (which no
// "available again" line would ever end), and reads go on. Removing the
// key is the repair.
func TestRedisIndexOfAnotherTypeLogged(t *testing.T) {
	srv := redistest.Start(t)
	s, _, logFile := startLoggedCaddy(t, fmt.Sprintf("\tclient_registration {\n\t\tstorage redis {\n\t\t\taddress %s\n\t\t}\n\t\trate_limit off\n\t}", srv.Addr))
	// Registrations run as transactions once the access check (a script)
	// found MULTI and EXEC allowed: the path on which the record is
	// written before the index fails.
	redistest.WaitFor(t, 10*time.Second, "the access check", func(context.Context) bool {
		return strings.Contains(srv.CLI("info", "commandstats"), "cmdstat_eval:")
	})
	time.Sleep(100 * time.Millisecond)
	c := rfcRegister(t, s, mcpBody)
	if !strings.Contains(srv.CLI("info", "commandstats"), "cmdstat_exec:") {
		t.Fatal("the registration ran no transaction")
	}
	const key = "dcr:{dcr}:t:clients"
	srv.CLI("set", key, "garbage")
	for range 3 {
		resp, body := s.postJSON("/register", mcpBody)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.HasPrefix(body, `{"error":"temporarily_unavailable"`) {
			t.Fatalf("register through a damaged index: %d %v %s", resp.StatusCode, resp.Header, body)
		}
	}
	// Nothing of the refused registrations stays: on the transaction
	// path their records were written and undone (EXEC rolls nothing
	// back), on the script's nothing was written.
	if keys := strings.Fields(srv.CLI("keys", "dcr:{dcr}:r:*")); len(keys) != 1 || !strings.HasSuffix(keys[0], c.ID) {
		t.Errorf("records after the refused registrations: %v, want only %s", keys, c.ID)
	}
	if resp, body := rfcGet(t, s, c, c.RAT); resp.StatusCode != 200 {
		t.Errorf("read: %d %s", resp.StatusCode, body)
	}
	redistest.WaitFor(t, 10*time.Second, "the log line", func(context.Context) bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), "an index of the client store holds another type of value")
	})
	b, _ := os.ReadFile(logFile)
	if n := strings.Count(string(b), "an index of the client store holds another type of value"); n != 1 || !strings.Contains(string(b), key) || strings.Contains(string(b), "client store unavailable") {
		t.Errorf("%d index lines, log:\n%s", n, b)
	}
	srv.CLI("del", key)
	if resp, body := s.postJSON("/register", mcpBody); resp.StatusCode != 201 {
		t.Errorf("after the repair: %d %s", resp.StatusCode, body)
	}
}

// TestOlderRedisACLWarned: a Redis user granted an earlier version's ACL
// line (without zcard, zrange and exists, nor multi and exec) is warned
// about, naming the Redis, as what it is: clean-ups skipped and
// registrations run as scripts, not requests that fail. And none fails:
// register, read, update and delete all work (a delete once needed ZRANGE).
func TestOlderRedisACLWarned(t *testing.T) {
	srv := redistest.Start(t)
	srv.CLI(append([]string{"ACL", "SETUSER", "older", "reset", "on", ">pw", "~dcr:*", "resetchannels", "-@all"},
		strings.Fields("+get +set +del +getrange +incr +pexpire +pexpireat +pttl +persist +zadd +zcount +zrem +zrangebyscore +zremrangebyrank +eval +evalsha +info")...)...)
	s, _, logFile := startLoggedCaddy(t, fmt.Sprintf("\tclient_registration {\n\t\tstorage redis {\n\t\t\taddress %s\n\t\t\tusername older\n\t\t\tpassword pw\n\t\t}\n\t}", srv.Addr))
	field := fmt.Sprintf(`"redis":%q`, srv.Addr)
	redistest.WaitFor(t, 10*time.Second, "the warnings", func(context.Context) bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), "commands the plugin uses only to clean up") && strings.Contains(string(b), "may not run MULTI and EXEC")
	})
	b, _ := os.ReadFile(logFile)
	for _, line := range strings.Split(string(b), "\n") {
		if (strings.Contains(line, "only to clean up") || strings.Contains(line, "MULTI and EXEC")) && (!strings.Contains(line, field) || !strings.Contains(line, `"level":"warn"`)) {
			t.Errorf("want a warning with %s: %s", field, line)
		}
	}
	if strings.Contains(string(b), "requests that need them will fail") {
		t.Errorf("an older ACL line logged as failing requests:\n%s", b)
	}
	c := rfcRegister(t, s, mcpBody)
	if resp, body := rfcGet(t, s, c, c.RAT); resp.StatusCode != 200 {
		t.Fatalf("read: %d %s", resp.StatusCode, body)
	}
	resp, body := rfcPut(t, s, c, c.RAT, `{"client_id":"`+c.ID+`","redirect_uris":["http://127.0.0.1:33418/callback"],"token_endpoint_auth_method":"none","client_name":"renamed"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("update: %d %s", resp.StatusCode, body)
	}
	rat, _ := object(t, body)["registration_access_token"].(string)
	if resp, body := s.do("DELETE", c.path(t, s), "", rfcBearer(rat)); resp.StatusCode != 204 {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
	if resp, _ := rfcGet(t, s, c, rat); resp.StatusCode != 401 {
		t.Errorf("read after delete: %d", resp.StatusCode)
	}
}

// TestUnknownSentinelMasterSaidAtStart: sentinels that answer but know no
// master of the configured name are said to, naming it, rather than
// reported unreachable as go-redis's error has it.
func TestUnknownSentinelMasterSaidAtStart(t *testing.T) {
	_, sentinel := redistest.StartSentinel(t, "mymaster")
	_, _, logFile := startLoggedCaddy(t, fmt.Sprintf("\tclient_registration {\n\t\tstorage redis {\n\t\t\taddress %s\n\t\t\tmaster_name mymastr\n\t\t}\n\t}\n\trespond \"site\"", sentinel))
	redistest.WaitFor(t, 10*time.Second, "the warning", func(context.Context) bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), `"msg":"the sentinels answer but know no master of the name master_name gives`) && strings.Contains(string(b), `"master_name":"mymastr"`)
	})
}

// TestDeleteOutageLogged: a Redis user that loses ZREM (which only deletes
// run) while registrations go on: deletes are answered 503, the outage is
// logged once and not said to end while registrations succeed, and a
// delete that works again ends it.
func TestDeleteOutageLogged(t *testing.T) {
	srv := redistest.Start(t)
	grants := strings.Fields("+get +set +del +getrange +incr +pexpire +pexpireat +pttl +persist +zadd +zcount +zrem +zrangebyscore +zremrangebyrank +zcard +zrange +exists +eval +evalsha +multi +exec +info")
	srv.CLI(append([]string{"ACL", "SETUSER", "dcr", "reset", "on", ">pw", "~dcr:*", "resetchannels", "-@all"}, grants...)...)
	s, _, logFile := startLoggedCaddy(t, fmt.Sprintf("\tclient_registration {\n\t\tstorage redis {\n\t\t\taddress %s\n\t\t\tusername dcr\n\t\t\tpassword pw\n\t\t\ttimeout 300ms\n\t\t}\n\t\trate_limit off\n\t}", srv.Addr))
	logged := func(msg string) int {
		b, _ := os.ReadFile(logFile)
		return strings.Count(string(b), msg)
	}
	c := rfcRegister(t, s, mcpBody)
	srv.CLI("ACL", "SETUSER", "dcr", "-zrem")
	if resp, body := s.do("DELETE", c.path(t, s), "", rfcBearer(c.RAT)); resp.StatusCode != 503 {
		t.Fatalf("delete without ZREM: %d %s", resp.StatusCode, body)
	}
	// Past the store's timeout, within which successes say nothing of
	// whether the store works now.
	time.Sleep(400 * time.Millisecond)
	for range 5 {
		if resp, body := s.do("DELETE", c.path(t, s), "", rfcBearer(c.RAT)); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("delete without ZREM: %d %s", resp.StatusCode, body)
		}
		rfcRegister(t, s, mcpBody)
	}
	redistest.WaitFor(t, 10*time.Second, "the outage line", func(context.Context) bool {
		return logged("client store unavailable") > 0
	})
	if n, back := logged("client store unavailable"), logged("client store available again"); n != 1 || back != 0 {
		t.Fatalf("while deletes fail and registrations succeed: %d outage lines, %d recovery lines; want 1 and 0", n, back)
	}
	srv.CLI("ACL", "SETUSER", "dcr", "+zrem")
	if resp, body := s.do("DELETE", c.path(t, s), "", rfcBearer(c.RAT)); resp.StatusCode != 204 {
		t.Fatalf("delete with ZREM again: %d %s", resp.StatusCode, body)
	}
	redistest.WaitFor(t, 10*time.Second, "the recovery line", func(context.Context) bool {
		return logged("client store available again") == 1
	})
}
