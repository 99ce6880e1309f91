package registry

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// A small splitter for JSON that is already known to be valid: it finds
// the members of an object and the elements of an array without building
// maps or decoding values, and turns plain strings (no escapes) into Go
// strings directly. Registration bodies are decoded on every request; this
// is several times cheaper than encoding/json's reflection.

// skipWS returns the index of the first non-space byte at or after i.
func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i] ('"').
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}

// plainString returns the string a JSON string literal holds when it needs
// no unescaping, and false otherwise.
func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') >= 0 || !utf8.Valid(inner) {
		return "", false
	}
	return string(inner), true
}

// unquote decodes a JSON string literal.
func unquote(raw []byte) (string, bool) {
	if s, ok := plainString(raw); ok {
		return s, true
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// splitObject returns the members of a valid JSON object; a repeated key
// keeps its last value, as encoding/json does.
func splitObject(b []byte) Fields {
	f := Fields{}
	i := skipWS(b, 0) + 1 // past '{'
	for {
		i = skipWS(b, i)
		if i >= len(b) || b[i] == '}' {
			return f
		}
		end := skipString(b, i)
		key, _ := unquote(b[i:end])
		i = skipWS(b, end) + 1 // past ':'
		i = skipWS(b, i)
		vend := skipValue(b, i)
		f[key] = b[i:vend]
		i = skipWS(b, vend)
		if i < len(b) && b[i] == ',' {
			i++
		}
	}
}

// splitArray returns the elements of a valid JSON array.
func splitArray(b []byte) [][]byte {
	var out [][]byte
	i := skipWS(b, 0) + 1 // past '['
	for {
		i = skipWS(b, i)
		if i >= len(b) || b[i] == ']' {
			return out
		}
		end := skipValue(b, i)
		out = append(out, b[i:end])
		i = skipWS(b, end)
		if i < len(b) && b[i] == ',' {
			i++
		}
	}
}
