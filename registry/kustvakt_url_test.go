package registry

import "testing"

func TestKustvaktURL(t *testing.T) {
	url := KustvaktURLRule{}
	redirect := KustvaktURLRule{AllowLocal: true, NoFragments: true}
	cases := []struct {
		in              string
		url, redirectOK bool
	}{
		{"http://example.client.com", true, true},
		{"https://example.client.com/redirect", true, true},
		{"HTTPS://Example.Client.COM/Redirect?x=1", true, true},
		{"http://public.client.com/index.html#bar", true, false},
		{"https://public.client.com/redirect.html#", true, false},
		{"https://test.public.client", false, false}, // no such TLD
		{"http://localhost:1410", false, true},
		{"http://localhost", false, true},
		{"http://myhost:8080/cb", false, true},
		{"http://app.localhost/cb", false, true},
		{"http://box.localdomain/cb", false, true},
		{"http://192.168.1.10:8080/x", true, true},
		{"http://[::1]:8080/x", true, true},
		{"http://[::1", false, false},
		// Commons' bracketed host: an IPv4-mapped address only as
		// "::FFFF:" in upper case, no other dotted form; any port digits.
		{"http://[::FFFF:129.144.52.38]:80/index.html", true, true},
		{"http://[::ffff:1.2.3.4]/", false, false},
		{"http://[::1.2.3.4]/", false, false},
		{"http://[::FFFF:256.1.1.1]/", false, false},
		{"http://[::1]:99999/", true, true},
		{"http://[::1]:/", true, true},
		{"http://[::1]:8a/", false, false},
		{"http://[1::2::3]/", false, false},
		{"http://256.1.1.1/", false, false},
		{"http://01.1.1.1/", false, false},
		{"http://example.com:99999/", false, false},
		{"http://example.com:/", true, true},
		{"http://user:pw@example.com/", true, true},
		{"ftp://example.com/", false, false},
		{"javascript:alert(1)", false, false},
		{"http:example.com", false, false},
		{"//example.com/x", false, false},
		{"http://exa mple.com/", false, false},
		{"http://example.com/a b", false, false},
		{"http://example.com//double", false, false},
		{"http://example.com/../up", false, false},
		{"http://example.com/a/../b", true, true},
		{"http://example.com/%zz", false, false},
		{"http://example.com/{x}", false, false},
		{"http://-bad.example.com/", false, false},
		{"http://bücher.de/", true, true},
		{"http://co.uk/", false, false},
		{"http://example.co.uk/", true, true},
		// Under a private suffix of the list: judged by the ICANN section.
		{"https://user.github.io/app", true, true},
		{"https://github.io/", true, true},
		{"https://myapp.herokuapp.com/", true, true},
		{"https://x.s3.amazonaws.com/", true, true},
		{"https://example.notatld/", false, false},
		{"", false, false},
		// Java's IDN.toASCII takes the ideographic and fullwidth stops for
		// dots, as Commons' unicodeToASCII does.
		{"http://example\u3002com/", true, true},
		{"http://example\uff0ecom/x", true, true},
		{"http://example\uff61com", true, true},
		{"http://b\u00fccher\u3002de/", true, true},
		{"http://example.com\u3002/", true, true},
		{"http://example.com./", true, true},
		{"http://co\u3002uk/", false, false},
	}
	for _, c := range cases {
		if got := url.Valid(c.in); got != c.url {
			t.Errorf("url %q: got %v", c.in, got)
		}
		if got := redirect.Valid(c.in); got != c.redirectOK {
			t.Errorf("redirect %q: got %v", c.in, got)
		}
	}
}
