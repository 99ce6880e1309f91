package registry

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// Kustvakt validates a client's url and redirect_uri with Apache Commons
// Validator's UrlValidator (schemes http and https; redirect URIs also with
// local hosts allowed and fragments refused). KustvaktURL reproduces that
// rule, with one decision of ours: a host name is accepted when it ends in a
// public suffix of the ICANN section of the Public Suffix List and has a
// label before it (golang.org/x/net/publicsuffix), instead of Commons'
// compiled-in IANA TLD list.

// KustvaktURLRule selects the UrlValidator options.
type KustvaktURLRule struct {
	// AllowLocal accepts localhost, *.localhost, *.localdomain and
	// single-label host names (ALLOW_LOCAL_URLS).
	AllowLocal bool
	// NoFragments refuses any '#' (NO_FRAGMENTS).
	NoFragments bool
}

// The patterns of the validator. The hot ones are written out as code
// below (splitURI, splitAuthority, validKustvaktPath, validDomainLabel and
// the scheme check), which agree with them on every input that passed
// javaURIInvalid:
//
//	uriSplit          ^(?:([^:/?#]+):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$   (RFC 3986 appendix B)
//	authorityPattern  ^(?:(?:U+(?::U*)?@)?([\p{L}\p{N}\-.]*))(?::(\d*))?(.*)$
//	kustvaktPath      ^(/[-a-zA-Z0-9_:@&?=+,.!/~*'%$;()]*)?$
//	domainLabel       ^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$
//	schemePattern     ^[a-zA-Z][a-zA-Z0-9+\-.]*$
//
// with U = authorityUserinfo. Commons' authority is an optional userinfo, a
// host of letters, digits, '-' and '.', an optional numeric port, then
// nothing else.
var (
	authorityUserinfo = `[a-zA-Z0-9%&'()*+,\-.~!$;=_]`
	// Commons' bracketed host: hex digits and colons, or an IPv4-mapped
	// address spelled exactly "::FFFF:" (upper case) and a dotted quad.
	ipv6Authority = regexp.MustCompile(`^(?:` + authorityUserinfo + `+(?::` + authorityUserinfo + `*)?@)?\[(::FFFF:(?:\d{1,3}\.){3}\d{1,3}|[0-9a-fA-F:]+)\](?::(\d*))?(.*)$`)
)

// javaURIInvalid reports characters java.net.URI refuses anywhere in a URI:
// controls, space and the "unwise" ASCII characters; '%' must start an escape.
func javaURIInvalid(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c <= ' ' || c == 0x7f:
			return true
		case strings.IndexByte("\"<>\\^`{|}", c) >= 0:
			return true
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return true
			}
		}
	}
	return false
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// Valid reports whether s is a valid http(s) URL under the rule.
func (k KustvaktURLRule) Valid(s string) bool {
	if s == "" || javaURIInvalid(s) || strings.Count(s, "#") > 1 {
		return false
	}
	scheme, authority, p, hasAuthority := splitURI(s)
	// The scheme must match schemePattern and be http or https; those
	// two match it, so comparing is enough.
	if !asciiEqualFold(scheme, "http") && !asciiEqualFold(scheme, "https") {
		return false
	}
	if !hasAuthority || authority == "" {
		return false
	}
	if !k.validAuthority(authority) {
		return false
	}
	if !validKustvaktPath(p) || strings.Contains(p, "//") {
		return false
	}
	if escapesRoot(p) {
		return false
	}
	if k.NoFragments && strings.Contains(s, "#") {
		return false
	}
	return true
}

// splitURI is uriSplit (RFC 3986 appendix B) written out: the scheme before
// the first ':' that comes before any of "/?#", the authority after "//"
// up to "/?#", then the path up to "?#". s holds no control characters.
func splitURI(s string) (scheme, authority, path string, hasAuthority bool) {
	if i := strings.IndexAny(s, ":/?#"); i > 0 && s[i] == ':' {
		scheme, s = s[:i], s[i+1:]
	}
	if strings.HasPrefix(s, "//") {
		s = s[2:]
		i := strings.IndexAny(s, "/?#")
		if i < 0 {
			i = len(s)
		}
		authority, s, hasAuthority = s[:i], s[i:], true
	}
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	return scheme, authority, s, hasAuthority
}

// asciiEqualFold compares s to the lower-case ASCII word w, ignoring ASCII case only.
func asciiEqualFold(s, w string) bool {
	if len(s) != len(w) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != w[i] {
			return false
		}
	}
	return true
}

// validKustvaktPath is kustvaktPath: empty, or "/" followed by characters
// of the set.
func validKustvaktPath(p string) bool {
	if p == "" {
		return true
	}
	if p[0] != '/' {
		return false
	}
	for i := 1; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-_:@&?=+,.!/~*'%$;()", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// escapesRoot reports whether normalizing the path climbs above the root
// ("/../x"), which Commons refuses.
func escapesRoot(p string) bool {
	depth := 0
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

func (k KustvaktURLRule) validAuthority(authority string) bool {
	if strings.IndexByte(authority, '[') >= 0 {
		if m := ipv6Authority.FindStringSubmatch(authority); m != nil {
			a, err := netip.ParseAddr(m[1])
			if err != nil || !a.Is6() {
				return false
			}
			// Commons checks the port's range only after a name or an
			// IPv4 address: after an IPv6 address any digits pass.
			return strings.TrimSpace(m[3]) == ""
		}
	}
	ascii := authority
	if !plainASCIIName(authority) {
		// Java's IDN.toASCII, which Commons calls first, separates labels
		// at the ideographic and fullwidth stops too; Go's idna only at '.'.
		authority = idnDots.Replace(authority)
		var err error
		if ascii, err = idna.ToASCII(authority); err != nil {
			// Userinfo and port make idna refuse some authorities; convert
			// only the host part.
			ascii = authority
		}
	}
	host, port, rest := splitAuthority(ascii)
	if strings.TrimSpace(rest) != "" || !validPort(port) {
		return false
	}
	if !plainASCIIName(host) {
		if h, err := idna.ToASCII(host); err == nil {
			host = h
		}
	}
	if validIPv4(host) {
		return true
	}
	return k.validDomain(host)
}

var idnDots = strings.NewReplacer("\u3002", ".", "\uff0e", ".", "\uff61", ".")

// plainASCIIName reports whether idna.ToASCII would return s unchanged
// without looking at it: all ASCII, and no punycode label.
func plainASCIIName(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return !strings.Contains(s, "xn--")
}

// isUserinfoByte is the class authorityUserinfo.
func isUserinfoByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("%&'()*+,-.~!$;=_", c) >= 0
}

// splitAuthority is authorityPattern written out, with its leftmost-first
// choices: the userinfo when one is there, the longest host of letters,
// digits, '-' and '.', then ':' and the longest run of digits as the port,
// and whatever follows.
func splitAuthority(s string) (host, port, rest string) {
	i := 0
	for i < len(s) && isUserinfoByte(s[i]) {
		i++
	}
	if i > 0 && i < len(s) {
		switch s[i] {
		case '@':
			s = s[i+1:]
		case ':':
			j := i + 1
			for j < len(s) && isUserinfoByte(s[j]) {
				j++
			}
			if j < len(s) && s[j] == '@' {
				s = s[j+1:]
			}
		}
	}
	n := 0
	for n < len(s) {
		r, size := utf8.DecodeRuneInString(s[n:])
		if r != '-' && r != '.' && !unicode.IsLetter(r) && !unicode.IsNumber(r) {
			break
		}
		n += size
	}
	host, s = s[:n], s[n:]
	if strings.HasPrefix(s, ":") {
		d := 1
		for d < len(s) && '0' <= s[d] && s[d] <= '9' {
			d++
		}
		port, s = s[1:d], s[d:]
	}
	return host, port, s
}

// validDomainLabel is domainLabel: 1 to 63 ASCII letters, digits and
// hyphens, a letter or digit first and last.
func validDomainLabel(l string) bool {
	if len(l) == 0 || len(l) > 63 {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-' && i > 0 && i < len(l)-1:
		default:
			return false
		}
	}
	return true
}

func validPort(p string) bool {
	if p == "" {
		return true
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535
}

// validIPv4: four decimal octets, no leading zeros.
func validIPv4(h string) bool {
	parts := strings.Split(h, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 3 || (len(p) > 1 && p[0] == '0') {
			return false
		}
		n, err := strconv.Atoi(p)
		if err != nil || n > 255 {
			return false
		}
	}
	return true
}

func (k KustvaktURLRule) validDomain(host string) bool {
	host = strings.TrimSuffix(host, ".")
	if host == "" || len(host) > 253 {
		return false
	}
	labels := strings.Split(host, ".")
	for _, l := range labels {
		if !validDomainLabel(l) {
			return false
		}
	}
	if k.AllowLocal {
		if len(labels) == 1 {
			return true // localhost and other single-label hosts
		}
		switch strings.ToLower(labels[len(labels)-1]) {
		case "localhost", "localdomain":
			return true
		}
	}
	if len(labels) < 2 {
		return false
	}
	// The last label must be a letter-led TLD on the ICANN list, and the
	// host must have a label before its public suffix.
	tld := labels[len(labels)-1]
	if tld[0] >= '0' && tld[0] <= '9' {
		return false
	}
	host = strings.ToLower(host)
	suffix, ok := icannSuffix(host)
	return ok && suffix != host
}

// icannSuffix is host's public suffix under the ICANN section's rules alone.
// PublicSuffix answers with the longest rule of either section; a private
// one (github.io, herokuapp.com) comes back with icann false, and the ICANN
// rule is then looked up for that suffix minus its first label. Hosts under
// a private suffix are ordinary registrable names as far as ICANN goes.
func icannSuffix(host string) (string, bool) {
	d := host
	for {
		s, icann := publicsuffix.PublicSuffix(d)
		if icann {
			return s, true
		}
		i := strings.IndexByte(s, '.')
		if i < 0 {
			return "", false // no ICANN rule: not a delegated TLD
		}
		d = s[i+1:]
	}
}
