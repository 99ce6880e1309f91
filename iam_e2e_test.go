package caddydcr

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// End-to-end tests of `client_registration iam` (Huawei Cloud IAM Identity
// Center's RegisterClient) through a running Caddy, on both stores.

const iamSiteBody = "\tclient_registration iam {\n\t\t{storage}\n\t}\n\trespond \"site\""

// iamDocRequest is the example request of the reference (seed 004),
// spacing included.
const iamDocRequest = `{ "client_name" : "exampleClient", "client_type" : "public", "token_endpoint_auth_method" : "client_secret_post", "scopes" : [ "openid" ], "grant_types" : [ "authorization_code", "urn:ietf:params:oauth:grant-type:device_code"], "response_types" : [ "code" ] }`

const iamMinimalRequest = `{"client_name":"c","client_type":"public","token_endpoint_auth_method":"client_secret_post","grant_types":["authorization_code"],"response_types":["code"]}`

var iamRequestIDPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// iamResponseShape is the success body: compact, the reference's key order,
// integers for the timestamps, scopes last and optional.
var iamResponseShape = regexp.MustCompile(`^\{"client_info":\{"authorization_endpoint":"[^"]+","client_id":"[A-Za-z0-9_-]{22}","client_id_issued_at":[1-9][0-9]*,"client_secret":"[A-Za-z0-9_-]{43}","client_secret_expires_at":(0|[1-9][0-9]*),"token_endpoint":"[^"]+"(,"scopes":\[("[^"]*"(,"[^"]*")*)?\])?\}\}$`)

// iamCheckHeaders checks the headers every answer of the API carries and
// returns the request id.
func iamCheckHeaders(t *testing.T, resp *http.Response) string {
	t.Helper()
	for k, v := range map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache"} {
		if got := resp.Header.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	rid := resp.Header.Get("X-Request-Id")
	if !iamRequestIDPattern.MatchString(rid) {
		t.Errorf("X-Request-Id %q is not a lowercase UUID v4", rid)
	}
	return rid
}

// iamClientInfo checks a success response and returns its client_info.
func iamClientInfo(t *testing.T, resp *http.Response, body string) map[string]any {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	iamCheckHeaders(t, resp)
	if !iamResponseShape.MatchString(body) {
		t.Fatalf("response shape: %s", body)
	}
	info, ok := object(t, body)["client_info"].(map[string]any)
	if !ok {
		t.Fatalf("client_info is not an object: %s", body)
	}
	return info
}

func iamInt(t *testing.T, info map[string]any, key string) int64 {
	t.Helper()
	n, ok := info[key].(json.Number)
	if !ok {
		t.Fatalf("%s is not a number: %v", key, info[key])
	}
	v, err := n.Int64()
	if err != nil {
		t.Fatalf("%s is not an integer: %v", key, n)
	}
	return v
}

func TestIAMErrorsE2E(t *testing.T) {
	const ct = "Content-Type: application/json"
	const badType = "the request body must be JSON (Content-Type: application/json)"
	grantsMsg := "must be authorization_code or urn:ietf:params:oauth:grant-type:device_code"
	huge := iamMinimalRequest + strings.Repeat(" ", 65537-len(iamMinimalRequest))
	replace := func(old, new string) string { return strings.Replace(iamMinimalRequest, old, new, 1) }
	cases := []struct {
		name, method, body string
		headers            []string
		status             int
		code, msg          string
	}{
		{"GET", "GET", "", nil, 405, "IIC.405", "Method Not Allowed: use POST."},
		{"PUT", "PUT", iamMinimalRequest, []string{ct}, 405, "IIC.405", "Method Not Allowed: use POST."},
		{"DELETE", "DELETE", "", nil, 405, "IIC.405", "Method Not Allowed: use POST."},
		{"OPTIONS", "OPTIONS", "", nil, 405, "IIC.405", "Method Not Allowed: use POST."},
		{"no content type", "POST", iamMinimalRequest, nil, 400, "IIC.400", "Bad Request: " + badType + "."},
		{"text/plain", "POST", iamMinimalRequest, []string{"Content-Type: text/plain"}, 400, "IIC.400", "Bad Request: " + badType + "."},
		{"form", "POST", "client_name=c", []string{"Content-Type: application/x-www-form-urlencoded"}, 400, "IIC.400", "Bad Request: " + badType + "."},
		{"too large", "POST", huge, []string{ct}, 400, "IIC.400", "Bad Request: request body is larger than 65536 bytes."},
		{"empty body", "POST", "", []string{ct}, 400, "IIC.400", "Bad Request: the request body is empty; send a JSON object."},
		{"null body", "POST", "null", []string{ct}, 400, "IIC.400", "Bad Request: the request body must be a JSON object."},
		{"array body", "POST", "[]", []string{ct}, 400, "IIC.400", "Bad Request: the request body must be a JSON object."},
		{"number body", "POST", "42", []string{ct}, 400, "IIC.400", "Bad Request: the request body must be a JSON object."},
		{"malformed", "POST", `{"client_name":"c"`, []string{ct}, 400, "IIC.400", "Bad Request: the request body is not valid JSON."},
		{"invalid UTF-8", "POST", replace(`"client_name":"c"`, "\"client_name\":\"c\xff\""), []string{ct}, 400, "IIC.400", "Bad Request: the request body is not valid JSON."},
		{"trailing data", "POST", iamMinimalRequest + "]", []string{ct}, 400, "IIC.400", "Bad Request: the request body is not valid JSON."},
		{"empty object", "POST", "{}", []string{ct}, 400, "IIC.400", "Bad Request: client_name is required."},
		{"client_name number", "POST", replace(`"client_name":"c"`, `"client_name":1`), []string{ct}, 400, "IIC.400", "Bad Request: client_name must be a string."},
		{"client_name empty", "POST", replace(`"client_name":"c"`, `"client_name":""`), []string{ct}, 400, "IIC.400", "Bad Request: client_name must be 1 to 1024 characters long."},
		{"client_name too long", "POST", replace(`"client_name":"c"`, `"client_name":"`+strings.Repeat("n", 1025)+`"`), []string{ct}, 400, "IIC.400", "Bad Request: client_name must be 1 to 1024 characters long."},
		{"client_type missing", "POST", replace(`"client_type":"public",`, ""), []string{ct}, 400, "IIC.400", "Bad Request: client_type is required."},
		{"client_type null", "POST", replace(`"client_type":"public"`, `"client_type":null`), []string{ct}, 400, "IIC.400", "Bad Request: client_type is required."},
		{"client_type confidential", "POST", replace(`"public"`, `"confidential"`), []string{ct}, 400, "IIC.400", "Bad Request: client_type must be public."},
		{"client_type PUBLIC", "POST", replace(`"public"`, `"PUBLIC"`), []string{ct}, 400, "IIC.400", "Bad Request: client_type must be public."},
		{"method missing", "POST", replace(`"token_endpoint_auth_method":"client_secret_post",`, ""), []string{ct}, 400, "IIC.400", "Bad Request: token_endpoint_auth_method is required."},
		{"method basic", "POST", replace(`"client_secret_post"`, `"client_secret_basic"`), []string{ct}, 400, "IIC.400", "Bad Request: token_endpoint_auth_method must be client_secret_post."},
		{"method array", "POST", replace(`"client_secret_post"`, `["client_secret_post"]`), []string{ct}, 400, "IIC.400", "Bad Request: token_endpoint_auth_method must be a string."},
		{"scopes string", "POST", replace(`{`, `{"scopes":"openid",`), []string{ct}, 400, "IIC.400", "Bad Request: scopes must be an array of strings."},
		{"scope with space", "POST", replace(`{`, `{"scopes":["openid","a b"],`), []string{ct}, 400, "IIC.400", "Bad Request: scopes[1] is not a valid scope token (RFC 6749 section 3.3)."},
		{"grant_types missing", "POST", replace(`"grant_types":["authorization_code"],`, ""), []string{ct}, 400, "IIC.400", "Bad Request: grant_types is required."},
		{"grant_types empty", "POST", replace(`["authorization_code"]`, `[]`), []string{ct}, 400, "IIC.400", "Bad Request: grant_types must not be empty."},
		{"grant type implicit", "POST", replace(`["authorization_code"]`, `["authorization_code","implicit"]`), []string{ct}, 400, "IIC.400", "Bad Request: grant_types[1] " + grantsMsg + "."},
		{"grant_types objects", "POST", replace(`["authorization_code"]`, `[{}]`), []string{ct}, 400, "IIC.400", "Bad Request: grant_types must be an array of strings."},
		{"response_types missing", "POST", replace(`,"response_types":["code"]`, ""), []string{ct}, 400, "IIC.400", "Bad Request: response_types is required."},
		{"response_types empty", "POST", replace(`["code"]`, `[]`), []string{ct}, 400, "IIC.400", "Bad Request: response_types must not be empty."},
		{"response type token", "POST", replace(`["code"]`, `["token"]`), []string{ct}, 400, "IIC.400", "Bad Request: response_types[0] must be code."},
		{"first problem wins", "POST", `{"response_types":"x","client_type":"x","client_name":"c"}`, []string{ct}, 400, "IIC.400", "Bad Request: client_type must be public."},
	}
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, iamSiteBody)
		seen := map[string]bool{}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				ss := &site{t: t, URL: s.URL}
				resp, body := ss.do(tc.method, "/v1/clients", tc.body, tc.headers...)
				if resp.StatusCode != tc.status {
					t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
				}
				rid := iamCheckHeaders(t, resp)
				if seen[rid] {
					t.Errorf("request id %s repeated", rid)
				}
				seen[rid] = true
				want := fmt.Sprintf(`{"error_code":%s,"error_msg":%s,"request_id":%s}`, strconv.Quote(tc.code), strconv.Quote(tc.msg), strconv.Quote(rid))
				if body != want {
					t.Errorf("body\n got %s\nwant %s", body, want)
				}
				if allow := resp.Header.Get("Allow"); (tc.status == 405) != (allow == "POST") {
					t.Errorf("Allow %q with status %d", allow, tc.status)
				}
				if ra := resp.Header.Get("Retry-After"); ra != "" {
					t.Errorf("Retry-After %q on a %d", ra, tc.status)
				}
			})
		}
		t.Run("HEAD", func(t *testing.T) {
			ss := &site{t: t, URL: s.URL}
			resp, body := ss.do("HEAD", "/v1/clients", "")
			if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" || body != "" {
				t.Errorf("HEAD: %d Allow %q body %q", resp.StatusCode, resp.Header.Get("Allow"), body)
			}
			iamCheckHeaders(t, resp)
		})
	})
}

func TestIAMRegisterE2E(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, iamSiteBody)

		// The reference's example request, as printed there.
		before := time.Now().Unix()
		resp, body := s.postJSON("/v1/clients", iamDocRequest)
		after := time.Now().Unix()
		info := iamClientInfo(t, resp, body)
		if !strings.HasSuffix(body, `,"scopes":["openid"]}}`) {
			t.Errorf("scopes not echoed last: %s", body)
		}
		if got := info["authorization_endpoint"]; got != s.URL+"/v1/authorize" {
			t.Errorf("authorization_endpoint %v", got)
		}
		if got := info["token_endpoint"]; got != s.URL+"/v1/tokens" {
			t.Errorf("token_endpoint %v", got)
		}
		issued, expires := iamInt(t, info, "client_id_issued_at"), iamInt(t, info, "client_secret_expires_at")
		if issued < before || issued > after {
			t.Errorf("client_id_issued_at %d not in [%d, %d]", issued, before, after)
		}
		if expires-issued != 7776000 {
			t.Errorf("client_secret_expires_at - client_id_issued_at = %d, want 7776000 (90 days)", expires-issued)
		}
		first, _ := info["client_id"].(string)
		secret, _ := info["client_secret"].(string)

		// A second registration gets new credentials.
		resp, body = s.postJSON("/v1/clients", iamDocRequest)
		info = iamClientInfo(t, resp, body)
		if info["client_id"] == first || info["client_secret"] == secret {
			t.Errorf("second registration reused credentials: %s", body)
		}

		// Without scopes, none are echoed; sent empty, [] is echoed.
		resp, body = s.postJSON("/v1/clients", iamMinimalRequest)
		if info = iamClientInfo(t, resp, body); info["scopes"] != nil || strings.Contains(body, "scopes") {
			t.Errorf("scopes echoed without being sent: %s", body)
		}
		resp, body = s.postJSON("/v1/clients", strings.Replace(iamMinimalRequest, "{", `{"scopes":[],`, 1))
		if iamClientInfo(t, resp, body); !strings.HasSuffix(body, `,"scopes":[]}}`) {
			t.Errorf("empty scopes not echoed: %s", body)
		}

		// Scopes are echoed as sent, duplicates included; unknown members
		// are ignored.
		req := strings.Replace(iamMinimalRequest, "{", `{"scopes":["openid","email","openid"],"redirect_uris":["https://x.example/cb"],"client_secret":"chosen","client_id":"chosen","nested":{"a":[1,{"b":null}]},`, 1)
		resp, body = s.postJSON("/v1/clients", req, "Content-Type: application/json; charset=utf-8")
		info = iamClientInfo(t, resp, body)
		if !strings.HasSuffix(body, `,"scopes":["openid","email","openid"]}}`) || info["client_id"] == "chosen" || info["client_secret"] == "chosen" {
			t.Errorf("unknown members or duplicates: %s", body)
		}

		// Other paths and methods of other paths reach the site.
		for _, p := range []string{"/other", "/v1/clients/", "/v1/clients/x", "/v1/client", "/v1", "/v1%2Fclients", "/v1%2fclients"} {
			for _, m := range []string{"GET", "POST"} {
				resp, body := s.do(m, p, iamMinimalRequest, "Content-Type: application/json")
				if resp.StatusCode != 200 || body != "site" || resp.Header.Get("X-Request-Id") != "" {
					t.Errorf("%s %s: %d %q, X-Request-Id %q", m, p, resp.StatusCode, body, resp.Header.Get("X-Request-Id"))
				}
			}
		}
	})
}

func TestIAMConfigE2E(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, "\tclient_registration iam {\n\t\t{storage}\n"+
			"\t\tauthorization_endpoint https://idp.example/v1/authorize\n"+
			"\t\ttoken_endpoint https://idp.example/v1/tokens\n"+
			"\t\tsecret_lifetime 0\n\t}\n\trespond \"site\"")
		resp, body := s.postJSON("/v1/clients", iamDocRequest)
		info := iamClientInfo(t, resp, body)
		if info["authorization_endpoint"] != "https://idp.example/v1/authorize" || info["token_endpoint"] != "https://idp.example/v1/tokens" {
			t.Errorf("configured endpoints not used: %s", body)
		}
		if iamInt(t, info, "client_id_issued_at") == 0 || iamInt(t, info, "client_secret_expires_at") != 0 {
			t.Errorf("secret_lifetime 0 must mean a secret that never expires (0): %s", body)
		}
	})
}

func TestIAMPrefixE2E(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, "\tclient_registration iam {\n\t\t{storage}\n\t\tprefix /iam\n\t\tsecret_lifetime 1h\n\t}\n\trespond \"site\"")
		resp, body := s.postJSON("/iam/v1/clients", iamDocRequest)
		info := iamClientInfo(t, resp, body)
		if info["authorization_endpoint"] != s.URL+"/iam/v1/authorize" || info["token_endpoint"] != s.URL+"/iam/v1/tokens" {
			t.Errorf("endpoints not under the prefix: %s", body)
		}
		if d := iamInt(t, info, "client_secret_expires_at") - iamInt(t, info, "client_id_issued_at"); d != 3600 {
			t.Errorf("secret lifetime %d s, want 3600", d)
		}
		if resp, body := s.postJSON("/v1/clients", iamDocRequest); resp.StatusCode != 200 || body != "site" {
			t.Errorf("/v1/clients outside the prefix: %d %q", resp.StatusCode, body)
		}
	})
}

// TestHuaweiSDK registers clients through Huawei's own Go SDK
// (huaweicloud-sdk-go-v3 identitycenteroidc/v1), unmodified: test/iamsdk is
// a module of its own (so the SDK stays out of the plugin's go.mod) that
// this test builds once and runs against each store.
func TestHuaweiSDK(t *testing.T) {
	bin := buildTestModule(t, "iamsdk")
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, iamSiteBody)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, s.URL).CombinedOutput()
		if err != nil {
			t.Fatalf("iamsdk %s: %v\n%s", s.URL, err, out)
		}
		t.Logf("iamsdk:\n%s", out)
	})
}
