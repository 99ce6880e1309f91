package storage

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// batcher sends the commands of concurrent requests to Redis together, in
// pipelines: under load one write and one read system call (on both ends)
// carry dozens of commands instead of one each, which is most of what a
// registration costs besides HTTP itself.
//
// There is no flusher goroutine to hand commands to: the caller that finds
// no pipeline in flight sends the queued commands itself (it leads), so a
// lone request waits no longer than without batching and costs no extra
// goroutine switch. Commands that arrive meanwhile queue up; when the
// leader's pipeline returns it wakes the first of them to lead the next,
// so one pipeline at a time carries everything that arrived during the
// previous one. A second pipeline starts only when batchSecond commands
// wait: each pipeline costs system calls and wake-ups on both ends,
// whatever its size, so they are kept deep.
type batcher struct {
	rdb redis.UniversalClient
	// maxWait bounds how long a command may wait in the queue: one that
	// waited longer is failed unsent when a leader takes it, so that behind
	// pipelines that each wait out a hung Redis's timeout, requests get
	// their 503 after about two timeouts instead of one per pipeline ahead.
	maxWait time.Duration

	// waitReplicas, when positive, makes every pipeline end with WAIT
	// waitReplicas waitTimeout: a write is reported done only once that
	// many replicas have it, so that a failover right after a 201 cannot
	// lose the client (replication is asynchronous otherwise). WAIT counts
	// the connection's writes, and a pipeline runs on one connection, so
	// one WAIT covers all of them. Such a batcher carries the writes of
	// records only; reads and counters go through another one, so that
	// they never queue behind a WAIT.
	waitReplicas int
	waitTimeout  time.Duration

	// stopped is closed by close, for background work to end promptly.
	stopped chan struct{}

	// inflight counts the calls of do under way, and lastDone is when the
	// last one ended (UnixNano): see RedisPool.Retire.
	inflight, lastDone atomic.Int64

	mu     sync.Mutex
	queue  []*batchOp // waiting for the next pipeline
	spare  []*batchOp
	busy   int // pipelines in flight (leaders)
	closed bool
}

type batchOp struct {
	// pre, when set, goes just before cmd in the same pipeline: a
	// transaction's MULTI and the commands it queues, cmd being its EXEC.
	pre    []redis.Cmder
	cmd    redis.Cmder
	queued time.Time // when it joined the queue
	// unreplicated is set when the replicas did not confirm the pipeline
	// the command ran in (see waitReplicas).
	unreplicated *notReplicatedError
	// done receives false once the command ran, or true when the waiter is
	// to lead the next pipeline (then false once it ran in that pipeline).
	done  chan bool
	state atomic.Int32
	// marked holds pre and cmd wrapped in noRetry while a pipeline sends
	// them, in storage kept with the op, so that the wrapping costs no
	// allocation per command.
	marked []noRetry
}

// mark wraps op's commands in noRetry, in sending order, in op.marked.
func (op *batchOp) mark() []noRetry {
	m := op.marked[:0]
	for _, c := range op.pre {
		m = append(m, noRetry{c})
	}
	op.marked = append(m, noRetry{op.cmd})
	return op.marked
}

// The states of a batchOp. A waiter gives up (abandons its command), is
// made a leader, or has its command taken into a leader's pipeline only by
// changing it from opWaiting, so exactly one of these happens: a command
// that was abandoned is never sent, and a waiter whose command was taken
// waits for its result. A waiter made a leader is taken out of the queue at
// once, so its command runs in the pipeline it leads and in no other.
const (
	opWaiting int32 = iota
	opAbandoned
	opLeading
	opTaken
)

const (
	batchWorkers = 2   // pipelines in flight at once
	batchSecond  = 16  // waiting commands that start a second pipeline
	batchMax     = 128 // operations per pipeline (a transaction is one, of several commands)
)

var opPool = sync.Pool{New: func() any { return &batchOp{done: make(chan bool, 1)} }}

func newBatcher(rdb redis.UniversalClient, maxWait time.Duration) *batcher {
	return &batcher{rdb: rdb, maxWait: maxWait, stopped: make(chan struct{})}
}

// errQueueTimeout fails a command that waited longer than maxWait to be sent.
var errQueueTimeout = errors.New("redis: command waited too long to be sent")

// close makes later commands fail with redis.ErrClosed; pipelines in flight
// finish (against the closed client, they fail too). It also ends the
// background work that waits on stopped. Calling it again does nothing.
func (b *batcher) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.stopped)
	}
}

// abandonedError is the error of do when ctx ended while the command was
// still queued: it was not sent, and never will be.
type abandonedError struct{ err error }

func (e abandonedError) Error() string { return e.err.Error() }
func (e abandonedError) Unwrap() error { return e.err }

// abandoned reports whether err is do's for a command given up before it
// was sent.
func abandoned(err error) bool {
	_, ok := err.(abandonedError)
	return ok
}

// do runs cmd in the next pipeline and returns its error. If ctx ends
// while the command is still queued, do returns an abandonedError wrapping
// ctx's error and the command is not sent; once sent, do waits for its
// result (bounded by the client's read timeout).
//
// With waitReplicas, a command that may have been carried out (its reply
// came, or was lost in transit) in a pipeline the replicas did not
// confirm fails with a *notReplicatedError; cmd holds Redis's reply if
// it came.
func (b *batcher) do(ctx context.Context, cmd redis.Cmder) error {
	return b.doAfter(ctx, nil, cmd)
}

// doAfter is do for cmd preceded by pre, all sent together in this order
// on one connection (a transaction), with cmd's error as the result: the
// commands of pre keep their own replies.
func (b *batcher) doAfter(ctx context.Context, pre []redis.Cmder, cmd redis.Cmder) error {
	b.inflight.Add(1)
	defer func() {
		b.lastDone.Store(time.Now().UnixNano())
		b.inflight.Add(-1)
	}()
	op := opPool.Get().(*batchOp)
	op.cmd, op.pre = cmd, pre
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		op.cmd, op.pre = nil, nil
		opPool.Put(op)
		return redis.ErrClosed
	}
	lead := b.busy == 0 || (b.busy < batchWorkers && len(b.queue)+1 >= batchSecond)
	if lead {
		b.busy++
		op.state.Store(opLeading)
	} else {
		op.state.Store(opWaiting)
		op.queued = time.Now()
		b.queue = append(b.queue, op)
	}
	b.mu.Unlock()
	if !lead {
		select {
		case lead = <-op.done:
		case <-ctx.Done():
			if op.state.CompareAndSwap(opWaiting, opAbandoned) {
				// The next leader drops op from the queue; it is not reused.
				return abandonedError{ctx.Err()}
			}
			// Taken into a pipeline (wait for its result) or made a
			// leader (lead; others wait for it) meanwhile.
			lead = <-op.done
		}
		if !lead {
			return b.finish(op)
		}
	}
	b.leadPipelines(op)
	<-op.done
	return b.finish(op)
}

func (b *batcher) finish(op *batchOp) error {
	err := op.cmd.Err()
	// A reply lost in transit does not mean the command did nothing: if
	// the replicas did not confirm the pipeline, the command may be on
	// the master only, and must not be read back as done.
	if nr := op.unreplicated; nr != nil && (err == nil || outcomeOpen(err)) {
		own := *nr
		own.replyErr = err
		err = &own
	}
	clear(op.marked)
	op.cmd, op.pre, op.unreplicated = nil, nil, nil
	opPool.Put(op)
	return err
}

// leadPipelines sends self's command and the waiting ones, then hands the
// lead to a waiter if commands queued up meanwhile (or sends them too, if
// all of those were abandoned).
func (b *batcher) leadPipelines(self *batchOp) {
	for {
		b.mu.Lock()
		ops := b.spare[:0]
		b.spare = nil
		if self != nil {
			ops = append(ops, self)
			self = nil
		}
		n := min(len(b.queue), batchMax-len(ops))
		var stale []*batchOp
		now := time.Now()
		for _, op := range b.queue[:n] {
			// An abandoned command is dropped here, unsent.
			if !op.state.CompareAndSwap(opWaiting, opTaken) {
				continue
			}
			if b.maxWait > 0 && now.Sub(op.queued) > b.maxWait {
				stale = append(stale, op)
				continue
			}
			ops = append(ops, op)
		}
		rest := copy(b.queue, b.queue[n:])
		clear(b.queue[rest:])
		b.queue = b.queue[:rest]
		b.mu.Unlock()
		for _, op := range stale {
			op.cmd.SetErr(abandonedError{errQueueTimeout})
			op.done <- false
		}

		if len(ops) == 0 {
			// Everything taken had been abandoned: see whether more
			// queued up meanwhile, as after a pipeline.
			b.mu.Lock()
			b.spare = ops[:0]
			if len(b.queue) > 0 {
				b.mu.Unlock()
				continue
			}
			b.busy--
			b.mu.Unlock()
			return
		}
		b.exec(ops)

		clear(ops)
		b.mu.Lock()
		if b.spare == nil || cap(ops) > cap(b.spare) {
			b.spare = ops[:0]
		}
		if len(b.queue) > 0 && (b.busy == 1 || len(b.queue) >= batchSecond) {
			for i, next := range b.queue {
				if next.state.CompareAndSwap(opWaiting, opLeading) {
					last := len(b.queue) - 1
					copy(b.queue[i:], b.queue[i+1:])
					b.queue[last] = nil
					b.queue = b.queue[:last]
					b.mu.Unlock()
					next.done <- true
					return
				}
			}
			b.mu.Unlock()
			continue // every waiter gave up: the next round drops them
		}
		b.busy--
		b.mu.Unlock()
		return
	}
}

// exec runs ops as one pipeline and tells their waiters. It runs on a
// request's goroutine: a panic in the client fails the commands instead of
// leaving their waiters and the lead stranded.
func (b *batcher) exec(ops []*batchOp) {
	defer func() {
		if r := recover(); r != nil {
			err := fmt.Errorf("redis pipeline panicked: %v", r)
			for _, op := range ops {
				op.cmd.SetErr(err)
				if b.waitReplicas > 0 {
					// Unconfirmed: never to be read back as done.
					op.unreplicated = &notReplicatedError{want: int64(b.waitReplicas), timeout: b.waitTimeout, waitErr: err}
				}
			}
		}
		for _, op := range ops {
			op.done <- false
		}
	}()
	// One timeout bounds the whole pipeline, a new connection's dial and
	// handshake included (the client honours the deadline: see
	// ContextTimeoutEnabled); without it each of those steps would get a
	// timeout of its own. A WAIT gets its own time on top.
	ctx := context.Background()
	if b.maxWait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.maxWait+b.waitTimeout)
		defer cancel()
	}
	wait := b.waitReplicas > 0
	if len(ops) == 1 && !wait && ops[0].pre == nil {
		_ = b.rdb.Process(ctx, &ops[0].mark()[0])
		b.checkTopology(ops)
		return
	}
	pipe := b.rdb.Pipeline()
	for _, op := range ops {
		m := op.mark()
		for i := range m {
			_ = pipe.Process(ctx, &m[i])
		}
	}
	var waitCmd *redis.IntCmd
	if wait {
		waitCmd = redis.NewIntCmd(ctx, "wait", b.waitReplicas, b.waitTimeout.Milliseconds())
		_ = pipe.Process(ctx, noRetry{waitCmd})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		stampUnanswered(ops, waitCmd, err)
	}
	b.checkTopology(ops)
	if wait {
		if nr := b.replicated(waitCmd); nr != nil {
			for _, op := range ops {
				op.unreplicated = nr
			}
		}
	}
}

// stampUnanswered gives err, the error of a whole pipeline, to its
// commands when none has an error of its own. Each command normally keeps
// its own, but go-redis leaves them all unanswered and without an error
// when the connection failed before they were sent (its AUTH refused with
// WRONGPASS, for one): a script would then read as having returned 0 (a
// create as "exists", retried until it answers 500) and a GET as an empty
// record, instead of the outage they are.
func stampUnanswered(ops []*batchOp, waitCmd *redis.IntCmd, err error) {
	for _, op := range ops {
		if op.cmd.Err() != nil {
			return
		}
	}
	if waitCmd != nil && waitCmd.Err() != nil {
		return
	}
	for _, op := range ops {
		op.cmd.SetErr(err)
	}
	if waitCmd != nil {
		waitCmd.SetErr(err)
	}
}

// checkTopology has a cluster client look up which node serves which slot
// again when a command failed in a way that may mean the cluster changed:
// no reply at all (a node died: with noRetry, go-redis does not reload by
// itself, and a dead master sends no MOVED, so requests would fail until
// its periodic reload, up to a minute after a replica took over), or a
// reply saying the cluster is failing over. go-redis runs one reload at a
// time, in the background, a little apart, however often it is asked.
func (b *batcher) checkTopology(ops []*batchOp) {
	cc, ok := b.rdb.(*redis.ClusterClient)
	if !ok {
		return
	}
	for _, op := range ops {
		err := op.cmd.Err()
		if err == nil || err == redis.Nil || errors.Is(err, redis.ErrClosed) {
			continue // a closed client (a reload retired it) has nothing to look up
		}
		if !isReply(err) || clusterChanging(err) {
			cc.ReloadState(context.Background())
			return
		}
	}
}

// isReply reports whether err is Redis's answer (an error reply), rather
// than the lack of one.
func isReply(err error) bool {
	var reply redis.Error
	return errors.As(err, &reply)
}

// oomReply reports Redis's refusal of a write over its maxmemory: its own
// reply, or, from a script, that reply inside the script's error (Redis 6).
func oomReply(err error) bool {
	return isReply(err) && strings.Contains(err.Error(), "OOM command not allowed")
}

// clusterChanging reports a reply refusing a command for now because the
// cluster is failing over or moving the slot (the command was not run).
func clusterChanging(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "CLUSTERDOWN") || strings.HasPrefix(msg, "MASTERDOWN") || strings.HasPrefix(msg, "TRYAGAIN")
}

// notReplicatedError is the error of a write that Redis may have carried
// out (replyErr is nil when its reply came: then it did, as the reply
// says) but that fewer replicas than required confirmed in time: the
// master may have it, a failover could lose it.
type notReplicatedError struct {
	acked, want int64
	timeout     time.Duration
	waitErr     error // WAIT itself failed
	replyErr    error // the write's own reply was lost
}

func (e *notReplicatedError) Error() string {
	msg := fmt.Sprintf("redis: the write reached %d of the %d replicas required (wait_replicas) within %s", e.acked, e.want, e.timeout)
	if e.waitErr != nil {
		msg = "redis: the replicas did not confirm the write (wait_replicas): WAIT: " + e.waitErr.Error()
	}
	if e.replyErr != nil && e.replyErr != e.waitErr {
		msg += "; the write's reply: " + e.replyErr.Error()
	}
	return msg
}

func (e *notReplicatedError) Unwrap() error { return e.waitErr }

// notReplicated returns err's notReplicatedError, or nil.
func notReplicated(err error) *notReplicatedError {
	if err == nil {
		return nil // the common case, without errors.As's allocation
	}
	var nr *notReplicatedError
	if errors.As(err, &nr) {
		return nr
	}
	return nil
}

// replicated checks the reply to a pipeline's WAIT.
func (b *batcher) replicated(cmd *redis.IntCmd) *notReplicatedError {
	want := int64(b.waitReplicas)
	if err := cmd.Err(); err != nil {
		return &notReplicatedError{want: want, timeout: b.waitTimeout, waitErr: err}
	}
	if n := cmd.Val(); n < want {
		return &notReplicatedError{acked: n, want: want, timeout: b.waitTimeout}
	}
	return nil
}

// noRetry keeps go-redis from sending a command again after a transport
// error. MaxRetries turns that off for a single node and Sentinel, but the
// cluster client resends on its own (after EOF, a reset, a failing node):
// a script run twice would leave an orphan or report a false conflict, and
// an error from the resend (a refused dial) would hide that the first send
// reached Redis (see outcomeOpen). Replies still land in the wrapped
// command; MOVED and ASK redirections are followed as before.
type noRetry struct{ redis.Cmder }

func (noRetry) NoRetry() bool { return true }

// isNoScript reports Redis's answer to EVALSHA for an unknown script (after
// a restart or a failover): the caller then sends the script itself.
func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// script is a Lua script known by its SHA-1.
type script struct {
	src, sha string
	// shaArg is sha boxed once, as the second argument of EVALSHA.
	shaArg any
}

func newScript(src string) *script {
	sum := sha1.Sum([]byte(src))
	sha := hex.EncodeToString(sum[:])
	return &script{src: src, sha: sha, shaArg: sha}
}

// run runs the script through the batcher and returns its integer result.
// args is the whole EVALSHA command: "evalsha", s.shaArg, the number of
// keys, the keys, then the arguments. With a *notReplicatedError, the
// result is still the script's if its reply came: what it did on the
// master.
func (s *script) run(ctx context.Context, b *batcher, args []any) (int64, error) {
	cmd, err := runScript(ctx, s, b, args, redis.NewIntCmd)
	if err != nil && notReplicated(err) == nil {
		return 0, err
	}
	return cmd.Val(), err
}

// runSlice is run for a script that returns an array of integers.
func (s *script) runSlice(ctx context.Context, b *batcher, args []any) ([]int64, error) {
	cmd, err := runScript(ctx, s, b, args, redis.NewIntSliceCmd)
	if err != nil {
		return nil, err
	}
	return cmd.Val(), nil
}

// runScript sends args (an EVALSHA command) as a command made by newCmd;
// if the server does not know the script yet, it is sent once with EVAL.
//
// A script refused because the cluster is failing over or migrating the
// store's slot (TRYAGAIN: a script's keys are split between two nodes for
// the moment; CLUSTERDOWN, MASTERDOWN; LOADING after a restart) did not
// run, so it is sent again after a short pause, for up to the store's
// timeout: most such moments are over by then, and the request succeeds
// instead of getting a 503.
func runScript[C redis.Cmder](ctx context.Context, s *script, b *batcher, args []any, newCmd func(context.Context, ...any) C) (C, error) {
	var cmd C
	err := retryRefused(ctx, b, func() error {
		cmd = newCmd(ctx, args...)
		keyPos(cmd, args)
		err := b.do(ctx, cmd)
		if isNoScript(err) {
			cmd = newCmd(ctx, s.evalArgs(args)...)
			keyPos(cmd, args)
			err = b.do(ctx, cmd)
		}
		return err
	})
	return cmd, err
}

// retryRefused calls try, and again after a short pause while its error
// is one by which Redis refused the command for a moment (refusedForNow),
// for up to the batcher's timeout. try sends new commands each time.
func retryRefused(ctx context.Context, b *batcher, try func() error) error {
	var start time.Time
	pause := scriptRetryPause
	for {
		err := try()
		if !refusedForNow(err) {
			return err
		}
		if start.IsZero() {
			start = time.Now()
		}
		if b.maxWait <= 0 || time.Since(start)+pause > b.maxWait {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-b.stopped:
			return err
		case <-time.After(pause):
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// scriptRetryPause is the first pause before a refused script is sent again.
var scriptRetryPause = 10 * time.Millisecond

// refusedForNow reports a reply by which Redis refused to run a command
// for a moment (the command did nothing): see runScript.
func refusedForNow(err error) bool {
	return err != nil && isReply(err) && (clusterChanging(err) || strings.HasPrefix(err.Error(), "LOADING"))
}

// keyPos tells go-redis where the first key of a script call is, which it
// would otherwise work out from the arguments for Redis Cluster.
func keyPos(cmd redis.Cmder, args []any) {
	if n, ok := args[2].(int); ok && n > 0 {
		cmd.SetFirstKeyPos(3)
	}
}

// evalArgs turns EVALSHA arguments into EVAL ones.
func (s *script) evalArgs(args []any) []any {
	out := make([]any, len(args))
	copy(out, args)
	out[0], out[1] = "eval", s.src
	return out
}

// idleFor reports whether no call of do is under way and none ended in the
// last d.
func (b *batcher) idleFor(d time.Duration) bool {
	return b.inflight.Load() == 0 && time.Since(time.Unix(0, b.lastDone.Load())) >= d
}
