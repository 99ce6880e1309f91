package registry

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestCodecRoundTrip(t *testing.T) {
	full := &Client{
		ID: "id", API: APIKustvakt, Owner: "ü ser", CreatedMs: 1795680000123, UpdatedMs: -5,
		SecretHash: Hash("s"), SecretExpiresAt: 1795690000, EndsAt: 1795700000, RATHash: Hash("r"),
		RedirectURIs: []string{"https://a.example/cb", ""}, TokenEndpointAuthMethod: AuthClientSecretBasic,
		TokenEndpointAuthSigningAlg: "HS256",
		GrantTypes:                  []string{"authorization_code"}, ResponseTypes: []string{"code"}, ApplicationType: "web",
		ClientName: "n", ClientURI: "https://c", LogoURI: "https://l", TOSURI: "https://t", PolicyURI: "https://p",
		JWKSURI: "https://j", JWKS: json.RawMessage(`{"keys":[]}`), Scope: "a b", Contacts: []string{"a@b.c"},
		SoftwareID: "sid", SoftwareVersion: "1", SoftwareStatement: "x.y.z",
		Localized:   map[string]string{"client_name#ja": "名前", "logo_uri#fr": "https://f"},
		Description: "d", RefreshTokenExpiry: 31536000, Source: json.RawMessage(`{"p":1}`), Permitted: true, Super: true,
		PriorRATHash: Hash("q"), PriorRATFrom: 1795680002000, PriorRATUntil: 1795680003600, SecretUndelivered: true,
	}
	// Every field is set, so that a field the codec forgets fails here.
	v := reflect.ValueOf(*full)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("the test client leaves %s unset", v.Type().Field(i).Name)
		}
	}
	for _, c := range []*Client{full, {ID: "minimal"}} {
		got, err := decodeClient(encodeClient(c))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, c)
		}
	}
	// Unknown fields of a later version are skipped; garbage is an error.
	b := append(encodeClient(full), 99, 2, 'x', 'y')
	if _, err := decodeClient(b); err != nil {
		t.Fatalf("unknown field: %v", err)
	}
	for _, bad := range [][]byte{nil, {2}, {1, 1, 200}, {1, 4, 2, 0x80}} {
		if _, err := decodeClient(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func FuzzDecodeClient(f *testing.F) {
	f.Add(encodeClient(&Client{ID: "x", RedirectURIs: []string{"a"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeClient(b) // never panics
	})
}

func BenchmarkCodec(b *testing.B) {
	c := &Client{ID: "Dk-n7Wej2wqTzWDE2_FZFQ", API: APIRFC7591, CreatedMs: 1795680000123, SecretHash: Hash("s"), RATHash: Hash("r"),
		RedirectURIs: []string{"https://app.example/cb"}, TokenEndpointAuthMethod: AuthClientSecretBasic,
		GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}, ClientName: "bench", Permitted: true}
	b.Run("binary", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := decodeClient(encodeClient(c)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			data, _ := json.Marshal(c)
			var out Client
			if err := json.Unmarshal(data, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
