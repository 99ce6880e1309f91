package strlist

import (
	"encoding/binary"
	"slices"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, list := range [][]string{nil, {""}, {"a"}, {"a", "", "b\x00c"}, {string(make([]byte, 300))}} {
		b := Append(nil, list)
		if len(b) != Size(list) {
			t.Errorf("%q: Size %d, encoded %d bytes", list, Size(list), len(b))
		}
		got, ok := Parse(string(b))
		if !ok || !slices.Equal(got, list) {
			t.Errorf("%q: Parse gave %q %v", list, got, ok)
		}
	}
	for _, bad := range []string{"\x05ab", "\x80", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"} {
		if _, ok := Parse(bad); ok {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestUvarint(t *testing.T) {
	for _, x := range []uint64{0, 1, 127, 128, 300, 1 << 40, 1<<64 - 1} {
		b := binary.AppendUvarint(nil, x)
		if v, k := Uvarint(string(b)); v != x || k != len(b) {
			t.Errorf("%d: got %d, %d", x, v, k)
		}
		if uvarintLen(x) != len(b) {
			t.Errorf("%d: uvarintLen %d, want %d", x, uvarintLen(x), len(b))
		}
	}
}
