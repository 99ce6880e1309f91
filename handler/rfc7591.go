package handler

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/internal/jsonw"
	"github.com/caddy-dcr/caddy-dcr/registry"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

const wellKnownAS = "/.well-known/oauth-authorization-server"

// RFC7591 serves, relative to the prefix:
//
//	POST   /register                                 RFC 7591 registration
//	GET    /register/{client_id}                     RFC 7592 read
//	PUT    /register/{client_id}                     RFC 7592 update (full replacement)
//	DELETE /register/{client_id}                     RFC 7592 delete
//	GET    /.well-known/oauth-authorization-server   RFC 8414 metadata
//
// and the metadata also at the RFC 8414 location of the issuer
// (/.well-known/oauth-authorization-server followed by the issuer's path).
type RFC7591 struct {
	o *Options
}

// NewRFC7591 returns the RFC 7591/7592/8414 API.
func NewRFC7591(o *Options) *RFC7591 {
	o.setAPI(registry.APIRFC7591)
	return &RFC7591{o: o}
}

// The routes of RFC7591, as match finds them.
const (
	rfcNoRoute = iota
	rfcRegister
	rfcManage
	rfcMetadata
)

// Serve implements API.
func (a *RFC7591) Serve(w http.ResponseWriter, r *http.Request) bool {
	route, id := a.match(r)
	if route == rfcNoRoute {
		return false
	}
	a.o.hold()
	defer a.o.release()
	// Observed from the start, so that every answer to an operation is
	// counted, those of the checks below included.
	ob := observe(w, r, rfcOperation(route, r.Method))
	a.serve(ob, r, route, id)
	a.o.metrics.done(ob)
	return true
}

// rfcOperation is the operation a request to route is, for the metrics:
// "" for a wrong method or a CORS preflight, which are not counted.
func rfcOperation(route int, method string) string {
	switch route {
	case rfcRegister:
		if method == http.MethodPost {
			return opRegister
		}
	case rfcManage:
		return manageOp(method)
	case rfcMetadata:
		if method == http.MethodGet || method == http.MethodHead {
			return "metadata"
		}
	}
	return ""
}

func (a *RFC7591) serve(w http.ResponseWriter, r *http.Request, route int, id string) {
	if a.o.hostUnusable(r) {
		// Every answer here carries URLs built from the Host header.
		a.error(w, http.StatusBadRequest, registry.CodeInvalidRequest, "the Host header must be host or host:port")
		return
	}
	// Preflights and deletes answer no URL.
	if r.Method != http.MethodOptions && r.Method != http.MethodDelete {
		if name := a.o.unresolvedURL(r); name != "" {
			a.error(w, http.StatusBadRequest, registry.CodeInvalidRequest, "the server's "+name+" setting, made from this request, is no usable URL")
			return
		}
	}
	if route != rfcMetadata {
		a.o.checkIssuerPath(r)
		if r.Method == http.MethodOptions {
			// Like every other answer of these routes, a CORS one.
			setNoStore(w.Header())
		}
	}
	switch route {
	case rfcRegister:
		if a.o.CORS.apply(w, r, "POST") {
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", a.o.CORS.allow("POST"))
			a.error(w, http.StatusMethodNotAllowed, registry.CodeInvalidRequest, "use POST to register a client")
			return
		}
		a.register(w, r)
	case rfcManage:
		if !a.o.CORS.apply(w, r, "GET, HEAD, PUT, DELETE") {
			a.manage(w, r, id, manageOp(r.Method))
		}
	case rfcMetadata:
		a.serveMetadata(w, r)
	}
}

// match finds the route of a request, and the client id of a client
// configuration endpoint.
func (a *RFC7591) match(r *http.Request) (route int, id string) {
	if strings.HasPrefix(r.URL.Path, wellKnownAS) && !encodedSlash(r) {
		if p, slash := a.issuerMetadataPath(r); r.URL.Path == p || (slash && r.URL.Path == p+"/") {
			return rfcMetadata, ""
		}
	}
	var buf [4]string
	segs, ok := a.o.segments(r, buf[:0])
	switch {
	case !ok:
	case len(segs) == 1 && segs[0] == "register":
		return rfcRegister, ""
	case len(segs) == 2 && segs[0] == "register" && segs[1] != "":
		// "/register/" names no client: a page of the site's own.
		return rfcManage, segs[1]
	case len(segs) == 2 && segs[0] == ".well-known" && segs[1] == "oauth-authorization-server":
		return rfcMetadata, ""
	}
	return rfcNoRoute, ""
}

// deny writes a refusal of the registration gate.
func (a *RFC7591) deny(w http.ResponseWriter, d *Denial) {
	d.SetHeaders(w.Header())
	code := "invalid_token"
	switch d.Status {
	case http.StatusTooManyRequests:
		code = "too_many_requests"
	case http.StatusServiceUnavailable:
		code = CodeTemporarilyUnavailable
	}
	a.error(w, d.Status, code, d.Description)
}

// issuerMetadataPath is where RFC 8414 section 3.1 puts the metadata of
// this issuer: the well-known path followed by the issuer's own path,
// without its terminating "/". slash reports an issuer whose path ends
// with one, or has none: some clients keep that "/" (the Go MCP SDK), or
// read "https://host" as "https://host/" (the MCP Kotlin conformance
// client), and find the metadata at the path with a "/" added.
func (a *RFC7591) issuerMetadataPath(r *http.Request) (p string, slash bool) {
	path := ""
	if u, err := url.Parse(a.o.issuer(r)); err == nil {
		path = u.Path
	} else {
		// Placeholders that made no URL of it for this request: its path
		// as configured, so that the request is answered (400) rather
		// than passed on to the site.
		path, _ = ConfiguredPath(a.o.Issuer)
	}
	return wellKnownAS + strings.TrimRight(path, "/"), path == "" || strings.HasSuffix(path, "/")
}

// ConfiguredPath is the path of a configured URL, unescaped ("" when it
// has none); ok is false when the path holds placeholders (each request
// makes it) or does not unescape.
func ConfiguredPath(v string) (path string, ok bool) {
	i := strings.Index(v, "://")
	if i < 0 {
		return "", true
	}
	v = v[i+3:]
	j := strings.IndexByte(v, '/')
	if j < 0 {
		return "", true
	}
	v = v[j:]
	if k := strings.IndexAny(v, "?#"); k >= 0 {
		v = v[:k]
	}
	if p, err := url.PathUnescape(v); err == nil && !strings.Contains(v, "{") {
		return p, true
	}
	return "", false
}

// error writes an RFC 7591 error response.
func (a *RFC7591) error(w http.ResponseWriter, status int, code, desc string) {
	a.o.refused(status, code, desc)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	setNoStore(h)
	jw := jsonw.Get(jsonw.Compact)
	defer jw.Release()
	jw.Open().Key("error").Str(code)
	jw.OptStr("error_description", oauthText(desc))
	jw.Close()
	w.WriteHeader(status)
	_, _ = w.Write(jw.B)
}

// oauthText limits an error_description to the characters RFC 6749
// section 5.2 allows (printable ASCII but '"' and '\'), since descriptions
// quote what the client sent: '"' becomes "'", and anything else outside
// the set is percent-encoded byte by byte, as in a URI.
func oauthText(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+16)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			b = append(b, '\'')
		case c < 0x20 || c > 0x7e || c == '\\':
			b = append(b, '%', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func (a *RFC7591) unavailable(w http.ResponseWriter) {
	a.unavailableBecause(w, "the client store is unavailable; try again later")
}

// unavailableBecause answers 503 with Retry-After: the server cannot
// answer for now, for the reason desc.
func (a *RFC7591) unavailableBecause(w http.ResponseWriter, desc string) {
	w.Header().Set("Retry-After", RetryAfterSeconds)
	a.error(w, http.StatusServiceUnavailable, CodeTemporarilyUnavailable, desc)
}

// settlePoll is how often awaitSettled reads the client again.
const settlePoll = 50 * time.Millisecond

// awaitSettled waits until the update made with tok (tok is c's prior token,
// accepted again in pending) is settled: answered, which retires tok (a
// concurrent request that lost the race then gets its 401 within
// milliseconds), or left unanswered, when tok is accepted again from
// PriorRATFrom (at most one store timeout: the immediate repeat of an update
// answered 503 then goes through). It returns the client as last read and
// tok's standing; failed reports a store failure or the request's end.
func (a *RFC7591) awaitSettled(r *http.Request, c *registry.Client, tok string, pending time.Duration) (_ *registry.Client, ok, prior, failed bool) {
	t := time.NewTimer(min(pending, settlePoll))
	defer t.Stop()
	for {
		select {
		case <-r.Context().Done():
			return c, false, false, true
		case <-t.C:
		}
		began := time.Now()
		next, err := a.o.Registry.Peek(storeCtx(r), c.ID) // not a use: the token is not verified yet
		switch {
		case errors.Is(err, registry.ErrNotFound):
			return c, false, false, false
		case err != nil:
			a.o.storeFailure(began, "read", err)
			return c, false, false, true
		}
		c = next
		if ok, prior, pending = c.RATState(tok, a.o.Registry.Now()); pending <= 0 {
			return c, ok, prior, false
		}
		t.Reset(min(pending, settlePoll))
	}
}

// unauthorized answers 401 with a Bearer challenge (RFC 6750 section 3): no
// error code when no token was sent, invalid_token otherwise.
func (a *RFC7591) unauthorized(w http.ResponseWriter, tokenSent bool) {
	if tokenSent {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		a.error(w, http.StatusUnauthorized, "invalid_token", "the registration access token is invalid for this client")
		return
	}
	w.Header().Set("WWW-Authenticate", "Bearer")
	a.error(w, http.StatusUnauthorized, "invalid_token", "a registration access token is required (Authorization: Bearer)")
}

// jsonBody reports a request whose Content-Type is JSON. Two different
// ones would be read differently by the hops in front of the plugin (RFC
// 9110 section 5.3: Content-Type takes one value); the same one repeated
// is no ambiguity.
func jsonBody(r *http.Request) bool {
	v := r.Header.Values("Content-Type")
	for _, o := range v[min(1, len(v)):] {
		if !strings.EqualFold(o, v[0]) {
			return false
		}
	}
	return len(v) > 0 && isJSONContentType(v[0])
}

func isJSONContentType(ct string) bool {
	if strings.EqualFold(ct, "application/json") {
		return true // what mime.ParseMediaType would say, without its map
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// encodedBody describes the problem with a request whose body is sent
// compressed (or otherwise encoded), "" when it is not: such a body would
// be read as garbage JSON, and the client is better told why.
func encodedBody(r *http.Request) string {
	ce := r.Header.Get("Content-Encoding")
	if ce == "" || strings.EqualFold(ce, "identity") {
		return ""
	}
	if len(ce) > 32 {
		ce = ce[:32] + "..."
	}
	return "Content-Encoding " + ce + " is not supported; send the body uncompressed"
}

// readObject reads and decodes a JSON-object body, answering the request
// itself (and returning false) when it cannot.
func (a *RFC7591) readObject(w http.ResponseWriter, r *http.Request) (registry.Fields, bool) {
	if !jsonBody(r) {
		a.error(w, http.StatusBadRequest, registry.CodeInvalidRequest, "the request body must be JSON (Content-Type: application/json)")
		return nil, false
	}
	if msg := encodedBody(r); msg != "" {
		a.error(w, http.StatusBadRequest, registry.CodeInvalidRequest, msg)
		return nil, false
	}
	body, err := readBody(w, r)
	if errors.Is(err, errBodyTooLarge) {
		a.error(w, http.StatusRequestEntityTooLarge, registry.CodeInvalidRequest, "the request body is larger than "+strconv.FormatInt(bodyLimit(err), 10)+" bytes")
		return nil, false
	}
	if err != nil {
		a.error(w, http.StatusBadRequest, registry.CodeInvalidRequest, "the request body could not be read")
		return nil, false
	}
	f, ferr := registry.DecodeObject(body)
	if ferr != nil {
		a.error(w, http.StatusBadRequest, ferr.Code, ferr.Description)
		return nil, false
	}
	return f, true
}

func (a *RFC7591) register(w http.ResponseWriter, r *http.Request) {
	adm, d := a.o.admit(r)
	if d != nil {
		a.deny(w, d)
		return
	}
	f, ok := a.readObject(w, r)
	if !ok {
		return
	}
	c, merr := a.parseMetadata(r, f, "")
	if merr != nil {
		a.metadataError(w, merr)
		return
	}
	c.API = registry.APIRFC7591
	c.Permitted = true
	iss, d, err := a.o.create(r, c, registry.Issue{
		Format: registry.FormatRFC7591, RAT: true, SecretLifetime: a.o.secretLifetime(0),
	}, adm)
	if d != nil {
		a.deny(w, d)
		return
	}
	if err != nil {
		a.internal(w, "register", err)
		return
	}
	uri := a.clientURI(r, c.ID)
	w.Header().Set("Location", uri)
	a.writeClient(w, http.StatusCreated, c, iss.Secret, iss.RAT, uri)
}

// parseMetadata validates the metadata of a registration or update, after
// applying a software statement if one was sent; stored is the client's
// statement on an update (see applyStatement).
func (a *RFC7591) parseMetadata(r *http.Request, f registry.Fields, stored string) (*registry.Client, *registry.Error) {
	stmt, serr := a.o.applyStatement(r, f, stored)
	if serr != nil {
		return nil, serr
	}
	c, merr := a.o.Policy.ParseMetadata(f)
	if merr != nil {
		return nil, merr
	}
	c.SoftwareStatement = stmt
	return c, nil
}

// metadataError answers metadata that parseMetadata refused: 400, or 503
// when a software statement could not be checked for now.
func (a *RFC7591) metadataError(w http.ResponseWriter, merr *registry.Error) {
	if merr.Code == CodeTemporarilyUnavailable {
		a.unavailableBecause(w, merr.Description)
		return
	}
	a.error(w, http.StatusBadRequest, merr.Code, merr.Description)
}

// internal answers an unexpected error (a bug, not a user's doing) with 500
// in the API's format and logs it.
func (a *RFC7591) internal(w http.ResponseWriter, op string, err error) {
	a.o.Logger.Error("unexpected error", zap.String("api", a.o.api), zap.String("op", op), zap.Error(err))
	a.error(w, http.StatusInternalServerError, "server_error", "internal error")
}

func (a *RFC7591) clientURI(r *http.Request, id string) string {
	if a.o.Issuer == "" {
		// base(r) + ..., in one allocation.
		scheme := a.o.scheme(r)
		return scheme + publishedHost(r.Host, scheme) + a.o.mount(r) + a.o.urlPrefix() + "/register/" + url.PathEscape(id)
	}
	return a.o.base(r) + "/register/" + url.PathEscape(id)
}

// writeClient writes the client information response (RFC 7591 3.2.1,
// RFC 7592 3): every registered field, defaults included. The secret
// appears only when just issued, as only its hash is kept; rat is the
// token just issued or, on a read, the one the client presented.
func (a *RFC7591) writeClient(w http.ResponseWriter, status int, c *registry.Client, secret, rat, uri string) {
	jw := jsonw.Get(jsonw.Compact)
	defer jw.Release()
	jw.Open()
	jw.Key("client_id").Str(c.ID)
	jw.OptStr("client_secret", secret)
	jw.Key("client_id_issued_at").Int(c.IssuedAt())
	if c.Confidential() {
		jw.Key("client_secret_expires_at").Int(c.SecretExpiresAt)
	}
	jw.OptStr("registration_access_token", rat)
	jw.Key("registration_client_uri").Str(uri)
	WriteMetadata(jw, c)
	jw.Close()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	setNoStore(h)
	w.WriteHeader(status)
	_, _ = w.Write(jw.B)
}

// WriteMetadata appends the RFC 7591 metadata members of c to an open object.
func WriteMetadata(jw *jsonw.Writer, c *registry.Client) {
	// redirect_uris is always echoed, [] when empty: MCP clients require it.
	jw.Key("redirect_uris").Strings(nonNil(c.RedirectURIs))
	jw.Key("token_endpoint_auth_method").Str(c.TokenEndpointAuthMethod)
	jw.Key("grant_types").Strings(nonNil(c.GrantTypes))
	jw.Key("response_types").Strings(nonNil(c.ResponseTypes))
	jw.OptStr("token_endpoint_auth_signing_alg", c.TokenEndpointAuthSigningAlg)
	jw.OptStr("application_type", c.ApplicationType).OptStr("client_name", c.ClientName).
		OptStr("client_uri", c.ClientURI).OptStr("logo_uri", c.LogoURI).OptStr("tos_uri", c.TOSURI).
		OptStr("policy_uri", c.PolicyURI).OptStr("jwks_uri", c.JWKSURI)
	if len(c.JWKS) > 0 {
		jw.Key("jwks").Raw(c.JWKS)
	}
	jw.OptStr("scope", c.Scope)
	if len(c.Contacts) > 0 {
		jw.Key("contacts").Strings(c.Contacts)
	}
	jw.OptStr("software_id", c.SoftwareID)
	jw.OptStr("software_version", c.SoftwareVersion)
	jw.OptStr("software_statement", c.SoftwareStatement)
	if len(c.Localized) > 0 {
		keys := make([]string, 0, len(c.Localized))
		for k := range c.Localized {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			jw.Key(k).Str(c.Localized[k])
		}
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// errTokenChanged aborts an update whose token was rotated or revoked by a
// concurrent request after it was checked.
var errTokenChanged = errors.New("registration access token no longer valid")

// errTokenPending stops a change whose token turned out to be the prior
// token of an update made meanwhile and not settled yet (raceWait).
var errTokenPending = errors.New("registration access token is that of an update not settled yet")

// errRaceUnsettled: a change waited for racing updates raceRetries times,
// or could not wait (a store failure, the request's end); answered 503, it
// is repeated by the client.
var errRaceUnsettled = errors.New("racing updates made with the same registration access token did not settle")

// raceRetries is how many racing updates a change waits for.
const raceRetries = 3

// raceWait makes a PUT or DELETE whose token was current when manage
// checked it, but which finds it rotated by an update with the same token
// written in between, wait for that update to settle, as manage waits for
// one it finds pending: the update may never be answered (its client gone,
// or a 503), and then the token is the client's again. Without, the
// request would take the rotation for a revocation and answer a 401 the
// client must take as final (RFC 7592 section 2).
type raceWait struct {
	c       *registry.Client // as the change found it, when pending
	pending time.Duration
}

// check is the token check of a change: nil when tok is accepted,
// errTokenPending (noting c) while a racing update is unsettled, else
// errTokenChanged.
func (rw *raceWait) check(c *registry.Client, tok string, now time.Time) error {
	ok, _, pending := c.RATState(tok, now)
	switch {
	case pending > 0:
		rw.c, rw.pending = c, pending
		return errTokenPending
	case !ok:
		return errTokenChanged
	}
	return nil
}

// retry runs op, a change that checks its token with rw.check, and runs
// it again each time it found the token pending, once awaitSettled has the
// racing update settled with tok accepted: errTokenChanged when it is not,
// errRaceUnsettled after raceRetries such waits or when one fails.
func (rw *raceWait) retry(a *RFC7591, r *http.Request, tok string, op func() (*registry.Client, error)) (*registry.Client, error) {
	for attempt := 0; ; attempt++ {
		rw.c = nil
		c, err := op()
		if !errors.Is(err, errTokenPending) {
			return c, err
		}
		if attempt == raceRetries {
			return nil, errRaceUnsettled
		}
		_, ok, _, failed := a.awaitSettled(r, rw.c, tok, rw.pending)
		switch {
		case failed:
			return nil, errRaceUnsettled
		case !ok:
			return nil, errTokenChanged
		}
	}
}

// manage serves RFC 7592 read, update and delete; op is manageOp(r.Method).
func (a *RFC7591) manage(w http.ResponseWriter, r *http.Request, id, op string) {
	if op == "" {
		w.Header().Set("Allow", a.o.CORS.allow("GET, HEAD, PUT, DELETE"))
		a.error(w, http.StatusMethodNotAllowed, registry.CodeInvalidRequest, "use GET, PUT or DELETE on a client configuration endpoint")
		return
	}
	tok, sent := bearer(r)
	if tok == "" {
		a.unauthorized(w, sent)
		return
	}
	began := time.Now()
	c, used, err := a.o.Registry.Lookup(storeCtx(r), id)
	if a.o.storeFailure(began, "read", err) {
		a.unavailable(w)
		return
	}
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		a.internal(w, op, err)
		return
	}
	// RFC 7592 section 2: an unknown client and a wrong token both get 401,
	// never 404, so that client ids cannot be probed.
	var ok, prior bool
	if err == nil {
		var pending time.Duration
		if ok, prior, pending = c.RATState(tok, a.o.Registry.Now()); pending > 0 {
			// An update made with this token is being carried out, or was
			// answered 503 a moment ago: whether the token is superseded is
			// not known yet, and a 401 would be final for the client.
			var failed bool
			if c, ok, prior, failed = a.awaitSettled(r, c, tok, pending); failed {
				a.unavailable(w)
				return
			}
		}
	}
	if !ok {
		a.revokeMisused(storeCtx(r), tok, id)
		a.unauthorized(w, true)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead: // net/http sends no body for HEAD
		switch code, why := preconditionFails(r, http.StatusNotModified); code {
		case http.StatusPreconditionFailed:
			a.error(w, code, registry.CodeInvalidRequest, why)
			return
		case http.StatusNotModified:
			// If-None-Match "*" is false for a read: no body, nor the
			// credential a 200 would echo; still not for caches (RFC
			// 9110 section 15.4.5 lets a 304 carry Cache-Control).
			setNoStore(w.Header())
			w.WriteHeader(code)
			return
		}
		if used != nil {
			used() // a read by the client itself keeps it alive (idle_lifetime)
		}
		if prior {
			// The client never got the token its last update was answered
			// with: the one it holds becomes its token again.
			a.restorePriorRAT(storeCtx(r), id, tok)
		}
		// RFC 7592 section 3 makes registration_access_token REQUIRED in
		// every client information response, reads included. Only its hash
		// is stored, but the client has just presented the token itself and
		// it verified: echoing it satisfies the RFC without rotating it (a
		// read must not invalidate the token of a concurrent reader).
		a.writeClient(w, http.StatusOK, c, "", tok, a.clientURI(r, id))
	case http.MethodPut, http.MethodDelete:
		if code, why := changeRefused(r); code != 0 {
			a.error(w, code, registry.CodeInvalidRequest, why)
			return
		}
		if r.Method == http.MethodPut {
			a.update(w, r, c, tok)
		} else {
			a.delete(w, r, id, tok)
		}
	}
}

// changeRefused says why (with the status to answer) a PUT or DELETE of
// an existing client must not be carried out, or returns 0. Clients are served without entity tags, so an
// If-Match that lists tags can never hold, nor can If-None-Match "*" on a
// client that exists (RFC 9110 sections 13.1.1, 13.1.2: evaluated before
// the method, 412 when false); a partial PUT (Content-Range) would be taken
// for a full replacement (section 14.5: 400).
func changeRefused(r *http.Request) (int, string) {
	if r.Method == http.MethodPut && r.Header.Get("Content-Range") != "" {
		return http.StatusBadRequest, "a partial update (Content-Range) is not supported: PUT replaces the whole registration"
	}
	return preconditionFails(r, http.StatusPreconditionFailed)
}

// preconditionFails evaluates If-Match, then If-None-Match (RFC 9110
// section 13.2.2) against a client that exists and has no entity tag: 412
// when If-Match lists tags, noneMatch when If-None-Match has "*" (412 for a
// change, 304 for a read: section 13.1.2), else 0.
func preconditionFails(r *http.Request, noneMatch int) (int, string) {
	if v := r.Header.Values("If-Match"); len(v) > 0 && strings.TrimSpace(strings.Join(v, ",")) != "*" {
		return http.StatusPreconditionFailed, "If-Match: client registrations have no entity tags, so no tag matches"
	}
	for _, v := range r.Header.Values("If-None-Match") {
		for t := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(t) == "*" {
				return noneMatch, "If-None-Match: *: the client exists"
			}
		}
	}
	return 0, ""
}

// tokenValid reports whether tok is c's registration access token, or the
// one an update whose answer may have been lost was made with.
func (a *RFC7591) tokenValid(c *registry.Client, tok string) bool {
	ok, _ := c.CheckRAT(tok, a.o.Registry.Now())
	return ok
}

// manageOp names the RFC 7592 operation of a method on a client
// configuration endpoint ("" for a method it does not serve).
func manageOp(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return "read"
	case http.MethodPut:
		return "update"
	case http.MethodDelete:
		return "delete"
	}
	return ""
}

// revokeMisused revokes a registration access token that was presented for
// another client than its own (RFC 7592 section 2.1: it SHOULD be revoked).
func (a *RFC7591) revokeMisused(ctx context.Context, tok, usedFor string) {
	owner := registry.RATClientID(tok)
	if owner == "" || owner == usedFor {
		return
	}
	_, err := a.o.Registry.Update(ctx, owner, func(c *registry.Client) error {
		if !a.tokenValid(c, tok) {
			return errTokenChanged
		}
		c.RevokeRATs()
		return nil
	})
	if err == nil {
		a.o.Logger.Warn("registration access token presented for another client; revoked",
			zap.String("api", a.o.api), zap.String("client_id", owner))
	}
}

// forbiddenOnUpdate are the members RFC 7592 section 2.2 forbids in a PUT.
var forbiddenOnUpdate = []string{"registration_access_token", "registration_client_uri", "client_secret_expires_at", "client_id_issued_at"}

func (a *RFC7591) update(w http.ResponseWriter, r *http.Request, cur *registry.Client, tok string) {
	f, ok := a.readObject(w, r)
	if !ok {
		return
	}
	if id, _, _ := f.String("client_id"); id != cur.ID {
		a.error(w, http.StatusBadRequest, registry.CodeInvalidRequest, "the request body must contain the client's client_id")
		return
	}
	for _, k := range forbiddenOnUpdate {
		if _, present := f[k]; present {
			a.error(w, http.StatusBadRequest, registry.CodeInvalidRequest, k+" must not be sent in an update")
			return
		}
	}
	if s, present, serr := f.String("client_secret"); serr != nil || (present && !registry.Verify(cur.SecretHash, s)) {
		a.error(w, http.StatusBadRequest, registry.CodeInvalidRequest, "client_secret does not match the client's current secret")
		return
	}
	m, merr := a.parseMetadata(r, f, cur.SoftwareStatement)
	if merr != nil {
		a.metadataError(w, merr)
		return
	}
	// The registration access token is rotated on every update (RFC 7592
	// section 2.2 allows it): the response carries the new one. The token
	// the update is made with stays valid until the update is answered (see
	// registry.Client.PriorRATHash): if this write is answered 503 but
	// carried out later by a stalled store, the client, which never got the
	// new token, can still read its registration or send the update again.
	rat := registry.NewRAT(cur.ID)
	var secret string
	lifetime := a.o.secretLifetime(0)
	var now time.Time
	var racing raceWait
	began := time.Now()
	updated, err := racing.retry(a, r, tok, func() (*registry.Client, error) {
		now = a.o.Registry.Now()
		return a.o.Registry.Update(storeCtx(r), cur.ID, func(c *registry.Client) error {
			if err := racing.check(c, tok, now); err != nil {
				return err
			}
			a.replaceClient(c, m, rat, tok, now, lifetime, &secret)
			return nil
		})
	})
	switch {
	case errors.Is(err, errRaceUnsettled):
		a.unavailable(w)
		return
	case a.o.storeFailure(began, "update", err):
		a.unavailable(w)
		return
	case errors.Is(err, errTokenChanged), errors.Is(err, registry.ErrNotFound):
		a.unauthorized(w, true)
		return
	case err != nil:
		a.internal(w, "update", err)
		return
	}
	a.answerUpdate(w, r, updated, secret, rat)
}

// replaceClient is an RFC 7592 update of c (stored as read, its token
// checked) to m's metadata: the token rotated to rat, and a secret issued
// into *secret when the client needs a new one.
func (a *RFC7591) replaceClient(c, m *registry.Client, rat, tok string, now time.Time, lifetime time.Duration, secret *string) {
	c.ReplaceMetadata(m)
	c.RotateRAT(rat, tok, now, a.priorRATDelay())
	*secret = ""
	switch {
	case !registry.NeedsSecret(c.TokenEndpointAuthMethod):
		c.SecretHash, c.SecretExpiresAt, c.SecretUndelivered = "", 0, false
	case c.SecretHash == "" || c.SecretUndelivered || c.SecretExpired(now):
		// Switching to a method that needs a secret issues one, and so
		// does an update after one whose answer, with the secret it
		// issued, may have been lost, and an update of a client whose
		// secret expired (RFC 7592 section 2.2 lets the server issue a
		// new one): without, it could never get a working secret again.
		*secret = registry.FormatRFC7591.NewSecret()
		c.SetSecret(*secret, a.o.Registry.SecretExpiry(c, now, lifetime))
		c.SecretUndelivered = true // until the answer is on its way (RetirePriorRAT)
	}
}

// answerUpdate answers an update carried out: with the client, rat and
// any new secret, once the token the update was made with is retired.
func (a *RFC7591) answerUpdate(w http.ResponseWriter, r *http.Request, updated *registry.Client, secret, rat string) {
	if r.Context().Err() != nil {
		// The client went away before its answer: the new token can never
		// reach it, so the old one is not retired and becomes valid again
		// after priorRATDelay, as for any update whose answer was lost.
		// Retired, it would lock the client out of its own registration.
		// A client that only half-closed its connection still reads:
		// it gets the 503 of an update whose answer was lost (with no
		// answer at all, net/http would send it an empty 200).
		a.o.Logger.Info("client updated, but the request was gone before the answer: the token it was made with stays valid",
			zap.String("api", a.o.api), zap.String("client_id", updated.ID))
		a.unavailable(w)
		return
	}
	if err := a.retirePriorRAT(storeCtx(r), r.Context(), updated.ID, rat); storage.Unwritten(err) || errors.Is(err, errSuperseded) {
		// The update was carried out, but its old token is still valid
		// (or valid again): a 200 would leave it so for up to an hour, or
		// hand out a token that no longer works. Answered 503, the update
		// is one whose answer was lost, and the client's repeat with the
		// old token (valid by then) is accepted.
		a.unavailable(w)
		return
	}
	a.o.registered(r, updated.ID)
	a.o.Logger.Info("client updated", zap.String("api", a.o.api), zap.String("client_id", updated.ID))
	a.writeClient(w, http.StatusOK, updated, secret, rat, a.clientURI(r, updated.ID))
}

// priorRATDelay is how long after an update the token it was made with is
// accepted again if the update is not answered (registry.RotateRAT): the
// store's timeout, which a 503 takes at least, and which an answered update
// normally stays well within.
func (a *RFC7591) priorRATDelay() time.Duration {
	if d := storage.OpTimeout(a.o.Registry.Store); d > 0 {
		return max(d, 100*time.Millisecond)
	}
	return time.Second
}

// retirePriorRAT ends the validity of the token an update was made with,
// now that the update is to be answered with rat, the new one, unless
// another update came first. It returns the store's failure, if any: one
// known to have written nothing leaves the old token valid; after one whose
// outcome is open the old token may stay valid until it lapses
// (registry.PriorRATLifetime), which is logged.
//
// A failure whose outcome is open (a reply lost) is retried a few times:
// the retire is conditional, so a repeat that finds it done, or another
// update since, changes nothing. Left open, a client that was answered with
// rat could have it undone by whoever presents the old token.
func (a *RFC7591) retirePriorRAT(ctx, cancelled context.Context, id, rat string) error {
	retire := func(c *registry.Client) error {
		if !registry.Verify(c.RATHash, rat) {
			return errSuperseded
		}
		if c.PriorRATHash == "" && !c.SecretUndelivered {
			return errTokenChanged // retired already (an attempt whose reply was lost)
		}
		c.RetirePriorRAT()
		return nil
	}
	var err error
	pause := retireRetryPause
	// Within about one store timeout in all: the client waits meanwhile.
	deadline := time.Now().Add(a.priorRATDelay())
	for attempt := 0; ; attempt++ {
		if err = a.changeTokens(ctx, id, retire); err == nil || errors.Is(err, errSuperseded) {
			return err
		}
		if storage.Unwritten(err) && attempt == 0 {
			return err // nothing written: the old token is known to be valid
		}
		if attempt == retireRetries || time.Now().Add(pause).After(deadline) || cancelled.Err() != nil {
			break
		}
		time.Sleep(pause)
		pause *= 2
	}
	// Whatever became of the retire, a token other than rat may be the
	// client's by now (the old one, presented once an update unanswered
	// for a timeout counts as lost): then rat must not be handed out.
	if c, perr := a.o.Registry.Peek(ctx, id); perr == nil && !registry.Verify(c.RATHash, rat) {
		return errSuperseded
	}
	a.o.Logger.Warn("client updated, but whether the registration access token it was made with was retired is unknown; it may stay valid until it lapses",
		zap.String("client_id", id), zap.Duration("lapses_in", registry.PriorRATLifetime), zap.Error(err))
	// Not Unwritten, whatever the last attempt's error: an earlier one may
	// have retired the token, and a 503 would leave the client with none.
	return errRetireUnknown
}

// errSuperseded is a retire that found the client's token is no longer the
// one the update is to be answered with: the old token became the client's
// token again (presented while the update was pending) or another update
// followed. Answered 503, the client repeats the update with its old token.
var errSuperseded = errors.New("the registration access token was superseded before the update was answered")

// errRetireUnknown: see retirePriorRAT.
var errRetireUnknown = errors.New("whether the prior registration access token was retired is unknown")

// How often, and after what first pause (doubling), a retire whose outcome
// is open is tried again.
var (
	retireRetries    = 3
	retireRetryPause = 50 * time.Millisecond
)

// restorePriorRAT makes tok, the token an update whose answer was lost was
// made with, the client's token again, as the client presented it on a
// read: it never got the new one. If the store fails, tok stays valid
// until it lapses, and the next read tries again.
func (a *RFC7591) restorePriorRAT(ctx context.Context, id, tok string) {
	now := a.o.Registry.Now()
	err := a.changeTokens(ctx, id, func(c *registry.Client) error {
		if ok, prior := c.CheckRAT(tok, now); !ok || !prior {
			return errTokenChanged
		}
		c.RestorePriorRAT()
		return nil
	})
	switch {
	case storage.NotReplicated(err):
		// On the master, as the client will see; only a failover now
		// would bring the lapsing token back.
		a.o.Logger.Warn("registration access token of an update whose answer was lost was restored on the Redis master, but the replicas did not confirm it (wait_replicas)",
			zap.String("client_id", id), zap.Error(err))
	case err != nil:
		// A store outage is logged once as such (changeTokens told
		// Health); a line per read presenting the token would flood the
		// log while writes fail.
		level := zap.WarnLevel
		if storage.IsUnavailable(err) {
			level = zap.DebugLevel
		}
		if ce := a.o.Logger.Check(level, "registration access token of an update answered 503 could not be made the client's token again; it stays valid until it lapses"); ce != nil {
			ce.Write(zap.String("client_id", id), zap.Error(err))
		}
	}
}

// changeTokens applies change, a step of the bookkeeping of a client's
// registration access tokens, to the stored client. A change that finds
// the client changed meanwhile (errTokenChanged) or gone has nothing to do
// and is no failure; a store failure is reported to Health and returned.
func (a *RFC7591) changeTokens(ctx context.Context, id string, change func(c *registry.Client) error) error {
	began := time.Now()
	_, err := a.o.Registry.Update(ctx, id, change)
	if err == nil || errors.Is(err, errTokenChanged) || errors.Is(err, registry.ErrNotFound) {
		return nil
	}
	a.o.storeFailure(began, "update", err)
	return err
}

func (a *RFC7591) delete(w http.ResponseWriter, r *http.Request, id, tok string) {
	var racing raceWait
	began := time.Now()
	_, err := racing.retry(a, r, tok, func() (*registry.Client, error) {
		now := a.o.Registry.Now()
		return nil, a.o.Registry.Delete(storeCtx(r), id, func(c *registry.Client) error {
			return racing.check(c, tok, now)
		})
	})
	switch {
	case errors.Is(err, errRaceUnsettled):
		a.unavailable(w)
		return
	case a.o.storeFailure(began, "delete", err):
		a.unavailable(w)
		return
	case errors.Is(err, errTokenChanged), errors.Is(err, registry.ErrNotFound):
		a.unauthorized(w, true)
		return
	case err != nil:
		a.internal(w, "delete", err)
		return
	}
	a.o.Logger.Info("client deleted", zap.String("api", a.o.api), zap.String("client_id", id))
	setNoStore(w.Header())
	w.WriteHeader(http.StatusNoContent)
}

// serveMetadata answers a request for the metadata document; reads of it
// are counted as the operation "metadata".
func (a *RFC7591) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if a.o.CORS.apply(w, r, "GET, HEAD") {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", a.o.CORS.allow("GET, HEAD"))
		a.error(w, http.StatusMethodNotAllowed, registry.CodeInvalidRequest, "use GET to read the server metadata")
		return
	}
	a.metadata(w, r)
}

// metadata writes the RFC 8414 authorization server metadata.
func (a *RFC7591) metadata(w http.ResponseWriter, r *http.Request) {
	p := &a.o.Policy
	jw := jsonw.Get(jsonw.Compact)
	defer jw.Release()
	jw.Open()
	jw.Key("issuer").Str(a.o.issuer(r))
	jw.Key("authorization_endpoint").Str(a.o.endpoint(r, a.o.AuthorizationEndpoint, "/authorize"))
	jw.Key("token_endpoint").Str(a.o.endpoint(r, a.o.TokenEndpoint, "/token"))
	if !a.o.HideRegistrationEndpoint {
		jw.Key("registration_endpoint").Str(a.o.base(r) + "/register")
	}
	if len(p.Scopes) > 0 {
		jw.Key("scopes_supported").Strings(p.Scopes)
	}
	if rts := p.SupportedResponseTypes(); len(rts) > 0 {
		// RFC 8414 section 3.2: an empty list is left out (a policy whose
		// allowed response types all need grant types it leaves out).
		jw.Key("response_types_supported").Strings(rts)
	}
	jw.Key("grant_types_supported").Strings(p.SupportedGrantTypes())
	jw.Key("token_endpoint_auth_methods_supported").Strings(p.SupportedAuthMethods())
	if algs := p.SupportedSigningAlgs(); len(algs) > 0 {
		jw.Key("token_endpoint_auth_signing_alg_values_supported").Strings(algs)
	}
	jw.Key("code_challenge_methods_supported").Strings([]string{"S256"})
	jw.Close()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	// Written for HEAD too: net/http drops the body but keeps the length,
	// so HEAD has the header fields of GET (RFC 9110 section 9.3.2).
	h.Set("Content-Length", strconv.Itoa(len(jw.B)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(jw.B)
}
