// Package handler serves the HTTP front doors of caddy-dcr: RFC 7591/7592
// registration and management with RFC 8414 metadata, and the three cloned
// APIs (MediaGoblin, Kustvakt, Huawei IAM Identity Center). It is plain
// net/http and zap; the Caddy module in the root package wires it in.
package handler

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/net/idna"

	"github.com/caddy-dcr/caddy-dcr/registry"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

// MaxBodyBytes caps every request body this package reads.
const MaxBodyBytes = 64 << 10

// RetryAfterSeconds is sent with every 503 caused by the store.
const RetryAfterSeconds = "5"

// API is one front door. Serve answers the request and returns true when
// the path is one of the API's routes; otherwise it writes nothing and
// returns false so the caller passes the request on.
type API interface {
	Serve(w http.ResponseWriter, r *http.Request) bool
}

// Options are shared by every API.
type Options struct {
	Registry *registry.Registry
	Logger   *zap.Logger
	// Prefix is where the API's routes are mounted ("" = site root); it
	// starts with "/" and has no trailing slash.
	Prefix string
	// Issuer is the configured issuer URL, or "" to use the request's
	// scheme://host. It may hold request placeholders, expanded by Expand.
	// Without them it is in normal form (NormalURL), as published.
	Issuer string
	// IssuerWritten is the issuer as the config writes it, when its
	// normal form differs: software statements made out to it (aud)
	// are for this server too.
	IssuerWritten string
	// AuthorizationEndpoint and TokenEndpoint are published; "" means the
	// API's default under the base URL. Placeholders allowed.
	AuthorizationEndpoint string
	TokenEndpoint         string
	// SecretLifetime, when set, overrides the API's default secret lifetime.
	SecretLifetime *time.Duration
	// Policy is the RFC 7591 metadata policy.
	Policy registry.Policy
	// Expand replaces request placeholders in s (nil: s unchanged).
	Expand func(r *http.Request, s string) string
	// User returns the authenticated user set by a preceding Caddy
	// authentication handler ({http.auth.user.id}), or "".
	User func(r *http.Request) string
	// TrustedProxy reports whether the request came from one of the
	// server's trusted proxies (Caddy's trusted_proxies); may be nil. Its
	// X-Forwarded-Proto is then believed: behind a proxy that terminates
	// TLS, the URLs given out are https.
	TrustedProxy func(r *http.Request) bool
	// Mount returns the path prefix an outer router stripped before the
	// request reached the API (Caddy's handle_path), as escaped in the
	// original request, or ""; may be nil. The URLs the API gives out when
	// no issuer is configured start with it, so that they lead back
	// through the same route.
	Mount func(r *http.Request) string
	// Registered is called after a client was created or changed, so the
	// caller can set placeholders and log fields; may be nil.
	Registered func(r *http.Request, clientID string)
	// Health records storage outages (shared by the APIs on one store).
	Health *Health
	// Metrics counts requests; may be nil.
	Metrics *Metrics
	// Gate is the registration policy (who, how often, how many).
	Gate Gate
	// CORS, when set, allows browser clients from other origins.
	CORS *CORS
	// Statements verifies RFC 7591 software statements; nil ignores them.
	Statements *Statements
	// HideRegistrationEndpoint leaves registration_endpoint out of the
	// RFC 8414 metadata: clients that cannot register there (no initial
	// access token) then fall back to a preconfigured client instead of
	// failing (dcr-anchors D3).
	HideRegistrationEndpoint bool
	// Holder, when set, is held while the API answers a request of one of
	// its routes (never one it passes on, which does not touch the store):
	// the store's Redis client, which a reload closes only once no request
	// holds it.
	Holder Holder

	api              string       // the API's name (registry.API*), set by its constructor (setAPI): log lines, metrics, the default mode, rate limit keys
	metrics          *apiMetrics  // the API's set of Metrics (nil without them), taken once by setAPI
	urlWarned        atomic.Int64 // when unresolvedURL last logged (UnixNano)
	issuerWarned     atomic.Bool  // whether checkIssuerPath has warned
	reservedWarned   atomic.Bool  // whether warnReservedUser has warned
	unsafeUserWarned atomic.Bool  // whether warnUnsafeUser has warned
	crossSiteOnce    sync.Once    // builds crossSiteCheck
	crossSiteCheck   *http.CrossOriginProtection
	issuerPath       atomic.Pointer[string] // a static issuer's path, for checkIssuerPath
}

// checkIssuerPath warns, once, when the configured issuer's path is not
// where this request found the API's routes (the mount of a handle_path
// and the prefix): the URLs given out (registration_client_uri, the
// metadata's registration_endpoint) then lead elsewhere, unless a proxy in
// front maps them back. "issuer https://host/oauth" without "prefix
// /oauth" is the usual slip; the request is served as configured.
func (o *Options) checkIssuerPath(r *http.Request) {
	if o.Issuer == "" || o.issuerWarned.Load() || o.Logger == nil {
		return
	}
	var issuerPath string
	if p := o.issuerPath.Load(); p != nil {
		issuerPath = *p
	} else {
		u, err := url.Parse(o.expand(r, o.Issuer))
		if err != nil {
			return
		}
		issuerPath = strings.TrimRight(u.Path, "/")
		if !strings.Contains(o.Issuer, "{") {
			o.issuerPath.Store(&issuerPath) // the same for every request
		}
	}
	here := o.mount(r) + o.urlPrefix()
	if here == issuerPath {
		return
	}
	here, err := url.PathUnescape(here)
	if err != nil || strings.EqualFold(issuerPath, strings.TrimRight(here, "/")) {
		return
	}
	if o.issuerWarned.Swap(true) {
		return
	}
	o.Logger.Warn("the issuer's path is not where this handler's routes are: the registration URLs it hands out lead elsewhere unless a proxy in front maps them here; include the prefix in the issuer, or set prefix to the issuer's path",
		zap.String("issuer_path", issuerPath+"/"), zap.String("routes_under", here+"/"))
}

// IssuerPathWarned tells the handler that the configuration has already
// been warned about the issuer's path (at load), so that checkIssuerPath
// does not warn again.
func (o *Options) IssuerPathWarned() { o.issuerWarned.Store(true) }

func (o *Options) expand(r *http.Request, s string) string {
	if o.Expand == nil || !strings.Contains(s, "{") {
		return s
	}
	return o.Expand(r, s)
}

// setAPI names the API the options serve, and takes its metrics.
func (o *Options) setAPI(api string) {
	o.api, o.metrics = api, o.Metrics.forAPI(api)
}

func (o *Options) user(r *http.Request) string {
	if o.User == nil {
		return ""
	}
	u := o.User(r)
	if strings.HasPrefix(u, registry.TokenOwnerPrefix) {
		// The owners of clients registered with initial access tokens
		// are named so: a user of that name (an identity provider behind
		// forward_auth may allow ":") would own them, deregister them
		// through Kustvakt and share their quota.
		o.warnReservedUser(u)
		return ""
	}
	if !utf8.ValidString(u) || strings.ContainsFunc(u, unsafeUserRune) {
		// A name from a header (forward_auth's) may carry what no
		// identity provider names a user with: control characters, or
		// bidirectional overrides or invisible characters (zero-width
		// spaces, direction marks: Unicode's format characters) that would
		// show another name, or the same as another's, wherever owners are
		// listed. Nobody, rather than a spoofed someone.
		o.warnUnsafeUser(u)
		return ""
	}
	return u
}

// warnUnsafeUser warns, once, that a user name was refused for characters
// no user name has; the name is logged in ASCII, escapes shown.
func (o *Options) warnUnsafeUser(u string) {
	if o.Logger == nil || o.unsafeUserWarned.Swap(true) {
		return
	}
	o.Logger.Warn("a user name with control characters, bidirectional or invisible formatting characters or invalid UTF-8 is not taken as a user; requests naming such a user are treated as having no user (logged once)",
		zap.String("api", o.api), zap.String("user", strconv.QuoteToASCII(logCut(u))))
}

// crossSite reports a request that a browser says comes from another
// origin (Sec-Fetch-Site other than same-origin or none, or without it an
// Origin whose host is not the request's Host) and whose origin is not
// listed under cors ("*" lists none: it lets any site read answers, it
// does not make any site's requests the user's own). A form
// post needs no CORS preflight, and the browser sends the credentials it
// keeps for this site (basic_auth's) with it: where those name the user a
// request acts for, such a request is a forgery. Clients that are not
// browsers send neither header.
func (o *Options) crossSite(r *http.Request) bool {
	o.crossSiteOnce.Do(func() {
		o.crossSiteCheck = http.NewCrossOriginProtection()
		if o.CORS == nil {
			return
		}
		for _, origin := range o.CORS.Origins {
			if origin != "*" {
				_ = o.crossSiteCheck.AddTrustedOrigin(origin) // checked when the config loaded
			}
		}
	})
	return o.crossSiteCheck.Check(r) != nil
}

// warnReservedUser warns, once, that a user name was refused for starting
// as the owners of token-registered clients do.
func (o *Options) warnReservedUser(u string) {
	if o.Logger == nil || o.reservedWarned.Swap(true) {
		return
	}
	o.Logger.Warn("a user name starting with "+registry.TokenOwnerPrefix+" is reserved for the owners of clients registered with initial access tokens; requests naming such a user are treated as having no user (logged once)",
		zap.String("api", o.api), zap.String("user", strconv.QuoteToASCII(logCut(u))))
}

// unsafeUserRune reports a character a user name may not hold: one no
// displayed name may (registry.UnsafeDisplay), or an invisible formatting
// character (Unicode's category Cf: zero-width spaces and joiners,
// direction marks, the byte order mark...).
func unsafeUserRune(r rune) bool { return registry.UnsafeDisplay(r) || unicode.Is(unicode.Cf, r) }

func (o *Options) registered(r *http.Request, id string) {
	if o.Registered != nil {
		o.Registered(r, id)
	}
}

// unsafeName reports a name with characters that have no place in a name
// shown to people (registry.UnsafeDisplayRune).
func unsafeName(s string) bool {
	_, bad := registry.UnsafeDisplayRune(s)
	return bad
}

// sentence turns a policy's reason ("grant type x is not allowed here")
// into a message: a leading capital and a full stop.
func sentence(reason string) string {
	return strings.ToUpper(reason[:1]) + reason[1:] + "."
}

// storeCtx is the context of a request's store operations: the request's
// values without its cancellation. Go cancels a request's context when the
// client closes its side of the connection, which clients that half-close
// after sending (nc -N, some proxies) do while still waiting for the
// answer; a store operation, bounded by the store's own timeouts, runs to
// its end instead of failing as if the store were down.
func storeCtx(r *http.Request) context.Context { return context.WithoutCancel(r.Context()) }

// origin is scheme://host of the request as the client sent it.
func (o *Options) origin(r *http.Request) string {
	scheme := o.scheme(r)
	return scheme + publishedHost(r.Host, scheme)
}

// publishedHost is the host[:port] h as the URLs given out hold it: in
// normal form (normalHost), and as clients' parsers write it (WebHost:
// "127.1" is 127.0.0.1, an internationalized name its A-label).
func publishedHost(h, scheme string) string {
	h = normalHost(h, scheme)
	if w, ok := WebHost(h); ok {
		h = w
	}
	return h
}

// normalHost is the Host header h (checked by validHost) in the normal
// form of RFC 3986 section 6.2.2: host name in lower case, port without
// leading zeros and left out when it is the scheme's default. Clients
// compare the issuer with the URL they discovered it from, which their URL
// parsers normalize so (RFC 8414 section 3.3: identical, or refused):
// "Example.COM" or "example.com:80" copied as sent would match none.
func normalHost(h, scheme string) string {
	if !strings.ContainsFunc(h, func(c rune) bool { return c == ':' || 'A' <= c && c <= 'Z' }) {
		return h // the common case, already normal
	}
	host, port := h, ""
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		host, port = h[:i], strings.TrimLeft(h[i+1:], "0")
	}
	// ASCII letters only: the rest is IDNA's to map (Go lower-cases "İ"
	// to "i" and "ẞ" to "ß", UTS 46 maps them to "i̇" and "ss").
	lower := asciiLower(host)
	if port == "" || (port == "80" && scheme == "http://") || (port == "443" && scheme == "https://") {
		return lower
	}
	if lower == host && len(host)+1+len(port) == len(h) {
		return h // normal already: no copy on every request to a port
	}
	return lower + ":" + port
}

// asciiLower is s with its ASCII letters in lower case.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// NormalURL is the absolute URL s, a configured issuer or endpoint (with
// its placeholders resolved), in the form clients' URL parsers (WHATWG's,
// rust-url, Go's) give the URL they compare the issuer with (RFC 8414
// section 3.3): scheme and host in lower case, the port as normalHost
// writes it, and what a URL may not hold as is (anything not ASCII, spaces
// and controls, the quotes and angle brackets) percent-encoded as UTF-8,
// an internationalized host name as its A-label.
// Written as configured, "https://Auth.Example.com:443/Ünï" would match no
// client's URL, and is no URI at all. Escapes already there, dot segments
// (refused by the config check) and a trailing "/" are left as they are.
// A value without "://", with user information or still holding "{" (a
// placeholder no request resolves) is returned as it is.
func NormalURL(s string) string {
	if strings.Contains(s, "{") {
		return s
	}
	return normalURL(s)
}

// normalURL is NormalURL for a value whose placeholders are resolved: a
// "{" in it came from a request, and is encoded like any character a path
// may not hold.
func normalURL(s string) string {
	i := strings.Index(s, "://")
	if i <= 0 {
		return s
	}
	scheme, rest := strings.ToLower(s[:i+3]), s[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	host, tail := rest[:end], rest[end:]
	if strings.Contains(host, "@") {
		return s
	}
	host = publishedHost(host, scheme)
	path, query := tail, ""
	if q := strings.IndexByte(tail, '?'); q >= 0 {
		path, query = tail[:q], tail[q:]
	}
	if scheme == s[:i+3] && host == rest[:end] && strings.IndexFunc(path, escapedInPath) < 0 && strings.IndexFunc(query, escapedInQuery) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(scheme)
	b.WriteString(host)
	appendEscaped(&b, path, escapedInPath)
	appendEscaped(&b, query, escapedInQuery)
	return b.String()
}

// appendEscaped writes s to b with the bytes of what escaped reports, and
// every byte of a character beyond ASCII, percent-encoded.
func appendEscaped(b *strings.Builder, s string, escaped func(rune) bool) {
	const upperHex = "0123456789ABCDEF"
	for j := 0; j < len(s); j++ {
		if c := s[j]; c < utf8.RuneSelf && !escaped(rune(c)) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		}
	}
}

// Authority is the authority (host[:port]) of the absolute URL s, as
// written.
func Authority(s string) string {
	_, rest, _ := strings.Cut(s, "://")
	if end := strings.IndexAny(rest, "/?#"); end >= 0 {
		rest = rest[:end]
	}
	return rest
}

// asciiHost is hostport with an internationalized host name, or one
// written as an A-label ("xn--..."), checked and written as its A-label,
// as clients' URL parsers write it; ok is false for a name that is none
// ("xn--zz", "xn--.example"). Other names and IPv6 literals are returned as they are.
func asciiHost(hostport string) (host string, ok bool) {
	if strings.HasPrefix(hostport, "[") ||
		!strings.ContainsFunc(hostport, func(c rune) bool { return c >= utf8.RuneSelf }) && !strings.Contains(strings.ToLower(hostport), "xn--") {
		return hostport, true
	}
	name, port := hostport, ""
	if j := strings.LastIndexByte(hostport, ':'); j >= 0 {
		name, port = hostport[:j], hostport[j:]
	}
	a, err := idna.Lookup.ToASCII(name)
	if err != nil || !registry.ValidHostName(a) {
		return hostport, false
	}
	// An empty Punycode label ("xn--", or "ｘｎ--" before mapping) converts
	// without error to an empty label: ".example", which is no name, or,
	// at the end, what reads as a trailing dot the name did not have.
	if strings.HasSuffix(a, ".") && !strings.HasSuffix(name, ".") && !strings.HasSuffix(name, "\u3002") &&
		!strings.HasSuffix(name, "\uff0e") && !strings.HasSuffix(name, "\uff61") {
		return hostport, false
	}
	return a + port, true
}

// escapedInPath and escapedInQuery report the characters NormalURL
// percent-encodes in a path and in a query: WHATWG's path and special-query
// percent-encode sets (controls, space, quotes, angle brackets; braces,
// the caret and the backquote in a path, the apostrophe in a query) and
// what is not ASCII.
func escapedInPath(c rune) bool {
	return c <= ' ' || c >= 0x7f || c == '"' || c == '<' || c == '>' || c == '`' || c == '{' || c == '}' || c == '^'
}

func escapedInQuery(c rune) bool {
	return c <= ' ' || c >= 0x7f || c == '"' || c == '<' || c == '>' || c == '\''
}

// IssuerPathProblem says what in the path of an issuer (parsed as u from
// raw) clients would read otherwise than it is written, or "": "." and
// ".." segments ("%2e" too), which they remove; "\", which browsers'
// parsers take for "/"; an encoded slash, which the metadata route, on the
// decoded path, cannot tell from a "/".
func IssuerPathProblem(raw string, u *url.URL) string {
	if strings.Contains(raw, "\\") {
		return "must not contain \\ (write /)"
	}
	if strings.Contains(strings.ToLower(u.EscapedPath()), "%2f") {
		return "must not contain an encoded slash (%2F)"
	}
	for seg := range strings.SplitSeq(u.Path, "/") {
		if seg == "." || seg == ".." {
			return "must not contain . or .. segments"
		}
	}
	return ""
}

// ValidEscapes reports whether every "%" in s starts an escape of two
// hexadecimal digits (url.Parse checks those of a path, not of a query).
func ValidEscapes(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && (i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2])) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// hostUnusable reports a request whose URLs would be built from a Host
// header that is not a plain host[:port] ("a.example:1,evil.example",
// "a.example:x"): Caddy matches sites by host name alone, so such a header
// reaches the API, and it would be copied into the issuer and the URLs
// given out. Only matters when URLs are built from the request: no issuer
// configured, or one with placeholders.
func (o *Options) hostUnusable(r *http.Request) bool {
	// A configured URL with placeholders may take the host from the
	// request too ({http.request.host}).
	fromRequest := o.Issuer == "" || strings.Contains(o.Issuer, "{") ||
		strings.Contains(o.AuthorizationEndpoint, "{") || strings.Contains(o.TokenEndpoint, "{")
	if !fromRequest {
		return false
	}
	// What clients' parsers refuse ("xn--a.example", "a.1", a zone)
	// would be published as the issuer's host, which a placeholder-made
	// issuer refuses: the two agree.
	_, ok := WebHost(r.Host)
	return !ok || !validHost(r.Host)
}

// refused logs at debug level why a request got an error answer: the
// client reads the same description, but an operator debugging a client
// that "does not work" should not need its cooperation. Descriptions
// quote what the client sent, never a credential.
func (o *Options) refused(status int, code string, desc any) {
	if o.Logger == nil {
		return
	}
	if ce := o.Logger.Check(zap.DebugLevel, "request refused"); ce != nil {
		if s, ok := desc.(string); ok {
			desc = logCut(s)
		}
		fields := []zap.Field{zap.String("api", o.api), zap.Int("status", status)}
		if code != "" {
			// MediaGoblin's errors are a message only.
			fields = append(fields, zap.String("error", code))
		}
		ce.Write(append(fields, zap.Any("description", desc))...)
	}
}

// maxLoggedDescription bounds a refusal's description in the log. The
// cloned APIs quote whole values in theirs (a 64 KiB redirect_uris, a
// client id), as the real servers do, and a log line per request that
// size would let any client fill the disk at the debug level.
const maxLoggedDescription = 1024

// logCut cuts s to maxLoggedDescription bytes (on a character boundary)
// and says how long it was.
func logCut(s string) string {
	if len(s) <= maxLoggedDescription {
		return s
	}
	n := maxLoggedDescription
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

// unresolvedURL names the configured URL (issuer, authorization_endpoint,
// token_endpoint) whose placeholders this request turned into something
// resolvedURLUsable refuses, or "" when there is none; such a request is
// answered 400 instead of handing out relative or empty URLs. Whatever
// the placeholders, the request may have made the value: a header, a
// regular expression's capture of one, a map or a variable set from one
// ({http.request.header.X-Host} missing or "u@h"); a request must not
// get a 5xx for what it sent. The operator is told which setting, at most
// once a minute, as a setting the server fills itself ({http.vars.x} never
// set) fails every request alike.
func (o *Options) unresolvedURL(r *http.Request) string {
	for _, f := range [...]struct{ name, v string }{
		{"issuer", o.Issuer}, {"authorization_endpoint", o.AuthorizationEndpoint}, {"token_endpoint", o.TokenEndpoint},
	} {
		if !strings.Contains(f.v, "{") {
			continue
		}
		got := o.expand(r, f.v)
		if !resolvedURLUsable(f.name, got) {
			if now := time.Now().UnixNano(); now-o.urlWarned.Load() > int64(time.Minute) {
				o.urlWarned.Store(now)
				o.Logger.Warn("a configured URL's placeholders resolve to no URL the config check would accept (absolute http(s), no user information, fragment, spaces, backslash or broken escapes; in the issuer no query, dot segments or encoded slash) for this request; answering 400 (when the request did not make the value, the setting needs mending)",
					zap.String("setting", f.name), zap.String("configured", f.v), zap.String("resolved", got))
			}
			return f.name
		}
	}
	return ""
}

// resolvedURLUsable reports whether got, a configured URL with its
// placeholders resolved, passes what the config check asks of a fixed one:
// absolute http(s) with a valid host and port, no user information (it would
// be published to every client), no spaces or control characters, no
// fragment, and for the issuer no query either (the routes' URLs are made by
// appending to it). A placeholder fed by the request (a header, say) must not
// bring in what the config check refuses.
func resolvedURLUsable(name, got string) bool {
	u, err := url.Parse(got)
	// The host as published (as clients' parsers write it: an
	// internationalized name as its A-label, an address in its one form).
	host, ok := WebHost(Authority(got))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || !ok || !validHost(host) {
		return false
	}
	if strings.ContainsFunc(got, func(c rune) bool { return c <= ' ' || c == 0x7f }) || strings.ContainsAny(got, "#\\") || !ValidEscapes(got) {
		return false
	}
	return name != "issuer" || (!strings.Contains(got, "?") && IssuerPathProblem(got, u) == "")
}

// validHost reports whether h is a DNS name or IP address (IPv6 in
// brackets), optionally followed by ":port" with a port from 1 to 65535.
func validHost(h string) bool {
	host, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return false
		}
		// No zone (fe80::1%25eth0, RFC 6874): clients' parsers refuse it.
		host, port = h[1:end], h[end+1:]
		if ip := net.ParseIP(host); ip == nil || !strings.Contains(host, ":") {
			return false
		}
		if port == "" {
			return true
		}
		if port[0] != ':' || len(port) == 1 {
			return false
		}
		port = port[1:]
	} else {
		if i := strings.LastIndexByte(h, ':'); i >= 0 {
			host, port = h[:i], h[i+1:]
			if port == "" {
				return false
			}
		}
		if !registry.ValidHostName(host) {
			return false
		}
	}
	return port == "" || registry.ValidPort(port)
}

// scheme is "https://" or "http://", as the client sent the request: over
// TLS, or through a trusted proxy that says it came over https. Only the
// last X-Forwarded-Proto value is the trusted proxy's own (one that appends
// leaves whatever the client sent before it), as Caddy's reverse_proxy
// reads it too.
func (o *Options) scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https://"
	}
	if o.TrustedProxy != nil && o.TrustedProxy(r) {
		if vals := r.Header.Values("X-Forwarded-Proto"); len(vals) > 0 {
			last := vals[len(vals)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if strings.EqualFold(strings.TrimSpace(last), "https") {
				return "https://"
			}
		}
	}
	return "http://"
}

// issuer is the RFC 8414 issuer for this request.
func (o *Options) issuer(r *http.Request) string {
	if o.Issuer != "" {
		return o.expandURL(r, o.Issuer)
	}
	return o.origin(r)
}

// expandURL is a configured URL with its placeholders resolved for r, in
// normal form (NormalURL: a Host header's "Example.COM:80" must not end up
// in the issuer as sent). One without placeholders was made normal once,
// when the config loaded.
func (o *Options) expandURL(r *http.Request, s string) string {
	if !strings.Contains(s, "{") {
		return s
	}
	return normalURL(o.expand(r, s))
}

// base is the absolute URL under which this API's routes are reachable: the
// configured issuer (which then must include any prefix), or the request's
// origin followed by the mount path (see Options.Mount) and the prefix.
func (o *Options) base(r *http.Request) string {
	if o.Issuer != "" {
		return strings.TrimRight(o.expandURL(r, o.Issuer), "/")
	}
	return o.origin(r) + o.mount(r) + o.urlPrefix()
}

// urlPrefix is the prefix as it appears in a URL (escaped).
func (o *Options) urlPrefix() string {
	if o.Prefix == "" {
		return ""
	}
	return (&url.URL{Path: o.Prefix}).EscapedPath()
}

// mount returns what Mount says, or "".
func (o *Options) mount(r *http.Request) string {
	if o.Mount == nil {
		return ""
	}
	return o.Mount(r)
}

// endpoint returns the configured endpoint or the default under the base URL.
func (o *Options) endpoint(r *http.Request, configured, def string) string {
	if configured != "" {
		return o.expandURL(r, configured)
	}
	return o.base(r) + def
}

// DefaultSecretLifetime is how long the secrets an API issues stay valid
// when secret_lifetime does not say: IAM's 90 days, never for the others.
func DefaultSecretLifetime(api string) time.Duration {
	if api == registry.APIIAM {
		return iamSecretLifetime
	}
	return 0
}

func (o *Options) secretLifetime(def time.Duration) time.Duration {
	if o.SecretLifetime != nil {
		return *o.SecretLifetime
	}
	return def
}

// route returns the request path relative to the prefix and true, or false
// when the path is outside the prefix.
func (o *Options) route(r *http.Request) (string, bool) {
	p := r.URL.Path
	if o.Prefix == "" {
		return p, true
	}
	rest, ok := strings.CutPrefix(p, o.Prefix)
	if !ok || (rest != "" && rest[0] != '/') {
		return "", false
	}
	return rest, true
}

// encodedSlash reports a path with an encoded "/" (%2F), which is not a
// segment separator (RFC 3986 section 2.2): "/v1%2Fclients" is not
// "/v1/clients". r.URL.RawPath is set only for such unusual spellings.
func encodedSlash(r *http.Request) bool {
	raw := r.URL.RawPath
	return raw != "" && (strings.Contains(raw, "%2F") || strings.Contains(raw, "%2f"))
}

// Holder is what Options.Holder holds (storage.RedisPool).
type Holder interface {
	Hold()
	Release()
}

// hold holds the Holder, if any, for a request the API answers; release
// ends it.
func (o *Options) hold() {
	if o.Holder != nil {
		o.Holder.Hold()
	}
}

func (o *Options) release() {
	if o.Holder != nil {
		o.Holder.Release()
	}
}

// segments splits the escaped path relative to the prefix into unescaped
// segments, so an encoded "/" inside a client id stays inside it. It
// appends them to buf: every request of the site behind goes through
// here, and a caller that passes an array of its own keeps the split off
// the heap (a segment is unescaped into a new string only if it has a %).
func (o *Options) segments(r *http.Request, buf []string) ([]string, bool) {
	p := r.URL.EscapedPath()
	if o.Prefix != "" {
		rest, ok := o.cutPrefix(p)
		if !ok {
			return nil, false
		}
		p = rest
	}
	p = strings.TrimPrefix(p, "/")
	for {
		s, rest, more := strings.Cut(p, "/")
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, false
		}
		buf = append(buf, u)
		if !more {
			return buf, true
		}
		p = rest
	}
}

// cutPrefix removes the prefix from p, an escaped path, and reports
// whether p is under it. The path may spell the prefix's characters other
// than as the URLs given out do: "/%64cr" or "/%c3%a9" (lowercase hex)
// for "/dcr" or "/é", "/o(auth)" as browsers send it for what Go escapes
// as "/o%28auth%29". RFC 3986 section 6.2.2 makes them the same path, and
// Caddy's path matchers (a basic_auth in front) take them as the same. A
// segment is compared decoded, but an encoded "/" in it never matches:
// it does not separate segments.
func (o *Options) cutPrefix(p string) (string, bool) {
	if rest, ok := strings.CutPrefix(p, o.urlPrefix()); ok && (rest == "" || rest[0] == '/') {
		return rest, true
	}
	want := o.Prefix
	for want != "" {
		if p == "" || p[0] != '/' || want[0] != '/' {
			return "", false
		}
		var ws, ps string
		ws, want = cutSegment(want[1:])
		ps, p = cutSegment(p[1:])
		if ps == ws && !strings.Contains(ps, "%") {
			continue // the same, unescaped (a "%" in the prefix is one)
		}
		// Allocates only for a segment with a "%" in it.
		if u, err := url.PathUnescape(ps); err != nil || u != ws || strings.Contains(u, "/") {
			return "", false
		}
	}
	return p, true
}

// cutSegment splits p at its first "/": the segment before it, and the
// rest from the "/" on ("" when there is none).
func cutSegment(p string) (seg, rest string) {
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i], p[i:]
	}
	return p, ""
}

// errBodyTooLarge matches (errors.Is) readBody's error for a body over
// MaxBodyBytes, or over a smaller limit set in front of the handler (see
// bodyTooLargeError).
var errBodyTooLarge = errors.New("request body too large")

// bodyTooLargeError is readBody's error for a body over the limit that
// refused it: MaxBodyBytes, or a smaller one of Caddy's request_body
// max_size, whose reader the handler's is read through. Answers name the
// limit in force: 65536 would send a client looking in the wrong place.
type bodyTooLargeError struct{ limit int64 }

func (e *bodyTooLargeError) Error() string {
	return "request body larger than " + strconv.FormatInt(e.limit, 10) + " bytes"
}
func (e *bodyTooLargeError) Is(target error) bool { return target == errBodyTooLarge }

// bodyLimit is the limit a body refused with errBodyTooLarge ran over.
func bodyLimit(err error) int64 {
	var e *bodyTooLargeError
	if errors.As(err, &e) {
		return e.limit
	}
	return MaxBodyBytes
}

// bodyTimeout bounds the reading of a whole body (at most MaxBodyBytes):
// the server's per-read timeouts alone would let a client that sends a
// byte now and then hold a connection for hours.
var bodyTimeout = 30 * time.Second

// eagerBodyBytes is the largest announced body that readBody allocates in
// full before it arrives. Larger ones grow as their bytes come: otherwise
// requests that announce 64 KiB and send nothing would each hold 64 KiB for
// the whole body timeout, for the price of a header.
const eagerBodyBytes = 4 << 10

// readBody reads the whole body, at most MaxBodyBytes, within bodyTimeout
// (or the server's own ReadTimeout, Caddy's timeouts read_body, if shorter).
func readBody(w http.ResponseWriter, r *http.Request) (body []byte, err error) {
	if r.ContentLength > MaxBodyBytes {
		return nil, bodyRefused(w, r, MaxBodyBytes)
	}
	if srv, _ := r.Context().Value(http.ServerContextKey).(*http.Server); srv == nil || srv.ReadTimeout <= 0 || srv.ReadTimeout > bodyTimeout {
		rc := http.NewResponseController(w)
		if rc.SetReadDeadline(time.Now().Add(bodyTimeout)) == nil {
			// Read in full: the server sets its own deadline again for
			// the next request on the connection; until then, nothing more
			// is to be read. Not read: the deadline stays, so that the
			// server does not wait for the rest of the body either.
			defer func() {
				if err == nil {
					_ = rc.SetReadDeadline(time.Time{})
				}
			}()
		}
	}
	if r.ContentLength > 0 && r.ContentLength <= eagerBodyBytes {
		// The usual case: one allocation of the announced size. The server
		// stops the body at Content-Length, so it cannot run over.
		body = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		if err == nil && r.ContentLength > 0 && int64(len(body)) != r.ContentLength {
			// The server's body reader already says so; this holds for any.
			err = io.ErrUnexpectedEOF
		}
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		// Ours, or a smaller one in front (request_body max_size).
		return nil, bodyRefused(w, r, min(mbe.Limit, MaxBodyBytes))
	}
	if err != nil {
		return nil, err
	}
	return body, nil
}

// bodyRefused returns readBody's error for a body over limit, and on
// HTTP/1 makes the answer close the connection: the rest of the body is
// not wanted, and the server would otherwise read up to 256 KiB of it
// before sending the answer (Caddy's idle-timeout wrapper hides the body
// from net/http, which then drains it as it would an unknown body), so
// that a client that announces a large body and waits for the answer
// before sending it (Expect, or a slow upload) got its 413 only when its
// upload or the body timeout ended.
func bodyRefused(w http.ResponseWriter, r *http.Request, limit int64) error {
	if r.ProtoMajor == 1 {
		closeUnread(w)
		drainAfter(w, r.Body)
	}
	return &bodyTooLargeError{limit: limit}
}

// closeUnread makes the answer close an HTTP/1 connection whose request
// body is left unread, at once: after the answer, net/http still reads up
// to 256 KiB of the body to close the connection cleanly, waiting for a
// client that sends nothing more (it has its answer) until a timeout (a
// minute). Reads fail from now on (but see drainAfter); the answer is
// still written.
func closeUnread(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}

// drainAfter has the rest of body, refused unread, read and dropped once
// the answer is out (observed.linger), before the connection closes:
// closed while the body's bytes still arrived, the connection was reset,
// and the client, or a reverse proxy in front still sending them, could
// lose the answer with it (a 502 instead of the 413). net/http does so
// only for up to 256 KiB, and not at all when the client asked to close
// the connection. A body Caddy's request_body already cut off
// (http.MaxBytesReader) reads no further: that one is not drained.
func drainAfter(w http.ResponseWriter, body io.Reader) {
	ob := observedOf(w)
	if ob == nil || ob.drain != nil {
		return
	}
	// Reads after the answer: net/http refuses them otherwise.
	if http.NewResponseController(w).EnableFullDuplex() == nil {
		ob.drain = body
	}
}

// unreadLinger, drainIdle and drainMax bound observed.linger: a client
// that sends more, or slower, is cut off as before; one that sends nothing
// after the answer is closed after drainIdle.
const (
	unreadLinger = time.Second
	drainIdle    = 200 * time.Millisecond
	drainMax     = 8 << 20
	// readFirstMax is the most of a body refused unread that is read
	// before the answer, for the connection to be kept (net/http's own
	// bound for that, maxPostHandlerReadBytes).
	readFirstMax = 256 << 10
)

// bearer returns the token of an "Authorization: Bearer" header, and
// whether a Bearer header was sent at all. Other schemes count as no
// credentials (RFC 6750 section 3.1: an unsupported method gets a challenge
// without an error code).
func bearer(r *http.Request) (token string, present bool) {
	if v := r.Header.Values("Authorization"); len(v) > 1 {
		// Two credentials: refused rather than one chosen, since a proxy
		// in front may have judged the request by the other.
		return "", true
	}
	h := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// Health logs a storage outage once when it starts and once when it ends,
// not once per failed request.
type Health struct {
	// Store names the store in log lines ("redis host:port...",
	// "embedded"), so that an operator with several can tell which failed.
	Store string
	// down is read without the lock on every successful request; every
	// change of the state below is made under mu.
	down atomic.Bool
	// answered is set once the store answered a request: a server that
	// hangs up before it ever did may want TLS (see Fail's hint); one
	// that did was reachable as configured.
	answered atomic.Bool
	mu       sync.Mutex
	// since is when the current outage began. announced is set while an
	// outage logged at error level lasts, and lastError is when that line
	// was written: a store that flaps (writes failing while reads succeed,
	// on a full disk or a Redis out of memory) gets one error line per
	// outageLogInterval, not one per request, while an outage that lasts
	// outageConfirm is always logged.
	since     time.Time
	announced bool
	lastError time.Time
	// writes is set when a write failed during the current outage: then
	// only a successful write ends it, since a store out of memory or disk
	// space keeps answering reads.
	writes bool
	// lastWriteFail is when a write last failed in the current outage: an
	// outage of writes that sees reads succeed and no write fail for
	// outageLogInterval is over, even if no growing write came to show it
	// (a read-only load would otherwise keep it open, and the next real
	// outage would be taken for its continuation and not logged).
	lastWriteFail time.Time
	// full and lastFull are the same for writes refused for want of room
	// or write access (storage.Full), not for lost connections: see Full.
	full     bool
	lastFull time.Time
	// reads is set when a read failed during the current outage, and
	// lastReadFail is when one last did: a successful write does not end
	// an outage in which a read failed less than outageConfirm ago, since
	// a store can refuse reads while it takes writes (a Redis user that
	// lost GET, a damaged index), and each registration would otherwise
	// end the outage the next read starts again, so that none is logged.
	reads        bool
	lastReadFail time.Time
	// deletes and lastDeleteFail are the same for deletes: a store can
	// refuse them while it takes registrations (a Redis user that lost
	// ZREM, which registrations do not run), and registrations would
	// otherwise end the outage every failing delete starts again, the log
	// saying the store is back while no client can be deleted.
	deletes        bool
	lastDeleteFail time.Time
	// unlogged counts the outages not logged since the last error line;
	// counted is set when the current outage is among them.
	unlogged int
	counted  bool
}

const (
	// outageLogInterval is the least time between two "unavailable" errors
	// for outages shorter than outageConfirm.
	outageLogInterval = 30 * time.Second
	// outageConfirm is how long an outage lasts before it is logged at
	// error level whatever came before it.
	outageConfirm = 5 * time.Second
)

// Fail records a storage failure.
func (h *Health) Fail(log *zap.Logger, api, op string, err error) {
	if h == nil {
		log.Error("client store unavailable", zap.String("api", api), zap.String("op", op), zap.Error(err))
		return
	}
	now := time.Now()
	h.mu.Lock()
	fresh := !h.down.Load()
	if fresh {
		h.down.Store(true)
		h.since = now
		h.writes, h.reads, h.deletes, h.counted, h.full = false, false, false, false, false
	}
	switch {
	case storage.DeleteFailed(err):
		// Not among the writes that need space, which a delete's success
		// does not show to work again.
		h.deletes, h.lastDeleteFail = true, now
	case storage.WriteFailed(err):
		h.writes, h.lastWriteFail = true, now
		if storage.Full(err) {
			h.full, h.lastFull = true, now
		}
	case storage.ReadFailed(err):
		h.reads, h.lastReadFail = true, now
	}
	msg, unlogged := "", 0
	switch {
	case h.announced:
		msg = "client store still unavailable"
	case !h.lastError.IsZero() && now.Sub(h.lastError) < outageLogInterval && now.Sub(h.since) < outageConfirm:
		msg = "client store unavailable again"
		if !h.counted {
			h.unlogged, h.counted = h.unlogged+1, true
		}
	default:
		if h.counted {
			h.unlogged-- // logged after all: it lasted outageConfirm
		}
		h.announced, h.lastError = true, now
		unlogged, h.unlogged = h.unlogged, 0
	}
	h.mu.Unlock()
	if msg != "" {
		if c := log.Check(zapcore.DebugLevel, msg); c != nil {
			c.Write(zap.String("store", h.Store), zap.String("api", api), zap.String("op", op), zap.Error(err))
		}
		return
	}
	fields := []zap.Field{zap.String("store", h.Store), zap.String("api", api), zap.String("op", op), zap.Error(err)}
	if unlogged > 0 {
		// Short outages that began soon after a logged one are counted
		// here rather than logged each (a flapping store would flood
		// the log).
		fields = append(fields, zap.Int("outages_not_logged", unlogged))
	}
	if errors.Is(err, io.EOF) && h.Store != "embedded" && !h.answered.Load() {
		// go-redis's whole account of a server that hangs up at once.
		// Not after it answered: then it crashed or dropped us.
		fields = append(fields, zap.String("hint", "Redis closed the connection without an answer: a server that requires TLS, for example, does so to a plain connection (set tls in storage redis)"))
	}
	log.Error("client store unavailable; answering 503 until it recovers", fields...)
}

// Full reports whether the current outage is one of a store that answers
// but refused a write for want of room or write access (storage.Full: a
// Redis out of memory, a full or read-only disk) within outageLogInterval,
// and has stored nothing since. What only asks the store a question, as a
// MediaGoblin HEAD does, cannot see that for itself.
func (h *Health) Full() bool {
	if h == nil || !h.down.Load() {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.full && time.Since(h.lastFull) < outageLogInterval
}

// Retired says, once, that a store whose outage was logged leaves the
// config (a reload that configures another): no success will end that
// outage in the log, as none is sent to it any more.
func (h *Health) Retired(log *zap.Logger) {
	if h == nil || !h.down.Load() {
		return
	}
	h.mu.Lock()
	announced := h.announced
	h.announced = false
	h.mu.Unlock()
	if announced {
		log.Info("client store no longer used, still unavailable when it was left", zap.String("store", h.Store))
	}
}

// OK records a successful storage operation sent at began; write tells
// whether it wrote. One sent before the outage began does not end it: it
// may have been carried out before, and a hung Redis can answer a delete
// or update of several round trips seconds later, all sent before it hung.
// A read does not end an outage in which writes failed, nor a write one in
// which reads just failed, nor either one in which deletes just failed.
func (h *Health) OK(log *zap.Logger, began time.Time, write bool) { h.ok(log, began, write, false) }

// Deleted records a successful delete sent at began: it ends an outage in
// which deletes failed, and one of reads (a delete reads first), not one
// of writes that need space (a Redis out of memory still deletes).
func (h *Health) Deleted(log *zap.Logger, began time.Time) { h.ok(log, began, false, true) }

func (h *Health) ok(log *zap.Logger, began time.Time, write, deleted bool) {
	if h == nil {
		return
	}
	if !h.answered.Load() {
		h.answered.Store(true)
	}
	if !h.down.Load() {
		return
	}
	h.mu.Lock()
	if began.Before(h.since) {
		h.mu.Unlock()
		return
	}
	if write {
		h.writes, h.full = false, false
	} else {
		h.reads = false // reads and deletes, which read first
	}
	if deleted {
		h.deletes = false
	}
	if (h.writes && time.Since(h.lastWriteFail) < outageLogInterval) || (h.reads && time.Since(h.lastReadFail) < outageConfirm) ||
		(h.deletes && time.Since(h.lastDeleteFail) < outageConfirm) {
		h.mu.Unlock()
		return
	}
	announced := h.down.Load() && h.announced
	h.down.Store(false)
	h.announced, h.writes, h.reads, h.deletes, h.full = false, false, false, false, false
	h.mu.Unlock()
	if announced {
		log.Info("client store available again", zap.String("store", h.Store))
	}
}

// growingOps are the operations, as named to storeFailure, whose success
// shows that the store takes writes that need space again: only they end
// an outage in which writes failed. Reads, and deletes (which a Redis out
// of memory or a full disk still carries out), do not.
var growingOps = map[string]bool{
	"register": true, "update": true, "reset": true, "privilege": true, "install": true,
}

// deleteOps are the operations, as named to storeFailure, that delete:
// only their success ends an outage in which deletes failed.
var deleteOps = map[string]bool{"delete": true, "deregister": true, "uninstall": true}

// storeFailure reports whether err is a storage outage, to be answered with
// 503; it logs the outage's start and end. A change that other requests
// kept overtaking until it gave up (storage.ErrConflict) is answered 503
// too, without declaring an outage: the store works, and a repeat a little
// later succeeds. began is when the operation was sent, or its request
// arrived (see Health.OK).
func (o *Options) storeFailure(began time.Time, op string, err error) bool {
	if errors.Is(err, storage.ErrConflict) {
		if o.Logger != nil {
			o.Logger.Warn("gave up changing a client that other requests kept changing meanwhile",
				zap.String("api", o.api), zap.String("op", op))
		}
		return true
	}
	if err != nil && storage.Corrupt(err) {
		// One client's record, or an index set by hand to another type,
		// not the store: answered 503 all the same (the operator must
		// repair or remove it), without declaring an outage.
		if o.Logger != nil && storage.CorruptDue(err) {
			// Once every 10 minutes per record (storage.CorruptDue): each
			// request for the client meets it again.
			msg := "a stored client record cannot be read"
			if storage.CorruptIndex(err) {
				msg = "an index of the client store holds another type of value: requests that use it are answered 503 until it is removed"
			}
			o.Logger.Error(msg, zap.String("api", o.api), zap.String("op", op), zap.Error(err))
		}
		o.metrics.storageError()
		return true
	}
	if err == nil || !storage.IsUnavailable(err) {
		// The store answered; only a completed growing write shows that
		// writes work again (a refusal such as "not found" or "changed"
		// may not have written anything).
		if err == nil && deleteOps[op] {
			o.Health.Deleted(o.Logger, began)
		} else {
			o.Health.OK(o.Logger, began, err == nil && growingOps[op])
		}
		return false
	}
	o.Health.Fail(o.Logger, o.api, op, err)
	o.metrics.storageError()
	return true
}

// setNoStore marks a response as carrying credentials.
func setNoStore(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
}
