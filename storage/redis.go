package storage

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
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
	TLS        *tls.Config
	// Timeout bounds dialing, each read and each write; requests that hit it
	// fail fast with an UnavailableError instead of hanging. Default 2s.
	Timeout time.Duration
}

// RedisPool is one go-redis client (and its connection pool). Several stores
// with different key prefixes share it.
type RedisPool struct {
	rdb redis.UniversalClient
	b   *batcher
}

// NewRedisPool creates the client. It does no I/O: go-redis dials lazily, so a
// configuration with an unreachable Redis still loads and recovers by itself.
func NewRedisPool(o RedisOptions) *RedisPool {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:        o.Addrs,
		Username:     o.Username,
		Password:     o.Password,
		DB:           o.DB,
		MasterName:   o.MasterName,
		TLSConfig:    o.TLS,
		DialTimeout:  timeout,
		ReadTimeout:  timeout,
		WriteTimeout: timeout,
		PoolTimeout:  timeout,
		// One retry covers a connection that went stale across a Redis
		// restart; more would only delay the 503.
		MaxRetries: 1,
		// Sentinel: follow failovers; cluster: route reads to masters so a
		// read right after a write sees it.
		ReadOnly: false,
	})
	return &RedisPool{rdb: rdb, b: newBatcher(rdb)}
}

// Client exposes the underlying client (tests, health checks).
func (p *RedisPool) Client() redis.UniversalClient { return p.rdb }

// Destruct closes the client; it satisfies caddy.Destructor so the pool can
// live in a caddy.UsagePool without this package importing Caddy.
func (p *RedisPool) Destruct() error {
	p.b.close()
	return p.rdb.Close()
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
	return &RedisStore{rdb: p.rdb, b: p.b, prefix: keyPrefix, base: keyPrefix + "{" + tag + "}:"}
}

// RedisStore implements Store on Redis. Layout, with base = prefix{tag}: :
//
//	base r:<id>   hash: d (data), r (revision), t (tags, JSON), e (expiry, Unix ms or 0)
//	base t:<tag>  sorted set of ids, scored by their expiry (+inf for never)
//	prefix h:{<key>}  rate-limit counter of one window
type RedisStore struct {
	rdb    redis.UniversalClient
	b      *batcher
	prefix string
	base   string
}

var _ Store = (*RedisStore)(nil)

func (s *RedisStore) recordKey(id string) string { return s.base + "r:" + id }
func (s *RedisStore) tagKey(tag string) string   { return s.base + "t:" + tag }

// tagAdd is shared by the create and update scripts: it adds id to a tag set
// scored by its expiry and keeps the set's own TTL no shorter than its
// longest-lived member, so that sets of expiring records do not outlive them.
const luaTagAdd = `
local function tagadd(key, id, exp, now)
  if exp == 0 then
    redis.call('ZADD', key, '+inf', id)
    redis.call('PERSIST', key)
  else
    local ttl = redis.call('PTTL', key)
    redis.call('ZADD', key, exp, id)
    if ttl == -2 or (ttl >= 0 and now + ttl < exp) then
      redis.call('PEXPIREAT', key, exp)
    end
  end
end
`

// KEYS: record, nt tag keys, then cap tag keys.
// ARGV: id, data, tags, exp, now, nt, cap maxima...
// Returns 1 (created), 0 (exists) or -k (cap k, 1-based, reached).
var createScript = newScript(luaTagAdd + `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local exp = tonumber(ARGV[4])
local now = tonumber(ARGV[5])
local nt = tonumber(ARGV[6])
for i = 2 + nt, #KEYS do
  local k = i - 1 - nt
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[6 + k]) then return -k end
end
redis.call('HSET', KEYS[1], 'd', ARGV[2], 'r', 1, 't', ARGV[3], 'e', exp)
if exp > 0 then redis.call('PEXPIREAT', KEYS[1], exp) end
for i = 2, 1 + nt do tagadd(KEYS[i], ARGV[1], exp, now) end
return 1
`)

// KEYS: record, nr removed tag keys, then current tag keys.
// ARGV: id, expected revision, data, tags, exp, now, nr.
// Returns the new revision, 0 (gone) or -1 (revision changed).
var updateScript = newScript(luaTagAdd + `
local rev = redis.call('HGET', KEYS[1], 'r')
if not rev then return 0 end
if rev ~= ARGV[2] then return -1 end
local exp = tonumber(ARGV[5])
local now = tonumber(ARGV[6])
local nr = tonumber(ARGV[7])
local newrev = redis.call('HINCRBY', KEYS[1], 'r', 1)
redis.call('HSET', KEYS[1], 'd', ARGV[3], 't', ARGV[4], 'e', exp)
if exp > 0 then redis.call('PEXPIREAT', KEYS[1], exp) else redis.call('PERSIST', KEYS[1]) end
for i = 2, 1 + nr do redis.call('ZREM', KEYS[i], ARGV[1]) end
for i = 2 + nr, #KEYS do tagadd(KEYS[i], ARGV[1], exp, now) end
return newrev
`)

// KEYS: record, tag keys. ARGV: id, expected revision.
// Returns 1 (deleted), 0 (gone) or -1 (revision changed).
var deleteScript = newScript(`
local rev = redis.call('HGET', KEYS[1], 'r')
if not rev then return 0 end
if rev ~= ARGV[2] then return -1 end
redis.call('DEL', KEYS[1])
for i = 2, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 1
`)

// KEYS: counter. ARGV: window ms. Returns {count, ms left in the window}.
var hitScript = newScript(`
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

// encodeTags joins tags for the record's "t" field: each is its length
// (uvarint) then its bytes, so any byte may appear in a tag.
func encodeTags(tags []string) string {
	var b []byte
	for _, t := range tags {
		b = binary.AppendUvarint(b, uint64(len(t)))
		b = append(b, t...)
	}
	return string(b)
}

func decodeTags(s string) ([]string, bool) {
	var out []string
	for len(s) > 0 {
		n, k := binary.Uvarint([]byte(s[:min(len(s), binary.MaxVarintLen64)]))
		if k <= 0 || uint64(len(s)-k) < n {
			return nil, false
		}
		out = append(out, s[k:k+int(n)])
		s = s[k+int(n):]
	}
	return out, true
}

// Create implements Store.
func (s *RedisStore) Create(ctx context.Context, rec *Record, caps ...Cap) error {
	keys := make([]string, 0, 1+len(rec.Tags)+len(caps))
	keys = append(keys, s.recordKey(rec.ID))
	for _, t := range rec.Tags {
		keys = append(keys, s.tagKey(t))
	}
	for _, c := range caps {
		keys = append(keys, s.tagKey(c.Tag))
	}
	args := make([]any, 0, 6+len(caps))
	args = append(args, rec.ID, rec.Data, encodeTags(rec.Tags), expiryMillis(rec.ExpiresAt),
		time.Now().UnixMilli(), len(rec.Tags))
	for _, c := range caps {
		args = append(args, c.Max)
	}
	n, err := createScript.run(ctx, s.b, keys, args...).Int64()
	if err != nil {
		return unavailable("create", err)
	}
	switch {
	case n == 1:
		rec.Rev = 1
		return nil
	case n == 0:
		return ErrExists
	case n < 0 && int(-n) <= len(caps):
		return &LimitError{Cap: caps[-n-1]}
	}
	return unavailable("create", errors.New("unexpected script result "+strconv.FormatInt(n, 10)))
}

// Get implements Store.
func (s *RedisStore) Get(ctx context.Context, id string) (*Record, error) {
	cmd := redis.NewSliceCmd(ctx, "hmget", s.recordKey(id), "d", "r", "t", "e")
	if err := s.b.do(ctx, cmd); err != nil {
		return nil, unavailable("get", err)
	}
	vals := cmd.Val()
	return decodeRedisRecord(id, vals)
}

func decodeRedisRecord(id string, vals []any) (*Record, error) {
	if len(vals) != 4 || vals[0] == nil || vals[1] == nil {
		return nil, ErrNotFound
	}
	data, _ := vals[0].(string)
	revStr, _ := vals[1].(string)
	tagStr, _ := vals[2].(string)
	expStr, _ := vals[3].(string)
	rev, err := strconv.ParseInt(revStr, 10, 64)
	if err != nil {
		return nil, unavailable("get", errors.New("corrupt revision of record "+strconv.Quote(id)))
	}
	exp, _ := strconv.ParseInt(expStr, 10, 64)
	rec := &Record{ID: id, Data: []byte(data), Rev: rev, ExpiresAt: fromMillis(exp)}
	if tags, ok := decodeTags(tagStr); ok {
		rec.Tags = tags
	} else {
		return nil, unavailable("get", errors.New("corrupt tags of record "+strconv.Quote(id)))
	}
	if exp > 0 && exp <= time.Now().UnixMilli() {
		return nil, ErrNotFound // expired, Redis has not reaped it yet
	}
	return rec, nil
}

// Update implements Store.
func (s *RedisStore) Update(ctx context.Context, old, rec *Record) error {
	removed := diffTags(old.Tags, rec.Tags)
	keys := make([]string, 0, 1+len(removed)+len(rec.Tags))
	keys = append(keys, s.recordKey(rec.ID))
	for _, t := range removed {
		keys = append(keys, s.tagKey(t))
	}
	for _, t := range rec.Tags {
		keys = append(keys, s.tagKey(t))
	}
	n, err := updateScript.run(ctx, s.b, keys, rec.ID, strconv.FormatInt(old.Rev, 10), rec.Data,
		encodeTags(rec.Tags), expiryMillis(rec.ExpiresAt), time.Now().UnixMilli(), len(removed)).Int64()
	if err != nil {
		return unavailable("update", err)
	}
	switch {
	case n == 0:
		return ErrNotFound
	case n < 0:
		return ErrConflict
	}
	rec.Rev = n
	return nil
}

// Delete implements Store.
func (s *RedisStore) Delete(ctx context.Context, rec *Record) error {
	keys := make([]string, 0, 1+len(rec.Tags))
	keys = append(keys, s.recordKey(rec.ID))
	for _, t := range rec.Tags {
		keys = append(keys, s.tagKey(t))
	}
	n, err := deleteScript.run(ctx, s.b, keys, rec.ID, strconv.FormatInt(rec.Rev, 10)).Int64()
	if err != nil {
		return unavailable("delete", err)
	}
	switch n {
	case 1:
		return nil
	case 0:
		return ErrNotFound
	}
	return ErrConflict
}

// List implements Store.
func (s *RedisStore) List(ctx context.Context, tag string) ([]*Record, error) {
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	ids, err := s.rdb.ZRangeByScore(ctx, s.tagKey(tag), &redis.ZRangeBy{Min: "(" + now, Max: "+inf"}).Result()
	if err != nil {
		return nil, unavailable("list", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.SliceCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, s.recordKey(id), "d", "r", "t", "e")
		}
		return nil
	})
	if err != nil {
		return nil, unavailable("list", err)
	}
	out := make([]*Record, 0, len(ids))
	for i, id := range ids {
		rec, err := decodeRedisRecord(id, cmds[i].Val())
		if errors.Is(err, ErrNotFound) {
			continue // deleted or expired between the two reads
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
	cmd := redis.NewIntCmd(ctx, "zcount", s.tagKey(tag), "("+now, "+inf")
	err := s.b.do(ctx, cmd)
	n := cmd.Val()
	if err != nil {
		return 0, unavailable("count", err)
	}
	return int(n), nil
}

// Hit implements Store. Counters get their own hash slot each: they never
// take part in a multi-key script, and spreading them spreads the load.
func (s *RedisStore) Hit(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error) {
	ms := window.Milliseconds()
	if ms <= 0 {
		ms = 1
	}
	res, err := hitScript.run(ctx, s.b, []string{s.prefix + "h:{" + key + "}"}, ms).Int64Slice()
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
