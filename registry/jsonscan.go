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

// knownKeys maps the quoted member names the APIs read to their names, so
// that splitting a body does not allocate them again.
var knownKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"redirect_uris", "token_endpoint_auth_method", "grant_types", "response_types", "application_type",
		"client_name", "client_uri", "logo_uri", "tos_uri", "policy_uri", "jwks_uri", "jwks", "scope", "contacts",
		"software_id", "software_version", "software_statement", "client_id", "client_secret",
		"registration_access_token", "registration_client_uri", "client_secret_expires_at", "client_id_issued_at",
		"client_type", "scopes", "iss", "sub", "aud", "exp", "nbf", "iat", "jti",
	} {
		m[`"`+k+`"`] = k
	}
	return m
}()

// SplitObject returns the members of b, which must be a valid JSON object
// (json.Valid): the map encoding/json would decode into a
// map[string]json.RawMessage, without copying the values.
func SplitObject(b []byte) Fields { return splitObject(b) }

// UnquoteString decodes a JSON string literal as encoding/json does; ok is
// false when raw is not one.
func UnquoteString(raw []byte) (s string, ok bool) { return unquote(raw) }

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
		key, ok := knownKeys[string(b[i:end])]
		if !ok {
			key, _ = unquote(b[i:end])
		}
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

// eachArrayItem calls yield with each element of a valid JSON array until
// it returns false.
func eachArrayItem(b []byte, yield func(item []byte) bool) {
	i := skipWS(b, 0) + 1 // past '['
	for {
		i = skipWS(b, i)
		if i >= len(b) || b[i] == ']' {
			return
		}
		end := skipValue(b, i)
		if !yield(b[i:end]) {
			return
		}
		i = skipWS(b, end)
		if i < len(b) && b[i] == ',' {
			i++
		}
	}
}

// arrayLen returns the number of elements of a valid JSON array.
func arrayLen(b []byte) int {
	n := 0
	eachArrayItem(b, func([]byte) bool { n++; return true })
	return n
}

// splitArray returns the elements of a valid JSON array.
func splitArray(b []byte) [][]byte {
	var out [][]byte
	eachArrayItem(b, func(item []byte) bool {
		out = append(out, item)
		return true
	})
	return out
}
