package handler

import (
	"errors"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/internal/jsonw"
	"github.com/caddy-dcr/caddy-dcr/registry"
)

// MediaGoblin serves GNU MediaGoblin's client registration endpoint,
// {prefix}/api/client/register, wire-compatible with the real server's
// client_register view: same decoding, same ordered checks, same strings
// (typos included), same Python json.dumps bytes and CORS headers.
//
// The real view is Python working on whatever json.loads or werkzeug's form
// parser produced, and its messages print values with str(). To answer
// byte for byte the same, requests are decoded here into a small model of
// Python values (pyValue) with Python's own decoding rules, and messages
// render them as Python would. Where the real server crashes (HTTP 500) the
// clone answers "Could not decode data." instead.
type MediaGoblin struct {
	o *Options
}

// NewMediaGoblin returns the MediaGoblin API.
func NewMediaGoblin(o *Options) *MediaGoblin {
	o.setAPI(registry.APIMediaGoblin)
	return &MediaGoblin{o: o}
}

// mgPath is the route; werkzeug matches it exactly (no trailing slash) for
// every method.
const mgPath = "/api/client/register"

// The error strings of the real view, verbatim.
const (
	mgDecodeError      = "Could not decode data."
	mgUnknownCT        = "Unknown Content-Type"
	mgNoType           = "No registration type provided."
	mgUnknownAppType   = "Unknown application_type."
	mgNeedID           = "client_id is requried to update."
	mgNeedSecret       = "client_secret is required to update."
	mgUnauthorized     = "Unauthorized."
	mgOnlyIDForUpdate  = "Only set client_id for update."
	mgNoAccessToken    = "access_token not needed for registration."
	mgOnlySecretUpdate = "Only set client_secret for update."
	mgInvalidType      = "Invalid registration type"
	mgContactsType     = "Contacts must be a string of space-seporated email addresses."
	mgRedirectsType    = "redirect_uris must be space-seporated URLs."
	// Ours: answers the real server never gives.
	mgUnavailable = "Service temporarily unavailable; try again later."
	mgTooLarge    = "Request body too large."
)

// mgMaxIDLen bounds the client ids looked up. Every id this server issues
// is far shorter, and a longer one must not reach the store: the embedded
// store names a file after the hex of the id, and a name over the file
// system's limit fails like an outage (503) instead of "no such client".
const mgMaxIDLen = 100

// Serve implements API.
func (a *MediaGoblin) Serve(w http.ResponseWriter, r *http.Request) bool {
	if rest, ok := a.o.route(r); !ok || rest != mgPath {
		return false
	}
	a.o.hold()
	defer a.o.release()
	ob := observe(w, r, opRegister)
	var w2 http.ResponseWriter = ob
	if a.o.Gate.Mode == ModeUser && a.o.CORS != nil && len(a.o.CORS.Origins) > 0 {
		// The answer depends on the Origin (see mgCredentialed), for
		// every origin, listed or not.
		ob.Header().Add("Vary", "Origin")
		if origin := r.Header.Get("Origin"); a.o.CORS.Listed(origin) {
			w2 = mgCredentialed{ob, origin}
		}
	}
	a.register(w2, r)
	a.o.metrics.done(ob)
	return true
}

// mgCredentialed answers a page on an origin listed under cors, which
// lets it past the cross-site refusal of registration user (the only mode
// in which MediaGoblin reads cors), with its own
// origin instead of MediaGoblin's "*", and with credentials allowed:
// browsers hide from the page the answer to a request sent with their
// credentials (basic_auth's) under "*", though the client is registered,
// and its secret would reach nobody.
type mgCredentialed struct {
	http.ResponseWriter
	origin string
}

func (w mgCredentialed) WriteHeader(code int) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", w.origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	w.ResponseWriter.WriteHeader(code)
}

func (w mgCredentialed) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// mgHeaders sets what json_response puts on every answer.
func mgHeaders(h http.Header) {
	h.Set("Content-Type", "application/json")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "POST, GET, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Content-Type, X-Requested-With")
}

// fail writes {"error": msg} as json.dumps does.
func (a *MediaGoblin) fail(w http.ResponseWriter, status int, msg string) {
	a.o.refused(status, "", msg)
	mgHeaders(w.Header())
	jw := jsonw.Get(jsonw.Python)
	defer jw.Release()
	jw.Open().Key("error").Raw(pyJSONString(msg)).Close()
	w.WriteHeader(status)
	_, _ = w.Write(jw.B)
}

func (a *MediaGoblin) unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", RetryAfterSeconds)
	a.fail(w, http.StatusServiceUnavailable, mgUnavailable)
}

// succeed writes the credentials answer, the same for both types.
func (a *MediaGoblin) succeed(w http.ResponseWriter, id, secret string, expiresAt int64) {
	h := w.Header()
	mgHeaders(h)
	setNoStore(h)
	jw := jsonw.Get(jsonw.Python)
	defer jw.Release()
	jw.Open().Key("client_id").Raw(pyJSONString(id)).Key("client_secret").Raw(pyJSONString(secret)).
		Key("expires_at").Int(expiresAt).Close()
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(jw.B)
}

// mgFailure is a 400 answer decided while validating, possibly inside a
// registry change function.
type mgFailure struct{ msg string }

func (e *mgFailure) Error() string { return e.msg }

// errMGUnauthorized aborts an update whose credentials do not match.
var errMGUnauthorized = errors.New("client credentials do not match")

func (a *MediaGoblin) register(w http.ResponseWriter, r *http.Request) {
	// The real view reads the body before anything else, whatever the
	// content type, so the size limit applies to every request. Where the
	// answer cannot depend on the body (no content type, or one that is
	// neither JSON nor a form) and its announced length is within the
	// limit, it is not read: a client that sent "Expect: 100-continue"
	// gets the answer at once instead of sending a body for nothing.
	var body []byte
	var err error
	if ct := mgMediaType(r.Header.Get("Content-Type")); ct == "application/json" || ct == "application/x-www-form-urlencoded" ||
		r.ContentLength < 0 || r.ContentLength > MaxBodyBytes {
		body, err = readBody(w, r)
	}
	if errors.Is(err, errBodyTooLarge) {
		a.fail(w, http.StatusRequestEntityTooLarge, mgTooLarge)
		return
	}
	if err != nil {
		a.fail(w, http.StatusBadRequest, mgDecodeError)
		return
	}
	data, msg := mgDecodeRequest(r.Header.Get("Content-Type"), body)
	if msg == "" {
		msg = mgCheckCommon(data)
	}
	// Counted where the request is headed: an update or a registration.
	if data != nil && data.vals["type"].isStr("client_update") {
		setOp(w, "update")
	}
	if msg != "" {
		a.fail(w, http.StatusBadRequest, msg)
		return
	}
	appType := data.vals["application_type"].s
	switch t := data.vals["type"]; {
	case t.isStr("client_update"):
		a.update(w, r, data, appType)
	case t.isStr("client_associate"):
		a.associate(w, r, data, appType)
	default:
		a.fail(w, http.StatusBadRequest, mgInvalidType)
	}
}

// mgCheckCommon runs the checks both registration types share, in the
// real view's order.
func mgCheckCommon(d *pyDict) string {
	if !d.has("type") {
		return mgNoType
	}
	if at := d.vals["application_type"]; !at.isStr("web") && !at.isStr("native") {
		return mgUnknownAppType
	}
	return ""
}

func (a *MediaGoblin) associate(w http.ResponseWriter, r *http.Request, data *pyDict, appType string) {
	reject := func(msg string) { a.fail(w, http.StatusBadRequest, msg) }
	switch {
	case data.has("client_id"):
		reject(mgOnlyIDForUpdate)
		return
	case data.has("access_token"):
		reject(mgNoAccessToken)
		return
	case data.has("client_secret"):
		reject(mgOnlySecretUpdate)
		return
	}
	if a.o.Gate.Mode == ModeUser && a.o.crossSite(r) {
		// A form another site's page posts, with the browser's
		// credentials for this one, would register a client as that
		// user (using up its max_clients_per_owner).
		a.fail(w, http.StatusForbidden, "Cross-site requests are refused.")
		return
	}
	adm, d := a.o.admit(r)
	if d != nil {
		a.deny(w, d)
		return
	}
	f, msg := mgParseFields(data, "", &a.o.Policy)
	if msg != "" {
		reject(msg)
		return
	}
	c := mgClient(appType)
	f.apply(c)
	if reason := a.o.Policy.Refusal(c); reason != "" {
		reject(sentence(reason))
		return
	}
	lifetime := a.o.secretLifetime(0)
	if r.Method == http.MethodHead {
		// The real view registers on any method, HEAD too, but a HEAD's
		// answer has no body: the credentials would reach nobody, and the
		// client would only take a place under the caps. The answer is
		// the one a registration would get, less the client: fresh
		// credentials of the right lengths that name nothing.
		setOp(w, "") // and no registration to count
		if d := a.o.wouldDeny(r, adm); d != nil {
			a.deny(w, d)
			return
		}
		f := registry.FormatMediaGoblin
		a.succeed(w, f.NewID(), f.NewSecret(), a.o.Registry.RegisteredSecretExpiry(c, a.o.Registry.Now(), lifetime))
		return
	}
	began := time.Now()
	iss, d, err := a.o.create(r, c, registry.Issue{
		Format: registry.FormatMediaGoblin, Secret: true, SecretLifetime: lifetime,
	}, adm)
	if d != nil {
		a.deny(w, d)
		return
	}
	if err != nil {
		a.storeError(w, began, "register", err)
		return
	}
	a.succeed(w, c.ID, iss.Secret, c.SecretExpiresAt)
}

// deny writes a refusal of the registration gate as a MediaGoblin error.
func (a *MediaGoblin) deny(w http.ResponseWriter, d *Denial) {
	if d.Status == http.StatusServiceUnavailable {
		a.unavailable(w)
		return
	}
	d.SetHeaders(w.Header())
	a.fail(w, d.Status, sentence(d.Description))
}

// storeError answers a failed store operation. Outages get 503; anything
// else cannot be caused by the request (ids are fresh, records are ours),
// so it is logged as a bug and answered the same way rather than with a
// 500 the API never gives.
func (a *MediaGoblin) storeError(w http.ResponseWriter, began time.Time, op string, err error) {
	if !a.o.storeFailure(began, op, err) {
		a.o.Logger.Error("unexpected error", zap.String("api", a.o.api), zap.String("op", op), zap.Error(err))
	}
	a.unavailable(w)
}

func (a *MediaGoblin) update(w http.ResponseWriter, r *http.Request, data *pyDict, appType string) {
	answer := func(status int, msg string) { a.fail(w, status, msg) }
	if !data.has("client_id") {
		answer(http.StatusBadRequest, mgNeedID)
		return
	}
	if !data.has("client_secret") {
		answer(http.StatusBadRequest, mgNeedSecret)
		return
	}
	// The real server looks the pair up with an equality query: a scalar
	// that is not a string matches no client, and a value its driver
	// cannot bind as a query parameter at all (pyUnbindable) is a 500
	// there, so our 400 for data that cannot be decoded.
	id, secret := data.vals["client_id"], data.vals["client_secret"]
	if pyUnbindable(id) || pyUnbindable(secret) {
		answer(http.StatusBadRequest, mgDecodeError)
		return
	}
	if id.kind != pyStr || secret.kind != pyStr || id.s == "" || len(id.s) > mgMaxIDLen {
		answer(http.StatusForbidden, mgUnauthorized)
		return
	}
	now, began := a.o.Registry.Now(), time.Now()
	updated, err := a.o.Registry.Update(storeCtx(r), id.s, func(c *registry.Client) error {
		// Checked here, on the version being written, so that a secret
		// changed concurrently can never authorize this update.
		// Only clients registered through MediaGoblin: an update may rewrite
		// redirect URIs and names under MediaGoblin's looser rules, which
		// must not reach an RFC 7591 client or undo the approval of a
		// Kustvakt plugin. Others look unknown, as a wrong secret does.
		if c.API != registry.APIMediaGoblin || !registry.Verify(c.SecretHash, secret.s) || c.SecretExpired(now) {
			return errMGUnauthorized
		}
		// The stored logo is the default, and is validated again when the
		// request omits logo_uri, as the real view does.
		f, msg := mgParseFields(data, c.LogoURI, &a.o.Policy)
		if msg != "" {
			return &mgFailure{msg}
		}
		c.ApplicationType = appType
		f.apply(c)
		// Checked on the merged client: a request may change the logo or
		// the redirect URIs alone.
		if reason := a.o.Policy.DisplayURIRefusal(c); reason != "" {
			return &mgFailure{sentence(reason)}
		}
		return nil
	})
	var fe *mgFailure
	switch {
	case errors.As(err, &fe):
		answer(http.StatusBadRequest, fe.msg)
		return
	case errors.Is(err, errMGUnauthorized), errors.Is(err, registry.ErrNotFound):
		answer(http.StatusForbidden, mgUnauthorized)
		return
	case err != nil:
		a.storeError(w, began, "update", err)
		return
	}
	a.o.Health.OK(a.o.Logger, began, true)
	a.o.registered(r, updated.ID)
	a.o.Logger.Info("client updated", zap.String("api", a.o.api), zap.String("client_id", updated.ID))
	// The real server echoes what was sent; both equal what is stored.
	a.succeed(w, id.s, secret.s, updated.SecretExpiresAt)
}

// mgFields are the client fields a request sets, already validated.
type mgFields struct {
	logoSet      bool // logo_uri (or logo_url) was sent
	logo         string
	name         string
	contactsSet  bool
	contacts     []string
	redirectsSet bool
	redirects    []string
}

// mgParseFields runs the real view's common tail on data: logo, name,
// contacts and redirect URIs, in that order, first failure wins.
// storedLogo is the client's current logo ("" for a new client: an empty
// logo and None both pass validation, so they need no distinction).
func mgParseFields(data *pyDict, storedLogo string, policy *registry.Policy) (mgFields, string) {
	var f mgFields
	// The documented names are accepted too; the code's names win when a
	// request has both.
	logo, ok := data.first("logo_uri", "logo_url")
	if ok {
		f.logoSet = true
		switch {
		case logo.kind == pyNone:
			// None skips the check and clears the logo.
		case logo.kind == pyStr && registry.PythonURLValid(logo.s):
			f.logo = logo.s
		default:
			// Values that are not strings fail too (the spec's rule). In
			// Python, urlparse lets falsy ones (0, false, [], {}) through,
			// and the real server then stores them or fails with a 500.
			return f, "Logo URI " + logo.str() + " is not a valid URI."
		}
	} else if storedLogo != "" && !registry.PythonURLValid(storedLogo) {
		return f, "Logo URI " + storedLogo + " is not a valid URI."
	}

	// application_name is assigned unconditionally: omitted means None,
	// which is stored as no name.
	if n, ok := data.first("application_name"); ok && n.kind != pyNone {
		f.name = n.str()
	}

	// contacts and redirect_uris are checked only when not None: the view
	// uses data.get(key, None) here, not "key in data".
	if c, ok := data.first("contacts"); ok && c.kind != pyNone {
		if c.kind != pyStr {
			return f, mgContactsType
		}
		f.contactsSet, f.contacts = true, pySplit(c.s)
		for _, e := range f.contacts {
			if !strings.Contains(e, "@") {
				return f, "Email " + e + " is not a valid email."
			}
		}
	}
	if u, ok := data.first("redirect_uris", "redirect_uri"); ok && u.kind != pyNone {
		if u.kind != pyStr {
			return f, mgRedirectsType
		}
		f.redirectsSet, f.redirects = true, pySplit(u.s)
		for _, uri := range f.redirects {
			if !registry.PythonURLValid(uri) {
				return f, "URI " + uri + " is not a valid URI"
			}
		}
	}
	// A lone surrogate passes every check above, as in the real view,
	// whose database then cannot store it in a text column (logo_url,
	// application_name: a 500 there), and so does an application_name the
	// database driver cannot bind at all (a list, an object, an integer
	// beyond 64 bits): refused as data that cannot be decoded, and never
	// stored. Contacts and redirect URIs go to JSON columns, json.dumps
	// escapes the surrogate and the real server answers 200: here it
	// becomes U+FFFD, as a string in the shared client model must be UTF-8.
	if n, ok := data.first("application_name"); ok && pyUnbindable(n) {
		return f, mgDecodeError
	}
	if pyHasSurrogate(f.logo) || pyHasSurrogate(f.name) {
		return f, mgDecodeError
	}
	// What follows are not checks of MediaGoblin's, so they are made after
	// all of its own (and the stand-ins for its failures above), whose
	// answers they must not change. Every API keeps names that pages show
	// safe to show (registry.UnsafeDisplayRune).
	if unsafeName(f.name) {
		return f, "Application name must not contain control characters, line separators or bidirectional overrides."
	}
	// Nor do the other APIs store URLs or contacts with such characters
	// (a redirect URI that reads as another, a NUL that cuts it short
	// where it is shown), or a logo with a dangerous scheme, as for
	// redirect URIs: the store is shared, and whoever shows a client's
	// logo (a consent page) would be handed a script URL. Refused with
	// MediaGoblin's own messages for those fields, as its URL checks let
	// them through.
	if unsafeName(f.logo) || registry.HasDangerousScheme(f.logo) {
		return f, "Logo URI " + f.logo + " is not a valid URI."
	}
	for _, e := range f.contacts {
		if unsafeName(e) {
			return f, "Email " + e + " is not a valid email."
		}
	}
	// The redirect policy (no dangerous schemes, the host allowlist, the
	// count cap) too. Plain http stays allowed: MediaGoblin's documented
	// examples register http redirect URIs.
	for i, uri := range f.redirects {
		if unsafeName(uri) || registry.HasDangerousScheme(uri) ||
			!registry.RedirectHostAllowed(uri, policy.RedirectHosts) || i >= policy.RedirectURICap() {
			return f, "URI " + uri + " is not a valid URI"
		}
	}
	f.contacts, f.redirects = pyReplaceSurrogates(f.contacts), pyReplaceSurrogates(f.redirects)
	return f, ""
}

// pyUnbindable reports whether Python's sqlite3 refuses v as a query
// parameter: a list or a dict (no adapter), an int outside SQLite's 64
// bits (OverflowError), or a str with a lone surrogate, which it cannot
// encode as UTF-8 (UnicodeEncodeError).
func pyUnbindable(v pyValue) bool {
	switch v.kind {
	case pyList, pyDictKind:
		return true
	case pyInt:
		_, err := strconv.ParseInt(v.s, 10, 64)
		return err != nil
	case pyStr:
		return pyHasSurrogate(v.s)
	}
	return false
}

// pyReplaceSurrogates returns list with each lone surrogate in its
// strings replaced by U+FFFD, sharing list when there is none.
func pyReplaceSurrogates(list []string) []string {
	if !slices.ContainsFunc(list, pyHasSurrogate) {
		return list
	}
	out := make([]string, len(list))
	for i, s := range list {
		var b strings.Builder
		for len(s) > 0 {
			if pySurrogateAt(s, 0) {
				b.WriteRune(utf8.RuneError)
				s = s[3:]
				continue
			}
			_, n := utf8.DecodeRuneInString(s)
			b.WriteString(s[:n])
			s = s[n:]
		}
		out[i] = b.String()
	}
	return out
}

// pyHasSurrogate reports whether s holds a lone surrogate (see pyValue).
func pyHasSurrogate(s string) bool {
	for i := strings.IndexByte(s, 0xed); i >= 0; {
		if pySurrogateAt(s, i) {
			return true
		}
		j := strings.IndexByte(s[i+1:], 0xed)
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

// apply stores the fields: the logo, contacts and redirect URIs only when
// sent, the name always.
func (f *mgFields) apply(c *registry.Client) {
	if f.logoSet {
		c.LogoURI = f.logo
	}
	c.ClientName = f.name
	if f.contactsSet {
		c.Contacts = f.contacts
	}
	if f.redirectsSet {
		c.RedirectURIs = f.redirects
	}
}

// mgDecodeRequest is MediaGoblin's decode_request followed by the checks
// the view makes before it can treat the data as a dict. It returns the
// object, or the error message to answer.
//
// The content type's main value is compared exactly (werkzeug 1.x does not
// lower-case it): JSON, a form, or no content type (an empty form);
// anything else is "Unknown Content-Type".
func mgDecodeRequest(contentType string, body []byte) (*pyDict, string) {
	switch mgMediaType(contentType) {
	case "application/json":
	case "application/x-www-form-urlencoded":
		return mgParseForm(body, mgKey), ""
	case "":
		// werkzeug parses a form only for a form content type; a request
		// without one has an empty form whatever its body.
		return newPyDict(), ""
	default:
		return nil, mgUnknownCT
	}
	v, topType, ok := pyJSONLoadsKeep(body, mgKey)
	if !ok {
		return nil, mgDecodeError
	}
	// Python tests `data == ""` and then `"type" not in data` on whatever
	// json.loads returned. A string is searched for the substring and a
	// list for the element; where the view would then call data.get and
	// crash (or where `in` itself raises: None, numbers, booleans), the
	// clone answers the decode error instead of a 500.
	switch v.kind {
	case pyDictKind:
		return v.dict, ""
	case pyStr:
		if v.s == "" {
			return nil, mgUnknownCT
		}
		if !strings.Contains(v.s, "type") {
			return nil, mgNoType
		}
	case pyList:
		if !topType {
			return nil, mgNoType
		}
	}
	return nil, mgDecodeError
}

// mgMediaType extracts the main value of a Content-Type header the way
// werkzeug 1.x parse_options_header does: after leading whitespace, the
// longest run of characters other than ';', ',' and whitespace. The header
// reaches Python as Latin-1, so whitespace is judged byte by byte with
// Python's idea of it.
func mgMediaType(h string) string {
	i := 0
	for i < len(h) && pyIsSpace(rune(h[i])) {
		i++
	}
	j := i
	for j < len(h) && h[j] != ';' && h[j] != ',' && !pyIsSpace(rune(h[j])) {
		j++
	}
	return h[i:j]
}

// mgParseForm decodes an application/x-www-form-urlencoded body as
// werkzeug 1.x does: pairs split on '&' (empty ones skipped), a pair
// without '=' is a key with an empty value, '+' is a space, a '%' not
// followed by two hex digits stays as it is, and the bytes are decoded as
// UTF-8 with invalid sequences replaced by U+FFFD. Like MultiDict.get, the
// first value of a repeated key is the one used. Only the keys keep names
// are kept (all with keep nil).
func mgParseForm(body []byte, keep func(string) bool) *pyDict {
	d := newPyDict()
	for rest := string(body); rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key := mgUnquotePlus(k)
		if (keep == nil || keep(key)) && !d.has(key) {
			d.set(key, pyValue{kind: pyStr, s: mgUnquotePlus(v)})
		}
	}
	return d
}

// mgKey reports whether the view reads the member key of the request: the
// decoders keep only those, so that a body of thousands of other members
// costs no more memory than its size.
func mgKey(key string) bool {
	switch key {
	case "type", "application_type", "client_id", "client_secret", "access_token",
		"logo_uri", "logo_url", "application_name", "contacts", "redirect_uris", "redirect_uri":
		return true
	}
	return false
}

func mgUnquotePlus(s string) string {
	s = strings.ReplaceAll(s, "+", " ")
	if !strings.Contains(s, "%") {
		return pyDecodeUTF8Replace(s)
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHexDigit(s[i+1]) && isHexDigit(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return pyDecodeUTF8Replace(string(b))
}

func isHexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'f'
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c | 0x20 - 'a' + 10
}

// pyDecodeUTF8Replace is bytes.decode("utf-8", "replace"): each maximal
// ill-formed subsequence (a valid start and as many valid continuation
// bytes as follow it, or a single invalid byte) becomes one U+FFFD.
func pyDecodeUTF8Replace(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r != utf8.RuneError || size > 1 {
			b.WriteString(s[i : i+size])
			i += size
			continue
		}
		b.WriteRune(utf8.RuneError)
		i += utf8IllFormedLen(s[i:])
	}
	return b.String()
}

// utf8IllFormedLen returns the length of the maximal ill-formed prefix of
// s, which starts with an invalid sequence (Unicode 3.9, table 3-7).
func utf8IllFormedLen(s string) int {
	lo, hi := byte(0x80), byte(0xbf)
	need := 0
	switch c := s[0]; {
	case c >= 0xc2 && c <= 0xdf:
		need = 1
	case c == 0xe0:
		need, lo = 2, 0xa0
	case c == 0xed:
		need, hi = 2, 0x9f
	case c >= 0xe1 && c <= 0xef:
		need = 2
	case c == 0xf0:
		need, lo = 3, 0x90
	case c == 0xf4:
		need, hi = 3, 0x8f
	case c >= 0xf1 && c <= 0xf3:
		need = 3
	default:
		return 1
	}
	n := 1
	for ; n <= need && n < len(s); n++ {
		if s[n] < lo || s[n] > hi {
			break
		}
		lo, hi = 0x80, 0xbf
	}
	return n
}

// ---------------------------------------------------------------------------
// A model of the Python values json.loads produces.
//
// Strings are Python str values held in Go strings: UTF-8, except that a
// lone surrogate (JSON "\ud800" without its pair, which Python keeps) is
// held in its generalized 3-byte UTF-8 form, so that messages can print it
// back as Python does.

type pyKind uint8

const (
	pyNone pyKind = iota
	pyBool
	pyInt
	pyFloat
	pyStr
	pyList
	pyDictKind
)

// pyValue is one value. A list or a dict is kept as its JSON text (s),
// read again only to be printed (repr); only the top-level object is
// built (dict): the view asks no more of the others than their type, and
// building the elements of 64 KiB of "[\"\", ...]" would take megabytes.
type pyValue struct {
	kind pyKind
	b    bool
	s    string // pyStr: the text; pyInt: the decimal digits; pyList, pyDictKind: the JSON text
	f    float64
	dict *pyDict // the top-level object
}

func (v pyValue) isStr(s string) bool { return v.kind == pyStr && v.s == s }

// pyDict is a Python dict: insertion-ordered keys.
type pyDict struct {
	keys []string
	vals map[string]pyValue
}

func newPyDict() *pyDict { return &pyDict{vals: map[string]pyValue{}} }

// set keeps a key's first position and its last value, as assigning to a
// dict does (and so json.loads for duplicate keys).
func (d *pyDict) set(k string, v pyValue) {
	if _, ok := d.vals[k]; !ok {
		d.keys = append(d.keys, k)
	}
	d.vals[k] = v
}

func (d *pyDict) has(k string) bool {
	_, ok := d.vals[k]
	return ok
}

// first returns the value of the first of keys that is present.
func (d *pyDict) first(keys ...string) (pyValue, bool) {
	for _, k := range keys {
		if v, ok := d.vals[k]; ok {
			return v, true
		}
	}
	return pyValue{}, false
}

// str is Python's str(v).
func (v pyValue) str() string {
	if v.kind == pyStr {
		return v.s
	}
	var b strings.Builder
	v.repr(&b)
	return b.String()
}

// repr appends Python's repr(v).
func (v pyValue) repr(b *strings.Builder) {
	switch v.kind {
	case pyNone:
		b.WriteString("None")
	case pyBool:
		if v.b {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case pyInt:
		b.WriteString(v.s)
	case pyFloat:
		b.WriteString(pyFloatRepr(v.f))
	case pyStr:
		pyStrRepr(b, v.s)
	case pyList, pyDictKind:
		newPyReprWriter(v.s, b).value(0)
	}
}

// pyReprWriter prints the repr of a list or dict kept as its JSON text
// (already parsed once, so valid): elements and members are read from the
// text as they are printed, and a dict's members are found by the end of
// each value, known beforehand, so that no part of the text is read more
// than a few times however deep the nesting.
type pyReprWriter struct {
	s    string
	b    *strings.Builder
	ends []int32 // ends[i]: where the list or dict that starts at i ends
}

func newPyReprWriter(s string, b *strings.Builder) *pyReprWriter {
	w := &pyReprWriter{s: s, b: b, ends: make([]int32, len(s))}
	var open []int32
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			i = registry.StringEnd(s, i) - 1 // the closing quote
		case '[', '{':
			open = append(open, int32(i))
		case ']', '}':
			if n := len(open); n > 0 {
				w.ends[open[n-1]] = int32(i + 1)
				open = open[:n-1]
			}
		}
	}
	return w
}

func (w *pyReprWriter) space(i int) int { return pySkipSpace(w.s, i) }

// value prints the value at i and returns where it ends.
func (w *pyReprWriter) value(i int) int {
	i = w.space(i)
	if i >= len(w.s) {
		return i
	}
	switch w.s[i] {
	case '[':
		w.b.WriteByte('[')
		i = w.space(i + 1)
		for n := 0; i < len(w.s) && w.s[i] != ']'; n++ {
			if n > 0 {
				w.b.WriteString(", ")
			}
			i = w.next(w.value(i))
		}
		w.b.WriteByte(']')
		return i + 1
	case '{':
		// A key keeps its first position and its last value.
		var keys []string
		at := map[string]int{}
		i = w.space(i + 1)
		for i < len(w.s) && w.s[i] != '}' {
			q := &pyJSONParser{s: w.s, i: i}
			k, _ := q.str()
			start := w.space(w.space(q.i) + 1) // past ':'
			if _, seen := at[k]; !seen {
				keys = append(keys, k)
			}
			at[k] = start
			i = w.next(w.end(start))
		}
		w.b.WriteByte('{')
		for n, k := range keys {
			if n > 0 {
				w.b.WriteString(", ")
			}
			pyStrRepr(w.b, k)
			w.b.WriteString(": ")
			w.value(at[k])
		}
		w.b.WriteByte('}')
		return i + 1
	}
	q := &pyJSONParser{s: w.s, i: i}
	v, _ := q.value() // a scalar
	v.repr(w.b)
	return q.i
}

// end returns where the value at i ends.
func (w *pyReprWriter) end(i int) int {
	if c := w.s[i]; c == '[' || c == '{' {
		return int(w.ends[i])
	}
	q := &pyJSONParser{s: w.s, i: i}
	q.value()
	return q.i
}

// next moves past the space and the comma after a value.
func (w *pyReprWriter) next(i int) int {
	if i = w.space(i); i < len(w.s) && w.s[i] == ',' {
		i = w.space(i + 1)
	}
	return i
}

// pyFloatRepr is Python's repr(float): the shortest digits that round-trip,
// positional notation for exponents from -4 to 15 (with ".0" when there is
// no fraction), scientific notation with a signed two-digit-minimum
// exponent otherwise.
func pyFloatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // [-]d[.ddd]e±dd
	sign := ""
	if e[0] == '-' {
		sign, e = "-", e[1:]
	}
	mant, expText, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	exp, _ := strconv.Atoi(expText)
	decpt := exp + 1 // the value is 0.<digits> times 10**decpt
	if decpt <= -4 || decpt > 16 {
		m := digits[:1]
		if len(digits) > 1 {
			m += "." + digits[1:]
		}
		es := "+"
		if exp < 0 {
			es, exp = "-", -exp
		}
		x := strconv.Itoa(exp)
		if len(x) < 2 {
			x = "0" + x
		}
		return sign + m + "e" + es + x
	}
	switch {
	case decpt <= 0:
		return sign + "0." + strings.Repeat("0", -decpt) + digits
	case decpt >= len(digits):
		return sign + digits + strings.Repeat("0", decpt-len(digits)) + ".0"
	default:
		return sign + digits[:decpt] + "." + digits[decpt:]
	}
}

// pyStrRepr appends Python's repr(str): single quotes unless the text has a
// single quote and no double quote; backslash escapes for the quote, the
// backslash, \t, \n, \r; \xNN, \uNNNN or \UNNNNNNNN for what Python does not
// consider printable (controls, format characters, separators other than
// the space, surrogates, private use, unassigned).
func pyStrRepr(b *strings.Builder, s string) {
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	b.WriteByte(quote)
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); {
		r, size := pyDecodeRune(s[i:])
		i += size
		switch {
		case r == rune(quote) || r == '\\':
			b.WriteByte('\\')
			b.WriteByte(byte(r))
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < ' ' || r == 0x7f:
			b.WriteString(`\x`)
			b.WriteByte(hex[r>>4])
			b.WriteByte(hex[r&0xf])
		case r < 0x7f:
			b.WriteByte(byte(r))
		case pyPrintable(r):
			b.WriteRune(r)
		case r <= 0xff:
			b.WriteString(`\x`)
			b.WriteByte(hex[r>>4])
			b.WriteByte(hex[r&0xf])
		case r <= 0xffff:
			b.WriteString(`\u`)
			for sh := 12; sh >= 0; sh -= 4 {
				b.WriteByte(hex[r>>sh&0xf])
			}
		default:
			b.WriteString(`\U`)
			for sh := 28; sh >= 0; sh -= 4 {
				b.WriteByte(hex[r>>sh&0xf])
			}
		}
	}
	b.WriteByte(quote)
}

// pyPrintable is str.isprintable for one non-ASCII character: false for the
// categories "Other" (Cc, Cf, Cs, Co, Cn) and "Separator" (Zs, Zl, Zp).
func pyPrintable(r rune) bool {
	if r >= 0xd800 && r <= 0xdfff {
		return false
	}
	return unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S)
}

// pyDecodeRune decodes one character, lone surrogates included.
func pyDecodeRune(s string) (rune, int) {
	if pySurrogateAt(s, 0) {
		return rune(0xd000) | rune(s[1]&0x3f)<<6 | rune(s[2]&0x3f), 3
	}
	return utf8.DecodeRuneInString(s)
}

// pySurrogateAt reports whether s holds the 3-byte form of a surrogate at i.
func pySurrogateAt(s string, i int) bool {
	return i+2 < len(s) && s[i] == 0xed && s[i+1] >= 0xa0 && s[i+1] <= 0xbf && s[i+2] >= 0x80 && s[i+2] <= 0xbf
}

// pyAppendSurrogate appends the 3-byte form of surrogate r.
func pyAppendSurrogate(b []byte, r rune) []byte {
	return append(b, 0xed, byte(0x80|(r>>6)&0x3f), byte(0x80|r&0x3f))
}

// pyJSONString encodes s as json.dumps does (ensure_ascii). jsonw does the
// work, except for two characters it does not escape the way json.dumps
// does: DEL, which json.dumps writes as \u007f, and lone surrogates, which
// jsonw cannot see in a Go string and json.dumps writes as \udxxx.
func pyJSONString(s string) []byte {
	if utf8.ValidString(s) && strings.IndexByte(s, 0x7f) < 0 {
		return jsonw.AppendString(nil, s, jsonw.Python)
	}
	const hex = "0123456789abcdef"
	out := []byte{'"'}
	seg := func(t string) {
		if t != "" {
			q := jsonw.AppendString(nil, t, jsonw.Python)
			out = append(out, q[1:len(q)-1]...)
		}
	}
	start := 0
	for i := 0; i < len(s); {
		var r rune
		switch {
		case s[i] == 0x7f:
			r = 0x7f
		case pySurrogateAt(s, i):
			r, _ = pyDecodeRune(s[i:])
		default:
			i++
			continue
		}
		seg(s[start:i])
		out = append(out, '\\', 'u', hex[r>>12], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
		if r == 0x7f {
			i++
		} else {
			i += 3
		}
		start = i
	}
	seg(s[start:])
	return append(out, '"')
}

// pyIsSpace is Python's str.isspace for one character: what str.split()
// splits on, including the ASCII information separators \x1c-\x1f, which
// Go's unicode.IsSpace does not count.
func pyIsSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', 0x1c, 0x1d, 0x1e, 0x1f, ' ', 0x85, 0xa0,
		0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}

// pySplit is Python's str.split() without arguments: the words between runs
// of whitespace, none empty.
func pySplit(s string) []string {
	words := []string{}
	start := -1
	for i := 0; i < len(s); {
		r, size := pyDecodeRune(s[i:])
		if pyIsSpace(r) {
			if start >= 0 {
				words = append(words, s[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
		i += size
	}
	if start >= 0 {
		words = append(words, s[start:])
	}
	return words
}

// ---------------------------------------------------------------------------
// json.loads, as CPython's C scanner does it.

// pyJSONMaxDepth bounds nesting. Python's scanner recurses and fails with
// RecursionError (a 500 in the real server) around a thousand levels; the
// clone answers the decode error instead.
const pyJSONMaxDepth = 1000

// pyMaxIntDigits is CPython's default limit for converting decimal text to
// int (3.11+); json.loads raises ValueError beyond it.
const pyMaxIntDigits = 4300

type pyJSONParser struct {
	s     string
	i     int
	depth int
	// keep, when set, names the members of a top-level object that are
	// kept; the others are parsed for validity only. What the view never
	// reads then costs no memory: 64 KiB of members would otherwise become
	// a map of thousands of values.
	keep func(key string) bool
	// topType is set when a top-level array holds the string "type" (all
	// the view asks of one).
	topType bool
}

// pyJSONLoads is json.loads(body.decode("utf-8")): strict UTF-8; no byte
// order mark; whitespace is space, tab, CR and LF; NaN, Infinity and
// -Infinity are numbers; no control characters inside strings; duplicate
// keys keep the last value; unpaired surrogate escapes are kept.
func pyJSONLoads(body []byte) (pyValue, bool) {
	v, _, ok := pyJSONLoadsKeep(body, nil)
	return v, ok
}

// pyJSONLoadsKeep is pyJSONLoads keeping, of a top-level object, only the
// members keep names (all with keep nil); topType reports whether a
// top-level array holds the string "type".
func pyJSONLoadsKeep(body []byte, keep func(string) bool) (v pyValue, topType, ok bool) {
	if !utf8.Valid(body) {
		return pyValue{}, false, false
	}
	p := &pyJSONParser{s: string(body), keep: keep}
	p.skipSpace()
	v, ok = p.value()
	if !ok {
		return pyValue{}, false, false
	}
	p.skipSpace()
	return v, p.topType, p.i == len(p.s)
}

func (p *pyJSONParser) skipSpace() { p.i = pySkipSpace(p.s, p.i) }

// pySkipSpace returns the index of the first byte at or after i that is
// not JSON white space (space, tab, CR, LF).
func pySkipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

func (p *pyJSONParser) literal(word string) bool {
	if strings.HasPrefix(p.s[p.i:], word) {
		p.i += len(word)
		return true
	}
	return false
}

func (p *pyJSONParser) value() (pyValue, bool) {
	if p.i >= len(p.s) {
		return pyValue{}, false
	}
	switch c := p.s[p.i]; {
	case c == '"':
		s, ok := p.str()
		return pyValue{kind: pyStr, s: s}, ok
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == 'n' && p.literal("null"):
		return pyValue{kind: pyNone}, true
	case c == 't' && p.literal("true"):
		return pyValue{kind: pyBool, b: true}, true
	case c == 'f' && p.literal("false"):
		return pyValue{kind: pyBool}, true
	case c == 'N' && p.literal("NaN"):
		return pyValue{kind: pyFloat, f: math.NaN()}, true
	case c == 'I' && p.literal("Infinity"):
		return pyValue{kind: pyFloat, f: math.Inf(1)}, true
	case c == '-' && p.literal("-Infinity"):
		return pyValue{kind: pyFloat, f: math.Inf(-1)}, true
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	return pyValue{}, false
}

func (p *pyJSONParser) enter() bool {
	p.depth++
	return p.depth <= pyJSONMaxDepth
}

func (p *pyJSONParser) object() (pyValue, bool) {
	if !p.enter() {
		return pyValue{}, false
	}
	defer func() { p.depth-- }()
	start := p.i
	p.i++ // {
	// Only the top-level object is built; below it, an object is kept as
	// its text (see pyValue).
	var d *pyDict
	if p.depth == 1 {
		d = newPyDict()
	}
	done := func() (pyValue, bool) { return pyValue{kind: pyDictKind, s: p.s[start:p.i], dict: d}, true }
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return done()
	}
	for {
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return pyValue{}, false
		}
		k, ok := p.str()
		if !ok {
			return pyValue{}, false
		}
		p.skipSpace()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return pyValue{}, false
		}
		p.i++
		p.skipSpace()
		v, ok := p.value()
		if !ok {
			return pyValue{}, false
		}
		if d != nil && (p.keep == nil || p.keep(k)) {
			d.set(k, v)
		}
		p.skipSpace()
		if p.i >= len(p.s) {
			return pyValue{}, false
		}
		switch p.s[p.i] {
		case '}':
			p.i++
			return done()
		case ',':
			p.i++
			p.skipSpace()
		default:
			return pyValue{}, false
		}
	}
}

func (p *pyJSONParser) array() (pyValue, bool) {
	if !p.enter() {
		return pyValue{}, false
	}
	defer func() { p.depth-- }()
	start := p.i
	p.i++ // [
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return pyValue{kind: pyList, s: p.s[start:p.i]}, true
	}
	for {
		v, ok := p.value()
		if !ok {
			return pyValue{}, false
		}
		if p.depth == 1 && v.isStr("type") {
			p.topType = true
		}
		p.skipSpace()
		if p.i >= len(p.s) {
			return pyValue{}, false
		}
		switch p.s[p.i] {
		case ']':
			p.i++
			return pyValue{kind: pyList, s: p.s[start:p.i]}, true
		case ',':
			p.i++
			p.skipSpace()
		default:
			return pyValue{}, false
		}
	}
}

func (p *pyJSONParser) digits() int {
	start := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	return p.i - start
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?: an int
// without fraction or exponent, a float otherwise. An incomplete fraction
// or exponent ends the number early, and the text left over then fails
// the parse, as in Python.
func (p *pyJSONParser) number() (pyValue, bool) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	intStart := p.i
	switch {
	case p.i < len(p.s) && p.s[p.i] == '0':
		p.i++
	case p.i < len(p.s) && p.s[p.i] >= '1' && p.s[p.i] <= '9':
		p.digits()
	default:
		return pyValue{}, false
	}
	intDigits := p.i - intStart
	isFloat := false
	if p.i+1 < len(p.s) && p.s[p.i] == '.' && p.s[p.i+1] >= '0' && p.s[p.i+1] <= '9' {
		p.i++
		p.digits()
		isFloat = true
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		mark := p.i
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if p.digits() > 0 {
			isFloat = true
		} else {
			p.i = mark
		}
	}
	text := p.s[start:p.i]
	if isFloat {
		// Out of range is not an error in Python: overflow gives an
		// infinity and underflow zero, which ParseFloat returns too.
		f, err := strconv.ParseFloat(text, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return pyValue{}, false
		}
		return pyValue{kind: pyFloat, f: f}, true
	}
	if intDigits > pyMaxIntDigits {
		return pyValue{}, false
	}
	if text == "-0" {
		text = "0"
	}
	return pyValue{kind: pyInt, s: text}, true
}

// str reads a string literal at p.i (which is '"').
func (p *pyJSONParser) str() (string, bool) {
	p.i++
	start := p.i
	// Fast path: no escapes.
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == '"' {
			s := p.s[start:p.i]
			p.i++
			return s, true
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", false
		}
		p.i++
	}
	b := []byte(p.s[start:p.i])
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return string(b), true
		case c < 0x20:
			return "", false
		case c != '\\':
			b = append(b, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.s) {
			return "", false
		}
		e := p.s[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := p.hex4(p.i)
			if !ok {
				return "", false
			}
			p.i += 4
			if r >= 0xd800 && r <= 0xdbff && strings.HasPrefix(p.s[p.i:], `\u`) {
				// A high surrogate joins an escaped low surrogate that
				// follows it; anything else leaves it alone.
				if r2, ok := p.hex4(p.i + 2); ok && r2 >= 0xdc00 && r2 <= 0xdfff {
					b = utf8.AppendRune(b, 0x10000+(r-0xd800)<<10+(r2-0xdc00))
					p.i += 6
					continue
				}
			}
			if r >= 0xd800 && r <= 0xdfff {
				b = pyAppendSurrogate(b, r)
			} else {
				b = utf8.AppendRune(b, r)
			}
		default:
			return "", false
		}
	}
	return "", false
}

func (p *pyJSONParser) hex4(at int) (rune, bool) {
	if at+4 > len(p.s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(p.s[at : at+4]) {
		if !isHexDigit(c) {
			return 0, false
		}
		r = r<<4 | rune(unhex(c))
	}
	return r, true
}

// mgClient is what a MediaGoblin registration registers before the
// request's fields: a client of the authorization code grant with a
// secret, as MediaGoblin's own are.
func mgClient(appType string) *registry.Client {
	return &registry.Client{
		API:                     registry.APIMediaGoblin,
		Permitted:               true,
		ApplicationType:         appType,
		TokenEndpointAuthMethod: registry.AuthClientSecretBasic,
		GrantTypes:              []string{"authorization_code"},
		ResponseTypes:           []string{"code"},
	}
}

// MediaGoblinPolicyProblem says why the allowed lists of p refuse every
// MediaGoblin registration, or "" when they do not.
func MediaGoblinPolicyProblem(p *registry.Policy) string {
	if reason := p.Refusal(mgClient("web")); reason != "" {
		return reason + ": every mediagoblin registration will be refused"
	}
	return ""
}
