package registry

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
)

// Format says how one API's client ids and secrets look. Every generator
// draws from crypto/rand without modulo bias.
type Format struct {
	NewID     func() string
	NewSecret func() string
}

const (
	alnum        = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	kustvaktSafe = "34679bdfhmnprtFGHJLMNPRT"
)

// Formats of the four APIs.
var (
	// RFC 7591 (and IAM): 128-bit ids and 256-bit secrets, base64url.
	FormatRFC7591 = Format{NewID: func() string { return randomID(16) }, NewSecret: func() string { return randomBase64(32) }}
	// MediaGoblin: 22 and 43 characters of [A-Za-z0-9], as its random_string.
	FormatMediaGoblin = Format{NewID: func() string { return randomString(22, alnum) }, NewSecret: func() string { return randomString(43, alnum) }}
	// Kustvakt: ids of 22 characters from its "filtered" alphabet; secrets
	// are the base64url form of a 16-byte digest, so 21 characters then one
	// of A, Q, g, w.
	FormatKustvakt = Format{NewID: func() string { return randomString(22, kustvaktSafe) }, NewSecret: func() string { return randomBase64(16) }}
	FormatIAM      = FormatRFC7591
)

// FormatOf is the format of the clients registered through api: a secret
// another API issues to such a client (a Kustvakt reset) keeps the length
// its own API gives, which a client_secret_jwt client of RFC 7591 needs
// for HS256 (RFC 7518 section 3.2: a key of at least 256 bits).
func FormatOf(api string) Format {
	switch api {
	case APIMediaGoblin:
		return FormatMediaGoblin
	case APIKustvakt:
		return FormatKustvakt
	default:
		return FormatRFC7591
	}
}

// NewRAT returns a registration access token for a client: 256 random bits,
// base64url, then "." and the client id. The id lets the server find and
// revoke a token that is presented for another client (RFC 7592 section 2.1).
func NewRAT(clientID string) string {
	var raw [32]byte
	randomFill(raw[:])
	var buf [128]byte
	b := buf[:0]
	if n := base64.RawURLEncoding.EncodedLen(len(raw)) + 1 + len(clientID); n > len(buf) {
		b = make([]byte, 0, n)
	}
	b = base64.RawURLEncoding.AppendEncode(b, raw[:])
	b = append(b, '.')
	b = append(b, clientID...)
	return string(b)
}

// RATClientID returns the client id a registration access token was issued
// for, or "".
func RATClientID(token string) string {
	i := strings.LastIndexByte(token, '.')
	if i < 0 {
		return ""
	}
	return token[i+1:]
}

// randomFill fills b from crypto/rand.
func randomFill(b []byte) {
	// crypto/rand.Read never returns an error on supported platforms (Go 1.24+).
	_, _ = rand.Read(b)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	randomFill(b)
	return b
}

// randomBase64 returns n random bytes, base64url without padding.
func randomBase64(n int) string {
	var raw [64]byte
	var out [88]byte
	if n > len(raw) {
		return base64.RawURLEncoding.EncodeToString(randomBytes(n))
	}
	randomFill(raw[:n])
	return string(base64.RawURLEncoding.AppendEncode(out[:0], raw[:n]))
}

// randomID is randomBase64 for ids, drawn again when it starts with '-'
// (1 in 64): an id is typed as an argument (caddy client-registration
// delete <id>), where a leading '-' reads as an option. The other
// characters stay uniform; the first loses one of its 64 values.
func randomID(n int) string {
	for {
		if id := randomBase64(n); id[0] != '-' {
			return id
		}
	}
}

// randomString draws n characters uniformly from alphabet (at most 256
// characters) by rejection sampling: bytes at or above the largest multiple
// of len(alphabet) are discarded, so every character is equally likely.
func randomString(n int, alphabet string) string {
	limit := 256 - 256%len(alphabet)
	var outBuf [64]byte
	var randBuf [96]byte
	out := outBuf[:0]
	if n > len(outBuf) {
		out = make([]byte, 0, n)
	}
	var buf []byte
	if m := n + n/2; m <= len(randBuf) {
		buf = randBuf[:m]
		randomFill(buf)
	} else {
		buf = randomBytes(m)
	}
	for len(out) < n {
		for _, b := range buf {
			if int(b) < limit {
				out = append(out, alphabet[int(b)%len(alphabet)])
				if len(out) == n {
					break
				}
			}
		}
		if n <= len(randBuf) {
			buf = randBuf[:n]
			randomFill(buf)
		} else {
			buf = randomBytes(n)
		}
	}
	return string(out)
}

const hashScheme = "sha256:"

// Hash returns the form in which a secret or token is stored. Every secret
// and token this server issues carries at least 128 bits from crypto/rand,
// so a fast cryptographic hash is enough: there is nothing to brute-force.
func Hash(secret string) string {
	sum := sum256(secret)
	var buf [len(hashScheme) + 43]byte
	b := append(buf[:0], hashScheme...)
	return string(base64.RawURLEncoding.AppendEncode(b, sum[:]))
}

// sum256 is sha256.Sum256 of a string, without a heap copy of short ones.
func sum256(s string) [sha256.Size]byte {
	var buf [256]byte
	if len(s) <= len(buf) {
		return sha256.Sum256(append(buf[:0], s...))
	}
	return sha256.Sum256([]byte(s))
}

// Verify compares a presented secret with a stored hash in constant time.
func Verify(hash, presented string) bool {
	if hash == "" || !strings.HasPrefix(hash, hashScheme) {
		return false
	}
	enc := hash[len(hashScheme):]
	var want [sha256.Size]byte
	var src [64]byte
	if len(enc) > len(src) || base64.RawURLEncoding.DecodedLen(len(enc)) > len(want) {
		// Not a hash this server wrote; decode it the general way.
		w, err := base64.RawURLEncoding.DecodeString(enc)
		if err != nil {
			return false
		}
		got := sum256(presented)
		return subtle.ConstantTimeCompare(w, got[:]) == 1
	}
	n, err := base64.RawURLEncoding.Decode(want[:], append(src[:0], enc...))
	if err != nil {
		return false
	}
	got := sum256(presented)
	return subtle.ConstantTimeCompare(want[:n], got[:]) == 1
}
