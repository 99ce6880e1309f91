package storage

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// batcher sends the commands of concurrent requests to Redis together, in
// pipelines: under load one write and one read system call (on both ends)
// carry dozens of commands instead of one each, which is most of what a
// registration costs besides HTTP itself. A command that arrives when a
// worker is idle goes out at once, so a lone request waits no longer than
// without batching.
type batcher struct {
	rdb  redis.UniversalClient
	in   chan *batchOp
	quit chan struct{}
	wg   sync.WaitGroup
}

type batchOp struct {
	cmd  redis.Cmder
	done chan struct{}
}

const (
	batchWorkers = 2   // pipelines in flight at once
	batchMax     = 128 // commands per pipeline
)

var opPool = sync.Pool{New: func() any { return &batchOp{done: make(chan struct{}, 1)} }}

func newBatcher(rdb redis.UniversalClient) *batcher {
	b := &batcher{rdb: rdb, in: make(chan *batchOp, 1024), quit: make(chan struct{})}
	for i := 0; i < batchWorkers; i++ {
		b.wg.Add(1)
		go b.work()
	}
	return b
}

func (b *batcher) close() {
	close(b.quit)
	b.wg.Wait()
}

// do runs cmd in the next pipeline and waits for its result. If ctx ends
// first, do returns ctx's error; the command may still run.
func (b *batcher) do(ctx context.Context, cmd redis.Cmder) error {
	op := opPool.Get().(*batchOp)
	op.cmd = cmd
	select {
	case b.in <- op:
	case <-ctx.Done():
		opPool.Put(op)
		return ctx.Err()
	case <-b.quit:
		opPool.Put(op)
		return redis.ErrClosed
	}
	select {
	case <-op.done:
		op.cmd = nil
		opPool.Put(op)
		return cmd.Err()
	case <-ctx.Done():
		// The worker still owns op; it is dropped, not reused.
		return ctx.Err()
	}
}

func (b *batcher) work() {
	defer b.wg.Done()
	ops := make([]*batchOp, 0, batchMax)
	for {
		select {
		case op := <-b.in:
			ops = append(ops[:0], op)
		case <-b.quit:
			return
		}
	fill:
		for len(ops) < batchMax {
			select {
			case op := <-b.in:
				ops = append(ops, op)
			default:
				break fill
			}
		}
		b.exec(ops)
	}
}

func (b *batcher) exec(ops []*batchOp) {
	ctx := context.Background()
	if len(ops) == 1 {
		_ = b.rdb.Process(ctx, ops[0].cmd)
	} else {
		pipe := b.rdb.Pipeline()
		for _, op := range ops {
			_ = pipe.Process(ctx, op.cmd)
		}
		_, _ = pipe.Exec(ctx) // each command keeps its own error
	}
	for _, op := range ops {
		op.done <- struct{}{}
	}
}

// isNoScript reports Redis's answer to EVALSHA for an unknown script (after
// a restart or a failover): the caller then sends the script itself.
func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// script is a Lua script known by its SHA-1.
type script struct {
	src, sha string
}

func newScript(src string) *script {
	sum := sha1.Sum([]byte(src))
	return &script{src: src, sha: hex.EncodeToString(sum[:])}
}

// run runs the script through the batcher: EVALSHA, then EVAL once if the
// server does not know the script yet.
func (s *script) run(ctx context.Context, b *batcher, keys []string, args ...any) *redis.Cmd {
	cmd := redis.NewCmd(ctx, scriptArgs("evalsha", s.sha, keys, args)...)
	if err := b.do(ctx, cmd); isNoScript(err) {
		cmd = redis.NewCmd(ctx, scriptArgs("eval", s.src, keys, args)...)
		_ = b.do(ctx, cmd)
	}
	return cmd
}

func scriptArgs(verb, script string, keys []string, args []any) []any {
	out := make([]any, 0, 3+len(keys)+len(args))
	out = append(out, verb, script, len(keys))
	for _, k := range keys {
		out = append(out, k)
	}
	return append(out, args...)
}
