package caddydcr

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
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
//			address <host:port>...
//			username <user>
//			password <password>
//			db <n>
//			master_name <name>
//			tls [insecure_skip_verify] {
//				ca_file <path>
//				cert_file <path>
//				key_file <path>
//				server_name <name>
//			}
//			key_prefix <prefix>
//			timeout <duration>
//		}
//		storage caddy
//		secret_lifetime <duration>
//		authorization_endpoint <url>
//		token_endpoint <url>
//		super_client <client_id> <secret>
//		timezone <IANA zone>
//		admin_user <user>...
//		admin_token <token>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		h.API = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		name := d.Val()
		switch name {
		case "prefix", "issuer", "authorization_endpoint", "token_endpoint", "timezone", "admin_token":
			dst := map[string]*string{
				"prefix": &h.Prefix, "issuer": &h.Issuer, "authorization_endpoint": &h.AuthorizationEndpoint,
				"token_endpoint": &h.TokenEndpoint, "timezone": &h.Timezone, "admin_token": &h.AdminToken,
			}[name]
			if err := oneString(d, dst); err != nil {
				return err
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
				if err := rc.unmarshalCaddyfile(d); err != nil {
					return err
				}
				h.Storage = &StorageConfig{Redis: rc}
			default:
				return d.Errf("unknown storage %q: use redis or caddy", d.Val())
			}
		case "super_client":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Err("super_client takes a client id and a secret")
			}
			h.SuperClients = append(h.SuperClients, SuperClient{ClientID: args[0], Secret: args[1]})
		case "admin_user":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.AdminUsers = append(h.AdminUsers, args...)
		default:
			return d.Errf("unrecognized subdirective '%s'", name)
		}
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

func oneDuration(d *caddyfile.Dispenser) (caddy.Duration, error) {
	name := d.Val()
	if !d.NextArg() {
		return 0, d.ArgErr()
	}
	dur, err := caddy.ParseDuration(d.Val())
	if err != nil {
		return 0, d.Errf("invalid %s '%s': %v", name, d.Val(), err)
	}
	if d.NextArg() {
		return 0, d.ArgErr()
	}
	return caddy.Duration(dur), nil
}

func (rc *RedisConfig) unmarshalCaddyfile(d *caddyfile.Dispenser) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		switch name {
		case "address":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			rc.Address = append(rc.Address, args...)
		case "username":
			if err := oneString(d, &rc.Username); err != nil {
				return err
			}
		case "password":
			if err := oneString(d, &rc.Password); err != nil {
				return err
			}
		case "master_name":
			if err := oneString(d, &rc.MasterName); err != nil {
				return err
			}
		case "key_prefix":
			if err := oneString(d, &rc.KeyPrefix); err != nil {
				return err
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
			rc.Timeout = dur
		case "tls":
			if rc.TLS != nil {
				return d.Err("tls already specified")
			}
			rc.TLS = new(RedisTLS)
			for d.NextArg() {
				if d.Val() != "insecure_skip_verify" {
					return d.Errf("unknown tls option '%s'", d.Val())
				}
				rc.TLS.InsecureSkipVerify = true
			}
			for tn := d.Nesting(); d.NextBlock(tn); {
				sub := d.Val()
				dst := map[string]*string{"ca_file": &rc.TLS.CAFile, "cert_file": &rc.TLS.CertFile, "key_file": &rc.TLS.KeyFile, "server_name": &rc.TLS.ServerName}[sub]
				if dst == nil {
					return d.Errf("unrecognized tls subdirective '%s'", sub)
				}
				if err := oneString(d, dst); err != nil {
					return err
				}
			}
		default:
			return d.Errf("unrecognized redis subdirective '%s'", name)
		}
	}
	return nil
}
