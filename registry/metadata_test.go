package registry

// Unit tests of RFC 7591 metadata decoding and validation
// (DecodeObject, Fields, Policy.ParseMetadata). Rows are labelled with the
// checklist IDs of /work/shared/spec/dcr-anchors.md section (a).

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func mdParse(t *testing.T, p Policy, body string) (*Client, *Error) {
	t.Helper()
	f, err := DecodeObject([]byte(body))
	if err != nil {
		t.Fatalf("DecodeObject(%s): %v", body, err)
	}
	return p.ParseMetadata(f)
}

func TestDecodeObject(t *testing.T) {
	for _, tc := range []struct {
		id, body string
		ok       bool
		keys     []string
	}{
		{"R1", `{}`, true, nil},
		{"R1", " \n\t{\"scope\":1,\"jwks\":null} \n", true, []string{"scope", "jwks"}},
		// Members no API reads are ignored (not kept); language-tagged
		// variants of the localizable ones are kept.
		{"R3", `{"resource":"x","client_name#en":"a","client_name":"b"}`, true, []string{"client_name#en", "client_name"}},
		{"R2", ``, false, nil},
		{"R2", `   `, false, nil},
		{"R2", `null`, false, nil},
		{"R2", `[]`, false, nil},
		{"R2", `[{}]`, false, nil},
		{"R2", `"x"`, false, nil},
		{"R2", `42`, false, nil},
		{"R2", `true`, false, nil},
		{"R2", `{`, false, nil},
		{"R2", `{"a":}`, false, nil},
		{"R2", `{} {}`, false, nil},
		{"R2", `{"a":1}x`, false, nil},
	} {
		t.Run(tc.id+" "+tc.body, func(t *testing.T) {
			f, err := DecodeObject([]byte(tc.body))
			if !tc.ok {
				if err == nil || err.Code != CodeInvalidRequest || err.Description == "" {
					t.Fatalf("DecodeObject(%q) = %v, %v; want invalid_request", tc.body, f, err)
				}
				return
			}
			if err != nil || f == nil {
				t.Fatalf("DecodeObject(%q) = %v, %v", tc.body, f, err)
			}
			for _, k := range tc.keys {
				if _, ok := f[k]; !ok {
					t.Errorf("key %q missing", k)
				}
			}
			if len(f) != len(tc.keys) {
				t.Errorf("members %v, want %v", f, tc.keys)
			}
		})
	}
}

// TestDecodeObjectRepeatedMember: a member sent twice keeps its last value,
// as encoding/json (and JavaScript's JSON.parse) would, also when the two
// names differ only in escapes, so no two parsers in a chain disagree.
func TestDecodeObjectRepeatedMember(t *testing.T) {
	for _, body := range []string{
		`{"redirect_uris":["https://c.example/a"],"redirect_uris":"x"}`,
		`{"redirect_uris":"x","redirect_uris":["https://c.example/a"]}`,
		`{"client_name":"a","client\u005fname":"b"}`,
		`{"client_name":"a","client_name":null}`,
		`{"jwks":{"b":1,"b":2},"jwks":[1]}`,
	} {
		f, derr := DecodeObject([]byte(body))
		if derr != nil {
			t.Fatalf("%s: %v", body, derr)
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatal(err)
		}
		if len(f) != len(want) {
			t.Errorf("%s: members %v, want %v", body, f, want)
		}
		for k, v := range want {
			if string(f[k]) != string(v) {
				t.Errorf("%s: %s = %s, want %s", body, k, f[k], v)
			}
		}
	}
}

func TestFieldsAccessors(t *testing.T) {
	f := splitObject([]byte(`{"s":"v","n":null,"i":1,"a":["x","y"],"an":["x",1],"as":"x","e":[]}`), true)
	if s, ok, err := f.String("s"); s != "v" || !ok || err != nil {
		t.Errorf(`String("s") = %q %v %v`, s, ok, err)
	}
	for _, k := range []string{"n", "missing"} {
		if s, ok, err := f.String(k); s != "" || ok || err != nil {
			t.Errorf("String(%q) = %q %v %v, want absent", k, s, ok, err)
		}
		if l, ok, err := f.Strings(k); l != nil || ok || err != nil {
			t.Errorf("Strings(%q) = %q %v %v, want absent", k, l, ok, err)
		}
	}
	if _, _, err := f.String("i"); err == nil || err.Code != CodeInvalidClientMetadata {
		t.Errorf(`String("i") err = %v, want invalid_client_metadata`, err)
	}
	if l, ok, err := f.Strings("a"); !slices.Equal(l, []string{"x", "y"}) || !ok || err != nil {
		t.Errorf(`Strings("a") = %q %v %v`, l, ok, err)
	}
	if l, ok, err := f.Strings("e"); l == nil || len(l) != 0 || !ok || err != nil {
		t.Errorf(`Strings("e") = %#v %v %v, want a present empty list`, l, ok, err)
	}
	for _, k := range []string{"an", "as", "i"} {
		if _, _, err := f.Strings(k); err == nil || err.Code != CodeInvalidClientMetadata {
			t.Errorf("Strings(%q) err = %v, want invalid_client_metadata", k, err)
		}
	}
	if !f.Has("s") || f.Has("n") || f.Has("missing") {
		t.Error("Has is wrong for present, null or absent members")
	}
	// Type errors on redirect_uris carry invalid_redirect_uri (V12).
	r, _ := DecodeObject([]byte(`{"redirect_uris":"https://c.example/cb"}`))
	if _, _, err := r.Strings("redirect_uris"); err == nil || err.Code != CodeInvalidRedirectURI {
		t.Errorf("redirect_uris type error = %v, want invalid_redirect_uri", err)
	}
}

const mdCB = `"redirect_uris":["https://c.example/cb"]`

// TestParseMetadata covers one row per checklist behaviour; check (when
// set) inspects a successfully parsed client.
func TestParseMetadata(t *testing.T) {
	type row struct {
		id, name string
		policy   Policy
		body     string
		code     string // "" = valid
		check    func(t *testing.T, c *Client)
	}
	eq := func(t *testing.T, what string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", what, got, want)
		}
	}
	long := func(n int) string { return strings.Repeat("é", n) }
	var tooManyLocalized []string
	for i := range 21 {
		tooManyLocalized = append(tooManyLocalized, fmt.Sprintf(`"client_name#en-a%d":"n"`, i))
	}
	var tooManyContacts []string
	for i := range 21 {
		tooManyContacts = append(tooManyContacts, fmt.Sprintf(`"c%d@c.example"`, i))
	}
	rows := []row{
		// S7 defaults.
		{"S7", "defaults", Policy{}, `{` + mdCB + `}`, "", func(t *testing.T, c *Client) {
			if c.TokenEndpointAuthMethod != AuthClientSecretBasic {
				t.Errorf("method = %q", c.TokenEndpointAuthMethod)
			}
			eq(t, "grant_types", c.GrantTypes, []string{"authorization_code"})
			eq(t, "response_types", c.ResponseTypes, []string{"code"})
			if c.ApplicationType != "" || c.Scope != "" || c.ClientName != "" || c.JWKS != nil || c.Localized != nil {
				t.Errorf("optional members invented: %+v", c)
			}
		}},
		// S10, V13: unknown and server-only members ignored.
		{"S10", "unknown members ignored", Policy{}, `{` + mdCB + `,"resource":"https://mcp.example/","x":{"y":[1]},"software_id#en":"z"}`, "", func(t *testing.T, c *Client) {
			if c.Localized != nil {
				t.Errorf("Localized = %v", c.Localized)
			}
		}},
		{"V13", "server-only members ignored", Policy{}, `{` + mdCB + `,"client_id":"mine","client_secret":"mine","client_id_issued_at":1,"client_secret_expires_at":2,"registration_access_token":"t","registration_client_uri":"https://e/"}`, "", func(t *testing.T, c *Client) {
			if c.ID != "" || c.SecretHash != "" || c.SecretExpiresAt != 0 || c.RATHash != "" || c.CreatedMs != 0 {
				t.Errorf("server fields taken from the request: %+v", c)
			}
		}},
		// V1.
		{"V1", "no redirect_uris", Policy{}, `{}`, CodeInvalidRedirectURI, nil},
		{"V1", "empty redirect_uris", Policy{}, `{"redirect_uris":[]}`, CodeInvalidRedirectURI, nil},
		{"V1", "implicit without redirect_uris", Policy{}, `{"response_types":["id_token"]}`, CodeInvalidRedirectURI, nil},
		{"V1", "client_credentials alone", Policy{}, `{"grant_types":["client_credentials"]}`, "", func(t *testing.T, c *Client) {
			eq(t, "response_types", c.ResponseTypes, []string{})
			if len(c.RedirectURIs) != 0 {
				t.Errorf("redirect_uris = %q", c.RedirectURIs)
			}
		}},
		{"V", "empty grant_types", Policy{}, `{"redirect_uris":["https://c.example/cb"],"grant_types":[]}`, CodeInvalidClientMetadata, nil},
		{"V", "empty grant_types with response types", Policy{}, `{"redirect_uris":["https://c.example/cb"],"grant_types":[],"response_types":[]}`, CodeInvalidClientMetadata, nil},
		{"V1", "client_credentials, no response types", Policy{}, `{"grant_types":["client_credentials"],"response_types":[]}`, "", nil},
		{"L", "one language tag in two cases", Policy{}, `{"redirect_uris":["https://c.example/cb"],"client_name#en":"a","client_name#EN":"b"}`, CodeInvalidClientMetadata, nil},
		{"L", "one tag on two fields", Policy{}, `{"redirect_uris":["https://c.example/cb"],"client_name#en":"a","tos_uri#EN":"https://c.example/tos"}`, "", nil},
		{"V1", "response_types none needs a redirect too", Policy{}, `{"response_types":["none"]}`, CodeInvalidRedirectURI, nil},
		{"V1", "response_types none", Policy{}, `{"redirect_uris":["https://c.example/cb"],"response_types":["none"]}`, "", func(t *testing.T, c *Client) {
			eq(t, "grant_types", c.GrantTypes, []string{"authorization_code"})
		}},
		{"V1", "no response types needs no redirect", Policy{}, `{"grant_types":["client_credentials"],"response_types":[]}`, "", func(t *testing.T, c *Client) {
			eq(t, "response_types", c.ResponseTypes, []string{})
		}},
		// V2/V3/V4/V5/V7 through ParseMetadata (rule details in urls_test.go).
		{"V2", "fragment", Policy{}, `{"redirect_uris":["https://c.example/cb#"]}`, CodeInvalidRedirectURI, nil},
		{"V3", "javascript", Policy{}, `{"redirect_uris":["javascript:alert(1)"]}`, CodeInvalidRedirectURI, nil},
		{"V4", "native passes its type to the rule", Policy{}, `{"application_type":"native","redirect_uris":["https://localhost/cb"]}`, CodeInvalidRedirectURI, nil},
		{"V5", "implicit passes to the rule", Policy{}, `{"response_types":["token"],"redirect_uris":["http://127.0.0.1/cb"]}`, CodeInvalidRedirectURI, nil},
		{"V5", "id_token counts as implicit", Policy{}, `{"application_type":"web","response_types":["code id_token"],"redirect_uris":["https://localhost/cb"]}`, CodeInvalidRedirectURI, nil},
		{"V7", "no type loopback http", Policy{}, `{"redirect_uris":["http://localhost:1234/cb"]}`, "", func(t *testing.T, c *Client) {
			if c.ApplicationType != "" {
				t.Errorf("application_type inferred: %q", c.ApplicationType)
			}
		}},
		{"V2", "redirect URI too long", Policy{}, `{"redirect_uris":["https://c.example/` + strings.Repeat("a", 2048) + `"]}`, CodeInvalidRedirectURI, nil},
		{"V2", "redirect URIs deduplicated in order", Policy{}, `{"redirect_uris":["https://c.example/b","https://c.example/a","https://c.example/b"]}`, "", func(t *testing.T, c *Client) {
			eq(t, "redirect_uris", c.RedirectURIs, []string{"https://c.example/b", "https://c.example/a"})
		}},
		// X1: redirect count cap.
		{"X1", "10 redirect URIs", Policy{}, `{"redirect_uris":[` + strings.Repeat(`"https://c.example/cb",`, 9) + `"https://c.example/cb"]}`, "", nil},
		{"X1", "11 redirect URIs", Policy{}, `{"redirect_uris":[` + strings.Repeat(`"https://c.example/cb",`, 10) + `"https://c.example/cb"]}`, CodeInvalidRedirectURI, nil},
		{"X1", "policy cap", Policy{MaxRedirectURIs: 2}, `{"redirect_uris":["https://c.example/1","https://c.example/2","https://c.example/3"]}`, CodeInvalidRedirectURI, nil},
		// V8.
		{"V8", "implicit with code", Policy{}, `{` + mdCB + `,"grant_types":["implicit"],"response_types":["code"]}`, CodeInvalidClientMetadata, nil},
		{"V8", "authorization_code with token", Policy{}, `{` + mdCB + `,"grant_types":["authorization_code"],"response_types":["token"]}`, CodeInvalidClientMetadata, nil},
		{"V8", "implicit grant unused", Policy{}, `{` + mdCB + `,"grant_types":["authorization_code","implicit"],"response_types":["code"]}`, CodeInvalidClientMetadata, nil},
		{"V8", "client_credentials with code", Policy{}, `{` + mdCB + `,"grant_types":["client_credentials"],"response_types":["code"]}`, CodeInvalidClientMetadata, nil},
		{"V8", "grants derived from hybrid response", Policy{}, `{` + mdCB + `,"response_types":["code id_token"]}`, "", func(t *testing.T, c *Client) {
			eq(t, "grant_types", c.GrantTypes, []string{"authorization_code", "implicit"})
		}},
		{"V8", "responses derived from implicit", Policy{}, `{` + mdCB + `,"grant_types":["implicit","refresh_token"]}`, "", func(t *testing.T, c *Client) {
			eq(t, "response_types", c.ResponseTypes, []string{"token"})
		}},
		{"V8", "responses derived from code and implicit", Policy{}, `{` + mdCB + `,"grant_types":["authorization_code","implicit"]}`, "", func(t *testing.T, c *Client) {
			eq(t, "response_types", c.ResponseTypes, []string{"code", "token"})
		}},
		{"V8", "reordered response type words accepted", Policy{}, `{` + mdCB + `,"response_types":["id_token code"]}`, "", nil},
		{"V8", "grant types deduplicated", Policy{}, `{` + mdCB + `,"grant_types":["authorization_code","refresh_token","authorization_code"]}`, "", func(t *testing.T, c *Client) {
			eq(t, "grant_types", c.GrantTypes, []string{"authorization_code", "refresh_token"})
		}},
		{"V8", "response types differing in order only kept once", Policy{}, `{` + mdCB + `,"grant_types":["authorization_code","implicit"],"response_types":["id_token code","code","code id_token","code"]}`, "", func(t *testing.T, c *Client) {
			eq(t, "response_types", c.ResponseTypes, []string{"id_token code", "code"})
		}},
		// V9, V10, S12.
		{"V9", "jwks and jwks_uri", Policy{}, `{` + mdCB + `,"jwks":{"keys":[]},"jwks_uri":"https://c.example/j"}`, CodeInvalidClientMetadata, nil},
		{"V10", "private_key_jwt without keys", Policy{}, `{` + mdCB + `,"token_endpoint_auth_method":"private_key_jwt"}`, CodeInvalidClientMetadata, nil},
		{"V10", "private_key_jwt with jwks_uri", Policy{}, `{` + mdCB + `,"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://c.example/j"}`, "", nil},
		{"S12", "jwks object kept as an object", Policy{}, `{` + mdCB + `,"jwks":{ "keys" : [ {"kty":"EC","kid":"a"} ] }}`, "", func(t *testing.T, c *Client) {
			if string(c.JWKS) != `{"keys":[{"kty":"EC","kid":"a"}]}` {
				t.Errorf("JWKS = %s", c.JWKS)
			}
		}},
		{"S12", "jwks string kept as a string", Policy{}, `{` + mdCB + `,"jwks":"{\"keys\":[{\"kty\":\"EC\"}]}"}`, "", func(t *testing.T, c *Client) {
			if string(c.JWKS) != `"{\"keys\":[{\"kty\":\"EC\"}]}"` {
				t.Errorf("JWKS = %s", c.JWKS)
			}
		}},
		{"S12", "jwks null is absent", Policy{}, `{` + mdCB + `,"jwks":null,"jwks_uri":"https://c.example/j"}`, "", nil},
		{"V12", "jwks without keys", Policy{}, `{` + mdCB + `,"jwks":{}}`, CodeInvalidClientMetadata, nil},
		{"V12", "jwks keys not objects", Policy{}, `{` + mdCB + `,"jwks":{"keys":[1]}}`, CodeInvalidClientMetadata, nil},
		{"V12", "jwks string of garbage", Policy{}, `{` + mdCB + `,"jwks":"{"}`, CodeInvalidClientMetadata, nil},
		{"V12", "jwks an array", Policy{}, `{` + mdCB + `,"jwks":[]}`, CodeInvalidClientMetadata, nil},
		{"V12", "jwks too large", Policy{}, `{` + mdCB + `,"jwks":{"keys":[{"k":"` + strings.Repeat("a", 16384) + `"}]}}`, CodeInvalidClientMetadata, nil},
		{"V12", "jwks symmetric key", Policy{}, `{` + mdCB + `,"jwks":{"keys":[{"kty":"oct","k":"AAAA"}]}}`, CodeInvalidClientMetadata, nil},
		{"V12", "jwks private key", Policy{}, `{` + mdCB + `,"jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"},{"kty":"RSA","n":"0vx7","e":"AQAB","d":"X4cT"}]}}`, CodeInvalidClientMetadata, nil},
		{"V12", "jwks private key in a string", Policy{}, `{` + mdCB + `,"jwks":"{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"a\",\"d\":\"b\"}]}"}`, CodeInvalidClientMetadata, nil},
		{"V12", "jwks key without kty", Policy{}, `{` + mdCB + `,"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[{}]}}`, CodeInvalidClientMetadata, nil},
		{"V12", "jwks key with a null kty", Policy{}, `{` + mdCB + `,"jwks":{"keys":[{"kty":null,"n":"x"}]}}`, CodeInvalidClientMetadata, nil},
		{"V12", "jwks null key", Policy{}, `{` + mdCB + `,"jwks":{"keys":[null]}}`, CodeInvalidClientMetadata, nil},
		{"V12", "jwks private key hidden by a repeated member", Policy{}, `{` + mdCB + `,"jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"c","d":null}]}}`, CodeInvalidClientMetadata, nil},
		{"V12", "jwks private key set hidden by a repeated keys", Policy{}, `{` + mdCB + `,"jwks":{"keys":[{"kty":"RSA","n":"0vx7","e":"AQAB","d":"X4cT"}],"keys":[]}}`, CodeInvalidClientMetadata, nil},
		{"V12", "jwks repeated member in a string", Policy{}, `{` + mdCB + `,"jwks":"{\"keys\":[{\"kty\":\"OKP\",\"x\":\"a\",\"\\u0064\":\"b\",\"d\":null}]}"}`, CodeInvalidClientMetadata, nil},
		{"S12", "the same member name in different objects", Policy{}, `{` + mdCB + `,"jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"},{"kty":"EC","crv":"P-256","x":"c","y":"d","ext":{"kty":1}}]}}`, "", nil},
		{"V12", "jwks nested too deep", Policy{}, `{` + mdCB + `,"jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","ext":` + strings.Repeat("[", 30) + strings.Repeat("]", 30) + `}]}}`, CodeInvalidClientMetadata, nil},
		{"V12", "jwks nested too deep in a string", Policy{}, `{` + mdCB + `,"jwks":"{\"keys\":[{\"kty\":\"EC\",\"ext\":` + strings.Repeat("[", 30) + strings.Repeat("]", 30) + `}]}"}`, CodeInvalidClientMetadata, nil},
		{"S12", "jwks nested 32 deep", Policy{}, `{` + mdCB + `,"jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","ext":` + strings.Repeat("[", 29) + strings.Repeat("]", 29) + `}]}}`, "", nil},
		{"S12", "null private members are absent", Policy{}, `{` + mdCB + `,"jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","d":null}]}}`, "", nil},
		{"V10", "private_key_jwt with an empty key set", Policy{}, `{` + mdCB + `,"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[]}}`, CodeInvalidClientMetadata, nil},
		{"S12", "an empty key set without private_key_jwt", Policy{}, `{` + mdCB + `,"jwks":{"keys":[]}}`, "", nil},
		{"V11", "client_credentials for a public client", Policy{}, `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"none"}`, CodeInvalidClientMetadata, nil},
		{"V11", "client_credentials with the default method", Policy{}, `{"grant_types":["client_credentials"]}`, "", func(t *testing.T, c *Client) {
			if c.TokenEndpointAuthMethod != AuthClientSecretBasic || len(c.ResponseTypes) != 0 {
				t.Errorf("method %q, response types %q", c.TokenEndpointAuthMethod, c.ResponseTypes)
			}
		}},
		{"V11", "response type with two spaces", Policy{}, `{` + mdCB + `,"response_types":["code  id_token"]}`, CodeInvalidClientMetadata, nil},
		{"V11", "response type with a tab", Policy{}, `{` + mdCB + `,"response_types":["code\tid_token"]}`, CodeInvalidClientMetadata, nil},
		{"V11", "response type with a leading space", Policy{}, `{` + mdCB + `,"response_types":[" code"]}`, CodeInvalidClientMetadata, nil},
		{"S1", "response type in another order", Policy{}, `{` + mdCB + `,"response_types":["id_token code"]}`, "", func(t *testing.T, c *Client) {
			if len(c.ResponseTypes) != 1 || c.ResponseTypes[0] != "id_token code" {
				t.Errorf("response types %q", c.ResponseTypes)
			}
		}},
		{"V13", "bidirectional override in client_uri", Policy{}, `{` + mdCB + `,"client_uri":"https://c.example/\u202eevil"}`, CodeInvalidClientMetadata, nil},
		{"V13", "bidirectional override in a localized tos_uri", Policy{}, `{` + mdCB + `,"tos_uri#fr":"https://c.example/\u2066x"}`, CodeInvalidClientMetadata, nil},
		{"V13", "bidirectional override in a contact", Policy{}, `{` + mdCB + `,"contacts":["a\u202e@b.example"]}`, CodeInvalidClientMetadata, nil},
		{"V13", "non-ASCII in a URL is fine", Policy{}, `{` + mdCB + `,"client_uri":"https://b\u00fccher.example/\u00e9t\u00e9"}`, "", nil},
		// V11.
		{"V11", "unknown grant", Policy{}, `{` + mdCB + `,"grant_types":["urn:x:nope"]}`, CodeInvalidClientMetadata, nil},
		{"V11", "password not supported by default", Policy{}, `{` + mdCB + `,"grant_types":["password"]}`, CodeInvalidClientMetadata, nil},
		{"V11", "unknown response type", Policy{}, `{` + mdCB + `,"response_types":["code bogus"]}`, CodeInvalidClientMetadata, nil},
		{"V11", "unknown auth method", Policy{}, `{` + mdCB + `,"token_endpoint_auth_method":"tls_client_auth"}`, CodeInvalidClientMetadata, nil},
		{"V11", "unknown application_type", Policy{}, `{` + mdCB + `,"application_type":"desktop"}`, CodeInvalidClientMetadata, nil},
		{"V11", "policy narrows grants", Policy{GrantTypes: []string{"authorization_code"}}, `{` + mdCB + `,"grant_types":["authorization_code","refresh_token"]}`, CodeInvalidClientMetadata, nil},
		{"V11", "policy narrows auth methods", Policy{AuthMethods: []string{AuthNone, AuthClientSecretPost}}, `{` + mdCB + `,"token_endpoint_auth_method":"client_secret_basic"}`, CodeInvalidClientMetadata, nil},
		{"S7", "default auth method falls back to the first supported", Policy{AuthMethods: []string{AuthNone, AuthClientSecretPost}}, `{` + mdCB + `}`, "", func(t *testing.T, c *Client) {
			if c.TokenEndpointAuthMethod != AuthNone {
				t.Errorf("method = %q, want none", c.TokenEndpointAuthMethod)
			}
		}},
		// V12 types.
		{"V12", "redirect_uris a string", Policy{}, `{"redirect_uris":"https://c.example/cb"}`, CodeInvalidRedirectURI, nil},
		{"V12", "redirect_uris holds null", Policy{}, `{"redirect_uris":[null]}`, CodeInvalidRedirectURI, nil},
		{"V12", "grant_types an object", Policy{}, `{` + mdCB + `,"grant_types":{}}`, CodeInvalidClientMetadata, nil},
		{"V12", "scope a number", Policy{}, `{` + mdCB + `,"scope":1}`, CodeInvalidClientMetadata, nil},
		{"V12", "client_name an array", Policy{}, `{` + mdCB + `,"client_name":["a"]}`, CodeInvalidClientMetadata, nil},
		{"V12", "software_version a number", Policy{}, `{` + mdCB + `,"software_version":2}`, CodeInvalidClientMetadata, nil},
		{"V12", "application_type a boolean", Policy{}, `{` + mdCB + `,"application_type":true}`, CodeInvalidClientMetadata, nil},
		{"V12", "client_name 1024 characters", Policy{}, `{` + mdCB + `,"client_name":"` + long(1024) + `"}`, "", nil},
		{"V12", "client_name 1025 characters", Policy{}, `{` + mdCB + `,"client_name":"` + long(1025) + `"}`, CodeInvalidClientMetadata, nil},
		// S11 localized members.
		{"S11", "localized members stored", Policy{}, `{` + mdCB + `,"client_name":"N","client_name#ja-Jpan-JP":"名前","tos_uri#de":"https://c.example/de","client_name#":"x","client_name#a_b":"x","scope#en":"x","client_name#fr":null,"client_name#es":"","logo_uri#es":""}`, "", func(t *testing.T, c *Client) {
			want := map[string]string{"client_name#ja-Jpan-JP": "名前", "tos_uri#de": "https://c.example/de"}
			if len(c.Localized) != len(want) {
				t.Errorf("Localized = %v, want %v", c.Localized, want)
			}
			for k, v := range want {
				if c.Localized[k] != v {
					t.Errorf("Localized[%q] = %q, want %q", k, c.Localized[k], v)
				}
			}
			if c.ClientName != "N" {
				t.Errorf("client_name = %q", c.ClientName)
			}
		}},
		{"S11", "localized URL validated", Policy{}, `{` + mdCB + `,"policy_uri#en":"data:x"}`, CodeInvalidClientMetadata, nil},
		{"S11", "localized name type checked", Policy{}, `{` + mdCB + `,"client_name#en":1}`, CodeInvalidClientMetadata, nil},
		{"S11", "localized name length checked", Policy{}, `{` + mdCB + `,"client_name#en":"` + long(1025) + `"}`, CodeInvalidClientMetadata, nil},
		{"S11", "localized URL length checked", Policy{}, `{` + mdCB + `,"logo_uri#fr":"https://c.example/` + long(2048) + `"}`, CodeInvalidClientMetadata, nil},
		{"S11", "at most 20 localized members", Policy{}, `{` + mdCB + `,` + strings.Join(tooManyLocalized, ",") + `}`, CodeInvalidClientMetadata, nil},
		// V14 scope.
		{"V14", "scope normalized", Policy{}, `{` + mdCB + `,"scope":"  read write read "}`, "", func(t *testing.T, c *Client) {
			if c.Scope != "read write" {
				t.Errorf("scope = %q", c.Scope)
			}
		}},
		{"V14", "scope token with a quote", Policy{}, `{` + mdCB + `,"scope":"a\"b"}`, CodeInvalidClientMetadata, nil},
		{"V14", "scope split only on spaces", Policy{}, `{` + mdCB + `,"scope":"a\u00a0b"}`, CodeInvalidClientMetadata, nil},
		{"V14", "scope with a tab", Policy{}, `{` + mdCB + `,"scope":"a\tb"}`, CodeInvalidClientMetadata, nil},
		{"V14", "scope token with a backslash", Policy{}, `{` + mdCB + `,"scope":"a\\b"}`, CodeInvalidClientMetadata, nil},
		{"V14", "scope token with non-ASCII", Policy{}, `{` + mdCB + `,"scope":"ré"}`, CodeInvalidClientMetadata, nil},
		{"V14", "configured scopes allow", Policy{Scopes: []string{"read", "write"}}, `{` + mdCB + `,"scope":"write"}`, "", nil},
		{"V14", "configured scopes refuse", Policy{Scopes: []string{"read", "write"}}, `{` + mdCB + `,"scope":"read admin"}`, CodeInvalidClientMetadata, nil},
		{"V14", "default scope when omitted", Policy{DefaultScope: "read"}, `{` + mdCB + `}`, "", func(t *testing.T, c *Client) {
			if c.Scope != "read" {
				t.Errorf("scope = %q, want the default", c.Scope)
			}
		}},
		{"V14", "default scope when empty", Policy{DefaultScope: "read"}, `{` + mdCB + `,"scope":""}`, "", func(t *testing.T, c *Client) {
			if c.Scope != "read" {
				t.Errorf("scope = %q, want the default", c.Scope)
			}
		}},
		{"V14", "requested scope beats the default", Policy{DefaultScope: "read"}, `{` + mdCB + `,"scope":"write"}`, "", func(t *testing.T, c *Client) {
			if c.Scope != "write" {
				t.Errorf("scope = %q", c.Scope)
			}
		}},
		{"V14", "scope too long", Policy{}, `{` + mdCB + `,"scope":"` + strings.Repeat("a", 4097) + `"}`, CodeInvalidClientMetadata, nil},
		// V15 URLs and contacts.
		{"V15", "logo_uri javascript", Policy{}, `{` + mdCB + `,"logo_uri":"javascript:alert(1)"}`, CodeInvalidClientMetadata, nil},
		{"V15", "client_uri relative", Policy{}, `{` + mdCB + `,"client_uri":"/about"}`, CodeInvalidClientMetadata, nil},
		{"V15", "jwks_uri ftp", Policy{}, `{` + mdCB + `,"jwks_uri":"ftp://c.example/j"}`, CodeInvalidClientMetadata, nil},
		{"V15", "tos_uri too long", Policy{}, `{` + mdCB + `,"tos_uri":"https://c.example/` + strings.Repeat("a", 2048) + `"}`, CodeInvalidClientMetadata, nil},
		{"V15", "empty URL is no URL", Policy{}, `{` + mdCB + `,"logo_uri":""}`, "", func(t *testing.T, c *Client) {
			if c.LogoURI != "" {
				t.Errorf("logo_uri = %q", c.LogoURI)
			}
		}},
		{"V15", "all URLs stored", Policy{}, `{` + mdCB + `,"client_uri":"https://c.example/","logo_uri":"http://c.example/l","tos_uri":"https://c.example/t","policy_uri":"https://c.example/p","jwks_uri":"https://c.example/j"}`, "", func(t *testing.T, c *Client) {
			if c.ClientURI != "https://c.example/" || c.LogoURI != "http://c.example/l" || c.TOSURI != "https://c.example/t" || c.PolicyURI != "https://c.example/p" || c.JWKSURI != "https://c.example/j" {
				t.Errorf("URLs = %+v", c)
			}
		}},
		{"V15", "contacts plain", Policy{}, `{` + mdCB + `,"contacts":["a@c.example","b.c+d@c.example"]}`, "", func(t *testing.T, c *Client) {
			eq(t, "contacts", c.Contacts, []string{"a@c.example", "b.c+d@c.example"})
		}},
		// "Typically email addresses" (RFC 7591 section 2): other ways to
		// contact people are accepted too, and echoed as sent.
		{"V15", "contacts of other kinds", Policy{}, `{` + mdCB + `,"contacts":["A <a@c.example>","<a@c.example>","mailto:a@c.example","https://c.example/support"]}`, "", func(t *testing.T, c *Client) {
			eq(t, "contacts", c.Contacts, []string{"A <a@c.example>", "<a@c.example>", "mailto:a@c.example", "https://c.example/support"})
		}},
		{"V15", "contact mailto without an address", Policy{}, `{` + mdCB + `,"contacts":["mailto:nobody"]}`, CodeInvalidClientMetadata, nil},
		{"V15", "contact javascript URL", Policy{}, `{` + mdCB + `,"contacts":["javascript:alert(1)"]}`, CodeInvalidClientMetadata, nil},
		{"V15", "contact word", Policy{}, `{` + mdCB + `,"contacts":["not-an-email"]}`, CodeInvalidClientMetadata, nil},
		{"V15", "contact with a newline", Policy{}, `{` + mdCB + `,"contacts":["a@c.example\nBcc: b@c.example"]}`, CodeInvalidClientMetadata, nil},
		{"V15", "contact with spaces", Policy{}, `{` + mdCB + `,"contacts":[" a@c.example"]}`, CodeInvalidClientMetadata, nil},
		{"V15", "contact list", Policy{}, `{` + mdCB + `,"contacts":["a@c.example, b@c.example"]}`, CodeInvalidClientMetadata, nil},
		{"V15", "contact empty", Policy{}, `{` + mdCB + `,"contacts":[""]}`, CodeInvalidClientMetadata, nil},
		{"X", "control character in client_name", Policy{}, `{` + mdCB + `,"client_name":"a\u0000b"}`, CodeInvalidClientMetadata, nil},
		{"X", "escape sequence in software_id", Policy{}, `{` + mdCB + `,"software_id":"\u001b[31m"}`, CodeInvalidClientMetadata, nil},
		{"X", "bidirectional override in a localized client_name", Policy{}, `{` + mdCB + `,"client_name#he":"\u202eelgooG"}`, CodeInvalidClientMetadata, nil},
		{"X", "right-to-left mark allowed in client_name", Policy{}, `{` + mdCB + `,"client_name":"\u05e9\u05dc\u05d5\u05dd\u200f app"}`, "", func(t *testing.T, c *Client) {
			if c.ClientName != "\u05e9\u05dc\u05d5\u05dd\u200f app" {
				t.Errorf("client_name %q", c.ClientName)
			}
		}},
		{"V15", "at most 20 contacts", Policy{}, `{` + mdCB + `,"contacts":[` + strings.Join(tooManyContacts, ",") + `]}`, CodeInvalidClientMetadata, nil},
		// Redirect host allowlist (policy).
		{"V15", "allowlisted host", Policy{RedirectHosts: []string{"c.example"}}, `{"redirect_uris":["https://c.example/cb"]}`, "", nil},
		{"V15", "host not allowlisted", Policy{RedirectHosts: []string{"c.example"}}, `{"redirect_uris":["https://evil.example/cb"]}`, CodeInvalidRedirectURI, nil},
		{"V15", "loopback always allowed", Policy{RedirectHosts: []string{"c.example"}}, `{"redirect_uris":["http://127.0.0.1:9/cb"]}`, "", nil},
	}
	for _, r := range rows {
		t.Run(r.id+" "+r.name, func(t *testing.T) {
			c, err := mdParse(t, r.policy, r.body)
			if r.code != "" {
				if err == nil {
					t.Fatalf("ParseMetadata(%.200s) = %+v, want %s", r.body, c, r.code)
				}
				if err.Code != r.code || err.Description == "" || err.Error() == "" {
					t.Fatalf("ParseMetadata(%.200s) error = %q %q, want %s", r.body, err.Code, err.Description, r.code)
				}
				if c != nil {
					t.Errorf("client %+v returned with an error", c)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMetadata(%.200s) = %v", r.body, err)
			}
			if r.check != nil {
				r.check(t, c)
			}
		})
	}
}

// TestParseMetadataErrorsNeverPanic feeds every recognized member every
// JSON type: each gives a client or an *Error with a known code.
func TestParseMetadataErrorsNeverPanic(t *testing.T) {
	members := []string{"redirect_uris", "token_endpoint_auth_method", "grant_types", "response_types", "application_type",
		"client_name", "client_uri", "logo_uri", "tos_uri", "policy_uri", "jwks_uri", "jwks", "scope", "contacts",
		"software_id", "software_version", "client_name#en", "logo_uri#en"}
	values := []string{`null`, `true`, `0`, `-1.5e3`, `""`, `"x"`, `[]`, `[null]`, `[1]`, `["x"]`, `{}`, `{"keys":[]}`, `[[]]`}
	for _, m := range members {
		for _, v := range values {
			f, derr := DecodeObject([]byte(`{` + mdCB + `,"` + m + `":` + v + `}`))
			if derr != nil {
				t.Fatal(derr)
			}
			if m == "redirect_uris" {
				f, _ = DecodeObject([]byte(`{"` + m + `":` + v + `}`))
			}
			c, err := (&Policy{}).ParseMetadata(f)
			switch {
			case err != nil && err.Code != CodeInvalidClientMetadata && err.Code != CodeInvalidRedirectURI:
				t.Errorf("%s=%s: error code %q", m, v, err.Code)
			case err == nil && c == nil:
				t.Errorf("%s=%s: neither client nor error", m, v)
			}
		}
	}
}

// TestParseMetadataLocalizedErrorIsStable: with several bad language-tagged
// members, the same request always gets the same message (the first in key
// order), whatever order Go's map iteration picks.
func TestParseMetadataLocalizedErrorIsStable(t *testing.T) {
	body := `{` + mdCB + `,"tos_uri#en":"javascript:x","client_name#en":1,"logo_uri#de":"ftp://c.example/","policy_uri#fr":2}`
	for range 50 {
		f, derr := DecodeObject([]byte(body))
		if derr != nil {
			t.Fatal(derr)
		}
		_, err := (&Policy{}).ParseMetadata(f)
		if err == nil || err.Description != "client_name#en must be a string" {
			t.Fatalf("error %v, want the one about client_name#en", err)
		}
	}
}

// TestParseMetadataJWKSRoundTrip: what is stored re-encodes to the same
// JSON value that was sent (S12: jwks echoed as sent).
func TestParseMetadataJWKSRoundTrip(t *testing.T) {
	for _, in := range []string{
		`{"keys":[{"kty":"RSA","n":"0vx7","e":"AQAB","alg":"RS256","kid":"2011-04-29"}]}`,
		`{ "keys" : [ { "kty" : "EC" , "x5c" : [ "MIIC" ] , "ext" : true , "n" : 1.5e2 } ] , "extra" : null }`,
		`"{\"keys\":[]}"`,
	} {
		c, err := mdParse(t, Policy{}, `{`+mdCB+`,"jwks":`+in+`}`)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		var a, b any
		if json.Unmarshal([]byte(in), &a) != nil || json.Unmarshal(c.JWKS, &b) != nil {
			t.Fatalf("%s / %s not JSON", in, c.JWKS)
		}
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("stored %s, sent %s", c.JWKS, in)
		}
	}
}

// TestParseMetadataDerivedValuesRespectPolicy: grant and response types the
// server derives or defaults (RFC 7591 2.1) obey the operator's allowed
// lists exactly as requested ones do (V11, S9: the server may refuse with
// invalid_client_metadata or substitute supported values, but must never
// register a value it does not support).
func TestParseMetadataDerivedValuesRespectPolicy(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Policy
		body string
	}{
		{"implicit derived from response_types token", Policy{GrantTypes: []string{"authorization_code", "refresh_token"}}, `{` + mdCB + `,"response_types":["token"]}`},
		{"implicit derived from a hybrid response type", Policy{GrantTypes: []string{"authorization_code"}}, `{` + mdCB + `,"response_types":["code id_token"]}`},
		{"token derived from grant_types implicit", Policy{ResponseTypes: []string{"code"}}, `{` + mdCB + `,"grant_types":["implicit"]}`},
		{"code derived from grant_types authorization_code", Policy{ResponseTypes: []string{"token"}}, `{` + mdCB + `,"grant_types":["authorization_code","implicit"]}`},
		{"default grant not allowed", Policy{GrantTypes: []string{"client_credentials"}}, `{` + mdCB + `}`},
		{"default response type not allowed", Policy{ResponseTypes: []string{"token"}}, `{` + mdCB + `}`},
	} {
		t.Run("V11 "+tc.name, func(t *testing.T) {
			c, err := mdParse(t, tc.p, tc.body)
			if err != nil {
				if err.Code != CodeInvalidClientMetadata {
					t.Errorf("error %q, want invalid_client_metadata", err.Code)
				}
				return
			}
			for _, g := range c.GrantTypes {
				if !slices.Contains(tc.p.SupportedGrantTypes(), g) {
					t.Errorf("registered grant type %q, which the policy does not allow (%q); grant_types %q", g, tc.p.SupportedGrantTypes(), c.GrantTypes)
				}
			}
			for _, r := range c.ResponseTypes {
				if !slices.Contains(tc.p.SupportedResponseTypes(), normalizeResponseType(r)) {
					t.Errorf("registered response type %q, which the policy does not allow (%q); response_types %q", r, tc.p.SupportedResponseTypes(), c.ResponseTypes)
				}
			}
		})
	}
}

// TestParseMetadataSameHostURIs: with SameHostURIs, the pages a consent
// screen links must be on the scheme and host of a redirect URI (RFC 7591
// section 5); without it, or without redirect URIs, they are not compared.
func TestParseMetadataSameHostURIs(t *testing.T) {
	same := Policy{SameHostURIs: true}
	for _, tc := range []struct {
		name string
		p    Policy
		body string
		want string // "" = registered
	}{
		{"same host", same, `{` + mdCB + `,"client_uri":"https://c.example/","logo_uri":"https://C.Example:8443/l.png","tos_uri":"https://c.example/tos","policy_uri":"https://c.example/p"}`, ""},
		{"host of any redirect URI", same, `{"redirect_uris":["http://localhost:9/cb","https://c.example/cb"],"logo_uri":"https://c.example/l.png"}`, ""},
		{"other host", same, `{` + mdCB + `,"logo_uri":"https://evil.example/l.png"}`, `logo_uri "https://evil.example/l.png" must have the scheme and host of a redirect URI`},
		{"other scheme", same, `{` + mdCB + `,"client_uri":"http://c.example/"}`, `client_uri "http://c.example/" must have the scheme and host of a redirect URI`},
		{"subdomain", same, `{` + mdCB + `,"policy_uri":"https://www.c.example/p"}`, `policy_uri "https://www.c.example/p" must have the scheme and host of a redirect URI`},
		{"language-tagged", same, `{` + mdCB + `,"tos_uri#fr":"https://evil.example/tos","client_name#fr":"nom"}`, `tos_uri#fr "https://evil.example/tos" must have the scheme and host of a redirect URI`},
		{"custom-scheme redirect", same, `{"redirect_uris":["com.example.app:/cb"],"application_type":"native","client_uri":"https://example.com/"}`, `client_uri "https://example.com/" must have the scheme and host of a redirect URI`},
		{"no redirect URIs", same, `{"grant_types":["client_credentials"],"response_types":[],"client_uri":"https://elsewhere.example/"}`, ""},
		{"jwks_uri is not shown to users", same, `{` + mdCB + `,"jwks_uri":"https://keys.example/jwks"}`, ""},
		{"off by default", Policy{}, `{` + mdCB + `,"logo_uri":"https://evil.example/l.png"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mdParse(t, tc.p, tc.body)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || err.Code != CodeInvalidClientMetadata || err.Description != tc.want):
				t.Fatalf("got %v, want invalid_client_metadata %q", err, tc.want)
			}
		})
	}
	// The cloned APIs get the same rule through Refusal; Kustvakt's name
	// for client_uri is url.
	c := &Client{API: APIKustvakt, ClientURI: "https://evil.example/", RedirectURIs: []string{"https://c.example/cb"}}
	if got, want := same.Refusal(c), `the url "https://evil.example/" must have the scheme and host of a redirect URI`; got != want {
		t.Errorf("Refusal: %q, want %q", got, want)
	}
	if got := same.DisplayURIRefusal(&Client{LogoURI: "https://c.example/l", RedirectURIs: []string{"https://c.example/cb"}}); got != "" {
		t.Errorf("DisplayURIRefusal of a same-host logo: %q", got)
	}
}

// TestOnRedirectHost: hosts compare as a browser looks them up (IDNA to
// ASCII, no trailing dot, ports aside), not by Unicode case folding.
func TestOnRedirectHost(t *testing.T) {
	for _, tc := range []struct {
		uri, redirect string
		want          bool
	}{
		{"https://APP.example:8443/x", "https://app.example/cb", true},
		{"HTTPS://app.example/", "https://app.example/cb", true},
		{"https://app.example./", "https://app.example/cb", true},
		{"https://bücher.example/", "https://xn--bcher-kva.example/cb", true},
		{"https://xn--bcher-kva.de", "https://BÜCHER.de/cb", true},
		{"https://app.example/%zz", "https://app.example/cb", true},
		{"https://u:p@app.example/", "https://app.example/cb", true},
		{"https://[::1]:8080/", "http://[::1]/cb", false},
		{"http://[::1]:8080/", "http://[::1]/cb", true},
		{"https://claẞic.example/l.png", "https://claßic.example/cb", false},
		{"https://σ.example/", "https://ς.example/cb", false},
		{"https://app.example@evil.example/", "https://app.example/cb", false},
		{"https://evil.example\\@app.example/", "https://app.example/cb", false},
		{"https://app.example.evil.example/", "https://app.example/cb", false},
		{"https:app.example", "https://app.example/cb", false},
		{"https://", "https://app.example/cb", false},
		{"https://[::1", "https://app.example/cb", false},
		{"https://app.example/", "com.example.app:/cb", false},
	} {
		if got := onRedirectHost(tc.uri, []string{tc.redirect}); got != tc.want {
			t.Errorf("onRedirectHost(%q, %q) = %v, want %v", tc.uri, tc.redirect, got, tc.want)
		}
	}
}

// TestParseMetadataSigningAlg: token_endpoint_auth_signing_alg is kept when
// the metadata publishes it and it suits the authentication method.
func TestParseMetadataSigningAlg(t *testing.T) {
	jwt := Policy{AuthMethods: []string{AuthClientSecretBasic, AuthClientSecretJWT, AuthPrivateKeyJWT}}
	const keys = `,"jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`
	for _, tc := range []struct {
		name, body, want string // want: the registered alg, or the error
		ok               bool
	}{
		{"client_secret_jwt HS256", `"token_endpoint_auth_method":"client_secret_jwt","token_endpoint_auth_signing_alg":"HS256"`, "HS256", true},
		{"private_key_jwt ES256", `"token_endpoint_auth_method":"private_key_jwt","token_endpoint_auth_signing_alg":"ES256"` + keys, "ES256", true},
		{"omitted", `"token_endpoint_auth_method":"private_key_jwt"` + keys, "", true},
		{"empty", `"token_endpoint_auth_method":"client_secret_jwt","token_endpoint_auth_signing_alg":""`, "", true},
		{"none", `"token_endpoint_auth_method":"client_secret_jwt","token_endpoint_auth_signing_alg":"none"`, `token_endpoint_auth_signing_alg "none" is not supported; supported: HS256, RS256, PS256, ES256, EdDSA`, false},
		{"RS256 with a secret", `"token_endpoint_auth_method":"client_secret_jwt","token_endpoint_auth_signing_alg":"RS256"`, `token_endpoint_auth_signing_alg "RS256" does not suit client_secret_jwt, which is signed with the client secret (HS256)`, false},
		{"HS256 with a key", `"token_endpoint_auth_method":"private_key_jwt","token_endpoint_auth_signing_alg":"HS256"` + keys, `token_endpoint_auth_signing_alg "HS256" does not suit private_key_jwt, which is signed with the client's private key`, false},
		{"dropped with a method that signs nothing", `"token_endpoint_auth_method":"client_secret_basic","token_endpoint_auth_signing_alg":"RS256"`, "", true},
		{"not a string", `"token_endpoint_auth_method":"client_secret_jwt","token_endpoint_auth_signing_alg":256`, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := mdParse(t, jwt, `{`+mdCB+`,`+tc.body+`}`)
			switch {
			case tc.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.ok && c.TokenEndpointAuthSigningAlg != tc.want:
				t.Fatalf("alg %q, want %q", c.TokenEndpointAuthSigningAlg, tc.want)
			case !tc.ok && (err == nil || err.Code != CodeInvalidClientMetadata || tc.want != "" && err.Description != tc.want):
				t.Fatalf("got %v, want invalid_client_metadata %q", err, tc.want)
			}
		})
	}
}

func TestSupportedSigningAlgs(t *testing.T) {
	for _, tc := range []struct {
		methods []string
		want    []string
	}{
		{nil, []string{"HS256", "RS256", "PS256", "ES256", "EdDSA"}},
		{[]string{AuthNone, AuthClientSecretPost}, nil},
		{[]string{"private_key_jwt"}, []string{"RS256", "PS256", "ES256", "EdDSA"}},
		{[]string{"client_secret_jwt"}, []string{"HS256"}},
	} {
		p := Policy{AuthMethods: tc.methods}
		if got := p.SupportedSigningAlgs(); !slices.Equal(got, tc.want) {
			t.Errorf("methods %q: %q, want %q", tc.methods, got, tc.want)
		}
	}
}

// The metadata document publishes only response types a registration can
// use: those whose grant types the policy allows too.
func TestSupportedResponseTypes(t *testing.T) {
	for _, tc := range []struct {
		p    Policy
		want []string
	}{
		{Policy{}, DefaultResponseTypes},
		{Policy{GrantTypes: []string{"authorization_code", "refresh_token"}}, []string{"code", "none"}},
		// "none" goes with any grant type.
		{Policy{GrantTypes: []string{"implicit"}}, []string{"token", "id_token", "id_token token", "none"}},
		{Policy{GrantTypes: []string{"client_credentials"}}, []string{"none"}},
		{Policy{GrantTypes: []string{"client_credentials"}, ResponseTypes: []string{"code"}}, []string{}},
	} {
		if got := tc.p.SupportedResponseTypes(); !slices.Equal(got, tc.want) {
			t.Errorf("grants %q, response types %q: published %q, want %q", tc.p.GrantTypes, tc.p.ResponseTypes, got, tc.want)
		}
	}
}

// Grant types are published only when a registration can carry them, and
// every published grant and response type can be registered.
func TestSupportedGrantTypes(t *testing.T) {
	for _, tc := range []struct {
		p        Policy
		want     []string
		unusable int // messages of Unusable
	}{
		{Policy{}, DefaultGrantTypes, 0},
		{Policy{ResponseTypes: []string{"code"}}, []string{"authorization_code", "refresh_token", "client_credentials",
			"urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:jwt-bearer", "urn:ietf:params:oauth:grant-type:token-exchange"}, 0},
		{Policy{GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"token"}}, []string{}, 2},
		{Policy{GrantTypes: []string{"client_credentials", "refresh_token"}, AuthMethods: []string{AuthNone}}, []string{"refresh_token"}, 1},
		{Policy{GrantTypes: []string{"implicit", "authorization_code"}, ResponseTypes: []string{"code", "code token"}}, []string{"implicit", "authorization_code"}, 0},
		{Policy{GrantTypes: []string{"implicit", "authorization_code"}, ResponseTypes: []string{"code"}}, []string{"authorization_code"}, 1},
		{Policy{GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"none"}}, []string{"authorization_code"}, 0},
		// No response type left: the metadata goes without the member.
		{Policy{GrantTypes: []string{"client_credentials"}, ResponseTypes: []string{"code"}}, []string{"client_credentials"}, 2},
	} {
		got := tc.p.SupportedGrantTypes()
		if !slices.Equal(got, tc.want) {
			t.Errorf("%+v: published %q, want %q", tc.p, got, tc.want)
		}
		if msgs := tc.p.Unusable(); len(msgs) != tc.unusable {
			t.Errorf("%+v: Unusable %q, want %d messages", tc.p, msgs, tc.unusable)
		}
		if tc.p.NothingUsable() != (len(tc.want) == 0) {
			t.Errorf("%+v: NothingUsable %v", tc.p, tc.p.NothingUsable())
		}
		for _, g := range got {
			if g == "authorization_code" || g == "implicit" || g == "refresh_token" {
				continue // with a response type, below; refresh_token along with another
			}
			method := "client_secret_basic"
			if slices.Equal(tc.p.AuthMethods, []string{AuthNone}) {
				method = AuthNone
			}
			register(t, &tc.p, `{"grant_types":["`+g+`"],"response_types":[],"token_endpoint_auth_method":"`+method+`"}`)
		}
		for _, r := range tc.p.SupportedResponseTypes() {
			grants, _ := json.Marshal(grantsFor([]string{r}))
			if r == "none" && !slices.Contains(got, "authorization_code") {
				grants, _ = json.Marshal(got[len(got)-1:])
			}
			register(t, &tc.p, `{"response_types":["`+r+`"],"grant_types":`+string(grants)+`,"redirect_uris":["https://c.example/cb"]}`)
		}
	}
}

func register(t *testing.T, p *Policy, body string) {
	t.Helper()
	f, err := DecodeObject([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if _, perr := p.ParseMetadata(f); perr != nil {
		t.Errorf("%+v: %s refused: %v", *p, body, perr)
	}
}

// Only JSON's white space surrounds a body (RFC 8259 section 2); a byte
// order mark before it is ignored (section 8.1).
func TestDecodeObjectSpace(t *testing.T) {
	for _, body := range []string{"\uFEFF{}", " \t\r\n{} \n", "\uFEFF \n{}"} {
		if _, err := DecodeObject([]byte(body)); err != nil {
			t.Errorf("%q refused: %v", body, err)
		}
	}
	for _, body := range []string{"\u00a0{}", "{}\u2028", "\v{}", "{}\f", "\u3000{}", "\uFEFF\uFEFF{}", "{}\uFEFF"} {
		if _, err := DecodeObject([]byte(body)); err == nil || err.Code != CodeInvalidRequest {
			t.Errorf("%q: %v, want invalid_request", body, err)
		}
	}
}

// TestLoneSurrogates: an escaped surrogate without its pair, in a member
// that is read, is refused, as invalid UTF-8 is, instead of becoming
// U+FFFD; pairs and other escapes pass, and so does a lone surrogate in a
// member that is ignored (RFC 7591 section 2).
func TestLoneSurrogates(t *testing.T) {
	for body, refused := range map[string]bool{
		`{"client_name":"\ud800"}`:                   true,
		`{"client_name":"a\uDC00b"}`:                 true,
		`{"client_name":"\ud83d\u0041"}`:             true,
		`{"client_name":"\ud83d"}`:                   true,
		`{"client_name":"\ud83d\ude00"}`:             false,
		`{"client_name":"\\ud800"}`:                  false, // an escaped backslash, then text
		`{"client_name":"\"\\\u00e9\n\ud83D\uDE00"}`: false,
		`{"a":"\\","b":"\udfff"}`:                    false,
		`{"x":"\ud800","client_name":"a"}`:           false,
		`{"x":{"\ud800":1},"scope":"a"}`:             false,
		`{"client_name":"\ud800","client_name":"a"}`: false, // the last one counts
		`{"client_name":"a","client_name":"\ud800"}`: true,
		`{"client\u005fname":"\ud800"}`:              true,
		`{"client_name#en\ud800":"a"}`:               true,
		`{"contacts":["a","\udc00"],"x":"\ud800"}`:   true,
		`{"jwks":{"keys":[{"kid":"\ud800"}]}}`:       true,
	} {
		_, err := DecodeObject([]byte(body))
		if (err != nil) != refused {
			t.Errorf("%s: %v, refused %v", body, err, refused)
		}
	}
}

// TestNoneWithClientCredentials: response type none goes with any grant
// type, narrowed policy or not.
func TestNoneWithClientCredentials(t *testing.T) {
	for _, p := range []*Policy{{}, {GrantTypes: []string{"client_credentials", "refresh_token"}}} {
		p.Prepare()
		register(t, p, `{"grant_types":["client_credentials"],"response_types":["none"],"redirect_uris":["https://c.example/cb"]}`)
	}
	// Without grant_types, under a policy without the authorization code
	// grant: the policy's first grant type.
	p := &Policy{GrantTypes: []string{"client_credentials", "refresh_token"}}
	p.Prepare()
	f, _ := DecodeObject([]byte(`{"response_types":["none"],"redirect_uris":["https://c.example/cb"]}`))
	if c, err := p.ParseMetadata(f); err != nil || !slices.Equal(c.GrantTypes, []string{"client_credentials"}) {
		t.Errorf("none alone: %v %v", c, err)
	}
}

// TestNotJSONMessages: a body that is not JSON is described in words of
// our own (not the decoder's, which change with Go versions), with where.
func TestNotJSONMessages(t *testing.T) {
	for body, want := range map[string]string{
		`{`:                      "the request body ends before its JSON value does",
		`{"a":1}x`:               "the request body is not valid JSON at byte 8",
		"\uFEFF  {\"a\":tru}":    "the request body is not valid JSON at byte 14",
		`{"a":"` + "\x01" + `"}`: "the request body is not valid JSON at byte 7",
		"\v{}":                   "the request body is not valid JSON at byte 1",
		"\u00a0{}":               "the request body is not valid JSON at byte 1",
		" client_name=x":         "the request body is not valid JSON at byte 2",
		"[{}]":                   "the request body must be a JSON object",
		"null":                   "the request body must be a JSON object",
		"-1":                     "the request body must be a JSON object",
		`"x`:                     "the request body must be a JSON object",
	} {
		_, err := DecodeObject([]byte(body))
		if err == nil || err.Description != want {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
}

// TestTooDeepAt: the bracket that goes past the limit is found, brackets
// in strings (escaped quotes included) do not count, and a body too deep
// for encoding/json is described as such rather than as invalid.
func TestTooDeepAt(t *testing.T) {
	for _, c := range []struct {
		b     string
		limit int
		want  int
	}{
		{`[[]]`, 2, -1},
		{`[[[]]]`, 2, 2},
		{`{"a":[{"b":[]}]}`, 3, 11},
		{`["[[[[", "\"[[[["]`, 1, -1},
		{`[], [[`, 1, 5},
	} {
		if got := TooDeepAt([]byte(c.b), c.limit); got != c.want {
			t.Errorf("TooDeepAt(%s, %d) = %d, want %d", c.b, c.limit, got, c.want)
		}
	}
	deep := []byte(`{"redirect_uris":["https://c.example/cb"],"x":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`)
	if _, err := DecodeObject(deep); err == nil || !strings.Contains(err.Description, "more than 10000 deep") {
		t.Errorf("10001 levels: %v", err)
	}
	if _, err := DecodeObject([]byte(`{"x":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`)); err != nil {
		t.Errorf("10000 levels: %v", err)
	}
	if _, err := DecodeObject([]byte(`{"x":y,"z":` + strings.Repeat("[", 10001))); err == nil || !strings.Contains(err.Description, "at byte 6") {
		t.Errorf("a syntax error before the depth: %v", err)
	}
}
