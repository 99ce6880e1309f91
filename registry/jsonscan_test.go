package registry

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
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
		_, over := read[tooManyTagged]
		delete(read, tooManyTagged)
		for k, v := range want {
			if over && strings.Contains(k, "#") {
				continue // some of them kept
			}
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

// TestTaggedMembersBounded: up to maxTaggedMembers language-tagged members
// are kept (and the nulls among them skipped, as before); beyond, the
// object is refused rather than split into thousands of entries.
func TestTaggedMembersBounded(t *testing.T) {
	body := func(n int) []byte {
		var b strings.Builder
		b.WriteString(`{"redirect_uris":["https://a.example/cb"],"client_name#en":"A"`)
		for i := range n {
			b.WriteString(`,"client_name#x` + strconv.Itoa(i) + `":null`)
		}
		return []byte(b.String() + "}")
	}
	p := &Policy{}
	f, derr := DecodeObject(body(maxTaggedMembers - 1))
	if derr != nil {
		t.Fatal(derr)
	}
	c, err := p.ParseMetadata(f)
	if err != nil || c.Localized["client_name#en"] != "A" {
		t.Fatalf("%d tagged members: %v %v", maxTaggedMembers, c, err)
	}
	f, derr = DecodeObject(body(maxTaggedMembers))
	if derr != nil {
		t.Fatal(derr)
	}
	if len(f) > maxTaggedMembers+2 {
		t.Errorf("%d members kept", len(f))
	}
	if _, err := p.ParseMetadata(f); err == nil || err.Code != CodeInvalidClientMetadata || !strings.Contains(err.Description, "language-tagged") {
		t.Fatalf("over %d tagged members: %v", maxTaggedMembers, err)
	}
}
