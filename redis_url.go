package caddydcr

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
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
	return strings.HasPrefix(a, "redis://") || strings.HasPrefix(a, "rediss://")
}

// parseRedisURL reads redis://[[user]:password@]host[:port][/db] (rediss://
// for TLS). Query options are refused rather than ignored: the
// subdirectives say the same things, and a silently dropped option (a
// timeout, a certificate check) would surprise.
func parseRedisURL(s string) (redisURL, error) {
	var r redisURL
	u, err := url.Parse(s)
	if err != nil {
		return r, fmt.Errorf("address: %v", redactURLError(err))
	}
	r.tls = u.Scheme == "rediss"
	if u.Host == "" || u.Opaque != "" {
		return r, errors.New("a redis:// address needs a host")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return r, errors.New("options in a redis:// address are not supported; use the storage redis subdirectives (timeout, tls, db...)")
	}
	r.host = u.Hostname()
	port := u.Port()
	if port == "" {
		port = "6379"
	}
	if r.host == "" {
		return r, errors.New("a redis:// address needs a host")
	}
	r.addr = net.JoinHostPort(r.host, port)
	if u.User != nil {
		r.hasUser = true
		r.username = u.User.Username()
		r.password, _ = u.User.Password()
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		db, err := strconv.Atoi(p)
		if err != nil || db < 0 {
			return r, errors.New("the path of a redis:// address must be a database number, such as /0")
		}
		r.db, r.hasDB = db, true
	}
	return r, nil
}

// redactURLError keeps a password out of url.Parse's error message, which
// quotes the whole address.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
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
		o.TLS.ServerName = first.host
	}
	return out, nil
}
