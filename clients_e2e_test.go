package caddydcr

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// These tests drive the plugin with real, unmodified client libraries:
// the Node.js ones in test/clients (openid-client 6 and 5, the TypeScript MCP
// SDK 1.x and 2.x), the official Go MCP SDK and mark3labs/mcp-go (test/mcpgo).

const clientsDir = "test/clients"

// clientsSite is the Caddyfile site body the client tests run against.
const clientsSite = "\tclient_registration {\n\t\t{storage}\n\t}\n\trespond \"site\""

// nodeScripts are run as `node <script> <site URL>`; each exits non-zero
// with a message naming the failed step.
var nodeScripts = []string{"openid-client-v6.mjs", "openid-client-v5.mjs", "mcp-sdk.mjs", "mcp-client-v2.mjs"}

// nodePackages must be installed in test/clients/node_modules.
var nodePackages = []string{"openid-client", "openid-client-v5", "@modelcontextprotocol/sdk", "@modelcontextprotocol/client"}

func TestNodeClients(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node (>= 20) is required for the client tests: %v", err)
	}
	for _, p := range nodePackages {
		if _, err := os.Stat(filepath.Join(clientsDir, "node_modules", filepath.FromSlash(p), "package.json")); err != nil {
			t.Fatalf("%s is not installed in %s/node_modules: run `npm ci --prefix %s` first (%v)", p, clientsDir, clientsDir, err)
		}
	}
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, clientsSite)
		for _, script := range nodeScripts {
			t.Run(strings.TrimSuffix(script, ".mjs"), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				cmd := exec.CommandContext(ctx, node, script, s.URL)
				cmd.Dir = clientsDir
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("node %s %s: %v\n%s", script, s.URL, err, out)
				}
				t.Logf("node %s:\n%s", script, out)
			})
		}
	})
}

// ecJWKS is a public EC key set, as the Go MCP SDK sends it: a string.
const ecJWKS = `{"keys":[{"kty":"EC","crv":"P-256","use":"sig","kid":"k1",` +
	`"x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`

func TestGoMCPSDK(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, clientsSite)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		hc := &http.Client{Timeout: 10 * time.Second}
		var regEndpoint string

		t.Run("discovery", func(t *testing.T) {
			// auth.GetAuthServerMetadata tries the RFC 8414 location first and
			// checks the issuer and that PKCE is supported.
			asm, err := auth.GetAuthServerMetadata(ctx, s.URL, hc)
			if err != nil || asm == nil {
				t.Fatalf("GetAuthServerMetadata(%s): %v, %v", s.URL, asm, err)
			}
			if asm.Issuer != s.URL {
				t.Errorf("issuer %q, want %q", asm.Issuer, s.URL)
			}
			if len(asm.CodeChallengeMethodsSupported) == 0 || !slices.Contains(asm.CodeChallengeMethodsSupported, "S256") {
				t.Errorf("code_challenge_methods_supported %v, want S256", asm.CodeChallengeMethodsSupported)
			}
			if want := s.URL + "/register"; asm.RegistrationEndpoint != want {
				t.Errorf("registration_endpoint %q, want %q", asm.RegistrationEndpoint, want)
			}
			direct, err := oauthex.GetAuthServerMeta(ctx, s.URL+"/.well-known/oauth-authorization-server", s.URL, hc)
			if err != nil || direct == nil {
				t.Fatalf("GetAuthServerMeta: %v, %v", direct, err)
			}
			if !reflect.DeepEqual(direct, asm) {
				t.Errorf("GetAuthServerMeta %+v\n differs from GetAuthServerMetadata %+v", direct, asm)
			}
			regEndpoint = asm.RegistrationEndpoint
		})
		if regEndpoint == "" {
			t.Fatal("no registration endpoint discovered")
		}

		t.Run("RegisterClient/full metadata with jwks as a string", func(t *testing.T) {
			meta := &oauthex.ClientRegistrationMetadata{
				RedirectURIs:            []string{"http://localhost:33418/callback", "http://127.0.0.1:33418/callback"},
				TokenEndpointAuthMethod: "private_key_jwt",
				GrantTypes:              []string{"authorization_code", "refresh_token"},
				ResponseTypes:           []string{"code"},
				ClientName:              "Go MCP client",
				ClientURI:               "https://go-client.example/",
				LogoURI:                 "https://go-client.example/logo.png",
				Scope:                   "mcp:tools",
				Contacts:                []string{"ops@go-client.example"},
				TOSURI:                  "https://go-client.example/tos",
				PolicyURI:               "https://go-client.example/policy",
				JWKS:                    ecJWKS,
				SoftwareID:              "4NRB1-0XZABZI9E6-5SM3R",
				SoftwareVersion:         "1.8.0",
				ApplicationType:         "native",
			}
			before := time.Now().Add(-time.Minute)
			res, err := oauthex.RegisterClient(ctx, regEndpoint, meta, hc)
			if err != nil {
				t.Fatalf("RegisterClient: %v", err)
			}
			if res.ClientID == "" {
				t.Error("no client_id")
			}
			if res.ClientSecret != "" {
				t.Errorf("private_key_jwt client got a secret %q", res.ClientSecret)
			}
			if res.ClientIDIssuedAt.Before(before) || res.ClientIDIssuedAt.After(time.Now().Add(time.Minute)) {
				t.Errorf("client_id_issued_at %v is not about now", res.ClientIDIssuedAt)
			}
			got := res.ClientRegistrationMetadata
			if !jsonEqual(t, got.JWKS, meta.JWKS) {
				t.Errorf("jwks echoed as %q, want the key set %q", got.JWKS, meta.JWKS)
			}
			got.JWKS = meta.JWKS
			if !reflect.DeepEqual(&got, meta) {
				t.Errorf("registered metadata\n got %+v\nwant %+v", got, *meta)
			}
		})

		t.Run("RegisterClient/public client", func(t *testing.T) {
			meta := &oauthex.ClientRegistrationMetadata{
				RedirectURIs:            []string{"http://localhost:33418/callback"},
				TokenEndpointAuthMethod: "none",
				GrantTypes:              []string{"authorization_code", "refresh_token"},
				ResponseTypes:           []string{"code"},
				ClientName:              "Go MCP public client",
			}
			res, err := oauthex.RegisterClient(ctx, regEndpoint, meta, hc)
			if err != nil {
				t.Fatalf("RegisterClient: %v", err)
			}
			if res.ClientID == "" || res.ClientSecret != "" {
				t.Errorf("client_id %q client_secret %q, want an id and no secret", res.ClientID, res.ClientSecret)
			}
			if !slices.Equal(res.RedirectURIs, meta.RedirectURIs) {
				t.Errorf("redirect_uris %v, want %v", res.RedirectURIs, meta.RedirectURIs)
			}
			if res.TokenEndpointAuthMethod != "none" {
				t.Errorf("token_endpoint_auth_method %q, want none", res.TokenEndpointAuthMethod)
			}
		})

		t.Run("RegisterClient/confidential client", func(t *testing.T) {
			meta := &oauthex.ClientRegistrationMetadata{
				RedirectURIs:            []string{"https://go-client.example/callback"},
				TokenEndpointAuthMethod: "client_secret_post",
			}
			res, err := oauthex.RegisterClient(ctx, regEndpoint, meta, hc)
			if err != nil {
				t.Fatalf("RegisterClient: %v", err)
			}
			if res.ClientID == "" || len(res.ClientSecret) < 32 {
				t.Errorf("client_id %q client_secret %q, want both", res.ClientID, res.ClientSecret)
			}
			if !slices.Equal(res.RedirectURIs, meta.RedirectURIs) || res.TokenEndpointAuthMethod != "client_secret_post" {
				t.Errorf("redirect_uris %v token_endpoint_auth_method %q, want the registered ones", res.RedirectURIs, res.TokenEndpointAuthMethod)
			}
		})

		t.Run("RegisterClient/error", func(t *testing.T) {
			_, err := oauthex.RegisterClient(ctx, regEndpoint, &oauthex.ClientRegistrationMetadata{
				RedirectURIs: []string{"https://c.example/cb#frag"},
			}, hc)
			var regErr *oauthex.ClientRegistrationError
			if !errors.As(err, &regErr) {
				t.Fatalf("error %v (%T), want *oauthex.ClientRegistrationError", err, err)
			}
			if regErr.ErrorCode != "invalid_redirect_uri" || regErr.ErrorDescription == "" {
				t.Errorf("error %q (%q), want invalid_redirect_uri with a description", regErr.ErrorCode, regErr.ErrorDescription)
			}
		})

		t.Run("AuthorizationCodeHandler", func(t *testing.T) {
			testGoAuthorizationCodeFlow(t, ctx, s.URL)
		})
	})
}

// testGoAuthorizationCodeFlow runs the Go SDK's AuthorizationCodeHandler the
// way an MCP client does after a 401 from an MCP server at <base>/mcp:
// discovery, dynamic registration, the authorization request and the token
// request. The authorization step and the token endpoint are stubbed (the
// plugin does not serve them); everything else goes to the plugin.
func testGoAuthorizationCodeFlow(t *testing.T, ctx context.Context, base string) {
	rt := &recordingTransport{token: base + "/token"}
	hc := &http.Client{Transport: rt, Timeout: 10 * time.Second}
	var authURL *url.URL
	h, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{
			Metadata: &oauthex.ClientRegistrationMetadata{
				RedirectURIs:            []string{"http://localhost:33418/callback"},
				TokenEndpointAuthMethod: "none",
				GrantTypes:              []string{"authorization_code", "refresh_token"},
				ResponseTypes:           []string{"code"},
				ClientName:              "Go MCP auth flow",
			},
		},
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			u, err := url.Parse(args.URL)
			if err != nil {
				return nil, err
			}
			authURL = u
			return &auth.AuthorizationResult{Code: "code-test", State: u.Query().Get("state")}, nil
		},
		Client: hc,
	})
	if err != nil {
		t.Fatal(err)
	}
	mcpReq, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/mcp", nil)
	unauthorized := &http.Response{
		StatusCode: http.StatusUnauthorized,
		Header:     http.Header{"Www-Authenticate": {"Bearer"}},
		Body:       io.NopCloser(strings.NewReader("")),
	}
	if err := h.Authorize(ctx, mcpReq, unauthorized); err != nil {
		t.Fatalf("Authorize: %v\nrequests: %s", err, rt.summary())
	}

	reg := rt.find(http.MethodPost, base+"/register")
	if reg == nil || reg.status != http.StatusCreated {
		t.Fatalf("no successful registration; requests: %s", rt.summary())
	}
	var sent, registered map[string]any
	_ = json.Unmarshal([]byte(reg.body), &sent)
	_ = json.Unmarshal([]byte(reg.respBody), &registered)
	if sent["application_type"] != "native" {
		t.Errorf("application_type sent %v, want native (inferred by the SDK)", sent["application_type"])
	}
	if registered["application_type"] != "native" || registered["token_endpoint_auth_method"] != "none" {
		t.Errorf("registration response %s", reg.respBody)
	}
	clientID, _ := registered["client_id"].(string)

	if authURL == nil {
		t.Fatal("the authorization code fetcher was not called")
	}
	q := authURL.Query()
	if got := authURL.Scheme + "://" + authURL.Host + authURL.Path; got != base+"/authorize" {
		t.Errorf("authorization URL %s, want %s/authorize", got, base)
	}
	if q.Get("client_id") != clientID || q.Get("code_challenge_method") != "S256" ||
		q.Get("redirect_uri") != "http://localhost:33418/callback" || q.Get("resource") != base+"/mcp" {
		t.Errorf("authorization request %s: want client_id %s, S256, the redirect URI and resource %s/mcp", authURL, clientID, base)
	}

	tok := rt.find(http.MethodPost, base+"/token")
	if tok == nil {
		t.Fatalf("no token request; requests: %s", rt.summary())
	}
	form, _ := url.ParseQuery(tok.body)
	if form.Get("client_id") != clientID || form.Get("client_secret") != "" || tok.header.Get("Authorization") != "" {
		t.Errorf("token request for a public client: body %s, Authorization %q; want client_id in the body and no secret",
			tok.body, tok.header.Get("Authorization"))
	}
	if form.Get("grant_type") != "authorization_code" || form.Get("code") != "code-test" || form.Get("code_verifier") == "" {
		t.Errorf("token request body %s", tok.body)
	}
	ts, _ := h.TokenSource(ctx)
	if ts == nil {
		t.Fatal("no token source after Authorize")
	}
	if tk, err := ts.Token(); err != nil || tk.AccessToken != "at-test" {
		t.Errorf("token %v, %v", tk, err)
	}
}

// recordingTransport records requests and their responses; it answers the
// token endpoint itself.
type recordingTransport struct {
	token string
	mu    sync.Mutex
	log   []*exchange
}

type exchange struct {
	method, url, body string
	header            http.Header
	status            int
	respBody          string
}

func (rt *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	x := &exchange{method: req.Method, url: req.URL.String(), header: req.Header.Clone()}
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		x.body = string(b)
		req.Body = io.NopCloser(strings.NewReader(x.body))
	}
	rt.mu.Lock()
	rt.log = append(rt.log, x)
	rt.mu.Unlock()
	var resp *http.Response
	if req.Method == http.MethodPost && x.url == rt.token {
		resp = &http.Response{
			StatusCode: http.StatusOK,
			Header:     http.Header{"Content-Type": {"application/json"}},
			Body:       io.NopCloser(strings.NewReader(`{"access_token":"at-test","token_type":"Bearer","expires_in":60}`)),
			Request:    req,
		}
	} else {
		var err error
		if resp, err = http.DefaultTransport.RoundTrip(req); err != nil {
			return nil, err
		}
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	x.status, x.respBody = resp.StatusCode, string(b)
	resp.Body = io.NopCloser(strings.NewReader(x.respBody))
	return resp, nil
}

func (rt *recordingTransport) find(method, u string) *exchange {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, x := range rt.log {
		if x.method == method && x.url == u {
			return x
		}
	}
	return nil
}

func (rt *recordingTransport) summary() string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var b strings.Builder
	for _, x := range rt.log {
		b.WriteString("\n  " + x.method + " " + x.url + " -> " + http.StatusText(x.status) + " " + x.respBody)
	}
	return b.String()
}

// jsonEqual reports whether two JSON texts encode the same value.
func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		t.Errorf("not JSON: %q: %v", a, err)
		return false
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Errorf("not JSON: %q: %v", b, err)
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// buildTestModule builds the command of test/<name>, a module of its own
// (so that the client library it drives stays out of the plugin's go.mod),
// and returns the binary's path.
func buildTestModule(t *testing.T, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	goTool := os.Getenv("GO")
	if goTool == "" {
		goTool = "go"
	}
	build := exec.Command(goTool, "build", "-buildvcs=false", "-o", bin, ".")
	build.Dir = filepath.Join("test", name)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build in test/%s: %v\n%s", name, err, out)
	}
	return bin
}

// mcpgoSite stands in for an MCP server at /mcp (and at /mcp2, whose
// authorization server is the issuer with a path /auth): both want a token
// and point at their protected resource metadata (RFC 9728), and a token
// endpoint answers any code. Discovery and registration are the plugin's.
const mcpgoSite = `	client_registration {
		{storage}
	}
	client_registration {
		prefix /auth
		issuer http://{http.request.hostport}/auth
		{storage}
	}
	@prm path /.well-known/oauth-protected-resource/mcp
	header @prm Content-Type application/json
	respond @prm ` + "`" + `{"resource":"http://{http.request.hostport}/mcp","authorization_servers":["http://{http.request.hostport}"]}` + "`" + ` 200
	@prm2 path /.well-known/oauth-protected-resource/mcp2
	header @prm2 Content-Type application/json
	respond @prm2 ` + "`" + `{"resource":"http://{http.request.hostport}/mcp2","authorization_servers":["http://{http.request.hostport}/auth"]}` + "`" + ` 200
	@mcp path /mcp /mcp2
	header @mcp WWW-Authenticate ` + "`" + `Bearer resource_metadata="http://{http.request.hostport}/.well-known/oauth-protected-resource{http.request.uri.path}"` + "`" + `
	respond @mcp 401
	@token path /token /auth/token
	header @token Content-Type application/json
	respond @token ` + "`" + `{"access_token":"at-1","token_type":"Bearer","expires_in":3600}` + "`" + ` 200
	respond "site"`

// TestMark3labsMCPGo runs the OAuth client of github.com/mark3labs/mcp-go
// (test/mcpgo), unmodified, through an MCP client's whole path: discovery
// from the MCP server's 401, registration, the authorization request and
// the token request. The registered clients are then read back through the
// admin API, which shows what the SDK's request stored.
func TestMark3labsMCPGo(t *testing.T) {
	bin := buildTestModule(t, "mcpgo")
	forBackends(t, func(t *testing.T, backend string) {
		s, admin := startCaddyAdmin(t, backend, mcpgoSite)
		for _, tc := range []struct {
			name, server, issuer, secret, method string
		}{
			{"public client, issuer without a path", "/mcp", "", "", "none"},
			{"confidential client", "/mcp", "", "preset-secret", "client_secret_post"},
			{"issuer with a path", "/mcp2", "/auth", "", "none"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				args := []string{s.URL + tc.server, s.URL + tc.issuer}
				if tc.secret != "" {
					args = append(args, tc.secret)
				}
				out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
				if err != nil {
					t.Fatalf("mcpgo %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				var id string
				for _, line := range strings.Split(string(out), "\n") {
					if v, ok := strings.CutPrefix(line, "client_id "); ok {
						id = v
					}
				}
				if id == "" {
					t.Fatalf("mcpgo printed no client_id:\n%s", out)
				}
				status, m := s.adminJSON(admin, http.MethodGet, "/client_registration/clients/"+id+"/metadata", "")
				if status != http.StatusOK {
					t.Fatalf("admin metadata of %s: %d %v", id, status, m)
				}
				want := map[string]any{
					"client_name":                "mcp-go client",
					"redirect_uris":              []any{"http://localhost:8085/oauth/callback"},
					"grant_types":                []any{"authorization_code", "refresh_token"},
					"response_types":             []any{"code"},
					"scope":                      "mcp.read mcp.write",
					"token_endpoint_auth_method": tc.method,
				}
				for k, v := range want {
					if !reflect.DeepEqual(m[k], v) {
						t.Errorf("stored %s = %#v, want %#v", k, m[k], v)
					}
				}
			})
		}
	})
}
