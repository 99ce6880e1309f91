// Package storage keeps the records of caddy-dcr: registered clients and the
// few other objects the registration APIs need (plugin installations, initial
// access tokens). It knows nothing about OAuth: a record is an opaque blob with
// an id, a revision, an optional expiry and a set of tags. Tags are the only
// indexes: every record carrying a tag can be listed and counted, so the APIs
// never scan the keyspace on a request path.
//
// Two backends implement Store: Redis (go-redis v9; single node, Sentinel,
// Cluster, TLS) and an embedded one on top of Caddy's configured storage
// (the file system by default), for a first run that needs no server.
package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"
)

// Errors returned by every Store. Compare them with errors.Is.
var (
	// ErrNotFound: no live record has this id (never created, deleted or expired).
	ErrNotFound = errors.New("record not found")
	// ErrExists: Create found a record with the same id.
	ErrExists = errors.New("record already exists")
	// ErrConflict: Update or Delete found another revision than the one it was given.
	ErrConflict = errors.New("record changed concurrently")
)

// LimitError is returned by Create when a Cap would be exceeded.
type LimitError struct {
	Cap Cap
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("limit of %d records tagged %q reached", e.Cap.Max, e.Cap.Tag)
}

// UnavailableError wraps a failure of the backend itself (connection refused,
// timeout, I/O error). Callers answer it with 503 and Retry-After.
type UnavailableError struct {
	Op  string
	Err error
	// Unwritten is set on a failed write that is known not to have been
	// carried out (refused by Redis, or never sent).
	Unwritten bool
}

func (e *UnavailableError) Error() string { return "storage " + e.Op + ": " + e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

// WriteFailed reports whether err is an outage of an operation that writes
// (a create, update, delete, counter or lock): a Redis out of memory or a
// full disk refuses those while reads still work.
func WriteFailed(err error) bool {
	var u *UnavailableError
	if !errors.As(err, &u) {
		return false
	}
	switch u.Op {
	case "create", "update", "delete", "write", "lock", "rate limit":
		return true
	}
	return false // get, list, count, ping, decode...
}

// Full reports whether err is a write the store refused for want of room
// or of write access while it answers on: a Redis out of memory (its OOM
// reply), a full, over-quota or read-only filesystem. A timeout or a lost
// connection is not: it says nothing of whether writes would work now.
func Full(err error) bool {
	if !WriteFailed(err) {
		return false
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno == syscall.ENOSPC || errno == syscall.EDQUOT || errno == syscall.EROFS
	}
	return oomReply(err)
}

// DeleteFailed reports whether err is an outage of a delete: a store can
// refuse those while it takes registrations (a Redis user that lost ZREM,
// which registrations do not run).
func DeleteFailed(err error) bool {
	var u *UnavailableError
	return errors.As(err, &u) && u.Op == "delete"
}

// ReadFailed reports whether err is an outage met by a read (get, list,
// count): the store may still take writes, as when its user lost GET.
func ReadFailed(err error) bool {
	var u *UnavailableError
	if !errors.As(err, &u) {
		return false
	}
	switch u.Op {
	case "get", "list", "count":
		return true
	}
	return false
}

// Unwritten reports whether err is an outage known to have changed
// nothing: a read or a lock that failed, or a write that was refused or
// never sent. A write whose reply was lost may still have been carried out.
func Unwritten(err error) bool {
	var u *UnavailableError
	if !errors.As(err, &u) {
		return false
	}
	return u.Unwritten || !WriteFailed(err) || u.Op == "lock"
}

// NotReplicated reports whether err is a write that Redis carried out on
// its master (its reply said so) but that fewer replicas than required
// (wait_replicas) confirmed in time. A write whose own reply was lost as
// well is not one: whether it was carried out is open.
func NotReplicated(err error) bool {
	nr := notReplicated(err)
	return nr != nil && nr.replyErr == nil
}

// DefaultRedisTimeout is RedisOptions.Timeout when none is given.
const DefaultRedisTimeout = 2 * time.Second

// IsUnavailable reports whether err is (or wraps) an UnavailableError.
func IsUnavailable(err error) bool {
	var u *UnavailableError
	return errors.As(err, &u)
}

// Record is what a Store keeps.
type Record struct {
	// ID is unique within the store. Callers namespace their kinds of records
	// with a prefix ("c/" for clients, ...).
	ID string
	// Data is the opaque payload. A Record a Store returns may share its
	// bytes with the Store's own buffers: callers read Data, never write it.
	Data []byte
	// Tags index the record: List and Count find records by tag.
	Tags []string
	// ExpiresAt is when the record disappears by itself; zero means never.
	ExpiresAt time.Time
	// Rev is the revision, set by the store on Create, Get and Update. Update
	// and Delete succeed only when the stored revision still equals it.
	Rev int64
	// FreshID, on Create, says that ID is new and random and that nobody
	// learns it unless Create succeeds: a create that fails but may still
	// be carried out later (a Redis that stalled) can then be undone, since
	// no one can hold on to the record. Records with derived ids (an
	// installation named by its user and client) are never undone.
	FreshID bool
	// Touch, on Update, says that the update only pushes the expiry back
	// (a use of the record): a failover may lose it without harm, so it
	// does not wait for replicas (Redis wait_replicas), like a read.
	Touch bool
}

// Cap limits how many live records may carry Tag when Create adds one more.
type Cap struct {
	Tag string
	Max int
}

// OpTimeout returns how long one operation on s may take before it fails
// as unavailable (Redis: its configured timeout; embedded: its own bound),
// or 0 when s does not say.
func OpTimeout(s Store) time.Duration {
	if t, ok := s.(interface{ OpTimeout() time.Duration }); ok {
		return t.OpTimeout()
	}
	return 0
}

// Store is implemented by the Redis and the embedded backends. All methods
// are safe for concurrent use, also by several processes sharing the backend.
type Store interface {
	// Create stores rec if no record has its id (ErrExists otherwise) and no
	// cap is reached (*LimitError otherwise), atomically. It sets rec.Rev.
	Create(ctx context.Context, rec *Record, caps ...Cap) error
	// Get returns the live record with this id or ErrNotFound.
	Get(ctx context.Context, id string) (*Record, error)
	// Update replaces old (as returned by Get) with rec, which must have the
	// same id. It fails with ErrConflict if the record changed since old was
	// read and with ErrNotFound if it is gone. Tag memberships follow rec.Tags.
	// It sets rec.Rev.
	Update(ctx context.Context, old, rec *Record) error
	// Delete removes rec (as returned by Get) and its tag memberships; it
	// fails with ErrConflict if the record changed since it was read.
	Delete(ctx context.Context, rec *Record) error
	// Purge removes the record with this id whatever it holds, with its
	// memberships of tags: the way out for a record that cannot be read
	// (Corrupt), whose revision and own tags are unknown. Memberships of
	// other tags stay, skipped by every reader (and swept by the embedded
	// store). No record is not an error.
	Purge(ctx context.Context, id string, tags []string) error
	// List returns the live records carrying tag, in no particular order.
	List(ctx context.Context, tag string) ([]*Record, error)
	// Count returns how many live records carry tag.
	Count(ctx context.Context, tag string) (int, error)
	// Hit counts one event in the fixed window of the given length for key
	// and reports whether the count is still within limit; when it is not,
	// it also returns how long until the window ends.
	Hit(ctx context.Context, key string, limit int, window time.Duration) (ok bool, retryAfter time.Duration, err error)
}

// expiryMillis returns the expiry as Unix milliseconds, 0 for never.
func expiryMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// diffTags returns the tags of old that are not in cur.
func diffTags(old, cur []string) []string {
	var out []string
	for _, t := range old {
		found := false
		for _, c := range cur {
			if c == t {
				found = true
				break
			}
		}
		if !found {
			out = append(out, t)
		}
	}
	return out
}

// corruptError is a stored record that cannot be read. Reading that client
// fails (503, as an outage: the operator must repair or remove it), but a
// listing skips it with a warning, so that one bad record does not take
// every list down with it.
type corruptError struct {
	what string // the record and where it is
	err  error
	// index is set for an index of the store (a tag set) holding another
	// type of value, rather than a record: every write through it fails,
	// and no listing can skip it.
	index bool
}

func (e *corruptError) Error() string {
	if e.err != nil {
		return "corrupt " + e.what + ": " + e.err.Error()
	}
	return "corrupt " + e.what
}

func (e *corruptError) Unwrap() error { return e.err }

// Corrupt reports whether err is a stored record that cannot be read: not
// an outage of the store, though answered as one.
func Corrupt(err error) bool {
	if err == nil {
		return false
	}
	var c *corruptError
	return errors.As(err, &c)
}

// CorruptIndex reports whether err is a damaged index of the store (see
// Corrupt): it is not one client's record but a key that the writes of
// many go through, set to another type by hand.
func CorruptIndex(err error) bool {
	var c *corruptError
	return errors.As(err, &c) && c.index
}

// CorruptRecord is the error of a reader that finds a record's data
// unreadable (what names it): answered as an outage of that record alone,
// and skipped by listings that use SkipCorrupt.
func CorruptRecord(what string, err error) error {
	return unavailable("decode", &corruptError{what: what, err: err})
}

// SkipCorrupt reports whether err is a corrupt record, warning about it
// (see CorruptDue): a listing goes on without it.
func SkipCorrupt(err error) bool {
	if err == nil {
		return false
	}
	var c *corruptError
	if !errors.As(err, &c) || c.index {
		return false
	}
	if c.due() {
		logf("a listing skipped a %s", c.Error())
	}
	return true
}

// corruptLogEvery is how often one damaged record is reported. Every
// request for its client, and every listing, meets it again, and anyone
// who knows a damaged client's id could otherwise write a log line per
// request.
const corruptLogEvery = 10 * time.Minute

// corruptLogMax bounds the records whose last report is remembered.
const corruptLogMax = 1024

var corruptLogged struct {
	sync.Mutex
	at map[string]time.Time
}

// CorruptDue reports whether err, a damaged record (Corrupt), is to be
// logged now: the first time it is met, then once every corruptLogEvery.
func CorruptDue(err error) bool {
	var c *corruptError
	return errors.As(err, &c) && c.due()
}

func (c *corruptError) due() bool {
	now := time.Now()
	corruptLogged.Lock()
	defer corruptLogged.Unlock()
	if t, ok := corruptLogged.at[c.what]; ok && now.Sub(t) < corruptLogEvery {
		return false
	}
	if corruptLogged.at == nil {
		corruptLogged.at = make(map[string]time.Time)
	}
	if len(corruptLogged.at) >= corruptLogMax {
		for k, t := range corruptLogged.at {
			if now.Sub(t) >= corruptLogEvery {
				delete(corruptLogged.at, k)
			}
		}
		if len(corruptLogged.at) >= corruptLogMax {
			// So many damaged records at once: reporting some again
			// early costs less than remembering them all.
			clear(corruptLogged.at)
		}
	}
	corruptLogged.at[c.what] = now
	return true
}
