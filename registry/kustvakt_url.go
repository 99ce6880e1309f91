package registry

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"

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

var (
	// The generic URI split of RFC 3986 appendix B.
	uriSplit = regexp.MustCompile(`^(?:([^:/?#]+):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$`)
	// Commons' authority: an optional userinfo, a host of letters, digits,
	// '-' and '.', an optional numeric port, then nothing else.
	authorityUserinfo = `[a-zA-Z0-9%&'()*+,\-.~!$;=_]`
	authorityPattern  = regexp.MustCompile(`^(?:(?:` + authorityUserinfo + `+(?::` + authorityUserinfo + `*)?@)?([\p{L}\p{N}\-.]*))(?::(\d*))?(.*)$`)
	ipv6Authority     = regexp.MustCompile(`^(?:` + authorityUserinfo + `+(?::` + authorityUserinfo + `*)?@)?\[([0-9a-fA-F:.]+)\](?::(\d*))?(.*)$`)
	kustvaktPath      = regexp.MustCompile(`^(/[-a-zA-Z0-9_:@&?=+,.!/~*'%$;()]*)?$`)
	domainLabel       = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)
	schemePattern     = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+\-.]*$`)
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
	m := uriSplit.FindStringSubmatch(s)
	if m == nil {
		return false
	}
	scheme, authority, p := m[1], m[2], m[3]
	if !schemePattern.MatchString(scheme) {
		return false
	}
	switch strings.ToLower(scheme) {
	case "http", "https":
	default:
		return false
	}
	if !strings.Contains(s, "//") || authority == "" {
		return false
	}
	if !k.validAuthority(authority) {
		return false
	}
	if !kustvaktPath.MatchString(p) || strings.Contains(p, "//") {
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
	if m := ipv6Authority.FindStringSubmatch(authority); m != nil {
		a, err := netip.ParseAddr(m[1])
		if err != nil || !a.Is6() {
			return false
		}
		return validPort(m[2]) && strings.TrimSpace(m[3]) == ""
	}
	ascii, err := idna.ToASCII(authority)
	if err != nil {
		// Userinfo and port make idna refuse some authorities; convert
		// only the host part.
		ascii = authority
	}
	m := authorityPattern.FindStringSubmatch(ascii)
	if m == nil {
		return false
	}
	host, port, rest := m[1], m[2], m[3]
	if strings.TrimSpace(rest) != "" || !validPort(port) {
		return false
	}
	if h, err := idna.ToASCII(host); err == nil {
		host = h
	}
	if validIPv4(host) {
		return true
	}
	return k.validDomain(host)
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
		if !domainLabel.MatchString(l) {
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
	suffix, icann := publicsuffix.PublicSuffix(strings.ToLower(host))
	return icann && suffix != strings.ToLower(host)
}
