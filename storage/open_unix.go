//go:build unix

package storage

import "syscall"

// openNoFollow and openNonBlock make openRegular refuse a final symbolic
// link, and openRegular and dirNames not wait on a named pipe.
const (
	openNoFollow = syscall.O_NOFOLLOW
	openNonBlock = syscall.O_NONBLOCK
)
