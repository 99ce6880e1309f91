package registry

import (
	"bytes"
	"encoding/json"
	"strings"
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

// skipString returns the index just past the string starting at b[i] ('"'),
// or len(b) when it is not closed.
func skipString[T ~string | ~[]byte](b T, i int) int {
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

// StringEnd returns where the JSON string literal starting at b[i] ends
// (see skipString), for the APIs that scan JSON text themselves.
func StringEnd[T ~string | ~[]byte](b T, i int) int { return skipString(b, i) }

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

// readKeys are the members the APIs read (RFC 7591 and 7592, software
// statements, IAM). Splitting an object keeps only these and the
// language-tagged variants of the localizable ones: every other member is
// ignored anyway, and thousands of them in one body would otherwise cost
// a map entry each. A member read anywhere must be listed here.
var readKeys = []string{
	"redirect_uris", "token_endpoint_auth_method", "grant_types", "response_types", "application_type",
	"client_name", "client_uri", "logo_uri", "tos_uri", "policy_uri", "jwks_uri", "jwks", "scope", "contacts",
	"software_id", "software_version", "software_statement", "client_id", "client_secret",
	"registration_access_token", "registration_client_uri", "client_secret_expires_at", "client_id_issued_at",
	"token_endpoint_auth_signing_alg",
	"client_type", "scopes", "iss", "sub", "aud", "exp", "nbf", "iat", "jti",
}

// knownKeys maps the quoted names of readKeys to their names, so that
// splitting a body does not allocate them again.
var knownKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range readKeys {
		m[`"`+k+`"`] = k
	}
	return m
}()

// maxTaggedMembers bounds the language-tagged members splitObject keeps
// (ParseMetadata registers at most maxLocalized of them): thousands would
// each cost a map entry and a place in a sort. Beyond it, tooManyTagged is
// set instead.
const maxTaggedMembers = 256

// tooManyTagged is the member splitObject sets when an object has more
// language-tagged members than it keeps: "#", a name no member it keeps
// can have (its base, "", is not localizable).
const tooManyTagged = "#"

// otherKey returns the name of a member whose quoted name is not in
// knownKeys, whether splitObject keeps it, and whether it is a
// language-tagged variant.
func otherKey(quoted []byte, all bool) (key string, keep, tagged bool) {
	raw := quoted[1 : len(quoted)-1]
	if !all && bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		// A plain name that knownKeys lacks is no read key: kept only
		// when language-tagged (looked at without allocating it). Bytes
		// that are not UTF-8 are left to unquote, which replaces them as
		// encoding/json does (DecodeObject refuses such bodies anyway).
		base, _, hasTag := bytes.Cut(raw, []byte("#"))
		if !hasTag || !localizable[string(base)] {
			return "", false, false
		}
		return string(raw), true, true
	}
	key, _ = unquote(quoted)
	base, _, hasTag := strings.Cut(key, "#")
	tagged = hasTag && localizable[base]
	return key, all || keptKey(key), tagged
}

// keptKey reports whether splitObject keeps the member key (unquoted): a
// read one, or a language-tagged variant of a localizable one.
func keptKey(key string) bool {
	if base, _, tagged := strings.Cut(key, "#"); tagged {
		return localizable[base]
	}
	_, read := knownKeys[`"`+key+`"`]
	return read
}

// SplitObject returns the members of b, which must be a valid JSON object
// (json.Valid), that the APIs read (see readKeys): of the map
// encoding/json would decode into a map[string]json.RawMessage, without
// copying the values.
func SplitObject(b []byte) Fields { return splitObject(b, false) }

// UnquoteString decodes a JSON string literal as encoding/json does; ok is
// false when raw is not one.
func UnquoteString(raw []byte) (s string, ok bool) { return unquote(raw) }

// splitObject returns the members of a valid JSON object that keptKey
// keeps (all of them with all); a repeated key keeps its last value, as
// encoding/json does.
func splitObject(b []byte, all bool) Fields {
	f := Fields{}
	nTagged := 0
	EachMember(b, func(quoted, value []byte) bool {
		key, keep := knownKeys[string(quoted)]
		if !keep {
			var tagged bool
			key, keep, tagged = otherKey(quoted, all)
			if keep && tagged && !all {
				if nTagged++; nTagged > maxTaggedMembers {
					keep = false
					f[tooManyTagged] = nil
				}
			}
		}
		if keep {
			f[key] = value
		}
		return true
	})
	return f
}

// EachMember calls fn with the quoted name and the raw value of each
// member of b, a valid JSON object (json.Valid), in document order and
// repeated names included, until fn returns false.
func EachMember(b []byte, fn func(quoted, value []byte) bool) {
	i := skipWS(b, 0) + 1 // past '{'
	for {
		i = skipWS(b, i)
		if i >= len(b) || b[i] == '}' {
			return
		}
		end := skipString(b, i)
		v := skipWS(b, skipWS(b, end)+1) // past ':'
		vend := skipValue(b, v)
		if !fn(b[i:end], b[v:vend]) {
			return
		}
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
