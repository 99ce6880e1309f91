package handler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/internal/jsonw"
	"github.com/caddy-dcr/caddy-dcr/registry"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

// SuperClient is a Kustvakt super client declared in the configuration.
type SuperClient struct {
	ClientID   string
	SecretHash string // never "": a super client without a secret is not super
}

// KustvaktOptions are the Kustvakt-only settings.
type KustvaktOptions struct {
	SuperClients []SuperClient
	// Location is the zone in which dates are printed.
	Location       *time.Location
	AdminUsers     []string
	AdminTokenHash string
}

// Kustvakt serves KorAP Kustvakt's OAuth2 client services under
// {prefix}/v1.0/ and {prefix}/ (the wiki's unversioned paths):
//
//	POST   oauth2/client/register              register (JSON)
//	POST   oauth2/client/{client_id}           client info, for super clients
//	DELETE oauth2/client/deregister/{id}       deregister
//	POST   oauth2/client/reset                 new secret
//	POST   oauth2/client/list                  the user's clients
//	POST   plugins                             plugin list
//	POST   plugins/install, plugins/installed, plugins/uninstall
//	POST   admin/oauth2/client/privilege       mark super / approve plugin (admins)
//
// The user is whoever a preceding Caddy authentication handler put in
// {http.auth.user.id}.
type Kustvakt struct {
	o *Options
	k KustvaktOptions
}

// NewKustvakt returns the Kustvakt API.
func NewKustvakt(o *Options, k KustvaktOptions) *Kustvakt {
	if k.Location == nil {
		k.Location = time.UTC
	}
	o.setAPI(registry.APIKustvakt)
	return &Kustvakt{o: o, k: k}
}

const (
	kustvaktJSON       = "application/json;charset=utf-8"
	kustvaktMaxRefresh = 31536000 // one year, Kustvakt's oauth2.refresh.token.long.expiry
	kustvaktGuest      = "guest"
)

// Kustvakt's status codes (StatusCodes.java).
const (
	kcMissingParameter     = 105
	kcInvalidArgument      = 107
	kcNotSupported         = 108
	kcNotAllowed           = 109
	kcNotFound             = 114
	kcServiceUnavailable   = 116
	kcDeserializationError = 201
	kcUnsupportedValue     = 204
	kcPluginNotPermitted   = 1850
	kcPluginInstalled      = 1851
	kcAuthorizationFailed  = 2010
)

type kustvaktRequest struct {
	w    http.ResponseWriter
	r    *http.Request
	user string
	// began is when the request arrived: a store success of its ends an
	// outage only if it began after it (Health.OK).
	began time.Time
}

// Serve implements API.
func (a *Kustvakt) Serve(w http.ResponseWriter, r *http.Request) bool {
	var buf [8]string
	segs, ok := a.o.segments(r, buf[:0])
	if !ok || len(segs) == 0 {
		return false
	}
	// The unversioned root is the same API as v1.0, the current version
	// (the one the wiki's examples were written for): the deprecated
	// authorized_only, accepted by v1.0 only, works under both.
	if segs[0] == "v1.0" {
		segs = segs[1:]
	}
	// Jersey matches a resource path with or without one trailing slash
	// ("register/" is "register", "deregister/" has no client id).
	if n := len(segs); n > 1 && segs[n-1] == "" {
		segs = segs[:n-1]
	}
	route, method, op := a.match(segs)
	if route == nil {
		return false
	}
	a.o.hold()
	defer a.o.release()
	req := &kustvaktRequest{w: w, r: r, user: kustvaktUser(a.o.user(r)), began: time.Now()}
	// Observed from here (a preflight or a wrong method is not counted as
	// an operation), so that those answers too are sent before a body they
	// do not read (observed.answeringBeforeBody).
	ob := observe(w, r, "")
	defer a.o.metrics.done(ob)
	if a.o.CORS.apply(ob, r, method) {
		return true
	}
	if r.Method != method {
		ob.Header().Set("Allow", a.o.CORS.allow(method))
		a.notify(ob, http.StatusMethodNotAllowed, kcNotAllowed, "Method "+r.Method+" is not allowed; use "+method)
		return true
	}
	ob.op = op
	req.w = ob
	route(req)
	return true
}

// match finds the handler of a path (relative to the root), its method and
// the name of its operation in the metrics.
func (a *Kustvakt) match(s []string) (route func(*kustvaktRequest), method, op string) {
	switch {
	case len(s) == 3 && s[0] == "oauth2" && s[1] == "client":
		switch s[2] {
		case "register":
			return a.register, http.MethodPost, opRegister
		case "reset":
			return a.reset, http.MethodPost, "reset"
		case "list":
			return a.list, http.MethodPost, "list"
		}
		id := s[2]
		if id == "" {
			return nil, "", "" // {client_id} matches no empty segment
		}
		return func(q *kustvaktRequest) { a.info(q, id) }, http.MethodPost, "info"
	case len(s) == 4 && s[0] == "oauth2" && s[1] == "client" && s[2] == "deregister" && s[3] != "":
		id := s[3]
		return func(q *kustvaktRequest) { a.deregister(q, id) }, http.MethodDelete, "deregister"
	case len(s) == 1 && s[0] == "plugins":
		return a.plugins, http.MethodPost, "plugins"
	case len(s) == 2 && s[0] == "plugins":
		switch s[1] {
		case "install":
			return a.install, http.MethodPost, "install"
		case "installed":
			return a.installed, http.MethodPost, "installed"
		case "uninstall":
			return a.uninstall, http.MethodPost, "uninstall"
		}
	case len(s) == 4 && s[0] == "admin" && s[1] == "oauth2" && s[2] == "client" && s[3] == "privilege":
		return a.privilege, http.MethodPost, "privilege"
	}
	return nil, "", ""
}

// ---- the two error formats ------------------------------------------------

// oauthError writes Kustvakt's OAuth2-format error: nimbus/json-smart key
// order (error_description first) and escaping, no-store headers, and a
// Basic challenge on 401.
func (a *Kustvakt) oauthError(w http.ResponseWriter, status int, code, desc string) {
	a.o.refused(status, code, desc)
	h := w.Header()
	h.Set("Content-Type", kustvaktJSON)
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-store")
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Basic realm="Kustvakt"`)
	}
	jw := jsonw.Get(jsonw.JSONSmart)
	defer jw.Release()
	jw.Open().Key("error_description").Str(desc).Key("error").Str(code).Close()
	w.WriteHeader(status)
	_, _ = w.Write(jw.B)
}

func (a *Kustvakt) invalidRequest(w http.ResponseWriter, desc string) {
	a.oauthError(w, http.StatusBadRequest, "invalid_request", desc)
}

func (a *Kustvakt) unknownClient(w http.ResponseWriter, id string) {
	a.oauthError(w, http.StatusUnauthorized, "invalid_client", "Unknown client: "+id)
}

// notifyStatus is Kustvakt's status for a notification code.
func notifyStatus(code int) int {
	switch {
	case code >= 2001 || code == 1822:
		return http.StatusUnauthorized
	case code == 509:
		return http.StatusConflict
	case code == 104:
		return http.StatusNotAcceptable
	case code == kcNotFound:
		return http.StatusNotFound
	case code == kcServiceUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

// notify writes a Krill notification {"errors":[[code, message, entity]]}
// and a newline: always those three elements, as Krill's Message writes
// the message and every parameter, nulls included (Kustvakt passes its
// exception's entity, null or not). message is a string or nil; entity is
// a string, nil or jsonNull{}, and an absent one is null too. status 0
// means Kustvakt's status for the code.
func (a *Kustvakt) notify(w http.ResponseWriter, status, code int, message any, entity ...any) {
	if status == 0 {
		status = notifyStatus(code)
	}
	a.o.refused(status, strconv.Itoa(code), message)
	h := w.Header()
	h.Set("Content-Type", kustvaktJSON)
	if status == http.StatusUnauthorized {
		h.Add("WWW-Authenticate", `Basic realm="Kustvakt"`)
		h.Add("WWW-Authenticate", `Bearer realm="Kustvakt"`)
	}
	jw := jsonw.Get(jsonw.Jackson)
	defer jw.Release()
	jw.Open().Key("errors").OpenArray().OpenArray().Int(int64(code))
	notifyPart(jw, message)
	var e any
	if len(entity) > 0 {
		e = entity[0]
	}
	notifyPart(jw, e)
	jw.CloseArray().CloseArray().Close()
	jw.B = append(jw.B, '\n')
	w.WriteHeader(status)
	_, _ = w.Write(jw.B)
}

// notifyPart writes a notification's message or entity.
func notifyPart(jw *jsonw.Writer, v any) {
	if s, ok := v.(string); ok {
		jw.Str(s)
		return
	}
	jw.Null()
}

// jsonNull asks notify for an explicit null entity (deserialization errors).
type jsonNull struct{}

func (a *Kustvakt) unauthorizedUser(w http.ResponseWriter, user string) {
	if user == "" {
		user = kustvaktGuest
	}
	a.notify(w, 0, kcAuthorizationFailed, "Unauthorized operation for user: "+user, user)
}

// notOwner refuses user a change of a client that is not theirs
// (deregister, reset). Kustvakt's service names the user as the
// exception's entity, and its OAuth2 handler answers in the OAuth2 format
// any exception whose entity is an OAuth2 error code: a user whose name
// is one ("invalid_request") gets that format, with the code's status.
// Except server_error and temporarily_unavailable: a 500 or 503 for a
// refusal would page whoever watches the server's errors, so those users
// get the notification like anyone else.
func (a *Kustvakt) notOwner(w http.ResponseWriter, user string) {
	if status := oauth2CodeStatus(user); status != 0 && status < 500 {
		a.oauthError(w, status, user, "Unauthorized operation for user: "+user)
		return
	}
	a.unauthorizedUser(w, user)
}

// oauth2CodeStatus is the status Kustvakt's OAuth2ResponseHandler gives an
// exception whose entity is code, or 0 when code is no OAuth2 error code
// it knows (the notification format then).
func oauth2CodeStatus(code string) int {
	switch code {
	case "invalid_client", "unauthorized_client", "invalid_token":
		return http.StatusUnauthorized
	case "invalid_grant", "invalid_request", "invalid_scope", "unsupported_grant_type", "unsupported_response_type", "access_denied":
		return http.StatusBadRequest
	case "insufficient_scope":
		return http.StatusForbidden
	case "server_error":
		return http.StatusInternalServerError
	case CodeTemporarilyUnavailable:
		return http.StatusServiceUnavailable
	}
	return 0
}

// deny writes a refusal of the registration gate in Kustvakt's notification
// format. user is the request's user ("" for none): a missing initial
// access token is refused to them by name, as Kustvakt refuses a signed-in
// user an operation, not to a guest they are not.
func (a *Kustvakt) deny(w http.ResponseWriter, d *Denial, user string) {
	switch d.Reason {
	case "no_user":
		a.unauthorizedUser(w, "")
	case "no_token", "bad_token":
		// RFC 7591 section 3's challenge comes first (what a client reading
		// one WWW-Authenticate value sees); notify adds Kustvakt's own.
		d.SetHeaders(w.Header())
		if d.Reason == "no_token" {
			a.unauthorizedUser(w, user)
		} else {
			a.notify(w, 0, 2011, "Access token is invalid", "invalid_token")
		}
	case "unavailable":
		a.unavailable(w)
	default:
		d.SetHeaders(w.Header())
		a.notify(w, http.StatusTooManyRequests, kcNotAllowed, strings.ToUpper(d.Description[:1])+d.Description[1:])
	}
}

func (a *Kustvakt) unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", RetryAfterSeconds)
	a.notify(w, 0, kcServiceUnavailable, "Service temporarily unavailable; try again later")
}

// failed answers a storage error and reports whether there was one.
// Outages get 503. Any other error cannot come from the request (ids are
// fresh, records are ours), so it is logged as a bug and answered the same
// way: no request to this API gets a 500.
func (a *Kustvakt) failed(q *kustvaktRequest, op string, err error) bool {
	if !a.o.storeFailure(q.began, op, err) {
		if err == nil {
			return false
		}
		a.o.Logger.Error("unexpected error", zap.String("api", a.o.api), zap.String("op", op), zap.Error(err))
	}
	a.unavailable(q.w)
	return true
}

// kustvaktUser is the user Kustvakt serves: "" for nobody, and so for a user
// named like its demo user (User.UserFactory.isDemo: "guest" in any case),
// whom its BlockingFilter refuses like nobody, and who must not be the
// owner anonymous callers are taken for in client info.
func kustvaktUser(user string) string {
	if strings.EqualFold(user, kustvaktGuest) {
		return ""
	}
	return user
}

// requireUser is Kustvakt's BlockingFilter: no authenticated user (or the
// demo user), no service.
func (a *Kustvakt) requireUser(q *kustvaktRequest) bool {
	if q.user == "" {
		a.unauthorizedUser(q.w, "")
		return false
	}
	return true
}

func (a *Kustvakt) isAdmin(user string) bool {
	return user != "" && slices.Contains(a.k.AdminUsers, user)
}

// ---- request bodies ---------------------------------------------------------

// form reads an application/x-www-form-urlencoded body (a missing
// Content-Type is accepted as a form). Like JAX-RS @FormParam, the first
// value of a repeated parameter wins.
func (a *Kustvakt) form(q *kustvaktRequest) (url.Values, bool) {
	if !a.formType(q) {
		return nil, false
	}
	return a.formBody(q)
}

// formType is JAX-RS's media type match for a form resource method (415),
// which comes before the filters that want a user.
//
// A form post is a request any web page can make a browser send to another
// site without asking it first (no CORS preflight), with the credentials
// the browser keeps for that site: basic_auth's, as in the seed's setup.
// So one from another origin, as the browser says (Options.crossSite),
// is refused here, before anything is read or changed: otherwise a page an
// administrator visits could make a client super, or a user's reset its
// secret. Clients that are not browsers send neither header. The status
// is the one Kustvakt gives every access_denied (400, spec 2.3).
func (a *Kustvakt) formType(q *kustvaktRequest) bool {
	if a.o.crossSite(q.r) {
		a.oauthError(q.w, http.StatusBadRequest, "access_denied",
			"Cross-site form posts are refused: send the request from this site, or list the page's origin under cors")
		return false
	}
	if ct := q.r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/x-www-form-urlencoded" {
			a.notify(q.w, http.StatusUnsupportedMediaType, kcNotSupported,
				"Unsupported Content-Type "+strconv.Quote(ct)+"; send application/x-www-form-urlencoded")
			return false
		}
	}
	return true
}

// formBody reads the form parameters, which Jersey does only when it calls
// the resource method, after the filters.
func (a *Kustvakt) formBody(q *kustvaktRequest) (url.Values, bool) {
	body, ok := a.readBody(q.w, q.r)
	if !ok {
		return nil, false
	}
	return parseJerseyForm(string(body), kustvaktFormKey), true
}

// readBody reads a request body, answering a body too large or that
// cannot be read in Kustvakt's notification format.
func (a *Kustvakt) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := readBody(w, r)
	if errors.Is(err, errBodyTooLarge) {
		a.notify(w, http.StatusRequestEntityTooLarge, kcInvalidArgument, fmt.Sprintf("Request body is larger than %d bytes", bodyLimit(err)))
		return nil, false
	}
	if err != nil {
		a.notify(w, 0, kcInvalidArgument, "Request body could not be read")
		return nil, false
	}
	return body, true
}

// kustvaktFormKey reports whether a form parameter is one the services
// read: the form keeps only those, so that a body of thousands of others
// costs no more memory than its size.
func kustvaktFormKey(name string) bool {
	switch name {
	case "client_id", "super_client_id", "super_client_secret", "authorized_only", "filter_by",
		"permitted_only", "token", "permitted", "super":
		return true
	}
	return false
}

// parseJerseyForm reads an application/x-www-form-urlencoded body the way
// Jersey splits it: pairs on '&' only (a ';' is part of the value, where
// url.ParseQuery would drop the whole pair), '+' as a space. A name without
// '=' has a null value in Jersey; a parameter whose first value is null
// reads as absent ("is null"), whatever follows, so such a name is left
// out. A pair that starts with '=' is dropped, as Jersey does, and so is
// one with a malformed escape. Only the names keep accepts are kept (all
// with keep nil).
func parseJerseyForm(s string, keep func(string) bool) url.Values {
	v := url.Values{}
	var null map[string]bool
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, "&")
		key, value, hasValue := strings.Cut(pair, "=")
		if key == "" {
			continue
		}
		k, err := url.QueryUnescape(key)
		if err != nil || keep != nil && !keep(k) || null[k] {
			continue
		}
		val, err := url.QueryUnescape(value)
		if err != nil {
			continue
		}
		if !hasValue {
			if _, seen := v[k]; !seen {
				if null == nil {
					null = map[string]bool{}
				}
				null[k] = true
			}
			continue
		}
		v[k] = append(v[k], val)
	}
	return v
}

// checkString is Kustvakt's ParameterChecker: 107 "<name> is null|empty".
func (a *Kustvakt) checkString(w http.ResponseWriter, form url.Values, name string) (string, bool) {
	vals, present := form[name]
	if !present {
		a.notify(w, 0, kcInvalidArgument, name+" is null", name)
		return "", false
	}
	if vals[0] == "" {
		a.notify(w, 0, kcInvalidArgument, name+" is empty", name)
		return "", false
	}
	return vals[0], true
}

// javaTrue is Boolean.valueOf: "true" in any case.
func javaTrue(s string) bool { return strings.EqualFold(s, "true") }

// ---- super clients ------------------------------------------------------------

// declaredSuper returns the super client the config declares with id.
func (a *Kustvakt) declaredSuper(id string) (SuperClient, bool) {
	if i := slices.IndexFunc(a.k.SuperClients, func(s SuperClient) bool { return s.ClientID == id }); i >= 0 {
		return a.k.SuperClients[i], true
	}
	return SuperClient{}, false
}

// verifySuper authenticates the super client of a form (Kustvakt's
// verifySuperClient) and returns its id, or writes the error.
func (a *Kustvakt) verifySuper(q *kustvaktRequest, form url.Values) (string, bool) {
	id := form.Get("super_client_id")
	if id == "" {
		a.invalidRequest(q.w, "Missing parameter: super_client_id")
		return "", false
	}
	var secretHash string
	var super, expired bool
	var used func()
	if sc, declared := a.declaredSuper(id); declared {
		// The config refuses one without a secret; checked here too, so
		// that no request passes as a super client without credentials.
		secretHash = sc.SecretHash
		super = secretHash != ""
	} else {
		var c *registry.Client
		var err error
		c, used, err = a.o.Registry.Lookup(storeCtx(q.r), id)
		if errors.Is(err, registry.ErrNotFound) {
			a.unknownClient(q.w, id)
			return "", false
		}
		if a.failed(q, "super client", err) {
			return "", false
		}
		// A stored client is super only while it is confidential (the
		// registry keeps it so; checked here as well, since super rights
		// without a secret would need no credentials at all).
		secretHash, super = c.SecretHash, c.Super && c.Confidential()
		expired = c.SecretExpired(a.o.Registry.Now())
	}
	if secretHash != "" {
		secret := form.Get("super_client_secret")
		if secret == "" {
			a.invalidRequest(q.w, "Missing parameter: super_client_secret")
			return "", false
		}
		if expired || !registry.Verify(secretHash, secret) {
			a.oauthError(q.w, http.StatusUnauthorized, "invalid_client", "Invalid super_client credentials")
			return "", false
		}
	}
	if !super {
		a.oauthError(q.w, http.StatusUnauthorized, "unauthorized_client", "Only super client is allowed to use this service")
		return "", false
	}
	if used != nil {
		used() // authenticated: a use (idle_lifetime), unlike a failed attempt
	}
	return id, true
}

// superCall starts a service for super clients in Kustvakt's order: the
// media type, an authenticated user (BlockingFilter), the form, then the
// super client's credentials.
func (a *Kustvakt) superCall(q *kustvaktRequest) (url.Values, string, bool) {
	if !a.formType(q) || !a.requireUser(q) {
		return nil, "", false
	}
	form, ok := a.formBody(q)
	if !ok {
		return nil, "", false
	}
	superID, ok := a.verifySuper(q, form)
	return form, superID, ok
}

// ---- registration ---------------------------------------------------------------

// kustvaktClientJSON is the request body of a registration, as Jackson
// would have bound it.
type kustvaktClientJSON struct {
	name, description, url, redirectURI *string
	clientType                          *string
	refreshTokenExpiry                  int64
	source                              json.RawMessage // nil when absent or JSON null
}

// bindKustvaktJSON binds a registration body the way Jackson binds
// OAuth2ClientJson: members in document order (a repeated key is bound
// again, so the last one wins and a bad earlier one fails), unknown members
// are an error, scalars are coerced to strings, enums match exactly (or by
// index), numbers to int truncate. Errors are Kustvakt's deserialization
// failures (code 201).
func bindKustvaktJSON(body []byte) (*kustvaktClientJSON, string) {
	// Jackson skips a UTF-8 byte order mark and JSON's own white space, not
	// Unicode spaces.
	trimmed := registry.TrimJSON(body)
	if len(trimmed) == 0 {
		return nil, "No content to map: the request body is empty"
	}
	if trimmed[0] != '{' {
		return nil, "The request body must be a JSON object"
	}
	// Jackson reads one value and leaves whatever follows it unread
	// (FAIL_ON_TRAILING_TOKENS is off by default): so does this. The usual
	// body is that one value alone, checked in place without a Decoder.
	first := json.RawMessage(trimmed)
	if !json.Valid(trimmed) {
		if err := json.NewDecoder(bytes.NewReader(trimmed)).Decode(&first); err != nil {
			// Jackson reads in order and stops at whichever comes first: a
			// syntax error, or the 1001st level of nesting (where it would
			// stop too for text that encoding/json finds too deep).
			var se *json.SyntaxError
			if i := registry.TooDeepAt(trimmed, jacksonMaxDepth); i >= 0 && (!errors.As(err, &se) || int64(i) < se.Offset) {
				return nil, jacksonDepthError
			}
			return nil, "Malformed JSON: the request body " + registry.WhereNotJSON(body, trimmed)
		}
	}
	if !utf8.Valid(first) {
		// Jackson's UTF-8 reader refuses what encoding/json would replace.
		return nil, "Malformed JSON: the request body is not valid UTF-8"
	}
	if registry.TooDeepAt(first, jacksonMaxDepth) >= 0 {
		return nil, jacksonDepthError
	}
	out := &kustvaktClientJSON{}
	var msg string
	registry.EachMember(first, func(quoted, raw []byte) bool {
		k, _ := registry.UnquoteString(quoted)
		msg = out.bind(k, raw)
		return msg == ""
	})
	if msg != "" {
		return nil, msg
	}
	return out, ""
}

// jacksonMaxDepth is Jackson's default bound on nesting (2.15 and later),
// the outermost object counting as one.
const jacksonMaxDepth = 1000

// jacksonDepthError is Jackson's refusal of deeper nesting.
var jacksonDepthError = fmt.Sprintf("Document nesting depth exceeds the maximum allowed (%d, from `StreamReadConstraints.getMaxNestingDepth()`)", jacksonMaxDepth)

// bind sets the property of one member; Jackson calls the setter once per
// occurrence.
func (out *kustvaktClientJSON) bind(k string, raw []byte) (err string) {
	switch k {
	case "name":
		out.name, err = jacksonString(k, raw)
	case "description":
		out.description, err = jacksonString(k, raw)
	case "url":
		out.url, err = jacksonString(k, raw)
	case "redirect_uri":
		out.redirectURI, err = jacksonString(k, raw)
	case "type":
		out.clientType, err = jacksonClientType(raw)
	case "refresh_token_expiry", "refreshTokenExpiry":
		out.refreshTokenExpiry, err = jacksonInt(k, raw)
	case "source":
		// A JSON null binds a NullNode, which is no plugin.
		out.source = nil
		if string(raw) != "null" {
			var buf bytes.Buffer
			_ = json.Compact(&buf, raw)
			out.source = buf.Bytes()
		}
	default:
		err = fmt.Sprintf("Unrecognized field %q: known fields are name, type, description, url, redirect_uri, refresh_token_expiry, source", k)
	}
	return err
}

// jacksonString binds a String property: null stays null, numbers and
// booleans become their text, arrays and objects are refused.
func jacksonString(k string, raw []byte) (*string, string) {
	switch raw[0] {
	case 'n':
		return nil, ""
	case '"':
		s, ok := registry.UnquoteString(raw)
		if !ok {
			return nil, fmt.Sprintf("Field %q: invalid string", k)
		}
		return &s, ""
	case '[', '{':
		return nil, fmt.Sprintf("Field %q must be a string, not an array or object", k)
	}
	s := string(raw)
	return &s, ""
}

// javaTrim is String.trim(): it removes every char up to U+0020 at both ends.
func javaTrim(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return r <= ' ' })
}

func jacksonClientType(raw []byte) (*string, string) {
	const msg = `Field "type" must be one of CONFIDENTIAL, PUBLIC`
	confidential, public := "CONFIDENTIAL", "PUBLIC"
	switch raw[0] {
	case 'n':
		return nil, ""
	case '"':
		s, ok := registry.UnquoteString(raw)
		if !ok {
			return nil, msg
		}
		switch s {
		case confidential, public:
			return &s, ""
		}
		// Jackson's EnumDeserializer then looks the name up trimmed
		// (String.trim: " PUBLIC\n" is PUBLIC), and reads a trimmed
		// string of digits as the constant's index: "1" is PUBLIC. Since
		// 2.17 (databind#4403) one with a leading zero ("01", "00") is no
		// index, and any other number is out of range.
		switch trimmed := javaTrim(s); trimmed {
		case confidential, public:
			return &trimmed, ""
		case "0":
			return &confidential, ""
		case "1":
			return &public, ""
		}
		return nil, msg
	}
	// Jackson also binds an enum from its index.
	switch string(raw) {
	case "0":
		return &confidential, ""
	case "1":
		return &public, ""
	}
	return nil, msg
}

// jacksonInt binds an int property: null is 0, fractions are truncated,
// strings must hold a decimal integer (blank and "null" are 0), anything out
// of int range is refused.
func jacksonInt(k string, raw []byte) (int64, string) {
	bad := fmt.Sprintf("Field %q must be an integer number of seconds", k)
	s := string(raw)
	switch raw[0] {
	case 'n':
		return 0, ""
	case 't', 'f', '[', '{':
		return 0, bad
	case '"':
		u, ok := registry.UnquoteString(raw)
		if !ok {
			return 0, bad
		}
		// Jackson's _parseIntPrimitive(String): Long.parseLong, no
		// fractions or exponents.
		if u = javaTrim(u); u == "" || u == "null" {
			return 0, ""
		}
		n, err := strconv.ParseInt(u, 10, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return 0, bad
		}
		if err != nil || n > math.MaxInt32 || n < math.MinInt32 {
			return 0, fmt.Sprintf("Field %q: numeric value %s out of range of int", k, u)
		}
		return n, ""
	}
	if n, err := strconv.ParseInt(s, 10, 32); err == nil {
		return n, ""
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f > math.MaxInt32 || f < math.MinInt32 {
		return 0, fmt.Sprintf("Field %q: numeric value %s out of range of int", k, s)
	}
	return int64(f), ""
}

// javaLength is String.length(): UTF-16 code units, as utf16.Encode([]rune(s))
// counts them (two for a rune beyond the BMP, one for any other, an invalid
// byte included).
func javaLength(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

var (
	kustvaktURLRule      = registry.KustvaktURLRule{}
	kustvaktRedirectRule = registry.KustvaktURLRule{AllowLocal: true, NoFragments: true}
)

func (a *Kustvakt) register(q *kustvaktRequest) {
	w := q.w
	// JAX-RS picks the resource method (415 on a wrong media type) before
	// the authentication filters run, and binds the body after them.
	if !isJSONContentType(q.r.Header.Get("Content-Type")) {
		a.notify(w, http.StatusUnsupportedMediaType, kcNotSupported, "Unsupported Content-Type; send application/json")
		return
	}
	adm, d := a.o.admitAs(q.r, q.user)
	if d != nil {
		a.deny(w, d, q.user)
		return
	}
	body, ok := a.readBody(w, q.r)
	if !ok {
		return
	}
	in, msg := bindKustvaktJSON(body)
	if msg != "" {
		a.notify(w, 0, kcDeserializationError, msg, jsonNull{})
		return
	}
	if reason, plugin := a.validateRegistration(in); reason != "" {
		if plugin {
			a.notify(w, 0, kcMissingParameter, reason, "url")
		} else {
			a.invalidRequest(w, reason)
		}
		return
	}
	confidential := *in.clientType == "CONFIDENTIAL"
	c := kvClient(confidential)
	c.ClientName, c.Description = *in.name, *in.description
	c.Source, c.Permitted = in.source, in.source == nil
	if in.url != nil {
		c.ClientURI = *in.url
	}
	if in.redirectURI != nil && *in.redirectURI != "" {
		c.RedirectURIs = []string{*in.redirectURI}
	}
	c.RefreshTokenExpiry = in.refreshTokenExpiry
	if confidential {
		if c.RefreshTokenExpiry <= 0 {
			c.RefreshTokenExpiry = kustvaktMaxRefresh
		}
	}
	if reason := a.o.Policy.Refusal(c); reason != "" {
		a.invalidRequest(w, sentence(reason))
		return
	}
	iss, d, err := a.o.create(q.r, c, registry.Issue{
		Format: registry.FormatKustvakt, Secret: confidential, NoSecret: !confidential,
		SecretLifetime: a.o.secretLifetime(0),
	}, adm)
	if d != nil {
		a.deny(w, d, q.user)
		return
	}
	if err != nil {
		a.failed(q, "register", err)
		return
	}
	a.writeCredentials(w, c.ID, iss.Secret)
}

// validateRegistration applies Kustvakt's checks in its order. plugin is true
// for the one check answered in the notification format.
func (a *Kustvakt) validateRegistration(in *kustvaktClientJSON) (reason string, plugin bool) {
	switch {
	case in.name == nil:
		return "client_name is null", false
	case javaLength(*in.name) < 3:
		return "client_name must contain at least 3 characters", false
	case in.clientType == nil:
		return "client_type is null", false
	case in.description == nil:
		return "client_description is null", false
	case *in.description == "":
		return "client_description is empty", false
	}
	if in.url != nil && *in.url != "" {
		if !kustvaktURLRule.Valid(*in.url) {
			return "Invalid URL", false
		}
	} else if in.source != nil {
		return "URL is required for plugins.", true
	}
	if in.redirectURI != nil && *in.redirectURI != "" && (!kustvaktRedirectRule.Valid(*in.redirectURI) ||
		!registry.RedirectHostAllowed(*in.redirectURI, a.o.Policy.RedirectHosts)) {
		return "Invalid redirect URI", false
	}
	confidential := *in.clientType == "CONFIDENTIAL"
	if in.source != nil && !confidential {
		return "Only confidential plugins are supported.", false
	}
	switch {
	case confidential && in.refreshTokenExpiry > kustvaktMaxRefresh:
		return "Maximum refresh token expiry is 31536000 seconds (1 year)", false
	case !confidential && in.refreshTokenExpiry > 0:
		return "Custom refresh token expiry is only applicable for confidential clients", false
	case unsafeName(*in.name):
		// Not a check of Kustvakt's: every API keeps names that pages
		// show safe to show (registry.UnsafeDisplayRune). It comes after
		// all of Kustvakt's own, so that a request they refuse gets the
		// answer Kustvakt gives.
		return "client_name must not contain control characters, line separators or bidirectional overrides", false
	case unsafeDescription(*in.description):
		// Ours too: client info and the plugin lists show the
		// description to every user, who is to read it as written. Tabs
		// and line breaks are a description's own.
		return "description must not contain control characters other than tabs and line breaks, nor line separators or bidirectional overrides", false
	}
	return "", false
}

// unsafeDescription reports whether a description holds a character that
// registry.UnsafeDisplay finds, other than a tab or a line break.
func unsafeDescription(d string) bool {
	return strings.ContainsFunc(d, func(r rune) bool {
		return r != '\t' && r != '\n' && r != '\r' && registry.UnsafeDisplay(r)
	})
}

// writeCredentials writes {"client_id":...,"client_secret":...} (the secret
// left out for public clients, as Jackson's NON_EMPTY does).
func (a *Kustvakt) writeCredentials(w http.ResponseWriter, id, secret string) {
	jw := jsonw.Get(jsonw.Jackson)
	defer jw.Release()
	jw.Open().Key("client_id").Str(id)
	jw.OptStr("client_secret", secret)
	jw.Close()
	h := w.Header()
	h.Set("Content-Type", kustvaktJSON)
	if secret != "" {
		setNoStore(h)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(jw.B)
}

// ---- client info -----------------------------------------------------------------

// JavaZonedDateTime formats t like java.time.ZonedDateTime.toString() in
// loc: 2022-05-04T13:04:34.415+02:00[Europe/Berlin], seconds left out when
// they and the fraction are zero, the fraction in groups of 3 digits.
func JavaZonedDateTime(t time.Time, loc *time.Location) string {
	t = t.In(loc)
	var b strings.Builder
	year := t.Year()
	switch {
	case year > 9999:
		fmt.Fprintf(&b, "+%d", year)
	case year < 0:
		fmt.Fprintf(&b, "-%04d", -year)
	default:
		fmt.Fprintf(&b, "%04d", year)
	}
	fmt.Fprintf(&b, "-%02d-%02dT%02d:%02d", int(t.Month()), t.Day(), t.Hour(), t.Minute())
	sec, nano := t.Second(), t.Nanosecond()
	if sec != 0 || nano != 0 {
		fmt.Fprintf(&b, ":%02d", sec)
		switch {
		case nano == 0:
		case nano%1000000 == 0:
			fmt.Fprintf(&b, ".%03d", nano/1000000)
		case nano%1000 == 0:
			fmt.Fprintf(&b, ".%06d", nano/1000)
		default:
			fmt.Fprintf(&b, ".%09d", nano)
		}
	}
	_, offset := t.Zone()
	if offset == 0 {
		b.WriteString("Z")
	} else {
		sign := '+'
		if offset < 0 {
			sign, offset = '-', -offset
		}
		fmt.Fprintf(&b, "%c%02d:%02d", sign, offset/3600, offset/60%60)
		if offset%60 != 0 {
			fmt.Fprintf(&b, ":%02d", offset%60)
		}
	}
	b.WriteString("[" + loc.String() + "]")
	return b.String()
}

// writeInfo appends Kustvakt's client info object (OAuth2ClientInfoDto) to jw.
// The full view adds what only the owner may see.
func (a *Kustvakt) writeInfo(jw *jsonw.Writer, c *registry.Client, full bool) {
	jw.Open()
	if c.IsPlugin() {
		// NON_EMPTY: Jackson leaves out an empty object or array node (a
		// container with no children is "empty"; scalars never are).
		if tree := jacksonTree(c.Source); string(tree) != "{}" && string(tree) != "[]" {
			jw.Key("source").Raw(tree)
		}
	}
	jw.Key("permitted").Bool(c.Permitted)
	jw.Key("super").Bool(full && c.Super)
	jw.Key("client_id").Str(c.ID)
	jw.OptStr("client_name", c.ClientName)
	if c.Confidential() {
		jw.Key("client_type").Str("CONFIDENTIAL")
	} else {
		jw.Key("client_type").Str("PUBLIC")
	}
	jw.OptStr("client_description", c.Description)
	jw.OptStr("client_url", c.ClientURI)
	if full {
		if len(c.RedirectURIs) > 0 && c.RedirectURIs[0] != "" {
			jw.Key("client_redirect_uri").Str(c.RedirectURIs[0])
		}
		jw.Key("registration_date").Str(JavaZonedDateTime(c.Created(), a.k.Location))
		jw.OptStr("registered_by", c.Owner)
		if c.Confidential() && c.RefreshTokenExpiry != 0 {
			jw.Key("refresh_token_expiry").Int(c.RefreshTokenExpiry)
		}
	}
	jw.Close()
}

func (a *Kustvakt) writeJSON(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", kustvaktJSON)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func (a *Kustvakt) info(q *kustvaktRequest, id string) {
	form, ok := a.form(q)
	if !ok {
		return
	}
	if _, ok := a.verifySuper(q, form); !ok {
		return
	}
	c, err := a.o.Registry.Get(storeCtx(q.r), id)
	if errors.Is(err, registry.ErrNotFound) {
		a.unknownClient(q.w, id)
		return
	}
	if a.failed(q, "info", err) {
		return
	}
	// Plugins always get the reduced view, even for their owner. Without
	// a user the caller is the demo user, who owns nothing.
	full := !c.IsPlugin() && q.user != "" && (c.Owner == q.user || a.isAdmin(q.user))
	jw := jsonw.Get(jsonw.Jackson)
	defer jw.Release()
	a.writeInfo(jw, c, full)
	a.writeJSON(q.w, jw.B)
}

// ---- deregister and reset --------------------------------------------------------------

var errNotOwner = errors.New("not the owner")

func (a *Kustvakt) deregister(q *kustvaktRequest, id string) {
	if !a.requireUser(q) {
		return
	}
	err := a.o.Registry.Delete(storeCtx(q.r), id, func(c *registry.Client) error {
		if c.Owner != q.user && !a.isAdmin(q.user) {
			return errNotOwner
		}
		return nil
	})
	switch {
	case errors.Is(err, registry.ErrNotFound):
		a.unknownClient(q.w, id)
		return
	case errors.Is(err, errNotOwner):
		a.notOwner(q.w, q.user)
		return
	case a.failed(q, "deregister", err):
		return
	}
	a.o.Logger.Info("client deregistered", zap.String("api", a.o.api), zap.String("client_id", id))
	q.w.WriteHeader(http.StatusOK)
}

var errPublicClient = errors.New("public client")

func (a *Kustvakt) reset(q *kustvaktRequest) {
	if !a.formType(q) || !a.requireUser(q) {
		return
	}
	form, ok := a.formBody(q)
	if !ok {
		return
	}
	id, ok := a.checkString(q.w, form, "client_id")
	if !ok {
		return
	}
	var secret string
	c, err := a.o.Registry.Update(storeCtx(q.r), id, func(c *registry.Client) error {
		if !c.Confidential() {
			return errPublicClient
		}
		if c.Owner != q.user && !a.isAdmin(q.user) {
			return errNotOwner
		}
		// In the form, and with the lifetime, of the client's own API:
		// Kustvakt's for its own, IAM's 90 days for an IAM client.
		secret = registry.FormatOf(c.API).NewSecret()
		lifetime := a.o.Registry.SecretLifetimeOf(c, a.o.secretLifetime(0))
		c.SetSecret(secret, a.o.Registry.SecretExpiry(c, a.o.Registry.Now(), lifetime))
		return nil
	})
	switch {
	case errors.Is(err, registry.ErrNotFound):
		a.unknownClient(q.w, id)
		return
	case errors.Is(err, errPublicClient):
		a.invalidRequest(q.w, "Operation is not allowed for public clients")
		return
	case errors.Is(err, errNotOwner):
		a.notOwner(q.w, q.user)
		return
	case a.failed(q, "reset", err):
		return
	}
	a.o.Logger.Info("client secret reset", zap.String("api", a.o.api), zap.String("client_id", c.ID))
	a.writeCredentials(q.w, c.ID, secret)
}

// ---- lists ---------------------------------------------------------------------

// compareJava orders strings like Java's String.compareTo (UTF-16 units).
func compareJava(a, b string) int {
	ua, ub := utf16.Encode([]rune(a)), utf16.Encode([]rune(b))
	for i := 0; i < len(ua) && i < len(ub); i++ {
		if ua[i] != ub[i] {
			return int(ua[i]) - int(ub[i])
		}
	}
	return len(ua) - len(ub)
}

func sortByName(cs []*registry.Client) {
	slices.SortStableFunc(cs, func(x, y *registry.Client) int {
		if c := compareJava(x.ClientName, y.ClientName); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
}

// writeList writes clients as a JSON array; the owner sees the full view.
func (a *Kustvakt) writeList(w http.ResponseWriter, user string, cs []*registry.Client) {
	jw := jsonw.Get(jsonw.Jackson)
	defer jw.Release()
	jw.OpenArray()
	for _, c := range cs {
		a.writeInfo(jw, c, c.Owner == user)
	}
	jw.CloseArray()
	a.writeJSON(w, jw.B)
}

func (a *Kustvakt) list(q *kustvaktRequest) {
	form, _, ok := a.superCall(q)
	if !ok {
		return
	}
	// This server issues no tokens, so the clients a user has authorized
	// are none; only the owned clients can be listed.
	owned := true
	if javaTrue(form.Get("authorized_only")) {
		owned = false
	} else {
		switch f := form.Get("filter_by"); f {
		case "", "owned_only":
		case "authorized_only":
			owned = false
		default:
			a.notify(q.w, 0, kcUnsupportedValue, "filter_by", "[]")
			return
		}
	}
	var out []*registry.Client
	if owned {
		cs, err := a.o.Registry.List(storeCtx(q.r), registry.OwnerTag(q.user))
		if a.failed(q, "list", err) {
			return
		}
		for _, c := range cs {
			if !c.Super {
				out = append(out, c)
			}
		}
		sortByName(out)
	}
	a.writeList(q.w, q.user, out)
}

func (a *Kustvakt) plugins(q *kustvaktRequest) {
	form, _, ok := a.superCall(q)
	if !ok {
		return
	}
	permittedOnly := javaTrue(form.Get("permitted_only"))
	cs, err := a.o.Registry.List(storeCtx(q.r), registry.TagPlugins)
	if a.failed(q, "plugins", err) {
		return
	}
	var out []*registry.Client
	for _, c := range cs {
		if c.Super || (permittedOnly && !c.Permitted) {
			continue
		}
		out = append(out, c)
	}
	sortByName(out)
	a.writeList(q.w, q.user, out)
}

// ---- plugin installation ------------------------------------------------------------

// writeInstallation writes an InstalledPluginDto as Jackson orders it: the
// properties named as their fields (name, description, url) first, then
// those @JsonProperty renames (client_id, super_client_id,
// installed_date), which Jackson's property collector takes out and puts
// back at the end, as with OAuth2ClientInfoDto's.
func (a *Kustvakt) writeInstallation(jw *jsonw.Writer, inst *registry.Installation, c *registry.Client) {
	jw.Open()
	jw.OptStr("name", c.ClientName)
	jw.OptStr("description", c.Description)
	jw.OptStr("url", c.ClientURI)
	jw.Key("client_id").Str(inst.ClientID)
	jw.Key("super_client_id").Str(inst.SuperClientID)
	jw.Key("installed_date").Str(JavaZonedDateTime(time.UnixMilli(inst.InstalledMs), a.k.Location))
	jw.Close()
}

func (a *Kustvakt) install(q *kustvaktRequest) {
	form, superID, ok := a.superCall(q)
	if !ok {
		return
	}
	id, ok := a.checkString(q.w, form, "client_id")
	if !ok {
		return
	}
	ctx := storeCtx(q.r)
	// A use of the plugin once it is installed, not before: a refused
	// install must not keep a client from expiring (see Lookup).
	c, use, err := a.o.Registry.Lookup(ctx, id)
	if errors.Is(err, registry.ErrNotFound) {
		a.unknownClient(q.w, id)
		return
	}
	if a.failed(q, "plugin lookup", err) {
		return
	}
	if !c.Permitted {
		a.notify(q.w, 0, kcPluginNotPermitted, "Plugin is not permitted", id)
		return
	}
	_, declared := a.declaredSuper(superID)
	inst := &registry.Installation{User: q.user, SuperClientID: superID, ClientID: id, StoredSuper: !declared}
	err = a.o.Registry.Install(ctx, inst)
	if errors.Is(err, registry.ErrInstalled) {
		a.notify(q.w, 0, kcPluginInstalled, "Plugin has been installed", id)
		return
	}
	if errors.Is(err, registry.ErrNotFound) { // deregistered meanwhile
		a.unknownClient(q.w, id)
		return
	}
	if errors.Is(err, registry.ErrSuperGone) { // as verifySuper would now answer
		a.unknownClient(q.w, superID)
		return
	}
	if a.failed(q, "install", err) {
		return
	}
	if use != nil {
		use()
	}
	jw := jsonw.Get(jsonw.Jackson)
	defer jw.Release()
	a.writeInstallation(jw, inst, c)
	a.writeJSON(q.w, jw.B)
}

func (a *Kustvakt) installed(q *kustvaktRequest) {
	_, superID, ok := a.superCall(q)
	if !ok {
		return
	}
	ctx := storeCtx(q.r)
	insts, err := a.o.Registry.Installed(ctx, q.user, superID)
	if a.failed(q, "installed", err) {
		return
	}
	type entry struct {
		inst *registry.Installation
		c    *registry.Client
	}
	var entries []entry
	for _, inst := range insts {
		// A listing is no use of the clients it shows, as with the
		// other listings.
		c, err := a.o.Registry.Peek(ctx, inst.ClientID)
		if errors.Is(err, registry.ErrNotFound) {
			// The plugin expired (or a delete failed to take its
			// installations with it): the installation goes now, or
			// every listing would read it again, for ever.
			_ = a.o.Registry.Uninstall(ctx, q.user, superID, inst.ClientID)
			continue
		}
		if storage.SkipCorrupt(err) {
			continue // damaged: skipped, as by every listing
		}
		if a.failed(q, "installed", err) {
			return
		}
		entries = append(entries, entry{inst, c})
	}
	slices.SortStableFunc(entries, func(x, y entry) int {
		if c := compareJava(x.c.ClientName, y.c.ClientName); c != 0 {
			return c
		}
		return strings.Compare(x.c.ID, y.c.ID)
	})
	jw := jsonw.Get(jsonw.Jackson)
	defer jw.Release()
	jw.OpenArray()
	for _, e := range entries {
		a.writeInstallation(jw, e.inst, e.c)
	}
	jw.CloseArray()
	a.writeJSON(q.w, jw.B)
}

func (a *Kustvakt) uninstall(q *kustvaktRequest) {
	form, superID, ok := a.superCall(q)
	if !ok {
		return
	}
	id, ok := a.checkString(q.w, form, "client_id")
	if !ok {
		return
	}
	err := a.o.Registry.Uninstall(storeCtx(q.r), q.user, superID, id)
	if errors.Is(err, registry.ErrNotFound) {
		a.notify(q.w, 0, kcNotFound, nil)
		return
	}
	if a.failed(q, "uninstall", err) {
		return
	}
	q.w.WriteHeader(http.StatusOK)
}

// ---- administration --------------------------------------------------------------

var errNotConfidential = errors.New("public clients cannot be super")

// privilege is Kustvakt's admin service to mark a client super (form
// client_id, super=true|false), extended with permitted=true|false to approve
// a plugin. Admins are the configured admin users, or whoever sends the
// configured admin token as the form parameter "token".
func (a *Kustvakt) privilege(q *kustvaktRequest) {
	form, ok := a.form(q)
	if !ok {
		return
	}
	tokenOK := a.k.AdminTokenHash != "" && form.Get("token") != "" && registry.Verify(a.k.AdminTokenHash, form.Get("token"))
	if !tokenOK && !a.isAdmin(q.user) {
		a.unauthorizedUser(q.w, q.user)
		return
	}
	id, ok := a.checkString(q.w, form, "client_id")
	if !ok {
		return
	}
	_, setPermitted := form["permitted"]
	_, setSuper := form["super"]
	// Kustvakt's own semantics: without "super" the client is demoted;
	// our "permitted" extension alone leaves "super" as it is.
	if !setPermitted {
		setSuper = true
	}
	makeSuper := javaTrue(form.Get("super"))
	permitted := javaTrue(form.Get("permitted"))
	c, err := a.o.Registry.Update(storeCtx(q.r), id, func(c *registry.Client) error {
		if setSuper {
			if makeSuper && !c.Confidential() {
				return errNotConfidential
			}
			c.Super = makeSuper
		}
		if setPermitted {
			c.Permitted = permitted
		}
		return nil
	})
	switch {
	case errors.Is(err, registry.ErrNotFound):
		a.unknownClient(q.w, id)
		return
	case errors.Is(err, errNotConfidential):
		a.notify(q.w, 0, kcNotAllowed, "Only confidential clients are allowed to be super clients.", "[]")
		return
	case a.failed(q, "privilege", err):
		return
	}
	a.o.Logger.Info("client privileges changed", zap.String("api", a.o.api), zap.String("client_id", c.ID),
		zap.Bool("super", c.Super), zap.Bool("permitted", c.Permitted))
	a.writeJSON(q.w, []byte("SUCCESS"))
}

// kvClient is what a Kustvakt registration registers before the request's
// fields: a client of the authorization code and refresh token grants,
// with a secret if confidential.
func kvClient(confidential bool) *registry.Client {
	c := &registry.Client{
		API:                     registry.APIKustvakt,
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		ResponseTypes:           []string{"code"},
		TokenEndpointAuthMethod: registry.AuthNone,
	}
	if confidential {
		c.TokenEndpointAuthMethod = registry.AuthClientSecretBasic
	}
	return c
}

// KustvaktPolicyProblem says which Kustvakt registrations the allowed
// lists of p refuse, all of them or those of one client type, or "".
func KustvaktPolicyProblem(p *registry.Policy) string {
	public, confidential := p.Refusal(kvClient(false)), p.Refusal(kvClient(true))
	switch {
	case public != "" && confidential != "":
		return public + ", and " + confidential + ": every kustvakt registration will be refused"
	case public != "":
		return public + ": every PUBLIC kustvakt registration will be refused"
	case confidential != "":
		return confidential + ": every CONFIDENTIAL kustvakt registration will be refused"
	}
	return ""
}
