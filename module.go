// Package caddydcr is a Caddy HTTP handler that gives a site OAuth 2.0
// dynamic client registration: RFC 7591 registration, RFC 7592 management
// and RFC 8414 metadata, plus wire-compatible clones of the registration APIs
// of GNU MediaGoblin, KorAP Kustvakt and Huawei Cloud IAM Identity Center.
// Clients live in Redis or, by default, in Caddy's own storage. Every
// request that is not for one of its routes goes to the next handler, so it
// can sit in front of an existing site.
package caddydcr

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	// Time zone data in the binary: `timezone` must mean the same on a
	// server or in a container without /usr/share/zoneinfo, and `caddy
	// adapt` checks it wherever it runs.
	_ "time/tzdata"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/handler"
	"github.com/caddy-dcr/caddy-dcr/registry"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

func init() {
	// go-redis's messages go to Caddy's logs at debug level: the plugin
	// logs outages itself, once when they start and once when they end.
	storage.SetLogger(func(msg string) {
		caddy.Log().Named("http.handlers.client_registration.redis").Debug(msg)
	})
	storage.SetWarner(func(msg, redis string) {
		log := caddy.Log().Named("http.handlers.client_registration")
		if redis != "" {
			log.Warn(msg, zap.String("redis", redis))
			return
		}
		log.Warn(msg)
	})
	caddy.RegisterModule(Handler{})
}

// Handler serves OAuth 2.0 dynamic client registration under a path prefix
// and passes every other request to the next handler.
//
// After a successful registration or update it sets the placeholder
// {http.client_registration.client_id} and adds client_id to the access log.
// It reads {http.auth.user.id}, set by an authentication handler such as
// basic_auth or forward_auth ordered before it, as the client's owner.
type Handler struct {
	// API is the wire format served: "rfc7591" (RFC 7591/7592/8414, the
	// default), "mediagoblin", "kustvakt" or "iam".
	API string `json:"api,omitempty"`

	// Prefix is the path under which the API's routes are mounted. Default:
	// "" (the site root) for rfc7591, mediagoblin and iam; "/api" for
	// kustvakt. "/" also means the site root.
	Prefix string `json:"prefix,omitempty"`

	// Issuer is the absolute URL that identifies this authorization server
	// and under which its routes are reached from outside; when set, it must
	// include the prefix. Default: scheme://host of each request (followed by
	// the prefix for the routes). Request placeholders are allowed.
	Issuer string `json:"issuer,omitempty"`

	// Storage selects where clients are kept. Default: Caddy's configured
	// storage ("caddy"), which needs no server.
	Storage *StorageConfig `json:"storage,omitempty"`

	// SecretLifetime is how long issued client secrets stay valid; 0 means
	// they never expire. Default: 0, except 90 days for iam.
	SecretLifetime *Duration `json:"secret_lifetime,omitempty"`

	// AuthorizationEndpoint and TokenEndpoint are published in the server
	// metadata (rfc7591) and in registration responses (iam). Default: the
	// issuer followed by /authorize and /token (iam: /v1/authorize and
	// /v1/tokens).
	AuthorizationEndpoint string `json:"authorization_endpoint,omitempty"`
	TokenEndpoint         string `json:"token_endpoint,omitempty"`

	// User is the placeholder that names the authenticated user: the
	// client's owner and Kustvakt's user. Default: {http.auth.user.id}, set
	// by basic_auth and other authentication handlers; with forward_auth,
	// name the header it copies, e.g. {http.request.header.Remote-User}.
	User string `json:"user,omitempty"`

	// SuperClients are Kustvakt's privileged first-party clients, declared
	// here and never registered through the API. Secrets accept {env.*} and
	// {file.*} placeholders. SuperClients, Timezone, AdminUsers and
	// AdminToken are refused with the other APIs, which would ignore them.
	SuperClients []SuperClient `json:"super_clients,omitempty"`

	// Timezone is the IANA zone in which Kustvakt prints dates. Default: UTC.
	Timezone string `json:"timezone,omitempty"`

	// AdminUsers may use Kustvakt's admin route (approve plugins, mark
	// clients super); AdminToken is Kustvakt's admin token form parameter,
	// an alternative for scripts. {env.*} and {file.*} placeholders allowed.
	AdminUsers []string `json:"admin_users,omitempty"`
	AdminToken string   `json:"admin_token,omitempty"`

	// Registration says who may register: "open" (anyone), "token" (only
	// with an initial access token, RFC 7591 section 3) or "user" (only a
	// user authenticated by a preceding Caddy handler). Default: "user" for
	// kustvakt, "open" for the others.
	Registration string `json:"registration,omitempty"`

	// AdvertiseRegistration says whether the RFC 8414 metadata publishes
	// registration_endpoint (rfc7591 only). Default: not when registration
	// needs an initial access token, which clients discovering the server
	// (MCP clients) do not have; yes otherwise.
	AdvertiseRegistration *bool `json:"advertise_registration,omitempty"`

	// InitialAccessTokens are static initial access tokens ({env.*} and
	// {file.*} placeholders allowed). Tokens with an expiry and a use count
	// can also be issued at run time through Caddy's admin API.
	InitialAccessTokens []string `json:"initial_access_tokens,omitempty"`

	// SoftwareStatement lists the trusted issuers of RFC 7591 software
	// statements; RequireSoftwareStatement makes one mandatory (rfc7591).
	SoftwareStatement        *SoftwareStatementConfig `json:"software_statement,omitempty"`
	RequireSoftwareStatement bool                     `json:"require_software_statement,omitempty"`

	// AllowedRedirectHosts, when set, limits the hosts of non-loopback
	// redirect URIs ("host" or "*.domain"). MaxRedirectURIs caps how many a
	// client may register (default 10).
	AllowedRedirectHosts []string `json:"allowed_redirect_hosts,omitempty"`
	MaxRedirectURIs      int      `json:"max_redirect_uris,omitempty"`

	// RequireSameHostURIs refuses a client whose client_uri, logo_uri,
	// tos_uri or policy_uri (Kustvakt: url) is not on the scheme and host of
	// one of its redirect URIs (RFC 7591 section 5's SHOULD); off by
	// default, since native clients with loopback redirects link their
	// web site.
	RequireSameHostURIs bool `json:"require_same_host_uris,omitempty"`

	// AllowedGrantTypes, AllowedResponseTypes and AllowedAuthMethods narrow
	// what clients may register (and what the metadata publishes); a
	// request for anything else is refused with invalid_client_metadata
	// naming the value. AllowedScopes does the same for scope values, and
	// DefaultScope is registered for clients that ask for none.
	AllowedGrantTypes    []string `json:"allowed_grant_types,omitempty"`
	AllowedResponseTypes []string `json:"allowed_response_types,omitempty"`
	AllowedAuthMethods   []string `json:"allowed_auth_methods,omitempty"`
	AllowedScopes        []string `json:"allowed_scopes,omitempty"`
	DefaultScope         string   `json:"default_scope,omitempty"`

	// RateLimit limits registrations per client IP (as Caddy determines it,
	// trusted proxies honoured), shared by every instance on the same
	// Redis. Default: 60 per hour; a count of 0 turns it off.
	RateLimit *RateLimitConfig `json:"rate_limit,omitempty"`

	// MaxClients caps the clients in the store (default 10000) and
	// MaxClientsPerOwner those of one user or token (default 100); 0 means
	// no cap. Enforced atomically across instances.
	MaxClients         *int `json:"max_clients,omitempty"`
	MaxClientsPerOwner *int `json:"max_clients_per_owner,omitempty"`

	// ClientLifetime makes clients expire that long after registration;
	// IdleLifetime that long after their last use. 0 (default): never.
	ClientLifetime Duration `json:"client_lifetime,omitempty"`
	IdleLifetime   Duration `json:"idle_lifetime,omitempty"`

	// CORS lists the origins ("*" for any) whose browser clients may use the
	// registration and management routes (not mediagoblin, whose CORS
	// headers are fixed).
	CORS []string `json:"cors,omitempty"`

	api         handler.API
	poolKey     string
	redisPool   *storage.RedisPool // nil with the embedded store
	activeName  string             // this handler's key in activeStores
	active      *storeHandler      // and its registration there
	logger      *zap.Logger
	rateLimit   bool         // registrations are rate limited per client address
	proxyWarned *atomic.Bool // lax trusted_proxies warned about, or nothing to warn of (see ServeHTTP)
}

// RateLimitConfig is a fixed-window limit: Count registrations per Window.
type RateLimitConfig struct {
	Count  int      `json:"count"`
	Window Duration `json:"window,omitempty"`
}

// UnmarshalJSON requires count: a count left out would be 0, which turns
// the limit off ({"window":"10m"} would lift the default limit).
func (rl *RateLimitConfig) UnmarshalJSON(b []byte) error {
	var v struct {
		Count  *int     `json:"count"`
		Window Duration `json:"window"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields() // as Caddy decodes the rest of the config
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("rate_limit: %w", err)
	}
	if v.Count == nil {
		return errors.New("rate_limit: count is required (0 turns the limit off)")
	}
	rl.Count, rl.Window = *v.Count, v.Window
	return nil
}

// minDurations are the shortest values of the duration options that are
// not 0: anything shorter is a mistake (in JSON a bare number is
// nanoseconds: "timeout": 2 would fail every Redis command, a lifetime of
// 1 would make clients expire as they are registered).
var minDurations = map[string]time.Duration{
	"secret_lifetime":   time.Second,
	"client_lifetime":   time.Second,
	"idle_lifetime":     time.Second,
	"rate_limit window": time.Second,
	"timeout":           time.Millisecond,
}

// jsonDurationHint adds to a checkMinDuration error what a JSON config
// most likely got wrong (the Caddyfile refuses a duration without a unit,
// so only JSON gets this far).
func jsonDurationHint(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w (in JSON, a bare number counts nanoseconds: write \"30s\")", err)
}

func checkMinDuration(name string, d time.Duration) error {
	if m, ok := minDurations[name]; ok && d != 0 && d < m {
		return fmt.Errorf("%s %s is too short: at least %s", name, d, m)
	}
	return nil
}

// SoftwareStatementConfig lists trusted software statement issuers.
type SoftwareStatementConfig struct {
	Issuers []StatementIssuerConfig `json:"issuers,omitempty"`
}

// StatementIssuerConfig is one trusted issuer.
type StatementIssuerConfig struct {
	// Issuer is the statements' "iss" ({env.*} and {file.*} allowed, as
	// in SoftwareIDs).
	Issuer string `json:"issuer"`
	// Keys are PEM files (public keys or certificates), JWKS files, or
	// http(s) URLs of a JWKS; they verify RS256, ES256 and EdDSA statements.
	Keys []string `json:"keys,omitempty"`
	// Secret verifies HS256 statements ({env.*} allowed).
	Secret string `json:"secret,omitempty"`
	// SoftwareIDs, when set, are the approved software_id values.
	SoftwareIDs []string `json:"software_ids,omitempty"`
}

// SuperClient is a Kustvakt super client.
type SuperClient struct {
	ClientID string `json:"client_id"`
	Secret   string `json:"secret,omitempty"`
}

// StorageConfig holds exactly one backend.
type StorageConfig struct {
	// Redis keeps clients in Redis (single node, Sentinel or Cluster).
	Redis *RedisConfig `json:"redis,omitempty"`
	// Caddy keeps clients in Caddy's configured storage.
	Caddy *CaddyStorageConfig `json:"caddy,omitempty"`
}

// CaddyStorageConfig selects Caddy's configured storage; it has no options.
type CaddyStorageConfig struct{}

// RedisConfig is the connection to Redis. String fields accept {env.*} and
// {file.*} placeholders, resolved when the config is loaded, so secrets stay
// out of the JSON config.
type RedisConfig struct {
	// Address lists host:port pairs: one for a single node, several for a
	// cluster, the sentinels' when MasterName is set.
	Address []string `json:"address,omitempty"`
	// Username and Password authenticate (ACL user, or password only).
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// DB is the database number (single node and Sentinel only).
	DB int `json:"db,omitempty"`
	// MasterName selects Sentinel mode.
	MasterName string `json:"master_name,omitempty"`
	// SentinelUsername and SentinelPassword authenticate to the sentinels
	// themselves, when they require it (Username and Password are the
	// master's and replicas').
	SentinelUsername string `json:"sentinel_username,omitempty"`
	SentinelPassword string `json:"sentinel_password,omitempty"`
	// TLS, when present, connects with TLS.
	TLS *RedisTLS `json:"tls,omitempty"`
	// KeyPrefix starts every key. Default: "dcr:".
	KeyPrefix string `json:"key_prefix,omitempty"`
	// Timeout bounds connecting and each command. Default: 2s.
	Timeout Duration `json:"timeout,omitempty"`
	// WaitReplicas, when positive, makes every write of a client wait until
	// that many replicas have it (Redis WAIT) before it is answered, so
	// that a failover right after the answer cannot lose it; a write they
	// do not confirm within WaitTimeout is answered 503. Single node (with
	// replicas) and Sentinel only.
	WaitReplicas int `json:"wait_replicas,omitempty"`
	// WaitTimeout bounds that wait; less than Timeout. Default: half of
	// Timeout.
	WaitTimeout Duration `json:"wait_timeout,omitempty"`
}

// Duration is a caddy.Duration whose JSON errors name the field: Caddy's
// own say only `time: invalid duration "bogus"`, which in a handler with
// six durations leaves the operator to guess which. encoding/json names
// the field of a type error, so that is the error given.
type Duration caddy.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var cd caddy.Duration
	if err := cd.UnmarshalJSON(b); err != nil {
		return &json.UnmarshalTypeError{Value: fmt.Sprintf("%s (%v)", b, err), Type: reflect.TypeFor[Duration]()}
	}
	*d = Duration(cd)
	return nil
}

// checkWait checks wait_replicas and wait_timeout against the topology
// (addresses as configured or resolved) and the timeout.
func (rc *RedisConfig) checkWait(addrs []string, masterName string) error {
	switch {
	case rc.WaitReplicas < 0:
		return errors.New("wait_replicas must not be negative")
	case rc.WaitTimeout < 0:
		return errors.New("wait_timeout must not be negative")
	case rc.WaitReplicas == 0 && rc.WaitTimeout != 0:
		return errors.New("wait_timeout needs wait_replicas")
	case rc.WaitTimeout != 0 && time.Duration(rc.WaitTimeout) < time.Millisecond:
		// Redis counts WAIT's timeout in milliseconds, and 0 waits for ever.
		return fmt.Errorf("wait_timeout %s is shorter than a millisecond", time.Duration(rc.WaitTimeout))
	case rc.WaitReplicas > 0 && storage.IsCluster(addrs, masterName):
		// The cluster client splits a pipeline by node, and a WAIT, which
		// has no key, would go to any node, not the one that took the
		// writes (it answers for one connection's writes).
		return errors.New("wait_replicas works with a single node or Sentinel, not with a cluster (several addresses)")
	}
	timeout := time.Duration(rc.Timeout)
	if timeout == 0 {
		timeout = storage.DefaultRedisTimeout
	}
	if rc.WaitTimeout != 0 && time.Duration(rc.WaitTimeout) >= timeout {
		return fmt.Errorf("wait_timeout %s must be shorter than timeout %s: the wait is part of a command's time", time.Duration(rc.WaitTimeout), timeout)
	}
	return nil
}

// RedisTLS configures TLS to Redis.
type RedisTLS struct {
	// InsecureSkipVerify accepts any server certificate (testing only).
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
	// CAFile is a PEM file of CAs to trust instead of the system's.
	CAFile string `json:"ca_file,omitempty"`
	// CertFile and KeyFile are a client certificate (mutual TLS).
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	// ServerName overrides the name checked in the server certificate.
	ServerName string `json:"server_name,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.client_registration",
		New: func() caddy.Module { return new(Handler) },
	}
}

// pools shares one store (and one Redis client) between every handler with
// the same storage, across config reloads.
var pools = caddy.NewUsagePool()

// sharedStore is what the pool holds.
type sharedStore struct {
	redis    *storage.RedisPool
	embedded *storage.EmbeddedStore
	health   *handler.Health
	// where names the Redis deployment for the admin API: the addresses
	// as resolved (URLs reduced to host:port, so no password) and the
	// database when not 0.
	where string
	// master is the Sentinel master name, resolved ("" without Sentinel).
	master string
	// ready holds the key prefixes whose clients were counted in the log
	// (see logClients).
	ready sync.Map
}

func (s *sharedStore) Destruct() error {
	s.health.Retired(caddy.Log().Named("http.handlers.client_registration"))
	if s.redis != nil {
		// The old config's servers may still be finishing requests on it.
		s.redis.Retire(registry.OrphanHint)
	}
	return nil
}

// metrics are created once per process; each config registers those of the
// APIs it serves with its own registry.
var metrics = handler.NewMetrics()

const (
	defaultKeyPrefix = "dcr:"
	embeddedBase     = "client_registration"
)

func (h *Handler) apiName() string {
	if h.API == "" {
		return registry.APIRFC7591
	}
	return h.API
}

func (h *Handler) prefix() string {
	p := h.Prefix
	if p == "" && h.apiName() == registry.APIKustvakt {
		p = "/api"
	}
	return strings.TrimRight(p, "/")
}

// Provision sets the handler up. It does no network I/O: a config whose
// Redis is unreachable still loads, and requests recover when Redis does.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	if err := h.checkResolvedURLs(repl); err != nil {
		return err
	}
	for _, msg := range h.policyWarnings() {
		h.logger.Warn(msg, zap.String("api", h.apiName()))
	}
	issuerWarned := h.warnIssuerPath(repl)
	h.warnStatementAudience(repl)

	shared, key, err := h.provisionStorage(ctx, repl)
	if err != nil {
		return err
	}
	h.poolKey = key
	h.redisPool = shared.redis
	var store storage.Store = shared.embedded
	if shared.redis != nil {
		store = shared.redis.Store(h.storeName())
		h.checkRedisAccess(shared)
	}

	reg := registry.New(store)
	reg.ClientLifetime = time.Duration(h.ClientLifetime)
	reg.IdleLifetime = time.Duration(h.IdleLifetime)
	reg.SecretLifetime = handler.DefaultSecretLifetime(h.apiName())
	if h.SecretLifetime != nil {
		reg.SecretLifetime = time.Duration(*h.SecretLifetime)
	}
	gate, err := h.gate(repl)
	if err != nil {
		return err
	}
	h.rateLimit, h.proxyWarned = gate.RateLimit > 0, new(atomic.Bool)
	h.proxyWarned.Store(!h.rateLimit)
	statements, err := h.statements(repl)
	if err != nil {
		return err
	}
	if statements != nil {
		statements.Logger = h.logger.With(zap.String("api", h.apiName()))
	}
	opts := &handler.Options{
		Registry:   reg,
		Gate:       gate,
		Statements: statements,
		Policy: registry.Policy{
			GrantTypes:      h.AllowedGrantTypes,
			ResponseTypes:   h.AllowedResponseTypes,
			AuthMethods:     h.AllowedAuthMethods,
			Scopes:          h.AllowedScopes,
			DefaultScope:    h.DefaultScope,
			MaxRedirectURIs: h.MaxRedirectURIs,
			RedirectHosts:   h.AllowedRedirectHosts,
			SameHostURIs:    h.RequireSameHostURIs,
		},
		Logger:                h.logger,
		Prefix:                h.prefix(),
		Issuer:                handler.NormalURL(h.Issuer),
		IssuerWritten:         issuerWritten(h.Issuer),
		AuthorizationEndpoint: handler.NormalURL(h.AuthorizationEndpoint),
		TokenEndpoint:         handler.NormalURL(h.TokenEndpoint),
		Expand:                expand,
		User:                  h.userFunc(),
		TrustedProxy:          trustedProxy,
		Registered:            registered,
		Mount:                 strippedPrefix,
		Health:                shared.health,
		Metrics:               metrics,
	}
	if h.redisPool != nil {
		// Not a nil *RedisPool in the interface: the embedded store
		// holds nothing.
		opts.Holder = h.redisPool
	}
	opts.Policy.Prepare()
	if issuerWarned {
		opts.IssuerPathWarned() // once is enough
	}
	if h.SecretLifetime != nil {
		d := time.Duration(*h.SecretLifetime)
		opts.SecretLifetime = &d
	}
	if len(h.CORS) > 0 {
		opts.CORS = &handler.CORS{Origins: h.CORS}
	}
	if a := h.AdvertiseRegistration; a != nil {
		opts.HideRegistrationEndpoint = !*a
	} else {
		opts.HideRegistrationEndpoint = h.Registration == handler.ModeToken
	}
	// The pool key tells Redis deployments apart; the name, prefixes.
	h.activeName = h.poolKey + "|" + h.storeName()
	alt, api := h.storeAltName(shared), h.apiName()
	reg.LifetimesOf = func(clientAPI string) *registry.Registry {
		if clientAPI == api {
			return reg // this handler's own
		}
		return activeStores.lifetimesOf(alt, clientAPI)
	}
	// Last: from here on the admin API may read reg.
	h.active = activeStores.add(h.activeName, h.storeName(), alt, api, reg)

	switch h.apiName() {
	case registry.APIRFC7591:
		h.api = handler.NewRFC7591(opts)
	case registry.APIMediaGoblin:
		h.api = handler.NewMediaGoblin(opts)
	case registry.APIIAM:
		h.api = handler.NewIAM(opts)
	case registry.APIKustvakt:
		k, err := h.kustvaktOptions(repl)
		if err != nil {
			return err
		}
		h.api = handler.NewKustvakt(opts, k)
	default:
		return fmt.Errorf("unknown client_registration API %q: use rfc7591, mediagoblin, kustvakt or iam", h.API)
	}
	return h.registerMetrics(ctx)
}

// registerMetrics adds the collectors of the handler's API to the config's
// registry, once the API is known to be served. Another handler of the same
// API in the config has registered them already, which is fine.
func (h *Handler) registerMetrics(ctx caddy.Context) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	for _, c := range metrics.Collectors(h.apiName()) {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return fmt.Errorf("registering metrics: %w", err)
			}
		}
	}
	metrics.Init(h.apiName())
	return nil
}

// ianaZoneName is the shape of the tz database's names: Area/Location
// parts of letters, digits, '_', '-' and '+' (Etc/GMT+5), no empty or dot
// segments.
var ianaZoneName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$`)

// loadZone loads an IANA time zone by name. "Local" (the machine's zone)
// is refused: Kustvakt prints the zone's IANA name after each date, and
// Go knows only "Local" for it.
func loadZone(name string) (*time.Location, error) {
	if name == "Local" {
		return nil, errors.New(`timezone "Local" is not an IANA zone name: name the zone, such as Europe/Berlin`)
	}
	// A host's zoneinfo directory is read before the data in the binary
	// and holds more than zones: its right/ (leap-second variants), posix/
	// and posixrules copies, Factory and localtime, also reached as
	// "./right/..." or "Europe//Berlin", and in any case on a file system
	// that ignores it. The name is printed in registration_date, where
	// Java's ZoneId, which reads it, knows none of them, and a container
	// without that directory would refuse them: refused here on every host.
	lower := strings.ToLower(name)
	if !ianaZoneName.MatchString(name) || strings.HasPrefix(lower, "right/") || strings.HasPrefix(lower, "posix/") ||
		lower == "posixrules" || lower == "factory" || lower == "localtime" {
		return nil, fmt.Errorf("timezone %q is not an IANA zone name: name the zone, such as Europe/Berlin", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("timezone %q: %v", name, err)
	}
	return loc, nil
}

// minSecretLength is the length under which a secret the operator chose
// is warned about. Wrong guesses are answered 401 as often as they come
// (limiting them per address would also lock out the clients behind a
// shared address), so only length keeps such a secret from being guessed;
// the server's own secrets are 128 to 256 random bits.
const minSecretLength = 20

// warnShortSecret warns, without showing it, about a configured secret
// shorter than minSecretLength.
func (h *Handler) warnShortSecret(what, secret string) {
	if n := utf8.RuneCountInString(secret); n < minSecretLength && h.logger != nil {
		h.logger.Warn(fmt.Sprintf("%s is only %d characters long: wrong guesses are not limited, so use a long random one (openssl rand -hex 32)", what, n),
			zap.String("api", h.apiName()))
	}
}

// unresolvedHint ends the error for a setting that resolves to nothing.
// A request placeholder ({http.request.header.*}) is unknown when the
// config loads, so the hint says which placeholders such a setting takes.
const unresolvedHint = "a placeholder in it is unset or unknown: only {env.*} and {file.*} placeholders are resolved in it, once, when the config loads"

// unresolved is the error for the setting what, written raw, which
// resolved to nothing. It names an {env.*} or {file.*} placeholder that is
// unset or empty (with several tokens or secrets, which one), never the
// value: a literal secret in braces is a placeholder to Caddy too.
func unresolved(what, raw string, repl *caddy.Replacer) error {
	if ph := unsetPlaceholder(raw, repl); ph != "" {
		return fmt.Errorf("%s resolves to an empty string: %s is unset or empty (is the environment variable or file set?)", what, ph)
	}
	return fmt.Errorf("%s resolves to an empty string (%s)", what, unresolvedHint)
}

// partlyUnresolved is the error for a setting one of whose placeholders
// resolved to nothing (unset, unknown or empty) while the rest did not,
// nil if none did: "kal_{env.UNSET}" would otherwise load as the guessable
// secret "kal_", with at most a warning that it is short. It names an
// {env.*} or {file.*} placeholder, never the value: a literal secret in
// braces is a placeholder to Caddy too.
func partlyUnresolved(what, v string, repl *caddy.Replacer) error {
	if _, err := repl.ReplaceOrErr(v, true, true); err == nil {
		return nil
	}
	if ph := unsetPlaceholder(v, repl); ph != "" {
		return fmt.Errorf("%s: %s resolves to an empty string (is the environment variable or file set?)", what, ph)
	}
	return fmt.Errorf("%s: a placeholder in it resolves to an empty string (only {env.*} and {file.*} placeholders are resolved in it, once, when the config loads; a literal brace is written \\{)", what)
}

// resolveStrict resolves the placeholders of a configured credential or
// name, refusing it when one of them resolves to nothing, whether it is
// the whole value (unresolved) or a part (partlyUnresolved): never a
// shorter value. "" stays "". A file placeholder is read once when all is
// well.
func resolveStrict(what, raw string, repl *caddy.Replacer) (string, error) {
	if got, err := repl.ReplaceOrErr(raw, true, true); err == nil {
		return got, nil
	}
	if repl.ReplaceAll(raw, "") == "" {
		return "", unresolved(what, raw, repl)
	}
	return "", partlyUnresolved(what, raw, repl)
}

// unsetPlaceholder is the first {env.*} or {file.*} placeholder of v that
// resolves to nothing, "" if there is none.
func unsetPlaceholder(v string, repl *caddy.Replacer) string {
	for _, ph := range secretPlaceholder.FindAllString(v, -1) {
		if repl.ReplaceAll(ph, "") == "" {
			return ph
		}
	}
	return ""
}

// resolveName resolves the {env.*} and {file.*} placeholders of a setting
// that names something requests are compared with (a user, an issuer, a
// software id), refusing one that resolves to nothing, keeps a
// placeholder no request can resolve, or holds control characters.
func resolveName(what, v string, repl *caddy.Replacer) (string, error) {
	got, err := resolveStrict(fmt.Sprintf("%s %q", what, v), v, repl)
	switch {
	case err != nil:
		return "", err
	case got == "":
		return "", fmt.Errorf("%s must not be empty", what)
	case strings.ContainsAny(got, "{}") && v != got:
		return "", fmt.Errorf("%s %q resolves to a value with braces: only {env.*} and {file.*} placeholders are resolved in it", what, v)
	case strings.ContainsFunc(got, unicode.IsControl):
		return "", fmt.Errorf("%s %q holds control characters", what, v)
	}
	return got, nil
}

// kustvaktOptions resolves the Kustvakt settings; secrets are kept hashed.
func (h *Handler) kustvaktOptions(repl *caddy.Replacer) (handler.KustvaktOptions, error) {
	k := handler.KustvaktOptions{Location: time.UTC}
	for _, u := range h.AdminUsers {
		// Compared with the user each request names: a placeholder left
		// as written would lock the admin out and let a user of that
		// literal name in.
		name, err := resolveName("admin_user", u, repl)
		if err != nil {
			return k, err
		}
		k.AdminUsers = append(k.AdminUsers, name)
	}
	if h.Timezone != "" {
		loc, err := loadZone(h.Timezone)
		if err != nil {
			return k, err
		}
		k.Location = loc
	}
	declared := map[string]string{}
	for _, sc := range h.SuperClients {
		id, err := resolveStrict(fmt.Sprintf("super_client %q: the client id", sc.ClientID), sc.ClientID, repl)
		switch {
		case err != nil:
			return k, err
		case id == "":
			return k, unresolved(fmt.Sprintf("super_client %q: the client id", sc.ClientID), sc.ClientID, repl)
		case strings.ContainsFunc(id, unicode.IsControl):
			return k, fmt.Errorf("super_client %q: the client id holds control characters", sc.ClientID)
		}
		s := handler.SuperClient{ClientID: id}
		if first, dup := declared[s.ClientID]; dup {
			// Validate sees the ids before placeholders are resolved; the
			// second declaration would be ignored without a word.
			return k, fmt.Errorf("super_client %q and super_client %q are the same client, %q", first, sc.ClientID, s.ClientID)
		}
		declared[s.ClientID] = sc.ClientID
		// A super client is confidential, as Kustvakt's are: one without
		// a secret would let in whoever knows its id. An unset {env.*}
		// must not make one either.
		secret, err := resolveStrict(fmt.Sprintf("super_client %q: its secret", s.ClientID), sc.Secret, repl)
		if err != nil {
			return k, err
		}
		if secret == "" {
			return k, fmt.Errorf("super_client %q: a secret is required (super clients are confidential)", s.ClientID)
		}
		h.warnShortSecret(fmt.Sprintf("super_client %q's secret", s.ClientID), secret)
		s.SecretHash = registry.Hash(secret)
		k.SuperClients = append(k.SuperClients, s)
	}
	t, err := resolveStrict("admin_token", h.AdminToken, repl)
	if err != nil {
		return k, err
	}
	if t != "" {
		h.warnShortSecret("admin_token", t)
		k.AdminTokenHash = registry.Hash(t)
	}
	return k, nil
}

// provisionStorage loads (or creates) the shared store for this handler.
func (h *Handler) provisionStorage(ctx caddy.Context, repl *caddy.Replacer) (*sharedStore, string, error) {
	if h.Storage != nil && h.Storage.Redis != nil {
		opts, err := h.Storage.Redis.options(repl)
		if err != nil {
			return nil, "", fmt.Errorf("storage redis: %w", err)
		}
		for _, w := range opts.warnings {
			h.logger.Warn(w)
		}
		if err := resolveKeyPrefix(h.Storage.Redis.KeyPrefix, repl); err != nil {
			return nil, "", err
		}
		if p := h.storeName(); strings.ContainsAny(p, "{}") {
			return nil, "", fmt.Errorf("storage redis: key_prefix %q resolves to %q, which contains braces (they would break hash tags)", h.Storage.Redis.KeyPrefix, p)
		}
		key := "redis:" + opts.fingerprint
		val, _, err := pools.LoadOrNew(key, func() (caddy.Destructor, error) {
			where := strings.Join(opts.Addrs, ",")
			if opts.DB != 0 {
				where += "/" + strconv.Itoa(opts.DB)
			}
			opts.Name = where
			pool := storage.NewRedisPool(opts.RedisOptions)
			// Caddy's default logger, fetched when the answer comes, rather
			// than this handler's: the pool outlives the config that made it.
			log := func() *zap.Logger { return caddy.Log().Named("http.handlers.client_registration") }
			addrs := zap.Strings("addresses", opts.Addrs)
			pool.WatchEviction(func(policy string) {
				log().Warn("Redis evicts keys when it reaches maxmemory: registered clients can disappear; set maxmemory-policy noeviction",
					addrs, zap.String("maxmemory_policy", policy))
			}, func(err error) {
				log().Warn("cannot read Redis's maxmemory-policy: make sure it is noeviction, or registered clients can disappear",
					addrs, zap.Error(err))
			})
			name := redisStoreName(opts.RedisOptions)
			return &sharedStore{redis: pool, health: &handler.Health{Store: name}, where: where, master: opts.MasterName}, nil
		})
		if err != nil {
			return nil, "", err
		}
		return val.(*sharedStore), key, nil
	}
	st := ctx.Storage()
	key := fmt.Sprintf("caddy:%T:%v", st, st)
	val, _, err := pools.LoadOrNew(key, func() (caddy.Destructor, error) {
		store := storage.NewEmbeddedStore(st, embeddedBase)
		go func() {
			// A second later, as for Redis (after its grants check), and
			// only if a config still uses the store (the first one, or
			// one a reload put in its place): caddy validate provisions
			// a config and stops it at once.
			time.Sleep(time.Second)
			if n, _ := pools.References(key); n > 0 {
				logClients(store, zap.String("storage", fmt.Sprint(st)))
			}
		}()
		return &sharedStore{embedded: store, health: &handler.Health{Store: "embedded"}}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return val.(*sharedStore), key, nil
}

// redisStoreName names a Redis pool in the outage log (Health.Store): by
// its addresses, told apart from a pool on another database of the same
// Redis, or on the same one waiting for fewer replicas, or none.
func redisStoreName(opts storage.RedisOptions) string {
	name := "redis " + strings.Join(opts.Addrs, " ")
	if opts.DB != 0 {
		name += "/" + strconv.Itoa(opts.DB)
	}
	if opts.WaitReplicas > 0 {
		name += fmt.Sprintf(" (wait_replicas %d)", opts.WaitReplicas)
	}
	return name
}

// checkRedisAccess has the store's Redis user checked, once per pool and
// key prefix, for the commands the plugin runs: a missing grant is said
// when the store starts, with what to grant, rather than found by requests
// (see storage.RedisPool.CheckAccess).
func (h *Handler) checkRedisAccess(shared *sharedStore) {
	where, prefix := shared.where, h.storeName()
	shared.redis.CheckAccess(prefix, func(refused []string, err error) {
		log := caddy.Log().Named("http.handlers.client_registration")
		switch {
		case err != nil:
			log.Error("Redis refuses the plugin's requests (its user and password, database number or cluster mode do not fit this Redis): registrations and reads will fail until it is fixed",
				zap.String("redis", where), zap.String("key_prefix", prefix), zap.Error(err))
		case len(refused) > 0 && storage.CleanupOnly(refused):
			log.Warn("the Redis user may not run commands the plugin uses only to clean up on its keys (ACL; an earlier version's line): registrations and everything else work, but index entries of vanished clients are not cleared when a cap is reached and an index keeps no expiry after a delete or an update that leaves it no client that never expires; see the README's Redis ACL section",
				zap.String("redis", where), zap.String("key_prefix", prefix), zap.Strings("refused", refused))
		case len(refused) > 0:
			log.Error("the Redis user may not run commands the plugin needs on its keys (ACL): requests that need them will fail (without command, on a cluster: each pays a failed round trip more); see the README's Redis ACL section",
				zap.String("redis", where), zap.String("key_prefix", prefix), zap.Strings("refused", refused))
		}
		if err != nil {
			return
		}
		if _, said := shared.ready.LoadOrStore(prefix, true); !said {
			// Once: the check runs again at each config load for a user
			// without MULTI and EXEC.
			logClients(shared.redis.Store(prefix), zap.String("redis", where), zap.String("key_prefix", prefix))
		}
	}, func(err error) {
		// Said at start, not only once a request fails: a store pointed
		// at the wrong address would otherwise look healthy until then.
		log := caddy.Log().Named("http.handlers.client_registration")
		if err != nil && storage.MasterUnknown(err) {
			// The sentinels answered, which go-redis's error hides.
			log.Warn("the sentinels answer but know no master of the name master_name gives: the plugin's routes will answer 503 until they do; asking again in the background",
				zap.String("redis", where), zap.String("master_name", shared.master), zap.String("key_prefix", prefix), zap.Error(err))
			return
		}
		if err != nil && tlsRefused(err) {
			// Redis answered: it is the TLS setup that does not fit.
			log.Warn("the TLS handshake with Redis fails (check the certificate authority, server name and client certificate of storage redis tls): the plugin's routes will answer 503 until it succeeds; asking again in the background",
				zap.String("redis", where), zap.String("key_prefix", prefix), zap.Error(err))
			return
		}
		if err != nil {
			log.Warn("Redis does not answer: the plugin's routes will answer 503 until it does; asking again in the background",
				zap.String("redis", where), zap.String("key_prefix", prefix), zap.Error(err))
			return
		}
		log.Info("Redis answers now", zap.String("redis", where), zap.String("key_prefix", prefix))
	})
}

// logClients says, once when a store is first used, how many clients it
// holds: a key_prefix, database or storage path that is not the one meant
// shows as a store with no clients at start, not as clients that vanished
// when the first of them comes back. Nothing is said when the store cannot
// count them: what is wrong with it is said elsewhere.
func logClients(store storage.Store, where ...zap.Field) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := store.Count(ctx, registry.TagClients)
	if err != nil {
		return
	}
	caddy.Log().Named("http.handlers.client_registration").Info("client store ready", append(where, zap.Int("clients", n))...)
}

// tlsRefused reports a connection error that is a failed TLS handshake:
// a certificate not trusted or not for the name, or an alert from Redis
// (a client certificate it requires). Told by the text, which go-redis
// keeps while it may not keep the types.
func tlsRefused(err error) bool {
	m := err.Error()
	return strings.Contains(m, "x509: ") || strings.Contains(m, "tls: ")
}

type redisOptions struct {
	storage.RedisOptions
	fingerprint string
	// Warnings are said when the config loads (see provisionStorage).
	warnings []string
}

// options resolves placeholders and builds the go-redis options. The
// fingerprint identifies the connection (secrets included, hashed) so
// handlers with the same connection share one client.
func (rc *RedisConfig) options(repl *caddy.Replacer) (redisOptions, error) {
	var o redisOptions
	var addrs []string
	for _, raw := range rc.Address {
		// A placeholder that resolves to nothing: in part of an address,
		// "{env.UNSET}:6379" would be ":6379", a Redis on this host, and
		// "redis://:pw{x}@h" another password; the whole of one would
		// leave the others (two written as a cluster become a single
		// node). Only the placeholder is shown: the address may be a URL
		// with a password.
		if ph := unsetPlaceholder(raw, repl); ph != "" {
			return o, fmt.Errorf("address %s resolves to an empty value (is the environment variable or file set?)", ph)
		}
		if err := partlyUnresolved("address", raw, repl); err != nil {
			return o, err
		}
		a := repl.ReplaceAll(raw, "")
		if a == "" {
			continue
		}
		// Checked again once placeholders are resolved: an {env.*} that
		// holds a typo would otherwise be a permanent outage. The value is
		// not shown: a mixed-up variable may hold a password.
		if err := checkRedisAddress(a); err != nil {
			switch {
			case a != raw && isRedisURL(a):
				return o, fmt.Errorf("address %s: %w", raw, err) // never quotes the URL
			case a != raw:
				return o, fmt.Errorf("address %s resolves to a value that is not host:port, a redis:// URL or the absolute path of a unix socket", raw)
			}
			return o, err
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		if len(rc.Address) > 0 {
			// Only placeholders can make a configured address empty.
			return o, fmt.Errorf("address %s resolves to an empty value (is the environment variable or file set?)", strings.Join(rc.Address, " "))
		}
		return o, errors.New("no address")
	}
	o.Username = repl.ReplaceAll(rc.Username, "")
	o.Password = repl.ReplaceAll(rc.Password, "")
	o.SentinelUsername = repl.ReplaceAll(rc.SentinelUsername, "")
	o.SentinelPassword = repl.ReplaceAll(rc.SentinelPassword, "")
	for _, f := range []struct{ name, raw, got string }{
		{"username", rc.Username, o.Username}, {"password", rc.Password, o.Password},
		{"sentinel_username", rc.SentinelUsername, o.SentinelUsername}, {"sentinel_password", rc.SentinelPassword, o.SentinelPassword},
	} {
		// An empty credential may be meant (one config for a development
		// Redis without a password and a production one with it), but an
		// unset variable by mistake would be an outage (NOAUTH) at every
		// request: said when the config loads. The value is not shown: a
		// literal password in braces is a placeholder to Caddy too.
		if f.got == "" && f.raw != "" {
			o.warnings = append(o.warnings, "storage redis "+f.name+" is set from a placeholder that resolves to an empty value: connecting without it")
		} else if err := partlyUnresolved("storage redis "+f.name, f.raw, repl); err != nil {
			// Never meant: the rest alone is a credential Redis refuses.
			return o, err
		}
	}
	// Without master_name the client would quietly talk to the sentinel
	// addresses as if they were Redis.
	if o.MasterName = repl.ReplaceAll(rc.MasterName, ""); o.MasterName == "" && rc.MasterName != "" {
		return o, fmt.Errorf("master_name %s resolves to an empty value (is the environment variable or file set?)", rc.MasterName)
	}
	if err := partlyUnresolved("master_name "+rc.MasterName, rc.MasterName, repl); err != nil {
		return o, err
	}
	o.DB = rc.DB
	o.Timeout = time.Duration(rc.Timeout)
	o.WaitReplicas, o.WaitTimeout = rc.WaitReplicas, time.Duration(rc.WaitTimeout)
	if rc.TLS != nil {
		cfg, err := rc.TLS.config(repl)
		if err != nil {
			return o, err
		}
		o.TLS = cfg
	}
	var err error
	if o.Addrs, err = mergeRedisURLs(addrs, &o, rc.TLS != nil); err != nil {
		return o, err
	}
	// Again with what placeholders and URLs resolved to.
	if err := checkRedisTopology(o.Addrs, o.DB, o.MasterName); err != nil {
		return o, err
	}
	if err := rc.checkWait(o.Addrs, o.MasterName); err != nil {
		return o, err
	}
	sum := sha256.New()
	enc := json.NewEncoder(sum)
	_ = enc.Encode([]any{o.Addrs, o.Username, o.Password, o.DB, o.MasterName, o.SentinelUsername, o.SentinelPassword, o.Timeout, rc.TLS, o.TLS != nil, o.WaitReplicas, o.WaitTimeout})
	if rc.TLS != nil {
		// The files' contents matter, not only their names.
		for _, f := range []string{rc.TLS.CAFile, rc.TLS.CertFile, rc.TLS.KeyFile} {
			if b, err := os.ReadFile(repl.ReplaceAll(f, "")); err == nil {
				sum.Write(b)
			}
		}
	}
	o.fingerprint = hex.EncodeToString(sum.Sum(nil))
	return o, nil
}

func (t *RedisTLS) config(repl *caddy.Replacer) (*tls.Config, error) {
	for _, f := range []struct{ name, v string }{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}, {"server_name", t.ServerName}} {
		if f.v != "" && repl.ReplaceAll(f.v, "") == "" {
			// Dropped, it would quietly mean the system's CAs, no client
			// certificate or the address's host name.
			return nil, fmt.Errorf("tls %s %s resolves to an empty value (is the environment variable or file set?)", f.name, f.v)
		}
		if err := partlyUnresolved("tls "+f.name+" "+f.v, f.v, repl); err != nil {
			return nil, err
		}
	}
	cfg := defaultTLS()
	cfg.InsecureSkipVerify = t.InsecureSkipVerify //nolint:gosec // explicit operator choice
	cfg.ServerName = repl.ReplaceAll(t.ServerName, "")
	if f := repl.ReplaceAll(t.CAFile, ""); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading tls ca_file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca_file %s holds no PEM certificate", f)
		}
		cfg.RootCAs = pool
	}
	certFile, keyFile := repl.ReplaceAll(t.CertFile, ""), repl.ReplaceAll(t.KeyFile, "")
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("tls cert_file and key_file must be given together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("loading tls client certificate: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// apiNames are the wire formats the handler serves.
var apiNames = []string{registry.APIRFC7591, registry.APIMediaGoblin, registry.APIKustvakt, registry.APIIAM}

func checkAPI(api string) error {
	if api != "" && !slices.Contains(apiNames, api) {
		return fmt.Errorf("unknown client_registration API %q: use rfc7591, mediagoblin, kustvakt or iam", api)
	}
	return nil
}

func checkPrefix(p string) error {
	if p == "" {
		return nil
	}
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("prefix %q must start with /", p)
	}
	// Other characters are escaped in the URLs given out, and work.
	if strings.ContainsFunc(p, unicode.IsControl) {
		return fmt.Errorf("prefix %q must not contain control characters", p)
	}
	if strings.ContainsAny(p, "{}") {
		// Not resolved: matched as text, which is never what was meant.
		return fmt.Errorf("prefix %q must not contain braces: placeholders are not resolved in it", p)
	}
	if strings.Contains(p, "*") {
		// Matcher syntax ("/dcr/*"), matched as text: no client sends it.
		want := strings.TrimRight(strings.ReplaceAll(p, "*", ""), "/")
		if want == "" {
			want = "/"
		}
		return fmt.Errorf("prefix %q must not contain *: it is a path, not a matcher (write %q)", p, want)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			// Clients remove dot segments (RFC 3986 section 5.2.4) from the
			// URLs they are given, and would ask for another path.
			return fmt.Errorf("prefix %q must not contain . or .. segments", p)
		}
	}
	return nil
}

// issuerWritten is the configured issuer v when the handler publishes it
// otherwise (in normal form, for this request or always), or "".
func issuerWritten(v string) string {
	if v == "" || (!strings.Contains(v, "{") && handler.NormalURL(v) == v) {
		return ""
	}
	return v
}

// checkIssuer accepts an absolute http(s) URL without query or fragment.
// With placeholders, which only a request (or the environment) resolves,
// it checks what it can: the shape around them ("https://{http.request.host}/oauth"
// is fine), and that a value with no "://" of its own is not made of
// placeholders that never hold one ("{http.request.host}" alone would make
// every URL the plugin sends relative). A whole-value placeholder such as
// {env.ISSUER} is left to the environment.
func checkIssuer(v string) error {
	if v == "" {
		return nil
	}
	bad := fmt.Errorf("issuer %q must be an absolute http(s) URL without query or fragment", redactUserinfo(v))
	s := v
	schemeFromPlaceholder := false
	if strings.Contains(v, "{") {
		if !strings.Contains(v, "://") {
			if ph := schemelessPlaceholder(v); ph != "" {
				return fmt.Errorf("%w (%s holds no scheme: write https://%s)", bad, ph, ph)
			}
			return nil
		}
		if i := strings.Index(s, "://"); s[0] == '{' && strings.IndexByte(s, '}') == i-1 {
			schemeFromPlaceholder = true
			s = "https" + s[i:]
		}
		// A stand-in that fits a host, a port or a path, and an IPv6
		// literal in brackets.
		s = bracketedPlaceholder.ReplaceAllString(s, "[::1]")
		s = placeholderPattern.ReplaceAllString(s, "1")
	}
	u, err := url.Parse(s)
	if err == nil && u.User != nil {
		// Not quoted: the user information may hold a password.
		return errors.New("issuer must not hold user information (user:password@): it is published to every client")
	}
	if err != nil || (u.Scheme != "https" && u.Scheme != "http" && !schemeFromPlaceholder) || u.Host == "" || strings.ContainsAny(s, "?#") || !plainURL(s, u) {
		// An empty query or fragment ("https://a.example#") counts too:
		// the issuer is published with them (NormalURL keeps both), and
		// the routes' URLs are made by appending to it.
		if !handler.ValidEscapes(s) {
			return fmt.Errorf("%w: a %% in it starts no escape (write %%25 for a %% sign)", bad)
		}
		return bad
	}
	if problem := handler.IssuerPathProblem(s, u); problem != "" {
		return fmt.Errorf("issuer %q %s", redactUserinfo(v), problem)
	}
	if !strings.HasPrefix(u.Host, "[") && strings.Contains(handler.Authority(s), "%") {
		// A host name written with escapes ("b%C3%BCcher.example"), which
		// browsers decode before anything else: the issuer they compare
		// would be another.
		return fmt.Errorf("issuer %q: write its host name without escapes", redactUserinfo(v))
	}
	if _, ok := handler.WebHost(u.Host); !ok && !strings.Contains(configuredHost(v), "{") {
		// What clients' parsers refuse (what they rewrite, an
		// internationalized name or "127.1", is published rewritten). A
		// host a placeholder makes is checked at each request: here, the
		// stand-in makes "auth.{x}" a name ending in a number.
		return fmt.Errorf("issuer %q: %s", redactUserinfo(v), hostRefused)
	}
	return nil
}

// hostRefused says why a configured URL's host is refused when
// handler.WebHost refuses it.
const hostRefused = "its host is one URL parsers refuse (an invalid A-label, a name ending in a number that is no IPv4 address, an IPv6 zone)"

// configuredHost is the host of the configured URL v as written, without
// its port (digits or one placeholder), placeholders left in.
func configuredHost(v string) string {
	a := handler.Authority(v)
	if i := strings.LastIndexByte(a, ':'); i >= 0 && !strings.HasSuffix(a, "]") {
		if p := a[i+1:]; strings.Trim(p, "0123456789") == "" || placeholderPattern.FindString(p) == p {
			return a[:i]
		}
	}
	return a
}

// warnIssuerPath warns when a configured issuer's path does not end with
// the prefix, and reports whether it did. The registration_endpoint and
// registration_client_uri given out are then outside the routes: a
// client that follows discovery posts its registration, and later its
// registration access token, to the site behind. "prefix /oauth" with
// "issuer https://host" is the usual slip. The handler also warns when a
// request finds the routes elsewhere, but a client that only follows the
// metadata never sends such a request. A path that merely starts with
// more than the prefix is fine: a handle_path in front strips that part.
// Only RFC 7591 gives out URLs made from the issuer and the prefix.
func (h *Handler) warnIssuerPath(repl *caddy.Replacer) bool {
	if h.apiName() != registry.APIRFC7591 || h.Issuer == "" {
		return false
	}
	issuer := repl.ReplaceKnown(h.Issuer, "")
	path, ok := handler.ConfiguredPath(issuer)
	if !ok || !strings.Contains(issuer, "://") {
		return false // made by each request
	}
	path = strings.TrimRight(path, "/")
	prefix := h.prefix()
	// Case matters: the routes are matched as the prefix is written.
	if strings.HasSuffix(path, prefix) {
		return false
	}
	h.logger.Warn("the issuer's path does not end with the prefix: the registration_endpoint and registration_client_uri given out lead outside this handler's routes, to the site behind, unless a rewrite or a proxy in front maps them back; include the prefix in the issuer",
		zap.String("issuer_path", path+"/"), zap.String("prefix", prefix+"/"))
	return true
}

// warnStatementAudience warns when software statements are trusted but
// the issuer's host is taken from each request: a statement's aud is
// compared with that issuer, and on a site that answers any Host (or
// behind a proxy that passes the client's on) a client could name the
// server a statement was made out to and replay it here.
func (h *Handler) warnStatementAudience(repl *caddy.Replacer) {
	if h.SoftwareStatement == nil || h.apiName() != registry.APIRFC7591 {
		// The other APIs take no statements (policyWarnings says so).
		return
	}
	issuer := repl.ReplaceKnown(h.Issuer, "")
	_, rest, _ := strings.Cut(issuer, "://")
	host, _, _ := strings.Cut(rest, "/")
	if host != "" && !strings.Contains(host, "{") {
		return
	}
	h.logger.Warn("software statements are trusted but the issuer comes from each request's Host: a statement's aud is checked against it, so on a site that answers any host name a statement made out to another server can be replayed here; set issuer",
		zap.String("issuer", issuer))
}

// checkResolvedURLs checks the issuer and endpoints again with the
// placeholders the environment resolves ({env.*}, {file.*}) filled in:
// Validate sees only their shape, and an unset variable would otherwise
// make every URL the server gives out empty or relative. Request
// placeholders stay as they are (see handler's unresolvedURL).
func (h *Handler) checkResolvedURLs(repl *caddy.Replacer) error {
	for _, f := range []struct {
		name, v string
		check   func(string) error
		without string // what check refuses besides a relative URL, for the message
	}{
		{"issuer", h.Issuer, checkIssuer, "user information, query, fragment, backslash, broken escape, dot segment, encoded slash or invalid A-label"},
		{"authorization_endpoint", h.AuthorizationEndpoint, func(v string) error { return checkEndpoint("authorization_endpoint", v) }, "user information, fragment, backslash or broken escape"},
		{"token_endpoint", h.TokenEndpoint, func(v string) error { return checkEndpoint("token_endpoint", v) }, "user information, fragment, backslash or broken escape"},
	} {
		if !strings.Contains(f.v, "{") {
			continue
		}
		got := repl.ReplaceKnown(f.v, "")
		if got == f.v {
			continue
		}
		if got == "" {
			return fmt.Errorf("%s %s resolves to an empty value (is the environment variable or file set?)", f.name, redactUserinfo(f.v))
		}
		// Request placeholders are resolved later, by each request; an
		// {env.*} or {file.*} that resolves to nothing leaves a URL of
		// another host ("https://auth.{env.DOMAIN}/" as "https://auth./").
		if ph := unsetPlaceholder(f.v, repl); ph != "" {
			return fmt.Errorf("%s %s: %s resolves to an empty string (is the environment variable or file set?)", f.name, redactUserinfo(f.v), ph)
		}
		if f.check(got) != nil {
			// Not the check's own message, which quotes the value: a
			// mistyped placeholder may name a secret's variable or file.
			return fmt.Errorf("%s %s resolves to a value that is not an absolute http(s) URL without %s (the value is not shown)", f.name, redactUserinfo(f.v), f.without)
		}
	}
	return nil
}

// schemelessPlaceholder returns the first placeholder of v, a URL setting
// with no "://", that can never hold a whole absolute URL ({host}...): v
// then resolves to no URL for any request. "" if there is none.
func schemelessPlaceholder(v string) string {
	for _, ph := range placeholderPattern.FindAllString(v, -1) {
		if notURLPlaceholder(ph) {
			return ph
		}
	}
	return ""
}

// notURLPlaceholder reports whether a request placeholder holds a part of
// a URL (host, port, path), never a whole absolute URL. The Caddyfile's
// shorthands ({host}, {hostport}...) are expanded to these by the adapter.
func notURLPlaceholder(ph string) bool {
	name := strings.Trim(ph, "{}")
	for _, p := range []string{"http.request.host", "http.request.hostport", "http.request.port", "http.request.uri", "http.request.orig_uri", "http.request.local", "http.request.remote"} {
		if name == p || strings.HasPrefix(name, p+".") {
			return true
		}
	}
	// The Caddyfile's shorthands, as written when the handler is set up
	// without the adapter; matched whole, as {file.*} is a global one.
	switch name {
	case "host", "hostport", "port", "uri", "path", "dir", "file", "query":
		return true
	}
	return false
}

// bracketedPlaceholder matches an IPv6 host made of one placeholder.
var bracketedPlaceholder = regexp.MustCompile(`\[\{[^{}\s]+\}\]`)

// placeholderPattern matches a Caddy placeholder.
var placeholderPattern = regexp.MustCompile(`\{[^{}\s]+\}`)

func checkEndpoint(name, v string) error {
	if strings.Contains(v, "{") && !strings.Contains(v, "://") {
		if ph := schemelessPlaceholder(v); ph != "" {
			return fmt.Errorf("%s %q must be an absolute http(s) URL (%s holds no scheme: write https://%s)", name, v, ph, ph)
		}
	}
	if v == "" || strings.Contains(v, "{") {
		return nil
	}
	u, err := url.Parse(v)
	if err == nil && u.User != nil {
		return fmt.Errorf("%s must not hold user information (user:password@): it is published to every client", name)
	}
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || !plainURL(v, u) {
		if err == nil && !handler.ValidEscapes(v) {
			return fmt.Errorf("%s %q must be an absolute http(s) URL: a %% in it starts no escape (write %%25 for a %% sign)", name, redactUserinfo(v))
		}
		return fmt.Errorf("%s %q must be an absolute http(s) URL", name, redactUserinfo(v))
	}
	if strings.Contains(v, "#") {
		return fmt.Errorf("%s %q must not include a fragment (RFC 6749 section 3.1)", name, redactUserinfo(v))
	}
	if strings.Contains(v, "\\") {
		// Read as "/" by browsers' URL parsers.
		return fmt.Errorf("%s %q must not contain \\ (write /)", name, redactUserinfo(v))
	}
	if _, ok := handler.WebHost(u.Host); !ok {
		return fmt.Errorf("%s %q: %s", name, redactUserinfo(v), hostRefused)
	}
	return nil
}

// plainURL reports whether the URL v, parsed as u, is one clients can use
// as written: no spaces or control characters (url.Parse lets them through
// in a path) and a port, if any, in range.
func plainURL(v string, u *url.URL) bool {
	if strings.ContainsFunc(v, func(r rune) bool { return r == ' ' || unicode.IsControl(r) }) || !handler.ValidEscapes(v) {
		// Also an escape that is none ("%zz", which url.Parse lets
		// through in a query).
		return false
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		return err == nil && n >= 1 && n <= 65535
	}
	return true
}

// redactUserinfo hides what a URL holds before "@" in its authority (a
// password, perhaps), for error messages: also in one that does not parse.
func redactUserinfo(s string) string {
	start := 0
	if i := strings.Index(s, "://"); i >= 0 {
		start = i + 3
	}
	// Up to the last "@" anywhere: a password may hold "/", "?" or "#",
	// and hiding too much of an error message costs nothing.
	if at := strings.LastIndexByte(s[start:], '@'); at >= 0 {
		return s[:start] + "…@" + s[start+at+1:]
	}
	return s
}

func checkUser(v string) error {
	if v == "" {
		return nil
	}
	// The user comes from the request: a template of constants alone
	// ({env.*}) would make every request, anonymous ones included, the
	// same user.
	constant := func(p string) bool {
		for _, ns := range []string{"{env.", "{file.", "{system.", "{time."} {
			if strings.HasPrefix(p, ns) {
				return true
			}
		}
		return false
	}
	if phs := placeholderPattern.FindAllString(v, -1); len(phs) == 0 || !slices.ContainsFunc(phs, func(p string) bool { return !constant(p) }) {
		return fmt.Errorf("user %q must be a request placeholder, such as {http.request.header.Remote-User}", v)
	}
	// Every user it names would be one the handlers treat as no user.
	if strings.HasPrefix(v, registry.TokenOwnerPrefix) {
		return fmt.Errorf("user %q must not start with %q: that names the owners of clients registered with initial access tokens", v, registry.TokenOwnerPrefix)
	}
	return nil
}

// checkRedisAddress wants host:port (an empty host is the local machine,
// as for net.Dial), a redis:// or rediss:// URL, or the absolute path of a
// unix socket: go-redis only finds out that an address is unusable when it
// dials, so a typo would otherwise become a permanent outage instead of a
// config error.
func checkRedisAddress(a string) error {
	if strings.Contains(a, "{") || strings.HasPrefix(a, "/") {
		return nil
	}
	if isRedisURL(a) {
		_, err := parseRedisURL(a)
		return err
	}
	if strings.ContainsAny(a, "@/") {
		// Not quoted: it may carry a password.
		return errors.New("an address with credentials or a scheme must be a redis:// or rediss:// URL")
	}
	// Quoted only when it cannot hold a password: a plain host name.
	host, port, err := net.SplitHostPort(a)
	switch {
	case err != nil && !strings.Contains(a, ":"):
		return fmt.Errorf("address %q must be host:port, a redis:// URL or the absolute path of a unix socket", a)
	case err != nil:
		return errors.New("an address must be host:port (an IPv6 address in brackets), a redis:// URL or the absolute path of a unix socket")
	case !registry.ValidPort(port):
		return fmt.Errorf("address of host %q: the port must be a number from 1 to 65535", host)
	}
	return nil
}

// nodeOf is the node an address names, for comparing addresses written
// differently: a redis:// URL's host:port (6379 by default), a host in
// lower case and a port as a number (06379 is 6379). Anything it cannot
// read is compared as written, in lower case.
func nodeOf(a string) string {
	if isRedisURL(a) {
		if u, err := parseRedisURL(a); err == nil {
			a = u.addr
		}
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return strings.ToLower(a)
	}
	if n, err := strconv.Atoi(port); err == nil {
		port = strconv.Itoa(n)
	}
	return net.JoinHostPort(strings.ToLower(host), port)
}

// checkRedisTopology refuses what only a single node supports, with
// several addresses (a cluster) or Sentinel: go-redis dials a unix socket
// only as a single node, and a cluster has database 0 alone.
func checkRedisTopology(addrs []string, db int, masterName string) error {
	if err := checkDistinctAddresses(addrs); err != nil {
		return err
	}
	if db != 0 && storage.IsCluster(addrs, masterName) {
		return errors.New("db must be 0 with a cluster (several addresses)")
	}
	if len(addrs) > 1 || masterName != "" {
		for _, a := range addrs {
			if strings.HasPrefix(a, "/") {
				return fmt.Errorf("unix socket %q works for a single node only (no cluster, no master_name)", a)
			}
		}
	}
	return nil
}

// checkDistinctAddresses refuses an address listed twice: two addresses
// make a cluster, so a single node written twice would load and then fail
// every request ("cluster support disabled"). Addresses are named by
// position, not quoted: a redis:// URL may hold a password.
func checkDistinctAddresses(addrs []string) error {
	for i, a := range addrs {
		for j := range i {
			if nodeOf(addrs[j]) == nodeOf(a) {
				return fmt.Errorf("addresses %d and %d are the same: list each node once (several addresses make a cluster, or with master_name the Sentinels)", j+1, i+1)
			}
		}
	}
	return nil
}

// defaultTLS is the TLS configuration to Redis before any tls subdirective.
func defaultTLS() *tls.Config { return &tls.Config{MinVersion: tls.VersionTLS12} }

// secretPlaceholder matches the placeholders resolved when the config
// loads, which string fields of the Redis config may use.
var secretPlaceholder = regexp.MustCompile(`\{(env|file)\.[^{}]*\}`)

// checkKeyPrefix refuses braces, which would break the keys' hash tags,
// except in {env.*} and {file.*} placeholders; Provision checks what
// those resolve to.
func checkKeyPrefix(p string) error {
	if strings.ContainsAny(secretPlaceholder.ReplaceAllString(p, ""), "{}") {
		return fmt.Errorf("storage redis: key_prefix %q must not contain braces (they would break hash tags)", p)
	}
	if strings.ContainsFunc(p, unicode.IsControl) {
		return fmt.Errorf("storage redis: key_prefix %q must not contain control characters", p)
	}
	return nil
}

// resolveKeyPrefix checks what the {env.*} and {file.*} placeholders of a
// key prefix resolve to: each must hold something, or an unset variable
// would silently put the handler's clients in another store (the default
// one, with "{env.UNSET}"), under another policy.
func resolveKeyPrefix(p string, repl *caddy.Replacer) error {
	if ph := unsetPlaceholder(p, repl); ph != "" {
		return fmt.Errorf("storage redis: key_prefix %q: %s resolves to an empty string (is the environment variable or file set?)", p, ph)
	}
	if got := repl.ReplaceAll(p, ""); strings.ContainsFunc(got, unicode.IsControl) {
		return fmt.Errorf("storage redis: key_prefix %q resolves to a value with control characters", p)
	}
	return nil
}

// kustvaktOnly names the first Kustvakt option that is set: the other APIs
// would silently ignore it.
func (h *Handler) kustvaktOnly() string {
	switch {
	case len(h.SuperClients) > 0:
		return "super_client"
	case h.Timezone != "":
		return "timezone"
	case len(h.AdminUsers) > 0:
		return "admin_user"
	case h.AdminToken != "":
		return "admin_token"
	}
	return ""
}

// Validate checks the configuration. It does no I/O, not even reading time
// zone data (Provision loads the timezone), so that the Caddyfile adapter
// can run it as well.
func (h *Handler) Validate() error {
	if err := checkAPI(h.API); err != nil {
		return err
	}
	if err := checkPrefix(h.Prefix); err != nil {
		return err
	}
	if err := checkIssuer(h.Issuer); err != nil {
		return err
	}
	if err := checkEndpoint("authorization_endpoint", h.AuthorizationEndpoint); err != nil {
		return err
	}
	if err := checkEndpoint("token_endpoint", h.TokenEndpoint); err != nil {
		return err
	}
	if err := checkUser(h.User); err != nil {
		return err
	}
	if h.SecretLifetime != nil && *h.SecretLifetime < 0 {
		return errors.New("secret_lifetime must not be negative")
	}
	if h.SecretLifetime != nil {
		if err := jsonDurationHint(checkMinDuration("secret_lifetime", time.Duration(*h.SecretLifetime))); err != nil {
			return err
		}
	}
	if s := h.Storage; s != nil {
		if s.Redis != nil && s.Caddy != nil {
			return errors.New("storage: choose either redis or caddy")
		}
		if r := s.Redis; r != nil {
			if len(r.Address) == 0 {
				return errors.New("storage redis: at least one address is required")
			}
			for _, a := range r.Address {
				if strings.TrimSpace(a) == "" {
					return errors.New("storage redis: an address is empty")
				}
				if err := checkRedisAddress(a); err != nil {
					return fmt.Errorf("storage redis: %w", err)
				}
			}
			if err := checkRedisTopology(r.Address, r.DB, r.MasterName); err != nil {
				return fmt.Errorf("storage redis: %w", err)
			}
			if (r.SentinelUsername != "" || r.SentinelPassword != "") && r.MasterName == "" {
				return errors.New("storage redis: sentinel_username and sentinel_password need master_name (Sentinel)")
			}
			if err := checkKeyPrefix(r.KeyPrefix); err != nil {
				return err
			}
			if r.DB < 0 {
				return errors.New("storage redis: db must not be negative")
			}
			if r.Timeout < 0 {
				return errors.New("storage redis: timeout must not be negative")
			}
			if err := jsonDurationHint(checkMinDuration("timeout", time.Duration(r.Timeout))); err != nil {
				return fmt.Errorf("storage redis: %w", err)
			}
			if r.DB > math.MaxInt32 {
				return errors.New("storage redis: db is out of range")
			}
			if err := r.checkWait(r.Address, r.MasterName); err != nil {
				return fmt.Errorf("storage redis: %w", err)
			}
		}
	}
	if opt := h.kustvaktOnly(); opt != "" && h.apiName() != registry.APIKustvakt {
		return fmt.Errorf("%s applies to the kustvakt API only, not %s", opt, h.apiName())
	}
	seen := map[string]bool{}
	for _, sc := range h.SuperClients {
		if sc.ClientID == "" {
			return errors.New("super_client: client id is required")
		}
		if seen[sc.ClientID] {
			return fmt.Errorf("super_client %s is declared twice", sc.ClientID)
		}
		seen[sc.ClientID] = true
	}
	return h.validatePolicy()
}

// Cleanup releases this handler's reference to the shared store; the last
// one closes it.
func (h *Handler) Cleanup() error {
	// Cleared as released: a second Cleanup must not drop a reference
	// that another handler holds.
	if h.activeName != "" {
		activeStores.remove(h.activeName, h.active)
		h.activeName = ""
	}
	if h.poolKey == "" {
		return nil
	}
	key := h.poolKey
	h.poolKey = ""
	_, err := pools.Delete(key)
	return err
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	clearClientID(r)
	if h.proxyWarned != nil && !h.proxyWarned.Load() {
		h.warnLaxProxies(r)
	}
	// The API holds the Redis client while it answers one of its routes,
	// so that a reload that replaces the client closes the old one only
	// after this request (RedisPool.Retire); not while the next handler
	// runs.
	if h.api.Serve(w, r) {
		return nil
	}
	return next.ServeHTTP(w, r)
}

// clientIDCleared is the request whose replacer clearClientID last set.
var clientIDCleared atomic.Pointer[http.Request]

// clearClientID makes the client id placeholder known, if empty, from here
// on: a deferred header that names it gets no value rather than the
// placeholder's own text on answers that are not a registration or an
// update. Every client_registration handler a request passes through does
// this (any of them may be the first), and for a request it passes on,
// finding the replacer in the request's context is most of a handler's
// cost; so a handler skips it for the request the one before it has just
// cleared. A request whose mark another request took meanwhile, or that a
// handler between them replaced (r.WithContext), is cleared again. The
// pointer keeps that one request from being freed, and its address reused,
// until the next one takes its place.
//
// The empty value comes from a function added to the replacer, not from
// one of its static values: the first static value of a request allocates
// the replacer's map, which every request passed on to the site would pay
// for. registered sets the static value, which the replacer asks first.
func clearClientID(r *http.Request) {
	if clientIDCleared.Load() == r {
		return
	}
	if repl := replacer(r); repl != nil {
		repl.Map(noClientID)
	}
	clientIDCleared.Store(r)
}

// noClientID answers the client id placeholder with "" (see clearClientID).
func noClientID(key string) (any, bool) {
	if key == clientIDPlaceholder {
		return "", true
	}
	return nil, false
}

// warnLaxProxies warns, once, when the server trusts proxies without
// trusted_proxies_strict and registrations are rate limited per address:
// Caddy then takes the leftmost X-Forwarded-For address, which a client
// writes itself when its proxy appends to the header, and the limit counts
// whatever address each request claims. Whether the server trusts proxies
// shows only in a request that came through one (Caddy drops the server's
// trusted_proxies config once it has loaded it), so the warning comes with
// the first such request; a strict server settles it at once.
func (h *Handler) warnLaxProxies(r *http.Request) {
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); !trusted {
		return
	}
	srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !ok || h.logger == nil || srv.TrustedProxiesStrict > 0 {
		h.proxyWarned.Store(true)
		return
	}
	if !h.proxyWarned.CompareAndSwap(false, true) {
		return
	}
	h.logger.Warn("trusted_proxies is set without trusted_proxies_strict: the registration rate limit counts the leftmost X-Forwarded-For address, which a client can choose when its proxy appends to the header; set trusted_proxies_strict",
		zap.String("api", h.apiName()))
}

// strippedPrefix returns the path prefix that a handler before this one
// removed from the request (handle_path, uri strip_prefix), as escaped in
// the request, or "" when none was. The URLs this handler gives out
// (registration_client_uri, metadata endpoints) must include it, or clients
// would be sent to paths outside the handle_path block. Any other rewrite
// is left alone: only a pure prefix removal can be undone in a URL.
func strippedPrefix(r *http.Request) string {
	orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request)
	if !ok || orig.URL == nil || orig.URL.Path == r.URL.Path {
		return ""
	}
	o, c := orig.URL.EscapedPath(), r.URL.EscapedPath()
	if !strings.HasPrefix(c, "/") {
		return ""
	}
	// Caddy cleans the whole escaped path before it strips a prefix (dot
	// segments and empty ones go), so the prefix is found in the path as
	// it cleans it ("/auth//register" leaves "/register"), or in that path
	// decoded where the strip compared a %2F with a slash of the prefix
	// ("/y%2Foauth/register" under handle_path /y/*), and escaped again.
	for _, p := range dotsResolved(caddyhttp.CleanPath(o, true)) {
		if m, ok := strippedFrom(p, c); ok {
			return m
		}
		if od, err := url.PathUnescape(p); err == nil {
			if m, ok := strippedFrom(od, r.URL.Path); ok {
				return (&url.URL{Path: m}).EscapedPath()
			}
		}
	}
	return ""
}

// dotsResolved is the escaped, cleaned path p with the dot segments
// written as escapes ("/m/x/%2e%2e/register", "/m/register/%2e") removed,
// as clients' parsers remove them: Caddy's cleaning of the escaped path
// leaves them, that of the decoded path it routes by does not, and the
// mount found is published. A last one leaves a trailing slash, which the
// routed path has not: the path is given with and without it.
func dotsResolved(p string) []string {
	w := handler.WebPath(p)
	if t := strings.TrimSuffix(w, "/"); t != w && w != p {
		return []string{w, t}
	}
	return []string{w}
}

// strippedFrom returns what comes before rest in whole, less a trailing
// slash, when whole ends with rest after something more than a slash.
func strippedFrom(whole, rest string) (string, bool) {
	if len(whole) <= len(rest) || !strings.HasSuffix(whole, rest) {
		return "", false
	}
	m := strings.TrimSuffix(whole[:len(whole)-len(rest)], "/")
	return m, m != ""
}

func replacer(r *http.Request) *caddy.Replacer {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	return repl
}

func expand(r *http.Request, s string) string {
	repl := replacer(r)
	if repl == nil {
		return s
	}
	if strings.Contains(s, "://{http.request.host}") {
		out, _ := repl.ReplaceFunc(s, bracketIPv6Host)
		return out
	}
	return repl.ReplaceAll(s, "")
}

// bracketIPv6Host puts back the brackets of an IPv6 literal that
// {http.request.host} gives without them (from a Host header with a port,
// "[::1]:8443"), so that "https://{http.request.host}/x" makes a URL.
func bracketIPv6Host(key string, v any) (any, error) {
	if h, ok := v.(string); ok && key == "http.request.host" && strings.Contains(h, ":") && !strings.HasPrefix(h, "[") {
		return "[" + h + "]", nil
	}
	return v, nil
}

// userFunc returns how the authenticated user is read from a request.
func (h *Handler) userFunc() func(r *http.Request) string {
	if h.User == "" || h.User == "{http.auth.user.id}" {
		return func(r *http.Request) string {
			if repl := replacer(r); repl != nil {
				u, _ := repl.GetString("http.auth.user.id")
				return u
			}
			return ""
		}
	}
	tmpl := h.User
	return func(r *http.Request) string {
		if repl := replacer(r); repl != nil {
			// A template with text around its placeholders ("kv:{...}")
			// names nobody when one of them is empty or unknown: an
			// anonymous request must not become the user "kv:".
			u, err := repl.ReplaceOrErr(tmpl, true, true)
			if err != nil {
				return ""
			}
			return strings.TrimSpace(u)
		}
		return ""
	}
}

// clientIDPlaceholder names the client registered or updated by the request.
const clientIDPlaceholder = "http.client_registration.client_id"

func registered(r *http.Request, clientID string) {
	if repl := replacer(r); repl != nil {
		repl.Set(clientIDPlaceholder, clientID)
	}
	// The field is for the access log; a server without one is spared the
	// cost of adding it (ExtraLogFields.Add allocates).
	if srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && srv.Logs == nil {
		return
	}
	if extra, ok := r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields); ok {
		extra.Add(zap.String("client_id", clientID))
	}
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
