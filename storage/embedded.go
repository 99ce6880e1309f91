package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/caddyserver/certmagic"
)

// EmbeddedStore implements Store on a certmagic.Storage: Caddy's own
// configured storage, the file system under Caddy's data directory unless the
// operator configured another. It needs no server and suits one machine.
//
// Layout under the base key:
//
//	records/<hex id>           JSON {data, rev, tags, exp}
//	tags/<hex tag>/<hex id>    marker whose content is the record's expiry (Unix ms, 0 = never)
//
// Names are hex-encoded because ids are case-sensitive and some file systems
// are not. Writes are serialized by the store (shared by every handler on
// the same backing storage in this process), plus a lock for other processes
// sharing it: flock(2) on a local file system storage, the storage's own
// Lock otherwise. Rate-limit windows are kept in memory.
type EmbeddedStore struct {
	st   certmagic.Storage
	base string
	// sem serializes the writes of this process (a one-slot semaphore
	// rather than a mutex, so that waiting for it has a deadline too).
	sem chan struct{}
	// flockFile, when set, is locked with flock(2) instead of st.Lock (see
	// flockPath).
	flockFile string
	// stamp is what this process last wrote in the flock file, or found
	// there; locked is that file while this process holds the lock, and
	// changed whether it changed the store under it yet (all guarded by
	// the lock): see sawOthers.
	stamp   string
	locked  *os.File
	changed bool

	// strayWarned holds the index entries found to be no marker (see
	// members), each warned about once.
	strayWarned sync.Map

	hitMu sync.Mutex
	hits  map[string]*window
	// hitsPrune is the size of hits at which expired windows are next
	// removed: twice what was left after the last removal, so that the
	// scan is paid once per doubling, never on every request while the
	// windows of many addresses are all still open.
	hitsPrune int
	// hitsPruned is when expired windows were last removed: with hitsMax
	// windows the map is looked through again at most once a second, so
	// that new addresses are counted again once windows have closed.
	hitsPruned time.Time

	// Sweeping (guarded by the lock): nextSweep is when the next slice is
	// due, sweepDir and sweepAfter where the current sweep stopped (the tag
	// directory, then the last marker looked at), sweepEvery how often a
	// full sweep starts.
	nextSweep  time.Time
	sweepDir   string
	sweepAfter string
	// sweepNames are the sorted keys of sweepDir, listed when the sweep
	// came to it and kept for its next slices: listing a directory of a
	// hundred thousand markers takes longer than a slice's budget, and a
	// sweep that listed it again for each slice looked at one marker a
	// slice and never ended.
	sweepNames []string
	sweepEvery time.Duration

	// syncLog and untagLog say that directories cannot be synced, or
	// markers removed, at most once a minute: both go on for as long as
	// the fault does, at every change.
	syncLog, untagLog throttledLog

	// capCounts remembers exact counts at a cap (guarded by the lock).
	capCounts map[string]capCount
	// markers remembers the number of markers under a tag with the time its
	// directory was last changed (guarded by the lock): see markerCount.
	markers map[string]markerMemo
}

// throttledLog logs a problem that recurs while a fault lasts at most once
// a minute, with how many times it recurred meanwhile.
type throttledLog struct {
	last   atomic.Int64 // when the last line was logged (since logStart)
	missed atomic.Int64
}

// logStart makes throttledLog's times monotonic: a wall clock set back
// would silence it for as long.
var logStart = time.Now()

func (t *throttledLog) logf(format string, args ...any) {
	now, last := int64(time.Since(logStart))+1, t.last.Load()
	if last != 0 && now-last < int64(time.Minute) || !t.last.CompareAndSwap(last, now) {
		t.missed.Add(1)
		return
	}
	if n := t.missed.Swap(0); n > 0 {
		format += " (%d more times since the last such line)"
		args = append(args, n)
	}
	logf(format, args...)
}

// markerMemo is a tag directory's number of markers when it was last
// changed at mtime, based on a reading of its names at read.
type markerMemo struct {
	n     int
	mtime time.Time
	read  time.Time
}

// markerMemoAge is how long a count is trusted without reading the names
// again. Changes by another process sharing the storage that fall within
// the timestamp tick of this process's last change leave the directory's
// time as it was (kernels before 6.13 stamp directories to the jiffy), so
// they go unseen until the names are read again: for that long, two
// processes on such a system can together let a few more registrations
// through than a cap allows.
const markerMemoAge = 2 * time.Second

// defaultSweepEvery is how often writes also clear out expired clients.
const defaultSweepEvery = 10 * time.Minute

type window struct {
	end   time.Time
	count int
}

type embeddedRecord struct {
	ID   string   `json:"id"`
	Data []byte   `json:"data"`
	Rev  int64    `json:"rev"`
	Tags []string `json:"tags,omitempty"`
	Exp  int64    `json:"exp,omitempty"`
}

var _ Store = (*EmbeddedStore)(nil)

// NewEmbeddedStore returns a store keeping its records under base in st.
func NewEmbeddedStore(st certmagic.Storage, base string) *EmbeddedStore {
	return &EmbeddedStore{st: st, base: base, sem: make(chan struct{}, 1), flockFile: flockPath(st, base), hits: map[string]*window{},
		sweepEvery: defaultSweepEvery}
}

// Destruct satisfies caddy.Destructor; there is nothing to close.
func (s *EmbeddedStore) Destruct() error { return nil }

// fileName turns an id or a tag into a file name: its hex form, or for long
// ones (whose hex would exceed file system limits) "z" and the hex of their
// SHA-256, so that any id a request names is a valid key.
func fileName(s string) string {
	if len(s) <= 100 {
		return hex.EncodeToString([]byte(s))
	}
	sum := sha256.Sum256([]byte(s))
	return "z" + hex.EncodeToString(sum[:])
}

func (s *EmbeddedStore) recordKey(id string) string { return s.recordKeyByName(fileName(id)) }

func (s *EmbeddedStore) recordKeyByName(name string) string {
	return path.Join(s.base, "records", name)
}

func (s *EmbeddedStore) tagDir(tag string) string {
	return path.Join(s.base, "tags", fileName(tag))
}

func (s *EmbeddedStore) lockName() string { return path.Join(s.base, "lock") }

// lock takes the in-process semaphore first, so that concurrent requests
// in this process never poll the storage lock, then the storage lock. The
// whole wait is bounded: another process holding the lock for long (or a
// lock left behind) is an outage to report, not a wait without end.
func (s *EmbeddedStore) lock(ctx context.Context) (func(), error) {
	ctx, cancel := context.WithTimeout(ctx, embeddedLockWait)
	defer cancel()
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, unavailable("lock", ctx.Err())
	}
	release := func() { <-s.sem }
	if s.flockFile != "" {
		f, unlock, err := flock(ctx, s.flockFile)
		if err != nil {
			release()
			return nil, unavailable("lock", err)
		}
		s.sawOthers(f)
		return func() {
			s.locked = nil
			unlock()
			release()
		}, nil
	}
	if err := s.st.Lock(ctx, s.lockName()); err != nil {
		release()
		return nil, unavailable("lock", err)
	}
	return func() {
		_ = s.st.Unlock(context.WithoutCancel(ctx), s.lockName())
		release()
	}, nil
}

// sawOthers, called once the flock is taken, drops what this process
// remembers of the index (counts of markers, exact counts at a cap) when
// another process changed the store since this one last held the lock:
// each writer leaves a new random stamp in the lock file after a change.
// A directory's modification time alone misses a change made within the
// clock tick of the one before, and on file systems that stamp directories
// to the tick (all before Linux 6.13; since, all but ext4, xfs, btrfs and
// tmpfs) two processes near a cap then let dozens of clients past it.
func (s *EmbeddedStore) sawOthers(f *os.File) {
	var b [stampLen]byte
	n, _ := f.ReadAt(b[:], 0)
	if string(b[:n]) != s.stamp {
		clear(s.markers)
		clear(s.capCounts)
		s.stamp = string(b[:n])
	}
	s.locked, s.changed = f, false
}

// changing is called under the lock before this process changes the
// store: the first change under it leaves a new stamp in the lock file
// (see sawOthers), before the change, so that a crash half-way through
// it is seen by the others too. A stamp that cannot be written leaves
// them to the directories' times.
func (s *EmbeddedStore) changing() {
	if s.changed {
		return
	}
	s.changed = true
	if s.locked == nil {
		return
	}
	b := make([]byte, stampLen)
	_, _ = rand.Read(b)
	if _, err := s.locked.WriteAt(b, 0); err != nil {
		s.stamp = ""
		return
	}
	s.stamp = string(b)
}

const stampLen = 16

// embeddedLockWait bounds the wait for the storage lock.
const embeddedLockWait = 5 * time.Second

// embeddedOpTimeout bounds each operation on the configured storage: the
// request's own cancellation does not reach the store (a client that
// half-closes still waits for its answer), and a storage module that hangs
// must not hold a request, and the write lock, for ever.
const embeddedOpTimeout = 10 * time.Second

// OpTimeout is embeddedOpTimeout (see storage.OpTimeout).
func (s *EmbeddedStore) OpTimeout() time.Duration { return embeddedOpTimeout }

func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist)
}

func (s *EmbeddedStore) load(ctx context.Context, id string) (*Record, error) {
	return s.loadKey(ctx, s.recordKey(id), id)
}

// maxRecordFile bounds what is read of a record file: a record holds what
// a request of at most 64 KiB registered, a few hundred KiB once encoded,
// and a larger file is damaged. Read whole on every request for its client,
// a file of hundreds of megabytes took gigabytes of memory.
const maxRecordFile = 4 << 20

var errRecordFileTooLarge = fmt.Errorf("larger than %d bytes", maxRecordFile)

// loadFile is the storage's Load of a record file, which on the local file
// system reads no more than maxRecordFile.
func (s *EmbeddedStore) loadFile(ctx context.Context, key string) ([]byte, error) {
	name, ok := s.osPath(key)
	if !ok {
		return s.st.Load(ctx, key)
	}
	f, size, err := openRegular(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size > maxRecordFile {
		return nil, errRecordFileTooLarge
	}
	var buf bytes.Buffer
	buf.Grow(int(size) + 1) // one more byte to see the end without growing
	if _, err := buf.ReadFrom(io.LimitReader(f, maxRecordFile+1)); err != nil {
		return nil, err
	}
	if buf.Len() > maxRecordFile {
		return nil, errRecordFileTooLarge
	}
	return buf.Bytes(), nil
}

// errNotRegular is the error of a record file or marker that is no regular
// file: a directory, a symbolic link (a loop, say), a named pipe, a device.
// The store writes none, so such an entry is damage, skipped and removable
// like any damaged record, never followed: opening a named pipe waits for
// a writer for ever, and it did so holding the store's write lock.
var errNotRegular = errors.New("not a regular file")

// openRegular opens the file name for reading when it is a regular file,
// and returns its size; it never waits on a named pipe nor follows a final
// symbolic link (see errNotRegular).
func openRegular(name string) (*os.File, int64, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|openNoFollow|openNonBlock, 0)
	if err != nil {
		// A symbolic link fails the open (ELOOP; EMLINK on FreeBSD):
		// what is there, not why the open failed, makes it damage.
		if fi, lerr := os.Lstat(name); lerr == nil && !fi.Mode().IsRegular() {
			return nil, 0, notRegular(name, fi.Mode())
		}
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, notRegular(name, fi.Mode())
	}
	return f, fi.Size(), nil
}

// notRegular is errNotRegular for the file name of mode m, saying what it is.
func notRegular(name string, m fs.FileMode) error {
	what := "a special file"
	switch {
	case m.IsDir():
		what = "a directory"
	case m&fs.ModeSymlink != 0:
		what = "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		what = "a named pipe"
	case m&fs.ModeSocket != 0:
		what = "a socket"
	case m&fs.ModeDevice != 0:
		what = "a device"
	}
	return fmt.Errorf("%s: %w: %s", name, errNotRegular, what)
}

// damagedEntry reports whether err, from reading a record file or marker,
// says the entry is none the store wrote (see errNotRegular), rather than
// the store failing.
func damagedEntry(err error) bool {
	return errors.Is(err, errNotRegular) || errors.Is(err, syscall.EISDIR)
}

// fileDenied reports whether err, from opening the record file under key,
// is the file's own permissions refusing it while its directory is
// reachable: that record is damaged (to be skipped by listings and removed
// by the admin API), not the store. A directory that cannot be searched
// fails the Stat too, and stays an outage.
func (s *EmbeddedStore) fileDenied(key string, err error) bool {
	if !errors.Is(err, fs.ErrPermission) {
		return false
	}
	name, ok := s.osPath(key)
	if !ok {
		return false
	}
	_, serr := os.Stat(name)
	return serr == nil
}

// corruptFile is the error of a record file that holds no record of ours.
func corruptFile(key string, err error) error {
	return unavailable("get", &corruptError{what: "record file " + strconv.Quote(key), err: err})
}

// loadKey reads a record; id is "" when only the file name is known.
func (s *EmbeddedStore) loadKey(ctx context.Context, key, id string) (*Record, error) {
	b, err := s.loadFile(ctx, key)
	if notExist(err) {
		return nil, ErrNotFound
	}
	if damagedEntry(err) || errors.Is(err, errRecordFileTooLarge) || s.fileDenied(key, err) {
		return nil, corruptFile(key, err)
	}
	if err != nil {
		return nil, unavailable("get", err)
	}
	var er embeddedRecord
	if err := json.Unmarshal(b, &er); err != nil {
		return nil, corruptFile(key, err)
	}
	// Every record is written with its id, which names its file: a file
	// without it ("null", "{}") or with another's is not one of ours.
	if er.ID == "" || fileName(er.ID) != path.Base(key) {
		return nil, corruptFile(key, errors.New("no record of its id"))
	}
	if id == "" {
		id = er.ID
	}
	rec := &Record{ID: id, Data: er.Data, Rev: er.Rev, Tags: er.Tags, ExpiresAt: fromMillis(er.Exp)}
	if er.Exp > 0 && er.Exp <= time.Now().UnixMilli() {
		return rec, errExpired
	}
	return rec, nil
}

var errExpired = errors.New("expired")

func (s *EmbeddedStore) write(ctx context.Context, rec *Record) error {
	b, err := json.Marshal(embeddedRecord{ID: rec.ID, Data: rec.Data, Rev: rec.Rev, Tags: rec.Tags, Exp: expiryMillis(rec.ExpiresAt)})
	if err != nil {
		return err
	}
	// Markers first: a crash between the two writes leaves a marker without
	// a record, which every reader skips, never a record missing from an index.
	exp := []byte(strconv.FormatInt(expiryMillis(rec.ExpiresAt), 10))
	s.changing()
	for _, t := range rec.Tags {
		key := path.Join(s.tagDir(t), fileName(rec.ID))
		if err := s.changeMarker(t, key, true, func() error { return s.st.Store(ctx, key, exp) }); err != nil {
			// The record is as it was.
			return &UnavailableError{Op: "write", Err: err, Unwritten: true}
		}
	}
	// The markers' names are on disk before the record's, as they were
	// written: after a power cut too, a record is never without them.
	dirs := make([]string, 0, len(rec.Tags)+1)
	for _, t := range rec.Tags {
		dirs = append(dirs, s.tagDir(t))
	}
	if len(dirs) > 0 {
		s.syncDirs(append(dirs, path.Dir(dirs[0]))...) // and tags/, which a new tag's directory went in
	}
	if err := s.st.Store(ctx, s.recordKey(rec.ID), b); err != nil {
		// Caddy's file system storage writes a temporary file and renames
		// it last: when Store fails, the record is as it was, and a caller
		// may say so (an update answered 503 keeps the old token valid).
		// Of another storage it is not known.
		_, atomic := s.st.(*certmagic.FileStorage)
		return &UnavailableError{Op: "write", Err: err, Unwritten: atomic}
	}
	s.syncDirs(path.Dir(s.recordKey(rec.ID)))
	return nil
}

// syncDir flushes a directory of the file system (a variable for tests).
var syncDir = func(name string) error {
	f, err := os.OpenFile(name, os.O_RDONLY|openNonBlock, 0) // see dirNames
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// syncDirs flushes the named storage directories to disk, on Caddy's file
// system storage: its Store syncs a file's content before renaming it
// into place, but the new name (or a removed one) is on disk only once its
// directory is synced, and a registration answered 201, or a delete 204,
// must survive a power cut. A failure is logged, not answered: the change
// is made and seen by every reader; only its surviving a power cut is in
// doubt, and a directory that cannot be synced means a failing disk.
func (s *EmbeddedStore) syncDirs(dirs ...string) {
	for i, dir := range dirs {
		name, ok := s.osPath(dir)
		if !ok || slices.Contains(dirs[:i], dir) {
			continue
		}
		if err := syncDir(name); err != nil && !notExist(err) {
			s.syncLog.logf("embedded client store: a change may not survive a power cut: %v", err)
		}
	}
}

func (s *EmbeddedStore) remove(ctx context.Context, id string, tags []string) error {
	s.changing()
	if err := s.st.Delete(ctx, s.recordKey(id)); err != nil && !notExist(err) {
		return unavailable("delete", err)
	}
	s.syncDirs(path.Dir(s.recordKey(id)))
	// The record is gone: that is the delete, done. A marker that cannot
	// be removed now is one without a record, which every reader skips
	// and the sweep removes; answering 503 would tell the client that
	// nothing happened, and its retry would find no client.
	if err := s.untag(ctx, id, tags); err != nil {
		s.untagLog.logf("embedded client store: a deleted record's index entries stay until the sweep removes them: %v", err)
	}
	return nil
}

func (s *EmbeddedStore) untag(ctx context.Context, id string, tags []string) error {
	s.changing()
	for _, t := range tags {
		key := path.Join(s.tagDir(t), fileName(id))
		err := s.changeMarker(t, key, false, func() error {
			if err := s.st.Delete(ctx, key); err != nil && !notExist(err) {
				return err
			}
			s.dropEmptyDir(s.tagDir(t))
			return nil
		})
		if err != nil {
			return unavailable("delete", err)
		}
	}
	return nil
}

// dropEmptyDir removes a tag's directory once it is empty, on the local
// file system: tags named after one id (a plugin's installations, the
// clients of one initial access token) would each leave a directory
// behind for good. Removing a directory fails, harmlessly, while a marker
// is in it, and writers hold the lock, so none is adding one meanwhile;
// the next marker of the tag makes the directory again.
func (s *EmbeddedStore) dropEmptyDir(dir string) {
	if name, ok := s.osPath(dir); ok {
		_ = os.Remove(name)
	}
}

// begin starts a write: the store's own time bound, and the lock that
// serializes the writers of every process sharing the storage. end
// releases both.
func (s *EmbeddedStore) begin(ctx context.Context) (_ context.Context, end func(), err error) {
	ctx, cancel := context.WithTimeout(ctx, embeddedOpTimeout)
	unlock, err := s.lock(ctx)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return ctx, func() { unlock(); cancel() }, nil
}

// Create implements Store.
func (s *EmbeddedStore) Create(ctx context.Context, rec *Record, caps ...Cap) error {
	ctx, end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	s.sweep(ctx)
	old, err := s.load(ctx, rec.ID)
	switch {
	case err == nil:
		return ErrExists
	case errors.Is(err, errExpired):
		if err := s.remove(ctx, old.ID, old.Tags); err != nil {
			return asOp(err, "create")
		}
	case !errors.Is(err, ErrNotFound):
		return err
	}
	for _, c := range caps {
		// Every live record has a marker, so fewer markers than the cap
		// means room, known from one directory listing; counting exactly
		// reads every marker and record (slow with thousands of clients)
		// and is only needed near the cap, where it also prunes.
		markers, err := s.markerCount(ctx, c.Tag)
		if err != nil {
			return err
		}
		if markers < c.Max {
			continue
		}
		n, ok := s.capMemo(c.Tag, markers)
		if !ok {
			if n, err = s.countAtCap(ctx, c.Tag); err != nil {
				return err
			}
		}
		if n >= c.Max {
			return &LimitError{Cap: c}
		}
	}
	rec.Rev = 1
	// A count kept at a cap stands while as many markers are there as
	// then and none expired: a client that expires sooner than those it
	// counted, in the place of a deleted one, would leave it standing
	// after it expired (registrations refused below the cap).
	s.forgetCaps(rec)
	return s.write(ctx, rec)
}

// Get implements Store.
func (s *EmbeddedStore) Get(ctx context.Context, id string) (*Record, error) {
	ctx, cancel := context.WithTimeout(ctx, embeddedOpTimeout)
	defer cancel()
	rec, err := s.load(ctx, id)
	if errors.Is(err, errExpired) {
		return nil, ErrNotFound
	}
	return rec, err
}

// Update implements Store.
func (s *EmbeddedStore) Update(ctx context.Context, old, rec *Record) error {
	ctx, end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	cur, err := s.load(ctx, rec.ID)
	if errors.Is(err, errExpired) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	if cur.Rev != old.Rev {
		return ErrConflict
	}
	if err := s.untag(ctx, rec.ID, diffTags(cur.Tags, rec.Tags)); err != nil {
		return asOp(err, "update")
	}
	rec.Rev = cur.Rev + 1
	s.forgetCaps(rec)
	return s.write(ctx, rec)
}

// Delete implements Store.
func (s *EmbeddedStore) Delete(ctx context.Context, rec *Record) error {
	ctx, end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	cur, err := s.load(ctx, rec.ID)
	if errors.Is(err, errExpired) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	if cur.Rev != rec.Rev {
		return ErrConflict
	}
	return s.remove(ctx, cur.ID, cur.Tags)
}

// Purge implements Store.
func (s *EmbeddedStore) Purge(ctx context.Context, id string, tags []string) error {
	ctx, end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	return s.remove(ctx, id, tags)
}

// members lists the file names of the records under a tag with their expiry.
func (s *EmbeddedStore) members(ctx context.Context, tag string) (map[string]int64, error) {
	keys, err := s.listKeys(ctx, s.tagDir(tag))
	if err != nil {
		return nil, unavailable("list", err)
	}
	out := make(map[string]int64, len(keys))
	for _, k := range keys {
		name := path.Base(k)
		b, err := s.loadFile(ctx, k)
		if notExist(err) {
			continue
		}
		if damagedEntry(err) || errors.Is(err, errRecordFileTooLarge) || s.fileDenied(k, err) {
			// Not a marker the store wrote (a directory, a link, a pipe,
			// or a file it may not read, made by hand): skipped, as a damaged record
			// is, rather than failing every listing through the index
			// for good. Said once: it stays until removed.
			if _, warned := s.strayWarned.LoadOrStore(k, true); !warned {
				logf("embedded client store: an index entry is no marker and is skipped until it is removed (%v)", err)
			}
			continue
		}
		if err != nil {
			return nil, unavailable("list", err)
		}
		exp, _ := strconv.ParseInt(string(b), 10, 64)
		out[name] = exp
	}
	return out, nil
}

// markerCount is the number of markers under tag, live or not. On Caddy's
// file system storage it reads the directory's names only (the storage's
// List stats every entry, which is most of the cost with thousands), and
// not even that while the directory is unchanged since this process last
// counted or changed it: reading a hundred thousand names on every
// registration made registration 18 times slower, and so did reading them
// again after each update or delete. This process's own changes of
// markers are counted into the count (memoBefore, memoAfter); those of
// another process sharing the storage change the directory's time.
func (s *EmbeddedStore) markerCount(ctx context.Context, tag string) (int, error) {
	dir := s.tagDir(tag)
	if name, ok := s.osPath(dir); ok {
		fi, err := os.Stat(name)
		if notExist(err) {
			return 0, nil
		}
		if err != nil {
			return 0, unavailable("list", err)
		}
		if m, ok := s.markers[tag]; ok && m.mtime.Equal(fi.ModTime()) && time.Since(m.read) < markerMemoAge {
			return m.n, nil
		}
		names, err := dirNames(name)
		if notExist(err) {
			return 0, nil
		}
		if err != nil {
			return 0, unavailable("list", err)
		}
		// The time read before the names: a change since shows as another.
		s.setMarkers(tag, markerMemo{n: len(names), mtime: fi.ModTime(), read: time.Now()})
		return len(names), nil
	}
	keys, err := s.listKeys(ctx, dir)
	if err != nil {
		return 0, unavailable("list", err)
	}
	return len(keys), nil
}

// changeMarker runs change, which adds (add) or removes tag's marker at
// key, under the lock, with the remembered count of tag's markers kept
// (memoBefore, memoAfter). Whether the marker was there is asked first:
// Caddy's file system storage says nothing of one it replaced, or of one
// that was not there to remove.
func (s *EmbeddedStore) changeMarker(tag, key string, add bool, change func() error) error {
	memo, kept := s.memoBefore(tag)
	had := kept && s.markerExists(key)
	if err := change(); err != nil {
		return err
	}
	switch {
	case kept && add && !had:
		memo.n++
	case had && !add:
		memo.n--
	}
	s.memoAfter(tag, memo, kept)
	return nil
}

// memoBefore is called under the lock before this process adds or
// removes a marker of tag: it takes the remembered count out, and returns
// it with kept true when it still holds (the directory unchanged since),
// for memoAfter to put back with the change counted. Dropping it first
// means that a change that fails half-way leaves no count behind.
func (s *EmbeddedStore) memoBefore(tag string) (markerMemo, bool) {
	m, ok := s.markers[tag]
	if !ok {
		return m, false
	}
	delete(s.markers, tag)
	return m, s.tagDirTime(tag).Equal(m.mtime)
}

// memoAfter puts back the count memoBefore returned, with the directory's
// time after the change: a change of another process since shows as a
// later time again. The time alone would not do for this process's own
// changes: one within the clock tick of the directory's last change would
// leave it as it was.
func (s *EmbeddedStore) memoAfter(tag string, m markerMemo, kept bool) {
	if !kept {
		return
	}
	if t := s.tagDirTime(tag); !t.IsZero() {
		m.mtime = t
		s.setMarkers(tag, m)
	}
}

// markerExists tells whether the marker at key is on disk, for a count
// kept by memoBefore (on the local file system only).
func (s *EmbeddedStore) markerExists(key string) bool {
	name, ok := s.osPath(key)
	if !ok {
		return false
	}
	_, err := os.Lstat(name)
	return err == nil
}

// maxMarkerMemos bounds the tags whose counts are kept (the store's, and
// owners': one entry each).
const maxMarkerMemos = 1024

func (s *EmbeddedStore) setMarkers(tag string, m markerMemo) {
	if s.markers == nil || len(s.markers) >= maxMarkerMemos {
		s.markers = make(map[string]markerMemo)
	}
	s.markers[tag] = m
}

// forgetMarkers drops the remembered counts before a change of markers by
// this process that is not counted (the sweep's removal of a stray
// marker): a change within the clock tick of the directory's last one
// would leave its time as it was.
func (s *EmbeddedStore) forgetMarkers() {
	clear(s.markers)
	s.changing()
}

// sweep removes expired records and their markers, and markers that a
// failed write left without a record; the caller holds the lock. Reads
// already skip expired clients, and a cap prunes the markers it counts, but
// without this the files of clients that expired would stay for ever. A
// full sweep starts at most every sweepEvery and runs in slices of
// sweepBudget, one every sweepPause, each going on where the last stopped,
// so that a large store is swept without holding any write up for long.
// Failures are left for the next sweep.
func (s *EmbeddedStore) sweep(ctx context.Context) {
	start := time.Now()
	if start.Before(s.nextSweep) {
		return
	}
	// A deadline of its own: a slow storage must not make the sweep use up
	// the time of the write that runs it.
	ctx, cancel := context.WithTimeout(ctx, sweepDeadline)
	defer cancel()
	dirs, err := s.listKeys(ctx, path.Join(s.base, "tags"))
	if err != nil {
		s.nextSweep = start.Add(s.sweepEvery)
		return
	}
	records := path.Join(s.base, "records")
	dirs = append(dirs, records)
	slices.Sort(dirs)
	nowMs := start.UnixMilli()
	for _, dir := range dirs {
		if dir < s.sweepDir {
			continue
		}
		markers := s.sweepNames
		if dir != s.sweepDir || markers == nil {
			var err error
			markers, err = s.sweepList(ctx, dir)
			if ctx.Err() != nil {
				// Out of time (a slow storage): this directory again next time.
				s.sweepDir, s.sweepAfter, s.sweepNames = dir, "", nil
				s.nextSweep = time.Now().Add(sweepPause)
				return
			}
			if err != nil {
				continue
			}
			if len(markers) == 0 && dir != records {
				s.dropEmptyDir(dir) // emptied by an older version, or by hand
				continue
			}
			if dir != s.sweepDir {
				s.sweepAfter = ""
			}
			s.sweepDir, s.sweepNames = dir, markers
		}
		from, _ := slices.BinarySearch(markers, s.sweepAfter)
		if from < len(markers) && markers[from] == s.sweepAfter {
			from++ // looked at in the last slice
		}
		for _, m := range markers[from:] {
			if dir == records {
				s.sweepRecord(ctx, m, start)
			} else {
				s.sweepMarker(ctx, m, nowMs)
			}
			if time.Since(start) > sweepBudget || ctx.Err() != nil {
				// Go on after this marker at the next slice.
				s.sweepAfter = m
				s.nextSweep = time.Now().Add(sweepPause)
				return
			}
		}
		s.sweepNames = nil
	}
	s.sweepDir, s.sweepAfter, s.sweepNames = "", "", nil
	s.nextSweep = start.Add(s.sweepEvery)
}

// osPath returns the file system path of a storage key on Caddy's file
// system storage, where a directory's names can be read without the stat
// of each entry that its List makes; ok is false on other storages.
func (s *EmbeddedStore) osPath(key string) (string, bool) {
	if fsys, ok := s.st.(*certmagic.FileStorage); ok {
		return fsys.Filename(key), true
	}
	return "", false
}

// dirNames reads the names in a directory, without the stat of each entry
// that Caddy's FileStorage.List makes (most of its cost with thousands).
func dirNames(name string) ([]string, error) {
	// Non-blocking: a named pipe in a directory's place (damage) fails
	// the read of names instead of waiting for a writer for ever.
	f, err := os.OpenFile(name, os.O_RDONLY|openNonBlock, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// sweepList returns the keys under dir, sorted.
func (s *EmbeddedStore) sweepList(ctx context.Context, dir string) ([]string, error) {
	keys, err := s.listKeys(ctx, dir)
	slices.Sort(keys)
	return keys, err
}

// listKeys returns the keys under dir, none (and no error) when dir does
// not exist. On Caddy's file system storage it reads the names only: its
// List stats every entry, and fails as a whole, with a "not found" error,
// when one of them is deleted meanwhile (by a write of another request,
// reads take no lock), which read as an empty directory: a list of an
// owner's clients came back empty while one of them was deregistered, and
// a revoked token was reported not found. On other storages such an error
// is told apart from a missing directory by asking again.
func (s *EmbeddedStore) listKeys(ctx context.Context, dir string) ([]string, error) {
	if name, ok := s.osPath(dir); ok {
		names, err := dirNames(name)
		if notExist(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		keys := make([]string, len(names))
		for i, n := range names {
			keys[i] = path.Join(dir, n)
		}
		return keys, nil
	}
	for attempt := 0; ; attempt++ {
		keys, err := s.st.List(ctx, dir, false)
		if !notExist(err) {
			return keys, err
		}
		if !s.st.Exists(ctx, dir) {
			return nil, nil
		}
		if attempt == 2 {
			return nil, err
		}
	}
}

// sweepMarker looks at one marker for sweep.
func (s *EmbeddedStore) sweepMarker(ctx context.Context, m string, nowMs int64) {
	b, err := s.loadFile(ctx, m)
	if err != nil {
		return
	}
	rec := s.recordKeyByName(path.Base(m))
	if exp, _ := strconv.ParseInt(string(b), 10, 64); exp == 0 || exp > nowMs {
		// Live by its marker; a marker whose record is missing is left by
		// a write that failed half-way (markers go first), and is only noise.
		if !s.st.Exists(ctx, rec) {
			s.forgetMarkers()
			_ = s.st.Delete(ctx, m)
		}
		return
	}
	// The marker says expired; the record decides (it may have been renewed
	// since, or be gone already).
	old, err := s.loadKey(ctx, rec, "")
	switch {
	case errors.Is(err, errExpired):
		_ = s.remove(ctx, old.ID, old.Tags)
	case errors.Is(err, ErrNotFound):
		s.forgetMarkers()
		_ = s.st.Delete(ctx, m)
	}
}

// sweepRecord looks at one record file for sweep: an expired record whose
// markers are gone (a failure between removing them and it) would
// otherwise stay, and so would the temporary file of a write that a crash
// interrupted (left alone while recent, as a write under way in another
// process has one too).
func (s *EmbeddedStore) sweepRecord(ctx context.Context, key string, now time.Time) {
	b, err := s.loadFile(ctx, key)
	if err != nil {
		return
	}
	name := path.Base(key)
	var er embeddedRecord
	parsed := json.Unmarshal(b, &er) == nil
	if parsed && fileName(er.ID) == name {
		if er.Exp > 0 && er.Exp <= now.UnixMilli() {
			_ = s.remove(ctx, er.ID, er.Tags)
		}
		return
	}
	// A record is renamed into place whole: a file holding another name's
	// record is a temporary one, and so is one that holds no record under
	// a temporary file's name (os.CreateTemp's: at most 10 digits); one that
	// holds no record under a record's name is a damaged record, left for
	// the operator (reads of it fail, listings warn).
	if !parsed && (len(name) > 10 || strings.Trim(name, "0123456789") != "") {
		return // the decimal of a uint32; a record's name is longer
	}
	if info, err := s.st.Stat(ctx, key); err == nil && info.IsTerminal && now.Sub(info.Modified) > strayFileAge {
		_ = s.st.Delete(ctx, key)
	}
}

// strayFileAge is how old a file under records/ that holds no record of
// its own name must be to be removed by a sweep.
const strayFileAge = time.Hour

// sweepBudget is how long one slice of a sweep may run, sweepPause the
// least time between two slices.
var (
	sweepBudget = 100 * time.Millisecond
	// sweepDeadline bounds a slice on a storage that stalls: a marker
	// started within sweepBudget may not take much longer.
	sweepDeadline = 2 * time.Second
	sweepPause    = time.Second
)

// capCount is the last exact count of a tag at its cap: with as many
// markers as then and none expired since, the count is the same, and a
// store kept at its cap need not read every marker and record again for
// each refused registration (seconds with thousands of clients, holding
// the lock that every other write waits for).
type capCount struct {
	markers, live int
	minExp        int64     // the soonest expiry among the live ones (Unix ms, 0 = none)
	at            time.Time // when counted
	dirTime       time.Time // the markers' directory's time then; zero if unknown
}

// capMemoAge bounds how long a count is trusted once the markers'
// directory changed: another process on the same storage may have given
// one of the clients an earlier expiry (an update under a shorter
// idle_lifetime), which rewrites its marker, and this one learns of it only
// by counting again. While the directory is unchanged, no marker was
// rewritten, and the count stands: with a hundred thousand clients, each
// count holds every write up for seconds.
const capMemoAge = 30 * time.Second

func (s *EmbeddedStore) capMemo(tag string, markers int) (int, bool) {
	m, ok := s.capCounts[tag]
	if !ok || m.markers != markers || (m.minExp != 0 && time.Now().UnixMilli() >= m.minExp) {
		return 0, false
	}
	if time.Since(m.at) > capMemoAge && (m.dirTime.IsZero() || !s.tagDirTime(tag).Equal(m.dirTime)) {
		return 0, false
	}
	return m.live, true
}

// tagDirTime is the modification time of tag's markers' directory on the
// local file system, or zero.
func (s *EmbeddedStore) tagDirTime(tag string) time.Time {
	name, ok := s.osPath(s.tagDir(tag))
	if !ok {
		return time.Time{}
	}
	fi, err := os.Stat(name)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// forgetCaps drops the counts of rec's tags that rec, written with an
// expiry sooner than any they know, makes stale: they would keep a cap
// reached after rec is gone.
func (s *EmbeddedStore) forgetCaps(rec *Record) {
	if rec.ExpiresAt.IsZero() {
		return
	}
	exp := rec.ExpiresAt.UnixMilli()
	for _, tag := range rec.Tags {
		if m, ok := s.capCounts[tag]; ok && (m.minExp == 0 || exp < m.minExp) {
			delete(s.capCounts, tag)
		}
	}
}

// countAtCap counts tag exactly (pruning, under the lock) and remembers
// the count for capMemo.
func (s *EmbeddedStore) countAtCap(ctx context.Context, tag string) (int, error) {
	n, minExp, err := s.countExp(ctx, tag, true)
	if err != nil {
		return 0, err
	}
	if s.capCounts == nil || len(s.capCounts) > 1000 {
		s.capCounts = map[string]capCount{}
	}
	// Pruning removed the markers that were not live: the directory now
	// holds n, unless another process changed it meanwhile (then the
	// next check counts again).
	// Taken after the pruning, under the lock every writer takes.
	s.capCounts[tag] = capCount{markers: n, live: n, minExp: minExp, at: time.Now(), dirTime: s.tagDirTime(tag)}
	return n, nil
}

// count counts the live records under tag. Markers whose record is gone or
// expired are skipped; with prune (the caller holds the lock) they are removed.
func (s *EmbeddedStore) count(ctx context.Context, tag string, prune bool) (int, error) {
	n, _, err := s.countExp(ctx, tag, prune)
	return n, err
}

// countExp is count, with the soonest expiry among the live records.
func (s *EmbeddedStore) countExp(ctx context.Context, tag string, prune bool) (n int, minExp int64, err error) {
	m, err := s.members(ctx, tag)
	if err != nil {
		return 0, 0, err
	}
	now := time.Now().UnixMilli()
	for name, exp := range m {
		live := exp == 0 || exp > now
		if live {
			live = s.st.Exists(ctx, s.recordKeyByName(name))
		}
		if live {
			n++
			if exp != 0 && (minExp == 0 || exp < minExp) {
				minExp = exp
			}
		} else if prune {
			// As the sweep would: an expired record goes with its marker
			// (removing the marker alone would hide the record from every
			// later sweep, its file left for ever).
			s.sweepMarker(ctx, path.Join(s.tagDir(tag), name), now)
		}
	}
	return n, minExp, nil
}

// List implements Store.
func (s *EmbeddedStore) List(ctx context.Context, tag string) ([]*Record, error) {
	ctx, cancel := context.WithTimeout(ctx, embeddedOpTimeout)
	defer cancel()
	m, err := s.members(ctx, tag)
	if err != nil {
		return nil, err
	}
	out := make([]*Record, 0, len(m))
	for name := range m {
		rec, err := s.loadKey(ctx, s.recordKeyByName(name), "")
		if errors.Is(err, ErrNotFound) || errors.Is(err, errExpired) {
			continue
		}
		if SkipCorrupt(err) {
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
func (s *EmbeddedStore) Count(ctx context.Context, tag string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, embeddedOpTimeout)
	defer cancel()
	return s.count(ctx, tag, false)
}

// hitsPruneMin is the fewest windows the embedded store keeps before it
// looks for expired ones; hitsMax, the most it keeps (about 150 bytes
// each). Variables for the tests.
var (
	hitsPruneMin = 100_000
	hitsMax      = 1_000_000
)

// Hit implements Store with in-memory fixed windows: the embedded store
// serves one process, so one process's memory is the shared state.
func (s *EmbeddedStore) Hit(_ context.Context, key string, limit int, win time.Duration) (bool, time.Duration, error) {
	now := time.Now()
	s.hitMu.Lock()
	defer s.hitMu.Unlock()
	if n := len(s.hits); n >= max(s.hitsPrune, hitsPruneMin) || n >= hitsMax && now.Sub(s.hitsPruned) >= time.Second {
		for k, w := range s.hits {
			if !now.Before(w.end) {
				delete(s.hits, k)
			}
		}
		s.hitsPrune, s.hitsPruned = 2*len(s.hits), now
	}
	w := s.hits[key]
	if w == nil || !now.Before(w.end) {
		if w == nil && len(s.hits) >= hitsMax {
			// Windows open for this many addresses at once: a new one is
			// let through uncounted rather than memory growing without
			// bound (max_clients still caps what they can register).
			return true, 0, nil
		}
		w = &window{end: now.Add(win)}
		s.hits[key] = w
	}
	w.count++
	if w.count <= limit {
		return true, 0, nil
	}
	return false, w.end.Sub(now), nil
}
