package handler

import (
	"testing"
	"time"
)

func TestJavaZonedDateTime(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	utc, _ := time.LoadLocation("UTC")
	kolkata, _ := time.LoadLocation("Asia/Kolkata")
	cases := []struct {
		t    time.Time
		loc  *time.Location
		want string
	}{
		{time.Date(2022, 5, 4, 11, 4, 34, 415000000, time.UTC), berlin, "2022-05-04T13:04:34.415+02:00[Europe/Berlin]"},
		{time.Date(2026, 11, 26, 7, 0, 0, 123000000, time.UTC), utc, "2026-11-26T07:00:00.123Z[UTC]"},
		{time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC), utc, "2026-11-26T07:00Z[UTC]"},
		{time.Date(2026, 11, 26, 7, 0, 5, 0, time.UTC), utc, "2026-11-26T07:00:05Z[UTC]"},
		{time.Date(2026, 11, 26, 7, 0, 5, 120000, time.UTC), utc, "2026-11-26T07:00:05.000120Z[UTC]"},
		{time.Date(2026, 11, 26, 7, 0, 5, 7, time.UTC), utc, "2026-11-26T07:00:05.000000007Z[UTC]"},
		{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), kolkata, "2026-01-02T08:34:05+05:30[Asia/Kolkata]"},
	}
	for _, c := range cases {
		if got := JavaZonedDateTime(c.t, c.loc); got != c.want {
			t.Errorf("got %s want %s", got, c.want)
		}
	}
}

func TestCompareJava(t *testing.T) {
	// U+FF21 (one UTF-16 unit) sorts after U+1F600 (a surrogate pair) in
	// Java, the other way round in UTF-8 byte order.
	if compareJava("\U0001F600", "\uFF21") >= 0 {
		t.Fatal("surrogates sort before U+FF21 in Java")
	}
	if compareJava("B", "a") >= 0 || compareJava("a", "ab") >= 0 || compareJava("x", "x") != 0 {
		t.Fatal("basic order")
	}
}

func TestBindKustvaktJSON(t *testing.T) {
	in, msg := bindKustvaktJSON([]byte(`{"name":12,"type":1,"description":false,"refresh_token_expiry":"100","source":null}`))
	if msg != "" || *in.name != "12" || *in.clientType != "PUBLIC" || *in.description != "false" || in.refreshTokenExpiry != 100 || in.source != nil {
		t.Fatalf("%+v %s", in, msg)
	}
	in, msg = bindKustvaktJSON([]byte(`{"refresh_token_expiry":1.9}`))
	if msg != "" || in.refreshTokenExpiry != 1 {
		t.Fatalf("truncation: %+v %s", in, msg)
	}
	for _, bad := range []string{`{"refresh_token_expiry":true}`, `{"refresh_token_expiry":3000000000}`, `{"type":2}`, `{"type":""}`, `{"x":1}`, `{"name":{}}`, `{`, `{} x`, `null`} {
		if _, msg := bindKustvaktJSON([]byte(bad)); msg == "" {
			t.Errorf("%s accepted", bad)
		}
	}
}
