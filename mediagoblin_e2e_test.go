package caddydcr

// End-to-end tests of `client_registration mediagoblin`, the clone of GNU
// MediaGoblin's POST /api/client/register (/work/shared/spec/seed-apis.md
// section 1). Everything goes through HTTP against an in-process Caddy, on
// both backends; bodies are compared byte for byte with what the real
// server (Python json.dumps) sends.
//
// Helpers of this file are prefixed "mg" so they never collide with the
// other API suites of the package.

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-dcr/caddy-dcr/internal/redistest"
)

const mgSiteBody = "\tclient_registration mediagoblin {\n\t\t{storage}\n\t}\n\trespond \"site\""

const mgRegisterPath = "/api/client/register"

var (
	mgIDRe     = regexp.MustCompile(`^[A-Za-z0-9]{22}$`)
	mgSecretRe = regexp.MustCompile(`^[A-Za-z0-9]{43}$`)
	// The success body, exactly: Python's spacing, this key order, no
	// trailing newline.
	mgCredentialsRe = regexp.MustCompile(`^\{"client_id": "([^"\\]*)", "client_secret": "([^"\\]*)", "expires_at": (0|[1-9][0-9]*)\}$`)
)

// mgCheckHeaders checks the headers of every answer of the endpoint.
func mgCheckHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	for k, v := range map[string]string{
		"Content-Type":                 "application/json",
		"Access-Control-Allow-Origin":  "*",
		"Access-Control-Allow-Methods": "POST, GET, OPTIONS",
		"Access-Control-Allow-Headers": "Content-Type, X-Requested-With",
	} {
		if got := resp.Header.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
}

// mgCheckError checks an error answer: status, headers, exact body.
func mgCheckError(t *testing.T, resp *http.Response, body string, status int, msg string) {
	t.Helper()
	if want := `{"error": "` + msg + `"}`; resp.StatusCode != status || body != want {
		t.Errorf("got %d %s\nwant %d %s", resp.StatusCode, body, status, want)
	}
	mgCheckHeaders(t, resp)
	if resp.Header.Get("Cache-Control") != "" {
		t.Errorf("error with Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
}

// mgCheckCredentials checks a success answer and returns its values.
func mgCheckCredentials(t *testing.T, resp *http.Response, body string) (id, secret string, expiresAt int64) {
	t.Helper()
	m := mgCredentialsRe.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("got %d %s, want 200 with credentials", resp.StatusCode, body)
	}
	mgCheckHeaders(t, resp)
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
		t.Errorf("credentials without no-store: Cache-Control %q, Pragma %q", resp.Header.Get("Cache-Control"), resp.Header.Get("Pragma"))
	}
	expiresAt, _ = strconv.ParseInt(m[3], 10, 64)
	return m[1], m[2], expiresAt
}

// mgRegister registers a client with a JSON body and returns its
// credentials, checked against the real server's formats.
func mgRegister(t *testing.T, s *site, body string) (id, secret string) {
	t.Helper()
	resp, b := s.postJSON(mgRegisterPath, body)
	id, secret, exp := mgCheckCredentials(t, resp, b)
	if !mgIDRe.MatchString(id) || !mgSecretRe.MatchString(secret) || exp != 0 {
		t.Fatalf("credentials %q %q %d", id, secret, exp)
	}
	return id, secret
}

// mgForm encodes form fields in order, as a browser or webtest would.
func mgForm(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, url.QueryEscape(kv[i])+"="+url.QueryEscape(kv[i+1]))
	}
	return strings.Join(parts, "&")
}

const (
	mgCTJSON = "Content-Type: application/json"
	mgCTForm = "Content-Type: application/x-www-form-urlencoded"
)

// TestMediaGoblinErrorsE2E covers every row of the error table (1.3) in
// order, the derived cases of 1.7 item 5, and the body decoding table
// (1.2): JSON that is not an object, forms, content types.
func TestMediaGoblinErrorsE2E(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, mgSiteBody)
		id, secret := mgRegister(t, s, `{"type": "client_associate", "application_type": "web"}`)
		upd := `{"type": "client_update", "application_type": "web", "client_id": "` + id + `", "client_secret": "` + secret + `", `
		type row struct {
			name, method, ct, body string
			status                 int
			msg                    string
		}
		rows := []row{
			// 1: json.loads fails.
			{"1 malformed JSON", "POST", mgCTJSON, `{"type": `, 400, "Could not decode data."},
			{"1 empty JSON body", "POST", mgCTJSON, ``, 400, "Could not decode data."},
			{"1 trailing comma", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web",}`, 400, "Could not decode data."},
			{"1 invalid UTF-8", "POST", mgCTJSON, "{\"type\": \"client_associate\", \"application_type\": \"web\", \"application_name\": \"\xff\"}", 400, "Could not decode data."},
			{"1 byte order mark", "POST", mgCTJSON, "\ufeff{}", 400, "Could not decode data."},
			{"1 charset parameter ignored", "POST", "Content-Type: application/json; charset=utf-8", `{`, 400, "Could not decode data."},
			{"1 form body sent as JSON", "POST", mgCTJSON, "type=client_associate&application_type=web", 400, "Could not decode data."},
			// Non-object JSON where the real server answers 500.
			{"1 JSON null", "POST", mgCTJSON, `null`, 400, "Could not decode data."},
			{"1 JSON number", "POST", mgCTJSON, `42`, 400, "Could not decode data."},
			{"1 JSON float", "POST", mgCTJSON, `1.5`, 400, "Could not decode data."},
			{"1 JSON true", "POST", mgCTJSON, `true`, 400, "Could not decode data."},
			{"1 JSON NaN", "POST", mgCTJSON, `NaN`, 400, "Could not decode data."},
			{"1 JSON string containing type", "POST", mgCTJSON, `"client_type"`, 400, "Could not decode data."},
			{"1 JSON list containing type", "POST", mgCTJSON, `["type", "application_type"]`, 400, "Could not decode data."},
			// 2: the content type is neither JSON nor a form.
			{"2 text/plain", "POST", "Content-Type: text/plain", `{"type": "client_associate", "application_type": "web"}`, 400, "Unknown Content-Type"},
			{"2 multipart", "POST", "Content-Type: multipart/form-data; boundary=x", "--x--", 400, "Unknown Content-Type"},
			{"2 case-sensitive JSON", "POST", "Content-Type: Application/JSON", `{"type": "client_associate", "application_type": "web"}`, 400, "Unknown Content-Type"},
			{"2 case-sensitive form", "POST", "Content-Type: Application/x-www-form-urlencoded", "type=client_associate&application_type=web", 400, "Unknown Content-Type"},
			{"2 JSON empty string", "POST", mgCTJSON, `""`, 400, "Unknown Content-Type"},
			// 3: no type.
			{"3 JSON object", "POST", mgCTJSON, `{"application_type": "web", "client_id": 1}`, 400, "No registration type provided."},
			{"3 JSON empty object", "POST", mgCTJSON, `{}`, 400, "No registration type provided."},
			{"3 JSON list", "POST", mgCTJSON, `["client_associate", ["type"]]`, 400, "No registration type provided."},
			{"3 JSON empty list", "POST", mgCTJSON, `[]`, 400, "No registration type provided."},
			{"3 JSON string", "POST", mgCTJSON, `"client_associate"`, 400, "No registration type provided."},
			{"3 form", "POST", mgCTForm, "application_type=web&Type=client_associate", 400, "No registration type provided."},
			{"3 empty form", "POST", mgCTForm, "", 400, "No registration type provided."},
			{"3 no content type", "POST", "", "type=client_associate&application_type=web", 400, "No registration type provided."},
			{"3 no main value", "POST", "Content-Type: ;charset=utf-8", `{"type": "client_associate", "application_type": "web"}`, 400, "No registration type provided."},
			{"3 GET", "GET", "", "", 400, "No registration type provided."},
			{"3 OPTIONS", "OPTIONS", "", "", 400, "No registration type provided."},
			{"3 DELETE", "DELETE", "", "", 400, "No registration type provided."},
			// 4: application_type missing or not web/native, for both types.
			{"4 absent", "POST", mgCTJSON, `{"type": "client_associate"}`, 400, "Unknown application_type."},
			{"4 absent, update", "POST", mgCTJSON, `{"type": "client_update", "client_id": "x", "client_secret": "y"}`, 400, "Unknown application_type."},
			{"4 wrong case", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "Web"}`, 400, "Unknown application_type."},
			{"4 null", "POST", mgCTJSON, `{"type": "client_associate", "application_type": null}`, 400, "Unknown application_type."},
			{"4 list", "POST", mgCTJSON, `{"type": "client_associate", "application_type": ["web"]}`, 400, "Unknown application_type."},
			{"4 before the type", "POST", mgCTJSON, `{"type": "nonsense", "application_type": "desktop"}`, 400, "Unknown application_type."},
			{"4 form", "POST", mgCTForm, "type=client_associate&application_type=", 400, "Unknown application_type."},
			// 5u-7u: update without credentials, or with wrong ones.
			{"5u no client_id", "POST", mgCTJSON, `{"type": "client_update", "application_type": "web", "client_secret": "` + secret + `"}`, 400, "client_id is requried to update."},
			{"6u no client_secret", "POST", mgCTJSON, `{"type": "client_update", "application_type": "web", "client_id": "` + id + `"}`, 400, "client_secret is required to update."},
			{"6u present null id counts", "POST", mgCTJSON, `{"type": "client_update", "application_type": "web", "client_id": null}`, 400, "client_secret is required to update."},
			{"7u unknown id", "POST", mgCTJSON, `{"type": "client_update", "application_type": "web", "client_id": "vwljdhUMhhNbdKizpjZlxv", "client_secret": "` + secret + `"}`, 403, "Unauthorized."},
			{"7u wrong secret", "POST", mgCTJSON, `{"type": "client_update", "application_type": "web", "client_id": "` + id + `", "client_secret": "hJtfhaQzgKerlLVdaeRAgmbcstSOBLRfgOinMxBCHcb"}`, 403, "Unauthorized."},
			{"7u empty secret", "POST", mgCTJSON, `{"type": "client_update", "application_type": "web", "client_id": "` + id + `", "client_secret": ""}`, 403, "Unauthorized."},
			{"7u secret not a string", "POST", mgCTJSON, `{"type": "client_update", "application_type": "web", "client_id": "` + id + `", "client_secret": 1}`, 403, "Unauthorized."},
			{"7u id a number", "POST", mgCTJSON, `{"type": "client_update", "application_type": "web", "client_id": 5, "client_secret": "` + secret + `"}`, 403, "Unauthorized."},
			{"7u id a list (a 500 there)", "POST", mgCTJSON, `{"type": "client_update", "application_type": "web", "client_id": ["` + id + `"], "client_secret": "` + secret + `"}`, 400, "Could not decode data."},
			{"name a list (a 500 there)", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "application_name": ["x"]}`, 400, "Could not decode data."},
			{"7u id of another case", "POST", mgCTJSON, `{"type": "client_update", "application_type": "web", "client_id": "` + strings.ToUpper(id) + `", "client_secret": "` + secret + `"}`, 403, "Unauthorized."},
			{"7u before field checks", "POST", mgCTJSON, `{"type": "client_update", "application_type": "web", "client_id": "` + id + `", "client_secret": "x", "contacts": 5}`, 403, "Unauthorized."},
			{"7u very long id", "POST", mgCTJSON, `{"type": "client_update", "application_type": "web", "client_id": "` + strings.Repeat("A", 1000) + `", "client_secret": "x"}`, 403, "Unauthorized."},
			// 5a-7a: registration with update-only members.
			{"5a client_id", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "client_id": "x", "access_token": "y", "client_secret": "z"}`, 400, "Only set client_id for update."},
			{"5a client_id null", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "client_id": null}`, 400, "Only set client_id for update."},
			{"6a access_token", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "native", "access_token": "y", "client_secret": "z"}`, 400, "access_token not needed for registration."},
			{"7a client_secret", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "native", "client_secret": ""}`, 400, "Only set client_secret for update."},
			{"7a form", "POST", mgCTForm, "type=client_associate&application_type=web&client_secret", 400, "Only set client_secret for update."},
			// 8: any other type.
			{"8 other string", "POST", mgCTJSON, `{"type": "client_register", "application_type": "web"}`, 400, "Invalid registration type"},
			{"8 null", "POST", mgCTJSON, `{"type": null, "application_type": "web"}`, 400, "Invalid registration type"},
			{"8 number", "POST", mgCTJSON, `{"type": 1, "application_type": "native"}`, 400, "Invalid registration type"},
			{"8 last duplicate wins", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "type": "x"}`, 400, "Invalid registration type"},
			{"8 form", "POST", mgCTForm, "type=client_associate+&application_type=web", 400, "Invalid registration type"},
			// 9: logo_uri (or logo_url) that urlparse refuses, or not a string.
			{"9 unbalanced bracket", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "logo_uri": "http://[::1/logo.png", "contacts": 5}`, 400, "Logo URI http://[::1/logo.png is not a valid URI."},
			{"9 IPv4 in brackets", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "logo_uri": "https://[192.0.2.1]/l.png"}`, 400, "Logo URI https://[192.0.2.1]/l.png is not a valid URI."},
			{"9 text before bracket", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "logo_uri": "http://x[::1]/"}`, 400, "Logo URI http://x[::1]/ is not a valid URI."},
			{"9 NFKC", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "logo_uri": "http://a\u2100b/"}`, 400, `Logo URI http://a\u2100b/ is not a valid URI.`},
			{"9 documented name", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "logo_url": "http://]"}`, 400, "Logo URI http://] is not a valid URI."},
			{"9 number", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "logo_uri": 5}`, 400, "Logo URI 5 is not a valid URI."},
			{"9 float", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "logo_uri": 1e16}`, 400, "Logo URI 1e+16 is not a valid URI."},
			{"9 bool", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "logo_uri": true}`, 400, "Logo URI True is not a valid URI."},
			{"9 list", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "logo_uri": ["a", "it's", null]}`, 400, `Logo URI ['a', \"it's\", None] is not a valid URI.`},
			{"9 object", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "logo_uri": {"u": 1.5}}`, 400, "Logo URI {'u': 1.5} is not a valid URI."},
			{"9 form", "POST", mgCTForm, "type=client_associate&application_type=web&logo_uri=http%3A%2F%2F%5B%3A%3A1", 400, "Logo URI http://[::1 is not a valid URI."},
			{"9 on update", "POST", mgCTJSON, upd + `"logo_uri": "http://[1.2.3.4]"}`, 400, "Logo URI http://[1.2.3.4] is not a valid URI."},
			// 10-11: contacts.
			{"10 list", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "contacts": ["a@b"]}`, 400, "Contacts must be a string of space-seporated email addresses."},
			{"10 number", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "contacts": 0, "redirect_uris": 0}`, 400, "Contacts must be a string of space-seporated email addresses."},
			{"10 on update", "POST", mgCTJSON, upd + `"contacts": {"a": "b@c"}}`, 400, "Contacts must be a string of space-seporated email addresses."},
			{"11 no @", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "contacts": "someone@someplace.com tuteo.tsengeo.lu", "redirect_uris": 0}`, 400, "Email tuteo.tsengeo.lu is not a valid email."},
			{"11 Unicode whitespace splits", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "contacts": "a@b\u3000caf\u00e9\u001fc@d"}`, 400, `Email caf\u00e9 is not a valid email.`},
			{"11 form", "POST", mgCTForm, mgForm("type", "client_associate", "application_type", "web", "contacts", "a@b x\ty"), 400, "Email x is not a valid email."},
			{"11 form invalid UTF-8", "POST", mgCTForm, "type=client_associate&application_type=web&contacts=%E2%82", 400, `Email \ufffd is not a valid email.`},
			// 12-13: redirect_uris (or redirect_uri).
			{"12 list", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "redirect_uris": ["https://c/cb"]}`, 400, "redirect_uris must be space-seporated URLs."},
			{"12 documented name", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "redirect_uri": 1}`, 400, "redirect_uris must be space-seporated URLs."},
			{"12 on update", "POST", mgCTJSON, upd + `"redirect_uris": false}`, 400, "redirect_uris must be space-seporated URLs."},
			{"13 bad URI", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "redirect_uris": "https://ok/cb http://[::1:8080/cb http://["}`, 400, "URI http://[::1:8080/cb is not a valid URI"},
			{"13 IPvFuture", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "redirect_uris": "http://[v1.x]/ok http://[v.x]/"}`, 400, "URI http://[v.x]/ is not a valid URI"},
			{"13 documented name", "POST", mgCTJSON, `{"type": "client_associate", "application_type": "web", "redirect_uri": "http://\uff0f"}`, 400, `URI http://\uff0f is not a valid URI`},
			{"13 form", "POST", mgCTForm, mgForm("type", "client_associate", "application_type", "native", "redirect_uris", "app://cb https://[::1]x/"), 400, "URI https://[::1]x/ is not a valid URI"},
			// 1.7 item 5.
			{"1.7 update without id", "POST", mgCTForm, "type=client_update&application_type=web", 400, "client_id is requried to update."},
			{"1.7 update with unknown credentials", "POST", mgCTForm, "type=client_update&application_type=web&client_id=x&client_secret=y", 403, "Unauthorized."},
			{"1.7 no application_type", "POST", mgCTForm, "type=client_associate", 400, "Unknown application_type."},
			{"1.7 contacts list", "POST", mgCTJSON, `{"type":"client_associate","application_type":"web","contacts":["a@b"]}`, 400, "Contacts must be a string of space-seporated email addresses."},
		}
		for _, r := range rows {
			t.Run(r.name, func(t *testing.T) {
				var headers []string
				if r.ct != "" {
					headers = append(headers, r.ct)
				}
				resp, body := s.do(r.method, mgRegisterPath, r.body, headers...)
				mgCheckError(t, resp, body, r.status, r.msg)
			})
		}
		// None of the refused updates touched the client: its secret still
		// works and nothing was set.
		resp, body := s.postJSON(mgRegisterPath, upd+`"application_name": "still here"}`)
		if gotID, gotSecret, _ := mgCheckCredentials(t, resp, body); gotID != id || gotSecret != secret {
			t.Errorf("echo %q %q", gotID, gotSecret)
		}
	})
}

// TestMediaGoblinRegisterE2E runs the successful registrations of the real
// server's tests (1.7 items 1-3) and of the documentation (seed 000).
func TestMediaGoblinRegisterE2E(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, mgSiteBody)
		seen := map[string]bool{}
		for name, body := range map[string]string{
			"1.7 minimal": mgForm("type", "client_associate", "application_type", "native"),
			"1.7 full": mgForm("type", "client_associate", "application_type", "web", "application_name", "Testificate MD",
				"contacts", "someone@someplace.com tuteo@tsengeo.lu", "logo_uri", "http://ayrel.com/utral.png",
				"redirect_uris", "http://navi-kosman.lu http://gmg-yawne-oeru.lu"),
			"1.7 test_client_update": mgForm("type", "client_associate", "application_type", "web", "application_name", "neytiri",
				"contacts", "someone@someplace.com abc@cba.com", "logo_uri", "http://place.com/picture.png",
				"redirect_uris", "http://blah.gmg/whatever https://inboxen.org/"),
			"form with charset":      "type=client_associate&application_type=web&application_type=native",
			"documented names":       mgForm("type", "client_associate", "application_type", "web", "logo_url", "https://myclient.org/images/my_logo.png", "redirect_uri", "https://myclient.org/cb"),
			"empty values":           mgForm("type", "client_associate", "application_type", "web", "logo_uri", "", "contacts", "", "redirect_uris", "  "),
			"anything urlparse eats": mgForm("type", "client_associate", "application_type", "web", "logo_uri", "not a url at all", "redirect_uris", "x: //[::1]:80 http://[fe80::1%25eth0]/ http://[v7.x]/"),
		} {
			t.Run(name, func(t *testing.T) {
				ct := mgCTForm
				if name == "form with charset" {
					ct = "Content-Type: application/x-www-form-urlencoded; charset=UTF-8"
				}
				resp, b := s.do(http.MethodPost, mgRegisterPath, body, ct)
				id, secret, exp := mgCheckCredentials(t, resp, b)
				if !mgIDRe.MatchString(id) || !mgSecretRe.MatchString(secret) || exp != 0 {
					t.Errorf("credentials %q %q %d", id, secret, exp)
				}
				if seen[id] || seen[secret] {
					t.Errorf("credentials issued twice")
				}
				seen[id], seen[secret] = true, true
			})
		}

		// Seed 000: the minimal JSON registration, then the update example.
		// The documented update has a trailing comma, so sent byte for byte
		// it cannot be decoded.
		resp, b := s.postJSON(mgRegisterPath, "{\n    \"type\": \"client_associate\",\n    \"application_type\": \"native\"\n}")
		id, secret, _ := mgCheckCredentials(t, resp, b)
		if !mgIDRe.MatchString(id) || !mgSecretRe.MatchString(secret) {
			t.Fatalf("credentials %q %q", id, secret)
		}
		docUpdate := `{
    "type": "client_update",
    "client_id": "vwljdhUMhhNbdKizpjZlxv",
    "client_secret": "hJtfhaQzgKerlLVdaeRAgmbcstSOBLRfgOinMxBCHcb",
    "application_type": "web",
    "application_name": "MyClient!",
    "logo_url": "https://myclient.org/images/my_logo.png",
    "contacts": "myemail@someprovider.com another_developer@provider.net",
}`
		resp, b = s.postJSON(mgRegisterPath, docUpdate)
		mgCheckError(t, resp, b, http.StatusBadRequest, "Could not decode data.")
		// With the client's own credentials it still fails on the comma.
		mine := strings.NewReplacer("vwljdhUMhhNbdKizpjZlxv", id, "hJtfhaQzgKerlLVdaeRAgmbcstSOBLRfgOinMxBCHcb", secret).Replace(docUpdate)
		resp, b = s.postJSON(mgRegisterPath, mine)
		mgCheckError(t, resp, b, http.StatusBadRequest, "Could not decode data.")
		// Without the trailing comma it succeeds and echoes what was sent.
		fixed := strings.Replace(mine, "provider.net\",\n}", "provider.net\"\n}", 1)
		resp, b = s.postJSON(mgRegisterPath, fixed)
		if want := `{"client_id": "` + id + `", "client_secret": "` + secret + `", "expires_at": 0}`; resp.StatusCode != http.StatusOK || b != want {
			t.Fatalf("update: %d %s\nwant 200 %s", resp.StatusCode, b, want)
		}
		mgCheckCredentials(t, resp, b)
		// The documented example with the literal credentials is refused.
		resp, b = s.postJSON(mgRegisterPath, strings.Replace(docUpdate, "provider.net\",\n}", "provider.net\"\n}", 1))
		mgCheckError(t, resp, b, http.StatusForbidden, "Unauthorized.")
	})
}

// TestMediaGoblinUpdateE2E: updates persist, keep working with the same
// secret, and are refused with another one.
func TestMediaGoblinUpdateE2E(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, mgSiteBody)
		id, secret := mgRegister(t, s, `{"type": "client_associate", "application_type": "native", "application_name": "first"}`)
		cred := mgForm("client_id", id, "client_secret", secret)
		for i, body := range []string{
			"type=client_update&application_type=web&application_name=second&" + cred,
			"type=client_update&application_type=native&logo_uri=http://x/l.png&contacts=a@b+c@d&" + cred,
			`{"type": "client_update", "application_type": "web", "client_id": "` + id + `", "client_secret": "` + secret + `", "logo_uri": null, "contacts": null}`,
		} {
			ct := mgCTForm
			if strings.HasPrefix(body, "{") {
				ct = mgCTJSON
			}
			resp, b := s.do(http.MethodPost, mgRegisterPath, body, ct)
			if want := `{"client_id": "` + id + `", "client_secret": "` + secret + `", "expires_at": 0}`; resp.StatusCode != http.StatusOK || b != want {
				t.Fatalf("update %d: %d %s", i, resp.StatusCode, b)
			}
			mgCheckCredentials(t, resp, b)
		}
		// The stored logo is checked again on an update that omits it, so
		// a stored valid one keeps passing.
		resp, b := s.do(http.MethodPost, mgRegisterPath, "type=client_update&application_type=web&logo_uri=http://y/l.png&"+cred, mgCTForm)
		mgCheckCredentials(t, resp, b)
		resp, b = s.do(http.MethodPost, mgRegisterPath, "type=client_update&application_type=web&"+cred, mgCTForm)
		mgCheckCredentials(t, resp, b)

		resp, b = s.do(http.MethodPost, mgRegisterPath, mgForm("type", "client_update", "application_type", "web", "client_id", id, "client_secret", secret[:42]), mgCTForm)
		mgCheckError(t, resp, b, http.StatusForbidden, "Unauthorized.")
		// Another client's secret does not open this one.
		_, other := mgRegister(t, s, `{"type": "client_associate", "application_type": "web"}`)
		resp, b = s.do(http.MethodPost, mgRegisterPath, mgForm("type", "client_update", "application_type", "web", "client_id", id, "client_secret", other), mgCTForm)
		mgCheckError(t, resp, b, http.StatusForbidden, "Unauthorized.")
	})
}

// TestMediaGoblinSharedModelE2E: a client registered through RFC 7591 on
// the same store is not MediaGoblin's to update, even with its secret:
// MediaGoblin's looser URL rules would otherwise get around RFC 7591's
// redirect policy. It answers as for an unknown client.
func TestMediaGoblinSharedModelE2E(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, "\tclient_registration rfc7591 {\n\t\t{storage}\n\t}\n"+mgSiteBody)
		resp, b := s.postJSON("/register", `{"redirect_uris":["https://c.example/cb"],"token_endpoint_auth_method":"client_secret_basic","client_name":"rfc"}`)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("rfc7591 register: %d %s", resp.StatusCode, b)
		}
		m := object(t, b)
		id, _ := m["client_id"].(string)
		secret, _ := m["client_secret"].(string)
		if id == "" || secret == "" {
			t.Fatalf("rfc7591 credentials missing: %s", b)
		}
		resp, b = s.postJSON(mgRegisterPath, `{"type": "client_update", "application_type": "web", "client_id": "`+id+`", "client_secret": "`+secret+`", "application_name": "renamed", "redirect_uris": "http://plain.example/cb"}`)
		mgCheckError(t, resp, b, http.StatusForbidden, "Unauthorized.")
		// The RFC 7591 view of the client is unchanged.
		rat, _ := m["registration_access_token"].(string)
		resp, b = s.do(http.MethodGet, "/register/"+id, "", "Authorization: Bearer "+rat)
		if c := object(t, b); resp.StatusCode != http.StatusOK || c["client_name"] != "rfc" || fmt.Sprint(c["redirect_uris"]) != "[https://c.example/cb]" {
			t.Errorf("rfc7591 read: %d %s", resp.StatusCode, b)
		}
	})
}

// TestMediaGoblinRoutesE2E: only the exact path is the API's; everything
// else reaches the rest of the site.
func TestMediaGoblinRoutesE2E(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, mgSiteBody)
		for _, p := range []string{"/", "/api/client/register/", "/api/client/registered", "/api/client", "/register", "/API/client/register"} {
			resp, b := s.do(http.MethodPost, p, `{"type": "client_associate", "application_type": "web"}`, mgCTJSON)
			if resp.StatusCode != http.StatusOK || b != "site" {
				t.Errorf("%s: %d %q, want the site", p, resp.StatusCode, b)
			}
		}
		// A query string does not matter; the body does.
		resp, b := s.do(http.MethodPost, mgRegisterPath+"?type=client_associate&application_type=web", "", mgCTForm)
		mgCheckError(t, resp, b, http.StatusBadRequest, "No registration type provided.")

		p := startCaddy(t, backend, "\tclient_registration mediagoblin {\n\t\t{storage}\n\t\tprefix /gmg\n\t}\n\trespond \"site\"")
		resp, b = p.do(http.MethodPost, mgRegisterPath, `{"type": "client_associate", "application_type": "web"}`, mgCTJSON)
		if b != "site" {
			t.Errorf("unprefixed path under a prefix: %d %q", resp.StatusCode, b)
		}
		resp, b = p.do(http.MethodPost, "/gmg"+mgRegisterPath, `{"type": "client_associate", "application_type": "web"}`, mgCTJSON)
		mgCheckCredentials(t, resp, b)
	})
}

// TestMediaGoblinLimitsE2E: bodies over 64 KiB are refused; a configured
// secret lifetime shows in expires_at and ends updates.
func TestMediaGoblinLimitsE2E(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, "\tclient_registration mediagoblin {\n\t\t{storage}\n\t\tsecret_lifetime 1h\n\t}\n\trespond \"site\"")
		big := `{"type": "client_associate", "application_type": "web", "application_name": "` + strings.Repeat("x", 64<<10) + `"}`
		resp, b := s.postJSON(mgRegisterPath, big)
		mgCheckError(t, resp, b, http.StatusRequestEntityTooLarge, "Request body too large.")

		before := time.Now().Unix()
		resp, b = s.postJSON(mgRegisterPath, `{"type": "client_associate", "application_type": "web"}`)
		id, secret, exp := mgCheckCredentials(t, resp, b)
		if exp < before+3600 || exp > time.Now().Unix()+3600 {
			t.Errorf("expires_at %d, want about %d", exp, before+3600)
		}
		resp, b = s.postJSON(mgRegisterPath, `{"type": "client_update", "application_type": "web", "client_id": "`+id+`", "client_secret": "`+secret+`"}`)
		if _, _, got := mgCheckCredentials(t, resp, b); got != exp {
			t.Errorf("update expires_at %d, want %d", got, exp)
		}
	})
}

// TestMediaGoblinHead: a HEAD with a registration answers as a POST would,
// headers and length, but registers nothing (its credentials could reach
// nobody): under max_clients 1, a POST after it still gets the one place.
func TestMediaGoblinHead(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, "\tclient_registration mediagoblin {\n\t\t{storage}\n\t\tmax_clients 1\n\t}\n\trespond \"site\"")
		reg := `{"type": "client_associate", "application_type": "web"}`
		head, b := s.do(http.MethodHead, mgRegisterPath, reg, mgCTJSON)
		if head.StatusCode != http.StatusOK || b != "" || head.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("HEAD: %d %v %q", head.StatusCode, head.Header, b)
		}
		mgCheckHeaders(t, head)
		resp, b := s.do(http.MethodPost, mgRegisterPath, reg, mgCTJSON)
		mgCheckCredentials(t, resp, b)
		if head.ContentLength != int64(len(b)) {
			t.Errorf("HEAD Content-Length %d, POST body %d bytes", head.ContentLength, len(b))
		}
		post, pb := s.do(http.MethodPost, mgRegisterPath, reg, mgCTJSON)
		if post.StatusCode == http.StatusOK {
			t.Fatalf("a second POST under max_clients 1: %d %s", post.StatusCode, pb)
		}
		// The cap is full: a HEAD gets what that POST got.
		head, b = s.do(http.MethodHead, mgRegisterPath, reg, mgCTJSON)
		if head.StatusCode != post.StatusCode || b != "" || head.Header.Get("Retry-After") != post.Header.Get("Retry-After") || head.ContentLength != int64(len(pb)) {
			t.Errorf("HEAD at a full cap: %d %v; POST: %d %v %s", head.StatusCode, head.Header, post.StatusCode, post.Header, pb)
		}
	})
}

// TestMediaGoblinHeadRefused: a HEAD that would register gets the refusal
// the POST would get from the rate limit (and counts as an attempt, as the
// POST does) and from an unreachable store.
func TestMediaGoblinHeadRefused(t *testing.T) {
	redis := redistest.Start(t)
	s := startCaddy(t, "redis", fmt.Sprintf("\tclient_registration mediagoblin {\n\t\tstorage redis {\n\t\t\taddress %s\n\t\t\tkey_prefix headref:\n\t\t}\n\t\trate_limit 2 1h\n\t}", redis.Addr))
	reg := `{"type": "client_associate", "application_type": "web"}`
	for i, want := range []int{200, 200, 429} {
		head, b := s.do(http.MethodHead, mgRegisterPath, reg, mgCTJSON)
		if head.StatusCode != want || b != "" || (want == 429) != (head.Header.Get("Retry-After") != "") {
			t.Fatalf("HEAD %d: %d %v, want %d", i, head.StatusCode, head.Header, want)
		}
	}
	if post, b := s.do(http.MethodPost, mgRegisterPath, reg, mgCTJSON); post.StatusCode != 429 {
		t.Fatalf("POST after two HEADs under rate_limit 2: %d %s", post.StatusCode, b)
	}
	redis.Stop()
	head, _ := s.do(http.MethodHead, mgRegisterPath, reg, mgCTJSON)
	post, pb := s.do(http.MethodPost, mgRegisterPath, reg, mgCTJSON)
	if head.StatusCode != 503 || post.StatusCode != 503 || head.Header.Get("Retry-After") != post.Header.Get("Retry-After") || head.ContentLength != int64(len(pb)) {
		t.Fatalf("Redis down: HEAD %d %v, POST %d %v %s", head.StatusCode, head.Header, post.StatusCode, post.Header, pb)
	}
}

// TestMediaGoblinHeadWritesFailing: a store that answers reads but refuses
// writes (a Redis out of memory) counts its clients for a HEAD as before;
// once a POST has found the writes refused, a HEAD gets its 503 too, until
// a registration is written again. A Redis that stalled for a moment is no
// such store: once it answers, a HEAD gets 200 at once.
func TestMediaGoblinHeadWritesFailing(t *testing.T) {
	redis := redistest.Start(t)
	s := startCaddy(t, "redis", fmt.Sprintf("\tclient_registration mediagoblin {\n\t\tstorage redis {\n\t\t\taddress %s\n\t\t\ttimeout 300ms\n\t\t}\n\t\trate_limit off\n\t}", redis.Addr))
	reg := `{"type": "client_associate", "application_type": "web"}`
	redis.CLI("config", "set", "maxmemory-policy", "noeviction")
	redis.CLI("config", "set", "maxmemory", "1")
	post, pb := s.do(http.MethodPost, mgRegisterPath, reg, mgCTJSON)
	head, _ := s.do(http.MethodHead, mgRegisterPath, reg, mgCTJSON)
	if post.StatusCode != 503 || head.StatusCode != 503 || head.Header.Get("Retry-After") != post.Header.Get("Retry-After") || head.ContentLength != int64(len(pb)) {
		t.Fatalf("Redis out of memory: HEAD %d %v, POST %d %v %s", head.StatusCode, head.Header, post.StatusCode, post.Header, pb)
	}
	redis.CLI("config", "set", "maxmemory", "0")
	if post, b := s.do(http.MethodPost, mgRegisterPath, reg, mgCTJSON); post.StatusCode != 200 {
		t.Fatalf("POST after Redis has memory again: %d %s", post.StatusCode, b)
	}
	// The outage ends with a registration sent after it began and written,
	// not with a HEAD.
	if head, b := s.do(http.MethodHead, mgRegisterPath, reg, mgCTJSON); head.StatusCode != 200 {
		t.Fatalf("HEAD after a registration was written again: %d %v %q", head.StatusCode, head.Header, b)
	}

	redis.Pause()
	post, pb = s.do(http.MethodPost, mgRegisterPath, reg, mgCTJSON)
	redis.Resume()
	if post.StatusCode != 503 {
		t.Fatalf("POST with Redis stopped: %d %s", post.StatusCode, pb)
	}
	if head, b := s.do(http.MethodHead, mgRegisterPath, reg, mgCTJSON); head.StatusCode != 200 {
		t.Fatalf("HEAD once a stalled Redis answers again: %d %v %q", head.StatusCode, head.Header, b)
	}
}

// TestMediaGoblinConcurrentUpdates: many simultaneous updates of one client
// all succeed (compare-and-set retried, with jitter, until each wins its
// turn), on both stores; the last one written is what the client holds.
func TestMediaGoblinConcurrentUpdates(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := startCaddy(t, backend, mgSiteBody)
		id, secret := mgRegister(t, s, `{"type": "client_associate", "application_type": "web"}`)
		const n = 50
		var wg sync.WaitGroup
		codes := make(chan string, n)
		for i := range n {
			wg.Go(func() {
				resp, body := s.postJSON("/api/client/register", fmt.Sprintf(`{"type": "client_update", "application_type": "web", "client_id": %q, "client_secret": %q, "application_name": "name %d"}`, id, secret, i))
				if resp.StatusCode != 200 {
					codes <- fmt.Sprintf("%d %s", resp.StatusCode, body)
				}
			})
		}
		wg.Wait()
		close(codes)
		for c := range codes {
			t.Errorf("a concurrent update failed: %s", c)
		}
	})
}
