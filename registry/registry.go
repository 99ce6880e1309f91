package registry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// ErrNotFound means no live client has the id.
var ErrNotFound = errors.New("client not found")

// ErrNotCorrupt is Purge's refusal of a client whose record reads well.
var ErrNotCorrupt = errors.New("client record is readable: delete it")

// Tags under which clients are indexed in the store.
const (
	TagClients = "clients"
	TagPlugins = "plugins"
)

// OwnerTag is the tag of the clients an owner registered.
func OwnerTag(owner string) string { return "owner:" + owner }

const clientPrefix = "c/"

// OrphanHint tells an operator how to remove records of the store named
// store (a Redis key prefix) that writes answered 503 may have left, given
// their storage ids: clients with the CLI, by their client ids; initial
// access tokens and Kustvakt installations, which nobody was given, are
// only counted (the admin API and Kustvakt's own routes list them).
func OrphanHint(store string, ids []string) string {
	var clients []string
	for _, id := range ids {
		if c, ok := strings.CutPrefix(id, clientPrefix); ok {
			clients = append(clients, c)
		}
	}
	hint := fmt.Sprintf("store %q:", store)
	if len(clients) > 0 {
		hint += fmt.Sprintf(" clients %s (caddy client-registration delete --store %s -- <client_id>)",
			strings.Join(clients, " "), shellWord(store))
	}
	if others := len(ids) - len(clients); others > 0 {
		hint += fmt.Sprintf(" %d initial access tokens or Kustvakt installations", others)
	}
	return hint
}

// shellWord quotes s for a POSIX shell when it needs it.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_./@%+=,-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Registry keeps clients in a store. It is safe for concurrent use; several
// Caddy handlers (and several Caddy instances) share one through the store.
type Registry struct {
	Store storage.Store
	// Now is the clock; tests replace it.
	Now func() time.Time
	// ClientLifetime, when positive, makes clients expire that long after
	// their registration.
	ClientLifetime time.Duration
	// IdleLifetime, when positive, makes clients expire that long after
	// their last use; every use (a read by any API) pushes the expiry back.
	IdleLifetime time.Duration
	// SecretLifetime is how long the secrets this handler issues stay
	// valid (its secret_lifetime, or its API's default); 0 means never.
	// Like the other lifetimes it follows the client: a secret another
	// API issues (a Kustvakt reset of an IAM client) gets its own API's.
	SecretLifetime time.Duration
	// LifetimesOf, when set, returns the registry whose ClientLifetime,
	// IdleLifetime and SecretLifetime apply to a client registered through api (this one for
	// its own API), or nil when none is known: no handler of that API runs
	// here (another Caddy serves it, or a reload removed it). Handlers of
	// several APIs share one store, each with its own lifetimes, and a
	// client keeps those of the API it came through whichever API reads or
	// changes it: a Kustvakt reset must not cut an RFC 7591 client's life
	// short, nor lengthen it.
	LifetimesOf func(api string) *Registry
}

// lifetimes returns the registry whose lifetimes apply to c, or nil when
// they are not known here: then a read or change keeps the expiry c has,
// as its own API set it. (Another API's lifetimes, recomputed from c's
// creation, could put its end in the past and delete it at once.)
func (r *Registry) lifetimes(c *Client) *Registry {
	if r.LifetimesOf == nil || c.API == "" {
		return r
	}
	return r.LifetimesOf(c.API)
}

// SecretLifetimeOf is the lifetime of a secret issued to c: issuer, the
// issuing handler's own, for a client of its API or when no handler of
// c's API runs here; otherwise that of c's API.
func (r *Registry) SecretLifetimeOf(c *Client, issuer time.Duration) time.Duration {
	if l := r.lifetimes(c); l != nil && l != r {
		return l.SecretLifetime
	}
	return issuer
}

// expiry returns when a client used at now should expire: the earlier of
// its absolute and its idle deadline; zero for never.
func (r *Registry) expiry(c *Client, now time.Time) time.Time {
	var t time.Time
	if r.ClientLifetime > 0 {
		t = c.Created().Add(r.ClientLifetime)
	}
	if r.IdleLifetime > 0 {
		idle := now.Add(r.IdleLifetime)
		if t.IsZero() || idle.Before(t) {
			t = idle
		}
	}
	return t
}

// New returns a registry on store.
func New(store storage.Store) *Registry {
	return &Registry{Store: store, Now: time.Now}
}

// Issue says which credentials Register creates for a new client.
type Issue struct {
	// Format generates the id and the secret.
	Format Format
	// Secret forces a secret even when the client's authentication method
	// needs none (Kustvakt CONFIDENTIAL, MediaGoblin); otherwise a secret is
	// issued when NeedsSecret(TokenEndpointAuthMethod).
	Secret bool
	// NoSecret suppresses the secret (Kustvakt PUBLIC).
	NoSecret bool
	// RAT asks for a registration access token (RFC 7592).
	RAT bool
	// SecretLifetime sets client_secret_expires_at; 0 means never.
	SecretLifetime time.Duration
}

// Issued is a newly registered client with the only plain-text copies of its
// credentials that will ever exist.
type Issued struct {
	Client *Client
	Secret string
	RAT    string
}

func tagsOf(c *Client) []string {
	tags := []string{TagClients}
	if c.Owner != "" {
		tags = append(tags, OwnerTag(c.Owner))
	}
	if c.IsPlugin() {
		tags = append(tags, TagPlugins)
	}
	return tags
}

func encode(c *Client) (*storage.Record, error) {
	return &storage.Record{ID: clientPrefix + c.ID, Data: encodeClient(c), Tags: tagsOf(c)}, nil
}

func decode(rec *storage.Record) (*Client, error) {
	c, err := decodeClient(rec.Data)
	if err == nil && rec.ID != clientPrefix+c.ID {
		// A record is written only under its own client's id: another id
		// inside is damage (or tampering), and served as is it would show
		// one client under another's URL.
		err = fmt.Errorf("it holds client %q", c.ID)
	}
	if err != nil {
		return nil, storage.CorruptRecord("client record "+strconv.Quote(rec.ID), err)
	}
	return c, nil
}

// SecretExpiry is client_secret_expires_at (Unix seconds, 0 for never) of a
// secret issued to c at now with the given lifetime (0: none of its own).
// c.CreatedMs must be set: a client with a fixed lifetime takes its secret
// with it, whenever the secret was issued.
func (r *Registry) SecretExpiry(c *Client, now time.Time, lifetime time.Duration) int64 {
	var exp int64
	if lifetime > 0 {
		exp = now.Add(lifetime).Unix()
	}
	end := c.EndsAt
	if lr := r.lifetimes(c); lr != nil {
		// The end the client has once changed (see deadline): a secret
		// that outlived it would die with the client, and one ended by
		// a client_lifetime the client is not held to (one added since)
		// would be issued expired to a client that lives on.
		_, end = lr.deadline(c, time.Time{}, now)
	}
	if end != 0 && (exp == 0 || end < exp) {
		exp = end
	}
	return exp
}

// deadline returns when c, stored to expire at cur (zero: never), is to
// expire once used or changed at now under lr's lifetimes, with its fixed
// end (Unix seconds, 0 for none). With an idle lifetime both are worked out
// anew, from c's creation and now (a shortened client_lifetime then
// reaches the client, as documented). Without one the client's only
// deadline is its fixed end, which follows the lifetimes in force when
// they lift it or push it back: a client_lifetime removed or lengthened,
// or an idle_lifetime removed, whose last deadline would otherwise end a
// client in use. An end they would bring forward, or give to a client
// that had none, is kept: a changed client_lifetime reaches existing
// clients only with idle_lifetime, and an update or a read that ended
// the client it answered for would be a poor way to learn of it.
func (lr *Registry) deadline(c *Client, cur, now time.Time) (time.Time, int64) {
	if lr.IdleLifetime > 0 {
		return lr.expiry(c, now), lr.end(c)
	}
	if e := lr.end(c); e == 0 || (c.EndsAt != 0 && e >= c.EndsAt) {
		return lr.expiry(c, now), e
	}
	if c.EndsAt == 0 {
		// No fixed end on record: none (cur zero), or a deadline an
		// idle_lifetime since removed left, or a record from before ends
		// were kept. The later of it and the new fixed end.
		if cur.IsZero() {
			return time.Time{}, 0
		}
		end := lr.expiry(c, now)
		if cur.After(end) {
			end = cur
		}
		return end, end.Unix()
	}
	end := time.Unix(c.EndsAt, 0)
	if cur.After(end) {
		end = cur
	}
	return end, c.EndsAt
}

// touched reports the expiry and fixed end that a use of c (stored as rec)
// at now writes under lr's lifetimes, and whether it writes any. With an
// idle lifetime, a deadline pushed back is written once in a tenth of it
// (so that handlers of one API with different idle lifetimes, or
// instances with clocks apart, do not write on every read), one brought
// forward to the client's fixed end (a client_lifetime shortened since) at
// once. Without one, a deadline the lifetimes in force lift or push back
// (see deadline) is written once.
func (lr *Registry) touched(c *Client, rec *storage.Record, now time.Time) (time.Time, int64, bool) {
	if lr == nil {
		return time.Time{}, 0, false
	}
	if lr.IdleLifetime <= 0 {
		if rec.ExpiresAt.IsZero() {
			return time.Time{}, 0, false
		}
		exp, end := lr.deadline(c, rec.ExpiresAt, now)
		return exp, end, exp.IsZero() || exp.After(rec.ExpiresAt)
	}
	exp := lr.expiry(c, now)
	if exp.Equal(rec.ExpiresAt) {
		return exp, 0, false
	}
	toEnd := lr.ClientLifetime > 0 && exp.Before(rec.ExpiresAt) && exp.Equal(c.Created().Add(lr.ClientLifetime))
	if !toEnd && !rec.ExpiresAt.IsZero() && rec.ExpiresAt.Sub(now) > lr.IdleLifetime-lr.IdleLifetime/10 {
		return exp, 0, false
	}
	return exp, lr.end(c), true
}

// RegisteredSecretExpiry is the client_secret_expires_at that a
// registration of c at now would give its secret (c.CreatedMs and
// c.EndsAt set as Register sets them), for an answer that registers
// nothing (MediaGoblin's HEAD).
func (r *Registry) RegisteredSecretExpiry(c *Client, now time.Time, lifetime time.Duration) int64 {
	c.CreatedMs = now.UnixMilli()
	c.EndsAt = r.end(c)
	return r.SecretExpiry(c, now, lifetime)
}

// end is c's fixed end (Unix seconds) under r's client_lifetime, 0 for none.
func (r *Registry) end(c *Client) int64 {
	if r.ClientLifetime <= 0 {
		return 0
	}
	return c.Created().Add(r.ClientLifetime).Unix()
}

// Register stores c (its metadata already validated) under a fresh id with
// fresh credentials, as iss says. c.Owner and c.API must be set.
func (r *Registry) Register(ctx context.Context, c *Client, iss Issue, caps ...storage.Cap) (*Issued, error) {
	now := r.Now()
	c.CreatedMs = now.UnixMilli()
	c.EndsAt = r.end(c)
	out := &Issued{Client: c}
	if !iss.NoSecret && (iss.Secret || NeedsSecret(c.TokenEndpointAuthMethod)) {
		out.Secret = iss.Format.NewSecret()
		c.SecretHash = Hash(out.Secret)
		c.SecretExpiresAt = r.SecretExpiry(c, now, iss.SecretLifetime)
	}
	// A fresh id collides with an existing one with negligible probability;
	// Create refuses to overwrite, so try again rather than lose a client.
	for attempt := 0; ; attempt++ {
		c.ID = iss.Format.NewID()
		if iss.RAT {
			out.RAT = NewRAT(c.ID)
			c.RATHash = Hash(out.RAT)
		}
		rec, err := encode(c)
		if err != nil {
			return nil, err
		}
		rec.ExpiresAt = r.expiry(c, now)
		rec.FreshID = true
		err = r.Store.Create(ctx, rec, caps...)
		if err == nil {
			return out, nil
		}
		if !errors.Is(err, storage.ErrExists) || attempt == 4 {
			return nil, err
		}
	}
}

// Get returns the client with this id, or ErrNotFound. It counts as a use:
// with an idle lifetime, the client's expiry moves forward (at most once
// per tenth of the idle lifetime, so reads rarely write).
func (r *Registry) Get(ctx context.Context, id string) (*Client, error) {
	c, rec, err := r.get(ctx, id)
	if err != nil {
		return nil, err
	}
	r.use(ctx, c, rec)
	return c, nil
}

// use moves the expiry of c (stored as rec) forward when it has an idle
// lifetime (that of its API: see LifetimesOf).
func (r *Registry) use(ctx context.Context, c *Client, rec *storage.Record) {
	r.touch(ctx, r.lifetimes(c), c, rec)
}

// touch is use with lr, the lifetimes that apply to c, already found.
func (r *Registry) touch(ctx context.Context, lr *Registry, c *Client, rec *storage.Record) {
	exp, end, ok := lr.touched(c, rec, r.Now())
	if !ok {
		return
	}
	next := *rec
	next.ExpiresAt = exp
	if end != c.EndsAt {
		// The caller answers with c: the end it reports moves too.
		c.EndsAt = end
		capSecret(c)
		next.Data = encodeClient(c)
	}
	next.Touch = true
	// A concurrent writer refreshes it too, or deletes it: losing this race
	// is harmless. So is failing to write (Redis refusing writes, out of
	// memory): the read itself succeeded, and the next one tries again.
	_ = r.Store.Update(ctx, rec, &next)
}

// Lookup is Get for a read that still has to be authorized: it returns
// the client without counting a use, and a function that counts it (nil
// when nothing would), to call once the reader proved it may read.
// Otherwise anyone who knows a client id, which is public, could keep the
// client from expiring with requests that fail.
func (r *Registry) Lookup(ctx context.Context, id string) (*Client, func(), error) {
	c, rec, err := r.get(ctx, id)
	if err != nil {
		return c, nil, err
	}
	lr := r.lifetimes(c)
	if _, _, ok := lr.touched(c, rec, r.Now()); !ok {
		return c, nil, nil
	}
	return c, func() { r.touch(ctx, lr, c, rec) }, nil
}

// Peek returns the client with this id, or ErrNotFound, without counting
// a use (an operator looking at a client must not keep it alive).
func (r *Registry) Peek(ctx context.Context, id string) (*Client, error) {
	c, _, err := r.get(ctx, id)
	return c, err
}

func (r *Registry) get(ctx context.Context, id string) (*Client, *storage.Record, error) {
	c, rec, err := r.getStored(ctx, id)
	if err != nil {
		return c, rec, err
	}
	if r.endedSince(c) {
		// Gone as an expired client is. The record stays until its own
		// expiry or a delete: a read, which may come from anyone who
		// knows the public id, writes nothing for it.
		return nil, nil, ErrNotFound
	}
	return c, rec, nil
}

// getStored is get for a delete: a client ended by lifetimes in force
// (see endedSince) can still be deleted, and taken out of the counts at
// caps at once.
func (r *Registry) getStored(ctx context.Context, id string) (*Client, *storage.Record, error) {
	if id == "" {
		return nil, nil, ErrNotFound
	}
	rec, err := r.Store.Get(ctx, clientPrefix+id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, err
	}
	c, err := decode(rec)
	if err != nil {
		return nil, rec, err // rec for Purge
	}
	return c, rec, nil
}

// endedSince reports a client whose end under its API's lifetimes in force
// is past, its record not knowing it yet: a client_lifetime shortened (or
// added) by a reload reaches existing clients at their next use or change
// when idle_lifetime is set (see deadline), and that use or change finds
// the client expired, rather than answering for it (a PUT's new secret and
// token, a read's 200) and ending it in the same request.
func (r *Registry) endedSince(c *Client) bool {
	lr := r.lifetimes(c)
	if lr == nil || lr.IdleLifetime <= 0 || lr.ClientLifetime <= 0 {
		return false
	}
	return !c.Created().Add(lr.ClientLifetime).After(r.Now())
}

// capSecret ends c's secret no later than c itself, once c's end was
// brought forward: client_secret_expires_at reports the end.
func capSecret(c *Client) {
	if c.EndsAt != 0 && c.SecretHash != "" && (c.SecretExpiresAt == 0 || c.SecretExpiresAt > c.EndsAt) {
		c.SecretExpiresAt = c.EndsAt
	}
}

// Update applies change to the current version of the client and stores the
// result with compare-and-set; when another writer got there first it reads
// the new version and applies change again, so no update is lost. change may
// refuse by returning an error, which Update returns unchanged.
func (r *Registry) Update(ctx context.Context, id string, change func(c *Client) error) (*Client, error) {
	var retry conflictRetry
	for {
		c, old, err := r.get(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := change(c); err != nil {
			return nil, err
		}
		c.ID = id
		// Only confidential clients can be super clients: a change that
		// drops the secret (an RFC 7592 switch to "none") drops the
		// privilege too, or the client would pass as super with no
		// credentials at all.
		if c.Super && !c.Confidential() {
			c.Super = false
		}
		c.UpdatedMs = r.Now().UnixMilli()
		// The expiry is worked out again under the lifetimes in force now
		// (see deadline); a client whose API's lifetimes are not known
		// here keeps the one it has.
		exp := old.ExpiresAt
		if lr := r.lifetimes(c); lr != nil {
			exp, c.EndsAt = lr.deadline(c, old.ExpiresAt, r.Now())
			capSecret(c)
		}
		rec, err := encode(c)
		if err != nil {
			return nil, err
		}
		rec.ExpiresAt = exp
		err = r.Store.Update(ctx, old, rec)
		switch {
		case err == nil:
			return c, nil
		case errors.Is(err, storage.ErrNotFound):
			return nil, ErrNotFound
		case errors.Is(err, storage.ErrConflict) && retry.again():
			continue
		}
		return nil, err
	}
}

// Delete removes the client after check (if not nil) approves the current
// version.
func (r *Registry) Delete(ctx context.Context, id string, check func(c *Client) error) error {
	var retry conflictRetry
	for {
		c, rec, err := r.getStored(ctx, id)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(c); err != nil {
				return err
			}
		}
		err = r.Store.Delete(ctx, rec)
		switch {
		case err == nil:
			// Any client, not only a plugin: plugins/install installs
			// clients without a source too, and their installations
			// would outlive them for ever (a deregister and register
			// again would pile them up without bound).
			r.removeInstallations(ctx, id)
			return nil
		case errors.Is(err, storage.ErrNotFound):
			return ErrNotFound
		case errors.Is(err, storage.ErrConflict) && retry.again():
			continue
		}
		return err
	}
}

// List returns the clients carrying tag (OwnerTag, TagPlugins, ...).
func (r *Registry) List(ctx context.Context, tag string) ([]*Client, error) {
	recs, err := r.Store.List(ctx, tag)
	if err != nil {
		return nil, err
	}
	out := make([]*Client, 0, len(recs))
	for _, rec := range recs {
		c, err := decode(rec)
		if storage.SkipCorrupt(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Purge removes a client whose record cannot be read (storage.Corrupt),
// which Delete cannot: its owner and revision are unknown. It returns
// ErrNotFound if there is no such record, and ErrNotCorrupt if the record
// reads well (Delete it). Where the record's own tags can still be read,
// it leaves no index entry; otherwise an owner's keeps its id, skipped by
// every reader.
func (r *Registry) Purge(ctx context.Context, id string) error {
	if id == "" {
		return ErrNotFound
	}
	_, rec, err := r.getStored(ctx, id)
	switch {
	case err == nil:
		return ErrNotCorrupt
	case !storage.Corrupt(err):
		return err
	case rec != nil:
		// The store read its envelope (revision, tags): only the client
		// inside is damaged.
		err = r.Store.Delete(ctx, rec)
		if errors.Is(err, storage.ErrNotFound) {
			return ErrNotFound
		}
		if err == nil {
			r.removeInstallations(ctx, id)
		}
		return err
	}
	if err := r.Store.Purge(ctx, clientPrefix+id, []string{TagClients, TagPlugins}); err != nil {
		return err
	}
	r.removeInstallations(ctx, id)
	return nil
}

// conflictBudget bounds how long a write keeps trying after losing
// compare-and-set races: dozens of writers of one record (parallel updates
// of one client) each win in turn well within it.
const conflictBudget = 5 * time.Second

// conflictRetry paces a write that lost compare-and-set races
// (ErrConflict): again reports whether to read and try once more, after a
// short random pause that grows with the attempts, so that the writers of
// one record do not collide again in lockstep; past conflictBudget from
// the first conflict, the conflict is returned.
type conflictRetry struct {
	first    time.Time
	attempts int
}

func (c *conflictRetry) again() bool {
	if c.first.IsZero() {
		c.first = time.Now()
	} else if time.Since(c.first) > conflictBudget {
		return false
	}
	if c.attempts++; c.attempts > 1 {
		time.Sleep(time.Duration(rand.Int64N(int64(min(c.attempts-1, 50)) * int64(200*time.Microsecond))))
	}
	return true
}
