package handler

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/caddy-dcr/caddy-dcr/internal/jsonw"
)

// jacksonTree re-serializes a plugin's stored source the way Kustvakt
// shows it: Kustvakt reads the request into a Jackson JsonNode and keeps
// node.toString(), so what a client reads back is Jackson's rendering, not
// the bytes it sent. Compact, member order kept; a repeated member keeps
// its first position and its last value (an ObjectNode is a
// LinkedHashMap); integers print plainly ("-0" is IntNode 0); any number
// with a fraction or exponent is a DoubleNode, printed as Java's
// Double.toString does ("1e2" is "100.0"); strings are escaped in
// Jackson's style.
func jacksonTree(raw json.RawMessage) []byte {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	n, err := readNode(dec)
	if err != nil {
		return raw
	}
	jw := jsonw.New(jsonw.Jackson, len(raw)+16)
	n.write(jw)
	return jw.B
}

// node is a parsed JSON value: an object (keys and vals), an array (vals),
// or a scalar token (tok).
type node struct {
	obj, arr bool
	keys     []string
	vals     []*node
	tok      json.Token
}

func readNode(dec *json.Decoder) (*node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return &node{tok: tok}, nil
	}
	n := &node{obj: d == '{', arr: d == '['}
	var index map[string]int
	for dec.More() {
		var key string
		if n.obj {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			key, _ = k.(string)
		}
		v, err := readNode(dec)
		if err != nil {
			return nil, err
		}
		if !n.obj {
			n.vals = append(n.vals, v)
			continue
		}
		if index == nil {
			index = map[string]int{}
		}
		if i, seen := index[key]; seen {
			n.vals[i] = v
			continue
		}
		index[key] = len(n.keys)
		n.keys, n.vals = append(n.keys, key), append(n.vals, v)
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *node) write(jw *jsonw.Writer) {
	switch {
	case n.obj:
		jw.Open()
		for i, k := range n.keys {
			jw.Key(k)
			n.vals[i].write(jw)
		}
		jw.Close()
	case n.arr:
		jw.OpenArray()
		for _, v := range n.vals {
			v.write(jw)
		}
		jw.CloseArray()
	default:
		switch v := n.tok.(type) {
		case string:
			jw.Str(v)
		case json.Number:
			writeJacksonNumber(jw, string(v))
		case bool:
			jw.Bool(v)
		default:
			jw.Null()
		}
	}
}

// writeJacksonNumber writes a JSON number literal as Jackson's default
// ObjectMapper reads and prints it.
func writeJacksonNumber(jw *jsonw.Writer, lit string) {
	if !strings.ContainsAny(lit, ".eE") {
		if lit == "-0" {
			lit = "0"
		}
		jw.Raw([]byte(lit)) // IntNode, LongNode or BigIntegerNode: the digits
		return
	}
	f, _ := strconv.ParseFloat(lit, 64) // out of range: ±Inf, as Java's parseDouble
	if math.IsInf(f, 0) {
		// Jackson's generator quotes non-finite numbers by default.
		jw.Str(javaDouble(f))
		return
	}
	jw.Raw([]byte(javaDouble(f)))
}

// javaDouble formats f as Java's Double.toString (JDK 19 and later; older
// ones print more digits than needed for a few values): the shortest
// digits that identify f, in plain notation ("100.0", "0.001") for magnitudes from
// 10^-3 up to 10^7, else as d.dddE±n ("1.0E7", "1.5E-4").
func javaDouble(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0 && math.Signbit(f):
		return "-0.0"
	case f == 0:
		return "0.0"
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // [-]d[.ddd]e±xx
	if !strings.Contains(s, ".") {
		// One digit is the shortest: Java (19 and later) then prints the
		// two-digit decimal closest to f, which differs for some
		// subnormals (5e-324 is 4.9E-324).
		if two := strconv.FormatFloat(f, 'e', 1, 64); !strings.HasPrefix(strings.TrimPrefix(two, "-")[2:], "0") {
			if back, err := strconv.ParseFloat(two, 64); err == nil && back == f {
				s = two
			}
		}
	}
	sign := ""
	if s[0] == '-' {
		sign, s = "-", s[1:]
	}
	mant, e, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(e)
	digits := strings.Replace(mant, ".", "", 1)
	if a := math.Abs(f); a >= 1e-3 && a < 1e7 {
		switch {
		case exp < 0:
			return sign + "0." + strings.Repeat("0", -exp-1) + digits
		case len(digits) <= exp+1:
			return sign + digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
		default:
			return sign + digits[:exp+1] + "." + digits[exp+1:]
		}
	}
	frac := digits[1:]
	if frac == "" {
		frac = "0"
	}
	return sign + digits[:1] + "." + frac + "E" + strconv.Itoa(exp)
}
