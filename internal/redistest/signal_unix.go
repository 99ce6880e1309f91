//go:build unix

package redistest

import "syscall"

// The signals that freeze and continue a process, for Pause and Resume.
var sigStop, sigCont = syscall.SIGSTOP, syscall.SIGCONT
