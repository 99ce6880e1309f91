package storage

import (
	"context"
	"fmt"
	"strings"
)

// accessCheck asks Redis (7.0 or later; older ones have no ACL check for
// scripts and answer an empty list) which of the commands the store runs
// its user may not run on the store's keys, so that a missing grant is
// found when the store starts rather than by the requests it fails (each
// script checks its own commands before writing: see luaRefusal).
//
// ARGV: a record key, a tag key, a rate-limit counter key, "1" when
// writes wait for replicas, and "1" on Redis Cluster, whose client also
// reads the slot map (CLUSTER SLOTS, without which nothing works), follows
// a slot being moved (ASKING, without which every command on it fails
// until the move ends) and reads the command table once (COMMAND: refused,
// go-redis asks again before every command that is not pipelined, one
// round trip more each, one at a time). Returns the list of commands refused,
// "command key" (or "command", or "command|subcommand") each, and whether
// the user may run MULTI and EXEC: 1, 0, or -1 on a Redis that cannot tell.
const accessCheck = luaRefusal + `
if not redis.acl_check_cmd then return {{}, -1} end
local r, t, h = ARGV[1], ARGV[2], ARGV[3]
local checks = {
  {'get', r}, {'set', r, 'v'}, {'del', r}, {'getrange', r, '0', '1'},
  {'pexpireat', r, '1'}, {'pttl', r},
  {'zadd', t, '1', 'm'}, {'zrem', t, 'm'}, {'zrangebyscore', t, '0', '1'}, {'zcount', t, '0', '1'},
  {'zremrangebyrank', t, '0', '0'}, {'persist', t}, {'pexpireat', t, '1'}, {'pttl', t},
  {'zcard', t}, {'zrange', t, '0', '1'}, {'exists', r},
  {'incr', h}, {'pexpire', h, '1'}, {'pttl', h},
  {'eval', 'return 1', '0'}, {'evalsha', '0000000000000000000000000000000000000000', '0'},
}
if ARGV[4] == '1' then checks[#checks + 1] = {'wait', '0', '0'} end
if ARGV[5] == '1' then
  checks[#checks + 1] = {'cluster', 'slots'}
  checks[#checks + 1] = {'asking'}
  checks[#checks + 1] = {'command'}
end
local names = {}
for _, c in ipairs(refused(checks)) do
  local name = c[1]
  if c[2] == r or c[2] == t or c[2] == h then name = name .. ' ' .. c[2] end
  if c[1] == 'cluster' then name = 'cluster|' .. c[2] end
  names[#names + 1] = name
end
local tx = 0
if redis.acl_check_cmd('multi') and redis.acl_check_cmd('exec') then tx = 1 end
return {names, tx}
`

// CheckAccess asks Redis, in the background and once per key prefix,
// whether its user may run every command a store with keyPrefix runs, on
// that store's keys, and calls report once with what it found: the
// commands refused ("zrem dcr:{dcr}:t:acl-check"), or an error reply that
// asking again will not change (a wrong password, a user who may not run
// scripts), or neither when all is well. Like WatchEviction it first asks
// evictionFirst after being called and again every evictionRetry while
// Redis is unreachable, and it stops when the pool is closed. reach, if
// not nil, hears of that: once with the error when a first attempt gets
// no answer, and with nil when Redis answers after that, so that a store
// pointed at the wrong address is said at start rather than by the first
// request's 503.
func (p *RedisPool) CheckAccess(keyPrefix string, report func(refused []string, err error), reach func(err error)) {
	if _, done := p.accessChecked.LoadOrStore(keyPrefix, true); done {
		return
	}
	s := p.Store(keyPrefix)
	wait := "0"
	if p.bw.waitReplicas > 0 {
		wait = "1"
	}
	cluster := "0"
	if p.cluster {
		cluster = "1"
	}
	args := []any{s.recordKey("acl-check"), s.tagKey("acl-check"), s.hitKey("acl-check"), wait, cluster}
	unreached := false
	p.askInBackground(func(ctx context.Context) bool {
		res, err := p.rdb.Eval(ctx, accessCheck, nil, args...).Slice()
		if answered := err == nil || refusedReply(err); reach != nil && answered == unreached {
			// No answer the first time (the error), or one after none (nil).
			unreached = !answered
			if answered {
				reach(nil)
			} else {
				reach(err)
			}
		}
		if err == nil {
			var refused []string
			var tx int64
			refused, tx, err = accessAnswer(res)
			if err == nil {
				if !p.allowTx(tx) {
					// Asked again at the next config load, which may
					// follow a new grant.
					p.accessChecked.Delete(keyPrefix)
				}
				report(refused, nil)
				return true
			}
		}
		switch cmd := refusedCommand(err); {
		case cmd != "":
			// EVAL itself refused: the check could not run, and neither
			// can the scripts every change runs (those Redis has cached
			// already run EVALSHA, until it restarts). Named as the
			// missing grant it is, not as wrong credentials; asked again
			// at the next config load, which may follow the grant.
			p.accessChecked.Delete(keyPrefix)
			report([]string{cmd}, nil)
		case refusedReply(err):
			report(nil, err)
		default:
			return false
		}
		return true
	})
}

// CleanupOnly reports whether the commands CheckAccess found refused
// ("zcard dcr:{dcr}:t:acl-check"...) are all ones the store runs only for
// best-effort clean-ups (index entries of vanished records at a cap, an
// index's expiry given back at a delete or an update): a user without them, granted an
// earlier version's commands, loses those clean-ups and nothing else.
func CleanupOnly(refused []string) bool {
	for _, c := range refused {
		switch cmd, _, _ := strings.Cut(c, " "); cmd {
		case "zcard", "zrange", "exists":
		default:
			return false
		}
	}
	return true
}

// refusedCommand is the command a NOPERM reply says the user may not run
// ("NOPERM this user has no permissions to run the 'eval' command"), or
// "" for any other error.
func refusedCommand(err error) string {
	if !errorReply(err, "NOPERM") {
		return ""
	}
	_, rest, ok := strings.Cut(err.Error(), "run the '")
	if !ok {
		return ""
	}
	cmd, _, ok := strings.Cut(rest, "'")
	if !ok {
		return ""
	}
	return strings.ToLower(cmd)
}

// refusedReply reports an error reply that asking again will not change:
// an unknown or renamed command, a refused password or permission.
func refusedReply(err error) bool {
	return errorReply(err, "ERR", "NOPERM", "WRONGPASS", "NOAUTH")
}

// accessAnswer reads the access check's reply.
func accessAnswer(res []any) (refused []string, tx int64, err error) {
	if len(res) != 2 {
		return nil, 0, fmt.Errorf("redis: access check answered %d values", len(res))
	}
	list, _ := res[0].([]any)
	for _, v := range list {
		name, ok := v.(string)
		if !ok {
			return nil, 0, fmt.Errorf("redis: access check answered %T", v)
		}
		refused = append(refused, name)
	}
	n, _ := res[1].(int64)
	return refused, n, nil
}

// allowTx turns creates as transactions (RedisStore.createTx) on when the
// access check found MULTI and EXEC allowed (tx 1), except on a cluster,
// whose client would send MULTI to any node. Otherwise creates run the
// script, which costs Redis about twice as much; the README's ACL line
// grants them. A Redis older than 7.0 cannot tell (-1): the script, and no
// warning. It reports false when the user may not run them.
func (p *RedisPool) allowTx(tx int64) bool {
	if p.cluster || tx < 0 {
		return true
	}
	if tx == 0 {
		warnAt(p.name, "the Redis user may not run MULTI and EXEC: registrations run a script instead, which costs Redis about twice as much (grant +multi +exec, then reload the config)")
		return false
	}
	p.tx.Store(true)
	return true
}
