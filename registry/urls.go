package registry

import (
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// This file is the one place where URLs are judged. Each API has its own
// rule, because each real server has one: RFC 7591 redirect and metadata URIs
// here, Kustvakt's commons-validator rule in kustvakt_url.go, MediaGoblin's
// Python urlsplit rule in python_url.go.

// dangerousSchemes can run code or read local data in a user agent; no
// redirect or metadata URI may use them.
var dangerousSchemes = map[string]bool{
	"javascript": true, "data": true, "vbscript": true, "file": true, "blob": true, "about": true,
	// These open a browser on any URL they name (Android's intent:, the
	// browsers' own schemes): a redirect to one leads wherever it says,
	// past any list of redirect hosts.
	"intent": true, "microsoft-edge": true, "microsoft-edge-holographic": true,
	"googlechrome": true, "googlechromes": true, "googlechrome-x-callback": true,
	"firefox": true, "firefox-focus": true, "opera": true, "brave": true, "view-source": true,
	// Windows protocol handlers that phishing pages use to run programs.
	"ms-msdt": true, "search-ms": true, "search": true, "ms-officecmd": true,
}

// dangerousScheme reports whether scheme (lower case) is one of
// dangerousSchemes or a browser's scheme for opening an http(s) URL
// (x-safari-https, microsoft-edge-https, opera-http, touch-https...):
// those all end so, and no list could name every browser.
func dangerousScheme(scheme string) bool {
	return dangerousSchemes[scheme] || strings.HasSuffix(scheme, "-http") || strings.HasSuffix(scheme, "-https")
}

// HasDangerousScheme reports whether a user agent would read raw as a URI
// with one of the dangerous schemes. It is for APIs whose own URL rule
// accepts almost anything (MediaGoblin's): it ignores what browsers and
// Python's urlsplit ignore before parsing (surrounding spaces and C0
// controls, tabs and newlines anywhere), so "java\tscript:" counts too.
func HasDangerousScheme(raw string) bool {
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '\t' || c == '\n' || c == '\r' || (c <= ' ' && b.Len() == 0) {
			continue
		}
		if c == ':' {
			return dangerousScheme(strings.ToLower(b.String()))
		}
		alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !alpha && (b.Len() == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false // not a scheme: a relative reference
		}
		b.WriteByte(c)
	}
	return false
}

// IsLoopbackHost reports whether host (without port or brackets) is
// "localhost" or a loopback IP literal: where plain http is allowed.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	// Names are told apart before parsing, which would build an error for
	// each (an allocation per redirect URI checked): an IP literal has a
	// colon (IPv6) or only digits and dots (IPv4).
	if !strings.Contains(host, ":") && strings.Trim(host, "0123456789.") != "" {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isIPLiteral reports whether host (without brackets) is an IP address
// without a zone: an IPv6 zone ("[::1%25eth0]", RFC 6874) names an
// interface of the machine parsing it, and browsers refuse such URLs (the
// WHATWG URL standard has none), so it is no host to redirect to.
func isIPLiteral(host string) bool {
	a, err := netip.ParseAddr(host)
	return err == nil && a.Zone() == ""
}

// isLocalhost reports whether host names localhost, in its usual or its
// absolute form ("localhost."), in any case.
func isLocalhost(host string) bool {
	return strings.EqualFold(strings.TrimSuffix(host, "."), "localhost")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func hasControlOrSpace(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return true
		}
	}
	return false
}

// RedirectRule carries what decides whether a redirect URI is acceptable.
type RedirectRule struct {
	// ApplicationType is "web", "native" or "" (not sent).
	ApplicationType string
	// Implicit is true when the client may receive tokens in the front
	// channel (response type token or id_token).
	Implicit bool
	// AllowedHosts, when not empty, limits non-loopback hosts: an entry is a
	// host name, or "*.domain" for any subdomain of domain.
	AllowedHosts []string
}

// CheckRedirectURI returns "" if raw is an acceptable redirect URI, or why not.
//
//   - Every redirect URI is absolute, has no fragment and no dangerous scheme.
//   - http is accepted only for a loopback host (any port, RFC 8252 7.3),
//     and never for a client that may use the implicit grant.
//   - native clients may use custom schemes; their https URIs must not be
//     loopback ones (they must be claimed URLs).
//   - web clients use https (or http on loopback); implicit web clients may
//     not use localhost.
//   - A client that does not say what it is gets the union: loopback http,
//     https and custom schemes, because real MCP clients omit the type.
func (rule RedirectRule) CheckRedirectURI(raw string) string {
	if raw == "" {
		return "redirect URI must not be empty"
	}
	if hasControlOrSpace(raw) {
		return "redirect URI " + quote(raw) + " contains spaces or control characters"
	}
	if strings.Contains(raw, "#") {
		return "redirect URI " + quote(raw) + " must not contain a fragment"
	}
	// RFC 6749 section 3.1.2: an absolute URI as RFC 3986 defines it, which
	// is ASCII. An IRI would be compared character for character with the
	// encoded form a browser sends back, and never match.
	if !isASCII(raw) {
		return "redirect URI " + quote(raw) + " must be an ASCII URI (percent-encode the path, use the punycode form of the host)"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "redirect URI " + quote(raw) + " is not an absolute URI"
	}
	scheme := strings.ToLower(u.Scheme)
	if dangerousScheme(scheme) {
		return "redirect URI " + quote(raw) + " uses the forbidden scheme " + quote(scheme)
	}
	switch scheme {
	case "http", "https":
		host := u.Hostname()
		if host == "" {
			return "redirect URI " + quote(raw) + " has no host"
		}
		if u.User != nil {
			return "redirect URI " + quote(raw) + " must not contain user information"
		}
		// Redirect URIs are compared whole (RFC 6749 section 3.1.2.3), so
		// "https://*.example.com/cb" would be a literal host no browser
		// can be sent to: refused, like any other host that is not a DNS
		// name or an IP address, rather than registered to never match.
		if strings.Contains(host, "*") {
			return "redirect URI " + quote(raw) + " has a wildcard in its host: register each redirect URI in full"
		}
		// (A name is checked first: parsing it as an address would build
		// an error, an allocation, for the usual case.)
		if (!ValidHostName(host) || numericLastLabel(host)) && !isIPLiteral(host) {
			return "redirect URI " + quote(raw) + " has an invalid host"
		}
		if !portInRange(u) {
			return "redirect URI " + quote(raw) + " has an invalid port"
		}
		loopback := IsLoopbackHost(host)
		if scheme == "http" {
			if !loopback {
				return "redirect URI " + quote(raw) + " must use https (http is allowed only for loopback hosts)"
			}
			if rule.Implicit {
				return "redirect URI " + quote(raw) + " must use https for a client using the implicit grant"
			}
			return ""
		}
		if rule.ApplicationType == "native" && (loopback || isLocalhost(host)) {
			return "redirect URI " + quote(raw) + ": https redirect URIs of native clients must not use a loopback host"
		}
		if rule.Implicit && rule.ApplicationType != "native" && isLocalhost(host) {
			// OpenID Connect Registration section 2: "MUST NOT use
			// localhost as the hostname", which "localhost." is too. An
			// address is no hostname (node-oidc-provider reads it so too).
			return "redirect URI " + quote(raw) + " must not use localhost for a client using the implicit grant"
		}
		if !loopback && !hostAllowed(host, rule.AllowedHosts) {
			return "redirect URI " + quote(raw) + " uses a host that is not allowed here"
		}
		return ""
	}
	// ws, wss and ftp are the web's other network schemes (the WHATWG URL
	// standard's special schemes): not an app's own scheme (RFC 8252
	// section 7.1), and nothing a browser is redirected to hands the
	// authorization response to a client; ws and ftp would carry it in
	// clear to any host. Refused whatever the host and the client.
	switch scheme {
	case "ws", "wss", "ftp":
		return "redirect URI " + quote(raw) + " uses the scheme " + quote(scheme) + ", which cannot receive an authorization response: use https, loopback http or an app's own scheme"
	}
	// A custom scheme ("com.example.app:/cb").
	if !RedirectHostAllowed(raw, rule.AllowedHosts) {
		return "redirect URI " + quote(raw) + " uses a host that is not allowed here"
	}
	if rule.ApplicationType == "web" {
		return "redirect URI " + quote(raw) + " uses a custom scheme, which only native clients may use"
	}
	if rule.Implicit && rule.ApplicationType != "native" {
		return "redirect URI " + quote(raw) + " must use https for a client using the implicit grant"
	}
	return ""
}

// RedirectHostAllowed applies an allowlist of redirect hosts to an
// already-validated URI of any API (MediaGoblin's rule accepts relative
// ones): loopback hosts and custom schemes are always allowed, other hosts
// must match the list (empty allows all).
//
// With a list, only URIs whose host a browser would find where this parser
// does pass. A browser resolves a URI without a scheme against the page
// that redirects ("//evil.example/cb" leads to evil.example), reads '\' as
// '/' in web URLs ("https://evil.example\@good.example/" is evil.example,
// not a user at good.example), and finds a host in "https:evil.example/cb";
// the other schemes of web URLs (ws, wss, ftp) have hosts as http's do.
func RedirectHostAllowed(raw string, allowed []string) bool {
	if len(allowed) == 0 {
		return true
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https", "ws", "wss", "ftp":
	default:
		return true // an app's own scheme: the system hands it to that app
	}
	host := u.Hostname()
	if host == "" || u.User != nil || strings.ContainsRune(raw, '\\') {
		return false
	}
	return IsLoopbackHost(host) || hostAllowed(host, allowed)
}

// hostAllowed matches host against an allowlist of names and "*.domain"
// patterns; an empty list allows every host.
func hostAllowed(host string, allowed []string) bool {
	if len(allowed) == 0 {
		return true
	}
	if host = ComparableHost(host); host == "" {
		return false
	}
	for _, a := range allowed {
		name, wild := strings.CutPrefix(a, "*.")
		switch name = ComparableHost(name); {
		case name == "":
		case wild:
			if strings.HasSuffix(host, "."+name) {
				return true
			}
		case host == name:
			return true
		}
	}
	return false
}

// ComparableHost returns a host as a browser looks it up, for comparison: IP
// addresses in their canonical form ("2001:DB8:0::1" is "2001:db8::1"),
// names in lower case and, when not ASCII, as IDNA lookup turns them to
// ASCII ("Bücher.example" is "xn--bcher-kva.example"), without a trailing
// dot. A name IDNA refuses gives "": it matches nothing.
func ComparableHost(h string) string {
	h = strings.TrimSuffix(h, ".")
	if a, err := netip.ParseAddr(h); err == nil {
		return a.String()
	}
	// An empty label (".example.org", "a..example.org") names no host a
	// browser can go to: it must not pass as a subdomain of "*.example.org".
	if h == "" || h[0] == '.' || strings.HasSuffix(h, ".") || strings.Contains(h, "..") {
		return ""
	}
	if isASCII(h) {
		return strings.ToLower(h)
	}
	if a, err := idna.Lookup.ToASCII(h); err == nil {
		return a
	}
	return ""
}

// CheckWebURI returns "" if raw is an acceptable metadata URL (client_uri,
// logo_uri, tos_uri, policy_uri, jwks_uri): absolute http or https with a
// host and no user information.
func CheckWebURI(field, raw string) string {
	if hasControlOrSpace(raw) {
		return field + " " + quote(raw) + " contains spaces or control characters"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return field + " " + quote(raw) + " is not an absolute URL"
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	default:
		return field + " " + quote(raw) + " must be an http or https URL"
	}
	if u.Hostname() == "" {
		return field + " " + quote(raw) + " has no host"
	}
	// RFC 9110 section 4.2.4: userinfo in an http(s) URI is deprecated and
	// to be treated as an error; on a consent page
	// "https://bank.example@evil.example/" reads as the bank's.
	if u.User != nil {
		return field + " " + quote(raw) + " must not contain user information"
	}
	if !portInRange(u) {
		return field + " " + quote(raw) + " has an invalid port"
	}
	return ""
}

// portInRange reports whether the URL's port, if any, is one a client could
// connect to. url.Parse accepts any run of digits ("https://h:99999/",
// "https://h:0/"), which no user agent can follow.
func portInRange(u *url.URL) bool {
	p := u.Port()
	return p == "" || ValidPort(p)
}

// ValidPort reports whether p is a TCP port a client can connect to: a
// number from 1 to 65535, in digits only.
func ValidPort(p string) bool {
	n, err := strconv.ParseUint(p, 10, 16)
	return err == nil && n > 0
}

// ValidHostName reports whether name is a DNS name as hosts are written in
// URLs and Host headers: dot-separated labels of 1 to 63 letters, digits,
// '-' and '_' (service names use it), 253 characters at most, an optional
// final dot. IPv4 addresses pass too; IPv6 ones, written in brackets, do
// not.
func ValidHostName(name string) bool {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") { // checked on every request: no slice
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// numericLastLabel reports whether a host name ends in a label that is a
// number (decimal, or hex with 0x): browsers read such a host as an IPv4
// address in a short or numeric form ("127.1", "0x7f.1", "2130706433" are
// 127.0.0.1), which the checks here would take for a name.
func numericLastLabel(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := strings.ToLower(host[strings.LastIndexByte(host, '.')+1:])
	digits := "0123456789"
	if rest, ok := strings.CutPrefix(last, "0x"); ok {
		last, digits = rest, "0123456789abcdef"
	} else if last == "" {
		return false
	}
	for i := 0; i < len(last); i++ {
		if strings.IndexByte(digits, last[i]) < 0 {
			return false
		}
	}
	return true
}

// quote wraps a value in double quotes for an error description, cut to a
// readable length.
func quote(s string) string {
	const max = 200
	if len(s) > max {
		// Cut on a character boundary: half a UTF-8 sequence would make the
		// error description invalid UTF-8.
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return `"` + s + `"`
}
