package handler

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/registry"
)

// Software statements (RFC 7591 section 2.3) are JWS-signed sets of client
// metadata from an issuer the operator trusts. They are verified with
// go-jose (github.com/go-jose/go-jose/v4) and only with the algorithms
// below: "none" and every other algorithm are refused.
var statementAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA, jose.HS256}

// Error codes of RFC 7591 section 3.2.2 for software statements.
const (
	CodeInvalidStatement    = "invalid_software_statement"
	CodeUnapprovedStatement = "unapproved_software_statement"
)

// StatementIssuer is a trusted issuer of software statements.
type StatementIssuer struct {
	// Issuer is the statement's "iss".
	Issuer string
	// Keys verify RS256, ES256 and EdDSA statements.
	Keys []jose.JSONWebKey
	// JWKSURLs are fetched (and cached for an hour) for more keys.
	JWKSURLs []string
	// Secret verifies HS256 statements.
	Secret []byte
	// SoftwareIDs, when not empty, are the only software_id values
	// approved; a verified statement for another one is unapproved.
	SoftwareIDs []string

	mu      sync.Mutex
	fetched []jose.JSONWebKey
	// fetchAt is the last fetch, successful or not; fetchFailed says
	// whether it failed.
	fetchAt     time.Time
	fetchFailed bool
	// fetching, while a fetch is under way, is closed when it ends.
	fetching chan struct{}
}

// How often the JWKS URLs are fetched: the keys are kept for jwksMaxAge;
// a statement whose key id they lack (a rotated key) or a failed fetch
// makes them be fetched again, but not before jwksMinInterval, so that
// statements naming the issuer cannot make the server fetch on every
// request (each fetch may take the client's whole timeout).
const (
	jwksMaxAge      = time.Hour
	jwksMinInterval = time.Minute
	jwksTimeout     = 10 * time.Second
)

// Statements verifies software statements for the RFC 7591 API.
type Statements struct {
	Issuers []*StatementIssuer
	// Required makes a software statement mandatory.
	Required bool
	// Client fetches JWKS URLs; nil means a client with a 10s timeout.
	Client *http.Client
	// Now is the clock for exp and nbf.
	Now func() time.Time
	// Logger, when set, is told of JWKS URLs that cannot be fetched.
	Logger *zap.Logger
}

// CodeTemporarilyUnavailable is the OAuth error of a 503: the store is
// down, or a statement cannot be checked for now (its issuer's keys could
// not be fetched), which is the server's trouble, not the client's
// mistake.
const CodeTemporarilyUnavailable = "temporarily_unavailable"

func statementErr(code, format string, a ...any) *registry.Error {
	return &registry.Error{Code: code, Description: fmt.Sprintf(format, a...)}
}

// Verify checks a statement and returns its claims. audiences are the
// names this server goes by (its issuer, its registration endpoint): a
// statement with an "aud" claim must name one of them.
func (s *Statements) Verify(ctx context.Context, stmt string, audiences ...string) (registry.Fields, *registry.Error) {
	return s.verify(ctx, stmt, false, audiences)
}

// verify is Verify; with registered, the statement is the one the client
// registered with, echoed back on an update as RFC 7592 section 2.2 asks:
// its expiry is not held against it (the client would otherwise be unable
// to update once it passed), everything else is checked again.
func (s *Statements) verify(ctx context.Context, stmt string, registered bool, audiences []string) (registry.Fields, *registry.Error) {
	// A software statement is a JWT (RFC 7591 section 2.3), and a JWT is in
	// the compact serialization (RFC 7519 section 1): ParseSigned would
	// also take the JSON serialization, with unprotected headers.
	// The compact serialization has no whitespace (RFC 7515 section 7.1);
	// the base64 decoder would skip a CR or LF and accept the statement,
	// which is then echoed as sent, to parsers that refuse it.
	jws, err := jose.ParseSignedCompact(stmt, statementAlgorithms)
	if err != nil || strings.ContainsAny(stmt, " \t\r\n") {
		return nil, statementErr(CodeInvalidStatement, "the software statement is not a JWT (JWS compact serialization) signed with RS256, ES256, EdDSA or HS256")
	}
	if len(jws.Signatures) != 1 {
		return nil, statementErr(CodeInvalidStatement, "the software statement must carry exactly one signature")
	}
	// A recipient must refuse a JWS whose "crit" names an extension it does
	// not understand (RFC 7515 section 4.1.11): this server understands
	// none. go-jose refuses it too, but as a signature that does not
	// verify, which would send the issuer looking at its keys.
	if _, crit := jws.Signatures[0].Protected.ExtraHeaders["crit"]; crit {
		return nil, statementErr(CodeInvalidStatement, "the software statement's header marks extensions critical (crit); this server understands none")
	}
	claims, ferr := registry.DecodeObject(jws.UnsafePayloadWithoutVerification())
	if ferr != nil {
		return nil, statementErr(CodeInvalidStatement, "the software statement's payload is not a JSON object")
	}
	iss, _, _ := claims.String("iss")
	if iss == "" {
		return nil, statementErr(CodeInvalidStatement, "the software statement has no issuer (iss)")
	}
	i := slices.IndexFunc(s.Issuers, func(x *StatementIssuer) bool { return x.Issuer == iss })
	if i < 0 {
		return nil, statementErr(CodeInvalidStatement, "the software statement's issuer %s is not trusted", quoteValue(iss))
	}
	issuer := s.Issuers[i]
	if ok, unchecked := issuer.verify(ctx, s.client(), s.Logger, jws); !ok {
		if unchecked {
			// Perhaps a good statement: the keys that could say so are
			// out of reach. The server's trouble, not the client's error.
			return nil, statementErr(CodeTemporarilyUnavailable, "the keys of the software statement's issuer cannot be fetched now; try again later")
		}
		return nil, statementErr(CodeInvalidStatement, "the software statement's signature does not verify")
	}
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	// NumericDate is a JSON number (RFC 7519 section 2); json.Number alone
	// would also take a string holding one.
	times := map[string]float64{}
	for _, name := range []string{"exp", "nbf", "iat"} {
		raw, ok := claims[name]
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || raw[0] == '"' {
			return nil, statementErr(CodeInvalidStatement, "the software statement's %s is not a number", name)
		}
		times[name] = v
	}
	// The time with its fraction: an exp of 1000.5 is past at 1000.9.
	if exp, ok := times["exp"]; ok && !registered && float64(now.UnixNano())/1e9 >= exp {
		return nil, statementErr(CodeInvalidStatement, "the software statement has expired")
	}
	if nbf, ok := times["nbf"]; ok && float64(now.Unix())+60 < nbf {
		return nil, statementErr(CodeInvalidStatement, "the software statement is not valid yet")
	}
	if aerr := checkAudience(claims, audiences); aerr != nil {
		return nil, aerr
	}
	id, _, _ := claims.String("software_id")
	if len(issuer.SoftwareIDs) > 0 && !slices.Contains(issuer.SoftwareIDs, id) {
		return nil, statementErr(CodeUnapprovedStatement, "the software %s is not approved by this server", quoteValue(id))
	}
	// An id another issuer's list approves is that issuer's to vouch for:
	// an issuer without a list (or a weaker key) must not pass software
	// off as the approved one.
	if id != "" && !slices.Contains(issuer.SoftwareIDs, id) && slices.ContainsFunc(s.Issuers, func(o *StatementIssuer) bool {
		return o != issuer && slices.Contains(o.SoftwareIDs, id)
	}) {
		return nil, statementErr(CodeUnapprovedStatement, "the software %s is approved only in statements of the issuer that lists it", quoteValue(id))
	}
	return claims, nil
}

// checkAudience refuses a statement whose "aud" claim names none of
// audiences: RFC 7519 section 4.1.3 has a JWT rejected by a recipient that
// its aud leaves out, and a statement made out to another server must not
// be replayed here. A statement without aud is meant for any server, as
// a publisher's statements usually are. Values are compared as strings
// (StringOrURI, RFC 7519 section 2), except that a trailing slash
// does not matter.
func checkAudience(claims registry.Fields, audiences []string) *registry.Error {
	if _, ok := claims["aud"]; !ok {
		return nil
	}
	// A single audience may be a string rather than an array of one; null
	// is neither.
	var auds []string
	one, present, serr := claims.String("aud")
	if serr != nil {
		auds, _, serr = claims.Strings("aud")
	} else if present {
		auds = []string{one}
	}
	if serr != nil || auds == nil {
		return statementErr(CodeInvalidStatement, "the software statement's aud is not a string or an array of strings")
	}
	for _, a := range auds {
		for _, mine := range audiences {
			if mine != "" && strings.TrimSuffix(a, "/") == strings.TrimSuffix(mine, "/") {
				return nil
			}
		}
	}
	if len(audiences) == 0 {
		return statementErr(CodeInvalidStatement, "the software statement is made out to another audience (aud)")
	}
	return statementErr(CodeInvalidStatement, "the software statement is made out to another audience (aud): it must name this server's issuer, %s", quoteValue(audiences[0]))
}

func quoteValue(s string) string {
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return `"` + s + `"`
}

func (s *Statements) client() *http.Client {
	if s.Client != nil {
		return s.Client
	}
	return &http.Client{Timeout: jwksTimeout, CheckRedirect: jwksRedirect}
}

// jwksRedirect follows a JWKS URL's redirects only where the URL itself
// could point (https, or http on loopback), a few times: keys that a
// redirect brings over plain http could be swapped on the way.
func jwksRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 3 {
		return errors.New("too many redirects")
	}
	// Plain http on loopback only from a URL on loopback: a remote https
	// URL must not reach into this machine's services.
	if u := req.URL; !strings.EqualFold(u.Scheme, "https") &&
		!(strings.EqualFold(u.Scheme, "http") && registry.IsLoopbackHost(u.Hostname()) && registry.IsLoopbackHost(via[0].URL.Hostname())) {
		return errors.New("a JWKS URL may redirect to https only (http on loopback, from loopback)")
	}
	return nil
}

// verify tries the issuer's keys that fit the statement's algorithm. When
// none verifies it, unchecked reports that the keys may be incomplete: the
// last fetch of the issuer's JWKS URLs failed and no key the statement
// names was at hand.
func (is *StatementIssuer) verify(ctx context.Context, client *http.Client, log *zap.Logger, jws *jose.JSONWebSignature) (ok, unchecked bool) {
	h := jws.Signatures[0].Header
	if h.Algorithm == string(jose.HS256) {
		if len(is.Secret) == 0 {
			return false, false
		}
		_, err := jws.Verify(is.Secret)
		return err == nil, false
	}
	keys, known, failed := is.keys(ctx, client, log, h.KeyID)
	for _, k := range keys {
		if h.KeyID != "" && k.KeyID != "" && h.KeyID != k.KeyID {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != h.Algorithm {
			continue
		}
		if _, err := jws.Verify(k.Key); err == nil {
			return true, false
		}
	}
	return false, failed && !(known && h.KeyID != "")
}

// keys returns the configured keys and those of the JWKS URLs, whether
// one of them has the key id kid, and whether the last fetch of the URLs
// failed.
//
// The URLs are fetched when the keys are older than jwksMaxAge, or when a
// statement names a key id they lack (a rotated key), but never twice
// within jwksMinInterval, and one fetch at a time, in the background: a
// slow or hanging JWKS URL must not hold up the statements that the keys
// at hand verify. Only a statement those keys cannot speak for (the first
// fetch has not ended, none of them has its key id, or the URLs never gave
// a key) waits for the fetch under way, until its own request ends. A
// failed fetch keeps the previous keys, and is logged.
func (is *StatementIssuer) keys(ctx context.Context, client *http.Client, log *zap.Logger, kid string) (keys []jose.JSONWebKey, known, failed bool) {
	if len(is.JWKSURLs) == 0 {
		return is.Keys, hasKeyID(is.Keys, kid), false
	}
	is.mu.Lock()
	keys, known = is.current(kid)
	failed = is.fetchFailed
	age := time.Since(is.fetchAt)
	needed := is.fetchAt.IsZero() || is.fetched == nil || kid != "" && !known
	if is.fetching == nil && (is.fetchAt.IsZero() || age > jwksMaxAge || needed && age > jwksMinInterval) {
		is.fetching = make(chan struct{})
		go is.fetch(client, log, is.fetching)
	}
	wait := is.fetching
	is.mu.Unlock()
	if wait == nil || !needed {
		return keys, known, failed
	}
	select {
	case <-wait:
	case <-ctx.Done():
		// The client is gone; the fetch goes on for the next statements.
		return keys, known, true
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	keys, known = is.current(kid)
	return keys, known, is.fetchFailed
}

// current is the issuer's keys at hand, and whether one has the key id
// kid; is.mu is held.
func (is *StatementIssuer) current(kid string) ([]jose.JSONWebKey, bool) {
	keys := append(slices.Clone(is.Keys), is.fetched...)
	return keys, hasKeyID(keys, kid)
}

// fetch fetches the issuer's JWKS URLs and keeps their keys, then closes
// done. It is not bound to any request: its result serves every later
// statement.
func (is *StatementIssuer) fetch(client *http.Client, log *zap.Logger, done chan struct{}) {
	defer close(done)
	ctx, cancel := context.WithTimeout(context.Background(), jwksTimeout)
	defer cancel()
	var all []jose.JSONWebKey
	ok := true
	for _, u := range is.JWKSURLs {
		set, err := fetchJWKS(ctx, client, u)
		if err != nil {
			ok = false
			if log != nil {
				log.Warn("cannot fetch a software statement issuer's JWKS: statements signed with its keys are answered 503 until it can be",
					zap.String("issuer", is.Issuer), zap.String("url", loggableURL(u)), zap.Error(err))
			}
			continue
		}
		all = append(all, set.Keys...)
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	if ok || is.fetched == nil {
		is.fetched = all
	}
	is.fetchAt = time.Now()
	is.fetchFailed = !ok
	is.fetching = nil
}

// loggableURL is a URL for the log: its query (or fragment) may carry a
// token, and its user information a password, so the one is cut and the
// other masked.
func loggableURL(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i+1] + "..."
	}
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

func hasKeyID(keys []jose.JSONWebKey, kid string) bool {
	return slices.ContainsFunc(keys, func(k jose.JSONWebKey) bool { return k.KeyID == kid })
}

func fetchJWKS(ctx context.Context, client *http.Client, u string) (*jose.JSONWebKeySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which the caller names
		}
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New("answered " + resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	// Another document (a login page, an error in JSON) is a failed fetch,
	// not an issuer without keys.
	var set struct {
		Keys json.RawMessage `json:"keys"`
	}
	if json.Unmarshal(b, &set) != nil || !strings.HasPrefix(string(set.Keys), "[") {
		return nil, errors.New("the answer is not a JSON Web Key Set (no \"keys\" array)")
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(set.Keys, &raw); err != nil {
		return nil, fmt.Errorf("decoding the JWKS: %w", err)
	}
	// A private key published at a URL is anyone's to sign with: the set is
	// not trusted, and the fetch fails so that the operator hears of it
	// (a JWKS must hold public keys only).
	keys, kid, private := verificationKeys(raw, false)
	if private {
		return nil, fmt.Errorf("the JWKS publishes a private key (kid %q), which anyone can sign with: none of its keys is used", kid)
	}
	return &jose.JSONWebKeySet{Keys: keys}, nil
}

// DecodeVerificationKeys reads a JSON Web Key Set key by key: a key of a
// type or curve this server does not know is ignored (RFC 7517 section 5),
// not the whole set, and so are encryption keys (use "enc") and symmetric
// ones. A private key counts as its public half with keepPrivate (a key
// file of the operator's), and is dropped otherwise.
func DecodeVerificationKeys(b []byte, keepPrivate bool) ([]jose.JSONWebKey, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	keys, _, _ := verificationKeys(raw.Keys, keepPrivate)
	return keys, nil
}

// verificationKeys is DecodeVerificationKeys on the members of a "keys"
// array; it also reports whether one is an asymmetric private key (an RSA,
// EC or OKP key with its "d"), and the first such key's id.
func verificationKeys(raw []json.RawMessage, keepPrivate bool) (keys []jose.JSONWebKey, privateKID string, private bool) {
	for _, kr := range raw {
		var k jose.JSONWebKey
		if k.UnmarshalJSON(kr) != nil {
			continue
		}
		switch k.Key.(type) {
		case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
			if !private {
				privateKID, private = k.KeyID, true
			}
		}
		if vk, ok := VerificationKey(k, keepPrivate); ok {
			keys = append(keys, vk)
		}
	}
	return keys, privateKID, private
}

// VerificationKey returns the public signature key k stands for, or false:
// not an encryption key (use "enc") or a symmetric one, and a private key
// only with keepPrivate, as its public half.
func VerificationKey(k jose.JSONWebKey, keepPrivate bool) (jose.JSONWebKey, bool) {
	if k.Use == "enc" {
		return k, false
	}
	if !k.IsPublic() {
		if !keepPrivate {
			return k, false
		}
		k = k.Public()
	}
	return k, k.Key != nil
}

// applyStatement handles the software_statement member of a registration
// or update: with statements configured, a valid statement's claims replace
// the plain members (RFC 7591 section 2.3) and the statement is kept to be
// echoed unmodified; without, the member is ignored.
func (o *Options) applyStatement(r *http.Request, f registry.Fields, stored string) (stmt string, err *registry.Error) {
	s := o.Statements
	raw, present := f["software_statement"]
	if s == nil || len(s.Issuers) == 0 {
		delete(f, "software_statement")
		if s != nil && s.Required {
			return "", statementErr(CodeInvalidStatement, "a software statement is required")
		}
		return "", nil
	}
	if !present || string(raw) == "null" {
		if s.Required {
			return "", statementErr(CodeInvalidStatement, "a software statement is required")
		}
		return "", s.checkPlainSoftwareID(f)
	}
	stmt, _, serr := f.String("software_statement")
	if serr != nil || stmt == "" {
		return "", statementErr(CodeInvalidStatement, "software_statement must be a JWS in compact serialization")
	}
	audiences := []string{o.issuer(r), o.base(r) + "/register"}
	if o.IssuerWritten != "" {
		// Compared as strings (StringOrURI): the issuer published in
		// normal form, or as the config writes it, which a publisher
		// may have copied.
		w := o.expand(r, o.IssuerWritten)
		audiences = append(audiences, w, strings.TrimRight(w, "/")+"/register")
	}
	claims, verr := s.verify(r.Context(), stmt, stored != "" && stmt == stored, audiences)
	if verr != nil {
		return "", verr
	}
	// A statement's member takes precedence over the plain one, in every
	// language: client_name#en in the body must not stand beside the
	// statement's client_name for a consent screen to pick.
	stated := map[string]bool{}
	for k := range claims {
		if !jwtClaim(k) {
			stated[memberBase(k)] = true
		}
	}
	for k := range f {
		if stated[memberBase(k)] {
			delete(f, k)
		}
	}
	if !stated["software_id"] {
		if perr := s.checkPlainSoftwareID(f); perr != nil {
			return "", perr
		}
	}
	for k, v := range claims {
		if !jwtClaim(k) {
			f[k] = v
		}
	}
	return stmt, nil
}

// checkPlainSoftwareID refuses a software_id that some trusted issuer's
// software_ids approve but that no statement vouches for (it is in the
// plain members): otherwise any client, or a vouched one updated without
// its statement, would pass for approved software wherever software_id is
// shown, such as a consent screen. Other values are the client's own
// claim, as RFC 7591 section 2 has them.
func (s *Statements) checkPlainSoftwareID(f registry.Fields) *registry.Error {
	id, present, serr := f.String("software_id")
	if serr != nil || !present {
		return nil // a wrong type is the metadata check's to report
	}
	for _, issuer := range s.Issuers {
		if slices.Contains(issuer.SoftwareIDs, id) {
			return statementErr(registry.CodeInvalidClientMetadata, "software_id %s is approved only when a software statement vouches for it: send the statement", quoteValue(id))
		}
	}
	return nil
}

// jwtClaim reports whether a statement's claim is a JWT claim rather than
// client metadata.
func jwtClaim(k string) bool {
	switch k {
	case "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "software_statement":
		return true
	}
	return false
}

// memberBase is a metadata member's name without its language tag
// (RFC 7591 section 2.2: client_name#ja-Jpan-JP).
func memberBase(k string) string {
	base, _, _ := strings.Cut(k, "#")
	return base
}
