package caddydcr

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-dcr/caddy-dcr/registry"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("client_registration", parseCaddyfile)
	// After authentication, rewrites and headers; before the handlers that
	// answer requests, so a Caddyfile needs no order option.
	httpcaddyfile.RegisterDirectiveOrder("client_registration", httpcaddyfile.Before, "respond")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	client_registration [<matcher>] [rfc7591|mediagoblin|kustvakt|iam] {
//		prefix <path>
//		issuer <url>
//		storage redis {
//			address <host:port | /unix/socket>...
//			username <user>
//			password <password>
//			db <n>
//			master_name <name>
//			sentinel_username <user>
//			sentinel_password <password>
//			tls [insecure_skip_verify] {
//				ca_file <path>
//				cert_file <path>
//				key_file <path>
//				server_name <name>
//			}
//			key_prefix <prefix>
//			timeout <duration>
//			wait_replicas <n> [<timeout>]
//		}
//		storage caddy
//		user <placeholder>
//		secret_lifetime <duration>
//		authorization_endpoint <url>
//		token_endpoint <url>
//		super_client <client_id> <secret>
//		timezone <IANA zone>
//		admin_user <user>...
//		admin_token <token>
//
//		registration open|token|user
//		advertise_registration on|off
//		initial_access_token <token>...
//		software_statement {
//			issuer <iss> {
//				key <PEM or JWKS file, or JWKS URL>...
//				secret <HS256 secret>
//				software_id <id>...
//			}
//		}
//		require_software_statement
//		allowed_redirect_hosts <host or *.domain>...
//		require_same_host_uris
//		max_redirect_uris <n>
//		allowed_grant_types <grant type>...
//		allowed_response_types <response type>...
//		allowed_auth_methods <method>...
//		allowed_scopes <scope>...
//		default_scope <scope>...
//		rate_limit <count> <window> | off
//		max_clients <n> | off
//		max_clients_per_owner <n> | off
//		client_lifetime <duration>
//		idle_lifetime <duration>
//		cors <origin>...
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if err := noEmptyValues(*d); err != nil {
		return err
	}
	d.Next() // consume directive name
	if d.NextArg() {
		h.API = d.Val()
		if err := checkAPI(h.API); err != nil {
			return d.WrapErr(err)
		}
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	// Options that take one value may appear once; list options accumulate.
	single := map[string]bool{
		"prefix": true, "issuer": true, "authorization_endpoint": true, "token_endpoint": true, "timezone": true,
		"admin_token": true, "user": true, "secret_lifetime": true, "storage": true, "registration": true,
		"default_scope": true, "require_software_statement": true, "require_same_host_uris": true, "advertise_registration": true, "max_redirect_uris": true, "max_clients": true,
		"max_clients_per_owner": true, "rate_limit": true, "client_lifetime": true, "idle_lifetime": true,
		"software_statement": true,
	}
	seen := map[string]bool{}
	at := optionLines{}
	prev := ""
	for d.NextBlock(0) {
		name := d.Val()
		if name == "{" {
			// The options with a block read theirs: this one opens a
			// block after an option that takes none.
			return d.Errf("%s takes no block", prev)
		}
		prev = name
		at.note(d, name)
		if single[name] {
			if seen[name] {
				return d.Errf("%s already specified", name)
			}
			seen[name] = true
		}
		switch name {
		case "prefix", "issuer", "authorization_endpoint", "token_endpoint", "timezone", "admin_token", "user":
			dst := map[string]*string{
				"prefix": &h.Prefix, "issuer": &h.Issuer, "authorization_endpoint": &h.AuthorizationEndpoint,
				"token_endpoint": &h.TokenEndpoint, "timezone": &h.Timezone, "admin_token": &h.AdminToken,
				"user": &h.User,
			}[name]
			if err := oneString(d, dst); err != nil {
				return err
			}
			if err := h.checkString(name, *dst); err != nil {
				return d.WrapErr(err)
			}
		case "secret_lifetime":
			if h.SecretLifetime != nil {
				return d.Errf("%s already specified", name)
			}
			dur, err := oneDuration(d)
			if err != nil {
				return err
			}
			h.SecretLifetime = &dur
		case "storage":
			if h.Storage != nil {
				return d.Err("storage already specified")
			}
			if !d.NextArg() {
				return d.ArgErr()
			}
			switch d.Val() {
			case "caddy":
				if d.NextArg() {
					return d.ArgErr()
				}
				if d.NextBlock(1) {
					return d.Err("storage caddy takes no options")
				}
				h.Storage = &StorageConfig{Caddy: &CaddyStorageConfig{}}
			case "redis":
				if d.NextArg() {
					return d.ArgErr()
				}
				rc := new(RedisConfig)
				redisAt := optionLines{}
				if err := rc.unmarshalCaddyfile(d, redisAt); err != nil {
					return err
				}
				h.Storage = &StorageConfig{Redis: rc}
				// What only the whole block shows (no address, db with a
				// cluster), at the line of the option it names, or else
				// at its closing brace.
				if err := (&Handler{Storage: h.Storage}).Validate(); err != nil {
					return redisAt.wrap(d, err)
				}
			default:
				return d.Errf("unknown storage %q: use redis or caddy", d.Val())
			}
		case "super_client":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Err("super_client takes a client id and a secret")
			}
			if err := h.checkKustvaktOnly(name); err != nil {
				return d.WrapErr(err)
			}
			for _, sc := range h.SuperClients {
				if sc.ClientID == args[0] {
					return d.Errf("super_client %s already specified", args[0])
				}
			}
			h.SuperClients = append(h.SuperClients, SuperClient{ClientID: args[0], Secret: args[1]})
		case "admin_user", "initial_access_token", "allowed_redirect_hosts", "allowed_grant_types",
			"allowed_response_types", "allowed_auth_methods", "allowed_scopes", "cors":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			dst := map[string]*[]string{
				"admin_user": &h.AdminUsers, "initial_access_token": &h.InitialAccessTokens,
				"allowed_redirect_hosts": &h.AllowedRedirectHosts, "allowed_grant_types": &h.AllowedGrantTypes,
				"allowed_response_types": &h.AllowedResponseTypes, "allowed_auth_methods": &h.AllowedAuthMethods,
				"allowed_scopes": &h.AllowedScopes, "cors": &h.CORS,
			}[name]
			// Each line is checked on its own, so that a bad value is
			// reported at its line; Validate has the messages. The mode a
			// token needs is checked with the whole block, at its end.
			probe := Handler{API: h.API, Registration: "token"}
			*map[string]*[]string{
				"admin_user": &probe.AdminUsers, "initial_access_token": &probe.InitialAccessTokens,
				"allowed_redirect_hosts": &probe.AllowedRedirectHosts, "allowed_grant_types": &probe.AllowedGrantTypes,
				"allowed_response_types": &probe.AllowedResponseTypes, "allowed_auth_methods": &probe.AllowedAuthMethods,
				"allowed_scopes": &probe.AllowedScopes, "cors": &probe.CORS,
			}[name] = args
			if err := probe.Validate(); err != nil {
				return d.WrapErr(err)
			}
			*dst = append(*dst, args...)
		case "registration":
			if err := oneString(d, &h.Registration); err != nil {
				return err
			}
			if err := (&Handler{API: h.API, Registration: h.Registration}).Validate(); err != nil {
				return d.WrapErr(err)
			}
		case "default_scope":
			if h.DefaultScope != "" {
				return d.Errf("%s already specified", name)
			}
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.DefaultScope = strings.Join(args, " ")
		case "advertise_registration":
			var v string
			if err := oneString(d, &v); err != nil {
				return err
			}
			if v != "on" && v != "off" {
				return d.Errf("advertise_registration: want on or off, not %q", v)
			}
			on := v == "on"
			h.AdvertiseRegistration = &on
			if err := (&Handler{API: h.API, AdvertiseRegistration: &on}).Validate(); err != nil {
				return d.WrapErr(err)
			}
		case "require_software_statement", "require_same_host_uris":
			if d.NextArg() {
				return d.ArgErr()
			}
			*map[string]*bool{"require_software_statement": &h.RequireSoftwareStatement, "require_same_host_uris": &h.RequireSameHostURIs}[name] = true
		case "max_redirect_uris":
			n, err := oneCount(d, false)
			if err != nil {
				return err
			}
			h.MaxRedirectURIs = n
		case "max_clients", "max_clients_per_owner":
			n, err := oneCount(d, true)
			if err != nil {
				return err
			}
			if name == "max_clients" {
				h.MaxClients = &n
			} else {
				h.MaxClientsPerOwner = &n
			}
		case "rate_limit":
			if h.RateLimit != nil {
				return d.Errf("%s already specified", name)
			}
			args := d.RemainingArgs()
			switch {
			case len(args) == 1 && args[0] == "off":
				h.RateLimit = &RateLimitConfig{}
			case len(args) == 2 && args[0] == "off":
				return d.Err("rate_limit off takes no window")
			case len(args) == 2:
				n, err := strconv.Atoi(args[0])
				if err != nil || n < 1 || n > maxCount {
					return d.Errf("invalid rate_limit count '%s': must be a positive integer up to %d (or use rate_limit off)", args[0], maxCount)
				}
				dur, err := caddy.ParseDuration(args[1])
				if err != nil || dur <= 0 {
					return d.Errf("invalid rate_limit window '%s': must be a positive duration", args[1])
				}
				if err := checkMinDuration("rate_limit window", dur); err != nil {
					return d.WrapErr(err)
				}
				if err := checkMaxDuration("rate_limit window", dur); err != nil {
					return d.WrapErr(err)
				}
				h.RateLimit = &RateLimitConfig{Count: n, Window: Duration(dur)}
			default:
				return d.Err("rate_limit takes a count and a window (rate_limit 60 1h) or off")
			}
		case "client_lifetime", "idle_lifetime":
			dur, err := oneDuration(d)
			if err != nil {
				return err
			}
			if name == "client_lifetime" {
				h.ClientLifetime = dur
			} else {
				h.IdleLifetime = dur
			}
		case "software_statement":
			if d.NextArg() {
				return d.ArgErr()
			}
			if h.SoftwareStatement == nil {
				h.SoftwareStatement = new(SoftwareStatementConfig)
			}
			if err := h.SoftwareStatement.unmarshalCaddyfile(d); err != nil {
				return err
			}
		default:
			return d.Errf("unrecognized subdirective '%s'", name)
		}
	}
	// What involves several options (default_scope among allowed_scopes,
	// require_software_statement with an issuer...), so that `caddy adapt`
	// already refuses it: at the line of the option the error names, or
	// else at the closing brace.
	if err := h.Validate(); err != nil {
		return at.wrap(d, err)
	}
	return nil
}

// optionLines records the line of each subdirective of a block, so that an
// error found only once the whole block is read (a token without
// 'registration token', wait_replicas longer than timeout) points at the
// option it is about rather than at the closing brace.
type optionLines map[string]optionPlace

type optionPlace struct {
	file string
	line int
}

// note records where the option name first appears.
func (o optionLines) note(d *caddyfile.Dispenser, name string) {
	if _, ok := o[name]; !ok {
		o[name] = optionPlace{d.File(), d.Line()}
	}
}

// wrap adds to err the place of the option its message starts with
// (after "storage redis: "), or the dispenser's current place.
func (o optionLines) wrap(d *caddyfile.Dispenser, err error) error {
	msg := strings.TrimPrefix(err.Error(), "storage redis: ")
	name := msg
	if i := strings.IndexAny(msg, " :"); i >= 0 {
		name = msg[:i]
	}
	if name == "wait_timeout" {
		name = "wait_replicas" // its second argument, in a Caddyfile
	}
	if at, ok := o[name]; ok {
		return fmt.Errorf("%w, at %s:%d", err, at.file, at.line)
	}
	return d.WrapErr(err)
}

// checkString checks the value of a one-string option as Validate does.
func (h *Handler) checkString(name, v string) error {
	switch name {
	case "prefix":
		return checkPrefix(v)
	case "issuer":
		return checkIssuer(v)
	case "authorization_endpoint", "token_endpoint":
		return checkEndpoint(name, v)
	case "user":
		return checkUser(v)
	case "timezone":
		if err := h.checkKustvaktOnly(name); err != nil {
			return err
		}
		// Validate leaves this to Provision (it reads the zone data); the
		// adapter may read it, to name the line.
		if _, err := loadZone(v); err != nil {
			return err
		}
	case "admin_token":
		return h.checkKustvaktOnly(name)
	}
	return nil
}

// checkKustvaktOnly refuses an option the chosen API would ignore. The API
// argument comes first, so it is known here.
func (h *Handler) checkKustvaktOnly(name string) error {
	if h.apiName() != registry.APIKustvakt {
		return fmt.Errorf("%s applies to the kustvakt API only, not %s", name, h.apiName())
	}
	return nil
}

// oneCount reads a non-negative integer; with allowOff, "off" means 0.
func oneCount(d *caddyfile.Dispenser, allowOff bool) (int, error) {
	name := d.Val()
	if !d.NextArg() {
		return 0, d.ArgErr()
	}
	v := d.Val()
	if d.NextArg() {
		return 0, d.ArgErr()
	}
	if allowOff && v == "off" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	switch {
	case allowOff && (err != nil || n < 1 || n > maxCount):
		// 0 is how the JSON config says off; written here it would
		// read as "none allowed" and mean no limit at all.
		return 0, d.Errf("invalid %s '%s': must be a positive integer up to %d, or off for no limit", name, v, maxCount)
	case !allowOff && (err != nil || n < 1 || n > maxCount):
		// 0 is what the JSON config omits: the default, not "none".
		return 0, d.Errf("invalid %s '%s': must be a positive integer up to %d", name, v, maxCount)
	}
	return n, nil
}

// noEmptyValues refuses an empty value ("") anywhere in the directive's
// block. Caddy puts a {$VAR} in by the text of the variable before the
// Caddyfile is read, so that "{$VAR}" with the variable unset reads as ""
// (and unquoted, as no value at all), which every option here would take
// as left out: a registration mode, a Redis CA file or a Kustvakt super
// client's secret would quietly fall back to its default. d is a copy:
// the caller's reading position does not move.
func noEmptyValues(d caddyfile.Dispenser) error {
	option, line := "", 0 // the first token of the current line; lines count from 1
	for d.Next() {
		if d.Line() != line {
			option, line = d.Val(), d.Line()
			if option == "" {
				return d.Err(`an empty option name ("", also what "{$VAR}" gives with the variable unset)`)
			}
		}
		if d.Val() != "" {
			continue
		}
		hint := "write the value, or leave " + option + " out (for its default, where it has one)"
		switch option {
		case "client_registration":
			hint = "give an API name, or none for rfc7591"
		case "prefix":
			hint = "leave prefix out, or write /, for the site root"
		case "key_prefix":
			hint = fmt.Sprintf("it would be the default prefix %q (another tenant's store, perhaps): leave key_prefix out for it, or give one", defaultKeyPrefix)
		case "timezone":
			hint = "leave timezone out for UTC"
		case "super_client":
			hint = "a super client takes a client id and a secret (super clients are confidential)"
		}
		return d.Errf(`%s: an empty value ("", also what "{$VAR}" gives with the variable unset): %s`, option, hint)
	}
	return nil
}

// maxDuration bounds the durations a Caddyfile gives, for the reason of
// maxCount: the largest ones (about 292 years) came out of the JSON
// numbers' float64 too large for a duration.
const maxDuration = 100 * 365 * 24 * time.Hour

// checkMaxDuration refuses a duration longer than maxDuration.
func checkMaxDuration(name string, dur time.Duration) error {
	if dur > maxDuration {
		return fmt.Errorf("%s %s is too long: at most 100 years (%s)", name, dur, maxDuration)
	}
	return nil
}

// maxCount bounds the counts a Caddyfile gives: the adapter writes JSON
// numbers through float64, which rounds integers above 2^53 (and turns
// 2^63-1 into a number no int holds, so the JSON config failed to load).
const maxCount = math.MaxInt32

func (sc *SoftwareStatementConfig) unmarshalCaddyfile(d *caddyfile.Dispenser) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if d.Val() != "issuer" {
			return d.Errf("unrecognized software_statement subdirective '%s'", d.Val())
		}
		ic := StatementIssuerConfig{}
		if err := oneString(d, &ic.Issuer); err != nil {
			return err
		}
		for _, other := range sc.Issuers {
			if other.Issuer == ic.Issuer {
				return d.Errf("software_statement issuer %s already specified", ic.Issuer)
			}
		}
		secretSeen := false
		prev := "issuer " + ic.Issuer
		for in := d.Nesting(); d.NextBlock(in); {
			sub := d.Val()
			if sub == "{" {
				return d.Errf("%s takes no block", prev)
			}
			prev = sub
			if sub == "secret" {
				if secretSeen {
					return d.Err("secret already specified")
				}
				secretSeen = true
			}
			switch sub {
			case "key", "software_id":
				args := d.RemainingArgs()
				if len(args) == 0 {
					return d.ArgErr()
				}
				if sub == "key" {
					ic.Keys = append(ic.Keys, args...)
				} else {
					ic.SoftwareIDs = append(ic.SoftwareIDs, args...)
				}
			case "secret":
				if err := oneString(d, &ic.Secret); err != nil {
					return err
				}
			default:
				return d.Errf("unrecognized software_statement issuer subdirective '%s'", sub)
			}
		}
		probe := Handler{SoftwareStatement: &SoftwareStatementConfig{Issuers: []StatementIssuerConfig{ic}}}
		if err := probe.Validate(); err != nil {
			return d.WrapErr(err)
		}
		sc.Issuers = append(sc.Issuers, ic)
	}
	return nil
}

// oneString reads the single argument of the current line into dst.
func oneString(d *caddyfile.Dispenser, dst *string) error {
	name := d.Val()
	if *dst != "" {
		return d.Errf("%s already specified", name)
	}
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func oneDuration(d *caddyfile.Dispenser) (Duration, error) {
	name := d.Val()
	if !d.NextArg() {
		return 0, d.ArgErr()
	}
	dur, err := caddy.ParseDuration(d.Val())
	if err != nil {
		return 0, d.Errf("invalid %s '%s': a duration such as 90s, 30m, 12h or 7d", name, d.Val())
	}
	if dur < 0 {
		return 0, d.Errf("invalid %s '%s': must not be negative", name, d.Val())
	}
	if err := checkMinDuration(name, dur); err != nil {
		return 0, d.WrapErr(err)
	}
	if err := checkMaxDuration(name, dur); err != nil {
		return 0, d.WrapErr(err)
	}
	if d.NextArg() {
		return 0, d.ArgErr()
	}
	return Duration(dur), nil
}

func (rc *RedisConfig) unmarshalCaddyfile(d *caddyfile.Dispenser, at optionLines) error {
	seen := map[string]bool{}
	prev := ""
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if name == "{" {
			return d.Errf("redis %s takes no block", prev)
		}
		prev = name
		at.note(d, name)
		if name != "address" {
			if seen[name] {
				return d.Errf("redis %s already specified", name)
			}
			seen[name] = true
		}
		switch name {
		case "address":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, a := range args {
				if err := checkRedisAddress(a); err != nil {
					return d.Errf("storage redis: %v", err)
				}
			}
			rc.Address = append(rc.Address, args...)
			if err := checkDistinctAddresses(rc.Address); err != nil {
				return d.Errf("storage redis: %v", err)
			}
			// Written out, addresses that cannot go together are said
			// here, with the line; placeholders are checked when the
			// config loads, once resolved.
			literal := slices.DeleteFunc(slices.Clone(rc.Address), func(a string) bool { return strings.Contains(a, "{") })
			if _, err := mergeRedisURLs(literal, &redisOptions{}, false); err != nil {
				return d.Errf("storage redis: %v", err)
			}
		case "username", "password", "master_name", "sentinel_username", "sentinel_password":
			dst := map[string]*string{"username": &rc.Username, "password": &rc.Password, "master_name": &rc.MasterName,
				"sentinel_username": &rc.SentinelUsername, "sentinel_password": &rc.SentinelPassword}[name]
			if err := oneString(d, dst); err != nil {
				return err
			}
		case "key_prefix":
			if err := oneString(d, &rc.KeyPrefix); err != nil {
				return err
			}
			if err := checkKeyPrefix(rc.KeyPrefix); err != nil {
				return d.WrapErr(err)
			}
		case "db":
			var s string
			if err := oneString(d, &s); err != nil {
				return err
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return d.Errf("invalid db '%s': must be a non-negative integer", s)
			}
			rc.DB = n
		case "timeout":
			dur, err := oneDuration(d)
			if err != nil {
				return err
			}
			if dur == 0 {
				// 0 would silently mean the default; written out, it
				// reads as "no timeout", which the client does not have.
				return d.Errf("invalid timeout '%s': at least 1ms (leave timeout out for the default, %s)", d.Val(), storage.DefaultRedisTimeout)
			}
			rc.Timeout = dur
		case "wait_replicas":
			// wait_replicas <n> [<timeout>]
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n < 1 || n > maxCount {
				return d.Errf("invalid wait_replicas '%s': must be a number of replicas, at least 1 (and at most %d)", d.Val(), maxCount)
			}
			rc.WaitReplicas = n
			if d.NextArg() {
				dur, err := caddy.ParseDuration(d.Val())
				if err != nil || dur < time.Millisecond {
					return d.Errf("invalid wait_replicas timeout '%s': a duration of at least 1ms, such as 500ms or 1s", d.Val())
				}
				if err := checkMaxDuration("wait_replicas timeout", dur); err != nil {
					return d.WrapErr(err)
				}
				rc.WaitTimeout = Duration(dur)
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		case "tls":
			if rc.TLS != nil {
				return d.Err("tls already specified")
			}
			rc.TLS = new(RedisTLS)
			for d.NextArg() {
				if d.Val() != "insecure_skip_verify" {
					return d.Errf("unknown tls option '%s': the only one is insecure_skip_verify (a tls block takes ca_file, cert_file, key_file and server_name)", d.Val())
				}
				if rc.TLS.InsecureSkipVerify {
					return d.Err("tls insecure_skip_verify already specified")
				}
				rc.TLS.InsecureSkipVerify = true
			}
			tseen := map[string]bool{}
			prev := "tls"
			for tn := d.Nesting(); d.NextBlock(tn); {
				sub := d.Val()
				if sub == "{" {
					return d.Errf("tls %s takes no block", prev)
				}
				prev = sub
				if tseen[sub] {
					return d.Errf("tls %s already specified", sub)
				}
				tseen[sub] = true
				dst := map[string]*string{"ca_file": &rc.TLS.CAFile, "cert_file": &rc.TLS.CertFile, "key_file": &rc.TLS.KeyFile, "server_name": &rc.TLS.ServerName}[sub]
				if dst == nil {
					return d.Errf("unrecognized tls subdirective '%s'", sub)
				}
				if err := oneString(d, dst); err != nil {
					return err
				}
			}
			if tseen["cert_file"] != tseen["key_file"] {
				// Provision refuses it too (for JSON), but only here
				// does the error name the line.
				return d.Err("tls cert_file and key_file must be given together")
			}
		default:
			return d.Errf("unrecognized redis subdirective '%s'", name)
		}
	}
	return nil
}
