//go:build !unix

package redistest

import "os"

// Without SIGSTOP there is no freezing a process: Pause and Resume fail the
// test (redis-server is not built for such systems anyway), and the rest of
// the package still compiles, so that `go vet ./...` works there.
var sigStop, sigCont os.Signal
