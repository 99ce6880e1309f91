package registry

// Unit tests of credential generation and hashing: formats of the four
// APIs, randomString's alphabet and uniformity (no modulo bias), Hash and
// Verify (X2, X4), registration access tokens (M3).

import (
	"encoding/base64"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestFormats(t *testing.T) {
	for _, tc := range []struct {
		name       string
		f          Format
		id, secret *regexp.Regexp
	}{
		{"rfc7591", FormatRFC7591, regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`), regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)},
		{"iam", FormatIAM, regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`), regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)},
		{"mediagoblin", FormatMediaGoblin, regexp.MustCompile(`^[A-Za-z0-9]{22}$`), regexp.MustCompile(`^[A-Za-z0-9]{43}$`)},
		{"kustvakt", FormatKustvakt, regexp.MustCompile(`^[34679bdfhmnprtFGHJLMNPRT]{22}$`), regexp.MustCompile(`^[A-Za-z0-9_-]{21}[AQgw]$`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 2000
			ids, secrets := map[string]bool{}, map[string]bool{}
			for range n {
				id, sec := tc.f.NewID(), tc.f.NewSecret()
				if !tc.id.MatchString(id) {
					t.Fatalf("id %q does not match %s", id, tc.id)
				}
				if !tc.secret.MatchString(sec) {
					t.Fatalf("secret %q does not match %s", sec, tc.secret)
				}
				ids[id], secrets[sec] = true, true
			}
			if len(ids) != n || len(secrets) != n {
				t.Errorf("S2/S3: %d distinct ids and %d distinct secrets in %d draws", len(ids), len(secrets), n)
			}
		})
	}
	// The RFC 7591 formats carry 128 and 256 random bits.
	if b, err := base64.RawURLEncoding.DecodeString(FormatRFC7591.NewID()); err != nil || len(b) != 16 {
		t.Errorf("rfc7591 id decodes to %d bytes (%v), want 16", len(b), err)
	}
	if b, err := base64.RawURLEncoding.DecodeString(FormatRFC7591.NewSecret()); err != nil || len(b) != 32 {
		t.Errorf("rfc7591 secret decodes to %d bytes (%v), want 32", len(b), err)
	}
}

// chiSquare returns the chi-square statistic of counts against a uniform
// distribution over len(counts) cells.
func chiSquare(counts []int) float64 {
	total := 0
	for _, c := range counts {
		total += c
	}
	exp := float64(total) / float64(len(counts))
	var x float64
	for _, c := range counts {
		d := float64(c) - exp
		x += d * d / exp
	}
	return x
}

// chiLimit is a generous critical value: the mean plus 7 standard
// deviations of a chi-square with df degrees of freedom (false alarm rate
// about 1e-6 for the df used here).
func chiLimit(df int) float64 { return float64(df) + 7*math.Sqrt(2*float64(df)) }

func countChars(t *testing.T, s, alphabet string, counts []int) {
	t.Helper()
	for i := 0; i < len(s); i++ {
		j := strings.IndexByte(alphabet, s[i])
		if j < 0 {
			t.Fatalf("character %q outside the alphabet %q", s[i], alphabet)
		}
		counts[j]++
	}
}

func TestRandomStringAlphabetAndUniformity(t *testing.T) {
	for _, alphabet := range []string{alnum, kustvaktSafe, "abc", "0123456789"} {
		t.Run(alphabet, func(t *testing.T) {
			counts := make([]int, len(alphabet))
			perCell := 8000
			for drawn := 0; drawn < perCell*len(alphabet); drawn += 43 {
				s := randomString(43, alphabet)
				if len(s) != 43 {
					t.Fatalf("len = %d", len(s))
				}
				countChars(t, s, alphabet, counts)
			}
			df := len(alphabet) - 1
			if x := chiSquare(counts); x > chiLimit(df) {
				t.Errorf("chi-square %.1f > %.1f (df %d): not uniform; counts %v", x, chiLimit(df), df, counts)
			}
			// Power check: with the same sample size the statistic rejects
			// a plain modulo draw, the bias randomString must avoid (for 62
			// and 24 characters, 256 is no multiple of the alphabet size).
			if alphabet == alnum || alphabet == kustvaktSafe {
				biased := make([]int, len(alphabet))
				for drawn := 0; drawn < perCell*len(alphabet); drawn += 43 {
					for _, b := range randomBytes(43) {
						biased[int(b)%len(alphabet)]++
					}
				}
				if x := chiSquare(biased); x <= chiLimit(df) {
					t.Errorf("power check: a modulo-biased draw passes (chi-square %.1f <= %.1f); the test is too weak", x, chiLimit(df))
				}
			}
		})
	}
}

func TestRandomStringPositionsUniform(t *testing.T) {
	// Every position, not only the whole string, is uniform: the first and
	// the last character of 22-character Kustvakt ids.
	for _, pos := range []int{0, 21} {
		counts := make([]int, len(kustvaktSafe))
		for range 24 * 1000 {
			countChars(t, FormatKustvakt.NewID()[pos:pos+1], kustvaktSafe, counts)
		}
		if x := chiSquare(counts); x > chiLimit(len(kustvaktSafe)-1) {
			t.Errorf("position %d: chi-square %.1f; counts %v", pos, x, counts)
		}
	}
}

func TestRandomStringLengths(t *testing.T) {
	for _, n := range []int{0, 1, 2, 22, 43, 100, 1000} {
		s := randomString(n, kustvaktSafe)
		if len(s) != n {
			t.Errorf("randomString(%d) has length %d", n, len(s))
		}
		for i := 0; i < len(s); i++ {
			if !strings.Contains(kustvaktSafe, s[i:i+1]) {
				t.Fatalf("randomString(%d) = %q: %q outside the alphabet", n, s, s[i])
			}
		}
	}
	// An alphabet of one character always gives that character.
	if s := randomString(5, "x"); s != "xxxxx" {
		t.Errorf("randomString(5, x) = %q", s)
	}
}

func TestBase64Uniformity(t *testing.T) {
	// The first 21 characters of an rfc7591 id carry 6 bits each, the last
	// one 2 bits: A, Q, g or w. The first is never '-' (an id must not
	// read as an option on a command line).
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	counts := make([]int, 64)
	last := map[byte]int{}
	for range 4000 {
		id := FormatRFC7591.NewID()
		if id[0] == '-' {
			t.Fatalf("id %q starts with '-'", id)
		}
		countChars(t, id[1:21], alphabet, counts)
		last[id[21]]++
	}
	if x := chiSquare(counts); x > chiLimit(63) {
		t.Errorf("chi-square %.1f over base64url characters", x)
	}
	if len(last) != 4 || last['A'] == 0 || last['Q'] == 0 || last['g'] == 0 || last['w'] == 0 {
		t.Errorf("last characters %v, want A, Q, g and w", last)
	}
	// Kustvakt secrets are the same 16-byte base64url form: all four final
	// characters occur, about equally often.
	lastSecret := make([]int, 4)
	for range 4000 {
		countChars(t, FormatKustvakt.NewSecret()[21:], "AQgw", lastSecret)
	}
	if x := chiSquare(lastSecret); x > chiLimit(3) {
		t.Errorf("kustvakt secret final characters A, Q, g, w counted %v", lastSecret)
	}
}

func TestHashVerify(t *testing.T) {
	secret := FormatRFC7591.NewSecret()
	h := Hash(secret)
	if !strings.HasPrefix(h, "sha256:") {
		t.Errorf("Hash = %q, want the sha256: scheme", h)
	}
	if strings.Contains(h, secret) {
		t.Errorf("X2: the hash %q contains the secret", h)
	}
	if Hash(secret) != h {
		t.Error("Hash is not deterministic")
	}
	if Hash(secret+"x") == h {
		t.Error("different secrets hash alike")
	}
	if !Verify(h, secret) {
		t.Error("Verify(Hash(s), s) = false")
	}
	digest := strings.TrimPrefix(h, "sha256:")
	for _, tc := range []struct{ name, hash, presented string }{
		{"wrong secret", h, secret[:42] + "x"},
		{"prefix of the secret", h, secret[:42]},
		{"secret plus a character", h, secret + "a"},
		{"empty secret", h, ""},
		{"empty hash", "", secret},
		{"empty hash and secret", "", ""},
		{"plain text stored", secret, secret},
		{"other scheme", "bcrypt:" + digest, secret},
		{"scheme only", "sha256:", secret},
		{"truncated digest", h[:len(h)-2], secret},
		{"digest not base64url", "sha256:!!!", secret},
		{"padded base64", "sha256:" + base64.URLEncoding.EncodeToString([]byte("x")), secret},
		{"hash presented as secret", h, h},
	} {
		if Verify(tc.hash, tc.presented) {
			t.Errorf("X4: Verify accepts %s", tc.name)
		}
	}
	// The empty string hashes like any other value (never used as a secret).
	if !Verify(Hash(""), "") {
		t.Error("Verify(Hash(\"\"), \"\") = false")
	}
}

func TestRegistrationAccessToken(t *testing.T) {
	id := FormatRFC7591.NewID()
	seen := map[string]bool{}
	for range 100 {
		tok := NewRAT(id)
		random, owner, ok := strings.Cut(tok, ".")
		if !ok || owner != id || !regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`).MatchString(random) {
			t.Fatalf("NewRAT = %q, want 43 random characters, '.', the client id", tok)
		}
		if RATClientID(tok) != id {
			t.Errorf("RATClientID(%q) = %q, want %q", tok, RATClientID(tok), id)
		}
		seen[tok] = true
	}
	if len(seen) != 100 {
		t.Errorf("%d distinct tokens in 100", len(seen))
	}
	for tok, want := range map[string]string{"": "", "nodot": "", "a.": "", ".b": "b", "a.b.c": "c"} {
		if got := RATClientID(tok); got != want {
			t.Errorf("RATClientID(%q) = %q, want %q", tok, got, want)
		}
	}
}

func TestNeedsSecret(t *testing.T) {
	for m, want := range map[string]bool{
		AuthNone: false, AuthPrivateKeyJWT: false, "": false, "bogus": false,
		AuthClientSecretBasic: true, AuthClientSecretPost: true, AuthClientSecretJWT: true,
	} {
		if NeedsSecret(m) != want {
			t.Errorf("S3: NeedsSecret(%q) = %v, want %v", m, !want, want)
		}
	}
}

// A rotated registration access token: the token the update was made with
// is valid again from the delay after the update until it is retired,
// restored or PriorRATLifetime has passed, and a revocation ends both.
func TestRATRotation(t *testing.T) {
	now := time.UnixMilli(1795680000000)
	const delay = 2 * time.Second
	c := &Client{RATHash: Hash("t0")}
	if ok, prior := c.CheckRAT("t0", now); !ok || prior {
		t.Fatalf("t0 before rotation: %v %v", ok, prior)
	}
	c.RotateRAT("t1", "t0", now, delay)
	for _, tc := range []struct {
		tok       string
		at        time.Time
		ok, prior bool
	}{
		{"t1", now, true, false},
		{"t0", now, false, false},
		{"t0", now.Add(delay - time.Millisecond), false, false},
		{"t0", now.Add(delay), true, true},
		{"t0", now.Add(PriorRATLifetime - time.Millisecond), true, true},
		{"t0", now.Add(PriorRATLifetime), false, false},
		{"t1", now.Add(2 * PriorRATLifetime), true, false},
		{"tx", now.Add(delay), false, false},
		{"", now.Add(delay), false, false},
	} {
		if ok, prior := c.CheckRAT(tc.tok, tc.at); ok != tc.ok || prior != tc.prior {
			t.Errorf("CheckRAT(%q, +%v) = %v, %v; want %v, %v", tc.tok, tc.at.Sub(now), ok, prior, tc.ok, tc.prior)
		}
	}
	// Before the prior token is accepted, it is pending (the caller is told
	// to wait, not refused); nothing else is.
	for _, tc := range []struct {
		tok  string
		at   time.Time
		wait time.Duration
	}{
		{"t0", now, delay},
		{"t0", now.Add(delay - time.Millisecond), time.Millisecond},
		{"t0", now.Add(delay), 0},
		{"t1", now, 0},
		{"tx", now, 0},
	} {
		if _, _, got := c.RATState(tc.tok, tc.at); got != tc.wait {
			t.Errorf("RATState(%q, +%v) pending = %v, want %v", tc.tok, tc.at.Sub(now), got, tc.wait)
		}
	}
	later := now.Add(delay)

	retired := *c
	retired.SecretUndelivered = true
	retired.RetirePriorRAT()
	if ok, _ := retired.CheckRAT("t0", later); ok || retired.SecretUndelivered {
		t.Error("t0 accepted, or the secret still undelivered, after RetirePriorRAT")
	}

	restored := *c
	restored.SecretUndelivered = true
	restored.RestorePriorRAT()
	if ok, prior := restored.CheckRAT("t0", now); !ok || prior {
		t.Errorf("t0 after RestorePriorRAT: %v %v, want the current token", ok, prior)
	}
	if ok, _ := restored.CheckRAT("t1", later); ok || !restored.SecretUndelivered {
		t.Error("t1 accepted, or SecretUndelivered dropped, after RestorePriorRAT")
	}

	c.RevokeRATs()
	for _, tok := range []string{"t0", "t1"} {
		if ok, _ := c.CheckRAT(tok, later); ok {
			t.Errorf("%s accepted after RevokeRATs", tok)
		}
	}
}

// TestSecretExpiry: a secret expires after its own lifetime, and never
// after the client's end when the client has a fixed lifetime, whenever it
// was issued (registration, reset, an update that issues one). The end is
// the one the client has once changed: a client_lifetime added since the
// client registered without one does not end a secret issued to it (the
// client itself keeps no end), a lengthened one ends it later.
func TestSecretExpiry(t *testing.T) {
	created := time.Unix(1_800_000_000, 0)
	later := created.Add(30 * time.Minute)
	for _, tc := range []struct {
		ends           time.Duration // the client's end as registered, 0: none
		client, secret time.Duration
		idle           time.Duration
		want           int64
	}{
		{0, 0, 0, 0, 0},
		{0, 0, time.Hour, 0, later.Add(time.Hour).Unix()},
		{time.Hour, time.Hour, 0, 0, created.Add(time.Hour).Unix()},
		{time.Hour, time.Hour, 10 * time.Minute, 0, later.Add(10 * time.Minute).Unix()},
		{time.Hour, time.Hour, 2 * time.Hour, 0, created.Add(time.Hour).Unix()},
		// Added since: the client keeps no end, unless an idle lifetime
		// brings the lifetimes in force to it.
		{0, 10 * time.Minute, 0, 0, 0},
		{0, 10 * time.Minute, time.Hour, 0, later.Add(time.Hour).Unix()},
		{0, 2 * time.Hour, 0, time.Hour, created.Add(2 * time.Hour).Unix()},
		// Lengthened, removed, shortened since.
		{time.Hour, 3 * time.Hour, 0, 0, created.Add(3 * time.Hour).Unix()},
		{time.Hour, 0, 0, 0, 0},
		{time.Hour, 40 * time.Minute, 0, 0, created.Add(time.Hour).Unix()},
		{time.Hour, 40 * time.Minute, 0, time.Hour, created.Add(40 * time.Minute).Unix()},
	} {
		c := &Client{CreatedMs: created.UnixMilli()}
		if tc.ends > 0 {
			c.EndsAt = created.Add(tc.ends).Unix()
		}
		r := &Registry{ClientLifetime: tc.client, IdleLifetime: tc.idle}
		if got := r.SecretExpiry(c, later, tc.secret); got != tc.want {
			t.Errorf("client registered to end after %s, client lifetime %s (idle %s) now, secret lifetime %s: %d, want %d", tc.ends, tc.client, tc.idle, tc.secret, got, tc.want)
		}
	}
}

// TestRegisteredSecretExpiry: the expiry an answer that registers nothing
// (MediaGoblin's HEAD) reports is the one a registration would give.
func TestRegisteredSecretExpiry(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		client, secret time.Duration
		want           int64
	}{
		{0, 0, 0},
		{time.Hour, 0, now.Add(time.Hour).Unix()},
		{time.Hour, time.Minute, now.Add(time.Minute).Unix()},
		{time.Minute, time.Hour, now.Add(time.Minute).Unix()},
	} {
		r := &Registry{ClientLifetime: tc.client}
		if got := r.RegisteredSecretExpiry(&Client{}, now, tc.secret); got != tc.want {
			t.Errorf("client lifetime %s, secret lifetime %s: %d, want %d", tc.client, tc.secret, got, tc.want)
		}
	}
}
