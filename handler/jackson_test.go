package handler

import "testing"

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
