package handler

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestValidHost(t *testing.T) {
	for h, want := range map[string]bool{
		"localhost": true, "localhost:8080": true, "127.0.0.1:18201": true, "auth.example.com.": true,
		"[::1]": true, "[::1]:8443": true, "[fe80::1%25eth0]:8080": false, "AUTH.Example.COM": true, "[::ffff:192.0.2.1]:80": true, "my_host:1": true,
		"": false, "a.example:": false, "a.example:0": false, "a.example:65536": false,
		"127.0.0.1:18201,evil.example": false, "127.0.0.1:evil": false, "a b": false,
		"[::1": false, "[::1]x": false, "[1.2.3.4]": false, "[::1]:": false, "ex\u00e4mple.com": false,
		"a.example:80:80": false, "[fe80::1%25eth0,evil.example]": false, "[fe80::1%25]": false, "user@a.example": false,
	} {
		if got := validHost(h); got != want {
			t.Errorf("validHost(%q) = %v, want %v", h, got, want)
		}
	}
}

// TestWebHost: hosts as WHATWG's URL parser writes them, or refused where
// it refuses them (the expected values are Node's new URL()).
func TestWebHost(t *testing.T) {
	for in, want := range map[string]string{
		"127.1": "127.0.0.1", "0x7f.0.0.1": "127.0.0.1", "0177.0.0.1": "127.0.0.1", "4294967295": "255.255.255.255",
		"1.2.3": "1.2.0.3", "0x": "0.0.0.0", "127.0.0.1.": "127.0.0.1", "127.0.0.1:8080": "127.0.0.1:8080",
		"[0:0::1]": "[::1]", "[::ffff:127.0.0.1]:8080": "[::ffff:7f00:1]:8080", "[::FFFF:7F00:1]": "[::ffff:7f00:1]",
		"[1:0:0:2:0:0:0:3]": "[1:0:0:2::3]", "[2001:db8:0:0:1:0:0:1]": "[2001:db8::1:0:0:1]", "[0:0:0:0:0:0:0:0]": "[::]", "[1::]": "[1::]",
		"example.com.": "example.com.", "localhost:8080": "localhost:8080", "xn--bcher-kva.example": "xn--bcher-kva.example",
		"1.2.3.4.5": "", "999.1.1.1": "", "09.1.1.1": "", "1.2.3.08": "", "a.1": "", "a.09": "", "a.0x10": "", "a.0x": "",
		"4294967296": "", "[fe80::1%25eth0]": "", "[::1%2525]": "", "[1.2.3.4]": "", "[::1": "",
		"xn--zz.example": "", "xn--.example": "", "a.xn--": "", "xn--a.example:8080": "",
		// Mapped first, then read as an address (fullwidth digits, the
		// ideographic full stop).
		"a.\uff11": "", "127.\uff11": "127.0.0.1", "127.0.0.1\u3002": "127.0.0.1", "0x7f\u30021:8080": "127.0.0.1:8080",
		"\u0130.example": "xn--i-9bb.example", "\u1e9e.example": "ss.example",
		"a.\uff58\uff4e--": "", "a.b\u3002": "a.b.", "xn--bcher-kva.example.": "xn--bcher-kva.example.",
	} {
		got, ok := WebHost(in)
		if !ok {
			got = ""
		}
		if got != want {
			t.Errorf("WebHost(%q) = %q, %v, want %q", in, got, ok, want)
		}
	}
	for in, want := range map[string]string{
		"/oauth": "/oauth", "/oauth/x/%2e%2E": "/oauth/", "/oauth/%2e": "/oauth/", "/a/./b/../c": "/a/c",
		"/%2E%2e/x": "/x", "/a.b/c..d": "/a.b/c..d", "/x/%2e%2e%2f": "/x/%2e%2e%2f", "/%6fauth": "/%6fauth",
	} {
		if got := WebPath(in); got != want {
			t.Errorf("WebPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestNormalHost: the issuer taken from the Host header is in RFC 3986
// normal form, as clients' URL parsers put the URL they discover from.
func TestNormalHost(t *testing.T) {
	for _, c := range []struct{ host, scheme, want string }{
		{"as.example", "https://", "as.example"},
		{"as.example:8443", "https://", "as.example:8443"},
		{"Example.COM", "http://", "example.com"},
		{"example.com:80", "http://", "example.com"},
		{"example.com:80", "https://", "example.com:80"},
		{"example.com:443", "https://", "example.com"},
		{"a.example:0080", "http://", "a.example"},
		{"a.example:08443", "https://", "a.example:8443"},
		{"[::1]", "http://", "[::1]"},
		{"[::1]:80", "http://", "[::1]"},
		{"[FE80::1]:8080", "http://", "[fe80::1]:8080"},
	} {
		if got := normalHost(c.host, c.scheme); got != c.want {
			t.Errorf("normalHost(%q, %q) = %q, want %q", c.host, c.scheme, got, c.want)
		}
	}
	for in, want := range map[string]string{
		"https://as.example/oauth":         "https://as.example/oauth",
		"HTTPS://AS.Example:443/OAuth":     "https://as.example/OAuth",
		"http://as.example:0080/":          "http://as.example/",
		"http://[::FFFF:7F00:1]:8080":      "http://[::ffff:7f00:1]:8080",
		"https://as.example/Ünï":           "https://as.example/%C3%9Cn%C3%AF",
		"https://as.example/%7eo/a b\"<>`": "https://as.example/%7eo/a%20b%22%3C%3E%60",
		"https://as.example/t?q=ä":         "https://as.example/t?q=%C3%A4",
		"https://user@As.Example/":         "https://user@As.Example/",
		"https://{http.request.host}/":     "https://{http.request.host}/",
		"as.example/x":                     "as.example/x",
		"https://as.example/}|^":           "https://as.example/%7D|%5E",
		"https://as.example/`p?q='`'":      "https://as.example/%60p?q=%27`%27",
		"https://Bücher.Example:8443/x":    "https://xn--bcher-kva.example:8443/x",
		"https://\u0130.Example:8443/x":    "https://xn--i-9bb.example:8443/x",
		"https://\u1e9e.Example/x":         "https://ss.example/x",
		"http://127.1:80/x":                "http://127.0.0.1/x",
	} {
		if got := NormalURL(in); got != want {
			t.Errorf("NormalURL(%q) = %q, want %q", in, got, want)
		}
	}
	// A "{" a request put in (a placeholder's value) is encoded, and the
	// rest made normal all the same.
	if got, want := normalURL("https://A.EXAMPLE:0443/Ü{/x"), "https://a.example/%C3%9C%7B/x"; got != want {
		t.Errorf("normalURL = %q, want %q", got, want)
	}
	// The client's URLs are built from the same normal form as the
	// metadata's.
	a := benchAPI(t)
	r := httptest.NewRequest("POST", "http://as.example/register", strings.NewReader(benchBody))
	r.Host = "LOCALHOST:021080"
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	a.Serve(w, r)
	if loc := w.Header().Get("Location"); w.Code != http.StatusCreated || !strings.HasPrefix(loc, "http://localhost:21080/register/") ||
		!strings.Contains(w.Body.String(), `"registration_client_uri":"`+loc+`"`) {
		t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
	}
}

// RFC 6749 section 5.2: error_description holds printable ASCII without
// '"' or '\'; descriptions that quote the request are brought into it.
func TestOAuthText(t *testing.T) {
	for in, want := range map[string]string{
		"plain text 100% (a-z)":             "plain text 100% (a-z)",
		`grant type "x" is not supported`:   `grant type 'x' is not supported`,
		"https://例え.jp/cb#x is not allowed": "https://%E4%BE%8B%E3%81%88.jp/cb#x is not allowed",
		"line\nbreak\ttab \\ back \x7f del": "line%0Abreak%09tab %5C back %7F del",
		"":                                  "",
	} {
		if got := oauthText(in); got != want {
			t.Errorf("oauthText(%q) = %q, want %q", in, got, want)
		}
	}
}
