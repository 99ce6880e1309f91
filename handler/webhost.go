package handler

import (
	"net/netip"
	"strconv"
	"strings"
)

// WebHost is hostport (a host and an optional ":port") with its host
// written as WHATWG's URL parser writes it, the parser of browsers and of
// Node (openid-client, the MCP SDK), which clients compare the issuer they
// discovered with (RFC 8414 section 3.3); ok is false for a host that
// parser refuses. An internationalized name becomes its A-label; a name
// that ends in a number is read as an IPv4 address, in any of the forms
// the parser takes ("127.1", "0x7f.0.0.1" are 127.0.0.1; "1.2.3.4.5" and
// "a.1" are refused); an IPv6 address takes its shortest form, and one
// with a zone ("[fe80::1%25eth0]") is refused. Published as sent, such a
// host gave URLs the parser refused, or rewrote into others.
func WebHost(hostport string) (string, bool) {
	host, port := hostport, ""
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return hostport, false
		}
		host, port = hostport[:end+1], hostport[end+1:]
		h, ok := webIPv6(host[1:end])
		return h + port, ok
	}
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
		host, port = hostport[:i], hostport[i:]
	}
	// The name is mapped first (UTS 46: "１" is "1", "。" a dot), and then
	// read as an address if it ends in a number, as WHATWG's parser does.
	host, ok := asciiHost(host)
	if !ok {
		return hostport, false
	}
	if endsInNumber(host) {
		if a, err := netip.ParseAddr(host); err == nil && a.Is4() {
			return host + port, true // dotted decimal already, the usual case
		}
		h, ok := webIPv4(host)
		return h + port, ok
	}
	return host + port, true
}

// webIPv6 writes the IPv6 address s in brackets the way WHATWG's
// serializer does: lower-case hexadecimal groups without leading zeros,
// the first longest run of two or more zero groups as "::", and never an
// embedded IPv4 address ("::ffff:127.0.0.1" is "::ffff:7f00:1").
func webIPv6(s string) (string, bool) {
	if strings.Contains(s, "%") {
		return "", false // a zone: no part of a URL to WHATWG
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		return "", false
	}
	b := a.As16()
	var g [8]uint16
	for i := range g {
		g[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	run, runLen := -1, 1
	for i := 0; i < 8; {
		j := i
		for j < 8 && g[j] == 0 {
			j++
		}
		if j-i > runLen {
			run, runLen = i, j-i
		}
		i = max(j, i+1)
	}
	out := make([]byte, 0, 41)
	out = append(out, '[')
	for i := 0; i < 8; i++ {
		if i == run {
			out = append(out, ':', ':')
			i += runLen - 1
			continue
		}
		if len(out) > 1 && out[len(out)-1] != ':' {
			out = append(out, ':')
		}
		out = strconv.AppendUint(out, uint64(g[i]), 16)
	}
	return string(append(out, ']')), true
}

// endsInNumber reports whether WHATWG's host parser reads the name host
// as an IPv4 address: its last label (less one trailing dot) is decimal
// digits, or "0x" and hexadecimal digits.
func endsInNumber(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if strings.Trim(last, "0123456789") == "" {
		return true
	}
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		return strings.Trim(last[2:], "0123456789abcdefABCDEF") == ""
	}
	return false
}

// webIPv4 reads host as WHATWG's IPv4 parser does (up to four parts, each
// decimal, hexadecimal after "0x" or octal after "0"; the last one fills
// the bytes left) and writes the address in dotted-decimal form.
func webIPv4(host string) (string, bool) {
	parts := strings.Split(host, ".")
	if len(parts) > 1 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	if len(parts) > 4 {
		return "", false
	}
	var addr uint64
	for i, p := range parts {
		n, ok := ipv4Number(p)
		last := i == len(parts)-1
		if !ok || !last && n > 255 || last && n >= 1<<(8*(5-len(parts))) {
			return "", false
		}
		if last {
			addr += n
		} else {
			addr += n << (8 * (3 - i))
		}
	}
	out := make([]byte, 0, 15)
	for i := 3; i >= 0; i-- {
		out = strconv.AppendUint(out, addr>>(8*i)&0xff, 10)
		if i > 0 {
			out = append(out, '.')
		}
	}
	return string(out), true
}

// ipv4Number reads one part of an IPv4 address as WHATWG does; numbers
// past 2^32 fail (no address holds them).
func ipv4Number(p string) (uint64, bool) {
	if p == "" {
		return 0, false
	}
	base := 10
	switch {
	case len(p) >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'):
		p, base = p[2:], 16
	case len(p) >= 2 && p[0] == '0':
		p, base = p[1:], 8
	}
	if p == "" {
		return 0, true
	}
	n, err := strconv.ParseUint(p, base, 64)
	return n, err == nil && n < 1<<32
}

// WebPath is the escaped path p with its dot segments removed as WHATWG's
// parser removes them, "%2e" counting as "." ("/a/%2E%2e/b" is "/b"), so
// that a mount found in a request (Options.Mount, Caddy's handle_path) is
// published as a client's parser would write it. A path without them is
// returned as is.
func WebPath(p string) string {
	if !strings.Contains(p, ".") && !strings.Contains(p, "%2") {
		return p
	}
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		switch dotSegment(s) {
		case 1:
			if i == len(segs)-1 {
				out = append(out, "")
			}
		case 2:
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if i == len(segs)-1 {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return strings.Join(out, "/")
}

// dotSegment is 1 for a "." segment, 2 for "..", with "%2e" for a dot.
func dotSegment(s string) int {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "%2e", "."), "%2E", ".")
	switch s {
	case ".":
		return 1
	case "..":
		return 2
	}
	return 0
}
