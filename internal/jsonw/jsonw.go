// Package jsonw writes JSON with a fixed key order and the exact spacing and
// string escaping of the serializer each cloned API's real server uses:
// Go-style compact JSON for RFC 7591 and IAM, Python's json.dumps for
// MediaGoblin, Jackson and json-smart for Kustvakt. Byte-exact responses need
// this; encoding/json sorts map keys and escapes HTML characters.
package jsonw

import (
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// Style is a serializer's dialect.
type Style int

const (
	// Compact: no spaces; escapes only what JSON requires (plus U+2028 and
	// U+2029); lowercase hex; non-ASCII as UTF-8.
	Compact Style = iota
	// Python: json.dumps defaults: ", " and ": " separators, ensure_ascii
	// (DEL and every non-ASCII character as \uxxxx, lowercase, surrogate
	// pairs).
	Python
	// Jackson: compact; control characters as \u00XX with uppercase hex
	// except the short escapes; non-ASCII as UTF-8.
	Jackson
	// JSONSmart: compact; escapes "/" as "\/" and the ranges U+0000-U+001F,
	// U+007F-U+009F and U+2000-U+20FF as \uXXXX (uppercase), like json-smart's
	// web-safe style.
	JSONSmart
)

// Writer appends JSON to B.
type Writer struct {
	B     []byte
	Style Style
	// comma[i] is true once the i-th open container has a member.
	comma []bool
	// afterKey is true between Key and the value that belongs to it.
	afterKey bool
}

// New returns a writer with room for n bytes.
func New(style Style, n int) *Writer {
	return &Writer{B: make([]byte, 0, n), Style: style}
}

var pool = sync.Pool{New: func() any { return &Writer{B: make([]byte, 0, 1024), comma: make([]bool, 0, 8)} }}

// maxPooled is the largest buffer Release keeps for reuse.
const maxPooled = 64 << 10

// Get returns an empty writer from a pool; Release gives it back once its
// bytes have been written (an io.Writer does not keep them).
func Get(style Style) *Writer {
	w := pool.Get().(*Writer)
	w.Style = style
	return w
}

// Release returns a writer obtained from Get to the pool; w must not be
// used afterwards.
func (w *Writer) Release() {
	if cap(w.B) > maxPooled {
		return
	}
	w.B, w.comma, w.afterKey = w.B[:0], w.comma[:0], false
	pool.Put(w)
}

// value adds the separator a new member needs: none right after a key or
// at the top level, a comma (and Python's space) between members.
func (w *Writer) value() {
	if w.afterKey {
		w.afterKey = false
		return
	}
	if len(w.comma) == 0 {
		return
	}
	top := len(w.comma) - 1
	if w.comma[top] {
		w.B = append(w.B, ',')
		if w.Style == Python {
			w.B = append(w.B, ' ')
		}
	}
	w.comma[top] = true
}

// Open starts an object.
func (w *Writer) Open() *Writer {
	w.value()
	w.B = append(w.B, '{')
	w.comma = append(w.comma, false)
	return w
}

// Close ends an object.
func (w *Writer) Close() *Writer {
	w.B = append(w.B, '}')
	w.comma = w.comma[:len(w.comma)-1]
	return w
}

// OpenArray starts an array.
func (w *Writer) OpenArray() *Writer {
	w.value()
	w.B = append(w.B, '[')
	w.comma = append(w.comma, false)
	return w
}

// CloseArray ends an array.
func (w *Writer) CloseArray() *Writer {
	w.B = append(w.B, ']')
	w.comma = w.comma[:len(w.comma)-1]
	return w
}

// Key writes an object key; exactly one value must follow.
func (w *Writer) Key(k string) *Writer {
	w.value()
	w.B = AppendString(w.B, k, w.Style)
	w.B = append(w.B, ':')
	if w.Style == Python {
		w.B = append(w.B, ' ')
	}
	w.afterKey = true
	return w
}

// Str writes a string value.
func (w *Writer) Str(s string) *Writer {
	w.value()
	w.B = AppendString(w.B, s, w.Style)
	return w
}

// OptStr writes the member k only when v is not empty (Jackson's
// NON_EMPTY, omitempty).
func (w *Writer) OptStr(k, v string) *Writer {
	if v != "" {
		w.Key(k).Str(v)
	}
	return w
}

// Int writes an integer value.
func (w *Writer) Int(n int64) *Writer {
	w.value()
	w.B = strconv.AppendInt(w.B, n, 10)
	return w
}

// Bool writes true or false.
func (w *Writer) Bool(b bool) *Writer {
	w.value()
	w.B = strconv.AppendBool(w.B, b)
	return w
}

// Null writes null.
func (w *Writer) Null() *Writer {
	w.value()
	w.B = append(w.B, "null"...)
	return w
}

// Raw writes already-encoded JSON.
func (w *Writer) Raw(raw []byte) *Writer {
	w.value()
	w.B = append(w.B, raw...)
	return w
}

// Strings writes an array of strings.
func (w *Writer) Strings(list []string) *Writer {
	w.OpenArray()
	for _, s := range list {
		w.Str(s)
	}
	return w.CloseArray()
}

const lowerHex = "0123456789abcdef"
const upperHex = "0123456789ABCDEF"

func appendU(dst []byte, r rune, hex string) []byte {
	return append(dst, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
}

// AppendString appends s as a JSON string in the given style. Invalid
// UTF-8 becomes U+FFFD.
func AppendString(dst []byte, s string, style Style) []byte {
	hex := lowerHex
	if style == Jackson || style == JSONSmart {
		hex = upperHex
	}
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		// Copy the run of bytes that need no escaping in one append.
		j := i
		for j < len(s) && plain(s[j], style) {
			j++
		}
		dst = append(dst, s[i:j]...)
		if i = j; i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c == '"':
				dst = append(dst, '\\', '"')
			case c == '\\':
				dst = append(dst, '\\', '\\')
			case c == '/' && style == JSONSmart:
				dst = append(dst, '\\', '/')
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c == '\b':
				dst = append(dst, '\\', 'b')
			case c == '\f':
				dst = append(dst, '\\', 'f')
			case c < 0x20 || (c == 0x7f && (style == JSONSmart || style == Python)):
				dst = appendU(dst, rune(c), hex)
			default:
				dst = append(dst, c)
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch style {
		case Python:
			if r >= 0x10000 {
				r1, r2 := utf16.EncodeRune(r)
				dst = appendU(dst, r1, hex)
				dst = appendU(dst, r2, hex)
			} else {
				dst = appendU(dst, r, hex)
			}
		case JSONSmart:
			if r <= 0x9f || (r >= 0x2000 && r <= 0x20ff) {
				dst = appendU(dst, r, hex)
			} else {
				dst = utf8.AppendRune(dst, r)
			}
		case Compact:
			if r == 0x2028 || r == 0x2029 {
				dst = appendU(dst, r, hex)
			} else {
				dst = utf8.AppendRune(dst, r)
			}
		default:
			dst = utf8.AppendRune(dst, r)
		}
	}
	return append(dst, '"')
}

// plain reports whether an ASCII byte is written as itself in every
// position; non-ASCII bytes go through the rune-level path.
func plain(c byte, style Style) bool {
	switch {
	case c < 0x20 || c >= 0x7f || c == '"' || c == '\\':
		return false
	case c == '/':
		return style != JSONSmart
	}
	return true
}
