package handler

import "testing"

func TestValidHost(t *testing.T) {
	for h, want := range map[string]bool{
		"localhost": true, "localhost:8080": true, "127.0.0.1:18201": true, "auth.example.com.": true,
		"[::1]": true, "[::1]:8443": true, "[fe80::1%25eth0]:8080": true, "AUTH.Example.COM": true, "[::ffff:192.0.2.1]:80": true, "my_host:1": true,
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
