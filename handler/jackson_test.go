package handler

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// TestJacksonTree: a plugin's source reads back as Kustvakt's Jackson
// renders it (JsonNode.toString() of what the client sent).
func TestJacksonTree(t *testing.T) {
	for in, want := range map[string]string{
		`{"plugin":"source"}`:                `{"plugin":"source"}`,
		`{ "a" : [ 1 , true , null ] }`:      `{"a":[1,true,null]}`,
		`{"a":1,"a":2,"b":3}`:                `{"a":2,"b":3}`,
		`{"a":1,"b":2,"a":{"c":[]}}`:         `{"a":{"c":[]},"b":2}`,
		`{"v":1.0,"w":1e2,"x":-0,"y":0.1e1}`: `{"v":1.0,"w":100.0,"x":0,"y":1.0}`,
		`1.50`:                               `1.5`,
		`1E+2`:                               `100.0`,
		`-0.0`:                               `-0.0`,
		`[12345678901234567890123,9223372036854775807]`:           `[12345678901234567890123,9223372036854775807]`,
		`[0.001,0.0001,1234567.5,10000000,1e7,-2.5e-8]`:           `[0.001,1.0E-4,1234567.5,10000000,1.0E7,-2.5E-8]`,
		`[1e400,-1e400,1e-400]`:                                   `["Infinity","-Infinity",0.0]`,
		`[5e-324,1e-323,1e-322,2e-3,1e21,1.7976931348623157e308]`: `[4.9E-324,9.9E-324,9.9E-323,0.002,1.0E21,1.7976931348623157E308]`,
		`[0.1,0.30000000000000004,123.456e3]`:                     `[0.1,0.30000000000000004,123456.0]`,
	} {
		if got := string(jacksonTree([]byte(in))); got != want {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
	}
}

// TestJavaDoubleRoundTrips: whatever the double, what javaDouble prints
// reads back as the same double, in Java's shape (a point, and an exponent
// only outside [10^-3, 10^7)).
func TestJavaDoubleRoundTrips(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		f := math.Float64frombits(rng.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		s := javaDouble(f)
		back, err := strconv.ParseFloat(s, 64)
		if err != nil || back != f || !strings.Contains(s, ".") {
			t.Fatalf("%v (%#x): %q reads back as %v, %v", f, math.Float64bits(f), s, back, err)
		}
		if a := math.Abs(f); (a >= 1e-3 && a < 1e7) == strings.Contains(s, "E") {
			t.Fatalf("%v: %q in the wrong notation", f, s)
		}
	}
}
