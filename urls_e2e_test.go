package caddydcr

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-dcr/caddy-dcr/internal/redistest"
)

// TestConfiguredURLsResolved: an issuer or endpoint whose placeholders
// resolve to no absolute URL never reaches a client as an empty or
// relative URL. Placeholders of the environment are checked when the
// config loads (refused); request placeholders at each request (400 in
// the API's format).
func TestConfiguredURLsResolved(t *testing.T) {
	t.Setenv("DCR_TEST_ISSUER", "")
	t.Setenv("DCR_TEST_BARE_HOST", "s3cret.example") // never shown in an error
	t.Setenv("DCR_TEST_KEY_URL", "http://keys.example/jwks.json")
	t.Setenv("DCR_TEST_SUPER", "kalamar")
	t.Setenv("DCR_TEST_CTRL", "s3cret\x01-0123456789abcdef")
	for _, tc := range []struct{ option, want string }{
		{"issuer {env.DCR_TEST_ISSUER}", "issuer {env.DCR_TEST_ISSUER} resolves to an empty value"},
		{"issuer {env.DCR_TEST_BARE_HOST}", "issuer {env.DCR_TEST_BARE_HOST} resolves to a value that is not an absolute"},
		{"token_endpoint {env.DCR_TEST_BARE_HOST}/token", "token_endpoint {env.DCR_TEST_BARE_HOST}/token resolves to a value that is not an absolute"},
		{"authorization_endpoint {file./nonexistent/dcr-url}", "authorization_endpoint {file./nonexistent/dcr-url} resolves to an empty value"},
		{"registration token\n\t\tinitial_access_token {s3cret-in-braces}", "initial_access_token resolves to an empty string (a placeholder in it is unset or unknown"},
		{"registration token\n\t\tinitial_access_token s3cret-0123456789abcdef {env.DCR_TEST_ISSUER}", "initial_access_token resolves to an empty string: {env.DCR_TEST_ISSUER} is unset or empty"},
		{"registration token\n\t\tinitial_access_token {http.request.header.X-Token}", "only {env.*} and {file.*} placeholders are resolved in it, once, when the config loads"},
		{"software_statement {\n\t\t\tissuer https://i.example {\n\t\t\t\tsecret {env.DCR_TEST_ISSUER}\n\t\t\t}\n\t\t}", `issuer "https://i.example": its secret resolves to an empty string`},
		{"software_statement {\n\t\t\tissuer https://i.example {\n\t\t\t\tkey /dev/zero\n\t\t\t}\n\t\t}", "not a regular file"},
		{"software_statement {\n\t\t\tissuer https://i.example {\n\t\t\t\tkey {env.DCR_TEST_KEY_URL}\n\t\t\t}\n\t\t}", "must use https (http only on loopback)"},
		{"}\n\tclient_registration kustvakt {\n\t\tsuper_client {env.DCR_TEST_ISSUER} s3cret", "the client id resolves to an empty string"},
		{"}\n\tclient_registration kustvakt {\n\t\tadmin_token {env.DCR_TEST_ISSUER}", "admin_token resolves to an empty string"},
		{"registration token\n\t\tinitial_access_token {env.DCR_TEST_CTRL}", "initial_access_token holds control characters"},
		{"}\n\tclient_registration kustvakt {\n\t\tsuper_client {env.DCR_TEST_CTRL} s3cret-0123456789abcdef", "the client id holds control characters"},
		// Left as written, they would match only a user, or a statement's
		// claim, of that literal name.
		{"}\n\tclient_registration kustvakt {\n\t\tadmin_user {env.DCR_TEST_ISSUER}", `admin_user "{env.DCR_TEST_ISSUER}" resolves to an empty string`},
		{"}\n\tclient_registration kustvakt {\n\t\tadmin_user {http.request.header.X-Admin}", `admin_user "{http.request.header.X-Admin}" resolves to an empty string`},
		{"software_statement {\n\t\t\tissuer {env.DCR_TEST_ISSUER} {\n\t\t\t\tsecret 0123456789abcdef0123456789abcdef\n\t\t\t}\n\t\t}", `software_statement issuer "{env.DCR_TEST_ISSUER}" resolves to an empty string`},
		{"software_statement {\n\t\t\tissuer https://i.example {\n\t\t\t\tsecret 0123456789abcdef0123456789abcdef\n\t\t\t\tsoftware_id {env.DCR_TEST_ISSUER}\n\t\t\t}\n\t\t}", `software_id "{env.DCR_TEST_ISSUER}" resolves to an empty string`},
		// Unset, it would put the clients in the default store, under
		// another handler's policies.
		{"storage redis {\n\t\t\taddress 127.0.0.1:1\n\t\t\tkey_prefix {env.DCR_TEST_ISSUER}\n\t\t}", `key_prefix "{env.DCR_TEST_ISSUER}": {env.DCR_TEST_ISSUER} resolves to an empty string`},
		{"storage redis {\n\t\t\taddress 127.0.0.1:1\n\t\t\tkey_prefix app{env.DCR_TEST_ISSUER}:\n\t\t}", "resolves to an empty string"},
		// Part of a value: the rest alone would load as a guessable
		// credential ("kal_"), or a name or URL of something else.
		{"registration token\n\t\tinitial_access_token s3cret_{env.DCR_TEST_ISSUER}", "initial_access_token: {env.DCR_TEST_ISSUER} resolves to an empty string"},
		{"registration token\n\t\tinitial_access_token s3cret-0123456789abcdef-{braces}", "initial_access_token: a placeholder in it resolves to an empty string"},
		{"}\n\tclient_registration kustvakt {\n\t\tsuper_client kalamar s3cret_{env.DCR_TEST_ISSUER}", `super_client "kalamar": its secret: {env.DCR_TEST_ISSUER} resolves to an empty string`},
		{"}\n\tclient_registration kustvakt {\n\t\tsuper_client kal_{env.DCR_TEST_ISSUER} s3cret-0123456789abcdef", `super_client "kal_{env.DCR_TEST_ISSUER}": the client id: {env.DCR_TEST_ISSUER} resolves`},
		{"}\n\tclient_registration kustvakt {\n\t\tadmin_token adm_{env.DCR_TEST_ISSUER}", "admin_token: {env.DCR_TEST_ISSUER} resolves to an empty string"},
		{"}\n\tclient_registration kustvakt {\n\t\tadmin_user admin_{env.DCR_TEST_ISSUER}", `admin_user "admin_{env.DCR_TEST_ISSUER}": {env.DCR_TEST_ISSUER} resolves`},
		{"software_statement {\n\t\t\tissuer https://i.example {\n\t\t\t\tsecret 0123456789abcdef0123456789abcdef{env.DCR_TEST_ISSUER}\n\t\t\t}\n\t\t}", `its secret: {env.DCR_TEST_ISSUER} resolves to an empty string`},
		{"software_statement {\n\t\t\tissuer https://i.example/{env.DCR_TEST_ISSUER} {\n\t\t\t\tsecret 0123456789abcdef0123456789abcdef\n\t\t\t}\n\t\t}", `{env.DCR_TEST_ISSUER} resolves to an empty string`},
		{"software_statement {\n\t\t\tissuer https://i.example {\n\t\t\t\tsecret 0123456789abcdef0123456789abcdef\n\t\t\t\tsoftware_id app-{env.DCR_TEST_ISSUER}\n\t\t\t}\n\t\t}", `software_id "app-{env.DCR_TEST_ISSUER}": {env.DCR_TEST_ISSUER} resolves`},
		{"issuer https://auth.{env.DCR_TEST_ISSUER}example", "issuer https://auth.{env.DCR_TEST_ISSUER}example: {env.DCR_TEST_ISSUER} resolves to an empty string"},
		{"storage redis {\n\t\t\taddress 127.0.0.1:1\n\t\t\tpassword s3cret{env.DCR_TEST_ISSUER}\n\t\t}", "storage redis password: {env.DCR_TEST_ISSUER} resolves to an empty string"},
		{"storage redis {\n\t\t\taddress {env.DCR_TEST_ISSUER}:6379\n\t\t}", "address {env.DCR_TEST_ISSUER} resolves to an empty value"},
		{"storage redis {\n\t\t\taddress redis://user{env.DCR_TEST_ISSUER}:s3cret@127.0.0.1:1\n\t\t}", "address {env.DCR_TEST_ISSUER} resolves to an empty value"},
		{"storage redis {\n\t\t\taddress 127.0.0.1:1\n\t\t\tmaster_name mymaster{env.DCR_TEST_ISSUER}\n\t\t}", "master_name mymaster{env.DCR_TEST_ISSUER}: {env.DCR_TEST_ISSUER} resolves"},
		{"storage redis {\n\t\t\taddress 127.0.0.1:1\n\t\t\ttls {\n\t\t\t\tserver_name redis.{env.DCR_TEST_ISSUER}example\n\t\t\t}\n\t\t}", "tls server_name redis.{env.DCR_TEST_ISSUER}example: {env.DCR_TEST_ISSUER} resolves"},
		// The same client twice once resolved: the second would be ignored.
		{"}\n\tclient_registration kustvakt {\n\t\tsuper_client {env.DCR_TEST_SUPER} s3cret-one-0123456789\n\t\tsuper_client kalamar s3cret-two-0123456789", `super_client "{env.DCR_TEST_SUPER}" and super_client "kalamar" are the same client, "kalamar"`},
	} {
		cfg := testCaddyfile("admin off\nstorage file_system "+dataDir(t), 1, "\tclient_registration {\n\t\t"+tc.option+"\n\t}")
		js, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
		if err != nil {
			t.Fatalf("%s: adapt: %v", tc.option, err)
		}
		if err := caddy.Load(js, true); err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: load error %v, want %q", tc.option, err, tc.want)
		}
	}

	// A super client without a secret, which only JSON can say (the
	// Caddyfile refuses "" everywhere): it would let in whoever knows its
	// id.
	js := fmt.Sprintf(`{"admin":{"disabled":true},"storage":{"module":"file_system","root":%q},"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:%d"],"routes":[{"handle":[{"handler":"client_registration","api":"kustvakt","super_clients":[{"client_id":"kalamar","secret":""}]}]}]}}}}}`,
		dataDir(t), redistest.FreePort(t))
	if err := caddy.Load([]byte(js), true); err == nil || !strings.Contains(err.Error(), `super_client "kalamar": a secret is required (super clients are confidential)`) {
		t.Errorf("a super client without a secret: load error %v", err)
	}

	s := startCaddy(t, "caddy", `	client_registration {
		{storage}
		token_endpoint {http.request.header.X-Token-Endpoint}
	}
	client_registration iam {
		{storage}
		issuer https://{http.request.header.X-Host}
	}`)
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/register"} {
		resp, body := s.do(http.MethodPost, path, `{"redirect_uris":["https://app.example/cb"]}`, "Content-Type: application/json")
		if path == "/.well-known/oauth-authorization-server" {
			resp, body = s.do(http.MethodGet, path, "")
		}
		if resp.StatusCode != http.StatusBadRequest || body != `{"error":"invalid_request","error_description":"the server's token_endpoint setting, made from this request, is no usable URL"}` {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
	resp, body := s.do(http.MethodGet, "/.well-known/oauth-authorization-server", "", "X-Token-Endpoint: https://as.example/token")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"token_endpoint":"https://as.example/token"`) {
		t.Errorf("with the header: %d %s", resp.StatusCode, body)
	}
	// What the config check refuses in a fixed URL is refused when a
	// placeholder brings it in: a request's placeholders, the request's
	// fault (400).
	for _, v := range []string{"https://.as.example/token", "https://as.example/token#f", "https://u:p@as.example/token", "https://@as.example/token", "https://as.example/to\tken", "ftp://as.example/token"} {
		if resp, body := s.do(http.MethodGet, "/.well-known/oauth-authorization-server", "", "X-Token-Endpoint: "+v); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("token_endpoint %q: %d %s", v, resp.StatusCode, body)
		}
	}
	if resp, body := s.do(http.MethodGet, "/.well-known/oauth-authorization-server", "", "X-Token-Endpoint: https://as.example/token?x=1"); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"token_endpoint":"https://as.example/token?x=1"`) {
		t.Errorf("token_endpoint with a query: %d %s", resp.StatusCode, body)
	}
	// A delete answers no URL: it works without the header.
	resp, body = s.postJSON("/register", `{"redirect_uris":["https://app.example/cb"]}`, "X-Token-Endpoint: https://as.example/token")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register with the header: %d %s", resp.StatusCode, body)
	}
	m := object(t, body)
	if resp, body := s.do(http.MethodDelete, "/register/"+m["client_id"].(string), "", "Authorization: Bearer "+m["registration_access_token"].(string)); resp.StatusCode != http.StatusNoContent {
		t.Errorf("delete without the header: %d %s", resp.StatusCode, body)
	}
	iamBody := `{"client_name":"c","client_type":"public","token_endpoint_auth_method":"client_secret_post","grant_types":["authorization_code"],"response_types":["code"],"redirect_uris":["https://app.example/cb"]}`
	resp, body = s.postJSON("/v1/clients", iamBody)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `"error_code":"IIC.400","error_msg":"Bad Request: the server's issuer setting, made from this request, is no usable URL."`) {
		t.Errorf("IAM without the header: %d %s", resp.StatusCode, body)
	}
	for _, h := range []string{"iam.example/x?q", "iam.example/x?", "iam.example#f", "@iam.example", "u@iam.example"} {
		resp, body = s.postJSON("/v1/clients", iamBody, "X-Host: "+h)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `"error_code":"IIC.400"`) {
			t.Errorf("IAM with X-Host %q: %d %s", h, resp.StatusCode, body)
		}
	}
	resp, body = s.postJSON("/v1/clients", iamBody, "X-Host: iam.example")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"authorization_endpoint":"https://iam.example/v1/authorize"`) {
		t.Errorf("IAM with the header: %d %s", resp.StatusCode, body)
	}
}

// TestForwardedProtoFromTrustedProxies: behind a proxy that terminates TLS
// and is among the server's trusted_proxies, the URLs given out are https
// (X-Forwarded-Proto); from anyone else the header is ignored.
func TestForwardedProtoFromTrustedProxies(t *testing.T) {
	body := `	client_registration {
		{storage}
	}`
	for _, tc := range []struct {
		trusted bool
		proto   string
		want    string
	}{
		{true, "https", "https://"},
		{true, "http, HTTPS", "https://"},
		{true, "https, http", "http://"}, // the client's own value, then the proxy's
		{true, "http", "http://"},
		{false, "https", "http://"},
	} {
		var s *site
		if tc.trusted {
			s = startCaddyWith(t, "embedded", "admin off\nservers {\n\ttrusted_proxies static 127.0.0.0/8\n}", body)
		} else {
			s = startCaddy(t, "embedded", body)
		}
		tc := struct {
			s           *site
			proto, want string
		}{s, tc.proto, tc.want}
		resp, body := tc.s.postJSON("/register", mcpBody, "X-Forwarded-Proto: "+tc.proto)
		if resp.StatusCode != 201 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if uri, _ := object(t, body)["registration_client_uri"].(string); !strings.HasPrefix(uri, tc.want+"127.0.0.1:") {
			t.Errorf("X-Forwarded-Proto %q: registration_client_uri %q, want %s...", tc.proto, uri, tc.want)
		}
		_, md := tc.s.do(http.MethodGet, "/.well-known/oauth-authorization-server", "", "X-Forwarded-Proto: "+tc.proto)
		if iss, _ := object(t, md)["issuer"].(string); !strings.HasPrefix(iss, tc.want) {
			t.Errorf("X-Forwarded-Proto %q: issuer %q", tc.proto, iss)
		}
	}
}

// TestIssuerFromRequestHost: an issuer made of {http.request.host} works
// for a request to an IPv6 address with a port, which the placeholder
// gives without its brackets; and an issuer that a request's placeholders
// make no URL of is answered 400 at its RFC 8414 path (which used to pass
// the request on to the site).
func TestIssuerFromRequestHost(t *testing.T) {
	port := redistest.FreePort(t)
	loadCaddyfile(t, fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	storage file_system %s
	log {
		output discard
	}
}

http://:%d {
	bind 127.0.0.1
	client_registration {
		prefix /x
		issuer https://{http.request.host}/x
		rate_limit off
	}
	client_registration {
		prefix /h
		issuer https://{http.request.header.X-Host}/h
		token_endpoint https://{http.request.host}/t?x={http.request.header.Q}
		rate_limit off
	}
	client_registration {
		prefix /p
		issuer http://{http.request.hostport}/p
		rate_limit off
	}
	client_registration {
		prefix /d
		rate_limit off
	}
	vars tenant {http.request.header.X-Tenant}
	client_registration {
		prefix /v
		issuer https://{http.vars.tenant}/v
		rate_limit off
	}
	client_registration {
		prefix /Ünï
		issuer HTTP://Auth.Example:80/Ünï
		token_endpoint https://Auth.Example:443/tök?a=1
		rate_limit off
	}
	respond "site" 200
}
`, dataDir(t), port))
	s := &site{t: t, URL: "http://127.0.0.1:" + strconv.Itoa(port)}
	for _, host := range []string{"[::1]:8443", "[::1]", "[2001:db8::1]:443"} {
		want := "https://" + host[:strings.IndexByte(host, ']')+1] + "/x"
		resp, body := s.do(http.MethodGet, "/.well-known/oauth-authorization-server/x", "", "Host: "+host)
		if resp.StatusCode != http.StatusOK || object(t, body)["issuer"] != want {
			t.Errorf("metadata for Host %s: %d %s", host, resp.StatusCode, body)
		}
		resp, body = s.postJSON("/x/register", `{"redirect_uris":["https://app.example/cb"]}`, "Host: "+host)
		if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(object(t, body)["registration_client_uri"].(string), want+"/register/") {
			t.Errorf("register for Host %s: %d %s", host, resp.StatusCode, body)
		}
	}
	// An issuer made of placeholders is published in normal form, as
	// clients' URL parsers put the URL they discovered it from (RFC 8414
	// section 3.3), and so is one written otherwise in the config; what
	// is no URI as written (not ASCII) is percent-encoded.
	for host, want := range map[string]string{"LocalHost:21017": "http://localhost:21017/p", "localhost:80": "http://localhost/p", "LOCALHOST:021": "http://localhost:21/p"} {
		resp, body := s.do(http.MethodGet, "/.well-known/oauth-authorization-server/p", "", "Host: "+host)
		if resp.StatusCode != http.StatusOK || object(t, body)["issuer"] != want {
			t.Errorf("metadata for Host %s: %d %s, want issuer %s", host, resp.StatusCode, body, want)
		}
		resp, body = s.postJSON("/p/register", `{"redirect_uris":["https://app.example/cb"]}`, "Host: "+host)
		if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(object(t, body)["registration_client_uri"].(string), want+"/register/") {
			t.Errorf("register for Host %s: %d %s", host, resp.StatusCode, body)
		}
	}
	const escaped = "/%C3%9Cn%C3%AF"
	resp, body := s.do(http.MethodGet, "/.well-known/oauth-authorization-server"+escaped, "")
	if m := object(t, body); resp.StatusCode != http.StatusOK || m["issuer"] != "http://auth.example"+escaped ||
		m["registration_endpoint"] != "http://auth.example"+escaped+"/register" || m["token_endpoint"] != "https://auth.example/t%C3%B6k?a=1" {
		t.Errorf("metadata of an issuer written in no normal form: %d %s", resp.StatusCode, body)
	}
	resp, body = s.postJSON(escaped+"/register", `{"redirect_uris":["https://app.example/cb"]}`)
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(object(t, body)["registration_client_uri"].(string), "http://auth.example"+escaped+"/register/") {
		t.Errorf("register under an issuer written in no normal form: %d %s", resp.StatusCode, body)
	}
	// What a request puts into the issuer is made normal too, and what
	// the config check refuses of a written issuer (dot segments, an
	// encoded slash, a backslash), or an escape that is none, gets the
	// 400 of a URL the request's placeholders made unusable.
	resp, body = s.postJSON("/h/register", `{"redirect_uris":["https://app.example/cb"]}`, "X-Host: A.EXAMPLE:0443/Ü{")
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(object(t, body)["registration_client_uri"].(string), "https://a.example/%C3%9C%7B/h/register/") {
		t.Errorf("register under an issuer a request made: %d %s", resp.StatusCode, body)
	}
	resp, body = s.postJSON("/h/register", `{"redirect_uris":["https://app.example/cb"]}`, "X-Host: Bücher.Example:8443")
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(object(t, body)["registration_client_uri"].(string), "https://xn--bcher-kva.example:8443/h/register/") {
		t.Errorf("register under an internationalized issuer a request made: %d %s", resp.StatusCode, body)
	}
	for _, hdr := range [][]string{{"X-Host: a.example/.."}, {"X-Host: a.example/%2e%2E"}, {"X-Host: a.example/%2F"}, {"X-Host: a.example/\\evil"}, {"X-Host: a.example", "Q: %zz"}, {"X-Host: xn--zz.example"}} {
		if resp, body := s.postJSON("/h/register", `{"redirect_uris":["https://app.example/cb"]}`, hdr...); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("register with %q: %d %s", hdr, resp.StatusCode, body)
		}
	}
	resp, body = s.do(http.MethodGet, "/.well-known/oauth-authorization-server/h", "", "X-Host: a b")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "issuer setting") {
		t.Errorf("metadata of an issuer made no URL of: %d %s", resp.StatusCode, body)
	}
	// A Host is published as clients' URL parsers write it (an IPv4
	// address in any of its forms as dotted decimal, an IPv6 one in its
	// shortest form), and one they refuse (a number no address, a zone)
	// is refused.
	for host, want := range map[string]string{"127.1:21017": "http://127.0.0.1:21017", "0x7f.0.0.1": "http://127.0.0.1", "[0:0::1]:21017": "http://[::1]:21017", "[::FFFF:127.0.0.1]": "http://[::ffff:7f00:1]"} {
		for _, path := range []string{"/p", "/d"} {
			resp, body := s.postJSON(path+"/register", `{"redirect_uris":["https://app.example/cb"]}`, "Host: "+host)
			if uri, _ := object(t, body)["registration_client_uri"].(string); resp.StatusCode != http.StatusCreated || !strings.HasPrefix(uri, want+path+"/register/") {
				t.Errorf("%s with Host %s: %d %s, want %s...", path, host, resp.StatusCode, body, want)
			}
		}
	}
	for _, host := range []string{"1.2.3.4.5", "999.1.1.1", "a.1", "a.0x10", "1.2.3.08", "[fe80::1%25eth0]", "[::1%2525]:8080"} {
		for _, path := range []string{"/p/register", "/d/register"} {
			// Sent as is: Go's client drops a zone from the Host it sends.
			conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			const body = `{"redirect_uris":["https://app.example/cb"]}`
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", path, host, len(body), body)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("%s with Host %s: %v", path, host, err)
			}
			got, _ := io.ReadAll(resp.Body)
			conn.Close()
			if resp.StatusCode != http.StatusBadRequest || string(got) != `{"error":"invalid_request","error_description":"the Host header must be host or host:port"}` {
				t.Errorf("%s with Host %s: %d %s", path, host, resp.StatusCode, got)
			}
		}
	}
	// A Host whose A-label decodes to no name is refused alike whether
	// the issuer is made of it or is the default, not published by one
	// and answered 500 by the other.
	for _, path := range []string{"/p/register", "/d/register"} {
		for _, host := range []string{"xn--a.example", "XN--ZZZZ.example:8080", "xn--.example"} {
			resp, body := s.postJSON(path, `{"redirect_uris":["https://app.example/cb"]}`, "Host: "+host)
			if resp.StatusCode != http.StatusBadRequest || body != `{"error":"invalid_request","error_description":"the Host header must be host or host:port"}` {
				t.Errorf("%s with Host %s: %d %s", path, host, resp.StatusCode, body)
			}
		}
	}
	// Any placeholder may carry what the request sent (a variable set
	// from a header, a capture of one): no 500 for an issuer made of one.
	resp, body = s.do(http.MethodGet, "/.well-known/oauth-authorization-server/v", "", "X-Tenant: a b")
	if resp.StatusCode != http.StatusBadRequest || body != `{"error":"invalid_request","error_description":"the server's issuer setting, made from this request, is no usable URL"}` {
		t.Errorf("metadata of an issuer a variable made no URL of: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(http.MethodGet, "/.well-known/oauth-authorization-server/v", "", "X-Tenant: t.example")
	if resp.StatusCode != http.StatusOK || object(t, body)["issuer"] != "https://t.example/v" {
		t.Errorf("metadata of an issuer a variable made: %d %s", resp.StatusCode, body)
	}
}

// TestNamesResolved: admin_user, and a software statement's issuer and
// software_id, take the values of their {env.*} placeholders: they are
// compared with the users requests name and with statements' claims, which
// never hold placeholders (left as written, the admin was locked out and a
// user of the placeholder's literal name let in).
func TestNamesResolved(t *testing.T) {
	t.Setenv("DCR_TEST_ADMIN", "root")
	t.Setenv("DCR_TEST_ISS", "https://iss.example")
	t.Setenv("DCR_TEST_SID", "app-1")
	repl := caddy.NewReplacer()
	h := &Handler{AdminUsers: []string{"{env.DCR_TEST_ADMIN}", "alice"}}
	k, err := h.kustvaktOptions(repl)
	if err != nil || strings.Join(k.AdminUsers, ",") != "root,alice" {
		t.Errorf("admin users %q, %v", k.AdminUsers, err)
	}
	h = &Handler{SoftwareStatement: &SoftwareStatementConfig{Issuers: []StatementIssuerConfig{{
		Issuer: "{env.DCR_TEST_ISS}", Secret: "0123456789abcdef0123456789abcdef", SoftwareIDs: []string{"{env.DCR_TEST_SID}", "app-2"},
	}}}}
	s, err := h.statements(repl)
	if err != nil || len(s.Issuers) != 1 || s.Issuers[0].Issuer != "https://iss.example" || strings.Join(s.Issuers[0].SoftwareIDs, ",") != "app-1,app-2" {
		t.Errorf("statements %+v, %v", s, err)
	}
	h.SoftwareStatement.Issuers = append(h.SoftwareStatement.Issuers, StatementIssuerConfig{Issuer: "https://iss.example", Secret: "fedcba9876543210fedcba9876543210"})
	if _, err := h.statements(repl); err == nil || !strings.Contains(err.Error(), `are the same, "https://iss.example"`) {
		t.Errorf("the same issuer twice once resolved: %v", err)
	}
}
