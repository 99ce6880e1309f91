package caddydcr

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-dcr/caddy-dcr/handler"
	"github.com/caddy-dcr/caddy-dcr/registry"
)

// Defaults of the abuse controls: a fresh configuration is not an open spam
// relay.
const (
	defaultRateLimit          = 60
	defaultRateWindow         = time.Hour
	defaultMaxClients         = 10000
	defaultMaxClientsPerOwner = 100
)

// gate builds the registration gate from the configuration.
func (h *Handler) gate(repl *caddy.Replacer) (handler.Gate, error) {
	g := handler.Gate{
		Mode:               h.Registration,
		RateLimit:          defaultRateLimit,
		RateWindow:         defaultRateWindow,
		MaxClients:         defaultMaxClients,
		MaxClientsPerOwner: defaultMaxClientsPerOwner,
		ClientIP:           clientIP,
	}
	if h.RateLimit != nil {
		g.RateLimit, g.RateWindow = h.RateLimit.Count, time.Duration(h.RateLimit.Window)
		if g.RateWindow == 0 {
			g.RateWindow = defaultRateWindow
		}
	}
	if h.MaxClients != nil {
		g.MaxClients = *h.MaxClients
	}
	if h.MaxClientsPerOwner != nil {
		g.MaxClientsPerOwner = *h.MaxClientsPerOwner
	}
	for _, raw := range h.InitialAccessTokens {
		t, err := resolveStrict("initial_access_token", raw, repl)
		if err != nil {
			return g, err
		}
		if t == "" {
			return g, unresolved("initial_access_token", raw, repl)
		}
		if strings.ContainsFunc(t, unicode.IsControl) {
			// Not shown either. No HTTP header can carry it.
			return g, errors.New("initial_access_token holds control characters: no Authorization header can carry it")
		}
		h.warnShortSecret("an initial_access_token", t)
		g.StaticTokenHashes = append(g.StaticTokenHashes, registry.Hash(t))
	}
	return g, nil
}

// clientIP is the client address Caddy determined (trusted proxies
// honoured). Without it (a request that did not come through Caddy's
// server), the peer's address without its port: with the port, every new
// connection would get a rate-limit counter of its own.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// trustedProxy reports whether Caddy found the request's peer among the
// server's trusted_proxies.
func trustedProxy(r *http.Request) bool {
	v, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	return v
}

// statements loads the trusted software statement issuers and their keys.
func (h *Handler) statements(repl *caddy.Replacer) (*handler.Statements, error) {
	if h.SoftwareStatement == nil && !h.RequireSoftwareStatement {
		return nil, nil
	}
	s := &handler.Statements{Required: h.RequireSoftwareStatement}
	if h.SoftwareStatement == nil {
		return s, nil
	}
	seen := map[string]string{}
	for _, ic := range h.SoftwareStatement.Issuers {
		// Compared with the statements' iss and software_id claims: a
		// placeholder left as written would match no statement.
		iss, err := resolveName("software_statement issuer", ic.Issuer, repl)
		if err != nil {
			return nil, err
		}
		if first, dup := seen[iss]; dup {
			return nil, fmt.Errorf("software_statement issuers %q and %q are the same, %q", first, ic.Issuer, iss)
		}
		seen[iss] = ic.Issuer
		is := &handler.StatementIssuer{Issuer: iss}
		for _, id := range ic.SoftwareIDs {
			v, err := resolveName(fmt.Sprintf("software_statement issuer %q: software_id", ic.Issuer), id, repl)
			if err != nil {
				return nil, err
			}
			is.SoftwareIDs = append(is.SoftwareIDs, v)
		}
		// Unresolved, the issuer would have no way to verify a statement,
		// silently.
		sec, err := resolveStrict(fmt.Sprintf("software_statement issuer %q: its secret", ic.Issuer), ic.Secret, repl)
		if err != nil {
			return nil, err
		}
		if sec != "" {
			if err := checkHMACSecret(ic.Issuer, sec); err != nil {
				return nil, err
			}
			is.Secret = []byte(sec)
		}
		for _, raw := range ic.Keys {
			k, err := resolveStrict(fmt.Sprintf("software_statement issuer %q: key %q", ic.Issuer, raw), raw, repl)
			if err != nil {
				return nil, err
			}
			if k == "" {
				return nil, unresolved(fmt.Sprintf("software_statement issuer %q: key %q", ic.Issuer, raw), raw, repl)
			}
			if isKeyURL(k) {
				if err := checkKeyURL(ic.Issuer, k); err != nil {
					return nil, err // from a placeholder: checked once resolved
				}
				is.JWKSURLs = append(is.JWKSURLs, k)
				continue
			}
			keys, err := loadKeys(k)
			if err != nil {
				return nil, fmt.Errorf("software_statement issuer %q: %v", ic.Issuer, err)
			}
			is.Keys = append(is.Keys, keys...)
		}
		s.Issuers = append(s.Issuers, is)
	}
	return s, nil
}

// isKeyURL reports whether a software statement key is a JWKS URL rather
// than a file (the scheme is case-insensitive: HTTPS:// is a URL too).
func isKeyURL(k string) bool {
	u, err := url.Parse(k)
	return err == nil && (strings.EqualFold(u.Scheme, "https") || strings.EqualFold(u.Scheme, "http"))
}

// checkKeyURL refuses a key URL over plain http to another machine: keys
// fetched that way could be swapped by anyone on the path, and with them
// every statement's verdict.
func checkKeyURL(issuer, k string) error {
	if u, err := url.Parse(k); err == nil && strings.EqualFold(u.Scheme, "http") && !registry.IsLoopbackHost(u.Hostname()) {
		return fmt.Errorf("software_statement issuer %q: key URL %q must use https (http only on loopback)", issuer, redactUserinfo(k))
	}
	return nil
}

// maxKeyFile bounds a key file: keys are a few kilobytes.
const maxKeyFile = 1 << 20

// loadKeys reads public keys from a JWKS or JWK JSON file, or from PEM
// public keys and certificates.
func loadKeys(file string) ([]jose.JSONWebKey, error) {
	// A regular file only: a FIFO or a device (/dev/zero) would hold the
	// config load up for ever.
	if fi, err := os.Stat(file); err != nil {
		return nil, fmt.Errorf("reading key file: %v", err)
	} else if !fi.Mode().IsRegular() {
		return nil, errors.New("the key file is not a regular file")
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("reading key file: %v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading key file: %v", err)
	}
	if len(b) > maxKeyFile {
		return nil, errors.New("the key file is larger than 1 MiB")
	}
	trimmed := strings.TrimSpace(string(b))
	if strings.HasPrefix(trimmed, "{") {
		var probe struct {
			Keys json.RawMessage `json:"keys"`
		}
		if json.Unmarshal(b, &probe) == nil && probe.Keys != nil {
			// As a JWKS URL is read, but the operator's own private keys
			// count as their public halves.
			keys, err := handler.DecodeVerificationKeys(b, true)
			if err != nil {
				return nil, fmt.Errorf("%s is not a JWKS: %v", file, err)
			}
			if len(keys) == 0 {
				return nil, fmt.Errorf("%s holds no public signature key this server can use", file)
			}
			return keys, nil
		}
		var k jose.JSONWebKey
		if err := json.Unmarshal(b, &k); err != nil {
			return nil, fmt.Errorf("%s is neither a JWKS nor a JWK: %v", file, err)
		}
		vk, ok := handler.VerificationKey(k, true)
		if !ok {
			return nil, fmt.Errorf("%s holds no public signature key this server can use", file)
		}
		return []jose.JSONWebKey{vk}, nil
	}
	var keys []jose.JSONWebKey
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case "PUBLIC KEY":
			pub, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", file, err)
			}
			keys = append(keys, jose.JSONWebKey{Key: pub})
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", file, err)
			}
			keys = append(keys, jose.JSONWebKey{Key: cert.PublicKey})
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s holds no public key", file)
	}
	return keys, nil
}

// policy is the registry's view of the policy options.
func (h *Handler) policy() *registry.Policy {
	return &registry.Policy{GrantTypes: h.AllowedGrantTypes, ResponseTypes: h.AllowedResponseTypes, AuthMethods: h.AllowedAuthMethods}
}

// policyWarnings say which allowed values no registration can carry, and
// why the policy would refuse every registration of this API. They are
// warnings, not config errors: a policy snippet shared by several APIs
// ("allowed_auth_methods none": issue no secrets) may rightly shut out one
// that cannot comply.
func (h *Handler) policyWarnings() []string {
	p := h.policy()
	var msgs []string
	if h.apiName() == registry.APIRFC7591 {
		// The cloned APIs check only that a value is allowed, not RFC
		// 7591's pairing of grant and response types.
		msgs = p.Unusable()
	}
	// Settings an API has no use for: not errors, as a snippet may be
	// shared by every API of a site.
	if len(h.CORS) > 0 && h.apiName() == registry.APIMediaGoblin && h.Registration != "user" {
		// With registration user, the origins listed pass the refusal
		// of cross-site requests: the setting is used then.
		msgs = append(msgs, "cors: the mediagoblin API sends MediaGoblin's own CORS headers (any origin); the setting is ignored (it only lets its origins past the refusal of cross-site requests, with registration user)")
	}
	if h.SoftwareStatement != nil && h.apiName() != registry.APIRFC7591 {
		msgs = append(msgs, "software_statement: the "+h.apiName()+" API takes no software statements (only rfc7591 does); the setting is ignored")
	}
	switch h.apiName() {
	case registry.APIIAM:
		if msg := handler.IAMPolicyProblem(p); msg != "" {
			msgs = append(msgs, msg)
		}
	case registry.APIMediaGoblin, registry.APIKustvakt:
		problem := handler.MediaGoblinPolicyProblem
		if h.apiName() == registry.APIKustvakt {
			problem = handler.KustvaktPolicyProblem
		}
		if msg := problem(p); msg != "" {
			msgs = append(msgs, msg)
		}
		if len(h.AllowedScopes) > 0 || h.DefaultScope != "" {
			msgs = append(msgs, "allowed_scopes, default_scope: the "+h.apiName()+" API registers clients without a scope; the settings are ignored")
		}
	}
	return msgs
}

// validatePolicy checks the policy options (part of Validate).
func (h *Handler) validatePolicy() error {
	switch h.Registration {
	case "", handler.ModeOpen, handler.ModeToken, handler.ModeUser:
	default:
		return fmt.Errorf("registration %q: use open, token or user", h.Registration)
	}
	for _, v := range h.AllowedGrantTypes {
		if !slices.Contains(registry.DefaultGrantTypes, v) {
			return fmt.Errorf("allowed_grant_types: %q is not a grant type this server knows (%s)", v, strings.Join(registry.DefaultGrantTypes, ", "))
		}
	}
	for _, v := range h.AllowedResponseTypes {
		if !slices.Contains(registry.DefaultResponseTypes, v) {
			return fmt.Errorf("allowed_response_types: %q is not a response type this server knows (%s)", v, strings.Join(registry.DefaultResponseTypes, ", "))
		}
	}
	for _, v := range h.AllowedAuthMethods {
		if !slices.Contains(registry.DefaultAuthMethods, v) {
			return fmt.Errorf("allowed_auth_methods: %q is not an authentication method this server knows (%s)", v, strings.Join(registry.DefaultAuthMethods, ", "))
		}
	}
	if p := h.policy(); h.apiName() == registry.APIRFC7591 && p.NothingUsable() {
		// Every registration would be refused while the metadata
		// advertises the endpoint.
		return fmt.Errorf("allowed_grant_types, allowed_response_types and allowed_auth_methods leave no grant type a client can register: %s", strings.Join(p.Unusable(), "; "))
	}
	for i, v := range h.AllowedScopes {
		if !registry.ValidScopeToken(v) {
			return fmt.Errorf("allowed_scopes: %q is not a scope token (RFC 6749 3.3: printable ASCII without spaces, quotes or backslashes)", v)
		}
		if slices.Contains(h.AllowedScopes[:i], v) {
			return fmt.Errorf("allowed_scopes: %q is listed twice", v)
		}
	}
	if h.DefaultScope != "" {
		// Registered as written: scope = scope-token *( SP scope-token ).
		tokens := strings.Split(h.DefaultScope, " ")
		for i, s := range tokens {
			if !registry.ValidScopeToken(s) {
				return fmt.Errorf("default_scope %q: scope tokens are printable ASCII separated by single spaces (RFC 6749 3.3); %q is not one", h.DefaultScope, s)
			}
			if slices.Contains(tokens[:i], s) {
				return fmt.Errorf("default_scope: %q is listed twice", s)
			}
		}
	}
	if h.DefaultScope != "" && len(h.AllowedScopes) > 0 {
		for _, s := range strings.Fields(h.DefaultScope) {
			if !slices.Contains(h.AllowedScopes, s) {
				return fmt.Errorf("default_scope %q is not among allowed_scopes", s)
			}
		}
	}
	for _, v := range h.AllowedRedirectHosts {
		if !validRedirectHostPattern(v) {
			return fmt.Errorf("allowed_redirect_hosts: %q must be a host name, an IP address or *.domain (no scheme, port or path)", v)
		}
	}
	if h.MaxRedirectURIs < 0 {
		return errors.New("max_redirect_uris must not be negative")
	}
	if rl := h.RateLimit; rl != nil {
		switch {
		case rl.Count < 0 || rl.Window < 0:
			return errors.New("rate_limit: count and window must not be negative")
		case rl.Count == 0 && rl.Window != 0:
			return errors.New("rate_limit: count 0 turns the limit off and takes no window")
		}
		if err := jsonDurationHint(checkMinDuration("rate_limit window", time.Duration(rl.Window))); err != nil {
			return err
		}
	}
	for name, v := range map[string]*int{"max_clients": h.MaxClients, "max_clients_per_owner": h.MaxClientsPerOwner} {
		if v != nil && *v < 0 {
			return fmt.Errorf("%s must not be negative", name)
		}
	}
	if h.ClientLifetime < 0 || h.IdleLifetime < 0 {
		return errors.New("client_lifetime and idle_lifetime must not be negative")
	}
	for name, d := range map[string]Duration{"client_lifetime": h.ClientLifetime, "idle_lifetime": h.IdleLifetime} {
		if err := jsonDurationHint(checkMinDuration(name, time.Duration(d))); err != nil {
			return err
		}
	}
	if len(h.InitialAccessTokens) > 0 && h.Registration != handler.ModeToken {
		// Only token mode asks for one: an operator who set a token and
		// forgot the mode would believe registration is closed.
		mode := h.Registration
		if mode == "" {
			mode = handler.DefaultMode(h.apiName())
		}
		return fmt.Errorf("initial_access_token: registration is %s, which asks for no token; add 'registration token'", mode)
	}
	if h.AdvertiseRegistration != nil && h.apiName() != registry.APIRFC7591 {
		// Only rfc7591 serves RFC 8414 metadata.
		return fmt.Errorf("advertise_registration: the %s API publishes no server metadata (only rfc7591 does)", h.apiName())
	}
	if h.RequireSoftwareStatement && h.apiName() != registry.APIRFC7591 {
		// The cloned APIs have no member for a statement: the requirement
		// would be silently ignored and registration left open.
		return fmt.Errorf("require_software_statement: the %s API takes no software statements (only rfc7591 does)", h.apiName())
	}
	if h.RequireSoftwareStatement && (h.SoftwareStatement == nil || len(h.SoftwareStatement.Issuers) == 0) {
		return errors.New("require_software_statement needs at least one software_statement issuer")
	}
	if ss := h.SoftwareStatement; ss != nil {
		if len(ss.Issuers) == 0 {
			// It would load and do nothing: every statement would be
			// ignored, as without it, which is not what writing it says.
			return errors.New("software_statement names no issuer: give at least one (issuer <iss> { key ... } or { secret ... }), or leave software_statement out")
		}
		seen := map[string]bool{}
		for _, is := range ss.Issuers {
			if is.Issuer == "" {
				return errors.New("software_statement: an issuer needs its iss value")
			}
			// Statements are matched to the first issuer with their iss:
			// a second one's keys would never be used.
			if seen[is.Issuer] {
				return fmt.Errorf("software_statement: issuer %q is listed twice", is.Issuer)
			}
			seen[is.Issuer] = true
			if len(is.Keys) == 0 && is.Secret == "" {
				return fmt.Errorf("software_statement issuer %q: give at least one key or a secret", is.Issuer)
			}
			if !strings.Contains(is.Secret, "{") {
				if err := checkHMACSecret(is.Issuer, is.Secret); err != nil {
					return err
				}
			}
			for _, k := range is.Keys {
				if err := checkKeyURL(is.Issuer, k); err != nil {
					return err
				}
			}
		}
	}
	for _, o := range h.CORS {
		if o != "*" && !validOrigin(o) {
			return fmt.Errorf("cors origin %q must be * or scheme://host[:port], in lowercase and without the scheme's default port, path or trailing slash, as browsers send it in Origin (it would never match)", o)
		}
	}
	return nil
}

// validOrigin reports whether o is an origin as a browser serializes it
// in the Origin header, which the CORS check compares whole: a lowercase
// scheme and host, a port only when it is not the scheme's default, and
// nothing after it.
func validOrigin(o string) bool {
	u, err := url.Parse(o)
	// Rebuilt from scheme and host alone, anything else (a path, a slash,
	// a query, user information) shows as a difference.
	if err != nil || u.Host == "" || u.Scheme+"://"+u.Host != o || o != strings.ToLower(o) {
		return false
	}
	port := u.Port()
	if port != "" && (!registry.ValidPort(port) || port[0] == '0' || u.Scheme == "https" && port == "443" || u.Scheme == "http" && port == "80") {
		return false
	}
	// Browsers write an address one way ("[::1]", not "[0::1]"), and a
	// name without its trailing dot.
	host := u.Hostname()
	if registry.ComparableHost(host) != host {
		return false
	}
	if h, ok := handler.WebHost(u.Host); !ok || h != u.Host {
		// "127.1" is sent as 127.0.0.1, "a.1" and "1.2.3.4.5" are no
		// hosts at all.
		return false
	}
	_, err = netip.ParseAddr(host)
	return err == nil || registry.ValidHostName(host)
}

// validRedirectHostPattern accepts what hostAllowed can match against a
// redirect URI's host: a DNS name (an internationalized one in either
// form), an IP address, or "*.domain". A URL or host:port would never
// match, and every registration would be refused.
func validRedirectHostPattern(v string) bool {
	if net.ParseIP(v) != nil {
		return true
	}
	name := registry.ComparableHost(strings.TrimPrefix(v, "*."))
	return registry.ValidHostName(name)
}

// minHMACSecret is the shortest HS256 secret: RFC 7518 section 3.2 wants a
// key at least as long as the hash, and the JOSE library refuses shorter
// ones when verifying, so a shorter secret would make every statement
// fail with "signature does not verify".
const minHMACSecret = 32

func checkHMACSecret(issuer, secret string) error {
	if secret != "" && len(secret) < minHMACSecret {
		return fmt.Errorf("software_statement issuer %q: secret must be at least %d bytes for HS256 (RFC 7518 section 3.2), got %d", issuer, minHMACSecret, len(secret))
	}
	return nil
}
