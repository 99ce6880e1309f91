package caddydcr

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// TestLoadKeysJWKS: a JWKS key file is read key by key, as a JWKS URL is:
// a key of an unknown type is skipped, not the file; encryption keys are
// not signature keys; the operator's private keys count as public ones.
func TestLoadKeysJWKS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	private, _ := json.Marshal(jose.JSONWebKey{Key: key, KeyID: "k1", Algorithm: "ES256"})
	enc, _ := json.Marshal(jose.JSONWebKey{Key: &key.PublicKey, KeyID: "e", Use: "enc"})
	dir := t.TempDir()
	for _, tc := range []struct {
		body string
		keys int
		err  string
	}{
		{`{"keys":[{"kty":"XYZ"},` + string(private) + `]}`, 1, ""},
		{`{"keys":[` + string(enc) + `]}`, 0, "holds no public signature key"},
		{`{"keys":[{"kty":"oct","k":"AAAA"}]}`, 0, "holds no public signature key"},
	} {
		file := filepath.Join(dir, "k.json")
		if err := os.WriteFile(file, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		keys, err := loadKeys(file)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want %q", tc.body, err, tc.err)
			}
			continue
		}
		if err != nil || len(keys) != tc.keys || !keys[0].IsPublic() {
			t.Errorf("%s: %d keys, %v", tc.body, len(keys), err)
		}
	}
}
