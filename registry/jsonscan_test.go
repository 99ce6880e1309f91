package registry

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The splitter must agree with encoding/json on every valid object.
func FuzzSplitObject(f *testing.F) {
	for _, s := range []string{`{}`, ` { "a" : 1 , "b":[1,{"c":"]}"}], "a":"x\"y" } `, `{"k\u0041":"v\\n","e":""}`,
		`{"client_name":"a","client\u005fname#en":"b","logo_uri#x":1,"m#en":2,"scope":"s","scope#en":3}`,
		`{"n":null,"t":true,"f":-1.5e3,"o":{"x":[[],{}]}}`, "{\"\xff\":\"\xfe\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		b = bytes.TrimSpace(b)
		if len(b) == 0 || b[0] != '{' || !json.Valid(b) {
			return
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		// What the APIs read is kept, and nothing else.
		read := splitObject(b, false)
		for k, v := range want {
			if keptKey(k) != (read[k] != nil) || read[k] != nil && !bytes.Equal(read[k], v) {
				t.Fatalf("%q: member %q kept as %q (kept: %v)", b, k, read[k], keptKey(k))
			}
		}
		if len(read) > len(want) {
			t.Fatalf("%q: %d members kept of %d", b, len(read), len(want))
		}
		got := splitObject(b, true)
		if len(got) != len(want) {
			t.Fatalf("%q: %d members, want %d", b, len(got), len(want))
		}
		for k, v := range want {
			if !bytes.Equal(got[k], v) {
				t.Fatalf("%q: member %q = %q, want %q", b, k, got[k], v)
			}
			var ws string
			if v[0] == '"' && json.Unmarshal(v, &ws) == nil {
				if s, ok := unquote(got[k]); !ok || s != ws {
					t.Fatalf("%q: string %q, want %q", b, s, ws)
				}
			}
		}
	})
}

func TestSplitArray(t *testing.T) {
	got := splitArray([]byte(` [ "a", 1 ,{"x":[2]}, "b\"]" ] `))
	want := []string{`"a"`, `1`, `{"x":[2]}`, `"b\"]"`}
	if len(got) != len(want) {
		t.Fatalf("%q", got)
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Fatalf("%d: %q", i, got[i])
		}
	}
}
