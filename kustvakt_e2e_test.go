package caddydcr

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-dcr/caddy-dcr/internal/redistest"
)

// Kustvakt end to end: the user comes from basic_auth (as in the wiki's curl
// examples), only when the request carries credentials, so that client info
// can also be asked for as a guest.

var (
	kustvaktID     = regexp.MustCompile(`^[34679bdfhmnprtFGHJLMNPRT]{22}$`)
	kustvaktSecret = regexp.MustCompile(`^[A-Za-z0-9_-]{21}[AQgw]$`)
	javaDate       = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{3})?)?(Z|[+-]\d\d:\d\d)\[[A-Za-z/_]+\]$`)
)

const kustvaktOAuthCT = "application/json;charset=utf-8"

func basicHash(t *testing.T) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// authedAPIs is a site body with the user alice (password "pw") behind
// basic_auth, as Kustvakt needs, and a route with one client_registration
// per API ("" for rfc7591), in the order given, each holding block.
func authedAPIs(t *testing.T, block string, apis ...string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "\t@authed header_regexp Authorization ^(?i)basic\\s\n\tbasic_auth @authed {\n\t\talice %s\n\t}\n\troute {\n", basicHash(t))
	for _, api := range apis {
		if api != "" {
			api += " "
		}
		fmt.Fprintf(&b, "\t\tclient_registration %s{\n\t\t\t%s\n\t\t}\n", api, block)
	}
	b.WriteString("\t}")
	return b.String()
}

func basicAuth(user string) string {
	return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":pw"))
}

// kustvaktSite starts a site with the Kustvakt API (and the RFC 7591,
// MediaGoblin and IAM APIs on the same store) behind basic_auth.
func kustvaktSite(t *testing.T, backend string, extra string) *site {
	h := basicHash(t)
	return startCaddy(t, backend, fmt.Sprintf(`	@authed header Authorization *
	basic_auth @authed {
		alice %[1]s
		bob %[1]s
		root %[1]s
	}
	route {
		client_registration kustvakt {
			{storage}
			super_client superclient s3cret
			admin_user root
%[2]s
		}
		client_registration rfc7591 {
			{storage}
		}
		client_registration mediagoblin {
			{storage}
		}
		client_registration iam {
			{storage}
		}
	}
	respond "site"`, h, extra))
}

func (s *site) kvRegister(user, body string) (*http.Response, string) {
	s.t.Helper()
	return s.postJSON("/api/v1.0/oauth2/client/register", body, basicAuth(user))
}

func (s *site) kvForm(path, user string, form url.Values) (*http.Response, string) {
	s.t.Helper()
	h := []string{"Content-Type: application/x-www-form-urlencoded"}
	if user != "" {
		h = append(h, basicAuth(user))
	}
	return s.do(http.MethodPost, path, form.Encode(), h...)
}

func superForm(kv ...string) url.Values {
	v := url.Values{"super_client_id": {"superclient"}, "super_client_secret": {"s3cret"}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

const confidentialClient = `{"name":"OAuth2ClientTest","type":"CONFIDENTIAL","url":"http://example.client.com","redirect_uri":"https://example.client.com/redirect","description":"This is a confidential test client."}`

func checkOAuthError(t *testing.T, resp *http.Response, body string, status int, code, desc string) {
	t.Helper()
	want := fmt.Sprintf(`{"error_description":%q,"error":%q}`, desc, code)
	want = strings.ReplaceAll(want, "/", `\/`)
	if resp.StatusCode != status || body != want {
		t.Fatalf("got %d %s\nwant %d %s", resp.StatusCode, body, status, want)
	}
	h := resp.Header
	if h.Get("Content-Type") != kustvaktOAuthCT || h.Get("Cache-Control") != "no-store" || h.Get("Pragma") != "no-store" {
		t.Fatalf("headers %v", h)
	}
	if status == 401 && h.Get("WWW-Authenticate") != `Basic realm="Kustvakt"` {
		t.Fatalf("challenge %q", h.Values("WWW-Authenticate"))
	}
}

func checkNotification(t *testing.T, resp *http.Response, body string, status int, want string) {
	t.Helper()
	if resp.StatusCode != status || body != want+"\n" {
		t.Fatalf("got %d %q\nwant %d %q", resp.StatusCode, body, status, want+"\n")
	}
	if ct := resp.Header.Get("Content-Type"); ct != kustvaktOAuthCT {
		t.Fatalf("content type %q", ct)
	}
	if status == 401 {
		if got := strings.Join(resp.Header.Values("WWW-Authenticate"), " | "); got != `Basic realm="Kustvakt" | Bearer realm="Kustvakt"` {
			t.Fatalf("challenges %q", got)
		}
	}
}

func TestKustvaktRegister(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := kustvaktSite(t, backend, "")
		// Seed 002 / test example 1: confidential.
		resp, body := s.kvRegister("alice", confidentialClient)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != kustvaktOAuthCT {
			t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
		}
		m := object(t, body)
		if !kustvaktID.MatchString(m["client_id"].(string)) || !kustvaktSecret.MatchString(m["client_secret"].(string)) {
			t.Fatalf("formats: %s", body)
		}
		if want := fmt.Sprintf(`{"client_id":"%s","client_secret":"%s"}`, m["client_id"], m["client_secret"]); body != want {
			t.Fatalf("body %s", body)
		}
		// Example 2: public, no secret; both roots work.
		resp, body = s.postJSON("/api/oauth2/client/register", `{"name":"my client","type":"PUBLIC","redirect_uri":"https://my.client.com","description":"my public client"}`, basicAuth("alice"))
		if resp.StatusCode != 200 || !regexp.MustCompile(`^\{"client_id":"[34679bdfhmnprtFGHJLMNPRT]{22}"\}$`).MatchString(body) {
			t.Fatalf("public: %d %s", resp.StatusCode, body)
		}
		// The scheme's name is case-insensitive (RFC 9110 section 11.1): a
		// lowercase "basic" is alice too, not the guest.
		lower := "authorization: basic " + strings.TrimPrefix(basicAuth("alice"), "Authorization: Basic ")
		if resp, body := s.postJSON("/api/oauth2/client/register", `{"name":"lower","type":"PUBLIC","description":"d"}`, lower); resp.StatusCode != 200 {
			t.Fatalf("lowercase basic: %d %s", resp.StatusCode, body)
		}
		// Accepted variants: local redirect, fragment in url, wiki's
		// refreshTokenExpiry spelling, scalars coerced to strings, type by index.
		for _, ok := range []string{
			`{"name":"Local","type":"PUBLIC","description":"d","redirect_uri":"http://localhost:1410"}`,
			`{"name":"Frag","type":"CONFIDENTIAL","description":"d","url":"http://public.client.com/index.html#bar"}`,
			`{"name":"Wiki","type":"CONFIDENTIAL","description":"d","refreshTokenExpiry":7776000}`,
			`{"name":123,"type":0,"description":true}`,
			`{"name":"Max","type":"CONFIDENTIAL","description":"d","refresh_token_expiry":31535000}`,
			`{"name":"IPv4","type":"CONFIDENTIAL","description":"d","url":"http://192.168.1.10:8080/x"}`,
		} {
			if resp, body := s.kvRegister("bob", ok); resp.StatusCode != 200 {
				t.Errorf("%s: %d %s", ok, resp.StatusCode, body)
			}
		}
	})
}

func TestKustvaktRegisterErrors(t *testing.T) {
	type row struct {
		name, body string
		status     int
		code, desc string // OAuth2 format when code != ""
		notif      string // notification format otherwise
	}
	rows := []row{
		{"short name", `{"name":"R","type":"CONFIDENTIAL","description":"d"}`, 400, "invalid_request", "client_name must contain at least 3 characters", ""},
		{"no name", `{"type":"CONFIDENTIAL","description":"d"}`, 400, "invalid_request", "client_name is null", ""},
		{"null name", `{"name":null,"type":"CONFIDENTIAL","description":"d"}`, 400, "invalid_request", "client_name is null", ""},
		{"empty name", `{"name":"","type":"CONFIDENTIAL","description":"d"}`, 400, "invalid_request", "client_name must contain at least 3 characters", ""},
		{"no type", `{"name":"abc","description":"d"}`, 400, "invalid_request", "client_type is null", ""},
		{"no description", `{"name":"abc","type":"PUBLIC"}`, 400, "invalid_request", "client_description is null", ""},
		{"empty description", `{"name":"abc","type":"PUBLIC","description":""}`, 400, "invalid_request", "client_description is empty", ""},
		{"name checked first", `{"name":"R"}`, 400, "invalid_request", "client_name must contain at least 3 characters", ""},
		{"bad url", `{"name":"abc","type":"PUBLIC","description":"d","url":"https://test.public.client"}`, 400, "invalid_request", "Invalid URL", ""},
		{"local url", `{"name":"abc","type":"PUBLIC","description":"d","url":"http://localhost:8080"}`, 400, "invalid_request", "Invalid URL", ""},
		{"fragment redirect", `{"name":"abc","type":"PUBLIC","description":"d","redirect_uri":"https://public.client.com/redirect.html#bar"}`, 400, "invalid_request", "Invalid redirect URI", ""},
		{"ftp redirect", `{"name":"abc","type":"PUBLIC","description":"d","redirect_uri":"ftp://x.example.com/"}`, 400, "invalid_request", "Invalid redirect URI", ""},
		{"plugin without url", `{"name":"Plugin","type":"CONFIDENTIAL","description":"This is a plugin test client.","source":{"plugin":"source"},"refresh_token_expiry":7776000}`, 400, "", "", `{"errors":[[105,"URL is required for plugins.","url"]]}`},
		{"public plugin", `{"name":"Plugin","type":"PUBLIC","description":"d","url":"https://my.confidential.plugin.de","source":{"plugin":"source"}}`, 400, "invalid_request", "Only confidential plugins are supported.", ""},
		{"expiry too long", `{"name":"abc","type":"CONFIDENTIAL","description":"d","refresh_token_expiry":31537000}`, 400, "invalid_request", "Maximum refresh token expiry is 31536000 seconds (1 year)", ""},
		{"public expiry", `{"name":"abc","type":"PUBLIC","description":"d","refresh_token_expiry":31535000}`, 400, "invalid_request", "Custom refresh token expiry is only applicable for confidential clients", ""},
		{"unknown field", `{"name":"abc","type":"PUBLIC","description":"d","foo":1}`, 400, "", "", `{"errors":[[201,"Unrecognized field \"foo\": known fields are name, type, description, url, redirect_uri, refresh_token_expiry, source",null]]}`},
		{"bad enum", `{"name":"abc","type":"confidential","description":"d"}`, 400, "", "", `{"errors":[[201,"Field \"type\" must be one of CONFIDENTIAL, PUBLIC",null]]}`},
		{"array name", `{"name":["abc"],"type":"PUBLIC","description":"d"}`, 400, "", "", `{"errors":[[201,"Field \"name\" must be a string, not an array or object",null]]}`},
		{"not an object", `[1]`, 400, "", "", `{"errors":[[201,"The request body must be a JSON object",null]]}`},
		{"empty body", ``, 400, "", "", `{"errors":[[201,"No content to map: the request body is empty",null]]}`},
		// Jackson skips a byte order mark, binds members in document order
		// (the first problem wins, a repeated key is bound each time),
		// reads an enum index from a string and refuses bytes that are not UTF-8.
		{"byte order mark", "\ufeff" + `{"name":"R","type":"CONFIDENTIAL","description":"d"}`, 400, "invalid_request", "client_name must contain at least 3 characters", ""},
		{"first problem wins", `{"zzz":1,"name":["abc"]}`, 400, "", "", `{"errors":[[201,"Unrecognized field \"zzz\": known fields are name, type, description, url, redirect_uri, refresh_token_expiry, source",null]]}`},
		{"repeated key", `{"name":["abc"],"name":"abc","type":"PUBLIC","description":"d"}`, 400, "", "", `{"errors":[[201,"Field \"name\" must be a string, not an array or object",null]]}`},
		{"type index as string", `{"name":"abc","type":"1","description":"d","refresh_token_expiry":"60"}`, 400, "invalid_request", "Custom refresh token expiry is only applicable for confidential clients", ""},
		{"fraction as string", `{"name":"abc","type":"CONFIDENTIAL","description":"d","refresh_token_expiry":"1.5"}`, 400, "", "", `{"errors":[[201,"Field \"refresh_token_expiry\" must be an integer number of seconds",null]]}`},
		{"not UTF-8", "{\"name\":\"ab\xff\",\"type\":\"PUBLIC\",\"description\":\"d\"}", 400, "", "", `{"errors":[[201,"Malformed JSON: the request body is not valid UTF-8",null]]}`},
		{"cut short", `{"name":"ab"`, 400, "", "", `{"errors":[[201,"Malformed JSON: the request body ends before its JSON value does",null]]}`},
		{"bad byte", `{"name":x}`, 400, "", "", `{"errors":[[201,"Malformed JSON: the request body is not valid JSON at byte 9",null]]}`},
	}
	forBackends(t, func(t *testing.T, backend string) {
		s := kustvaktSite(t, backend, "")
		for _, r := range rows {
			t.Run(r.name, func(t *testing.T) {
				resp, body := s.kvRegister("alice", r.body)
				if r.code != "" {
					checkOAuthError(t, resp, body, r.status, r.code, r.desc)
				} else {
					checkNotification(t, resp, body, r.status, r.notif)
				}
			})
		}
		t.Run("no user", func(t *testing.T) {
			resp, body := s.postJSON("/api/v1.0/oauth2/client/register", confidentialClient)
			checkNotification(t, resp, body, 401, `{"errors":[[2010,"Unauthorized operation for user: guest","guest"]]}`)
		})
		t.Run("wrong content type", func(t *testing.T) {
			resp, body := s.do("POST", "/api/v1.0/oauth2/client/register", confidentialClient, "Content-Type: text/plain", basicAuth("alice"))
			if resp.StatusCode != 415 || !strings.HasPrefix(body, `{"errors":[[108,`) {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
		})
		t.Run("wrong method", func(t *testing.T) {
			resp, _ := s.do("GET", "/api/v1.0/oauth2/client/register", "", basicAuth("alice"))
			if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
				t.Fatalf("%d %v", resp.StatusCode, resp.Header)
			}
			// Jersey also matches a path with a trailing slash.
			for _, p := range []string{"/api/v1.0/oauth2/client/deregister", "/api/v1.0/oauth2/client/deregister/", "/api/oauth2/client/deregister/"} {
				resp, body := s.do("DELETE", p, "", basicAuth("alice"))
				if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
					t.Fatalf("deregister without id %s: %d %s", p, resp.StatusCode, body)
				}
			}
			resp, body := s.postJSON("/api/v1.0/oauth2/client/register/", `{"name":"R"}`, basicAuth("alice"))
			checkOAuthError(t, resp, body, 400, "invalid_request", "client_name must contain at least 3 characters")
			// No client id: not a Kustvakt route.
			if _, body := s.kvForm("/api/v1.0/oauth2/client/", "alice", superForm()); body != "site" {
				t.Fatalf("empty client id: %q", body)
			}
		})
		t.Run("user before form", func(t *testing.T) {
			// Kustvakt's BlockingFilter runs before Jersey reads the form.
			resp, body := s.do("POST", "/api/v1.0/oauth2/client/list", strings.Repeat("x", 70000), "Content-Type: application/x-www-form-urlencoded")
			checkNotification(t, resp, body, 401, `{"errors":[[2010,"Unauthorized operation for user: guest","guest"]]}`)
		})
		t.Run("other versions pass through", func(t *testing.T) {
			if _, body := s.postJSON("/api/v2.0/oauth2/client/register", confidentialClient, basicAuth("alice")); body != "site" {
				t.Fatalf("%q", body)
			}
		})
	})
}

func TestKustvaktClientInfo(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := kustvaktSite(t, backend, "\t\t\ttimezone Europe/Berlin")
		_, body := s.kvRegister("alice", confidentialClient)
		id := object(t, body)["client_id"].(string)
		path := "/api/v1.0/oauth2/client/" + id

		// Owner: full view.
		resp, body := s.kvForm(path, "alice", superForm())
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != kustvaktOAuthCT {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		date := regexp.MustCompile(`"registration_date":"([^"]+)"`).FindStringSubmatch(body)
		if date == nil || !javaDate.MatchString(date[1]) || !strings.HasSuffix(date[1], "+01:00[Europe/Berlin]") {
			t.Fatalf("date in %s", body)
		}
		want := fmt.Sprintf(`{"permitted":true,"super":false,"client_id":"%s","client_name":"OAuth2ClientTest","client_type":"CONFIDENTIAL","client_description":"This is a confidential test client.","client_url":"http://example.client.com","client_redirect_uri":"https://example.client.com/redirect","registration_date":"%s","registered_by":"alice","refresh_token_expiry":31536000}`, id, date[1])
		if body != want {
			t.Fatalf("owner view\n got %s\nwant %s", body, want)
		}
		// Another user and a guest: reduced view.
		reduced := fmt.Sprintf(`{"permitted":true,"super":false,"client_id":"%s","client_name":"OAuth2ClientTest","client_type":"CONFIDENTIAL","client_description":"This is a confidential test client.","client_url":"http://example.client.com"}`, id)
		for _, user := range []string{"bob", ""} {
			if _, body := s.kvForm(path, user, superForm()); body != reduced {
				t.Fatalf("view for %q: %s", user, body)
			}
		}
		// Unversioned root too.
		if _, body := s.kvForm("/api/oauth2/client/"+id, "bob", superForm()); body != reduced {
			t.Fatalf("unversioned: %s", body)
		}

		// Plugin: reduced view even for its owner, source first.
		_, body = s.kvRegister("alice", `{"name":"Plugin","type":"CONFIDENTIAL","description":"This is a plugin test client.","source":{"plugin":"source"},"refresh_token_expiry":7776000,"url":"https://my.confidential.plugin.de"}`)
		pid := object(t, body)["client_id"].(string)
		_, body = s.kvForm("/api/v1.0/oauth2/client/"+pid, "alice", superForm())
		if want := fmt.Sprintf(`{"source":{"plugin":"source"},"permitted":false,"super":false,"client_id":"%s","client_name":"Plugin","client_type":"CONFIDENTIAL","client_description":"This is a plugin test client.","client_url":"https://my.confidential.plugin.de"}`, pid); body != want {
			t.Fatalf("plugin view\n got %s\nwant %s", body, want)
		}
		// An empty source still makes a plugin, but NON_EMPTY leaves it out.
		_, body = s.kvRegister("alice", `{"name":"Plugin","type":"CONFIDENTIAL","description":"d","source":{},"url":"https://my.confidential.plugin.de"}`)
		eid := object(t, body)["client_id"].(string)
		_, body = s.kvForm("/api/v1.0/oauth2/client/"+eid, "alice", superForm())
		if want := fmt.Sprintf(`{"permitted":false,"super":false,"client_id":"%s","client_name":"Plugin","client_type":"CONFIDENTIAL","client_description":"d","client_url":"https://my.confidential.plugin.de"}`, eid); body != want {
			t.Fatalf("empty-source plugin view\n got %s\nwant %s", body, want)
		}
		// The source reads back as Jackson renders it: a repeated member
		// keeps its last value, decimals are Java doubles.
		_, body = s.kvRegister("alice", `{"name":"Plugin","type":"CONFIDENTIAL","description":"d","source":{"a":1,"b":1E+2,"a":2.50},"url":"https://my.confidential.plugin.de"}`)
		jid := object(t, body)["client_id"].(string)
		_, body = s.kvForm("/api/v1.0/oauth2/client/"+jid, "alice", superForm())
		if !strings.HasPrefix(body, `{"source":{"a":2.5,"b":100.0},"permitted":false,`) {
			t.Fatalf("source as Jackson renders it: %s", body)
		}

		// Super client authentication, in Kustvakt's order.
		resp, body = s.kvForm(path, "alice", url.Values{})
		checkOAuthError(t, resp, body, 400, "invalid_request", "Missing parameter: super_client_id")
		resp, body = s.kvForm(path, "alice", url.Values{"super_client_id": {"nope"}})
		checkOAuthError(t, resp, body, 401, "invalid_client", "Unknown client: nope")
		resp, body = s.kvForm(path, "alice", url.Values{"super_client_id": {"superclient"}})
		checkOAuthError(t, resp, body, 400, "invalid_request", "Missing parameter: super_client_secret")
		resp, body = s.kvForm(path, "alice", url.Values{"super_client_id": {"superclient"}, "super_client_secret": {"wrong"}})
		checkOAuthError(t, resp, body, 401, "invalid_client", "Invalid super_client credentials")
		resp, body = s.kvForm(path, "alice", url.Values{"super_client_id": {id}, "super_client_secret": {"x"}})
		checkOAuthError(t, resp, body, 401, "invalid_client", "Invalid super_client credentials")
		// A registered public client is not super.
		_, body = s.kvRegister("alice", `{"name":"pub","type":"PUBLIC","description":"d"}`)
		pub := object(t, body)["client_id"].(string)
		resp, body = s.kvForm(path, "alice", url.Values{"super_client_id": {pub}})
		checkOAuthError(t, resp, body, 401, "unauthorized_client", "Only super client is allowed to use this service")
		// Unknown client.
		resp, body = s.kvForm("/api/v1.0/oauth2/client/MfJMHP77FrM4pbN46rtHdM", "alice", superForm())
		checkOAuthError(t, resp, body, 401, "invalid_client", "Unknown client: MfJMHP77FrM4pbN46rtHdM")
	})
}

func TestKustvaktDeregisterResetList(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := kustvaktSite(t, backend, "")
		_, body := s.kvRegister("alice", confidentialClient)
		first := object(t, body)
		id := first["client_id"].(string)
		_, body = s.kvRegister("alice", `{"name":"Another","type":"PUBLIC","description":"d"}`)
		pub := object(t, body)["client_id"].(string)
		if resp, body := s.kvRegister("bob", `{"name":"Bobs","type":"PUBLIC","description":"d"}`); resp.StatusCode != 200 {
			t.Fatalf("bob's registration: %d %s", resp.StatusCode, body)
		}

		// Reset: not for public clients (checked before ownership), only
		// for the owner, new secret in Kustvakt's format.
		resp, body := s.kvForm("/api/v1.0/oauth2/client/reset", "bob", url.Values{"client_id": {pub}})
		checkOAuthError(t, resp, body, 400, "invalid_request", "Operation is not allowed for public clients")
		resp, body = s.kvForm("/api/v1.0/oauth2/client/reset", "bob", url.Values{"client_id": {id}})
		checkNotification(t, resp, body, 401, `{"errors":[[2010,"Unauthorized operation for user: bob","bob"]]}`)
		resp, body = s.kvForm("/api/v1.0/oauth2/client/reset", "alice", url.Values{})
		checkNotification(t, resp, body, 400, `{"errors":[[107,"client_id is null","client_id"]]}`)
		resp, body = s.kvForm("/api/v1.0/oauth2/client/reset", "alice", url.Values{"client_id": {""}})
		checkNotification(t, resp, body, 400, `{"errors":[[107,"client_id is empty","client_id"]]}`)
		resp, body = s.kvForm("/api/v1.0/oauth2/client/reset", "alice", url.Values{"client_id": {id}})
		reset := object(t, body)
		if resp.StatusCode != 200 || reset["client_id"] != id || !kustvaktSecret.MatchString(reset["client_secret"].(string)) || reset["client_secret"] == first["client_secret"] {
			t.Fatalf("reset: %d %s", resp.StatusCode, body)
		}

		// List: own clients, sorted by name, owner view.
		resp, body = s.kvForm("/api/v1.0/oauth2/client/list", "alice", superForm())
		if resp.StatusCode != 200 || !strings.HasPrefix(body, `[{"permitted":true,"super":false,"client_id":"`+pub+`","client_name":"Another"`) ||
			!strings.Contains(body, `"client_name":"OAuth2ClientTest"`) || strings.Contains(body, "Bobs") || !strings.Contains(body, `"registered_by":"alice"`) {
			t.Fatalf("list: %d %s", resp.StatusCode, body)
		}
		if _, body := s.kvForm("/api/v1.0/oauth2/client/list", "alice", superForm("filter_by", "authorized_only")); body != "[]" {
			t.Fatalf("authorized only: %s", body)
		}
		if _, body := s.kvForm("/api/v1.0/oauth2/client/list", "alice", superForm("authorized_only", "TRUE")); body != "[]" {
			t.Fatalf("authorized_only=TRUE: %s", body)
		}
		// The unversioned root is v1.0 too: the deprecated flag wins over
		// a bad filter_by there as well.
		for _, root := range []string{"/api/v1.0", "/api"} {
			if _, body := s.kvForm(root+"/oauth2/client/list", "alice", superForm("authorized_only", "true", "filter_by", "bad")); body != "[]" {
				t.Fatalf("%s: authorized_only=true with a bad filter_by: %s", root, body)
			}
		}
		resp, body = s.kvForm("/api/v1.0/oauth2/client/list", "alice", superForm("filter_by", "nope"))
		checkNotification(t, resp, body, 400, `{"errors":[[204,"filter_by","[]"]]}`)
		resp, body = s.kvForm("/api/v1.0/oauth2/client/list", "", superForm())
		checkNotification(t, resp, body, 401, `{"errors":[[2010,"Unauthorized operation for user: guest","guest"]]}`)

		// Deregister: owner only; then unknown.
		resp, body = s.do("DELETE", "/api/v1.0/oauth2/client/deregister/"+id, "", basicAuth("bob"))
		checkNotification(t, resp, body, 401, `{"errors":[[2010,"Unauthorized operation for user: bob","bob"]]}`)
		resp, body = s.do("DELETE", "/api/v1.0/oauth2/client/deregister/"+id, "", basicAuth("alice"))
		if resp.StatusCode != 200 || body != "" || resp.Header.Get("Content-Type") != "" {
			t.Fatalf("deregister: %d %v %q", resp.StatusCode, resp.Header, body)
		}
		resp, body = s.do("DELETE", "/api/oauth2/client/deregister/"+id, "", basicAuth("alice"))
		checkOAuthError(t, resp, body, 401, "invalid_client", "Unknown client: "+id)
		resp, body = s.do("DELETE", "/api/oauth2/client/deregister/"+pub, "")
		checkNotification(t, resp, body, 401, `{"errors":[[2010,"Unauthorized operation for user: guest","guest"]]}`)
	})
}

func TestKustvaktPlugins(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := kustvaktSite(t, backend, "")
		_, body := s.kvRegister("alice", `{"name":"Zeta plugin","type":"CONFIDENTIAL","description":"z","source":{"plugin":"source"},"url":"https://zeta.plugin.de"}`)
		zeta := object(t, body)["client_id"].(string)
		_, body = s.kvRegister("bob", `{"name":"Alpha plugin","type":"CONFIDENTIAL","description":"a","source":{"k":[1,2.50,"\u00e9"]},"url":"https://alpha.plugin.de"}`)
		alpha := object(t, body)["client_id"].(string)
		_, body = s.kvRegister("bob", `{"name":"Public one","type":"PUBLIC","description":"p"}`)
		public := object(t, body)["client_id"].(string)

		// Not permitted yet.
		resp, body := s.kvForm("/api/v1.0/plugins/install", "alice", superForm("client_id", zeta))
		checkNotification(t, resp, body, 400, `{"errors":[[1850,"Plugin is not permitted","`+zeta+`"]]}`)
		// Only admins approve.
		resp, body = s.kvForm("/api/v1.0/admin/oauth2/client/privilege", "alice", url.Values{"client_id": {zeta}, "permitted": {"true"}})
		checkNotification(t, resp, body, 401, `{"errors":[[2010,"Unauthorized operation for user: alice","alice"]]}`)
		resp, body = s.kvForm("/api/v1.0/admin/oauth2/client/privilege", "root", url.Values{"client_id": {zeta}, "permitted": {"true"}})
		if resp.StatusCode != 200 || body != "SUCCESS" {
			t.Fatalf("approve: %d %s", resp.StatusCode, body)
		}
		// Plugin list: sorted by name, reduced view, source as JSON.
		resp, body = s.kvForm("/api/v1.0/plugins", "alice", superForm())
		want := fmt.Sprintf(`[{"source":{"k":[1,2.5,"é"]},"permitted":false,"super":false,"client_id":"%s","client_name":"Alpha plugin","client_type":"CONFIDENTIAL","client_description":"a","client_url":"https://alpha.plugin.de"},{"source":{"plugin":"source"},"permitted":true,"super":false,"client_id":"%s","client_name":"Zeta plugin","client_type":"CONFIDENTIAL","client_description":"z","client_url":"https://zeta.plugin.de","registration_date":`, alpha, zeta)
		if resp.StatusCode != 200 || !strings.HasPrefix(body, want) {
			t.Fatalf("plugins\n got %s\nwant prefix %s", body, want)
		}
		if _, body := s.kvForm("/api/v1.0/plugins", "alice", superForm("permitted_only", "true")); strings.Contains(body, alpha) || !strings.Contains(body, zeta) {
			t.Fatalf("permitted only: %s", body)
		}
		// Install, twice, list, uninstall, twice.
		resp, body = s.kvForm("/api/v1.0/plugins/install", "alice", superForm("client_id", zeta))
		inst := object(t, body)
		if resp.StatusCode != 200 || inst["client_id"] != zeta || inst["super_client_id"] != "superclient" || inst["name"] != "Zeta plugin" ||
			inst["url"] != "https://zeta.plugin.de" || !javaDate.MatchString(inst["installed_date"].(string)) ||
			// Jackson's order: the renamed properties last.
			!strings.HasPrefix(body, `{"name":"Zeta plugin","description":"z","url":"https://zeta.plugin.de","client_id":"`+zeta+`","super_client_id":"superclient","installed_date":"`) {
			t.Fatalf("install: %d %s", resp.StatusCode, body)
		}
		resp, body = s.kvForm("/api/v1.0/plugins/install", "alice", superForm("client_id", zeta))
		checkNotification(t, resp, body, 400, `{"errors":[[1851,"Plugin has been installed","`+zeta+`"]]}`)
		resp, body = s.kvForm("/api/v1.0/plugins/install", "alice", superForm())
		checkNotification(t, resp, body, 400, `{"errors":[[107,"client_id is null","client_id"]]}`)
		resp, body = s.kvForm("/api/v1.0/plugins/install", "alice", superForm("client_id", "nope"))
		checkOAuthError(t, resp, body, 401, "invalid_client", "Unknown client: nope")
		if _, body := s.kvForm("/api/v1.0/plugins/installed", "alice", superForm()); !strings.HasPrefix(body, `[{"name":"Zeta plugin","description":"z","url":"https://zeta.plugin.de","client_id":"`+zeta+`"`) {
			t.Fatalf("installed: %s", body)
		}
		if _, body := s.kvForm("/api/v1.0/plugins/installed", "bob", superForm()); body != "[]" {
			t.Fatalf("installed for bob: %s", body)
		}
		resp, body = s.kvForm("/api/v1.0/plugins/uninstall", "alice", superForm("client_id", zeta))
		if resp.StatusCode != 200 || body != "" {
			t.Fatalf("uninstall: %d %s", resp.StatusCode, body)
		}
		resp, body = s.kvForm("/api/v1.0/plugins/uninstall", "alice", superForm("client_id", zeta))
		checkNotification(t, resp, body, 404, `{"errors":[[114,null,null]]}`)
		// Deregistering a plugin takes its installations with it.
		if resp, body = s.kvForm("/api/v1.0/plugins/install", "alice", superForm("client_id", zeta)); resp.StatusCode != 200 {
			t.Fatalf("install again: %d %s", resp.StatusCode, body)
		}
		if resp, body = s.do("DELETE", "/api/v1.0/oauth2/client/deregister/"+zeta, "", basicAuth("alice")); resp.StatusCode != 200 {
			t.Fatalf("deregister the plugin: %d %s", resp.StatusCode, body)
		}
		resp, body = s.kvForm("/api/v1.0/plugins/uninstall", "alice", superForm("client_id", zeta))
		checkNotification(t, resp, body, 404, `{"errors":[[114,null,null]]}`)

		// Super: only confidential clients; a super client can then
		// authenticate as one, and it disappears from lists.
		resp, body = s.kvForm("/api/v1.0/admin/oauth2/client/privilege", "root", url.Values{"client_id": {public}, "super": {"true"}})
		checkNotification(t, resp, body, 400, `{"errors":[[109,"Only confidential clients are allowed to be super clients.","[]"]]}`)
		_, body = s.kvRegister("bob", `{"name":"Kalamar","type":"CONFIDENTIAL","description":"front end"}`)
		kal := object(t, body)
		resp, body = s.kvForm("/api/v1.0/admin/oauth2/client/privilege", "root", url.Values{"client_id": {kal["client_id"].(string)}, "super": {"True"}})
		if resp.StatusCode != 200 || body != "SUCCESS" {
			t.Fatalf("make super: %d %s", resp.StatusCode, body)
		}
		form := url.Values{"super_client_id": {kal["client_id"].(string)}, "super_client_secret": {kal["client_secret"].(string)}}
		resp, body = s.kvForm("/api/v1.0/oauth2/client/list", "bob", form)
		if resp.StatusCode != 200 || strings.Contains(body, "Kalamar") || !strings.Contains(body, "Public one") {
			t.Fatalf("list with a stored super client: %d %s", resp.StatusCode, body)
		}
		// Demote: "super" missing means false, as in Kustvakt.
		s.kvForm("/api/v1.0/admin/oauth2/client/privilege", "root", url.Values{"client_id": {kal["client_id"].(string)}})
		resp, body = s.kvForm("/api/v1.0/oauth2/client/list", "bob", form)
		checkOAuthError(t, resp, body, 401, "unauthorized_client", "Only super client is allowed to use this service")
	})
}

// TestKustvaktResetKeepsSecretLifetime: a Kustvakt reset gives the new
// secret the secret lifetime of the client's own API: IAM's 90 days, the
// rfc7591 handler's secret_lifetime, the kustvakt handler's (never) for its
// own clients.
func TestKustvaktResetKeepsSecretLifetime(t *testing.T) {
	s, admin := startCaddyAdmin(t, "redis", fmt.Sprintf(`	@authed header Authorization *
	basic_auth @authed {
		root %s
	}
	route {
		client_registration kustvakt {
			{storage}
			admin_user root
		}
		client_registration iam {
			{storage}
		}
		client_registration rfc7591 {
			{storage}
			secret_lifetime 1h
		}
	}`, basicHash(t)))
	resp, body := s.postJSON("/v1/clients", iamMinimalRequest)
	iam := iamClientInfo(t, resp, body)["client_id"].(string)
	rfc := rfcRegister(t, s, `{"redirect_uris":["https://c.example/cb"]}`)
	_, body = s.kvRegister("root", confidentialClient)
	kv := object(t, body)["client_id"].(string)
	for _, tc := range []struct {
		id   string
		life time.Duration
	}{{iam, 90 * 24 * time.Hour}, {rfc.ID, time.Hour}, {kv, 0}} {
		before := time.Now().Unix()
		if resp, body := s.kvForm("/api/v1.0/oauth2/client/reset", "root", url.Values{"client_id": {tc.id}}); resp.StatusCode != 200 {
			t.Fatalf("reset %s: %d %s", tc.id, resp.StatusCode, body)
		}
		_, md := s.adminJSON(admin, "GET", "/client_registration/clients/"+tc.id+"/metadata", "")
		exp, _ := md["client_secret_expires_at"].(float64)
		if tc.life == 0 && exp != 0 || tc.life != 0 && (int64(exp) < before+int64(tc.life.Seconds()) || int64(exp) > time.Now().Unix()+int64(tc.life.Seconds())) {
			t.Errorf("reset %s: client_secret_expires_at %v, want now + %v", tc.id, md["client_secret_expires_at"], tc.life)
		}
	}
}

// TestKustvaktCrossSiteForms: the form services act as the user that
// basic_auth names, credentials a browser sends by itself; a form post
// from another origin (as the browser reports it) is refused before it
// changes anything, unless that origin is listed under cors (not by
// "cors *"). Requests from
// the site itself and from clients that are not browsers go through.
func TestKustvaktCrossSiteForms(t *testing.T) {
	s := kustvaktSite(t, "redis", "\t\t\tcors https://kalamar.example")
	_, body := s.kvRegister("alice", confidentialClient)
	id := object(t, body)["client_id"].(string)
	privilege := func(value string, headers ...string) (*http.Response, string) {
		t.Helper()
		h := append([]string{"Content-Type: application/x-www-form-urlencoded", basicAuth("root")}, headers...)
		return s.do(http.MethodPost, "/api/v1.0/admin/oauth2/client/privilege", url.Values{"client_id": {id}, "super": {value}}.Encode(), h...)
	}
	isSuper := func() bool {
		t.Helper()
		resp, body := s.kvForm("/api/v1.0/oauth2/client/"+id, "alice", superForm())
		if resp.StatusCode != 200 {
			t.Fatalf("info: %d %s", resp.StatusCode, body)
		}
		return object(t, body)["super"] == true
	}
	for _, h := range [][]string{
		{"Origin: https://evil.example", "Sec-Fetch-Site: cross-site"},
		{"Origin: https://evil.example"},
		{"Origin: null"},
		{"Sec-Fetch-Site: same-site"},
	} {
		resp, body := privilege("true", h...)
		checkOAuthError(t, resp, body, 400, "access_denied", "Cross-site form posts are refused: send the request from this site, or list the page's origin under cors")
		if isSuper() {
			t.Fatalf("%v: made super", h)
		}
	}
	resp, body := s.kvForm("/api/v1.0/oauth2/client/reset", "alice", url.Values{"client_id": {id}})
	if resp.StatusCode != 200 {
		t.Fatalf("reset without browser headers: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(http.MethodPost, "/api/v1.0/oauth2/client/reset", url.Values{"client_id": {id}}.Encode(),
		"Content-Type: application/x-www-form-urlencoded", basicAuth("alice"), "Origin: https://evil.example", "Sec-Fetch-Site: cross-site")
	checkOAuthError(t, resp, body, 400, "access_denied", "Cross-site form posts are refused: send the request from this site, or list the page's origin under cors")
	for _, h := range [][]string{
		nil,
		{"Sec-Fetch-Site: same-origin", "Origin: " + s.URL},
		{"Origin: " + s.URL},
		{"Sec-Fetch-Site: cross-site", "Origin: https://kalamar.example"},
	} {
		if resp, body := privilege("false", h...); resp.StatusCode != 200 {
			t.Fatalf("%v: %d %s", h, resp.StatusCode, body)
		}
		if resp, body := privilege("true", h...); resp.StatusCode != 200 || !isSuper() {
			t.Fatalf("%v: %d %s", h, resp.StatusCode, body)
		}
	}
}

// TestKustvaktResetKeepsFormat: a Kustvakt reset issues the secret in the
// form of the client's own API: an RFC 7591 client_secret_jwt client keeps
// a 256-bit secret (HS256 needs one), a MediaGoblin client 43 letters and
// digits, a Kustvakt client Kustvakt's 16 bytes.
func TestKustvaktResetKeepsFormat(t *testing.T) {
	s := kustvaktSite(t, "embedded", "")
	rfc := rfcRegister(t, s, `{"redirect_uris":["https://c.example/cb"],"token_endpoint_auth_method":"client_secret_jwt","token_endpoint_auth_signing_alg":"HS256"}`)
	_, body := s.postJSON("/api/client/register", `{"type":"client_associate","application_type":"web"}`)
	mg := object(t, body)["client_id"].(string)
	_, body = s.kvRegister("alice", confidentialClient)
	kv := object(t, body)["client_id"].(string)
	for _, tc := range []struct{ id, pattern string }{
		{rfc.ID, `^[A-Za-z0-9_-]{43}$`},
		{mg, `^[A-Za-z0-9]{43}$`},
		{kv, `^[A-Za-z0-9_-]{21}[AQgw]$`},
	} {
		resp, body := s.kvForm("/api/v1.0/oauth2/client/reset", "root", url.Values{"client_id": {tc.id}})
		if resp.StatusCode != 200 {
			t.Fatalf("reset %s: %d %s", tc.id, resp.StatusCode, body)
		}
		if secret, _ := object(t, body)["client_secret"].(string); !regexp.MustCompile(tc.pattern).MatchString(secret) {
			t.Errorf("reset %s: secret %q, want %s", tc.id, secret, tc.pattern)
		}
	}
}

// TestCrossAPI: all APIs share one client model and store.
func TestCrossAPI(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s := kustvaktSite(t, backend, "")
		// A client registered through RFC 7591 is described by Kustvakt.
		_, body := s.postJSON("/register", `{"redirect_uris":["https://app.example/cb"],"client_name":"Seven Five Nine One","client_uri":"https://app.example"}`, basicAuth("alice"))
		id := object(t, body)["client_id"].(string)
		_, body = s.kvForm("/api/v1.0/oauth2/client/"+id, "alice", superForm())
		if !strings.Contains(body, `"client_id":"`+id+`","client_name":"Seven Five Nine One","client_type":"CONFIDENTIAL","client_url":"https://app.example","client_redirect_uri":"https://app.example/cb"`) {
			t.Fatalf("rfc7591 client in kustvakt: %s", body)
		}
		// A MediaGoblin client updated through MediaGoblin shows its new name.
		resp, body := s.postJSON("/api/client/register", `{"type":"client_associate","application_type":"web","application_name":"Old name"}`)
		if resp.StatusCode != 200 {
			t.Fatalf("mediagoblin register: %d %s", resp.StatusCode, body)
		}
		mg := object(t, body)
		upd := fmt.Sprintf(`{"type":"client_update","client_id":%q,"client_secret":%q,"application_type":"web","application_name":"New name"}`, mg["client_id"], mg["client_secret"])
		if resp, body := s.postJSON("/api/client/register", upd); resp.StatusCode != 200 {
			t.Fatalf("mediagoblin update: %d %s", resp.StatusCode, body)
		}
		_, body = s.kvForm("/api/v1.0/oauth2/client/"+mg["client_id"].(string), "", superForm())
		if !strings.Contains(body, `"client_name":"New name"`) {
			t.Fatalf("mediagoblin client in kustvakt: %s", body)
		}
		// MediaGoblin updates only its own clients: with its looser rules
		// it must not rewrite an RFC 7591 client's redirect URIs, even with
		// that client's secret.
		_, body = s.postJSON("/register", `{"redirect_uris":["https://app.example/cb"]}`, basicAuth("alice"))
		rfc := object(t, body)
		upd = fmt.Sprintf(`{"type":"client_update","client_id":%q,"client_secret":%q,"application_type":"web","redirect_uris":"http://plain.example/cb"}`, rfc["client_id"], rfc["client_secret"])
		if resp, body := s.postJSON("/api/client/register", upd); resp.StatusCode != 403 || body != `{"error": "Unauthorized."}` {
			t.Fatalf("mediagoblin update of an rfc7591 client: %d %s", resp.StatusCode, body)
		}
		if _, body := s.kvForm("/api/v1.0/oauth2/client/"+rfc["client_id"].(string), "alice", superForm()); !strings.Contains(body, `"client_redirect_uri":"https://app.example/cb"`) {
			t.Fatalf("rfc7591 client changed: %s", body)
		}
	})
}

// TestKustvaktResetAfterLostUpdate: an RFC 7592 update whose answer was
// lost leaves its secret marked undelivered, for the next update to issue
// another; a Kustvakt reset, whose answer carries the secret it makes,
// clears that mark, so that the next update (a rename) keeps the reset's
// secret instead of replacing it without a word.
func TestKustvaktResetAfterLostUpdate(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s, admin := startCaddyAdmin(t, backend, authedAPIs(t, "{storage}", "kustvakt", ""))
		var id, rat string
		put := func(name string) string {
			return fmt.Sprintf(`{"client_id":%q,"client_name":%q,"redirect_uris":["https://x.example/cb"],"token_endpoint_auth_method":"client_secret_basic"}`, id, name)
		}
		// A PUT sent, then the connection closed before its answer. The
		// server learns of the close from a read of its own; if the update
		// is answered before that (a busy machine), the answer is taken for
		// delivered, the old token retired, and the test starts again with
		// another client.
		for attempt := 1; ; attempt++ {
			_, body := s.postJSON("/register", `{"redirect_uris":["https://x.example/cb"],"token_endpoint_auth_method":"none"}`, basicAuth("alice"))
			m := object(t, body)
			id, rat = m["client_id"].(string), m["registration_access_token"].(string)
			conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			b := put("lost")
			fmt.Fprintf(conn, "PUT /register/%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
				id, strings.TrimPrefix(s.URL, "http://"), rat, len(b), b)
			conn.(*net.TCPConn).CloseWrite()
			conn.Close()
			var status int
			redistest.WaitFor(t, 10*time.Second, "the lost update", func(context.Context) bool {
				resp, body := s.do("GET", "/register/"+id, "", "Authorization: Bearer "+rat)
				status = resp.StatusCode
				return status == 401 || (status == 200 && strings.Contains(body, `"client_name":"lost"`))
			})
			if status == 200 {
				break
			}
			if attempt == 5 {
				t.Fatalf("the update was answered as delivered %d times in a row", attempt)
			}
		}
		resp, body := s.kvForm("/api/v1.0/oauth2/client/reset", "alice", url.Values{"client_id": {id}})
		if resp.StatusCode != 200 {
			t.Fatalf("reset: %d %s", resp.StatusCode, body)
		}
		secret := object(t, body)["client_secret"].(string)
		resp, body = s.do("PUT", "/register/"+id, put("renamed"), "Content-Type: application/json", "Authorization: Bearer "+rat)
		if resp.StatusCode != 200 || strings.Contains(body, `"client_secret"`) {
			t.Fatalf("rename after the reset: %d %s, want 200 without a new secret", resp.StatusCode, body)
		}
		if status, got := s.adminJSON(admin, "POST", "/client_registration/clients/"+id+"/verify_secret", `{"client_secret":"`+secret+`"}`); status != 200 || got["valid"] != true {
			t.Errorf("the reset's secret after the rename: %d %v", status, got)
		}
	})
}
