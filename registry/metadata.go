package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/mail"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Error codes of RFC 7591 section 3.2.2 and RFC 6749.
const (
	CodeInvalidRequest        = "invalid_request"
	CodeInvalidClientMetadata = "invalid_client_metadata"
	CodeInvalidRedirectURI    = "invalid_redirect_uri"
)

// Error is a request the registry refuses: Code is an OAuth error code and
// Description says what is wrong, for humans.
type Error struct {
	Code        string
	Description string
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

func metaErr(format string, a ...any) *Error {
	return &Error{Code: CodeInvalidClientMetadata, Description: fmt.Sprintf(format, a...)}
}

func redirectErr(desc string) *Error {
	return &Error{Code: CodeInvalidRedirectURI, Description: desc}
}

// Values the server supports unless the operator narrows them.
var (
	DefaultGrantTypes = []string{
		"authorization_code", "implicit", "refresh_token", "client_credentials",
		"urn:ietf:params:oauth:grant-type:device_code",
		"urn:ietf:params:oauth:grant-type:jwt-bearer",
		"urn:ietf:params:oauth:grant-type:token-exchange",
	}
	DefaultResponseTypes = []string{
		"code", "token", "id_token", "code id_token", "code token", "id_token token", "code id_token token", "none",
	}
	DefaultAuthMethods = []string{
		AuthNone, AuthClientSecretBasic, AuthClientSecretPost, AuthClientSecretJWT, AuthPrivateKeyJWT,
	}
)

// Limits on what one client may register.
const (
	DefaultMaxRedirectURIs = 10
	maxContacts            = 20
	maxURILength           = 2048
	maxTextLength          = 1024
	// MaxScopeLength bounds a client's scope, a space-separated string.
	MaxScopeLength = 4096
	maxJWKSLength  = 16384
	maxJWKSDepth   = 32
)

// Policy is the server's registration policy for RFC 7591 metadata.
type Policy struct {
	// GrantTypes, ResponseTypes and AuthMethods are the supported values;
	// nil means the defaults above.
	GrantTypes    []string
	ResponseTypes []string
	AuthMethods   []string
	// Scopes, when not empty, are the only scope values a client may
	// register; requests for others are refused.
	Scopes []string
	// DefaultScope is registered when the client asks for no scope.
	DefaultScope string
	// MaxRedirectURIs caps redirect_uris; 0 means DefaultMaxRedirectURIs.
	MaxRedirectURIs int
	// RedirectHosts, when not empty, is the allowlist of non-loopback
	// redirect hosts ("host" or "*.domain").
	RedirectHosts []string
	// grantsOK and responsesOK are the supported types, set by Prepare.
	grantsOK, responsesOK []string
	prepared              bool

	// SameHostURIs requires the pages a consent screen shows or links
	// (client_uri, logo_uri, tos_uri, policy_uri, their language-tagged
	// variants) to be on the scheme and host of one of the client's
	// redirect URIs, as RFC 7591 section 5 says a server SHOULD check: a
	// rogue client cannot then point users at someone else's site. Clients
	// without redirect URIs are not checked: there is no host to compare.
	SameHostURIs bool
}

func (p *Policy) grantTypes() []string {
	if len(p.GrantTypes) > 0 {
		return p.GrantTypes
	}
	return DefaultGrantTypes
}

func (p *Policy) responseTypes() []string {
	if len(p.ResponseTypes) > 0 {
		return p.ResponseTypes
	}
	return DefaultResponseTypes
}

// usableResponseTypes are the allowed response types whose grant types
// are allowed too: with allowed_grant_types authorization_code, "token"
// (implicit) is refused at registration, so it is not published either.
// "none" needs no grant type of its own (consistency accepts it with any).
func (p *Policy) usableResponseTypes() []string {
	grants := p.grantTypes()
	return slices.DeleteFunc(slices.Clone(p.responseTypes()), func(r string) bool { return !responseUsable(r, grants) })
}

func responseUsable(r string, grants []string) bool {
	for w := range responseTokens(r) {
		switch w {
		case "code":
			if !slices.Contains(grants, "authorization_code") {
				return false
			}
		case "token", "id_token":
			if !slices.Contains(grants, "implicit") {
				return false
			}
		}
	}
	return true
}

// usableGrantTypes are the allowed grant types a registration can carry:
// the authorization code and implicit grants need a usable response type
// of theirs (RFC 7591 section 2.1), client_credentials an authentication
// method other than none.
func (p *Policy) usableGrantTypes() []string {
	responses := p.usableResponseTypes()
	return slices.DeleteFunc(slices.Clone(p.grantTypes()), func(g string) bool { return p.grantProblem(g, responses) != "" })
}

// grantProblem says why grant type g cannot be registered given the usable
// response types, or "".
func (p *Policy) grantProblem(g string, responses []string) string {
	has := func(words ...string) bool {
		return slices.ContainsFunc(responses, func(r string) bool {
			for w := range responseTokens(r) {
				if slices.Contains(words, w) {
					return true
				}
			}
			return false
		})
	}
	switch g {
	case "authorization_code":
		if !has("code", "none") {
			return "it needs response type code or none"
		}
	case "implicit":
		if !has("token", "id_token") {
			return "it needs a response type with token or id_token"
		}
	case "client_credentials":
		if !authenticates(p.authMethods()) {
			return "it needs a client that authenticates, and allowed_auth_methods allows only none"
		}
	}
	return ""
}

// Unusable describes the values the operator allowed explicitly that no
// registration can carry, given the other allowed values (allowed_response_types
// token without the implicit grant...), one message each. They are left out
// of the metadata; NothingUsable reports whether no grant type is left.
func (p *Policy) Unusable() []string {
	var msgs []string
	grants := p.grantTypes()
	for _, r := range p.ResponseTypes {
		if !responseUsable(r, grants) {
			msgs = append(msgs, fmt.Sprintf("allowed_response_types: %q is never registered: allowed_grant_types leaves out the grant type it needs (%s)", r, strings.Join(grantsFor([]string{r}), ", ")))
		}
	}
	responses := p.usableResponseTypes()
	for _, g := range p.GrantTypes {
		if msg := p.grantProblem(g, responses); msg != "" {
			msgs = append(msgs, fmt.Sprintf("allowed_grant_types: %q is never registered: %s", g, msg))
		}
	}
	if len(responses) == 0 && len(p.usableGrantTypes()) > 0 {
		// RFC 8414 requires the member, and section 3.2 has empty lists
		// left out: no choice that suits every client.
		msgs = append(msgs, "no response type can be registered, so the metadata leaves out response_types_supported, "+
			"which RFC 8414 requires: clients that insist on it (the MCP SDKs) will not accept the document")
	}
	return msgs
}

// authenticates reports whether methods include one a client authenticates with.
func authenticates(methods []string) bool {
	return slices.ContainsFunc(methods, func(m string) bool { return m != AuthNone })
}

// Prepare works out what the policy supports once, so that registrations
// do not; call it before the policy is in use, and again after changing it.
func (p *Policy) Prepare() {
	p.grantsOK, p.responsesOK = p.usableGrantTypes(), p.usableResponseTypes()
	p.prepared = true
}

// supportedTypes returns SupportedGrantTypes and SupportedResponseTypes,
// as Prepare found them, and for the default policy without working them out.
func (p *Policy) supportedTypes() (grants, responses []string) {
	switch {
	case p.prepared:
		return p.grantsOK, p.responsesOK
	case p.GrantTypes == nil && p.ResponseTypes == nil && (p.AuthMethods == nil || authenticates(p.AuthMethods)):
		return DefaultGrantTypes, DefaultResponseTypes
	}
	return p.usableGrantTypes(), p.usableResponseTypes()
}

// supportedList lists values for an error message.
func supportedList(values []string) string {
	if len(values) == 0 {
		return "none"
	}
	return strings.Join(values, ", ")
}

// NothingUsable reports whether the policy leaves no grant type a
// registration could carry: every RFC 7591 registration would be refused.
func (p *Policy) NothingUsable() bool { return len(p.usableGrantTypes()) == 0 }

func (p *Policy) authMethods() []string {
	if len(p.AuthMethods) > 0 {
		return p.AuthMethods
	}
	return DefaultAuthMethods
}

// SupportedGrantTypes, SupportedResponseTypes and SupportedAuthMethods are
// what the server metadata document publishes.
func (p *Policy) SupportedGrantTypes() []string    { g, _ := p.supportedTypes(); return g }
func (p *Policy) SupportedResponseTypes() []string { _, r := p.supportedTypes(); return r }
func (p *Policy) SupportedAuthMethods() []string   { return p.authMethods() }

// SupportedSigningAlgs is token_endpoint_auth_signing_alg_values_supported,
// which RFC 8414 section 2 requires whenever private_key_jwt or
// client_secret_jwt is published: the usual asymmetric algorithms for
// private_key_jwt, HS256 for client_secret_jwt ("none" is never allowed).
// It returns nil when neither method is published.
func (p *Policy) SupportedSigningAlgs() []string {
	var algs []string
	methods := p.authMethods()
	if slices.Contains(methods, "client_secret_jwt") {
		algs = append(algs, "HS256")
	}
	if slices.Contains(methods, "private_key_jwt") {
		algs = append(algs, "RS256", "PS256", "ES256", "EdDSA")
	}
	return algs
}

// signingAlgProblem says why a client authenticating with method (a JWT
// method) may not register alg as its token_endpoint_auth_signing_alg, or
// "": the value must be one the metadata publishes and suit the method (an
// HMAC for client_secret_jwt, a public-key algorithm for private_key_jwt).
func (p *Policy) signingAlgProblem(method, alg string) string {
	supported := p.SupportedSigningAlgs()
	if !slices.Contains(supported, alg) {
		return fmt.Sprintf("token_endpoint_auth_signing_alg %s is not supported; supported: %s", quote(alg), strings.Join(supported, ", "))
	}
	hmac := strings.HasPrefix(alg, "HS")
	switch {
	case method == AuthClientSecretJWT && !hmac:
		return fmt.Sprintf("token_endpoint_auth_signing_alg %s does not suit client_secret_jwt, which is signed with the client secret (HS256)", quote(alg))
	case method == AuthPrivateKeyJWT && hmac:
		return fmt.Sprintf("token_endpoint_auth_signing_alg %s does not suit private_key_jwt, which is signed with the client's private key", quote(alg))
	}
	return ""
}

// maxLocalized caps the language-tagged variants a client may register.
const maxLocalized = 20

// localizable are the human-readable fields that may carry a BCP 47 tag
// ("client_name#ja-Jpan-JP"), RFC 7591 section 2.2.
var localizable = map[string]bool{"client_name": true, "client_uri": true, "logo_uri": true, "tos_uri": true, "policy_uri": true}

var languageTag = regexp.MustCompile(`^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$`)

// Fields is a decoded JSON object, read member by member with type checks.
type Fields map[string]json.RawMessage

// TrimJSON removes JSON's own white space (RFC 8259 section 2: space, tab,
// CR, LF; not Unicode spaces) around a body, and a UTF-8 byte order mark
// before it, which RFC 8259 section 8.1 lets a parser ignore.
func TrimJSON(body []byte) []byte {
	return bytes.Trim(bytes.TrimPrefix(body, []byte("\uFEFF")), " \t\r\n")
}

// TooDeepAt returns the index in the JSON text b of the first '[' or '{'
// that opens more than limit arrays and objects at once, or -1. It reads
// b lexically, so it also finds where a parser reading b in order would
// stop for depth in a text that is not valid JSON further on.
func TooDeepAt(b []byte, limit int) int {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			i = skipString(b, i) - 1 // the closing quote; the loop steps past it
		case '{', '[':
			if depth++; depth > limit {
				return i
			}
		case '}', ']':
			depth--
		}
	}
	return -1
}

// goMaxDepth is encoding/json's bound on nesting: deeper text is not
// JSON to it.
const goMaxDepth = 10000

// LoneSurrogate is what DecodeObject's description says of a body that
// escapes a lone surrogate in a member read.
const LoneSurrogate = "escapes a lone surrogate"

// NestedTooDeep is what WhereNotJSON says of a body nested deeper than
// encoding/json reads.
const NestedTooDeep = "nests arrays and objects more than 10000 deep"

// WhereNotJSON says, in words of our own rather than the JSON decoder's
// (which change between Go versions), where body stops being JSON; trimmed
// is body with TrimJSON applied, known not to be JSON. The result follows
// "the request body".
func WhereNotJSON(body, trimmed []byte) string {
	// A space after the value tells a value cut short (the error is still
	// at the very end) from a bad byte that happens to be the last one.
	padded := append(slices.Clip(trimmed), ' ')
	var v any
	var se *json.SyntaxError
	if err := json.Unmarshal(padded, &v); !errors.As(err, &se) || se.Offset >= int64(len(padded)) {
		return "ends before its JSON value does"
	}
	if i := TooDeepAt(trimmed, goMaxDepth); i >= 0 && int64(i) < se.Offset {
		// Valid as far as it goes, but the decoder gives up there.
		return NestedTooDeep
	}
	// Offset counts the bytes read, the bad one included: the position of
	// the bad byte, counted from 1 and from the start of the body as sent
	// (a byte order mark or white space before the value included).
	return fmt.Sprintf("is not valid JSON at byte %d", int64(bytes.Index(body, trimmed))+se.Offset)
}

// startsJSONValue reports whether a JSON value (RFC 8259 section 3) may
// begin with c: a body that begins with one, but not with '{', is JSON of
// the wrong kind rather than not JSON at all.
func startsJSONValue(c byte) bool {
	switch c {
	case '{', '[', '"', '-', 't', 'f', 'n':
		return true
	}
	return '0' <= c && c <= '9'
}

// DecodeObject parses body as a JSON object. A body that is not JSON, or
// not an object, is an invalid_request.
func DecodeObject(body []byte) (Fields, *Error) { return DecodeObjectReading(body, keptKey) }

// DecodeObjectReading is DecodeObject for a caller that reads only the
// members whose names read reports true (a subset of those DecodeObject
// keeps): a lone surrogate in any other member is let through.
func DecodeObjectReading(body []byte, read func(key string) bool) (Fields, *Error) {
	trimmed := TrimJSON(body)
	if len(trimmed) == 0 {
		return nil, &Error{Code: CodeInvalidRequest, Description: "the request body is empty; send a JSON object"}
	}
	if trimmed[0] != '{' && startsJSONValue(trimmed[0]) {
		return nil, &Error{Code: CodeInvalidRequest, Description: "the request body must be a JSON object"}
	}
	// A first byte that begins no JSON value (a vertical tab, a Unicode
	// space, form fields) is reported as not JSON, with where, by this.
	if !json.Valid(trimmed) {
		return nil, &Error{Code: CodeInvalidRequest, Description: "the request body " + WhereNotJSON(body, trimmed)}
	}
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD, and a
	// client would then be registered with values it never sent (a redirect
	// URI that no longer matches, for one). JSON is UTF-8 (RFC 8259 section
	// 8.1), so such a body is refused instead.
	if !utf8.Valid(trimmed) {
		return nil, &Error{Code: CodeInvalidRequest, Description: "the request body is not valid UTF-8"}
	}
	// The same goes for an escaped surrogate without its pair ("\ud800"),
	// which stands for no character and would become U+FFFD; but such an
	// escape is valid JSON (RFC 8259 section 8.2), so it is refused only
	// in a member that is read: one that is ignored cannot fail the
	// request (RFC 7591 section 2).
	if loneSurrogate(trimmed) != "" {
		if esc := readLoneSurrogate(trimmed, read); esc != "" {
			return nil, &Error{Code: CodeInvalidRequest, Description: "the request body " + LoneSurrogate + " (" + esc + "), which is no Unicode character"}
		}
	}
	return splitObject(trimmed, false), nil
}

// readLoneSurrogate returns the first lone surrogate escape (see
// loneSurrogate) in the name or value of a member of the valid JSON
// object b whose (unquoted) name read reports true, or "". Of a repeated
// name only the last member counts, as only its value is kept.
func readLoneSurrogate(b []byte, read func(key string) bool) string {
	type member struct{ key, esc string }
	var members []member
	EachMember(b, func(quoted, value []byte) bool {
		if key, _ := unquote(quoted); read(key) {
			esc := loneSurrogate(quoted)
			if esc == "" {
				esc = loneSurrogate(value)
			}
			members = append(members, member{key, esc})
		}
		return true
	})
	for i, m := range members {
		if m.esc != "" && !slices.ContainsFunc(members[i+1:], func(later member) bool { return later.key == m.key }) {
			return m.esc
		}
	}
	return ""
}

// loneSurrogate returns the first \uXXXX escape in valid JSON b that is a
// surrogate without its pair, or "". Outside strings a valid JSON text has
// no backslash, so a scan from the start sees every escape.
func loneSurrogate(b []byte) string {
	hex4 := func(i int) rune {
		if i+6 > len(b) || b[i] != '\\' || b[i+1] != 'u' {
			return -1
		}
		v, err := strconv.ParseUint(string(b[i+2:i+6]), 16, 16)
		if err != nil {
			return -1
		}
		return rune(v)
	}
	for i := bytes.IndexByte(b, '\\'); i >= 0 && i < len(b); {
		if i+1 < len(b) && b[i+1] != 'u' {
			i += 2 // \n, \\, \" ...
		} else {
			switch v := hex4(i); {
			case v >= 0xD800 && v <= 0xDBFF:
				if w := hex4(i + 6); w < 0xDC00 || w > 0xDFFF {
					return string(b[i : i+6])
				}
				i += 12
			case v >= 0xDC00 && v <= 0xDFFF:
				return string(b[i : i+6])
			default:
				i += 6
			}
		}
		j := bytes.IndexByte(b[min(i, len(b)):], '\\')
		if j < 0 {
			break
		}
		i += j
	}
	return ""
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// Has reports whether the member is present and not null.
func (f Fields) Has(key string) bool { return !isNull(f[key]) }

// String returns a string member; null and absent are "" and false.
func (f Fields) String(key string) (string, bool, *Error) {
	raw, ok := f[key]
	if !ok || isNull(raw) {
		return "", false, nil
	}
	s, ok := unquote(raw)
	if !ok {
		return "", false, typeErr(key, "a string")
	}
	return s, true, nil
}

// Strings returns an array-of-strings member.
func (f Fields) Strings(key string) ([]string, bool, *Error) {
	raw, ok := f[key]
	if !ok || isNull(raw) {
		return nil, false, nil
	}
	if raw[0] != '[' {
		return nil, false, typeErr(key, "an array of strings")
	}
	out := make([]string, 0, arrayLen(raw))
	ok = true
	eachArrayItem(raw, func(item []byte) bool {
		var s string
		if s, ok = unquote(item); ok {
			out = append(out, s)
		}
		return ok
	})
	if !ok {
		return nil, false, typeErr(key, "an array of strings")
	}
	return out, true, nil
}

func typeErr(key, what string) *Error {
	if key == "redirect_uris" {
		return redirectErr("redirect_uris must be " + what)
	}
	return metaErr("%s must be %s", key, what)
}

// dedupeResponseTypes keeps one of the response types that differ only in
// the order of their names, as first written: RFC 6749 section 3.1.1 makes
// that order meaningless, so "id_token code" and "code id_token" are one.
func dedupeResponseTypes(list []string) []string {
	if len(list) < 2 {
		return list
	}
	out, seen := list[:0:0], make([]string, 0, len(list))
	for _, r := range list {
		if n := normalizeResponseType(r); !slices.Contains(seen, n) {
			seen, out = append(seen, n), append(out, r)
		}
	}
	return out
}

// dedupe returns list without repeated values, in order. A list without
// any is returned as is.
func dedupe(list []string) []string {
	dup := false
	for i := 1; i < len(list) && !dup; i++ {
		dup = slices.Contains(list[:i], list[i])
	}
	if !dup {
		return list
	}
	out := list[:0:0]
	for _, s := range list {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// responseTokens splits a response type ("code id_token") into its words.
func responseTokens(rt string) iter.Seq[string] { return strings.FieldsSeq(rt) }

// ParseMetadata validates RFC 7591 client metadata and returns a Client
// holding it, with the defaults of RFC 7591 section 2 filled in. Members the
// server does not know are ignored (RFC 7591 section 2), and so are the ones
// only the server may set (client_id, client_secret, timestamps).
func (p *Policy) ParseMetadata(f Fields) (*Client, *Error) {
	c := &Client{}
	var err *Error

	// application_type (OpenID Connect) steers the redirect rules.
	if c.ApplicationType, _, err = f.String("application_type"); err != nil {
		return nil, err
	}
	switch c.ApplicationType {
	case "", "web", "native":
	default:
		return nil, metaErr("application_type must be \"web\" or \"native\", not %s", quote(c.ApplicationType))
	}

	// Grant and response types, with defaults derived from each other so a
	// client that sends one of them gets a consistent pair (RFC 7591 2.1).
	grants, hasGrants, err := f.Strings("grant_types")
	if err != nil {
		return nil, err
	}
	responses, hasResponses, err := f.Strings("response_types")
	if err != nil {
		return nil, err
	}
	grants, responses = dedupe(grants), dedupe(responses)
	grantsOK, responsesOK := p.supportedTypes()
	if hasGrants && len(grants) == 0 {
		// A client with no grant type could get no token at all; an empty
		// response_types, on the other hand, is how a client says it makes
		// no authorization requests (client_credentials only).
		return nil, metaErr("grant_types must not be empty; omit it for the default (authorization_code)")
	}
	for _, g := range grants {
		if !slices.Contains(grantsOK, g) {
			return nil, metaErr("grant type %s is not supported; supported: %s", quote(g), supportedList(grantsOK))
		}
	}
	for _, r := range responses {
		if !singleWord(r) && strings.Join(strings.Fields(r), " ") != r {
			// response-type = response-name *( SP response-name ): stored
			// as sent, "code  token" would match nothing the server issues.
			return nil, metaErr("response type %s must be response names separated by single spaces", quote(r))
		}
		if !slices.Contains(responsesOK, normalizeResponseType(r)) {
			return nil, metaErr("response type %s is not supported; supported: %s", quote(r), supportedList(responsesOK))
		}
	}
	responses = dedupeResponseTypes(responses)
	switch {
	case !hasGrants && !hasResponses:
		// RFC 7591's defaults, unless the operator does not allow the
		// authorization code grant: then the first grant type allowed.
		grants = []string{"authorization_code"}
		if !slices.Contains(grantsOK, "authorization_code") && len(grantsOK) > 0 {
			grants = []string{grantsOK[0]}
		}
		responses = responsesFor(grants)
	case !hasGrants:
		grants = grantsFor(responses)
		if slices.Equal(responses, []string{"none"}) && !slices.Contains(grantsOK, "authorization_code") && len(grantsOK) > 0 {
			// "none" goes with any grant type: the first the policy has,
			// as for a request that names neither.
			grants = []string{grantsOK[0]}
		}
	case !hasResponses:
		responses = responsesFor(grants)
	}
	if msg := consistency(grants, responses); msg != "" {
		return nil, metaErr("%s", msg)
	}
	// Derived values must be allowed too: the response never promises what
	// the server's metadata does not publish.
	for _, g := range grants {
		if !slices.Contains(grantsOK, g) {
			return nil, metaErr("grant type %s (implied by the response types) is not supported; supported: %s", quote(g), supportedList(grantsOK))
		}
	}
	for _, r := range responses {
		if !slices.Contains(responsesOK, normalizeResponseType(r)) {
			return nil, metaErr("response type %s (implied by the grant types) is not supported; supported: %s", quote(r), supportedList(responsesOK))
		}
	}
	c.GrantTypes, c.ResponseTypes = grants, responses
	implicit := false
	for _, r := range responses {
		for w := range responseTokens(r) {
			if w == "token" || w == "id_token" {
				implicit = true
			}
		}
	}

	// redirect_uris: required whenever the client uses the authorization
	// endpoint (RFC 7591 section 2 and 5).
	uris, _, err := f.Strings("redirect_uris")
	if err != nil {
		return nil, err
	}
	max := p.RedirectURICap()
	if len(uris) > max {
		return nil, redirectErr(fmt.Sprintf("at most %d redirect URIs may be registered", max))
	}
	// Every response type uses the authorization endpoint, "none" too:
	// the user agent is still sent back to a redirect URI (OAuth 2.0
	// Multiple Response Type Encoding Practices, section 4).
	if len(responses) > 0 && len(uris) == 0 {
		return nil, redirectErr("redirect_uris is required for clients using the authorization endpoint")
	}
	rule := RedirectRule{ApplicationType: c.ApplicationType, Implicit: implicit, AllowedHosts: p.RedirectHosts}
	for _, u := range uris {
		if len(u) > maxURILength {
			return nil, redirectErr(fmt.Sprintf("redirect URIs may be at most %d characters long", maxURILength))
		}
		if msg := rule.CheckRedirectURI(u); msg != "" {
			return nil, redirectErr(msg)
		}
	}
	c.RedirectURIs = dedupe(uris)

	// Token endpoint authentication.
	method, hasMethod, err := f.String("token_endpoint_auth_method")
	if err != nil {
		return nil, err
	}
	if !hasMethod {
		method = AuthClientSecretBasic
		if !slices.Contains(p.authMethods(), method) {
			method = p.authMethods()[0]
		}
	}
	if !slices.Contains(p.authMethods(), method) {
		return nil, metaErr("token_endpoint_auth_method %s is not supported; supported: %s", quote(method), strings.Join(p.authMethods(), ", "))
	}
	c.TokenEndpointAuthMethod = method
	if method == AuthNone && slices.Contains(grants, "client_credentials") {
		return nil, metaErr("grant type \"client_credentials\" is for confidential clients only (RFC 6749 section 4.4); register a token_endpoint_auth_method other than none")
	}
	alg, _, err := f.String("token_endpoint_auth_signing_alg")
	if err != nil {
		return nil, err
	}
	// Only JWT authentication signs anything: with another method the
	// member says nothing and is dropped, as an unknown one would be.
	if method != AuthClientSecretJWT && method != AuthPrivateKeyJWT {
		alg = ""
	}
	if alg != "" {
		if msg := p.signingAlgProblem(method, alg); msg != "" {
			return nil, metaErr("%s", msg)
		}
	}
	c.TokenEndpointAuthSigningAlg = alg

	// Plain strings.
	for _, s := range []struct {
		key string
		dst *string
		max int
	}{
		{"client_name", &c.ClientName, maxTextLength},
		{"software_id", &c.SoftwareID, maxTextLength},
		{"software_version", &c.SoftwareVersion, maxTextLength},
	} {
		v, _, err := f.String(s.key)
		if err != nil {
			return nil, err
		}
		if utf8.RuneCountInString(v) > s.max {
			return nil, metaErr("%s may be at most %d characters long", s.key, s.max)
		}
		if err := checkDisplayText(s.key, v); err != nil {
			return nil, err
		}
		*s.dst = v
	}

	// URLs.
	for _, s := range []struct {
		key string
		dst *string
	}{
		{"client_uri", &c.ClientURI}, {"logo_uri", &c.LogoURI}, {"tos_uri", &c.TOSURI},
		{"policy_uri", &c.PolicyURI}, {"jwks_uri", &c.JWKSURI},
	} {
		v, ok, err := f.String(s.key)
		if err != nil {
			return nil, err
		}
		if ok && v != "" {
			if len(v) > maxURILength {
				return nil, metaErr("%s may be at most %d characters long", s.key, maxURILength)
			}
			if msg := CheckWebURI(s.key, v); msg != "" {
				return nil, metaErr("%s", msg)
			}
			// Consent pages show these links: a bidirectional override
			// could make one read as another site's.
			if err := checkDisplayText(s.key, v); err != nil {
				return nil, err
			}
		}
		*s.dst = v
	}

	// Language-tagged variants of the human-readable fields, in key order so
	// that a request with several bad ones always gets the same message.
	if _, over := f[tooManyTagged]; over {
		return nil, metaErr("at most %d language-tagged fields may be registered (this request has over %d language-tagged members)", maxLocalized, maxTaggedMembers)
	}
	var tagged []string
	for key := range f {
		if strings.IndexByte(key, '#') > 0 {
			tagged = append(tagged, key)
		}
	}
	slices.Sort(tagged)
	for _, key := range tagged {
		raw := f[key]
		base, tag, ok := strings.Cut(key, "#")
		if !ok || !localizable[base] || !languageTag.MatchString(tag) || isNull(raw) {
			continue
		}
		v, _, err := f.String(key)
		if err != nil {
			return nil, err
		}
		if v == "" {
			// Nothing in that language, as an empty client_name or
			// logo_uri is none: not stored, not echoed.
			continue
		}
		if base == "client_name" {
			if utf8.RuneCountInString(v) > maxTextLength {
				return nil, metaErr("%s may be at most %d characters long", key, maxTextLength)
			}
			if err := checkDisplayText(key, v); err != nil {
				return nil, err
			}
		} else {
			if len(v) > maxURILength {
				return nil, metaErr("%s may be at most %d characters long", key, maxURILength)
			}
			if msg := CheckWebURI(key, v); msg != "" {
				return nil, metaErr("%s", msg)
			}
			if err := checkDisplayText(key, v); err != nil {
				return nil, err
			}
		}
		// BCP 47 tags are case-insensitive: client_name#EN and
		// client_name#en would be two values for one language.
		for other := range c.Localized {
			if strings.EqualFold(other, key) {
				return nil, metaErr("%s and %s name the same language (language tags are case-insensitive)", other, key)
			}
		}
		if len(c.Localized) == maxLocalized {
			return nil, metaErr("at most %d language-tagged fields may be registered", maxLocalized)
		}
		if c.Localized == nil {
			c.Localized = map[string]string{}
		}
		c.Localized[key] = v
	}

	// Contacts are "ways to contact people responsible for this client,
	// typically email addresses" (RFC 7591 section 2): an address (bare or
	// with a display name), a mailto: URI, or a web page.
	contacts, _, err := f.Strings("contacts")
	if err != nil {
		return nil, err
	}
	if len(contacts) > maxContacts {
		return nil, metaErr("at most %d contacts may be registered", maxContacts)
	}
	for _, addr := range contacts {
		if !validContact(addr) {
			return nil, metaErr("contact %s is not an e-mail address, a mailto: URI or an http(s) URL", quote(addr))
		}
		if err := checkDisplayText("contacts", addr); err != nil {
			return nil, err
		}
	}
	c.Contacts = contacts

	// Scope: space-separated RFC 6749 scope tokens.
	scope, hasScope, err := f.String("scope")
	if err != nil {
		return nil, err
	}
	if len(scope) > MaxScopeLength {
		return nil, metaErr("scope may be at most %d characters long", MaxScopeLength)
	}
	// Delimited by spaces only (RFC 6749 section 3.3): a tab or a no-break
	// space is inside a token, whose characters then refuse it.
	tokens := strings.FieldsFunc(scope, func(r rune) bool { return r == ' ' })
	for _, tok := range tokens {
		if !validScopeToken(tok) {
			return nil, metaErr("scope value %s contains characters RFC 6749 does not allow", quote(tok))
		}
		if len(p.Scopes) > 0 && !slices.Contains(p.Scopes, tok) {
			return nil, metaErr("scope %s is not allowed; allowed: %s", quote(tok), strings.Join(p.Scopes, " "))
		}
	}
	c.Scope = strings.Join(dedupe(tokens), " ")
	if (!hasScope || c.Scope == "") && p.DefaultScope != "" {
		c.Scope = p.DefaultScope
	}

	// Keys: by value or by reference, never both.
	if raw := f["jwks"]; !isNull(raw) {
		if len(raw) > maxJWKSLength {
			return nil, metaErr("jwks may be at most %d bytes long", maxJWKSLength)
		}
		n, msg := checkJWKS(raw)
		if msg != "" {
			return nil, metaErr("%s", msg)
		}
		if n == 0 && c.TokenEndpointAuthMethod == AuthPrivateKeyJWT {
			return nil, metaErr("token_endpoint_auth_method private_key_jwt requires at least one key in jwks")
		}
		var buf bytes.Buffer
		_ = json.Compact(&buf, raw) // valid JSON, checked above
		c.JWKS = buf.Bytes()
	}
	if c.JWKS != nil && c.JWKSURI != "" {
		return nil, metaErr("jwks and jwks_uri must not both be registered")
	}
	if c.TokenEndpointAuthMethod == AuthPrivateKeyJWT && c.JWKS == nil && c.JWKSURI == "" {
		return nil, metaErr("token_endpoint_auth_method private_key_jwt requires jwks or jwks_uri")
	}
	if msg := p.displayURIRefusal(c); msg != "" {
		return nil, metaErr("%s", msg)
	}
	return c, nil
}

// checkJWKS checks a JWK Set object, or a string holding one (the Go MCP
// SDK sends jwks as a string), and returns its number of keys, or why it
// is refused. RFC 7591 wants "the client's public keys": a private key, or
// a symmetric one (a secret the server would then hold), is refused, so
// that a client that pasted the wrong half learns it here.
func checkJWKS(raw json.RawMessage) (int, string) {
	const notASet = "jwks must be a JSON Web Key Set: an object with a \"keys\" array of objects"
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, notASet
		}
		raw = json.RawMessage(s)
	}
	// A key set is four levels deep (set, keys, key, "oth"); a stored one
	// nested thousands deep is served to every reader of the client, and
	// common parsers give up on it (Jackson at 1000, Python sooner).
	if TooDeepAt(raw, maxJWKSDepth) >= 0 {
		return 0, fmt.Sprintf("jwks may nest arrays and objects at most %d deep", maxJWKSDepth)
	}
	var set struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	if len(bytes.TrimSpace(raw)) == 0 || bytes.TrimSpace(raw)[0] != '{' || json.Unmarshal(raw, &set) != nil || set.Keys == nil {
		return 0, notASet
	}
	// The set is kept and echoed as sent: a member sent twice, of which
	// decoding sees only the last ({"d":"...","d":null}), would let a
	// private key past the check below.
	if name, dup := repeatedMember(raw); dup {
		return 0, fmt.Sprintf("jwks must not repeat a member: %q appears twice in one object", name)
	}
	for i, k := range set.Keys {
		// RFC 7517 4.1: every key names its type.
		var kty string
		if raw, ok := k["kty"]; !ok || json.Unmarshal(raw, &kty) != nil || kty == "" {
			return 0, fmt.Sprintf("jwks: key %d has no \"kty\" (RFC 7517 section 4.1)", i+1)
		}
		// "k" is a symmetric (oct) key's secret; the others are the
		// private parts of RSA, EC and OKP keys (RFC 7518 section 6).
		for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
			if v, ok := k[m]; ok && string(v) != "null" {
				return 0, fmt.Sprintf("jwks must hold public keys only: key %d has the private member %q", i+1, m)
			}
		}
	}
	return len(set.Keys), ""
}

// repeatedMember reports a member name that one object of the JSON value
// raw (valid JSON) holds twice, at any depth, with the name as decoded.
func repeatedMember(raw []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	// One entry per open object or array: the member names seen so far
	// (nil for an array), and whether the next string is a member name.
	type level struct {
		names  map[string]bool
		expect bool
	}
	var stack []level
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		top := len(stack) - 1
		if top >= 0 && stack[top].names != nil && stack[top].expect {
			if name, ok := tok.(string); ok {
				if stack[top].names[name] {
					return name, true
				}
				stack[top].names[name] = true
				stack[top].expect = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, level{names: map[string]bool{}, expect: true})
			continue
		case json.Delim('['):
			stack = append(stack, level{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:top]
		}
		// A value ended: an object's next token is a name again.
		if n := len(stack); n > 0 && stack[n-1].names != nil {
			stack[n-1].expect = true
		}
	}
}

// ValidScopeToken reports whether s is a scope token (RFC 6749 3.3).
func ValidScopeToken(s string) bool { return validScopeToken(s) }

// validScopeToken: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
func validScopeToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
			return false
		}
	}
	return s != ""
}

// normalizeResponseType orders the words of a response type the way the
// supported list spells them ("id_token code" is "code id_token").
func normalizeResponseType(rt string) string {
	if singleWord(rt) {
		return rt
	}
	words := strings.Fields(rt)
	order := map[string]int{"code": 0, "id_token": 1, "token": 2, "none": 3}
	slices.SortFunc(words, func(a, b string) int {
		oa, ok := order[a]
		if !ok {
			oa = 9
		}
		ob, ok := order[b]
		if !ok {
			ob = 9
		}
		return oa - ob
	})
	return strings.Join(words, " ")
}

// singleWord reports whether s is one word of printable ASCII, which
// strings.Fields would return as is.
func singleWord(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return s != ""
}

func grantsFor(responses []string) []string {
	var g []string
	for _, r := range responses {
		for w := range responseTokens(r) {
			switch w {
			case "code":
				g = append(g, "authorization_code")
			case "token", "id_token":
				g = append(g, "implicit")
			}
		}
	}
	g = dedupe(g)
	if len(g) == 0 {
		g = []string{"authorization_code"}
	}
	return g
}

func responsesFor(grants []string) []string {
	r := []string{}
	if slices.Contains(grants, "authorization_code") {
		r = append(r, "code")
	}
	if slices.Contains(grants, "implicit") {
		r = append(r, "token")
	}
	return r
}

// consistency checks grant_types against response_types (RFC 7591 2.1).
func consistency(grants, responses []string) string {
	needCode, needImplicit, none := false, false, false
	for _, r := range responses {
		for w := range responseTokens(r) {
			switch w {
			case "code":
				needCode = true
			case "token", "id_token":
				needImplicit = true
			case "none":
				none = true
			}
		}
	}
	hasCode := slices.Contains(grants, "authorization_code")
	hasImplicit := slices.Contains(grants, "implicit")
	switch {
	case needCode && !hasCode:
		return `grant_types and response_types are inconsistent: response type "code" needs grant type "authorization_code"`
	case needImplicit && !hasImplicit:
		return `grant_types and response_types are inconsistent: response types with "token" or "id_token" need grant type "implicit"`
	case hasCode && !needCode && !none:
		return `grant_types and response_types are inconsistent: grant type "authorization_code" needs response type "code"`
	case hasImplicit && !needImplicit:
		return `grant_types and response_types are inconsistent: grant type "implicit" needs a response type with "token" or "id_token"`
	}
	return ""
}

// RedirectURICap is how many redirect URIs a client may register.
func (p *Policy) RedirectURICap() int {
	if p.MaxRedirectURIs <= 0 {
		return DefaultMaxRedirectURIs
	}
	return p.MaxRedirectURIs
}

// Refusal says why the policy does not allow the grant types, response
// types or token endpoint authentication method of c, or returns "". The
// cloned APIs fix these themselves (MediaGoblin always registers
// confidential authorization-code clients, for instance), so an operator's
// allowed_* lists are applied to what they are about to register; RFC 7591
// requests are checked as they are parsed.
func (p *Policy) Refusal(c *Client) string {
	if msg := p.DisplayURIRefusal(c); msg != "" {
		return msg
	}
	for _, g := range c.GrantTypes {
		if !slices.Contains(p.grantTypes(), g) {
			return "grant type " + g + " is not allowed here"
		}
	}
	for _, rt := range c.ResponseTypes {
		if !slices.Contains(p.responseTypes(), rt) {
			return "response type " + rt + " is not allowed here"
		}
	}
	if m := c.TokenEndpointAuthMethod; m != "" && !slices.Contains(p.authMethods(), m) {
		return "token endpoint authentication method " + m + " is not allowed here"
	}
	return ""
}

// DisplayURIRefusal is what Refusal says of c's display URIs alone (see
// SameHostURIs), or "": for an update, whose grant types and
// authentication method cannot change.
func (p *Policy) DisplayURIRefusal(c *Client) string {
	if msg := p.displayURIRefusal(c); msg != "" {
		return "the " + msg
	}
	return ""
}

// displayURIRefusal names the first display URI of c that is not on the
// scheme and host of one of its redirect URIs, when SameHostURIs is set.
// Kustvakt calls client_uri "url".
func (p *Policy) displayURIRefusal(c *Client) string {
	if !p.SameHostURIs || len(c.RedirectURIs) == 0 {
		return ""
	}
	clientURI := "client_uri"
	if c.API == APIKustvakt {
		clientURI = "url"
	}
	check := func(field, v string) string {
		if v == "" || onRedirectHost(v, c.RedirectURIs) {
			return ""
		}
		return fmt.Sprintf("%s %s must have the scheme and host of a redirect URI", field, quote(v))
	}
	for _, f := range []struct{ field, v string }{
		{clientURI, c.ClientURI}, {"logo_uri", c.LogoURI}, {"tos_uri", c.TOSURI}, {"policy_uri", c.PolicyURI},
	} {
		if msg := check(f.field, f.v); msg != "" {
			return msg
		}
	}
	// In key order, so that the same request always gets the same message.
	keys := make([]string, 0, len(c.Localized))
	for k := range c.Localized {
		if base, _, _ := strings.Cut(k, "#"); base != "client_name" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if msg := check(k, c.Localized[k]); msg != "" {
			return msg
		}
	}
	return ""
}

// onRedirectHost reports whether raw has the scheme and host (ports
// aside) of one of the redirect URIs, hosts compared as a browser would
// look them up.
func onRedirectHost(raw string, redirects []string) bool {
	scheme, host, ok := schemeHost(raw)
	if !ok {
		return false
	}
	for _, r := range redirects {
		if rs, rh, ok := schemeHost(r); ok && rs == scheme && rh == host {
			return true
		}
	}
	return false
}

// schemeHost returns a URI's scheme and host in comparable form: the
// scheme in lower case; the host without a trailing dot, as IDNA lookup
// turns it to ASCII (so "bücher.example" is "xn--bcher-kva.example",
// and "claßic" and "claẞic", which Unicode case folding would equate,
// stay two hosts), or lower-cased in ASCII only where that fails (IP
// literals). It reads the authority itself rather than with url.Parse,
// which refuses URIs the cloned APIs accept (a bad %-escape in the path).
func schemeHost(raw string) (scheme, host string, ok bool) {
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok || scheme == "" || !strings.HasPrefix(rest, "//") {
		return "", "", false
	}
	auth := rest[2:]
	// A backslash ends the authority too, as in browsers (WHATWG URL), so
	// "https://evil.example\@app.example/" is on evil.example.
	if i := strings.IndexAny(auth, "/?#\\"); i >= 0 {
		auth = auth[:i]
	}
	if i := strings.LastIndexByte(auth, '@'); i >= 0 {
		auth = auth[i+1:]
	}
	if strings.HasPrefix(auth, "[") {
		end := strings.IndexByte(auth, ']')
		if end < 0 {
			return "", "", false
		}
		host = auth[1:end]
	} else if i := strings.LastIndexByte(auth, ':'); i >= 0 {
		host = auth[:i]
	} else {
		host = auth
	}
	host = strings.TrimSuffix(host, ".")
	if host == "" {
		return "", "", false
	}
	if a, err := idna.Lookup.ToASCII(host); err == nil {
		host = a
	} else {
		host = asciiLower(host)
	}
	return asciiLower(scheme), host, true
}

// asciiLower lower-cases ASCII letters only.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// validContact accepts an e-mail address ("jane@example.com", "Jane Doe
// <jane@example.com>"), a mailto: URI or an http(s) URL.
func validContact(c string) bool {
	if c == "" || len(c) > maxURILength || strings.TrimSpace(c) != c {
		return false
	}
	for _, r := range c {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	if len(c) > 7 && strings.EqualFold(c[:7], "mailto:") {
		a, err := mail.ParseAddress(c[7:])
		return err == nil && a.Name == "" && a.Address == c[7:]
	}
	if scheme, _, ok := strings.Cut(c, ":"); ok && (strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https")) {
		return CheckWebURI("contact", c) == ""
	}
	_, err := mail.ParseAddress(c)
	return err == nil
}

// checkDisplayText refuses, in text that consent screens and admin pages
// show (client_name, software_id, software_version), the characters
// UnsafeDisplayRune finds.
func checkDisplayText(key, v string) *Error {
	if r, bad := UnsafeDisplayRune(v); bad {
		return metaErr("%s must not contain control characters, line separators or bidirectional overrides (found U+%04X)", key, r)
	}
	return nil
}

// UnsafeDisplayRune returns the first character of s that has no place in
// a name shown to people: control characters (NUL, escape sequences, line
// and paragraph breaks) and the bidirectional embedding, override and
// isolate characters, with which a name can be made to read as another
// ("\u202eelgooG" shows as "Google"). Marks such as U+200F, which
// right-to-left names may need, are allowed. Every API applies it to the
// names it stores: they share one store and the pages that show it.
func UnsafeDisplayRune(s string) (rune, bool) {
	for _, r := range s {
		if UnsafeDisplay(r) {
			return r, true
		}
	}
	return 0, false
}

// UnsafeDisplay reports whether r is a character UnsafeDisplayRune finds.
func UnsafeDisplay(r rune) bool {
	return r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == 0x2028 || r == 0x2029 ||
		(r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
}
