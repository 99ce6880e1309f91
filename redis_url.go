package caddydcr

import (
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddy-dcr/caddy-dcr/registry"
)

// redisURL is what a redis:// or rediss:// address carries besides
// host:port: the form REDIS_URL takes on most hosting platforms, so that
// `address {env.REDIS_URL}` works as users expect.
type redisURL struct {
	addr               string
	username, password string
	hasUser            bool
	db                 int
	hasDB              bool
	tls                bool
	host               string
}

// isRedisURL reports whether an address is written as a URL.
func isRedisURL(a string) bool {
	l := strings.ToLower(a)
	return strings.HasPrefix(l, "redis://") || strings.HasPrefix(l, "rediss://")
}

// errRedisURL is the one message for an address URL that does not parse:
// url.Parse's own messages quote pieces of it, and the password is among
// them.
var errRedisURL = errors.New("not a valid redis:// URL (percent-encode / ? # % @ and : in the user and password)")

// parseRedisURL reads redis://[[user]:password@]host[:port][/db] (rediss://
// for TLS). Query options are refused rather than ignored: the
// subdirectives say the same things, and a silently dropped option (a
// timeout, a certificate check) would surprise.
func parseRedisURL(s string) (redisURL, error) {
	var r redisURL
	u, err := url.Parse(s)
	if err != nil {
		return r, errRedisURL
	}
	r.tls = u.Scheme == "rediss"
	if u.Opaque != "" {
		return r, errRedisURL
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return r, errors.New("options in a redis:// address are not supported; use the storage redis subdirectives (timeout, tls, db...)")
	}
	host, port := u.Host, "6379"
	if strings.HasSuffix(host, "]") || strings.Count(host, ":") == 0 {
		// [v6] or name: no port.
	} else if h, p, err := net.SplitHostPort(host); err == nil {
		host, port = h, p
	} else {
		return r, errors.New("the host of a redis:// address must be host or host:port, with an IPv6 address in brackets")
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return r, errors.New("a redis:// address needs a host")
	}
	if !registry.ValidPort(port) {
		return r, errors.New("the port of a redis:// address must be a number from 1 to 65535")
	}
	r.host = host
	r.addr = net.JoinHostPort(host, port)
	if u.User != nil {
		r.hasUser = true
		r.username = u.User.Username()
		pw, ok := u.User.Password()
		if !ok || pw == "" {
			// go-redis would send no AUTH at all: a permanent NOAUTH
			// outage rather than a config error.
			if r.username == "" {
				return r, errors.New("a redis:// address with an @ needs a password before it: redis://:password@host or redis://user:password@host (or no @ for none)")
			}
			return r, errors.New("a redis:// address with a user needs a password: redis://user:password@host or redis://:password@host")
		}
		r.password = pw
	}
	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		db, err := strconv.ParseUint(p, 10, 31)
		if err != nil {
			return r, errors.New("the path of a redis:// address must be a database number, such as /0")
		}
		r.db, r.hasDB = int(db), true
	}
	return r, nil
}

// mergeRedisURLs resolves the URL addresses of a resolved address list:
// it returns the plain host:port list and applies what the URLs carry to
// o where the subdirectives left it unset. Several URLs must agree.
func mergeRedisURLs(addrs []string, o *redisOptions, explicitTLS bool) ([]string, error) {
	out := make([]string, 0, len(addrs))
	var first *redisURL
	for _, a := range addrs {
		if !isRedisURL(a) {
			if first != nil {
				return nil, errors.New("write every address as a redis:// URL or none")
			}
			out = append(out, a)
			continue
		}
		u, err := parseRedisURL(a)
		if err != nil {
			return nil, err
		}
		if first == nil {
			if len(out) > 0 {
				return nil, errors.New("write every address as a redis:// URL or none")
			}
			first = &u
		} else if u.tls != first.tls || u.hasUser != first.hasUser || u.username != first.username ||
			u.password != first.password || u.db != first.db {
			return nil, errors.New("the redis:// addresses differ in scheme, credentials or database")
		}
		out = append(out, u.addr)
	}
	if first == nil {
		return out, nil
	}
	if first.hasUser && o.Username == "" && o.Password == "" {
		o.Username, o.Password = first.username, first.password
	}
	if first.hasDB && o.DB == 0 {
		o.DB = first.db
	}
	if first.tls && !explicitTLS {
		o.TLS = defaultTLS()
		// Each node is checked against its own name (the TLS dialer
		// takes it from the address) unless there is only one: a cluster's
		// or Sentinel's nodes all have names of their own.
		if len(out) == 1 && o.MasterName == "" {
			o.TLS.ServerName = first.host
		}
	}
	return out, nil
}
