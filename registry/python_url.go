package registry

import (
	"errors"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MediaGoblin judges a URL with
//
//	try: urllib.parse.urlparse(url); return True
//	except Exception: return False
//
// so a URL is "invalid" exactly when Python's urlsplit raises ValueError.
// That happens only for a few shapes of the authority (netloc); everything
// else, including "not a url at all", passes. This file reproduces that
// rule, as of CPython's current urllib.parse (bracketed-host checks from
// 3.11.4 and the stricter bracket placement checks added after), instead of
// judging URLs by any standard: the clone must accept and refuse the same
// strings as the real server.
//
// Strings here are Python str values carried in Go strings: UTF-8, with
// lone surrogates (which JSON "\ud800" escapes can produce) in their
// generalized 3-byte UTF-8 form. Every delimiter involved is ASCII, so byte
// offsets can be used throughout.

// PythonSplit holds the five parts of Python's urllib.parse.urlsplit.
type PythonSplit struct {
	Scheme, Netloc, Path, Query, Fragment string
}

// Errors with the messages Python's ValueError carries, capitals included:
// MediaGoblin answers with them as they are.
var (
	//lint:ignore ST1005 Python's message, quoted on the wire
	errPyInvalidIPv6 = errors.New("Invalid IPv6 URL")
	errPyIPvFuture   = errors.New("IPvFuture address is invalid")
	//lint:ignore ST1005 Python's message, quoted on the wire
	errPyIPv4InBrackets = errors.New("An IPv4 address cannot be in brackets")
	errPyNotIPAddress   = errors.New("does not appear to be an IPv4 or IPv6 address")
	errPyNFKC           = errors.New("netloc contains invalid characters under NFKC normalization")
)

// pythonSchemeChars is urllib.parse.scheme_chars.
const pythonSchemeChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-."

// PythonURLValid reports whether MediaGoblin's validate_url accepts the
// string raw, that is whether urlparse(raw) does not raise. (Non-string
// JSON values are the caller's business: validate_url refuses them.)
func PythonURLValid(raw string) bool {
	_, err := PythonURLSplit(raw)
	return err == nil
}

// PythonURLSplit splits raw like Python's urllib.parse.urlsplit(raw) with
// the default arguments, or returns the error it raises.
func PythonURLSplit(raw string) (PythonSplit, error) {
	var p PythonSplit
	// Leading C0 controls and spaces go (trailing ones stay, as in Python),
	// then every tab, CR and LF anywhere.
	url := strings.TrimLeft(raw, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f"+
		"\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")
	if strings.ContainsAny(url, "\t\r\n") {
		url = strings.NewReplacer("\t", "", "\r", "", "\n", "").Replace(url)
	}

	// A scheme is everything before the first ':' when it starts with an
	// ASCII letter and uses only scheme characters; otherwise the whole
	// string is scheme-less (so "1http://[" has no netloc at all).
	if i := strings.IndexByte(url, ':'); i > 0 && pythonIsASCIILetter(url[0]) && pythonOnly(url[:i], pythonSchemeChars) {
		p.Scheme, url = strings.ToLower(url[:i]), url[i+1:]
	}

	if strings.HasPrefix(url, "//") {
		rest := url[2:]
		end := len(rest)
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			end = i
		}
		p.Netloc, url = rest[:end], rest[end:]
		open, closed := strings.Contains(p.Netloc, "["), strings.Contains(p.Netloc, "]")
		if open != closed {
			return PythonSplit{}, errPyInvalidIPv6
		}
		if open {
			if err := pythonCheckBracketedNetloc(p.Netloc); err != nil {
				return PythonSplit{}, err
			}
		}
	}
	if i := strings.IndexByte(url, '#'); i >= 0 {
		url, p.Fragment = url[:i], url[i+1:]
	}
	if i := strings.IndexByte(url, '?'); i >= 0 {
		url, p.Query = url[:i], url[i+1:]
	}
	p.Path = url
	if err := pythonCheckNetlocNFKC(p.Netloc); err != nil {
		return PythonSplit{}, err
	}
	return p, nil
}

func pythonIsASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func pythonOnly(s, set string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(set, s[i]) < 0 {
			return false
		}
	}
	return true
}

// pythonCheckBracketedNetloc is called when the netloc has both '[' and
// ']'. The host part is what follows the last '@'. When it has a '[', that
// must be its first character, and what follows the matching ']' must be
// empty or a ":port"; the bracketed text must be an IPv6 address or an
// IPvFuture literal. When only the user info has brackets, the host (up to
// ':') goes through the same host check, which an ordinary name fails.
func pythonCheckBracketedNetloc(netloc string) error {
	hostAndPort := netloc
	if i := strings.LastIndexByte(netloc, '@'); i >= 0 {
		hostAndPort = netloc[i+1:]
	}
	var host string
	if before, bracketed, ok := strings.Cut(hostAndPort, "["); ok {
		if before != "" {
			return errPyInvalidIPv6
		}
		var port string
		host, port, _ = strings.Cut(bracketed, "]")
		if port != "" && port[0] != ':' {
			return errPyInvalidIPv6
		}
	} else {
		host, _, _ = strings.Cut(hostAndPort, ":")
	}
	return pythonCheckBracketedHost(host)
}

// pythonCheckBracketedHost accepts an IPvFuture literal ("v", hex digits,
// ".", anything) or an IPv6 address as Python's ipaddress.ip_address parses
// it; an IPv4 address is refused.
func pythonCheckBracketedHost(host string) error {
	if strings.HasPrefix(host, "v") {
		hex, rest, ok := strings.Cut(host[1:], ".")
		if !ok || hex == "" || !pythonOnly(hex, pythonHexDigits) || rest == "" {
			return errPyIPvFuture
		}
		return nil
	}
	if pythonIPv4(host) {
		return errPyIPv4InBrackets
	}
	if !pythonIPv6(host) {
		return errPyNotIPAddress
	}
	return nil
}

const pythonHexDigits = "0123456789abcdefABCDEF"

// pythonIPv4 reports whether ipaddress.IPv4Address(s) accepts s: four
// dot-separated decimal octets of one to three ASCII digits, no leading
// zeros, each at most 255.
func pythonIPv4(s string) bool {
	octets := strings.Split(s, ".")
	if len(octets) != 4 {
		return false
	}
	for _, o := range octets {
		if o == "" || len(o) > 3 || !pythonOnly(o, "0123456789") || (o[0] == '0' && o != "0") {
			return false
		}
		n := 0
		for i := 0; i < len(o); i++ {
			n = n*10 + int(o[i]-'0')
		}
		if n > 255 {
			return false
		}
	}
	return true
}

// pythonIPv6 reports whether ipaddress.IPv6Address(s) accepts s. Python
// allows a "%scope" suffix (any non-empty text without another '%'), an
// IPv4 dotted quad as the last 32 bits, and one "::".
func pythonIPv6(s string) bool {
	if strings.Contains(s, "/") {
		return false
	}
	addr, scope, hasScope := strings.Cut(s, "%")
	if hasScope && (scope == "" || strings.Contains(scope, "%")) {
		return false
	}
	if addr == "" || len(addr) > 45 {
		return false
	}
	parts := strings.Split(addr, ":")
	if len(parts) < 3 {
		return false
	}
	if last := parts[len(parts)-1]; strings.Contains(last, ".") {
		if !pythonIPv4(last) {
			return false
		}
		// The quad stands for two hextets; any valid hextet text will do,
		// only the count matters from here on.
		parts = append(parts[:len(parts)-1], "0", "0")
	}
	const hextets = 8
	if len(parts) > hextets+1 {
		return false
	}
	skip := -1
	for i := 1; i < len(parts)-1; i++ {
		if parts[i] == "" {
			if skip >= 0 {
				return false // more than one "::"
			}
			skip = i
		}
	}
	var hi, lo int
	if skip >= 0 {
		hi, lo = skip, len(parts)-skip-1
		if parts[0] == "" {
			if hi--; hi != 0 {
				return false // a leading ':' must be part of "::"
			}
		}
		if parts[len(parts)-1] == "" {
			if lo--; lo != 0 {
				return false // a trailing ':' must be part of "::"
			}
		}
		if hextets-(hi+lo) < 1 {
			return false
		}
	} else {
		if len(parts) != hextets || parts[0] == "" || parts[len(parts)-1] == "" {
			return false
		}
		hi = len(parts)
	}
	for _, h := range parts[:hi] {
		if !pythonHextet(h) {
			return false
		}
	}
	for _, h := range parts[len(parts)-lo:] {
		if !pythonHextet(h) {
			return false
		}
	}
	return true
}

func pythonHextet(h string) bool {
	return h != "" && len(h) <= 4 && pythonOnly(h, pythonHexDigits)
}

// pythonCheckNetlocNFKC refuses a non-ASCII netloc in which NFKC
// normalization (what IDNA applies later) produces one of the URL
// delimiters '/', '?', '#', '@' or ':' (e.g. U+2100 becomes "a/c"). The
// delimiters already present are removed first so that only new ones count.
func pythonCheckNetlocNFKC(netloc string) error {
	if pythonIsASCII(netloc) {
		return nil
	}
	n := strings.NewReplacer("@", "", ":", "", "#", "", "?", "").Replace(netloc)
	if strings.ContainsAny(norm.NFKC.String(pythonReplaceSurrogates(n)), "/?#@:") {
		return errPyNFKC
	}
	return nil
}

func pythonIsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// pythonReplaceSurrogates turns the 3-byte forms of lone surrogates (not valid
// UTF-8) into U+FFFD before normalization. Neither a surrogate nor U+FFFD
// has a decomposition, so the outcome of the delimiter check is unchanged,
// and the normalizer only ever sees valid UTF-8.
func pythonReplaceSurrogates(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if i+2 < len(s) && s[i] == 0xed && s[i+1] >= 0xa0 && s[i+1] <= 0xbf && s[i+2] >= 0x80 && s[i+2] <= 0xbf {
			b.WriteRune(utf8.RuneError)
			i += 3
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
