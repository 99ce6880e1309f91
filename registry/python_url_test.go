package registry

import (
	"strings"
	"testing"
)

// The expectations below are what CPython's current urllib.parse.urlsplit
// returns or raises for each string (checked against CPython 3.11 with the
// bracket placement checks of later releases).
func TestPythonURLSplit(t *testing.T) {
	cases := []struct {
		url  string
		ok   bool
		want PythonSplit
	}{
		{"", true, PythonSplit{"", "", "", "", ""}},
		{"not a url", true, PythonSplit{"", "", "not a url", "", ""}},
		{"http://example.com/logo.png", true, PythonSplit{"http", "example.com", "/logo.png", "", ""}},
		{"HTTP://Example.COM:8080/a?b=c#d", true, PythonSplit{"http", "Example.COM:8080", "/a", "b=c", "d"}},
		{"mailto:someone@example.com", true, PythonSplit{"mailto", "", "someone@example.com", "", ""}},
		{"urn:isbn:0451450523", true, PythonSplit{"urn", "", "isbn:0451450523", "", ""}},
		{"//host/path", true, PythonSplit{"", "host", "/path", "", ""}},
		{"/relative/path", true, PythonSplit{"", "", "/relative/path", "", ""}},
		{"?q", true, PythonSplit{"", "", "", "q", ""}},
		{"#f", true, PythonSplit{"", "", "", "", "f"}},
		{"http://[::1]", true, PythonSplit{"http", "[::1]", "", "", ""}},
		{"http://[::1]:8080/x", true, PythonSplit{"http", "[::1]:8080", "/x", "", ""}},
		{"http://user:pw@[fe80::1%25eth0]:1/p", true, PythonSplit{"http", "user:pw@[fe80::1%25eth0]:1", "/p", "", ""}},
		{"http://[fe80::1%eth0]", true, PythonSplit{"http", "[fe80::1%eth0]", "", "", ""}},
		{"http://[::ffff:192.0.2.1]", true, PythonSplit{"http", "[::ffff:192.0.2.1]", "", "", ""}},
		{"http://[1:2:3:4:5:6:7:8]", true, PythonSplit{"http", "[1:2:3:4:5:6:7:8]", "", "", ""}},
		{"http://[1::]", true, PythonSplit{"http", "[1::]", "", "", ""}},
		{"http://[::]", true, PythonSplit{"http", "[::]", "", "", ""}},
		{"http://[v1.x]", true, PythonSplit{"http", "[v1.x]", "", "", ""}},
		{"http://[v1a.b:c]:80", true, PythonSplit{"http", "[v1a.b:c]:80", "", "", ""}},
		{"http://[vAF.anything]", true, PythonSplit{"http", "[vAF.anything]", "", "", ""}},
		{"http://[::1", false, PythonSplit{}},                    // Invalid IPv6 URL
		{"http://::1]", false, PythonSplit{}},                    // Invalid IPv6 URL
		{"http://[::1]]", false, PythonSplit{}},                  // Invalid IPv6 URL
		{"http://[[::1]", false, PythonSplit{}},                  // '[::1' does not appear to be an IPv4 or IPv6 address
		{"http://[]", false, PythonSplit{}},                      // '' does not appear to be an IPv4 or IPv6 address
		{"http://[127.0.0.1]", false, PythonSplit{}},             // An IPv4 address cannot be in brackets
		{"http://[v.x]", false, PythonSplit{}},                   // IPvFuture address is invalid
		{"http://[v1.]", false, PythonSplit{}},                   // IPvFuture address is invalid
		{"http://[vg.x]", false, PythonSplit{}},                  // IPvFuture address is invalid
		{"http://[V1.x]", false, PythonSplit{}},                  // 'V1.x' does not appear to be an IPv4 or IPv6 address
		{"http://[fe80::1%]", false, PythonSplit{}},              // 'fe80::1%' does not appear to be an IPv4 or IPv6 address
		{"http://[::1%a%b]", false, PythonSplit{}},               // '::1%a%b' does not appear to be an IPv4 or IPv6 address
		{"http://[1:2:3:4:5:6:7:8:9]", false, PythonSplit{}},     // '1:2:3:4:5:6:7:8:9' does not appear to be an IPv4 or IPv6 ad
		{"http://[1::2::3]", false, PythonSplit{}},               // '1::2::3' does not appear to be an IPv4 or IPv6 address
		{"http://[:1::2]", false, PythonSplit{}},                 // ':1::2' does not appear to be an IPv4 or IPv6 address
		{"http://[1::2:]", false, PythonSplit{}},                 // '1::2:' does not appear to be an IPv4 or IPv6 address
		{"http://[12345::]", false, PythonSplit{}},               // '12345::' does not appear to be an IPv4 or IPv6 address
		{"http://[g::]", false, PythonSplit{}},                   // 'g::' does not appear to be an IPv4 or IPv6 address
		{"http://[::ffff:1.2.3.04]", false, PythonSplit{}},       // '::ffff:1.2.3.04' does not appear to be an IPv4 or IPv6 addr
		{"http://[::ffff:256.1.1.1]", false, PythonSplit{}},      // '::ffff:256.1.1.1' does not appear to be an IPv4 or IPv6 add
		{"http://[1:2:3:4:5:6:7:1.2.3.4]", false, PythonSplit{}}, // '1:2:3:4:5:6:7:1.2.3.4' does not appear to be an IPv4 or IPv
		{"http://[1:2:3:4:5:6:1.2.3.4]", true, PythonSplit{"http", "[1:2:3:4:5:6:1.2.3.4]", "", "", ""}},
		{"http://x[::1]", false, PythonSplit{}}, // Invalid IPv6 URL
		{"http://[::1]x", false, PythonSplit{}}, // Invalid IPv6 URL
		{"http://[::1]:x", true, PythonSplit{"http", "[::1]:x", "", "", ""}},
		{"http://[::1]/[", true, PythonSplit{"http", "[::1]", "/[", "", ""}},
		{"http://[x]@host", false, PythonSplit{}}, // 'host' does not appear to be an IPv4 or IPv6 address
		{"http://[x]@[::1]", true, PythonSplit{"http", "[x]@[::1]", "", "", ""}},
		{"http://a]@[::1]", true, PythonSplit{"http", "a]@[::1]", "", "", ""}},
		{"http://u@x[::1]", false, PythonSplit{}}, // Invalid IPv6 URL
		{"1http://[", true, PythonSplit{"", "", "1http://[", "", ""}},
		{"ht~tp://[", true, PythonSplit{"", "", "ht~tp://[", "", ""}},
		{"+x://[", true, PythonSplit{"", "", "+x://[", "", ""}},
		{"X+-.://[::1", false, PythonSplit{}},  // Invalid IPv6 URL
		{"  \t//[::1", false, PythonSplit{}},   // Invalid IPv6 URL
		{"\x00\x1f //[", false, PythonSplit{}}, // Invalid IPv6 URL
		{"h\ttp://[", false, PythonSplit{}},    // Invalid IPv6 URL
		{"http:\n//[", false, PythonSplit{}},   // Invalid IPv6 URL
		{"http:/[", true, PythonSplit{"http", "", "/[", "", ""}},
		{"http:///[", true, PythonSplit{"http", "", "/[", "", ""}},
		{"http://a/[", true, PythonSplit{"http", "a", "/[", "", ""}},
		{"http://a?[", true, PythonSplit{"http", "a", "", "[", ""}},
		{"http://a#[", true, PythonSplit{"http", "a", "", "", "["}},
		{"mailto:[", true, PythonSplit{"mailto", "", "[", "", ""}},
		{"http://\u2100", false, PythonSplit{}},   // netloc 'U+2100' contains invalid characters under NFKC norma
		{"http://a\uff0fb", false, PythonSplit{}}, // netloc 'a\uff0fb' contains invalid characters under NFKC normaliz
		{"http://\ufe6b", false, PythonSplit{}},   // netloc '\ufe6b' contains invalid characters under NFKC normalizat
		{"http://\uff1a", false, PythonSplit{}},   // netloc '\uff1a' contains invalid characters under NFKC normalizat
		{"http://\u2048", false, PythonSplit{}},   // netloc '\u2048' contains invalid characters under NFKC normalizat
		{"http://\uff03", false, PythonSplit{}},   // netloc '\uff03' contains invalid characters under NFKC normalizat
		{"http://\ufe56", false, PythonSplit{}},   // netloc '\ufe56' contains invalid characters under NFKC normalizat
		{"http://\u00e9", true, PythonSplit{"http", "\u00e9", "", "", ""}},
		{"http://\u00bd", true, PythonSplit{"http", "\u00bd", "", "", ""}},
		{"http://\u00e9/\u2100", true, PythonSplit{"http", "\u00e9", "/\u2100", "", ""}},
		{"http://a@\u2100", false, PythonSplit{}}, // netloc 'a@U+2100' contains invalid characters under NFKC nor
		{"http://\u2100@a", false, PythonSplit{}}, // netloc 'U+2100@a' contains invalid characters under NFKC nor
		{"http://ex\u00e4mple.com:80", true, PythonSplit{"http", "ex\u00e4mple.com:80", "", "", ""}},
		{"http://a b", true, PythonSplit{"http", "a b", "", "", ""}},
		{"http://a/b c", true, PythonSplit{"http", "a", "/b c", "", ""}},
		{"javascript:alert(1)", true, PythonSplit{"javascript", "", "alert(1)", "", ""}},
		{"http://%5B::1", true, PythonSplit{"http", "%5B::1", "", "", ""}},
		{"http://[::1]#[", true, PythonSplit{"http", "[::1]", "", "", "["}},
	}
	for _, c := range cases {
		got, err := PythonURLSplit(c.url)
		if (err == nil) != c.ok {
			t.Errorf("%q: error %v, want ok=%v", c.url, err, c.ok)
			continue
		}
		if got != c.want {
			t.Errorf("%q: got %+v, want %+v", c.url, got, c.want)
		}
		if PythonURLValid(c.url) != c.ok {
			t.Errorf("PythonURLValid(%q) != %v", c.url, c.ok)
		}
	}
}

func TestPythonURLErrorMessages(t *testing.T) {
	for url, want := range map[string]error{
		"http://[::1":       errPyInvalidIPv6,
		"http://x[::1]":     errPyInvalidIPv6,
		"http://[::1]x":     errPyInvalidIPv6,
		"http://[v.x]":      errPyIPvFuture,
		"http://[1.2.3.4]":  errPyIPv4InBrackets,
		"http://[1.2.3.04]": errPyNotIPAddress,
		"http://\u2100":     errPyNFKC,
	} {
		if _, err := PythonURLSplit(url); err != want {
			t.Errorf("%q: got %v, want %v", url, err, want)
		}
	}
}

func TestPythonIPv6(t *testing.T) {
	for s, want := range map[string]bool{
		"::": true, "::1": true, "1::": true, "1:2:3:4:5:6:7:8": true, "1:2:3:4:5:6:7::": true, "::2:3:4:5:6:7:8": true,
		"1:2:3:4:5:6::8": true, "1::8": true, "::ffff:1.2.3.4": true, "1:2:3:4:5:6:1.2.3.4": true, "::1.2.3.4": true,
		"FFFF::abcd": true, "fe80::1%eth0": true, "fe80::1%a b": true, "0000:0000:0000:0000:0000:0000:255.255.255.255": true,
		"": false, ":": false, "::1::": false, "1:2:3:4:5:6:7:8:9": false, "1:2:3:4:5:6:7:8::": false, "::1:2:3:4:5:6:7:8": false,
		"1:2:3:4:5:6:7": false, ":1:2:3:4:5:6:7:8": false, "1:2:3:4:5:6:7:8:": false, "12345::": false, "::g": false,
		"::1.2.3": false, "::1.2.3.4.5": false, "::01.2.3.4": false, "::256.2.3.4": false, "1:2:3:4:5:6:7:1.2.3.4": false,
		"fe80::1%": false, "fe80::1%a%b": false, "1.2.3.4": false, "::1/64": false, "::\u0661": false,
		"0000:0000:0000:0000:0000:0000:0255.255.255.255": false,
	} {
		if got := pythonIPv6(s); got != want {
			t.Errorf("pythonIPv6(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestPythonIPv4(t *testing.T) {
	for s, want := range map[string]bool{
		"0.0.0.0": true, "255.255.255.255": true, "1.2.3.4": true,
		"256.1.1.1": false, "01.2.3.4": false, "1.2.3": false, "1.2.3.4.5": false, "1..3.4": false,
		"1.2.3.4 ": false, "+1.2.3.4": false, "1.2.3.\u0664": false, "1000.1.1.1": false,
	} {
		if got := pythonIPv4(s); got != want {
			t.Errorf("pythonIPv4(%q) = %v, want %v", s, got, want)
		}
	}
}

// Lone surrogates (which JSON escapes can put into a Python string) are
// carried in their 3-byte form; the checks must neither crash on them nor
// treat them as delimiters.
func TestPythonURLSurrogates(t *testing.T) {
	sur := "\xed\xa0\x80"
	for url, want := range map[string]bool{
		"http://" + sur:            true,
		"http://" + sur + "\u2100": false,
		"http://[" + sur:           false,
		"http://[::1]/" + sur:      true,
	} {
		if got := PythonURLValid(url); got != want {
			t.Errorf("%q: %v, want %v", url, got, want)
		}
	}
	if got := pythonReplaceSurrogates("a" + sur + "b\xffc"); got != "a\uFFFDb\uFFFDc" {
		t.Errorf("pythonReplaceSurrogates: %q", got)
	}
}

// Every string is either accepted or refused, never a panic, whatever its
// bytes.
func FuzzPythonURLSplit(f *testing.F) {
	for _, s := range []string{"http://[::1]", "http://[", "//[v1.x]:80", "http://\u2100", "\x00//[", strings.Repeat("[", 10)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := PythonURLSplit(s)
		if err != nil && p != (PythonSplit{}) {
			t.Fatalf("%q: parts with an error", s)
		}
	})
}
