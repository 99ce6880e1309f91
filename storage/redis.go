package storage

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-dcr/caddy-dcr/internal/strlist"
)

// RedisOptions configures the connection to Redis. Several addresses mean a
// cluster, a master name means Sentinel (the addresses are then the
// sentinels'), one address a single node.
type RedisOptions struct {
	Addrs      []string
	Username   string
	Password   string
	DB         int
	MasterName string
	// SentinelUsername and SentinelPassword authenticate to the sentinels.
	SentinelUsername string
	SentinelPassword string
	TLS              *tls.Config
	// Timeout bounds dialing, each read and each write; requests that hit it
	// fail fast with an UnavailableError instead of hanging. Default
	// DefaultRedisTimeout.
	Timeout time.Duration
	// WaitReplicas, when positive, makes every write of a client (create,
	// update, delete) wait until that many replicas have it (Redis WAIT)
	// before it counts as done; a write they do not confirm within
	// WaitTimeout (default: half of Timeout, and less than Timeout) fails
	// as unavailable. Not with Redis Cluster (ignored there): its client
	// splits a pipeline by node, and a WAIT, which has no key, would go to
	// any node rather than the one that took the writes.
	WaitReplicas int
	WaitTimeout  time.Duration
	// Name says which Redis the pool's own warnings are about (its
	// addresses, as the operator configured them), passed to the warner.
	Name string
}

// RedisPool is one go-redis client (and its connection pool). Several stores
// with different key prefixes share it.
type RedisPool struct {
	rdb     redis.UniversalClient
	b       *batcher // reads, counters, and writes when nothing waits for replicas
	bw      *batcher // writes of records: b, or one that waits (WaitReplicas)
	reaper  *reaper
	timeout time.Duration
	name    string       // RedisOptions.Name
	cluster bool         // a Redis Cluster client (several addresses, no master name)
	holds   atomic.Int64 // see Hold
	// tx is set once the access check found that the user may run MULTI
	// and EXEC (never on a cluster): creates of clients that do not expire
	// then run as a transaction (see RedisStore.createTx).
	tx atomic.Bool

	accessChecked sync.Map // key prefixes CheckAccess was called for
}

// Hold marks the pool as in use by a request until Release: Retire does
// not close it meanwhile, whatever the request does before and between its
// commands. (Two methods rather than one returning its release: that
// function would be allocated on every request.)
func (p *RedisPool) Hold() { p.holds.Add(1) }

// Release ends a Hold.
func (p *RedisPool) Release() { p.holds.Add(-1) }

// IsCluster reports whether addresses and a master name make a Redis
// Cluster client: several addresses without Sentinel, as go-redis's
// NewUniversalClient decides.
func IsCluster(addrs []string, masterName string) bool {
	return len(addrs) > 1 && masterName == ""
}

// NewRedisPool creates the client. It does no I/O: go-redis dials lazily, so a
// configuration with an unreachable Redis still loads and recovers by itself.
func NewRedisPool(o RedisOptions) *RedisPool {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultRedisTimeout
	}
	var watch *masterWatch
	var dialer func(context.Context, string, string) (net.Conn, error)
	if o.MasterName != "" {
		watch = newMasterWatch(o, timeout)
		dialer = watch.dialer
	}
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{
		Dialer:     dialer,
		Addrs:      o.Addrs,
		Username:   o.Username,
		Password:   o.Password,
		DB:         o.DB,
		MasterName: o.MasterName,
		// The sentinels' own credentials; go-redis sends none to them
		// otherwise (Password is the master's).
		SentinelUsername: o.SentinelUsername,
		SentinelPassword: o.SentinelPassword,
		TLSConfig:        o.TLS,
		DialTimeout:      timeout,
		// One dial per attempt: go-redis would otherwise dial up to five
		// times, 100ms apart, and a refused connection would hold a
		// request well past its 503 for nothing.
		DialerRetries: 1,
		ReadTimeout:   timeout,
		WriteTimeout:  timeout,
		PoolTimeout:   timeout,
		// The batcher gives each pipeline a deadline of one timeout.
		ContextTimeoutEnabled: true,
		// No retries: go-redis would resend a command whose reply timed
		// out, and the scripts are not safe to run twice (a create would
		// leave an orphan and report "exists", an update would find its own
		// write and report a conflict). A connection gone stale across a
		// Redis restart is noticed by the pool before reuse. The cluster
		// client resends regardless of this; the batcher marks every
		// command noRetry for it.
		MaxRetries: -1,
		// Sentinel: follow failovers; cluster: route reads to masters so a
		// read right after a write sees it.
		ReadOnly: false,
		// Pipelines on the one pool, as single commands: go-redis would
		// otherwise give them a pool of their own, whose connections a
		// stalled Redis never gets a pipeline's commands through (a new
		// connection's handshake times out first), and which, after a
		// Sentinel failover, reaches the new master at another moment
		// than the main pool (reads failed on for half a second after
		// registrations had recovered).
		PipelinePoolSize: -1,
	})
	b := newBatcher(rdb, timeout)
	bw := b
	cluster := IsCluster(o.Addrs, o.MasterName)
	if o.WaitReplicas > 0 && !cluster {
		bw = newBatcher(rdb, timeout)
		bw.waitReplicas, bw.waitTimeout = o.WaitReplicas, o.WaitTimeout
		// WAIT's reply must come within a read's timeout; WAIT 0 would
		// block for ever.
		if bw.waitTimeout <= 0 || bw.waitTimeout >= timeout {
			bw.waitTimeout = timeout / 2
		}
		bw.waitTimeout = max(bw.waitTimeout.Round(time.Millisecond), time.Millisecond)
	}
	if watch != nil {
		go watch.run(b.stopped)
	}
	return &RedisPool{rdb: rdb, b: b, bw: bw, reaper: &reaper{stopped: b.stopped, waits: reapWaits}, timeout: timeout, name: o.Name, cluster: cluster}
}

// SetLogger sends go-redis's own messages (failed dials, pool events) to log
// instead of standard error, where Caddy's log configuration cannot reach
// them and an outage would print a line per request. go-redis has one
// logger per process, so this is process-wide.
func SetLogger(log func(msg string)) {
	redis.SetLogger(printfLogger(log))
}

// SetWarner sends this package's own warnings (a store that had to leave
// something undone) to warn, with the RedisOptions.Name of the Redis they
// are about ("" when about none). Process-wide, like SetLogger.
func SetWarner(warn func(msg, redis string)) { warner.Store(&warn) }

var warner atomic.Pointer[func(msg, redis string)]

func logf(format string, args ...any) { warnAt("", format, args...) }

// warnAt is logf for a warning about the Redis named where.
func warnAt(where, format string, args ...any) {
	if w := warner.Load(); w != nil {
		(*w)(fmt.Sprintf(format, args...), where)
	}
}

type printfLogger func(string)

func (l printfLogger) Printf(_ context.Context, format string, v ...any) {
	l(fmt.Sprintf(format, v...))
}

// Client exposes the underlying client (tests, health checks).
func (p *RedisPool) Client() redis.UniversalClient { return p.rdb }

// Destruct closes the client; it satisfies caddy.Destructor so the pool can
// live in a caddy.UsagePool without this package importing Caddy.
func (p *RedisPool) Destruct() error {
	p.b.close()
	p.bw.close()
	return p.rdb.Close()
}

// Retire closes the pool once nothing uses it any more, in the
// background: when no request holds it (Hold), no command has been in
// flight for a timeout (a request the old server accepted may reach the
// handler just after the check) and no reap is pending; after retireMax at
// the latest. Caddy cleans a replaced config's modules up while its
// servers still finish the requests they had; closing at once would fail
// those (503) and drop the reaps of registrations a stalled Redis may
// still carry out, leaving orphans.
//
// hint, when not nil, says for a store (its key prefix) how to remove the
// records of the reaps still pending, given their ids: only the owner of
// the records knows what they are and how its users remove them.
func (p *RedisPool) Retire(hint func(store string, ids []string) string) {
	if byStore, listed, n := p.reaper.ids(maxLoggedReaps); n > 0 {
		// The reaps live in this process only: if Caddy is stopping, it
		// exits without them, and a record that shows up afterwards stays.
		// Its id is not a secret, and nobody was given it.
		stores := slices.Sorted(maps.Keys(byStore))
		parts := make([]string, len(stores))
		for i, store := range stores {
			if hint != nil {
				parts[i] = hint(store, byStore[store])
			} else {
				parts[i] = fmt.Sprintf("store %q: %s", store, strings.Join(byStore[store], " "))
			}
		}
		more := ""
		if n > listed {
			more = fmt.Sprintf(" (and %d more)", n-listed)
		}
		warnAt(p.name, "redis: %d writes answered 503 may still be carried out by Redis and are to be undone if they show up (within about a minute); if Caddy exits before that, once it runs again remove any of these that exist: %s%s",
			n, strings.Join(parts, "; "), more)
	}
	go func() {
		deadline := time.Now().Add(retireMax)
		tick := time.NewTicker(retireTick)
		defer tick.Stop()
		for now := range tick.C {
			if p.holds.Load() == 0 && p.b.idleFor(p.timeout) && p.bw.idleFor(p.timeout) && !p.reaper.busy() || now.After(deadline) {
				break
			}
		}
		_ = p.Destruct()
	}()
}

// maxLoggedReaps bounds the ids Retire's warning lists.
const maxLoggedReaps = 100

// retireMax bounds how long a retired pool stays open: past the reaper's
// whole schedule (about a minute), with room for the requests before it.
var (
	retireMax  = 2 * time.Minute
	retireTick = 50 * time.Millisecond
)

// configRefused reports an answer that asking again will not change: the
// command is unknown or renamed ("ERR unknown command"), or not allowed
// (NOPERM). Other error replies are passing states (LOADING, BUSY,
// MASTERDOWN, CLUSTERDOWN, a password being rotated) and are retried.
func configRefused(err error) bool { return errorReply(err, "ERR", "NOPERM") }

// errorReply reports an error reply from Redis that starts with one of
// the prefixes (its error code).
func errorReply(err error, prefixes ...string) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := err.Error()
	return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(msg, p) })
}

// WatchEviction first asks evictionFirst after the pool was made, so that
// loading a config (caddy validate, adapt) does no network I/O, then every
// evictionRetry while Redis is unreachable.
var (
	evictionFirst = time.Second
	evictionRetry = 30 * time.Second
)

// WatchEviction asks Redis for its maxmemory-policy, in the background, and
// calls warn with it once if it is anything but noeviction: with an
// evicting policy, Redis drops keys when it reaches maxmemory, and
// registered clients (every policy may pick them, the volatile ones those
// with a lifetime) and index entries would silently disappear. While Redis
// is unreachable it asks again every evictionRetry. A server that refuses
// CONFIG (managed services often do) is asked with INFO; one that refuses
// both is reported to skip and not asked again. It stops when the pool is
// closed.
func (p *RedisPool) WatchEviction(warn func(policy string), skip func(err error)) {
	p.askInBackground(func(ctx context.Context) bool {
		pol, final, err := p.evictionPolicy(ctx)
		switch {
		case err == nil:
			if pol != "" && pol != "noeviction" {
				warn(pol)
			}
			return true
		case final:
			skip(err)
			return true
		}
		return false
	})
}

// askInBackground calls ask evictionFirst from now, then every
// evictionRetry until it reports an answer (Redis was unreachable until
// then) or the pool is closed; each call has 5 s.
func (p *RedisPool) askInBackground(ask func(ctx context.Context) (answered bool)) {
	first, retry := evictionFirst, evictionRetry
	go func() {
		for wait := first; ; wait = retry {
			select {
			case <-p.b.stopped:
				return
			case <-time.After(wait):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			answered := ask(ctx)
			cancel()
			if answered {
				return
			}
		}
	}()
}

// evictionPolicy reads maxmemory-policy with CONFIG GET or, where CONFIG
// is refused (managed services rename it, ACLs leave it out as
// dangerous), from INFO memory. final reports an answer that asking again
// will not change: a policy, or refusals of both.
func (p *RedisPool) evictionPolicy(ctx context.Context) (policy string, final bool, err error) {
	m, err := p.rdb.ConfigGet(ctx, "maxmemory-policy").Result()
	if err == nil {
		return m["maxmemory-policy"], true, nil
	}
	if !configRefused(err) {
		return "", false, err
	}
	info, ierr := p.rdb.Info(ctx, "memory").Result()
	if ierr != nil {
		return "", configRefused(ierr), fmt.Errorf("CONFIG GET maxmemory-policy: %w; INFO memory: %w", err, ierr)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "maxmemory_policy:"); ok {
			return v, true, nil
		}
	}
	return "", true, fmt.Errorf("CONFIG GET maxmemory-policy: %w; INFO memory does not say", err)
}

// Ping checks connectivity.
func (p *RedisPool) Ping(ctx context.Context) error {
	if err := p.rdb.Ping(ctx).Err(); err != nil {
		return &UnavailableError{Op: "ping", Err: err}
	}
	return nil
}

// Store returns the store whose keys all start with keyPrefix. Every key of
// one store carries the same hash tag, so the scripts that update a record
// and its indexes together also run on Redis Cluster: one store lives in one
// hash slot, which is the price of atomic caps and indexes.
func (p *RedisPool) Store(keyPrefix string) *RedisStore {
	tag := strings.TrimRight(keyPrefix, ":")
	if tag == "" {
		tag = "dcr"
	}
	return &RedisStore{rdb: p.rdb, b: p.b, bw: p.bw, reaper: p.reaper, pool: p, prefix: keyPrefix, base: keyPrefix + "{" + tag + "}:"}
}

// RedisStore implements Store on Redis. Layout, with base = prefix{tag}: :
//
//	base r:<id>   string: the record's header (format, revision, expiry),
//	              its tags, then its data (see encodeRecord)
//	base t:<tag>  sorted set of ids, scored by their expiry in Unix ms; an id
//	              that never expires by neverScore plus the time it was
//	              added (see luaTagAdd)
//	prefix h:{<key>}  rate-limit counter of one window
//
// A record is one string rather than a hash: Redis stores and serves it
// with one allocation and no field lookups, and Get is a plain GET.
type RedisStore struct {
	rdb    redis.UniversalClient
	b      *batcher // see RedisPool
	bw     *batcher
	reaper *reaper
	pool   *RedisPool // its transactions' switch (tx) and access checks
	prefix string
	base   string

	// fullCaps holds, for a while, the tags of caps a transaction found
	// full (tag → Unix ms until when): creates under them go to the
	// script straight away, instead of a transaction, its undo and the
	// script, which would make every refusal cost three round trips.
	fullMu   sync.Mutex
	fullCaps map[string]int64

	// pruneAt is when the next creates may prune their tag sets (Unix
	// ns): see prunePeriodically.
	pruneAt atomic.Int64

	// tagKeys caches the boxed keys of the tags in use (a handful: all
	// clients, plugins, owners), copied on write, so that a command does
	// not build them again.
	tagMu   sync.Mutex
	tagKeys atomic.Pointer[map[string]any]
}

var _ Store = (*RedisStore)(nil)

func (s *RedisStore) recordKey(id string) string { return s.base + "r:" + id }
func (s *RedisStore) tagKey(tag string) string   { return s.base + "t:" + tag }
func (s *RedisStore) hitKey(key string) string   { return s.prefix + "h:{" + key + "}" }

// maxCachedTagKeys bounds tagKeys: owners are unbounded, the cache is not.
const maxCachedTagKeys = 256

// tagKeyArg returns tagKey(tag) as a command argument.
func (s *RedisStore) tagKeyArg(tag string) any {
	cur := s.tagKeys.Load()
	if cur != nil {
		if k, ok := (*cur)[tag]; ok {
			return k
		}
	}
	var k any = s.tagKey(tag)
	s.tagMu.Lock()
	defer s.tagMu.Unlock()
	cur = s.tagKeys.Load()
	if cur == nil || len(*cur) < maxCachedTagKeys {
		next := make(map[string]any, 1+len(tagKeysOf(cur)))
		for t, v := range tagKeysOf(cur) {
			next[t] = v
		}
		next[tag] = k
		s.tagKeys.Store(&next)
	}
	return k
}

func tagKeysOf(m *map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	return *m
}

// A record's value: a fixed header, its tags, then its data.
//
//	[0]      recordFormat
//	[1:9]    revision, uint64 big-endian
//	[9:17]   expiry, Unix ms, int64 big-endian (0: never)
//	uvarint  length of the tags, then the tags (internal/strlist)
//	rest     data
//
// The scripts compare the first revHeaderLen bytes (format and revision)
// to detect concurrent changes; they never parse the rest.
const (
	recordFormat    = 1
	revHeaderLen    = 9
	recordHeaderLen = 17
)

// revHeader returns the format byte and the revision as the scripts compare them.
func revHeader(rev int64) string {
	var b [revHeaderLen]byte
	b[0] = recordFormat
	binary.BigEndian.PutUint64(b[1:], uint64(rev))
	return string(b[:])
}

// encodeRecord returns the stored value of rec with revision rev.
func encodeRecord(rec *Record, rev int64) []byte { return appendRecord(nil, rec, rev) }

// appendRecord appends the stored value of rec with revision rev to b.
func appendRecord(b []byte, rec *Record, rev int64) []byte {
	tagLen := strlist.Size(rec.Tags)
	b = slices.Grow(b, recordHeaderLen+binary.MaxVarintLen64+tagLen+len(rec.Data))
	b = append(b, recordFormat)
	b = binary.BigEndian.AppendUint64(b, uint64(rev))
	b = binary.BigEndian.AppendUint64(b, uint64(expiryMillis(rec.ExpiresAt)))
	b = binary.AppendUvarint(b, uint64(tagLen))
	b = strlist.Append(b, rec.Tags)
	return append(b, rec.Data...)
}

// stringBytes returns the bytes of s without copying them. Record.Data is
// never written to once read (Store's contract), and a read's reply string
// is used by nothing else, so the copy would only cost an allocation per
// read.
func stringBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// decodeRecord reads a stored value; ok is false when it is not one.
func decodeRecord(id, v string) (rec *Record, exp int64, ok bool) {
	if len(v) < recordHeaderLen || v[0] != recordFormat {
		return nil, 0, false
	}
	rev := int64(binary.BigEndian.Uint64([]byte(v[1:9])))
	exp = int64(binary.BigEndian.Uint64([]byte(v[9:17])))
	v = v[recordHeaderLen:]
	n, k := strlist.Uvarint(v)
	if k <= 0 || uint64(len(v)-k) < n {
		return nil, 0, false
	}
	tags, ok := strlist.Parse(v[k : k+int(n)])
	if !ok {
		return nil, 0, false
	}
	return &Record{ID: id, Data: stringBytes(v[k+int(n):]), Tags: tags, Rev: rev, ExpiresAt: fromMillis(exp)}, exp, true
}

// tagAdd is shared by the create and update scripts: it adds id to a tag set
// scored by its expiry and keeps the set's own TTL no shorter than its
// longest-lived member, so that sets of expiring records do not outlive them.
// exp is the expiry as sent (a string, passed on as is) and expn its value.
//
// An id that never expires is scored neverScore + now rather than +inf:
// still above any expiry (so pruning and counting by score are unchanged,
// and +inf from older versions still reads as never), but ascending, so a
// new id goes at the end of the skiplist, along nodes that are in cache.
// Equal scores would order ids by their random bytes and make every insert
// a walk through cold memory: most of what a registration cost Redis.
const luaTagAdd = luaRefusal + `
-- tagchecks adds to t what tagadd runs on key, for refusal.
local function tagchecks(t, key, expn)
  if expn == 0 then
    t[#t + 1] = {'ZADD', key, '0', 'x'}
    t[#t + 1] = {'PERSIST', key}
  else
    t[#t + 1] = {'ZCOUNT', key, '0', '0'}
    t[#t + 1] = {'ZREMRANGEBYRANK', key, '0', '0'}
    t[#t + 1] = {'PTTL', key}
    t[#t + 1] = {'ZADD', key, '0', 'x'}
    t[#t + 1] = {'PEXPIREAT', key, '0'}
  end
end
-- prune removes up to 256 of the ids expired by now (the lowest scores):
-- the ids of a whole store that expired together would otherwise be
-- removed by one call, Redis serving nobody meanwhile (50 ms for 100,000).
-- Those left are not counted (ZCOUNT of live scores) and go with the next.
local function prune(key, now)
  local n = redis.call('ZCOUNT', key, '-inf', now)
  if n > 0 then return redis.call('ZREMRANGEBYRANK', key, 0, math.min(n, 256) - 1) end
  return 0
end
-- notIndex returns the WRONGTYPE error of the first of KEYS[from..to]
-- that holds something else than a sorted set (a value set by hand), to
-- be returned before anything is written: a script stops at its first
-- error, keeping what it wrote (a record in no index, without expiry).
local function notIndex(from, to)
  for i = from, to do
    local r = redis.pcall('ZCOUNT', KEYS[i], '0', '0')
    if type(r) == 'table' and r.err then return errorAt(r, KEYS[i]) end
  end
  return nil
end
-- expireIfAllExpire gives a set without expiry (ttl -1: an id that never
-- expires joined it once) the expiry of its last id when none of its ids
-- is scored never any more: an update that gave the last such id an
-- expiry, or took it out of the set, would otherwise leave the set, and
-- its entries once they expire, for good. Best effort (pcall), as the
-- delete script's give-back: ZRANGE is no command a create needs.
local function expireIfAllExpire(key, ttl)
  if ttl ~= -1 then return end
  local top = redis.pcall('ZRANGE', key, -1, -1, 'WITHSCORES')
  if type(top) == 'table' and top.err == nil and top[2] and tonumber(top[2]) < ` + neverScore + ` then
    redis.call('PEXPIREAT', key, top[2])
  end
end
local function tagadd(key, id, exp, expn, now)
  if expn == 0 then
    redis.call('ZADD', key, ` + neverScore + ` + tonumber(now), id)
    redis.call('PERSIST', key)
  else
    -- Expiring ids leave the set only when pruned: do it here, or a set
    -- with no cap to prune it would keep every id that ever expired.
    prune(key, now)
    local ttl = redis.call('PTTL', key)
    redis.call('ZADD', key, exp, id)
    if ttl == -2 or (ttl >= 0 and tonumber(now) + ttl < expn) then
      redis.call('PEXPIREAT', key, exp)
    else
      expireIfAllExpire(key, ttl)
    end
  end
end
`

// luaRefusal is the start of the record scripts that write more than once
// (hitScript checks its own two commands), and of the access check. Redis
// checks a script's command against the ACL only when it reaches it, and
// does not undo the writes made before one it refuses: a grant taken from
// the store's user while Caddy runs left a registration answered 503
// stored, listed and counted. refused(cmds)
// returns those of cmds ({name, key, args...}) the user may not run, none
// on Redis before 7 (no redis.acl_check_cmd: not checked there), and
// refusal(cmds) the error reply for the first of them (nil: all allowed),
// which a script returns before its first write, so that it writes
// nothing. The reply's NOPERM code makes the store answer unavailable at
// once.
const luaRefusal = `
local function refused(cmds)
  local out = {}
  if not redis.acl_check_cmd then return out end
  for _, c in ipairs(cmds) do
    local ok, allowed = pcall(redis.acl_check_cmd, unpack(c))
    if not ok or not allowed then out[#out + 1] = c end
  end
  return out
end
local function refusal(cmds)
  local c = refused(cmds)[1]
  if c then
    return redis.error_reply('NOPERM this user has no permissions to run the ' .. c[1] ..
      ' command on ' .. c[2] .. ', which this script needs (nothing was written)')
  end
  return nil
end
-- errorAt is the error reply r (of a pcall on key) naming key, which tells
-- the caller what is damaged (a key of another type, set by hand).
local function errorAt(r, key)
  return redis.error_reply(r.err .. ' (at ' .. key .. ')')
end
-- currentRev reads the revision header of a record (its first read, before
-- refusal can run), or returns the error reply saying the read was refused
-- as refusal says it, rather than Redis's own "can't run this command".
local function currentRev(key, last)
  local cur = redis.pcall('GETRANGE', key, 0, last)
  if type(cur) == 'table' and cur.err then
    return refusal({{'GETRANGE', key, '0', '0'}}) or errorAt(cur, key)
  end
  return cur
end
`

// pruneScript prunes one tag set (KEYS[1]) of up to 256 ids expired by
// ARGV[1] (Unix ms) and returns how many it removed: see prunePeriodically.
var pruneScript = newScript(luaTagAdd + `return prune(KEYS[1], ARGV[1])`)

// pruneEvery is how often a store's creates have the tag sets they join
// pruned of expired ids, and prunePasses bounds a pruning's calls of the
// script per set.
const (
	pruneEvery  = time.Minute
	prunePasses = 64
)

// prunePeriodically has the tag sets of a record just created pruned, in
// the background, at most once every pruneEvery. Expired ids leave a set
// only when pruned, and only registrations of expiring records prune, in
// the create script: the transaction that creates the others cannot. Were
// those the only ones after a while (an IAM handler with client_lifetime
// removed), the ids of every client that ever expired would stay in the
// set of all clients, costing memory (counts and lists read by score, and
// skip them). Each script call removes at most 256, so that Redis is never
// held up long; a pruning makes up to prunePasses of them per set.
func (s *RedisStore) prunePeriodically(tags []string) {
	now := time.Now()
	next := s.pruneAt.Load()
	if now.UnixNano() < next || !s.pruneAt.CompareAndSwap(next, now.Add(pruneEvery).UnixNano()) {
		return
	}
	tags = slices.Clone(tags)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), pruneEvery)
		defer cancel()
		at := strconv.FormatInt(now.UnixMilli(), 10)
		for _, t := range tags {
			key := s.tagKey(t)
			for range prunePasses {
				n, err := pruneScript.run(ctx, s.b, []any{"evalsha", pruneScript.shaArg, 1, key, at})
				if err != nil || n < 256 {
					break // best effort: the next pruning tries again
				}
			}
		}
	}()
}

// neverScore is added to the time an id that never expires joins a tag set
// to give its score: 10^15 ms is more than 30,000 years from the epoch, and
// the sum stays an exact integer in a double. neverScoreMs is the same
// number for the transaction (createTx).
const (
	neverScore   = "1e15"
	neverScoreMs = int64(1e15)
)

// KEYS: record, nt tag keys, then cap tag keys.
// ARGV: id, value, exp, now, nt, cap maxima..., a random number.
// Returns 1 (created), 0 (exists) or -k (cap k, 1-based, reached).
//
// The SET comes first, and a cap that is reached undoes it: Redis refuses a
// script's writes when it is out of memory (maxmemory, noeviction) only at
// the script's first write command, and pruning a cap's set first would let
// the record through over the limit.
//
// A cap that looks reached first drops, of up to 64 of its ids from a
// random place, those whose record is gone without them: evicted (an
// eviction policy other than noeviction, which the store warns about) or
// deleted by hand. They never expire by score, and would hold the cap
// reached for good; each refused registration clears some more. Records
// share the tag set's hash tag, so the script may read them on a cluster.
var createScript = newScript(luaTagAdd + `
local function live(key, now) return redis.call('ZCOUNT', key, '(' .. now, '+inf') end
-- dangling is best effort (pcall): a command refused here (a user
-- granted the commands of an older version) must not stop the script
-- after its SET, which would leave a record without index or expiry.
local function dangling(key, base, r)
  local n, from = redis.pcall('ZCARD', key), 0
  if type(n) ~= 'number' then return 0 end
  if n > 64 then from = r % (n - 63) end
  local ids = redis.pcall('ZRANGE', key, from, from + 63)
  if type(ids) ~= 'table' or ids.err then return 0 end
  local gone = 0
  for _, id in ipairs(ids) do
    if redis.pcall('EXISTS', base .. id) == 0 and redis.pcall('ZREM', key, id) == 1 then
      gone = gone + 1
    end
  end
  return gone
end
local nt = tonumber(ARGV[5])
local expn = tonumber(ARGV[3])
local checks = {{'SET', KEYS[1], 'x', 'NX'}}
if #KEYS > 1 + nt then
  checks[#checks + 1] = {'DEL', KEYS[1]}
  for i = 2 + nt, #KEYS do
    checks[#checks + 1] = {'ZCOUNT', KEYS[i], '0', '0'}
    checks[#checks + 1] = {'ZREMRANGEBYRANK', KEYS[i], '0', '0'}
  end
end
if expn > 0 then checks[#checks + 1] = {'PEXPIREAT', KEYS[1], '0'} end
for i = 2, 1 + nt do tagchecks(checks, KEYS[i], expn) end
local refused = refusal(checks) or notIndex(2, #KEYS)
if refused then return refused end
if not redis.call('SET', KEYS[1], ARGV[2], 'NX') then return 0 end
local base = string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[1])
for i = 2 + nt, #KEYS do
  local k = i - 1 - nt
  local max = tonumber(ARGV[5 + k])
  prune(KEYS[i], ARGV[4])
  if live(KEYS[i], ARGV[4]) >= max and
     (dangling(KEYS[i], base, tonumber(ARGV[#ARGV])) == 0 or live(KEYS[i], ARGV[4]) >= max) then
    redis.call('DEL', KEYS[1])
    return -k
  end
end
if expn > 0 then redis.call('PEXPIREAT', KEYS[1], ARGV[3]) end
for i = 2, 1 + nt do tagadd(KEYS[i], ARGV[1], ARGV[3], expn, ARGV[4]) end
return 1
`)

// KEYS: record, nr removed tag keys, then current tag keys.
// ARGV: id, expected revision header, new value, exp, now, nr.
// Returns 1 (updated), 0 (gone) or -1 (revision changed).
var updateScript = newScript(luaTagAdd + `
local cur = currentRev(KEYS[1], ` + strconv.Itoa(revHeaderLen-1) + `)
if type(cur) == 'table' then return cur end
if cur == '' then return 0 end
if cur ~= ARGV[2] then return -1 end
local expn = tonumber(ARGV[4])
local nr = tonumber(ARGV[6])
local checks = {{'SET', KEYS[1], 'x'}}
if expn > 0 then checks[#checks + 1] = {'PEXPIREAT', KEYS[1], '0'} end
for i = 2, 1 + nr do
  checks[#checks + 1] = {'ZREM', KEYS[i], 'x'}
  checks[#checks + 1] = {'PTTL', KEYS[i]}
  checks[#checks + 1] = {'PEXPIREAT', KEYS[i], '0'}
end
for i = 2 + nr, #KEYS do tagchecks(checks, KEYS[i], expn) end
local refused = refusal(checks) or notIndex(2, #KEYS)
if refused then return refused end
redis.call('SET', KEYS[1], ARGV[3])
if expn > 0 then redis.call('PEXPIREAT', KEYS[1], ARGV[4]) end
for i = 2, 1 + nr do
  redis.call('ZREM', KEYS[i], ARGV[1])
  expireIfAllExpire(KEYS[i], redis.call('PTTL', KEYS[i]))
end
for i = 2 + nr, #KEYS do tagadd(KEYS[i], ARGV[1], ARGV[4], expn, ARGV[5]) end
return 1
`)

// KEYS: record, tag keys. ARGV: id, expected revision header. Removes the
// record if it holds that revision, and the id from the tag sets (also when
// the record is gone: its entries would only dangle), giving back to a set
// whose entries all expire the expiry of the last of them, which an id
// that never expired had taken away (luaTagAdd's PERSIST). Returns 1
// (deleted), 0 (no record) or -1 (revision changed: nothing removed).
var deleteScript = newScript(luaRefusal + `
local cur = currentRev(KEYS[1], ` + strconv.Itoa(revHeaderLen-1) + `)
if type(cur) == 'table' then return cur end
if cur ~= '' and cur ~= ARGV[2] then return -1 end
local checks = {}
if cur ~= '' then checks[1] = {'DEL', KEYS[1]} end
for i = 2, #KEYS do
  checks[#checks + 1] = {'ZREM', KEYS[i], 'x'}
  checks[#checks + 1] = {'PTTL', KEYS[i]}
  checks[#checks + 1] = {'PEXPIREAT', KEYS[i], '0'}
end
local refused = refusal(checks)
if refused then return refused end
if cur ~= '' then redis.call('DEL', KEYS[1]) end
for i = 2, #KEYS do
  -- An index key holding another type (set by hand) has no entry to
  -- remove, and must not stop the script halfway.
  if type(redis.pcall('ZREM', KEYS[i], ARGV[1])) == 'number' then
    -- Giving the expiry back is best effort, as dangling's clean-up is: a
    -- user granted an older version's commands (no ZRANGE) can delete,
    -- and the set then keeps no expiry until its entries are pruned.
    local top = redis.pcall('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
    if top.err == nil and top[2] and tonumber(top[2]) < ` + neverScore + ` and redis.call('PTTL', KEYS[i]) == -1 then
      redis.call('PEXPIREAT', KEYS[i], top[2])
    end
  end
end
if cur == '' then return 0 end
return 1
`)

// KEYS: counter. ARGV: window ms. Returns {count, ms left in the window}.
//
// A PTTL or PEXPIRE refused after the INCR would leave a counter that never
// expires, its address refused for good once over the limit: both are
// checked first (see luaRefusal; INCR, the first write, writes nothing when
// refused). Directly, not through refusal's tables, which made the script
// half again as costly for Redis, and it runs on every registration.
var hitScript = newScript(`
if redis.acl_check_cmd and not (redis.acl_check_cmd('PTTL', KEYS[1]) and redis.acl_check_cmd('PEXPIRE', KEYS[1], '1')) then
  return redis.error_reply('NOPERM this user has no permissions to run the PTTL or PEXPIRE command on ' ..
    KEYS[1] .. ', which this script needs (nothing was written)')
end
local c = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if c == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {c, ttl}
`)

func unavailable(op string, err error) error {
	return &UnavailableError{Op: op, Err: err}
}

// asOp names an outage met by a step of op (a marker's delete within an
// update) after op: the outage log tells outages of deletes from others.
func asOp(err error, op string) error {
	var u *UnavailableError
	if errors.As(err, &u) && u.Op != op {
		c := *u
		c.Op = op
		return &c
	}
	return err
}

// expiryArg is the expiry as a script argument.
func expiryArg(t time.Time) any {
	if ms := expiryMillis(t); ms != 0 {
		return ms
	}
	return "0"
}

// call holds the arguments of one command: they are passed as pointers
// (which go-redis writes without boxing them) and the whole is reused once
// the command has run.
type call struct {
	args   []any
	key    string
	id     string
	now    int64
	sample uint32 // where a create looks for dangling ids (createScript)
	value  recordValue
}

// recordValue is a record's stored form as a command argument.
type recordValue struct{ b []byte }

// MarshalBinary implements encoding.BinaryMarshaler, which go-redis writes as is.
func (v *recordValue) MarshalBinary() ([]byte, error) { return v.b, nil }

var callPool = sync.Pool{New: func() any { return &call{args: make([]any, 0, 16)} }}

func getCall() *call { return callPool.Get().(*call) }

// release returns c to the pool once its command has run; err is what
// running it returned. An abandoned command stays queued, pointing at c's
// arguments, until a leader drops it, so c is not reused then.
func (c *call) release(err error) {
	if abandoned(err) || cap(c.value.b) > 64<<10 || cap(c.args) > 256 {
		return
	}
	clear(c.args)
	c.args, c.key, c.id, c.value.b = c.args[:0], "", "", c.value.b[:0]
	callPool.Put(c)
}

// OpTimeout is the configured timeout, plus the wait for replicas when
// writes wait for them (see storage.OpTimeout).
func (s *RedisStore) OpTimeout() time.Duration { return s.bw.maxWait + s.bw.waitTimeout }

// Create implements Store.
func (s *RedisStore) Create(ctx context.Context, rec *Record, caps ...Cap) error {
	c := getCall()
	c.key, c.id, c.now = s.recordKey(rec.ID), rec.ID, time.Now().UnixMilli()
	c.value.b = appendRecord(c.value.b[:0], rec, 1)
	var n int64
	var err error
	if s.txFits(rec, caps) {
		n, err = s.createTx(ctx, c, rec, caps)
	} else {
		n, err = s.createScripted(ctx, c, rec, caps)
	}
	if err = unconfirmed(n, err); notReplicated(err) != nil {
		// The client may exist on the master, but a failover could lose
		// it: 503, and an orphan nobody holds credentials for.
		if rec.FreshID {
			s.reapLater(rec.ID, string(c.value.b), slices.Clone(rec.Tags))
		}
		c.release(err)
		return unavailable("create", err)
	}
	if err != nil && outcomeOpen(err) {
		if s.holds(ctx, c.key, c.value.b) {
			n, err = 1, nil
		} else if rec.FreshID {
			s.reapLater(rec.ID, string(c.value.b), slices.Clone(rec.Tags))
		}
	}
	c.release(err)
	if err != nil {
		return unavailable("create", s.damaged(err, ""))
	}
	switch {
	case n == 1:
		rec.Rev = 1
		s.prunePeriodically(rec.Tags)
		return nil
	case n == 0:
		return ErrExists
	case n < 0 && int(-n) <= len(caps):
		return &LimitError{Cap: caps[-n-1]}
	}
	return unavailable("create", errors.New("unexpected script result "+strconv.FormatInt(n, 10)))
}

// createScripted runs the create script: it serves every create that is
// no transaction (createTx), and decides for those a transaction could not
// settle, with conditions and reads inside the write: an expiry to set, a
// cap found full.
func (s *RedisStore) createScripted(ctx context.Context, c *call, rec *Record, caps []Cap) (int64, error) {
	nk := 1 + len(rec.Tags) + len(caps)
	c.args = append(c.args, "evalsha", createScript.shaArg, nk, &c.key)
	for _, t := range rec.Tags {
		c.args = append(c.args, s.tagKeyArg(t))
	}
	for _, cp := range caps {
		c.args = append(c.args, s.tagKeyArg(cp.Tag))
	}
	c.args = append(c.args, &c.id, &c.value, expiryArg(rec.ExpiresAt), &c.now, len(rec.Tags))
	for _, cp := range caps {
		c.args = append(c.args, cp.Max)
	}
	c.sample = rand.Uint32()
	c.args = append(c.args, &c.sample)
	return createScript.run(ctx, s.bw, c.args)
}

// txFits reports whether a create can run as a transaction instead of the
// script: nothing conditional to do (no expiry, whose index TTLs depend on
// what the sets hold), caps only on tags the record joins (see createTx),
// a fresh random id (the transaction's index entries are added even if
// the SET finds the id taken, harmless only when that cannot happen), and
// a user allowed MULTI and EXEC. Redis runs the transaction for about half
// of what the script costs it: most of a script's cost is the call into
// Lua and back for each command, not the commands.
func (s *RedisStore) txFits(rec *Record, caps []Cap) bool {
	if !rec.ExpiresAt.IsZero() || !rec.FreshID || !s.pool.tx.Load() {
		return false
	}
	for _, cp := range caps {
		if !slices.Contains(rec.Tags, cp.Tag) || s.capFull(cp.Tag) {
			return false
		}
	}
	return true
}

// fullCapFor is how long creates under a cap a transaction found full go
// to the script straight away.
const fullCapFor = time.Second

// capFull reports whether a transaction found the cap on tag full less
// than fullCapFor ago.
func (s *RedisStore) capFull(tag string) bool {
	s.fullMu.Lock()
	defer s.fullMu.Unlock()
	until, ok := s.fullCaps[tag]
	return ok && time.Now().UnixMilli() < until
}

// markCapFull records that a transaction found the cap on tag full. The
// memo holds at most 256 tags (owners are unbounded): past that, the
// expired ones go, and if none has, all of them.
func (s *RedisStore) markCapFull(tag string) {
	s.fullMu.Lock()
	defer s.fullMu.Unlock()
	now := time.Now().UnixMilli()
	if len(s.fullCaps) >= 256 {
		maps.DeleteFunc(s.fullCaps, func(_ string, until int64) bool { return until <= now })
		if len(s.fullCaps) >= 256 {
			clear(s.fullCaps)
		}
	}
	if s.fullCaps == nil {
		s.fullCaps = map[string]int64{}
	}
	s.fullCaps[tag] = now + fullCapFor.Milliseconds()
}

// createTx writes what the create script would for a record that txFits,
// in one MULTI/EXEC: the record (SET NX), then for each tag its index
// entry (ZADD NX, scored as luaTagAdd scores ids that never expire) and no
// TTL on the index (PERSIST), then for each cap the live entries of its
// tag (ZCOUNT), the new one included. Redis carries out all of it or, when
// it refuses a command as it queues (out of memory, ACL), none of it. It
// returns 1 (created), 0 (exists) or -k (cap k reached), as the script.
//
// A count over its cap means the create took a place it may not have:
// it is undone and the script decides, which prunes the set, drops index
// entries of vanished records and counts again. Transactions run one at a
// time, each counting those before it, so no create gets past a cap; a
// create that lands while another's undo is pending may be refused where
// the script alone, a moment later, would have let it through.
func (s *RedisStore) createTx(ctx context.Context, c *call, rec *Record, caps []Cap) (int64, error) {
	nt := len(rec.Tags)
	pre, exec, err := runTx(ctx, s.bw, func() []redis.Cmder {
		cmds := make([]redis.Cmder, 0, 2+2*nt+len(caps))
		cmds = append(cmds, redis.NewStatusCmd(ctx, "multi"), redis.NewCmd(ctx, "set", &c.key, &c.value, "nx"))
		score := neverScoreMs + c.now
		for _, t := range rec.Tags {
			k := s.tagKeyArg(t)
			cmds = append(cmds, redis.NewCmd(ctx, "zadd", k, "nx", score, &c.id), redis.NewCmd(ctx, "persist", k))
		}
		if len(caps) > 0 {
			live := "(" + strconv.FormatInt(c.now, 10)
			for _, cp := range caps {
				cmds = append(cmds, redis.NewCmd(ctx, "zcount", s.tagKeyArg(cp.Tag), live, "+inf"))
			}
		}
		return cmds
	})
	if multiRefused(pre) {
		// The commands after MULTI ran one by one, as sent, without the
		// caps' check or the replicas' confirmation. A SET Redis refused
		// wrote nothing (nil: the id is taken). One that every command
		// after it completed stands when there was nothing to check or
		// wait for; otherwise it is undone and answered unavailable.
		if txACLRefused(pre[0].Err()) {
			// Only the ACL turns transactions off: a refusal that passes
			// (NOAUTH while a password changes, LOADING after a restart)
			// must not leave every later create on the costlier script.
			s.txRefused(pre[0].Err())
		}
		switch err := pre[1].Err(); {
		case err == redis.Nil:
			return 0, nil
		case err != nil && isReply(err):
			return 0, err
		}
		if len(caps) == 0 && s.bw.waitReplicas == 0 && !slices.ContainsFunc(pre[1:], func(cmd redis.Cmder) bool { return cmd.Err() != nil }) {
			return 1, nil // all written, and nothing else to know
		}
		if slices.ContainsFunc(pre[1:], func(cmd redis.Cmder) bool { err := cmd.Err(); return err != nil && !isReply(err) }) {
			// A reply lost: that command may still land.
			return 0, s.abandon(ctx, c, rec, pre[0].Err())
		}
		// Every command was answered, so nothing of it lands later: it is
		// undone, and left to the reaper only if the undo fails. With
		// transactions off for good (the ACL), the script makes it again.
		if txACLRefused(pre[0].Err()) {
			return s.recheck(ctx, c, rec, caps)
		}
		if err := s.undo(ctx, rec); err != nil {
			s.reapLater(rec.ID, string(c.value.b), slices.Clone(rec.Tags))
		}
		return 0, undoError{pre[0].Err()}
	}
	if txACLRefused(err) {
		// Nothing was done: the script, for this create too.
		s.txRefused(err)
		return s.createScripted(ctx, c, rec, caps)
	}
	res := exec.Val()
	if err != nil && len(caps) > 0 && outcomeOpen(err) {
		// Redis may have carried it out, and whether it went over a cap
		// is in the reply that was lost: a read-back would take it for
		// created. Undone, now and if it lands later.
		return 0, s.abandon(ctx, c, rec, err)
	}
	if err != nil && (notReplicated(err) == nil || len(res) == 0) {
		return 0, err
	}
	// The reply came (with wait_replicas, perhaps unconfirmed: err stays).
	if err := txReplies(res, pre[1:]); err != nil {
		if len(res) > 0 && res[0] == "OK" {
			// Redis ran the transaction and one of its commands failed
			// (WRONGTYPE at an index key set by hand): EXEC rolls nothing
			// back, so the record it made is undone, not left behind a 503
			// (by the reaper, if the undo fails).
			if uerr := s.undo(ctx, rec); uerr != nil {
				s.reapLater(rec.ID, string(c.value.b), slices.Clone(rec.Tags))
			}
			return 0, undoError{err}
		}
		return 0, err
	}
	if res[0] == nil {
		return 0, err
	}
	over := false
	for k, cp := range caps {
		if n, _ := res[1+2*nt+k].(int64); n > int64(cp.Max) {
			s.markCapFull(cp.Tag)
			over = true
		}
	}
	if over {
		return s.recheck(ctx, c, rec, caps)
	}
	return 1, err
}

// recheck undoes a create made as a transaction that went over a cap (its
// reply came: the record is there), or whose MULTI the ACL refused (its
// commands ran one by one, each answered), and has the script make it
// again, checking the caps exactly. An undo that fails leaves the record to the
// reaper (nobody has its id) and the create answered unavailable.
func (s *RedisStore) recheck(ctx context.Context, c *call, rec *Record, caps []Cap) (int64, error) {
	if err := s.undo(ctx, rec); err != nil {
		s.reapLater(rec.ID, string(c.value.b), slices.Clone(rec.Tags))
		return 0, undoError{err}
	}
	return s.createScripted(ctx, c, rec, caps)
}

// abandon gives up a create made as a transaction whose outcome is not
// known well enough to stand (its reply lost with caps to check, or that
// of one of its commands run one by one after MULTI was refused): what it
// may have written is undone, now and, by the reaper, if it lands later,
// and the create is answered unavailable. It is not made again under the
// same id: the transaction, or the undo, landing late would then find and
// change a record its client was told exists.
func (s *RedisStore) abandon(ctx context.Context, c *call, rec *Record, cause error) error {
	_ = s.undo(ctx, rec)
	s.reapLater(rec.ID, string(c.value.b), slices.Clone(rec.Tags))
	return undoError{cause}
}

// undo removes what a create made as a transaction wrote: the record if it
// holds the first revision, and the id's index entries, with the expiry
// its PERSIST took from an index (deleteScript). Only Redis's own reply
// counts: an undo whose reply was lost is reported failed, never read
// back as Delete does, as the record may be made again meanwhile
// (recheck).
func (s *RedisStore) undo(ctx context.Context, rec *Record) error {
	n, err := s.runDelete(ctx, rec.ID, rec.Tags, 1)
	if err == nil && n < 0 {
		err = errors.New("redis: the record changed before its undo")
	}
	return err
}

// undoError is the error of a create undone or whose undo failed
// (recheck, abandon): the record may well be in the store, but must not be
// read back as created.
type undoError struct{ err error }

func (e undoError) Error() string {
	return "redis: a create undone: " + e.err.Error()
}
func (e undoError) Unwrap() error { return e.err }

// runTx sends the commands build makes (MULTI, then those it queues)
// followed by EXEC through b, as one transaction, again while Redis refuses
// it for a moment (retryRefused; build makes new commands for each
// attempt), and returns the last attempt's commands and EXEC. An EXECABORT
// error is replaced by the refusal of the queued command that caused it
// (LOADING after a restart, OOM, NOPERM), which says why.
func runTx(ctx context.Context, b *batcher, build func() []redis.Cmder) ([]redis.Cmder, *redis.SliceCmd, error) {
	var pre []redis.Cmder
	var exec *redis.SliceCmd
	err := retryRefused(ctx, b, func() error {
		pre, exec = build(), redis.NewSliceCmd(ctx, "exec")
		err := b.doAfter(ctx, pre, exec)
		if err != nil && strings.HasPrefix(err.Error(), "EXECABORT") {
			for _, cmd := range pre[1:] {
				if cerr := cmd.Err(); cerr != nil && isReply(cerr) {
					return cerr
				}
			}
		}
		return err
	})
	return pre, exec, err
}

// multiRefused reports whether Redis refused a transaction's MULTI (the
// user lost +multi since the access check, a password just required, the
// data set loading): the commands after it then ran one by one, as sent,
// each with its own reply.
func multiRefused(pre []redis.Cmder) bool {
	err := pre[0].Err()
	return err != nil && isReply(err)
}

// txACLRefused reports whether the ACL refused EXEC itself: the
// transaction did nothing. (A refusal of a command it queued is one the
// script would meet too, and stays the create's error.)
func txACLRefused(err error) bool {
	return err != nil && isReply(err) && strings.Contains(err.Error(), "NOPERM") &&
		(strings.Contains(err.Error(), "'exec'") || strings.Contains(err.Error(), "'multi'"))
}

// txRefused turns transactions off for the store's pool after Redis
// refused one (err): the scripts serve every create from then on. The
// access check is forgotten, so that the next config load (caddy reload)
// asks again, and turns them back on if the user has MULTI and EXEC again.
func (s *RedisStore) txRefused(err error) {
	if s.pool.tx.CompareAndSwap(true, false) {
		s.pool.accessChecked.Clear()
		warnAt(s.pool.name, "Redis refused MULTI or EXEC (%v): registrations run the create script instead until a config reload finds them allowed again", err)
	}
}

// txReplies checks EXEC's replies: one for each of the commands
// queued, and none an error (a command that failed as it ran, on a key of
// the wrong type: the others still ran).
func txReplies(res []any, cmds []redis.Cmder) error {
	if len(res) != len(cmds) {
		return fmt.Errorf("redis: EXEC answered %d replies for %d commands", len(res), len(cmds))
	}
	for i, r := range res {
		if e, ok := r.(error); ok {
			// Named with its key, which says what to repair.
			args := cmds[i].Args()
			key := ""
			if len(args) > 1 {
				key = " " + argString(args[1])
			}
			return fmt.Errorf("redis: %s%s in a transaction: %w", cmds[i].Name(), key, e)
		}
	}
	return nil
}

// argString is a command argument as sent: the key arguments built here
// are strings or pointers to them.
func argString(a any) string {
	switch v := a.(type) {
	case string:
		return v
	case *string:
		return *v
	}
	return fmt.Sprint(a)
}

// damaged makes Redis's WRONGTYPE reply (a key holding another type, set
// by hand) a damaged record when the key is id's record, which the scripts
// name ("(at key)", see errorAt), and a damaged index otherwise: answered
// 503 like an outage, but the store works and is not declared down, and
// the log says what to repair. Other errors are returned as they are.
func (s *RedisStore) damaged(err error, id string) error {
	if !wrongType(err) {
		return err
	}
	if id != "" && strings.Contains(err.Error(), "(at "+s.recordKey(id)+")") {
		return damagedRecord(id, err)
	}
	return &corruptError{what: "client index", index: true, err: err}
}

// damagedRecord is the error of id's record when it cannot be read (err,
// if not nil, says why).
func damagedRecord(id string, err error) *corruptError {
	return &corruptError{what: "record " + strconv.Quote(id), err: err}
}

// applied settles a write whose outcome err leaves open: the script may
// have run although its reply was lost (a read timeout, a dropped
// connection). It reads the key back and reports whether it holds want
// (nil: whether the key is gone), which is then the write's own doing: the
// value carries a new revision, and a create's key a fresh random id.
// Answering 503 for a write that did happen would leave a client with a
// registration access token the server no longer accepts, or an orphan. A
// refusal by Redis itself (an error reply) or a command never sent is not
// open, and neither is a failed read-back: the 503 stands then.
func (s *RedisStore) applied(ctx context.Context, err error, key string, want []byte) bool {
	return outcomeOpen(err) && s.holds(ctx, key, want)
}

// unconfirmed sorts out a script's result n and error err when the
// replicas did not confirm it (wait_replicas): a script whose reply says it
// changed nothing (n != 1: a refusal) had nothing to wait for, and its
// result stands (nil error); otherwise err stays, the write being on the
// master only, or maybe there.
func unconfirmed(n int64, err error) error {
	var undo undoError
	if errors.As(err, &undo) {
		return err // n is no script's answer
	}
	if nr := notReplicated(err); nr != nil && nr.replyErr == nil && n != 1 {
		return nil
	}
	return err
}

// outcomeOpen reports whether a write that failed with err may still have
// been carried out: not when Redis refused it (an error reply), and not
// when it never left: given up in the queue, no connection to be had (a
// refused or timed-out dial, the pool exhausted) or the client closed.
func outcomeOpen(err error) bool {
	var reply redis.Error
	var undo undoError
	return !abandoned(err) && !errors.As(err, &reply) && !neverSent(err) && notReplicated(err) == nil && !errors.As(err, &undo)
}

// neverSent reports whether err is one go-redis returns before writing
// anything: a command is only written on a connection it has dialed.
func neverSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrPoolExhausted) || errors.Is(err, redis.ErrClosed)
}

// holds reads key and reports whether it holds want (nil: whether it is gone).
func (s *RedisStore) holds(ctx context.Context, key string, want []byte) bool {
	v, err := s.getValue(context.WithoutCancel(ctx), key)
	if want == nil {
		return err == redis.Nil
	}
	return err == nil && v == string(want)
}

// getValue reads a key's value through the batcher.
func (s *RedisStore) getValue(ctx context.Context, key string) (string, error) {
	cmd := redis.NewStringCmd(ctx, "get", key)
	cmd.SetFirstKeyPos(1)
	err := s.b.do(ctx, cmd)
	return cmd.Val(), err
}

// reapWaits are the pauses between a reap's looks at the record.
var reapWaits = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second, 30 * time.Second}

// maxReaps bounds the reaps pending in one pool. Only creates that were on
// the wire when Redis stalled need one (at most two pipelines' worth per
// timeout), so this covers minutes of a stall under full load; past it, a
// reap is dropped and the warning says so.
const maxReaps = 1 << 16

// reapConcurrency bounds the looks at records one round of reaps runs at
// once (they share pipelines through the batcher).
const reapConcurrency = 32

// reaper removes records whose create (of a FreshID record) was answered
// 503 but may still be carried out, by a Redis that stalled for longer than
// the read-back: their ids were never given to anyone, so when one shows up
// it is deleted, index entries and all, rather than left to count against
// the caps for ever. One per pool; a goroutine runs while reaps are pending.
type reaper struct {
	stopped <-chan struct{}
	waits   []time.Duration // reapWaits when the pool was made

	mu      sync.Mutex
	pending []*reap
	looking []*reap // taken from pending by the round under way
	running bool
	dropped int
}

// ids lists, by store (key prefix), the ids of the records still to be
// looked at (pending or under way), at most max of them; it returns how
// many it listed and how many there are in all.
func (rp *reaper) ids(max int) (byStore map[string][]string, listed, total int) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	byStore = map[string][]string{}
	for _, list := range [][]*reap{rp.looking, rp.pending} {
		for _, r := range list {
			if listed < max {
				byStore[r.s.prefix] = append(byStore[r.s.prefix], r.id)
				listed++
			}
		}
	}
	return byStore, listed, len(rp.looking) + len(rp.pending)
}

// reap is one record to remove if it shows up.
type reap struct {
	s    *RedisStore
	id   string
	sum  [sha256.Size]byte // of the value the create wrote
	tags []string
	step int       // index in reapWaits of the current wait
	due  time.Time // when to look next
}

// reapLater schedules the removal of the record a create wrote, if it
// shows up within about a minute (see reaper).
func (s *RedisStore) reapLater(id, value string, tags []string) {
	rp := s.reaper
	select {
	case <-rp.stopped:
		return // the pool is closed: nothing would run the reap
	default:
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if len(rp.pending) >= maxReaps {
		if rp.dropped++; rp.dropped == 1 {
			warnAt(s.pool.name, "redis: too many registrations answered 503 may still be carried out; some will be left in the store if they are")
		}
		return
	}
	rp.pending = append(rp.pending, &reap{s: s, id: id, sum: sha256.Sum256([]byte(value)), tags: tags, due: time.Now().Add(rp.waits[0])})
	if !rp.running {
		rp.running = true
		go rp.run()
	}
}

// busy reports reaps pending or under way.
func (rp *reaper) busy() bool {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.running || len(rp.pending) > 0
}

// run looks at due records until none is pending or the pool is closed.
func (rp *reaper) run() {
	tick := time.NewTicker(rp.waits[0] / 4)
	defer tick.Stop()
	for {
		select {
		case <-rp.stopped:
			return
		case <-tick.C:
		}
		now := time.Now()
		rp.mu.Lock()
		var due []*reap
		kept := rp.pending[:0]
		for _, r := range rp.pending {
			if now.Before(r.due) {
				kept = append(kept, r)
			} else {
				due = append(due, r)
			}
		}
		clear(rp.pending[len(kept):])
		rp.pending = kept
		rp.looking = due
		rp.mu.Unlock()

		var again []*reap
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, reapConcurrency)
		for _, r := range due {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				if !r.look() {
					return
				}
				if r.step++; r.step < len(rp.waits) {
					r.due = time.Now().Add(rp.waits[r.step])
					mu.Lock()
					again = append(again, r)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()

		rp.mu.Lock()
		rp.looking = nil
		rp.pending = append(rp.pending, again...)
		if len(rp.pending) == 0 {
			rp.running = false
			rp.dropped = 0
			rp.mu.Unlock()
			return
		}
		rp.mu.Unlock()
	}
}

// look removes the record if it holds what the create wrote; it reports
// whether to look again later (the record is not there yet, or Redis is
// still away).
func (r *reap) look() (again bool) {
	ctx := context.Background()
	v, err := r.s.getValue(ctx, r.s.recordKey(r.id))
	switch {
	case err != nil:
		return true
	case sha256.Sum256([]byte(v)) != r.sum:
		return false // not the record this create wrote
	}
	err = r.s.Delete(ctx, &Record{ID: r.id, Tags: r.tags, Rev: 1})
	return err != nil && IsUnavailable(err)
}

// Get implements Store.
func (s *RedisStore) Get(ctx context.Context, id string) (*Record, error) {
	c := getCall()
	c.key = s.recordKey(id)
	c.args = append(c.args, "get", &c.key)
	cmd := redis.NewStringCmd(ctx, c.args...)
	cmd.SetFirstKeyPos(1)
	err := s.b.do(ctx, cmd)
	c.release(err)
	if err == redis.Nil {
		return nil, ErrNotFound
	}
	if wrongType(err) {
		// A value of another type at a record's key (set by hand): that
		// record is damaged, the store is not down.
		return nil, unavailable("get", damagedRecord(id, err))
	}
	if err != nil {
		return nil, unavailable("get", err)
	}
	return decodeRedisRecord(id, cmd.Val())
}

// wrongType reports Redis's WRONGTYPE reply: the key holds a value of
// another type than the command's.
func wrongType(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "WRONGTYPE")
}

func decodeRedisRecord(id, v string) (*Record, error) {
	rec, exp, ok := decodeRecord(id, v)
	if !ok {
		return nil, unavailable("get", damagedRecord(id, nil))
	}
	if exp > 0 && exp <= time.Now().UnixMilli() {
		return nil, ErrNotFound // expired, Redis has not reaped it yet
	}
	return rec, nil
}

// Update implements Store.
func (s *RedisStore) Update(ctx context.Context, old, rec *Record) error {
	removed := diffTags(old.Tags, rec.Tags)
	nk := 1 + len(removed) + len(rec.Tags)
	args := make([]any, 0, 3+nk+6)
	args = append(args, "evalsha", updateScript.shaArg, nk, s.recordKey(rec.ID))
	for _, t := range removed {
		args = append(args, s.tagKeyArg(t))
	}
	for _, t := range rec.Tags {
		args = append(args, s.tagKeyArg(t))
	}
	value := encodeRecord(rec, old.Rev+1)
	args = append(args, rec.ID, revHeader(old.Rev), value, expiryArg(rec.ExpiresAt),
		time.Now().UnixMilli(), len(removed))
	b := s.bw
	if rec.Touch {
		b = s.b
	}
	n, err := updateScript.run(ctx, b, args)
	if err = unconfirmed(n, err); notReplicated(err) != nil {
		// Maybe written on the master only: not known to be lasting,
		// and not undone either.
		return &UnavailableError{Op: "update", Err: err}
	}
	if err != nil && s.applied(ctx, err, s.recordKey(rec.ID), value) {
		n, err = 1, nil
	}
	if err != nil {
		return &UnavailableError{Op: "update", Err: s.damaged(err, rec.ID), Unwritten: !outcomeOpen(err)}
	}
	switch n {
	case 1:
		rec.Rev = old.Rev + 1
		return nil
	case 0:
		return ErrNotFound
	case -1:
		return ErrConflict
	}
	return unavailable("update", errors.New("unexpected script result "+strconv.FormatInt(n, 10)))
}

// Delete implements Store.
func (s *RedisStore) Delete(ctx context.Context, rec *Record) error {
	n, err := s.runDelete(ctx, rec.ID, rec.Tags, rec.Rev)
	if err = unconfirmed(n, err); notReplicated(err) != nil {
		return unavailable("delete", err) // maybe deleted on the master only
	}
	if err != nil && s.applied(ctx, err, s.recordKey(rec.ID), nil) {
		n, err = 1, nil
	}
	if err != nil {
		return unavailable("delete", s.damaged(err, rec.ID))
	}
	switch n {
	case 1:
		return nil
	case 0:
		return ErrNotFound
	}
	return ErrConflict
}

// runDelete runs deleteScript on the record id of revision rev and its
// tags, and returns the script's result.
func (s *RedisStore) runDelete(ctx context.Context, id string, tags []string, rev int64) (int64, error) {
	nk := 1 + len(tags)
	args := make([]any, 0, 3+nk+2)
	args = append(args, "evalsha", deleteScript.shaArg, nk, s.recordKey(id))
	for _, t := range tags {
		args = append(args, s.tagKeyArg(t))
	}
	args = append(args, id, revHeader(rev))
	return deleteScript.run(ctx, s.bw, args)
}

// KEYS: record, tags. ARGV: id. Removes the record whatever it holds, and
// the id from the tags.
var purgeScript = newScript(`
redis.call('DEL', KEYS[1])
for i = 2, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 1
`)

// Purge implements Store. It can be repeated, so a failure, even one
// whose reply was lost, is only reported.
func (s *RedisStore) Purge(ctx context.Context, id string, tags []string) error {
	args := make([]any, 0, 5+len(tags))
	args = append(args, "evalsha", purgeScript.shaArg, 1+len(tags), s.recordKey(id))
	for _, t := range tags {
		args = append(args, s.tagKeyArg(t))
	}
	args = append(args, id)
	if _, err := purgeScript.run(ctx, s.bw, args); err != nil {
		return unavailable("delete", err)
	}
	return nil
}

// listBatch is how many ids List reads from a tag set at a time, and
// records in one pipeline.
const listBatch = 1000

// List implements Store. The live ids are read listBatch at a time, each
// batch from the score the last one ended at: one read of a whole large
// set (300,000 ids) held Redis up for over 100 ms, every Caddy on it
// waiting. A batch starts at that score itself, since ids after the last
// read may share it, and reaches listBatch ids past those read on it,
// which come again and are listed once. No offset skips them instead: an
// update moves its id's score up, and an offset into the ids of one score
// would then pass over one never read.
func (s *RedisStore) List(ctx context.Context, tag string) ([]*Record, error) {
	key := s.tagKey(tag)
	by := &redis.ZRangeBy{Min: "(" + strconv.FormatInt(time.Now().UnixMilli(), 10), Max: "+inf", Count: listBatch}
	var out []*Record
	listed := map[string]bool{}
	for {
		zs, err := s.rdb.ZRangeByScoreWithScores(ctx, key, by).Result()
		if err != nil {
			return nil, unavailable("list", s.damaged(err, ""))
		}
		ids := make([]string, 0, len(zs))
		for _, z := range zs {
			if id, ok := z.Member.(string); ok && !listed[id] {
				listed[id] = true
				ids = append(ids, id)
			}
		}
		if out, err = s.readRecords(ctx, ids, out); err != nil {
			return nil, err
		}
		if int64(len(zs)) < by.Count {
			return out, nil
		}
		last := zs[len(zs)-1].Score
		again := int64(0) // ids of the batch on its last score
		for k := len(zs) - 1; k >= 0 && zs[k].Score == last; k-- {
			again++
		}
		by.Min, by.Count = strconv.FormatFloat(last, 'f', -1, 64), again+listBatch
	}
}

// readRecords appends to out the records of ids, in one pipeline, leaving
// out those gone since their ids were read.
func (s *RedisStore) readRecords(ctx context.Context, ids []string, out []*Record) ([]*Record, error) {
	if len(ids) == 0 {
		return out, nil
	}
	cmds := make([]*redis.StringCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, s.recordKey(id))
		}
		return nil
	})
	// The pipeline's error is its first command's: a reply of Redis's to
	// one command (WRONGTYPE) is that record's, looked at below.
	var reply redis.Error
	if err != nil && err != redis.Nil && !errors.As(err, &reply) {
		return nil, unavailable("list", err)
	}
	for i, id := range ids {
		v, err := cmds[i].Result()
		if err == redis.Nil {
			continue // deleted or expired between the two reads
		}
		if wrongType(err) {
			SkipCorrupt(damagedRecord(id, err)) // reports it
			continue
		}
		if err != nil {
			return nil, unavailable("list", err)
		}
		rec, err := decodeRedisRecord(id, v)
		if errors.Is(err, ErrNotFound) || SkipCorrupt(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// Count implements Store.
func (s *RedisStore) Count(ctx context.Context, tag string) (int, error) {
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	cmd := redis.NewIntCmd(ctx, "zcount", s.tagKeyArg(tag), "("+now, "+inf")
	if err := s.b.do(ctx, cmd); err != nil {
		return 0, unavailable("count", s.damaged(err, ""))
	}
	return int(cmd.Val()), nil
}

// Hit implements Store. Counters get their own hash slot each: they never
// take part in a multi-key script, and spreading them spreads the load.
func (s *RedisStore) Hit(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error) {
	ms := window.Milliseconds()
	if ms <= 0 {
		ms = 1
	}
	// A script, not a transaction: measured as one (INCR, PEXPIRE NX,
	// PTTL), a hit cost Redis about a tenth less CPU but each call took
	// longer, the client sending and reading five commands instead of one.
	res, err := hitScript.runSlice(ctx, s.b, []any{"evalsha", hitScript.shaArg, 1, s.hitKey(key), ms})
	if err != nil {
		return false, 0, unavailable("rate limit", err)
	}
	if len(res) != 2 {
		return false, 0, unavailable("rate limit", errors.New("unexpected script result"))
	}
	if res[0] <= int64(limit) {
		return true, 0, nil
	}
	return false, time.Duration(res[1]) * time.Millisecond, nil
}
