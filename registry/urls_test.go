package registry

// Unit tests of the RFC 7591 URL rules (CheckRedirectURI, CheckWebURI,
// IsLoopbackHost, the redirect host allowlist). Rows are labelled with the
// checklist IDs of /work/shared/spec/dcr-anchors.md section (a).

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "127.0.0.1": true, "127.0.0.2": true, "127.255.255.254": true,
		"::1": true, "0:0:0:0:0:0:0:1": true,
		"": false, "localhost.": false, "localhost.evil.example": false, "evil-localhost": false,
		"128.0.0.1": false, "126.255.255.255": false, "0.0.0.0": false, "::": false, "[::1]": false,
		"example.com": false, "127.0.0.1.nip.io": false, "10.0.0.1": false, "::2": false,
		"::ffff:127.0.0.1": true, "127.1": false, "127.0.0.01": false, "127.0.0.1.": false, "1.2.3.4": false,
	} {
		if got := IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestCheckRedirectURI(t *testing.T) {
	none := RedirectRule{}
	web := RedirectRule{ApplicationType: "web"}
	native := RedirectRule{ApplicationType: "native"}
	implicit := RedirectRule{Implicit: true}
	webImplicit := RedirectRule{ApplicationType: "web", Implicit: true}
	nativeImplicit := RedirectRule{ApplicationType: "native", Implicit: true}
	allow := RedirectRule{AllowedHosts: []string{"c.example", "*.apps.example"}}
	for _, tc := range []struct {
		id   string
		rule RedirectRule
		uri  string
		ok   bool
	}{
		// V2: absolute, no fragment.
		{"V2", none, "https://c.example/cb", true},
		{"V2", none, "https://c.example/cb?x=1", true},
		{"V2", none, "HTTPS://C.EXAMPLE/cb", true},
		{"V2", none, "https://c.example:8443/cb", true},
		{"V2", none, "https://c.example/cb#x", false},
		{"V2", none, "https://c.example/cb#", false},
		{"V2", native, "com.example.app:/cb#x", false},
		{"V2", none, "/cb", false},
		{"V2", none, "cb", false},
		{"V2", none, "//c.example/cb", false},
		{"V2", none, "", false},
		{"V2", none, "https:///cb", false},
		{"V2", none, "https:cb", false},
		{"V2", none, "https://c.example/c b", false},
		{"V2", none, "https://c.example/cb\n", false},
		{"V2", none, "https://c.example/\x7f", false},
		{"V2", none, "https://user:pw@c.example/cb", false},
		{"V2", none, "http://user@localhost/cb", false},
		{"V2", none, "https://[::1/cb", false},
		{"V2", none, "https://c.example:65536/cb", false},
		{"V2", none, "https://c.example:99999999999999999999/cb", false},
		{"V2", none, "https://c.example:65535/cb", true},
		{"V2", none, "https://c.example:0/cb", false},
		{"V2", none, "http://127.0.0.1:0/cb", false},
		{"V2", none, "https://c.example:1/cb", true},
		// Not RFC 3986 URIs: an IRI path or host, raw.
		{"V2", none, "https://c.example/cb\u00e9", false},
		{"V2", none, "https://\u03b5\u03bb.example/cb", false},
		{"V2", native, "com.example.app:/\u00e9", false},
		{"V2", none, "https://c.example/cb%C3%A9", true},
		{"V2", none, "https://xn--hxargifdar.example/cb", true},
		{"V4", native, "http://127.0.0.1:70000/cb", false},
		// Hosts must be DNS names or IP addresses: a wildcard is not one.
		{"V2", none, "https://*.c.example/cb", false},
		{"V2", allow, "https://*.apps.example/cb", false},
		{"V2", none, "https://c.*/cb", false},
		{"V2", none, "https://c..example/cb", false},
		{"V2", none, "https://c.exa$mple/cb", false},
		{"V2", none, "https://[2001:db8::1]/cb", true},
		{"V2", none, "https://192.0.2.1:8443/cb", true},
		{"V2", none, "https://c_1.example./cb", true},
		{"V4", none, "http://[::1]:8080/cb", true},
		// V3: dangerous schemes in every rule, including native (custom schemes allowed).
		{"V3", none, "javascript:alert(1)", false},
		{"V3", native, "javascript:alert(1)", false},
		{"V3", native, "JaVaScRiPt:alert(1)", false},
		{"V3", native, "data:text/html,x", false},
		{"V3", native, "vbscript:x", false},
		{"V3", native, "file:///etc/passwd", false},
		{"V3", native, "blob:https://c.example/x", false},
		{"V3", native, "about:blank", false},
		{"V3", web, "about:blank", false},
		// V4: native.
		{"V4", native, "http://127.0.0.1:5555/cb", true},
		{"V4", native, "http://127.0.0.1/cb", true},
		{"V4", native, "http://127.9.8.7:1/cb", true},
		{"V4", native, "http://[::1]/cb", true},
		{"V4", native, "http://[::1]:65535/cb", true},
		{"V4", native, "http://localhost:33418/cb", true},
		{"V4", native, "com.example.app:/cb", true},
		{"V4", native, "com.example.app://cb", true},
		{"V4", native, "https://app.example/cb", true},
		{"V4", native, "http://evil.example/cb", false},
		{"V4", native, "http://localhost.evil.example/cb", false},
		{"V4", native, "http://10.0.0.1/cb", false},
		{"V4", native, "https://localhost/cb", false},
		{"V4", native, "https://127.0.0.1/cb", false},
		{"V4", native, "https://[::1]:8443/cb", false},
		{"V4", native, "https://localhost./cb", false},
		{"V4", native, "https://LOCALHOST./cb", false},
		{"V4", native, "https://localhost.example/cb", true},
		{"V4", native, "http://localhost./cb", false},
		{"V4", nativeImplicit, "http://127.0.0.1/cb", false},
		{"V4", nativeImplicit, "com.example.app:/cb", true},
		// V5: web.
		{"V5", web, "https://c.example/cb", true},
		{"V5", web, "http://127.0.0.1:8080/cb", true},
		{"V5", web, "http://localhost/cb", true},
		{"V5", web, "https://localhost/cb", true},
		{"V5", web, "http://c.example/cb", false},
		{"V5", web, "com.example.app:/cb", false},
		{"V5", webImplicit, "https://c.example/cb", true},
		{"V5", webImplicit, "http://localhost/cb", false},
		{"V5", webImplicit, "https://localhost/cb", false},
		{"V5", webImplicit, "https://LOCALHOST:8443/cb", false},
		{"V5", webImplicit, "http://127.0.0.1/cb", false},
		{"V5", webImplicit, "https://127.0.0.1/cb", true},
		{"V5", webImplicit, "https://localhost./cb", false},
		{"V5", webImplicit, "https://LocalHost./cb", false},
		{"V5", webImplicit, "https://foo.localhost/cb", true},
		{"V5", webImplicit, "https://foo-localhost.example/cb", true},
		{"V5", web, "https://localhost./cb", true},
		{"V5", web, "http://localhost./cb", false},
		{"V5", web, "http://foo.localhost/cb", false},
		{"V5", webImplicit, "com.example.app:/cb", false},
		// V7: type omitted: union of loopback http, https and custom schemes.
		{"V7", none, "http://127.0.0.1:33418/callback", true},
		{"V7", none, "http://localhost:8080/callback", true},
		{"V7", none, "http://[::1]:8080/cb", true},
		{"V7", none, "https://localhost/cb", true},
		{"V7", none, "com.example.app:/cb", true},
		{"V7", none, "http://c.example/cb", false},
		{"V7", implicit, "http://127.0.0.1/cb", false},
		{"V7", implicit, "https://localhost/cb", false},
		{"V7", implicit, "https://localhost.:8443/cb", false},
		{"V7", implicit, "https://c.example/cb", true},
		// Host allowlist (policy): exact names and subdomains; loopback always.
		{"V15", allow, "https://c.example/cb", true},
		{"V15", allow, "https://C.Example./cb", true},
		{"V15", allow, "https://x.apps.example/cb", true},
		{"V15", allow, "https://a.b.apps.example/cb", true},
		{"V15", allow, "https://apps.example/cb", false},
		{"V15", allow, "https://evilapps.example/cb", false},
		{"V15", allow, "https://c.example.evil/cb", false},
		{"V15", allow, "http://localhost:9/cb", true},
		{"V15", allow, "com.example.app:/cb", true},
		// Forms whose host a browser finds elsewhere than a parser does,
		// or that name a host the list does not have.
		{"V15", allow, "https://evil.example\\@c.example/cb", false},
		{"V15", allow, "https:evil.example/cb", false},
		{"V15", allow, "ws://evil.example/cb", false},
		{"V15", allow, "wss://x.apps.example/cb", false},
		{"V15", allow, "ftp://evil.example/cb", false},
		// The web's other network schemes are no app's own and receive
		// no authorization response, whatever the client and the host.
		{"V6", none, "ws://evil.example/cb", false},
		{"V6", native, "ws://evil.example/cb", false},
		{"V6", native, "WSS://c.example/cb", false},
		{"V6", none, "ftp://evil.example/cb", false},
		{"V6", native, "ws://127.0.0.1/cb", false},
		// An IPv6 zone is no host a browser accepts, loopback or not.
		{"V4", native, "https://[::1%25eth0]/cb", false},
		{"V4", none, "http://[::1%25eth0]/cb", false},
		{"V4", none, "https://[fe80::1%25eth0]/cb", false},
		{"V15", allow, "com.example.app://callback", true},
		{"V3", native, "intent://evil.example/cb#Intent;scheme=https;end", false},
		{"V3", native, "intent://evil.example/cb", false},
		{"V3", native, "microsoft-edge:https://evil.example/cb", false},
		{"V3", native, "googlechromes://evil.example/cb", false},
		{"V3", native, "x-safari-https://evil.example/cb", false},
		{"V3", native, "microsoft-edge-https://evil.example/cb", false},
		{"V3", native, "brave://open-url?url=https://evil.example", false},
		// Hosts a browser reads as an IPv4 address in a short form.
		{"V2", none, "https://0x7f.1/cb", false},
		{"V2", none, "https://2130706433/cb", false},
		{"V2", none, "https://a.example.123/cb", false},
		{"V2", none, "https://99999999999999999999999/cb", false},
		{"V4", native, "http://127.1/cb", false},
		{"V2", none, "https://1a.example/cb", true},
		{"V2", none, "https://example.0xmple/cb", true},
	} {
		name := tc.id + " " + tc.rule.ApplicationType
		if tc.rule.Implicit {
			name += "+implicit"
		}
		t.Run(name+" "+strings.ReplaceAll(tc.uri, "/", "∕"), func(t *testing.T) {
			msg := tc.rule.CheckRedirectURI(tc.uri)
			if tc.ok && msg != "" {
				t.Errorf("CheckRedirectURI(%q) = %q, want accepted", tc.uri, msg)
			}
			if !tc.ok && msg == "" {
				t.Errorf("CheckRedirectURI(%q) accepted, want refused", tc.uri)
			}
		})
	}
}

func TestCheckWebURI(t *testing.T) {
	for _, tc := range []struct {
		uri string
		ok  bool
	}{
		{"https://c.example/", true},
		{"http://c.example/logo.png", true},
		{"HTTPS://c.example", true},
		{"https://c.example/p?q=1#frag", true},
		{"javascript:alert(1)", false},
		{"data:image/png;base64,AAAA", false},
		{"ftp://c.example/", false},
		{"file:///etc/passwd", false},
		{"/logo.png", false},
		{"c.example/logo.png", false},
		{"https://", false},
		{"https:///x", false},
		{"https://c.example/a b", false},
		{"https://c.example/\t", false},
		{"com.example.app:/x", false},
		{"https://c.example:443/x", true},
		{"https://c.example:65536/x", false},
		{"https://c.example:0/x", false},
		{"https://bank.example@evil.example/", false},
		{"https://u:p@c.example/logo.png", false},
		{"https://@c.example/", false},
		{"https://c.example/a@b", true},
	} {
		msg := CheckWebURI("logo_uri", tc.uri)
		if tc.ok != (msg == "") {
			t.Errorf("V15: CheckWebURI(%q) = %q, want ok=%v", tc.uri, msg, tc.ok)
		}
		if msg != "" && !strings.HasPrefix(msg, "logo_uri ") {
			t.Errorf("CheckWebURI message %q does not name the field", msg)
		}
	}
}

func TestQuoteCutsLongValues(t *testing.T) {
	if q := quote(strings.Repeat("a", 1000)); len(q) > 210 || !strings.HasSuffix(q, `..."`) {
		t.Errorf("quote of a long value = %d bytes %q", len(q), q[len(q)-10:])
	}
	// A cut never splits a multi-byte character (the description must stay
	// valid UTF-8).
	for _, long := range []string{strings.Repeat("é", 300), "a" + strings.Repeat("😀", 100)} {
		if q := quote(long); !utf8.ValidString(q) || !strings.HasSuffix(q, `..."`) || len(q) > 210 {
			t.Errorf("quote(%.10q...) = %q", long, q)
		}
	}
	if q := quote("x"); q != `"x"` {
		t.Errorf("quote(x) = %s", q)
	}
}

func TestHasDangerousScheme(t *testing.T) {
	for raw, want := range map[string]bool{
		"javascript:alert(1)":               true,
		"JAVASCRIPT:alert(1)":               true,
		" \x01javascript:x":                 true,
		"java\tscript:x":                    true,
		"java\nscript:x":                    true,
		"data:text/html,x":                  true,
		"vbscript:x":                        true,
		"file:///etc/passwd":                true,
		"blob:https://a/b":                  true,
		"about:blank":                       true,
		"intent://x/#Intent;end":            true,
		"Microsoft-Edge:https://e.example":  true,
		"x-safari-https://e.example":        true,
		"microsoft-edge-https://e.example/": true,
		"TOUCH-HTTPS://e.example/":          true,
		"googlechrome-x-callback://x-callback-url/open/?url=https%3A%2F%2Fe.example": true,
		"brave://open-url?url=https://e.example":                                     true,
		"microsoft-edge-holographic:https://e.example/":                              true,
		"view-source:https://e.example/":                                             true,
		"ms-msdt:/id%20PCWDiagnostic":                                                true,
		"search-ms:query=x&crumb=location:%5C%5Ce.example%5Cs":                       true,
		"com.example.https.app:/cb":                                                  false,
		"myapp://callback":                                                           false,
		"http://a.example/cb":                                                        false,
		"https://a.example/cb":                                                       false,
		"com.example.app:/cb":                                                        false,
		"/relative:path":                                                             false,
		"javascript":                                                                 false,
		"x javascript:y":                                                             false,
		"":                                                                           false,
	} {
		if got := HasDangerousScheme(raw); got != want {
			t.Errorf("HasDangerousScheme(%q) = %v, want %v", raw, got, want)
		}
	}
}

// TestRedirectHostAllowed: the allowlist as the APIs with looser URL rules
// (MediaGoblin's accepts relative URIs) apply it.
func TestRedirectHostAllowed(t *testing.T) {
	list := []string{"app.example.com", "*.example.org", "xn--bcher-kva.example", "2001:DB8:0::1", "*.Bücher.org"}
	for uri, want := range map[string]bool{
		"https://app.example.com/cb":              true,
		"http://localhost:8080/cb":                true,
		"com.example.app:/cb":                     true,
		"myapp://callback":                        true,
		"myapp://user@callback/a\\b":              true,
		"//evil.example/cb":                       false,
		"///evil.example/cb":                      false,
		"\\\\evil.example/cb":                     false,
		"/\\evil.example/cb":                      false,
		"cb":                                      false,
		"/cb":                                     false,
		"https:/evil.example/cb":                  false,
		"https://evil.example\\@app.example.com/": false,
		"https://app.example.com@evil.example/":   false,
		"https://user@app.example.com/":           false,
		"ws://evil.example/cb":                    false,
		"https://x.example.org/cb":                true,
		// Hosts compared as a browser looks them up.
		"https://APP.Example.COM./cb":           true,
		"https://bücher.example/cb":             true,
		"https://BÜCHER.example/cb":             true,
		"https://b%C3%BCcher.example/cb":        true,
		"https://xn--bcher-kva.example/":        true,
		"https://bucher.example/cb":             false,
		"https://[2001:db8::1]/cb":              true,
		"https://[2001:db8::0:1]:8443/cb":       true,
		"https://[2001:db8::2]/cb":              false,
		"https://app.example.com。evil.example/": false,
		"https://x。example.org/cb":              true,
		"https://x.xn--bcher-kva.org/cb":        true,
		"https://x.bücher.org/cb":               true,
		"https://xn--bcher-kva.org/cb":          false,
		// Empty labels.
		"https://.example.org/cb":       false,
		"https://x..example.org/cb":     false,
		"https://x.example.org../cb":    false,
		"https://app.example.com../cb":  false,
		"https://.app.example.com/cb":   false,
		"https://..x.example.org:80/cb": false,
	} {
		if got := RedirectHostAllowed(uri, list); got != want {
			t.Errorf("RedirectHostAllowed(%q) = %v, want %v", uri, got, want)
		}
		if !RedirectHostAllowed(uri, nil) {
			t.Errorf("RedirectHostAllowed(%q) without a list = false", uri)
		}
	}
}
