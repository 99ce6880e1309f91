//go:build linux || darwin || freebsd || openbsd || netbsd || dragonfly

package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/caddyserver/certmagic"
)

// flockPath is where the cross-process lock of the store under base lives
// when st is a local file system storage, or "" for any other storage (its
// own Lock is used then).
//
// certmagic's FileStorage locks with a lock file kept fresh by a goroutine
// that wakes every few seconds: per write, that is a goroutine and, under a
// steady stream of writes, error logs when it reads the next holder's
// half-written lock file. flock(2) costs two system calls, and the kernel
// releases it if the process dies, so there is no stale lock to wait out.
func flockPath(st certmagic.Storage, base string) string {
	fs, ok := st.(*certmagic.FileStorage)
	if !ok || fs.Path == "" {
		return ""
	}
	return filepath.Join(fs.Path, "locks", fileName(base)+".flock")
}

// flock takes an exclusive flock(2) on the file at path, and returns it
// open (for sawOthers) with the function that unlocks and closes it. It
// polls rather than blocks while another process holds it, so that ctx can
// end the wait.
func flock(ctx context.Context, path string) (*os.File, func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, err
	}
	fd := int(f.Fd())
	wait := time.Millisecond
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, nil, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, nil, ctx.Err()
		case <-t.C:
		}
		// Short polls: the holder's next write takes the lock again as soon
		// as it is free, so a waiter that slept long would rarely get it.
		wait = min(2*wait, 5*time.Millisecond)
	}
	return f, func() {
		_ = syscall.Flock(fd, syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}
