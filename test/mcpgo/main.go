// Command mcpgo runs the OAuth client of github.com/mark3labs/mcp-go, a
// widely used third-party MCP SDK, unmodified, against the plugin the way an
// MCP client program does: it talks to an MCP server that wants a token,
// discovers the authorization server through the server's protected resource
// metadata (RFC 9728) and the authorization server's metadata (RFC 8414),
// registers itself (RFC 7591), builds the authorization request and redeems a
// code at the token endpoint. The MCP server, its metadata and the token
// endpoint are stand-ins in the test's Caddyfile; discovery and registration
// are the plugin's. It is its own module so that the SDK stays out of the
// plugin's go.mod; clients_e2e_test.go (TestMark3labsMCPGo) builds and runs it.
//
// Usage: mcpgo <MCP server URL> <issuer> [<client secret>]
//
// With a client secret, the SDK registers a confidential client
// (client_secret_post). It prints "client_id <id>" once registered, then one
// line per failed check, and exits 1 when a check failed.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
)

// redirectURI is the loopback callback of the SDK's own example.
const redirectURI = "http://localhost:8085/oauth/callback"

func main() {
	if len(os.Args) != 3 && len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: mcpgo <MCP server URL> <issuer> [<client secret>]")
		os.Exit(2)
	}
	serverURL, issuer := os.Args[1], os.Args[2]
	secret := ""
	if len(os.Args) == 4 {
		secret = os.Args[3]
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, serverURL, issuer, secret); err != nil {
		for line := range strings.SplitSeq(err.Error(), "\n") {
			fmt.Println("FAIL:", line)
		}
		os.Exit(1)
	}
	fmt.Println("ok")
}

// run goes through the client's path; it stops at the first step that
// fails, and otherwise returns every check that did not hold.
func run(ctx context.Context, serverURL, issuer, secret string) error {
	var failed []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			failed = append(failed, fmt.Errorf(format, args...))
		}
	}
	tokens := client.NewMemoryTokenStore()
	mc, err := client.NewOAuthStreamableHttpClient(serverURL, client.OAuthConfig{
		ClientSecret: secret,
		RedirectURI:  redirectURI,
		Scopes:       []string{"mcp.read", "mcp.write"},
		TokenStore:   tokens,
		PKCEEnabled:  true,
		HTTPClient:   &http.Client{Timeout: 10 * time.Second},
	})
	if err != nil {
		return fmt.Errorf("creating the client: %w", err)
	}
	defer mc.Close()
	if err := mc.Start(ctx); err != nil && !client.IsOAuthAuthorizationRequiredError(err) {
		return fmt.Errorf("starting the client: %w", err)
	}
	_, err = mc.Initialize(ctx, mcp.InitializeRequest{})
	if !client.IsOAuthAuthorizationRequiredError(err) {
		return fmt.Errorf("initialize without a token: %v, want the SDK's authorization-required error", err)
	}
	h := client.GetOAuthHandler(err)

	md, err := h.GetServerMetadata(ctx)
	if err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	check(md.Issuer == issuer, "issuer %q, want %q", md.Issuer, issuer)
	check(md.RegistrationEndpoint == issuer+"/register", "registration_endpoint %q, want %q", md.RegistrationEndpoint, issuer+"/register")

	if err := h.RegisterClient(ctx, "mcp-go client"); err != nil {
		return fmt.Errorf("RegisterClient: %w", err)
	}
	id := h.GetClientID()
	if id == "" {
		return errors.New("RegisterClient: no client_id")
	}
	fmt.Println("client_id", id)
	if secret == "" {
		check(h.GetClientSecret() == "", "public client got a secret")
		check(h.GetTokenEndpointAuthMethod() == "none", "auth method %q, want none", h.GetTokenEndpointAuthMethod())
	} else {
		got := h.GetClientSecret()
		check(got != secret && len(got) >= 43, "client secret %d characters, unchanged: %v; want a fresh one of at least 43", len(got), got == secret)
		check(h.GetTokenEndpointAuthMethod() == "client_secret_post", "auth method %q, want client_secret_post", h.GetTokenEndpointAuthMethod())
	}

	verifier, err := client.GenerateCodeVerifier()
	if err != nil {
		return err
	}
	state, err := client.GenerateState()
	if err != nil {
		return err
	}
	challenge := client.GenerateCodeChallenge(verifier)
	authURL, err := h.GetAuthorizationURL(ctx, state, challenge)
	if err != nil {
		return fmt.Errorf("GetAuthorizationURL: %w", err)
	}
	u, err := url.Parse(authURL)
	if err != nil {
		return fmt.Errorf("authorization URL %q: %w", authURL, err)
	}
	q := u.Query()
	u.RawQuery = ""
	check(u.String() == md.AuthorizationEndpoint, "authorization request to %q, want %q", u, md.AuthorizationEndpoint)
	check(q.Get("client_id") == id, "authorization request client_id %q, want %q", q.Get("client_id"), id)
	check(q.Get("redirect_uri") == redirectURI, "authorization request redirect_uri %q", q.Get("redirect_uri"))
	check(q.Get("code_challenge") == challenge && q.Get("code_challenge_method") == "S256",
		"authorization request PKCE %q %q", q.Get("code_challenge"), q.Get("code_challenge_method"))
	check(q.Get("resource") == serverURL, "authorization request resource %q, want %q", q.Get("resource"), serverURL)

	// The user approved; the stand-in token endpoint answers any code.
	h.SetExpectedState(state)
	if err := h.ProcessAuthorizationResponse(ctx, "code-1", state, verifier); err != nil {
		return fmt.Errorf("ProcessAuthorizationResponse: %w", err)
	}
	tok, err := tokens.GetToken(ctx)
	if err != nil {
		return fmt.Errorf("token store: %w", err)
	}
	check(tok.AccessToken == "at-1", "access token %q, want the stand-in's", tok.AccessToken)
	return errors.Join(failed...)
}
