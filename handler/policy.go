package handler

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/registry"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

// Who may register: the registration modes.
const (
	ModeOpen  = "open"  // anyone
	ModeToken = "token" // only with an initial access token (RFC 7591 section 3)
	ModeUser  = "user"  // only an authenticated Caddy user ({http.auth.user.id})
)

// Gate is the registration policy every API enforces before it creates a
// client: who may register, how often, and how many clients may exist.
type Gate struct {
	// Mode is ModeOpen, ModeToken or ModeUser; "" means the API's default.
	Mode string
	// StaticTokenHashes are the hashes of the configured initial access tokens.
	StaticTokenHashes []string
	// RateLimit registrations per client IP per RateWindow; 0 means no limit.
	RateLimit  int
	RateWindow time.Duration
	// MaxClients caps the clients in the store, MaxClientsPerOwner the
	// clients one owner (user or token) registered; 0 means no cap.
	MaxClients         int
	MaxClientsPerOwner int
	// ClientIP returns the client's address as Caddy determined it (trusted
	// proxies honoured).
	ClientIP func(r *http.Request) string
}

// Denial is a registration the gate refuses; each API writes it in its own
// error format.
type Denial struct {
	Status int
	// Reason is "rate_limited", "max_clients", "no_token", "bad_token",
	// "no_user" or "unavailable".
	Reason      string
	Description string
	RetryAfter  time.Duration
}

// SetHeaders adds the headers of a refusal: the Bearer challenge of RFC 6750
// for a missing or bad initial access token (error="invalid_token", as RFC
// 7591 section 3 asks of a protected registration endpoint), a plain one
// for a missing user, Retry-After for 429 and 503.
func (d *Denial) SetHeaders(h http.Header) {
	switch d.Reason {
	case "no_token", "bad_token":
		h.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	case "no_user":
		h.Set("WWW-Authenticate", "Bearer")
	}
	if d.Status == http.StatusTooManyRequests || d.Status == http.StatusServiceUnavailable {
		h.Set("Retry-After", d.RetryAfterHeader())
	}
}

// RetryAfterHeader is the Retry-After value in whole seconds, rounded up,
// and at least 1: "0" would invite a retry that is refused again.
func (d *Denial) RetryAfterHeader() string {
	return strconv.Itoa(max(1, int(math.Ceil(d.RetryAfter.Seconds()))))
}

// Admission is a registration the gate let through.
type Admission struct {
	// Owner is the user or the token the client will belong to.
	Owner string
	// token is a run-time initial access token whose use is counted when
	// the client is created.
	token string
}

func unavailableDenial() *Denial {
	return &Denial{Status: http.StatusServiceUnavailable, Reason: "unavailable",
		Description: "the client store is unavailable; try again later", RetryAfter: 5 * time.Second}
}

// DefaultMode is who may register through api when the configuration does
// not say: an authenticated user for Kustvakt, as on the real server;
// anyone for the others.
func DefaultMode(api string) string {
	if api == registry.APIKustvakt {
		return ModeUser
	}
	return ModeOpen
}

// admit checks who is registering. The rate limit is applied later, by
// create, to requests that passed validation.
func (o *Options) admit(r *http.Request) (*Admission, *Denial) {
	return o.admitAs(r, o.user(r))
}

// admitAs is admit for an API that sees the authenticated user as user
// (Kustvakt's demo user is nobody).
func (o *Options) admitAs(r *http.Request, user string) (*Admission, *Denial) {
	g := &o.Gate
	ctx := storeCtx(r)
	mode := g.Mode
	if mode == "" {
		mode = DefaultMode(o.api)
	}
	switch mode {
	case ModeUser:
		if user == "" {
			return nil, &Denial{Status: http.StatusUnauthorized, Reason: "no_user", Description: "registration requires an authenticated user"}
		}
		return &Admission{Owner: user}, nil
	case ModeToken:
		tok, present := bearer(r)
		if tok == "" && present {
			// Two Authorization headers, or "Bearer" with nothing after it:
			// a token was meant, so saying that none was sent would mislead.
			return nil, &Denial{Status: http.StatusUnauthorized, Reason: "bad_token", Description: "send the initial access token in one Authorization header, as Bearer <token>"}
		}
		if tok == "" {
			return nil, &Denial{Status: http.StatusUnauthorized, Reason: "no_token", Description: "registration requires an initial access token (Authorization: Bearer)"}
		}
		presented := registry.Hash(tok)
		for _, h := range g.StaticTokenHashes {
			if subtle.ConstantTimeCompare([]byte(h), []byte(presented)) == 1 {
				// The owner names the token without revealing it.
				return &Admission{Owner: registry.TokenOwnerPrefix + "static-" + h[len("sha256:"):len("sha256:")+8]}, nil
			}
		}
		began := time.Now()
		t, err := o.Registry.CheckToken(ctx, tok)
		if errors.Is(err, registry.ErrTokenInvalid) && tokenReturns.settle(ctx, tok) {
			// Its last use was waiting to be given back: a client that
			// tries again once the store is back gets it at once.
			t, err = o.Registry.CheckToken(ctx, tok)
		}
		if errors.Is(err, registry.ErrTokenInvalid) {
			return nil, &Denial{Status: http.StatusUnauthorized, Reason: "bad_token", Description: "the initial access token is invalid, expired or used up"}
		}
		if err != nil {
			o.storeFailure(began, "initial access token", err)
			return nil, unavailableDenial()
		}
		return &Admission{Owner: t.Owner(), token: tok}, nil
	}
	return &Admission{Owner: user}, nil
}

// limit counts a registration against the per-address rate limit. It runs
// once the request is known to be a valid registration: the limit is on
// registrations, so a client that gets its metadata wrong a few times is
// not locked out for the window, and malformed requests cost no store
// round trip.
func (o *Options) limit(r *http.Request) *Denial {
	g := &o.Gate
	if g.RateLimit <= 0 || g.RateWindow <= 0 {
		return nil
	}
	ip := ""
	if g.ClientIP != nil {
		ip = rateLimitAddress(g.ClientIP(r))
	}
	// One counter per API and mount point: every instance of the same
	// handler on one store shares it, different handlers do not.
	key := "reg:" + o.api + o.Prefix + ":" + strconv.FormatInt(g.RateWindow.Milliseconds(), 10) + ":" + ip
	began := time.Now()
	ok, retry, err := o.Registry.Store.Hit(storeCtx(r), key, g.RateLimit, g.RateWindow)
	if err != nil {
		o.storeFailure(began, "rate limit", err)
		return unavailableDenial()
	}
	if !ok {
		return &Denial{Status: http.StatusTooManyRequests, Reason: "rate_limited", RetryAfter: retry,
			Description: fmt.Sprintf("too many registrations from this address; at most %d per %s", g.RateLimit, spanText(g.RateWindow))}
	}
	return nil
}

// spanText writes a rate-limit window for people ("hour", "10 minutes",
// "90 seconds") rather than as Go's Duration.String ("1h0m0s").
func spanText(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "day"}, {time.Hour, "hour"}, {time.Minute, "minute"}, {time.Second, "second"}} {
		if d%u.d == 0 && d >= u.d {
			if n := d / u.d; n != 1 {
				return fmt.Sprintf("%d %ss", n, u.name)
			}
			return u.name
		}
	}
	return d.String()
}

// rateLimitAddress is the part of a client address the rate limit counts:
// an IPv4 address whole (also when mapped into IPv6), an IPv6 address by
// its /64, the smallest block a site is given; counting single IPv6
// addresses would let one host use a fresh address per request.
func rateLimitAddress(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	if a = a.Unmap(); a.Is4() {
		// An IPv4 client is one client however it is written: a dual-stack
		// proxy may report it as ::ffff:a.b.c.d.
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

// create registers c for an admitted request: it counts the token's use,
// applies the caps atomically and gives the use back if the client could
// not be created. On success it sets the placeholder and logs the
// registration. A nil Denial and a non-nil error mean an unexpected failure.
func (o *Options) create(r *http.Request, c *registry.Client, iss registry.Issue, adm *Admission) (*registry.Issued, *Denial, error) {
	ctx := storeCtx(r)
	if d := o.limit(r); d != nil {
		return nil, d, nil
	}
	c.Owner = adm.Owner
	var use string
	began := time.Now()
	if adm.token != "" {
		use = registry.NewUseID()
		err := o.Registry.UseToken(ctx, adm.token, use)
		if errors.Is(err, registry.ErrTokenInvalid) && tokenReturns.settle(ctx, adm.token) {
			err = o.Registry.UseToken(ctx, adm.token, use)
		}
		if errors.Is(err, registry.ErrTokenInvalid) {
			return nil, &Denial{Status: http.StatusUnauthorized, Reason: "bad_token", Description: "the initial access token is invalid, expired or used up"}, nil
		}
		if err != nil {
			// The count may have been made (on a master whose replicas
			// did not confirm it, or by a Redis whose answer was lost),
			// but the registration is refused: give the use back, or a
			// one-use token would be spent. A use never counted is not.
			o.returnTokenUse(ctx, adm.token, use)
			o.storeFailure(began, "initial access token", err)
			return nil, unavailableDenial(), nil
		}
	}
	caps := o.caps(c.Owner)
	issued, err := o.Registry.Register(ctx, c, iss, caps...)
	if err != nil && adm.token != "" {
		o.returnTokenUse(ctx, adm.token, use)
	}
	var le *storage.LimitError
	switch {
	case err == nil:
		o.Health.OK(o.Logger, began, true)
		o.registered(r, c.ID)
		o.Logger.Info("client registered", zap.String("api", o.api), zap.String("client_id", c.ID))
		return issued, nil, nil
	case errors.As(err, &le):
		return nil, o.capDenial(le.Cap), nil
	case o.storeFailure(began, "register", err):
		return nil, unavailableDenial(), nil
	}
	return nil, nil, err
}

// returnTokenUse gives back a use of an initial access token. When the
// store fails to, as it did the registration a moment ago, the give-back
// is queued and tried again in the background (see tokenReturns): it can
// be repeated safely, and a token that loses a use for every outage would
// leave its holder locked out.
func (o *Options) returnTokenUse(ctx context.Context, token, use string) {
	err := o.Registry.ReturnTokenUse(context.WithoutCancel(ctx), token, use)
	if err == nil {
		return
	}
	tokenReturns.add(pendingReturn{reg: o.Registry, logger: o.Logger, token: token, use: use, since: time.Now()})
}

// tokenReturns holds the give-backs of token uses that failed, for one
// goroutine to try again while there are any; it runs only then, so it
// needs no stopping.
var tokenReturns returnQueue

// Bounds of the give-backs tried again: how many may wait (beyond, a
// use is lost, which is the safe way: the token allows fewer
// registrations, never more) and for how long they are tried.
const (
	maxPendingReturns = 4096
	returnPatience    = 5 * time.Minute
	returnPauseMax    = 10 * time.Second
)

// returnPauseMin is the first pause before give-backs are tried again,
// unless a test set another (returnQueue.pauseMin).
const returnPauseMin = time.Second

type pendingReturn struct {
	reg        *registry.Registry
	logger     *zap.Logger
	token, use string
	since      time.Time
}

type returnQueue struct {
	mu      sync.Mutex
	pending []pendingReturn
	// trying counts the give-backs a round has taken out of pending and
	// not put back: they count against maxPendingReturns too.
	trying  int
	running bool
	// pauseMin, when set, replaces returnPauseMin (tests).
	pauseMin time.Duration
}

// firstPause is the pause before a round of give-backs; q.mu is held.
func (q *returnQueue) firstPause() time.Duration {
	if q.pauseMin > 0 {
		return q.pauseMin
	}
	return returnPauseMin
}

func (q *returnQueue) add(p pendingReturn) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending)+q.trying >= maxPendingReturns {
		if p.logger != nil {
			p.logger.Warn("an initial access token's use could not be given back after a failed registration: the store fails and too many give-backs wait; the token has one use fewer")
		}
		return
	}
	q.pending = append(q.pending, p)
	if !q.running {
		q.running = true
		go q.run()
	}
}

// settle tries at once the give-backs waiting for token and reports
// whether one succeeded: a request that finds the token used up may find
// it usable after all.
func (q *returnQueue) settle(ctx context.Context, token string) bool {
	q.mu.Lock()
	var mine []pendingReturn
	q.pending = slices.DeleteFunc(q.pending, func(p pendingReturn) bool {
		if p.token == token {
			mine = append(mine, p)
			return true
		}
		return false
	})
	q.mu.Unlock()
	settled := false
	for _, p := range mine {
		if err := p.reg.ReturnTokenUse(context.WithoutCancel(ctx), p.token, p.use); err == nil {
			settled = true
		} else {
			q.add(p) // the background goroutine keeps trying
		}
	}
	return settled
}

// run tries the waiting give-backs again, with pauses that double up to
// returnPauseMax while the store still fails, until none is left.
func (q *returnQueue) run() {
	var pause time.Duration
	for {
		q.mu.Lock()
		if pause == 0 {
			pause = q.firstPause()
		}
		q.mu.Unlock()
		time.Sleep(pause)
		q.mu.Lock()
		batch := q.pending
		q.pending, q.trying = nil, len(batch)
		q.mu.Unlock()
		var failed []pendingReturn
		for _, p := range batch {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := p.reg.ReturnTokenUse(ctx, p.token, p.use)
			cancel()
			switch {
			case err == nil:
			case time.Since(p.since) > returnPatience:
				if p.logger != nil {
					p.logger.Warn("an initial access token's use could not be given back after a failed registration: the store kept failing; the token has one use fewer",
						zap.Duration("tried_for", time.Since(p.since)), zap.Error(err))
				}
			default:
				failed = append(failed, p)
			}
		}
		q.mu.Lock()
		q.pending, q.trying = append(failed, q.pending...), 0
		if len(q.pending) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		if len(failed) > 0 {
			pause = min(2*pause, returnPauseMax)
		} else {
			pause = 0 // the first pause again
		}
	}
}

// caps are the caps a registration for owner is held to.
func (o *Options) caps(owner string) []storage.Cap {
	var caps []storage.Cap
	if o.Gate.MaxClients > 0 {
		caps = append(caps, storage.Cap{Tag: registry.TagClients, Max: o.Gate.MaxClients})
	}
	if o.Gate.MaxClientsPerOwner > 0 && owner != "" {
		caps = append(caps, storage.Cap{Tag: registry.OwnerTag(owner), Max: o.Gate.MaxClientsPerOwner})
	}
	return caps
}

// capDenial refuses a registration that would go over cp: 429 with
// Retry-After an hour, or this handler's client_lifetime
// or idle_lifetime when shorter: with them, places free up as clients expire,
// and a client told to wait an hour for a cap of clients that live
// seconds would give up for nothing. (Clients of other APIs may live
// longer; a retry that comes too early is refused again, no harm done.)
func (o *Options) capDenial(cp storage.Cap) *Denial {
	desc := fmt.Sprintf("the maximum number of registered clients (%d) has been reached", cp.Max)
	if cp.Tag != registry.TagClients {
		desc = fmt.Sprintf("the maximum number of clients per owner (%d) has been reached", cp.Max)
	}
	wait := time.Hour
	for _, l := range []time.Duration{o.Registry.ClientLifetime, o.Registry.IdleLifetime} {
		if l > 0 {
			wait = min(wait, l)
		}
	}
	return &Denial{Status: http.StatusTooManyRequests, Reason: "max_clients", Description: desc, RetryAfter: wait}
}

// wouldDeny is the refusal create would answer a registration by adm's
// owner with, found without creating anything: for a HEAD, whose answer
// must be the POST's though it registers nothing. The rate limit counts it
// as an attempt; the store is asked how many clients each cap counts,
// which also finds it unreachable (with no cap, the clients are counted
// for that alone). A token's use is not counted. A store known to refuse
// writes while it answers reads (Health.Full) gets the POST's 503 too.
func (o *Options) wouldDeny(r *http.Request, adm *Admission) *Denial {
	if d := o.limit(r); d != nil {
		return d
	}
	caps := o.caps(adm.Owner)
	if len(caps) == 0 {
		caps = []storage.Cap{{Tag: registry.TagClients}}
	}
	began := time.Now()
	for _, cp := range caps {
		n, err := o.Registry.Store.Count(storeCtx(r), cp.Tag)
		if err != nil {
			o.storeFailure(began, "register", err)
			return unavailableDenial()
		}
		if cp.Max > 0 && n >= cp.Max {
			return o.capDenial(cp)
		}
	}
	if o.Health.Full() {
		// The count was read, but the store refuses to grow: the
		// registration would get 503.
		return unavailableDenial()
	}
	return nil
}

// CORS is the cross-origin policy of the registration and management routes.
type CORS struct {
	// Origins are the allowed origins; "*" allows any.
	Origins []string
}

// apply adds the CORS headers for an allowed origin and answers a
// preflight (returning true). methods lists the route's methods.
func (c *CORS) apply(w http.ResponseWriter, r *http.Request, methods string) bool {
	if c == nil || len(c.Origins) == 0 {
		return false
	}
	origin := r.Header.Get("Origin")
	h := w.Header()
	h.Add("Vary", "Origin")
	listed := c.Listed(origin)
	allowed := listed || origin != "" && slices.Contains(c.Origins, "*")
	if allowed {
		h.Set("Access-Control-Allow-Origin", origin)
		// X-Request-Id: the id IAM's error bodies name; Allow: a 405's.
		h.Set("Access-Control-Expose-Headers", "Allow, Location, Retry-After, WWW-Authenticate, X-Request-Id")
	}
	if listed {
		// A page the operator named may send the browser's credentials
		// (basic_auth's, with credentials: "include"), as it may post
		// forms past the cross-site refusal: without this the request
		// would be carried out and its answer (a new secret) hidden
		// from the page. "*" allows no credentials.
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if r.Method != http.MethodOptions {
		return false
	}
	// A preflight, answered here whatever the route's methods, or a plain
	// OPTIONS, which gets the same Allow: with CORS on, every route takes
	// OPTIONS (RFC 9110 section 9.3.7).
	h.Add("Vary", "Access-Control-Request-Method, Access-Control-Request-Headers")
	if allowed {
		h.Set("Access-Control-Allow-Methods", methods+", OPTIONS")
		h.Set("Access-Control-Allow-Headers", allowHeaders(r.Header.Values("Access-Control-Request-Headers")))
		h.Set("Access-Control-Max-Age", "600")
	}
	h.Set("Allow", c.allow(methods))
	w.WriteHeader(http.StatusNoContent)
	return true
}

// Listed reports whether origin is named in the list itself, not merely
// let in by "*".
func (c *CORS) Listed(origin string) bool {
	return c != nil && origin != "" && origin != "*" && slices.Contains(c.Origins, origin)
}

// allow is the Allow header of a route taking methods: with CORS on, the
// route answers OPTIONS too, and a 405's Allow lists every method the
// resource supports (RFC 9110 section 15.5.6), as the preflight's does.
func (c *CORS) allow(methods string) string {
	if c == nil || len(c.Origins) == 0 {
		return methods
	}
	return methods + ", OPTIONS"
}

// allowHeaders is Access-Control-Allow-Headers for a preflight: the
// headers every API reads, plus those the browser asks for. Clients send
// headers of their own (MCP clients send MCP-Protocol-Version even to the
// metadata route), and refusing one makes the browser drop the request;
// they carry no credentials the origin check has not already allowed. A
// request list that is not a list of header names, or an unreasonably long
// one, is not echoed.
func allowHeaders(requested []string) string {
	const base = "Authorization, Content-Type"
	out, n := base, 0
	for _, v := range requested {
		for name := range strings.SplitSeq(v, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			if n++; n > 32 || !validHeaderName(name) {
				return base
			}
			switch strings.ToLower(name) {
			case "authorization", "content-type":
				continue
			}
			out += ", " + name
		}
	}
	return out
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if len(s) > 100 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
