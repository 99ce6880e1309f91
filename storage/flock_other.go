//go:build !(linux || darwin || freebsd || openbsd || netbsd || dragonfly)

package storage

import (
	"context"
	"errors"
	"os"

	"github.com/caddyserver/certmagic"
)

// flockPath is "": without flock(2), the storage's own Lock is used.
func flockPath(certmagic.Storage, string) string { return "" }

func flock(context.Context, string) (*os.File, func(), error) {
	return nil, nil, errors.New("flock is not available on this platform")
}
