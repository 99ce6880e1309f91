//go:build linux || darwin || freebsd || openbsd || netbsd || dragonfly

package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestEmbeddedSpecialFiles: a record file or marker that is no regular
// file (a symbolic link looping on itself, one to a good record, a named
// pipe) is a damaged entry, met at once: Get fails it as corrupt, listings
// and counts skip it (said once), Purge removes it, and a sweep passes
// over it. A named pipe was opened for reading, which waits for a writer
// for ever: requests hung, and a sweep hung holding the write lock, so
// every later write was answered 503 until Caddy restarted. A link loop
// failed every listing as a store outage, and could not be purged.
func TestEmbeddedSpecialFiles(t *testing.T) {
	var mu sync.Mutex
	var msgs []string
	SetWarner(func(m, _ string) { mu.Lock(); msgs = append(msgs, m); mu.Unlock() })
	t.Cleanup(func() { warner.Store(nil) })
	ctx := context.Background()
	es, dir := unsweptStore(t, "sf")
	records := filepath.Join(dir, "sf", "records")
	markers := filepath.Join(dir, "sf", "tags", fileName("all"))
	ids := []string{"c/loop", "c/link", "c/fifo", "c/good"}
	for _, id := range ids {
		if err := es.Create(ctx, &Record{ID: id, Data: []byte("x"), Tags: []string{"all"}}); err != nil {
			t.Fatal(err)
		}
	}
	at := func(id string) string { return filepath.Join(records, fileName(id)) }
	for _, id := range ids[:3] {
		if err := os.Remove(at(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(at("c/loop"), at("c/loop")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(at("c/good"), at("c/link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(at("c/fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Index entries of the same kinds, for clients that do not exist.
	if err := os.Symlink(filepath.Join(markers, fileName("x/loop")), filepath.Join(markers, fileName("x/loop"))); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(markers, fileName("x/fifo")), 0o600); err != nil {
		t.Fatal(err)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, id := range ids[:3] {
			if _, err := es.Get(ctx, id); !Corrupt(err) || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("Get %s: %v, want a corrupt record", id, err)
			}
		}
		for range 2 {
			if recs, err := es.List(ctx, "all"); err != nil || len(recs) != 1 || recs[0].ID != "c/good" {
				t.Errorf("List: %v %v", recs, err)
			}
			if n, err := es.Count(ctx, "all"); err != nil || n != 4 {
				t.Errorf("Count: %d %v, want the 4 markers the store wrote", n, err)
			}
		}
		// A whole sweep passes over them, and the store takes writes after.
		es.sweepEvery = time.Nanosecond
		es.nextSweep = time.Time{}
		unlock, err := es.lock(ctx)
		if err != nil {
			t.Error(err)
			return
		}
		for range 20 {
			es.sweep(ctx)
		}
		unlock()
		if err := es.Create(ctx, &Record{ID: "c/after", Data: []byte("x"), Tags: []string{"all"}}); err != nil {
			t.Errorf("Create after the sweep: %v", err)
		}
		for _, id := range ids[:3] {
			if err := es.Purge(ctx, id, []string{"all"}); err != nil {
				t.Errorf("Purge %s: %v", id, err)
			}
			if _, err := os.Lstat(at(id)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s still there after its purge: %v", id, err)
			}
		}
	}()
	// A named pipe in an index directory's place fails its listing (an
	// outage of that index until repaired), rather than hanging it.
	if err := syscall.Mkfifo(filepath.Join(dir, "sf", "tags", fileName("piped")), 0o600); err != nil {
		t.Fatal(err)
	}
	listed := make(chan error, 1)
	go func() {
		_, err := es.List(ctx, "piped")
		listed <- err
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the store hangs on a special file")
	}
	select {
	case err := <-listed:
		if err == nil {
			t.Error("a listing through a named pipe in a directory's place succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a listing hangs on a named pipe in a directory's place")
	}
	if fi, err := os.Lstat(at("c/good")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the record a purged link pointed to: %v %v", fi, err)
	}
	mu.Lock()
	defer mu.Unlock()
	var pipe, link int
	for _, m := range msgs {
		if strings.Contains(m, "is no marker") {
			pipe += strings.Count(m, "a named pipe")
			link += strings.Count(m, "a symbolic link")
		}
	}
	if pipe != 1 || link != 1 {
		t.Errorf("stray markers said %d and %d times, want once each: %q", pipe, link, msgs)
	}
}

// TestThrottledLog: a problem that recurs is said once a minute, then
// with how often it recurred meanwhile.
func TestThrottledLog(t *testing.T) {
	var msgs []string
	SetWarner(func(m, _ string) { msgs = append(msgs, m) })
	t.Cleanup(func() { warner.Store(nil) })
	var l throttledLog
	for i := range 5 {
		l.logf("problem %d", i)
	}
	l.last.Store(l.last.Load() - int64(time.Minute))
	l.logf("problem %d", 5)
	if len(msgs) != 2 || msgs[0] != "problem 0" || msgs[1] != "problem 5 (4 more times since the last such line)" {
		t.Errorf("logged %q", msgs)
	}
}
