package jsonw

import "testing"

func TestStyles(t *testing.T) {
	build := func(st Style) string {
		w := New(st, 64)
		w.Open().Key("a").Str("x/ü\u2028\x01\"😀").Key("n").Int(-3).Key("l").Strings([]string{"p", "q"}).
			Key("o").Open().Key("t").Bool(true).Key("z").Null().Close().Key("e").OpenArray().CloseArray().Close()
		return string(w.B)
	}
	cases := map[Style]string{
		Compact:   `{"a":"x/ü\u2028\u0001\"😀","n":-3,"l":["p","q"],"o":{"t":true,"z":null},"e":[]}`,
		Python:    `{"a": "x/\u00fc\u2028\u0001\"\ud83d\ude00", "n": -3, "l": ["p", "q"], "o": {"t": true, "z": null}, "e": []}`,
		Jackson:   `{"a":"x/ü` + "\u2028" + `\u0001\"😀","n":-3,"l":["p","q"],"o":{"t":true,"z":null},"e":[]}`,
		JSONSmart: `{"a":"x\/ü\u2028\u0001\"😀","n":-3,"l":["p","q"],"o":{"t":true,"z":null},"e":[]}`,
	}
	for st, want := range cases {
		if got := build(st); got != want {
			t.Errorf("style %d:\n got %s\nwant %s", st, got, want)
		}
	}
}

func TestInvalidUTF8(t *testing.T) {
	if got := string(AppendString(nil, "a\xffb", Compact)); got != "\"a\uFFFDb\"" {
		t.Fatalf("got %q", got)
	}
}
