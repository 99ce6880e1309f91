package handler

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-dcr/caddy-dcr/registry"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

// jwksServer serves the current key set and counts the fetches; while down
// is set it answers 503.
type jwksServer struct {
	*httptest.Server
	keys    atomic.Pointer[jose.JSONWebKeySet]
	fetches atomic.Int32
	down    atomic.Bool
	other   atomic.Bool // answers a JSON document that is not a key set
}

func newJWKSServer(t *testing.T, keys ...jose.JSONWebKey) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.keys.Store(&jose.JSONWebKeySet{Keys: keys})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		if s.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if s.other.Load() {
			_, _ = w.Write([]byte(`{"error":"not here"}`))
			return
		}
		_ = json.NewEncoder(w).Encode(s.keys.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

// pastMinInterval pretends the issuer's last JWKS fetch was over
// jwksMinInterval ago, so that the next statement may fetch again.
func pastMinInterval(is *StatementIssuer) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.fetchAt = is.fetchAt.Add(-2 * jwksMinInterval)
}

func ecSigner(t *testing.T, kid string) (*ecdsa.PrivateKey, func(claims map[string]any) string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return key, func(claims map[string]any) string {
		payload, _ := json.Marshal(claims)
		jws, err := sig.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		out, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}

const testIssuer = "https://issuer.example"

func stmtClaims() map[string]any {
	return map[string]any{"iss": testIssuer, "software_id": "app", "exp": time.Now().Unix() + 600}
}

// TestStatementCompactOnly: a software statement is a JWT (RFC 7591
// section 2.3), and JWTs use the JWS compact serialization (RFC 7519
// section 1); the JSON serialization of the same signature is refused.
func TestStatementCompactOnly(t *testing.T) {
	key, sign := ecSigner(t, "k1")
	s := &Statements{Issuers: []*StatementIssuer{{Issuer: testIssuer, Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1"}}}}}
	compact := sign(stmtClaims())
	if _, err := s.Verify(context.Background(), compact); err != nil {
		t.Fatalf("compact: %v", err)
	}
	jws, err := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	full := jws.FullSerialize()
	if _, err := s.Verify(context.Background(), full); err == nil || err.Code != CodeInvalidStatement {
		t.Fatalf("JSON serialization accepted: %v", err)
	}
	// No whitespace in the compact form, a line break included (the
	// base64 decoder would skip it, and the statement is echoed as sent).
	dot := strings.IndexByte(compact, '.')
	for _, bad := range []string{compact[:dot+3] + "\n" + compact[dot+3:], compact + "\r\n", compact[:dot+3] + " " + compact[dot+3:]} {
		if _, err := s.Verify(context.Background(), bad); err == nil || err.Code != CodeInvalidStatement {
			t.Errorf("%q accepted: %v", bad, err)
		}
	}
}

// TestStatementJWKSDown: while an issuer's JWKS URL fails, a statement its
// keys would verify cannot be checked: the registration is answered 503
// with Retry-After (the server's trouble, not the client's error), the
// failure is logged with the URL (its query left out), and registrations
// naming that issuer do not each fetch it again (every fetch may take the
// client's full timeout, under the issuer's lock). A document that is not
// a key set counts as a failed fetch. Once the URL answers, statements
// verify again.
func TestStatementJWKSDown(t *testing.T) {
	key, sign := ecSigner(t, "k1")
	srv := newJWKSServer(t, jose.JSONWebKey{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256"})
	srv.down.Store(true)
	core, logs := observer.New(zap.WarnLevel)
	is := &StatementIssuer{Issuer: testIssuer, JWKSURLs: []string{srv.URL + "/jwks?token=s3cret"}}
	a := benchAPI(t)
	a.o.Statements = &Statements{Issuers: []*StatementIssuer{is}, Logger: zap.New(core)}
	register := func() *httptest.ResponseRecorder {
		body := `{"redirect_uris":["https://client.example.com/cb"],"software_statement":"` + sign(stmtClaims()) + `"}`
		r := httptest.NewRequest("POST", "http://as.example/register", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		a.Serve(w, r)
		return w
	}
	for i := 0; i < 5; i++ {
		w := register()
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" ||
			!strings.Contains(w.Body.String(), `"error":"temporarily_unavailable"`) {
			t.Fatalf("JWKS down: %d %v %s", w.Code, w.Header(), w.Body)
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches of a failing JWKS URL, want 1", n)
	}
	entries := logs.All()
	if len(entries) != 1 || entries[0].ContextMap()["url"] != srv.URL+"/jwks?..." ||
		!strings.Contains(fmt.Sprint(entries[0].ContextMap()["error"]), "503") {
		t.Fatalf("log: %+v", entries)
	}
	if strings.Contains(fmt.Sprint(entries), "s3cret") {
		t.Fatal("the URL's query was logged")
	}

	// Up again, but answering something else than a key set.
	srv.down.Store(false)
	srv.other.Store(true)
	pastMinInterval(is)
	if w := register(); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("JWKS URL answering another document: %d %s", w.Code, w.Body)
	}
	if e := logs.All(); len(e) != 2 || !strings.Contains(fmt.Sprint(e[1].ContextMap()["error"]), "not a JSON Web Key Set") {
		t.Fatalf("log: %+v", e)
	}

	srv.other.Store(false)
	pastMinInterval(is)
	if w := register(); w.Code != http.StatusCreated {
		t.Fatalf("JWKS back: %d %s", w.Code, w.Body)
	}
	// Keys at hand: a statement they do not verify is the client's error,
	// whatever a later fetch does.
	srv.down.Store(true)
	_, forged := ecSigner(t, "k1")
	stmt := forged(stmtClaims())
	if _, err := a.o.Statements.Verify(context.Background(), stmt); err == nil || err.Code != CodeInvalidStatement {
		t.Fatalf("forged statement with a known key id: %v", err)
	}
}

// TestStatementJWKSRotation: a statement signed with a key id the cached
// set does not have makes the issuer's JWKS be fetched again (at most once
// a minute), so a rotated key works without waiting an hour.
func TestStatementJWKSRotation(t *testing.T) {
	key1, sign1 := ecSigner(t, "k1")
	key2, sign2 := ecSigner(t, "k2")
	srv := newJWKSServer(t, jose.JSONWebKey{Key: &key1.PublicKey, KeyID: "k1", Algorithm: "ES256"})
	is := &StatementIssuer{Issuer: testIssuer, JWKSURLs: []string{srv.URL}}
	s := &Statements{Issuers: []*StatementIssuer{is}}
	if _, err := s.Verify(context.Background(), sign1(stmtClaims())); err != nil {
		t.Fatalf("k1: %v", err)
	}
	srv.keys.Store(&jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &key1.PublicKey, KeyID: "k1", Algorithm: "ES256"}, {Key: &key2.PublicKey, KeyID: "k2", Algorithm: "ES256"}}})
	pastMinInterval(is)
	if _, err := s.Verify(context.Background(), sign2(stmtClaims())); err != nil {
		t.Fatalf("rotated key k2: %v", err)
	}
	// An unknown key id right after a fetch does not fetch again.
	_, sign3 := ecSigner(t, "k3")
	before := srv.fetches.Load()
	for i := 0; i < 3; i++ {
		if _, err := s.Verify(context.Background(), sign3(stmtClaims())); err == nil {
			t.Fatal("unknown key verified")
		}
	}
	if n := srv.fetches.Load() - before; n != 0 {
		t.Fatalf("%d fetches for an unknown key id right after a fetch", n)
	}
}

// TestStatementJWKSCancelled: a client that hangs up while the JWKS is
// being fetched does not make the fetch fail for everyone else.
func TestStatementJWKSCancelled(t *testing.T) {
	key, sign := ecSigner(t, "k1")
	srv := newJWKSServer(t, jose.JSONWebKey{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256"})
	s := &Statements{Issuers: []*StatementIssuer{{Issuer: testIssuer, JWKSURLs: []string{srv.URL}}}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	stmt := sign(stmtClaims())
	if _, err := s.Verify(ctx, stmt); err == nil || err.Code != CodeTemporarilyUnavailable {
		t.Fatalf("cancelled request: %v", err)
	}
	if _, err := s.Verify(context.Background(), stmt); err != nil {
		t.Fatalf("after a cancelled request: %v", err)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
}

// TestStatementJWKSSlow: while an issuer's JWKS URL hangs, statements
// that the keys at hand verify do not wait for it, whether the fetch was
// set off by a statement naming an unknown key id or by the keys' age;
// the statement naming the unknown key waits, and verifies once the
// fetch brings the key.
func TestStatementJWKSSlow(t *testing.T) {
	key1, sign1 := ecSigner(t, "k1")
	key2, sign2 := ecSigner(t, "k2")
	k1 := jose.JSONWebKey{Key: &key1.PublicKey, KeyID: "k1", Algorithm: "ES256"}
	k2 := jose.JSONWebKey{Key: &key2.PublicKey, KeyID: "k2", Algorithm: "ES256"}
	var fetches atomic.Int32
	gate := make(chan struct{})
	var keys atomic.Pointer[jose.JSONWebKeySet]
	keys.Store(&jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k1}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fetches.Add(1) > 1 {
			<-gate
		}
		_ = json.NewEncoder(w).Encode(keys.Load())
	}))
	t.Cleanup(srv.Close)
	// Runs before srv.Close, which waits for the hanging handlers.
	var open sync.Once
	release := func() { open.Do(func() { close(gate) }) }
	t.Cleanup(release)
	is := &StatementIssuer{Issuer: testIssuer, JWKSURLs: []string{srv.URL}}
	s := &Statements{Issuers: []*StatementIssuer{is}}
	if _, err := s.Verify(context.Background(), sign1(stmtClaims())); err != nil {
		t.Fatalf("k1: %v", err)
	}
	fetchStarted := func(n int32) {
		t.Helper()
		for i := 0; fetches.Load() < n; i++ {
			if i > 500 {
				t.Fatalf("fetch %d never started", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// verifyK1 must answer while the JWKS URL hangs.
	verifyK1 := func(when string) {
		t.Helper()
		done := make(chan *registry.Error, 1)
		go func() {
			_, err := s.Verify(context.Background(), sign1(stmtClaims()))
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("k1 %s: %v", when, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("k1 %s waits for the hanging JWKS URL", when)
		}
	}

	keys.Store(&jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k1, k2}})
	pastMinInterval(is)
	rotated := make(chan *registry.Error, 1)
	go func() {
		_, err := s.Verify(context.Background(), sign2(stmtClaims()))
		rotated <- err
	}()
	fetchStarted(2)
	verifyK1("during a fetch for an unknown key id")
	select {
	case err := <-rotated:
		t.Fatalf("the statement naming k2 did not wait for the fetch: %v", err)
	default:
	}
	gate <- struct{}{}
	if err := <-rotated; err != nil {
		t.Fatalf("k2 after the fetch: %v", err)
	}

	// Keys past their age are fetched again in the background.
	is.mu.Lock()
	is.fetchAt = is.fetchAt.Add(-2 * jwksMaxAge)
	is.mu.Unlock()
	verifyK1("with old keys")
	fetchStarted(3)
	verifyK1("during a fetch for old keys")
	release()
}

// TestStatementHS256NeedsSecret: an HS256 statement is verified with the
// issuer's secret only, never with the bytes of a public key.
func TestStatementHS256NeedsSecret(t *testing.T) {
	key, _ := ecSigner(t, "k1")
	srv := newJWKSServer(t, jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "oct"})
	s := &Statements{Issuers: []*StatementIssuer{{Issuer: testIssuer, Keys: []jose.JSONWebKey{{Key: &key.PublicKey}}, JWKSURLs: []string{srv.URL}}}}
	sig, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, nil)
	payload, _ := json.Marshal(stmtClaims())
	jws, _ := sig.Sign(payload)
	stmt, _ := jws.CompactSerialize()
	if _, err := s.Verify(context.Background(), stmt); err == nil || err.Code != CodeInvalidStatement {
		t.Fatalf("HS256 with a JWKS oct key: %v", err)
	}
}

// TestStatementTimesAreNumbers: exp, nbf and iat are NumericDates (RFC 7519
// section 2): a string holding a number is refused.
func TestStatementTimesAreNumbers(t *testing.T) {
	key, sign := ecSigner(t, "k1")
	s := &Statements{Issuers: []*StatementIssuer{{Issuer: testIssuer, Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1"}}}}}
	for _, name := range []string{"exp", "nbf", "iat"} {
		for _, v := range []any{strconv.FormatInt(time.Now().Unix()+600, 10), nil} {
			c := stmtClaims()
			c[name] = v
			if _, err := s.Verify(context.Background(), sign(c)); err == nil || !strings.Contains(err.Description, name+" is not a number") {
				t.Errorf("%s = %#v: %v", name, v, err)
			}
		}
	}
}

// TestStatementFractionalExp: an exp with a fraction is past once the
// clock is, within its second too.
func TestStatementFractionalExp(t *testing.T) {
	key, sign := ecSigner(t, "k1")
	s := &Statements{Issuers: []*StatementIssuer{{Issuer: testIssuer, Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1"}}}}}
	c := stmtClaims()
	c["exp"] = float64(time.Now().UnixNano())/1e9 - 0.01
	if _, err := s.Verify(context.Background(), sign(c)); err == nil || !strings.Contains(err.Description, "expired") {
		t.Errorf("exp 10 ms ago: %v", err)
	}
	c["exp"] = float64(time.Now().Unix()) + 1.5
	if _, err := s.Verify(context.Background(), sign(c)); err != nil {
		t.Errorf("exp 1.5 s ahead: %v", err)
	}
}

// TestStatementJWKSKeys: a key set is read key by key (one of an unknown
// type does not spoil the others), encryption keys are not used, and a
// redirect to plain http off this machine is not followed.
func TestStatementJWKSKeys(t *testing.T) {
	key, sign := ecSigner(t, "k1")
	good, _ := json.Marshal(jose.JSONWebKey{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256"})
	private, _ := json.Marshal(jose.JSONWebKey{Key: key, KeyID: "k1", Algorithm: "ES256"})
	enc, _ := json.Marshal(jose.JSONWebKey{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "enc"})
	var body atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/away" {
			http.Redirect(w, r, "http://192.0.2.1/jwks", http.StatusFound)
			return
		}
		_, _ = w.Write([]byte(body.Load().(string)))
	}))
	t.Cleanup(srv.Close)
	stmt := sign(stmtClaims())
	for _, tc := range []struct {
		path, body string
		code       string // "" for a verified statement
	}{
		{"/", `{"keys":[{"kty":"XYZ","crv":"none"},` + string(good) + `]}`, ""},
		{"/", `{"keys":[` + string(enc) + `]}`, CodeInvalidStatement},
		// Published, anyone's to sign with: the set is refused, and the
		// operator told.
		{"/", `{"keys":[` + string(good) + `,` + string(private) + `]}`, CodeTemporarilyUnavailable},
		{"/away", ``, CodeTemporarilyUnavailable},
	} {
		body.Store(tc.body)
		core, logs := observer.New(zap.WarnLevel)
		s := &Statements{Issuers: []*StatementIssuer{{Issuer: testIssuer, JWKSURLs: []string{srv.URL + tc.path}}}, Logger: zap.New(core)}
		_, err := s.Verify(context.Background(), stmt)
		if code := ""; err != nil {
			code = err.Code
			if code != tc.code {
				t.Errorf("%s %s: %v, want %q", tc.path, tc.body, err, tc.code)
			}
		} else if tc.code != "" {
			t.Errorf("%s %s: verified, want %q", tc.path, tc.body, tc.code)
		}
		if strings.Contains(tc.body, `"d"`) && !strings.Contains(fmt.Sprint(logs.All()), `publishes a private key (kid "k1")`) {
			t.Errorf("private key not logged: %v", logs.All())
		}
	}
}

// TestStatementPrecedenceAllLanguages: a statement's client_name takes
// precedence over the body's client_name#en too; and an update may echo
// the statement it registered with after the statement's exp.
func TestStatementPrecedenceAllLanguages(t *testing.T) {
	key, sign := ecSigner(t, "k1")
	now := time.Now()
	a := benchAPI(t)
	// A store that keeps updates (benchAPI's does not).
	a.o.Registry = registry.New(storage.NewEmbeddedStore(&certmagic.FileStorage{Path: t.TempDir()}, "st"))
	a.o.Statements = &Statements{Issuers: []*StatementIssuer{{Issuer: testIssuer, Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1"}}}},
		Now: func() time.Time { return now }}
	c := stmtClaims()
	c["client_name"] = "Good App"
	c["exp"] = now.Unix() + 60
	stmt := sign(c)
	body := `{"redirect_uris":["https://client.example.com/cb"],"client_name#en":"Evil","client_name":"Evil","software_statement":"` + stmt + `"}`
	r := httptest.NewRequest("POST", "http://as.example/register", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	a.Serve(w, r)
	if w.Code != http.StatusCreated || strings.Contains(w.Body.String(), "Evil") || !strings.Contains(w.Body.String(), `"client_name":"Good App"`) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var got map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &got)
	id, rat := got["client_id"].(string), got["registration_access_token"].(string)

	now = now.Add(2 * time.Minute) // past the statement's exp
	put := func(stmt string) int {
		b := `{"client_id":"` + id + `","redirect_uris":["https://client.example.com/cb"],"software_statement":"` + stmt + `"}`
		r := httptest.NewRequest("PUT", "http://as.example/register/"+id, strings.NewReader(b))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+rat)
		w := httptest.NewRecorder()
		a.Serve(w, r)
		if w.Code == http.StatusOK {
			_ = json.Unmarshal(w.Body.Bytes(), &got)
			rat = got["registration_access_token"].(string)
		}
		return w.Code
	}
	if code := put(stmt); code != http.StatusOK {
		t.Errorf("update echoing the registered statement past its exp: %d", code)
	}
	c["exp"] = now.Unix() - 1
	if code := put(sign(c)); code != http.StatusBadRequest {
		t.Errorf("update with another, expired statement: %d", code)
	}
}

// TestStatementAudience: a statement with an aud claim must name this
// server (RFC 7519 section 4.1.3): its issuer, with or without a trailing
// slash, or its registration endpoint. One made out to another server is
// refused, so it cannot be replayed here; one without aud is for anyone.
func TestStatementAudience(t *testing.T) {
	key, sign := ecSigner(t, "k1")
	a := benchAPI(t)
	a.o.Statements = &Statements{Issuers: []*StatementIssuer{{Issuer: testIssuer, Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1"}}}}}
	for _, tc := range []struct {
		aud  any
		want int
	}{
		{nil, http.StatusCreated}, // no aud claim at all
		{"http://as.example", http.StatusCreated},
		{"http://as.example/", http.StatusCreated},
		{"http://as.example/register", http.StatusCreated},
		{[]string{"https://other.example", "http://as.example"}, http.StatusCreated},
		{"https://other.example", http.StatusBadRequest},
		{"http://AS.example", http.StatusBadRequest}, // StringOrURI: compared as strings
		{"http://as.example/other", http.StatusBadRequest},
		{[]string{"https://other.example"}, http.StatusBadRequest},
		{[]string{}, http.StatusBadRequest},
		{"", http.StatusBadRequest},
		{42, http.StatusBadRequest},
		{[]any{"http://as.example", 1}, http.StatusBadRequest},
		{json.RawMessage("null"), http.StatusBadRequest},
	} {
		c := stmtClaims()
		if tc.aud != nil {
			c["aud"] = tc.aud
		}
		body := `{"redirect_uris":["https://client.example.com/cb"],"software_statement":"` + sign(c) + `"}`
		r := httptest.NewRequest("POST", "http://as.example/register", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		a.Serve(w, r)
		if w.Code != tc.want || (tc.want == http.StatusBadRequest && !strings.Contains(w.Body.String(), `"error":"invalid_software_statement"`)) {
			t.Errorf("aud %v: %d %s, want %d", tc.aud, w.Code, w.Body, tc.want)
		}
	}
	// A configured issuer is the name that counts, whatever the Host.
	a.o.Issuer = "https://login.example/oauth"
	c := stmtClaims()
	c["aud"] = "https://login.example/oauth"
	r := httptest.NewRequest("POST", "http://10.0.0.1/register", strings.NewReader(`{"redirect_uris":["https://client.example.com/cb"],"software_statement":"`+sign(c)+`"}`))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	a.Serve(w, r)
	if w.Code != http.StatusCreated {
		t.Fatalf("aud naming the configured issuer: %d %s", w.Code, w.Body)
	}
	c["aud"] = "http://10.0.0.1"
	r = httptest.NewRequest("POST", "http://10.0.0.1/register", strings.NewReader(`{"redirect_uris":["https://client.example.com/cb"],"software_statement":"`+sign(c)+`"}`))
	r.Header.Set("Content-Type", "application/json")
	w = httptest.NewRecorder()
	a.Serve(w, r)
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `it must name this server's issuer, 'https://login.example/oauth'`) {
		t.Fatalf("aud naming the Host, not the configured issuer: %d %s", w.Code, w.Body)
	}
	// An issuer the config writes otherwise than it is published (in
	// normal form): a statement made out to either is for this server.
	a.o.Issuer, a.o.IssuerWritten = NormalURL("https://Login.Example:443/oauth"), "https://Login.Example:443/oauth"
	for _, aud := range []string{"https://login.example/oauth", "https://Login.Example:443/oauth", "https://Login.Example:443/oauth/register"} {
		c["aud"] = aud
		r = httptest.NewRequest("POST", "http://10.0.0.1/register", strings.NewReader(`{"redirect_uris":["https://client.example.com/cb"],"software_statement":"`+sign(c)+`"}`))
		r.Header.Set("Content-Type", "application/json")
		w = httptest.NewRecorder()
		a.Serve(w, r)
		if w.Code != http.StatusCreated {
			t.Errorf("aud %s with the issuer written otherwise than published: %d %s", aud, w.Code, w.Body)
		}
	}
}

// TestStatementSoftwareIDOfAnotherIssuer: a software_id one trusted
// issuer's list approves is vouched for only by that issuer's statements;
// another trusted issuer (one without a list, say) cannot claim it.
func TestStatementSoftwareIDOfAnotherIssuer(t *testing.T) {
	key, sign := ecSigner(t, "k1")
	s := &Statements{Issuers: []*StatementIssuer{
		{Issuer: testIssuer, Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1"}}},
		{Issuer: "https://vetted.example", SoftwareIDs: []string{"bank-app"}},
	}}
	claims := stmtClaims()
	if _, err := s.Verify(context.Background(), sign(claims)); err != nil {
		t.Fatalf("an id no list approves: %v", err)
	}
	claims["software_id"] = "bank-app"
	if _, err := s.Verify(context.Background(), sign(claims)); err == nil || err.Code != CodeUnapprovedStatement {
		t.Fatalf("another issuer's approved id: %v, want %s", err, CodeUnapprovedStatement)
	}
}

// TestStatementCritical: a statement whose header marks an extension
// critical is refused as such (RFC 7515 section 4.1.11), not as a
// signature that does not verify.
func TestStatementCritical(t *testing.T) {
	key, _ := ecSigner(t, "k1")
	s := &Statements{Issuers: []*StatementIssuer{{Issuer: testIssuer, Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1"}}}}}
	opts := (&jose.SignerOptions{}).WithHeader("crit", []string{"x-ext"}).WithHeader("x-ext", true)
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(stmtClaims())
	jws, err := sig.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	stmt, _ := jws.CompactSerialize()
	if _, verr := s.Verify(context.Background(), stmt); verr == nil || verr.Code != CodeInvalidStatement || !strings.Contains(verr.Description, "(crit)") {
		t.Fatalf("crit: %v", verr)
	}
}

// TestLoggableURL: a JWKS URL is logged without its query or fragment
// (a token may be there) and with its password masked.
func TestLoggableURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://i.example/jwks":                  "https://i.example/jwks",
		"https://i.example/jwks?token=SECRET":     "https://i.example/jwks?...",
		"https://i.example/jwks#SECRET":           "https://i.example/jwks#...",
		"http://u:SECRET@127.0.0.1:1/jwks":        "http://u:xxxxx@127.0.0.1:1/jwks",
		"http://u:SECRET@i.example/jwks?t=SECRET": "http://u:xxxxx@i.example/jwks?...",
		"http://u@i.example/jwks":                 "http://u@i.example/jwks",
	} {
		if got := loggableURL(in); got != want || strings.Contains(got, "SECRET") {
			t.Errorf("loggableURL(%q) = %q, want %q", in, got, want)
		}
	}
}
