package handler

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/internal/jsonw"
	"github.com/caddy-dcr/caddy-dcr/registry"
)

// IAM serves Huawei Cloud IAM Identity Center's RegisterClient, relative to
// the prefix:
//
//	POST /v1/clients
//
// Huawei publishes no server code, only the API reference (seed 004) and the
// SDK models, so everything the reference leaves open follows the product
// decisions of the spec (section 0): Huawei's error format for every
// failure, 200 on success, secrets valid for 90 days unless configured,
// unknown request members ignored, scopes echoed only when sent.
type IAM struct {
	o *Options
}

// NewIAM returns the IAM Identity Center API.
func NewIAM(o *Options) *IAM {
	o.setAPI(registry.APIIAM)
	return &IAM{o: o}
}

const (
	iamClientsPath = "/v1/clients"
	// iamSecretLifetime is the default secret lifetime: the reference's
	// example response has client_secret_expires_at - client_id_issued_at =
	// 7776000 s, 90 days.
	iamSecretLifetime = 90 * 24 * time.Hour
	iamMaxNameLength  = 1024
)

// The values the reference enumerates. Huawei's SDK has exactly these enum
// constants; anything else (other case included) is refused.
var (
	iamGrantTypes    = []string{"authorization_code", "urn:ietf:params:oauth:grant-type:device_code"}
	iamResponseTypes = []string{"code"}
)

// Serve implements API.
func (a *IAM) Serve(w http.ResponseWriter, r *http.Request) bool {
	rest, ok := a.o.route(r)
	if !ok || rest != iamClientsPath || encodedSlash(r) {
		return false
	}
	a.o.hold()
	defer a.o.release()
	// Huawei's APIs put a request id in every error body; it is also sent as
	// a header on every answer so a success can be correlated with logs too.
	rid := iamRequestID()
	w.Header().Set("X-Request-Id", rid)
	// Observed from the start, so that every answer to a registration is
	// counted, those of the checks below included (a wrong method or a
	// preflight is not one).
	op := ""
	if r.Method == http.MethodPost {
		op = opRegister
	}
	ob := observe(w, r, op)
	a.serve(ob, r, rid)
	a.o.metrics.done(ob)
	return true
}

func (a *IAM) serve(w http.ResponseWriter, r *http.Request, rid string) {
	if r.Method == http.MethodOptions {
		// Like every other answer of the route, a CORS one.
		setNoStore(w.Header())
	}
	if a.o.CORS.apply(w, r, "POST") {
		return
	}
	if a.o.hostUnusable(r) {
		// The answer's endpoints would be built from it.
		a.error(w, rid, http.StatusBadRequest, "IIC.400", "Bad Request: the Host header must be host or host:port.")
		return
	}
	if name := a.o.unresolvedURL(r); name != "" {
		a.error(w, rid, http.StatusBadRequest, "IIC.400", "Bad Request: the server's "+name+" setting, made from this request, is no usable URL.")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", a.o.CORS.allow("POST"))
		a.error(w, rid, http.StatusMethodNotAllowed, "IIC.405", "Method Not Allowed: use POST.")
		return
	}
	a.register(w, r, rid)
}

// iamRequestID returns a random (version 4) UUID in its canonical lowercase
// form, the shape of Huawei's request_id.
func iamRequestID() string {
	var b [16]byte
	// crypto/rand.Read never returns an error on supported platforms (Go 1.24+).
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], b[10:16])
	return string(s[:])
}

// error writes a Huawei error body. msg is complete ("Bad Request: ... .").
// Errors carry no-store like the success: a caching intermediary must not
// replay an answer that is tied to one request id.
func (a *IAM) error(w http.ResponseWriter, rid string, status int, code, msg string) {
	a.o.refused(status, code, msg)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	setNoStore(h)
	jw := jsonw.Get(jsonw.Compact)
	defer jw.Release()
	jw.Open().Key("error_code").Str(code).Key("error_msg").Str(msg).Key("request_id").Str(rid).Close()
	w.WriteHeader(status)
	_, _ = w.Write(jw.B)
}

// badRequest answers 400 IIC.400; problem names the field and what is
// wrong with it, without a final period.
func (a *IAM) badRequest(w http.ResponseWriter, rid, problem string) {
	a.error(w, rid, http.StatusBadRequest, "IIC.400", "Bad Request: "+problem+".")
}

// iamRequest is a validated RegisterClient request.
type iamRequest struct {
	name      string
	scopes    []string // as sent, echoed in the answer
	scope     string   // as stored: each scope once, space-separated
	hasScopes bool     // scopes was sent (and not null): it is echoed
	grants    []string
	responses []string
}

// deny writes a refusal of the registration gate in Huawei's format.
func (a *IAM) deny(w http.ResponseWriter, rid string, d *Denial) {
	d.SetHeaders(w.Header())
	switch d.Status {
	case http.StatusUnauthorized:
		a.error(w, rid, d.Status, "IIC.401", "Unauthorized: "+d.Description+".")
	case http.StatusTooManyRequests:
		a.error(w, rid, d.Status, "IIC.429", "Too Many Requests: "+d.Description+".")
	default:
		a.error(w, rid, http.StatusServiceUnavailable, "IIC.503",
			"Service Unavailable: the client store is unavailable, retry later.")
	}
}

func (a *IAM) register(w http.ResponseWriter, r *http.Request, rid string) {
	adm, d := a.o.admit(r)
	if d != nil {
		a.deny(w, rid, d)
		return
	}
	// Check order: media type, body size, JSON, then the members in the
	// order of the reference's table, so one request always gets the same
	// message whatever else is wrong with it.
	if !jsonBody(r) {
		a.badRequest(w, rid, "the request body must be JSON (Content-Type: application/json)")
		return
	}
	if msg := encodedBody(r); msg != "" {
		a.badRequest(w, rid, msg)
		return
	}
	body, err := readBody(w, r)
	if errors.Is(err, errBodyTooLarge) {
		// 400, not 413: the spec's product decision is one status, 400 with
		// IIC.400, for every request IAM refuses as invalid, and Huawei's
		// error codes name their status (an IIC.400 under 413 would not).
		a.badRequest(w, rid, fmt.Sprintf("request body is larger than %d bytes", bodyLimit(err)))
		return
	}
	if err != nil {
		a.badRequest(w, rid, "the request body could not be read")
		return
	}
	req, problem := parseIAMRequest(body)
	if problem == "" {
		problem = a.checkPolicy(req)
	}
	if problem != "" {
		a.badRequest(w, rid, problem)
		return
	}

	c := &registry.Client{
		API:                     registry.APIIAM,
		Permitted:               true,
		ClientName:              req.name,
		TokenEndpointAuthMethod: registry.AuthClientSecretPost,
		GrantTypes:              req.grants,
		ResponseTypes:           req.responses,
		Scope:                   req.scope,
	}
	if c.Scope == "" {
		c.Scope = a.o.Policy.DefaultScope
	}
	iss, d, err := a.o.create(r, c, registry.Issue{
		Format: registry.FormatIAM, Secret: true, SecretLifetime: a.o.secretLifetime(DefaultSecretLifetime(registry.APIIAM)),
	}, adm)
	if d != nil {
		a.deny(w, rid, d)
		return
	}
	if err != nil {
		// Not reachable through any input: Register fails otherwise only on
		// an encoding bug or five id collisions in a row.
		a.o.Logger.Error("unexpected error", zap.String("api", a.o.api), zap.String("op", "register"),
			zap.String("request_id", rid), zap.Error(err))
		a.error(w, rid, http.StatusInternalServerError, "IIC.500", "Internal Server Error: the client could not be registered.")
		return
	}

	// Key order and types of the reference's example response.
	jw := jsonw.Get(jsonw.Compact)
	defer jw.Release()
	jw.Open().Key("client_info").Open()
	jw.Key("authorization_endpoint").Str(a.o.endpoint(r, a.o.AuthorizationEndpoint, "/v1/authorize"))
	jw.Key("client_id").Str(c.ID)
	jw.Key("client_id_issued_at").Int(c.IssuedAt())
	jw.Key("client_secret").Str(iss.Secret)
	jw.Key("client_secret_expires_at").Int(c.SecretExpiresAt)
	jw.Key("token_endpoint").Str(a.o.endpoint(r, a.o.TokenEndpoint, "/v1/tokens"))
	if req.hasScopes {
		scopes := req.scopes
		if len(scopes) == 0 && c.Scope != "" {
			// An empty list got the operator's default_scope: the answer
			// lists what was registered, not the empty list.
			scopes = strings.Fields(c.Scope)
		}
		jw.Key("scopes").Strings(scopes)
	}
	jw.Close().Close()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	setNoStore(h)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(jw.B)
}

// IAMPolicyProblem says why an operator's policy would refuse every IAM
// registration, "" when it would not: IAM clients always authenticate with
// client_secret_post and use one of IAM's two grant types.
func IAMPolicyProblem(p *registry.Policy) string {
	if len(p.AuthMethods) > 0 && !slices.Contains(p.AuthMethods, registry.AuthClientSecretPost) {
		return "allowed_auth_methods: IAM clients always use " + registry.AuthClientSecretPost + ", which is not allowed: every iam registration will be refused"
	}
	if len(p.GrantTypes) > 0 && !slices.ContainsFunc(iamGrantTypes, func(g string) bool { return slices.Contains(p.GrantTypes, g) }) {
		return "allowed_grant_types: none of IAM's grant types (" + strings.Join(iamGrantTypes, ", ") + ") is allowed: every iam registration will be refused"
	}
	return ""
}

// checkPolicy applies the operator's narrowing of grant types, response
// types and scopes to a request that is valid for IAM itself.
func (a *IAM) checkPolicy(req *iamRequest) string {
	p := &a.o.Policy
	if reason := p.Refusal(&registry.Client{GrantTypes: req.grants, ResponseTypes: req.responses}); reason != "" {
		return reason
	}
	// IAM clients always authenticate with client_secret_post; the message
	// names the request member, as IAM's validation messages do.
	if !slices.Contains(p.SupportedAuthMethods(), registry.AuthClientSecretPost) {
		return "token_endpoint_auth_method " + registry.AuthClientSecretPost + " is not allowed here"
	}
	if len(p.Scopes) > 0 {
		for _, s := range req.scopes {
			if !slices.Contains(p.Scopes, s) {
				return "scope " + s + " is not allowed here"
			}
		}
	}
	return ""
}

// iamReads reports whether a RegisterClient body member is one the API
// reads; the others are ignored, whatever they hold.
func iamReads(key string) bool {
	switch key {
	case "client_name", "client_type", "token_endpoint_auth_method", "scopes", "grant_types", "response_types":
		return true
	}
	return false
}

// parseIAMRequest decodes and validates a RegisterClient body. It returns
// the request, or a problem description for a 400.
func parseIAMRequest(body []byte) (*iamRequest, string) {
	trimmed := registry.TrimJSON(body)
	if len(trimmed) == 0 {
		return nil, "the request body is empty; send a JSON object"
	}
	// Checked before decoding so that valid JSON of the wrong kind (null, an
	// array, a number) gets a message saying so rather than a parse error.
	if trimmed[0] != '{' {
		return nil, "the request body must be a JSON object"
	}
	f, ferr := registry.DecodeObjectReading(trimmed, iamReads)
	if ferr != nil {
		// The decoder's own message is not passed on: its wording changes
		// between Go releases and clients may match on ours.
		if strings.HasSuffix(ferr.Description, registry.NestedTooDeep) {
			return nil, "the request body nests arrays and objects too deeply"
		}
		if strings.Contains(ferr.Description, registry.LoneSurrogate) {
			// Valid JSON (RFC 8259 section 8.2), but no character: only
			// refused in a member that is read.
			return nil, "the request body escapes a lone surrogate, which is no Unicode character"
		}
		return nil, "the request body is not valid JSON"
	}
	req := &iamRequest{}

	// client_name: 1..1024 characters, counted as Unicode code points rather
	// than bytes so that names in any script get the same limit.
	name, problem := iamRequiredString(f, "client_name")
	if problem != "" {
		return nil, problem
	}
	if n := utf8.RuneCountInString(name); n < 1 || n > iamMaxNameLength {
		return nil, fmt.Sprintf("client_name must be 1 to %d characters long", iamMaxNameLength)
	}
	if unsafeName(name) {
		return nil, "client_name must not contain control characters, line separators or bidirectional overrides"
	}
	req.name = name

	// client_type and token_endpoint_auth_method each have one allowed
	// value (case-sensitive, as the SDK's enum constants).
	for _, m := range []struct{ key, only string }{
		{"client_type", "public"},
		{"token_endpoint_auth_method", registry.AuthClientSecretPost},
	} {
		v, problem := iamRequiredString(f, m.key)
		if problem != "" {
			return nil, problem
		}
		if v != m.only {
			return nil, m.key + " must be " + m.only
		}
	}

	// scopes: optional; null counts as absent. Each value must be usable in
	// an OAuth scope parameter later, so RFC 6749's scope-token syntax
	// applies (this also rules out "" and values with spaces, which would
	// not survive joining into the stored space-separated scope).
	scopes, has, ferr := f.Strings("scopes")
	if ferr != nil {
		return nil, "scopes must be an array of strings"
	}
	for i, s := range scopes {
		if !iamScopeToken(s) {
			return nil, fmt.Sprintf("scopes[%d] is not a valid scope token (RFC 6749 section 3.3)", i)
		}
	}
	// Stored as one space-separated scope, each scope once, under the
	// limit every API keeps to; echoed as sent, as a server keeping the
	// list would.
	req.scope = strings.Join(iamDedupe(scopes), " ")
	if len(req.scope) > registry.MaxScopeLength {
		return nil, fmt.Sprintf("scopes may be at most %d characters long in all, separated by spaces", registry.MaxScopeLength)
	}
	req.scopes, req.hasScopes = scopes, has

	if req.grants, problem = iamRequiredList(f, "grant_types", iamGrantTypes); problem != "" {
		return nil, problem
	}
	if req.responses, problem = iamRequiredList(f, "response_types", iamResponseTypes); problem != "" {
		return nil, problem
	}
	return req, ""
}

// iamRequiredString reads a required string member; null counts as absent.
func iamRequiredString(f registry.Fields, key string) (string, string) {
	v, ok, err := f.String(key)
	switch {
	case err != nil:
		return "", key + " must be a string"
	case !ok:
		return "", key + " is required"
	}
	return v, ""
}

// iamRequiredList reads a required, non-empty array whose values must all
// be in allowed, and returns it without duplicates.
func iamRequiredList(f registry.Fields, key string, allowed []string) ([]string, string) {
	list, ok, err := f.Strings(key)
	switch {
	case err != nil:
		return nil, key + " must be an array of strings"
	case !ok:
		return nil, key + " is required"
	case len(list) == 0:
		return nil, key + " must not be empty"
	}
	for i, v := range list {
		if !slices.Contains(allowed, v) {
			return nil, fmt.Sprintf("%s[%d] must be %s", key, i, strings.Join(allowed, " or "))
		}
	}
	return iamDedupe(list), ""
}

// iamDedupe keeps the first occurrence of each value, in order. A map
// keeps it linear: a 64 KiB body can hold thousands of values.
func iamDedupe(list []string) []string {
	if list == nil {
		return nil
	}
	if len(list) <= 16 {
		// Short lists, the usual ones: compare pairwise, and keep a list
		// without repetitions as it is.
		dup := false
		for i := 1; i < len(list) && !dup; i++ {
			dup = slices.Contains(list[:i], list[i])
		}
		if !dup {
			return list
		}
	}
	seen := make(map[string]struct{}, len(list))
	out := make([]string, 0, len(list))
	for _, s := range list {
		if _, dup := seen[s]; !dup {
			seen[s] = struct{}{}
			out = append(out, s)
		}
	}
	return out
}

// iamScopeToken reports whether s is an RFC 6749 scope-token:
// 1*( %x21 / %x23-5B / %x5D-7E ).
func iamScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
			return false
		}
	}
	return true
}
