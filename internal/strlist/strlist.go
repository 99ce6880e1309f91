// Package strlist is the list-of-strings encoding the stored formats share
// (a client record's list fields, a Redis record's tags): each string is its
// length as a uvarint, then its bytes, so any byte may appear in one. The
// encoded list itself carries no count or total length; callers prefix it
// with its Size where they need to.
package strlist

import "encoding/binary"

// Size is the length of Append(nil, list).
func Size(list []string) int {
	n := 0
	for _, s := range list {
		n += uvarintLen(uint64(len(s))) + len(s)
	}
	return n
}

// Append appends the encoding of list to b.
func Append(b []byte, list []string) []byte {
	for _, s := range list {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// Parse splits an encoded list; ok is false when s is not one. The strings
// share s's bytes.
func Parse(s string) (list []string, ok bool) {
	n := 0
	for r := s; len(r) > 0; n++ {
		l, k := Uvarint(r)
		if k <= 0 || uint64(len(r)-k) < l {
			return nil, false
		}
		r = r[k+int(l):]
	}
	if n == 0 {
		return nil, true
	}
	list = make([]string, 0, n)
	for len(s) > 0 {
		l, k := Uvarint(s)
		list = append(list, s[k:k+int(l)])
		s = s[k+int(l):]
	}
	return list, true
}

// Uvarint is binary.Uvarint on a string, without copying it to a slice.
func Uvarint(s string) (uint64, int) {
	var x uint64
	var sh uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		b := s[i]
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				return 0, -(i + 1) // overflow
			}
			return x | uint64(b)<<sh, i + 1
		}
		x |= uint64(b&0x7f) << sh
		sh += 7
	}
	return 0, 0
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}
