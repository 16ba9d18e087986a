package store

// How it works
//
// A Batcher is a redis.Scripter that sends concurrent script calls to Redis
// together. Each EVAL/EVALSHA becomes a call on a bounded queue; a few flusher
// goroutines each take the first waiting call, everything else already queued
// (up to MaxBatch), and send it as one pipeline: one write and one read for
// many decisions instead of a write, a read and a pool checkout for each.
// While one flusher waits for its replies, the callers that arrive queue up
// for the next, so batches grow with the load and a lone caller still goes
// out at once (there is no timer).
//
// Every call keeps its own *redis.Cmd, so each caller reads its own reply and
// its own error (a NOSCRIPT in one reply does not touch the others, and
// redis.Script.Run falls back to EVAL as usual). A caller that built its
// command line itself hands it over as it is (Send); Eval and EvalSha build it
// as go-redis does. A caller waits for its reply or its context, whichever
// comes first: when the context ends first it gets the context's error at
// once and a fresh Cmd, never the one the flusher may still be writing into.
//
// The hand-off costs a caller no select on the Batcher's own channels: it
// puts its call on the queue with a plain send (a select on the queue and its
// context only when the queue is full) and then waits on its call's done and
// its context, nothing else. That needs Close to leave no call stranded on
// the queue: callers queue under a read lock and Close marks the Batcher
// closed under the write lock before it tells the flushers to stop, so once
// the flushers drain the queue no call can join it; every queued call is
// either sent or failed with redis.ErrClosed, and its caller woken. (Close
// first wakes the callers waiting for room, so it never waits on one.)
//
// A pipeline runs under the latest deadline of its calls, so a dead Redis
// costs it no more than its callers were prepared to wait — but never under
// less than MinPipelineTimeout: a caller that gives Redis 3 ms gets its
// context's error at 3 ms all the same, but its deadline does not abort a
// pipeline Redis is about to answer (go-redis closes the connection of a
// pipeline that timed out, so short deadlines would cost everybody a new
// connection per batch). Close stops the flushers, which take
// no new call once it has begun, and fails whatever is still queued.
//
// A Merger goes one step further for the scripts it knows: the calls of a
// batch that it can merge become one script call doing the work of all of
// them (on a cluster, one per hash slot), and each caller still gets its own
// reply or error from it. See lua.Merger.
//
// On a cluster client the pipeline is split by node (go-redis maps each
// command to its slot's master and sends one sub-pipeline per node, in
// parallel); every command still reads its own reply, a MOVED or ASK reply
// is followed for that command alone, and a NOSCRIPT reply falls back to EVAL
// for that caller alone, as on a single node. SCRIPT LOAD goes to every
// master.

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// MinPipelineTimeout is the least time a pipeline waits for Redis, whatever
// its callers' deadlines (see How it works).
const MinPipelineTimeout = 100 * time.Millisecond

// BatchConfig sizes a Batcher.
type BatchConfig struct {
	// MaxBatch is the most calls sent in one pipeline (Optional, default 128).
	MaxBatch int
	// Flushers is how many pipelines may be in flight at once, each on its own
	// connection (Optional, default 2).
	Flushers int
	// QueueSize bounds the calls waiting for a flusher; a caller finding the
	// queue full waits for room or for its context (Optional, default 4096).
	QueueSize int
	// Mergers fold calls of a batch into fewer script calls (Optional).
	Mergers []Merger
}

// A Merger folds several calls of one script, sent together, into one script
// call that does the work of all of them in order, and hands each call its
// own part of the reply.
type Merger interface {
	// Mergeable reports whether Merge can fold cmd.
	Mergeable(cmd *redis.Cmd) bool
	// Merge returns one command doing the work of cmds, in order, its
	// command line appended to line: empty, with the storage of an earlier
	// merged command's line the Batcher is done with (nil at first). The
	// Batcher passes commands that are all Mergeable, of one command name
	// (EVAL or EVALSHA) and, on a cluster, of one hash slot.
	Merge(line []any, cmds []*redis.Cmd) *redis.Cmd
	// Split sets the reply or error of each of cmds from merged, once merged
	// has run.
	Split(merged *redis.Cmd, cmds []*redis.Cmd)
}

func (c *BatchConfig) setDefaults() {
	if c.MaxBatch <= 0 {
		c.MaxBatch = 128
	}
	if c.Flushers <= 0 {
		c.Flushers = 2
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 4096
	}
}

// Pipeliner is the client a Batcher sends through: a *redis.Client (single
// node or Sentinel) or a *redis.ClusterClient.
type Pipeliner interface {
	redis.Scripter
	Pipeline() redis.Pipeliner
}

// Batcher is a redis.Scripter that pipelines concurrent script calls. Its
// methods are safe for concurrent use.
type Batcher struct {
	pipeline func() redis.Pipeliner
	scripts  redis.Scripter // SCRIPT LOAD / SCRIPT EXISTS go straight through
	cluster  bool
	maxBatch int
	mergers  []Merger
	queue    chan *call
	// mu orders queueing against Close: callers queue under its read lock,
	// Close sets closed under its write lock (see How it works).
	mu      sync.RWMutex
	closed  bool
	closing chan struct{} // closed by Close first: callers waiting for room give up
	quit    chan struct{} // closed by Close once closed is set: flushers drain the queue and stop
	close   sync.Once
	wg      sync.WaitGroup
}

// call is one queued script call. The flusher sends on done (buffered, so it
// never blocks) once cmd holds its reply or error; until then only the
// flusher touches cmd. A call whose caller saw done is recycled; one whose
// caller gave up first is left to the garbage collector.
type call struct {
	ctx  context.Context
	cmd  *redis.Cmd
	done chan struct{}
}

var calls = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

// finish hands c back to its caller.
func (c *call) finish() { c.done <- struct{}{} }

// recycle returns a call whose done has been received to the pool.
func (c *call) recycle() {
	c.ctx, c.cmd = nil, nil
	calls.Put(c)
}

var _ redis.Scripter = (*Batcher)(nil)

// NewBatcher starts a Batcher that sends its pipelines through rdb. Close it
// to stop its goroutines; it does not close rdb.
func NewBatcher(rdb Pipeliner, cfg BatchConfig) *Batcher {
	cfg.setDefaults()
	_, cluster := rdb.(*redis.ClusterClient)
	b := &Batcher{
		pipeline: rdb.Pipeline,
		scripts:  rdb,
		cluster:  cluster,
		maxBatch: cfg.MaxBatch,
		mergers:  cfg.Mergers,
		queue:    make(chan *call, cfg.QueueSize),
		closing:  make(chan struct{}),
		quit:     make(chan struct{}),
	}
	b.wg.Add(cfg.Flushers)
	for range cfg.Flushers {
		go b.flusher()
	}
	return b
}

// Cluster reports whether the Batcher sends to a Redis Cluster, where one
// script call may only touch the keys of one hash slot.
func (b *Batcher) Cluster() bool { return b.cluster }

// Close stops the flushers; calls still queued, and every later call, fail
// with redis.ErrClosed. It waits for in-flight pipelines to finish.
func (b *Batcher) Close() error {
	b.close.Do(func() {
		close(b.closing)
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		close(b.quit)
	})
	b.wg.Wait()
	return nil
}

// Eval runs EVAL through the batch.
func (b *Batcher) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return b.Send(ctx, evalCmd(ctx, "eval", script, keys, args))
}

// EvalSha runs EVALSHA through the batch.
func (b *Batcher) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return b.Send(ctx, evalCmd(ctx, "evalsha", sha1, keys, args))
}

// EvalRO runs EVAL_RO through the batch.
func (b *Batcher) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return b.Send(ctx, evalCmd(ctx, "eval_ro", script, keys, args))
}

// EvalShaRO runs EVALSHA_RO through the batch.
func (b *Batcher) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return b.Send(ctx, evalCmd(ctx, "evalsha_ro", sha1, keys, args))
}

// ScriptExists is sent on its own, not batched.
func (b *Batcher) ScriptExists(ctx context.Context, hashes ...string) *redis.BoolSliceCmd {
	return b.scripts.ScriptExists(ctx, hashes...)
}

// ScriptLoad is sent on its own, not batched.
func (b *Batcher) ScriptLoad(ctx context.Context, script string) *redis.StringCmd {
	return b.scripts.ScriptLoad(ctx, script)
}

// evalCmd builds the command exactly as go-redis's own Eval family does.
func evalCmd(ctx context.Context, name, payload string, keys []string, args []any) *redis.Cmd {
	cmdArgs := make([]any, 3+len(keys), 3+len(keys)+len(args))
	cmdArgs[0], cmdArgs[1], cmdArgs[2] = name, payload, len(keys)
	for i, k := range keys {
		cmdArgs[3+i] = k
	}
	cmdArgs = append(cmdArgs, args...)
	cmd := redis.NewCmd(ctx, cmdArgs...)
	if len(keys) > 0 {
		cmd.SetFirstKeyPos(3)
	}
	return cmd
}

// failed returns a fresh command that carries err.
func failed(ctx context.Context, err error) *redis.Cmd {
	cmd := redis.NewCmd(ctx)
	cmd.SetErr(err)
	return cmd
}

// Send sends cmd, a script call whose command line its caller built as
// go-redis's Eval family does (lower-case name, script or hash, key count as
// an int, keys, arguments; first key position 3 when there are keys),
// through the batch, and returns the command holding its reply or error:
// cmd itself, or, when ctx ended first or the Batcher is closed, a fresh one
// carrying that error. In that case the flusher may still be writing into
// cmd: read only the command Send returns. A NOSCRIPT reply is returned as
// it is; falling back to EVAL is the caller's.
func (b *Batcher) Send(ctx context.Context, cmd *redis.Cmd) *redis.Cmd {
	if err := ctx.Err(); err != nil {
		return failed(ctx, err)
	}
	c := calls.Get().(*call)
	c.ctx, c.cmd = ctx, cmd
	if err := b.enqueue(c); err != nil {
		c.recycle()
		return failed(ctx, err)
	}
	select {
	case <-c.done:
		c.recycle()
		return cmd
	case <-ctx.Done():
		return failed(ctx, ctx.Err())
	}
}

// enqueue puts c on the queue, waiting for room if it is full; it fails
// with redis.ErrClosed once Close has begun and with ctx's error when ctx
// ends first. A call it has queued is certain to be finished (see How it
// works).
func (b *Batcher) enqueue(c *call) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return redis.ErrClosed
	}
	select {
	case b.queue <- c:
		return nil
	default:
	}
	select {
	case b.queue <- c:
		return nil
	case <-c.ctx.Done():
		return c.ctx.Err()
	case <-b.closing:
		return redis.ErrClosed
	}
}

// flusher sends batches until Close, then fails what is left in the queue.
func (b *Batcher) flusher() {
	defer b.wg.Done()
	batch := make([]*call, 0, b.maxBatch)
	var groups mergeGroups
	pipe := b.pipeline() // Exec leaves it empty for the next batch
	for {
		select {
		case <-b.quit: // first: once Close has told the flushers to stop, no call goes out
			b.failQueued()
			return
		default:
		}
		select {
		case c := <-b.queue:
			batch = append(batch[:0], c)
		case <-b.quit:
			b.failQueued()
			return
		}
	fill:
		for len(batch) < b.maxBatch {
			select {
			case c := <-b.queue:
				batch = append(batch, c)
			default:
				break fill
			}
		}
		b.exec(batch, &groups, pipe)
		clear(batch) // drop references to finished calls
	}
}

// failQueued fails every call still in the queue with redis.ErrClosed.
func (b *Batcher) failQueued() {
	for {
		select {
		case c := <-b.queue:
			c.cmd.SetErr(redis.ErrClosed)
			c.finish()
		default:
			return
		}
	}
}

// exec sends the live calls of batch as one pipeline and completes them all.
// Calls a Merger can fold go out as one merged command per group.
func (b *Batcher) exec(batch []*call, groups *mergeGroups, pipe redis.Pipeliner) {
	var (
		latest   time.Time
		noLimit  bool
		pipeSize int
	)
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			// Its caller has given up (or is about to): do not spend Redis on it.
			c.cmd.SetErr(err)
			continue
		}
		if d, ok := c.ctx.Deadline(); !ok {
			noLimit = true
		} else if d.After(latest) {
			latest = d
		}
		if groups.add(b.mergers, b.cluster, c.cmd) {
			continue
		}
		_ = pipe.Process(context.Background(), c.cmd) // queues only
		pipeSize++
	}
	for _, g := range groups.list {
		_ = pipe.Process(context.Background(), g.command())
		pipeSize++
	}
	if pipeSize > 0 {
		ctx := context.Background()
		if !noLimit {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, later(latest, time.Now().Add(MinPipelineTimeout)))
			defer cancel()
		}
		// Exec records each command's own reply or error in it; the error it
		// returns is only the first of those.
		_, _ = pipe.Exec(ctx)
	}
	groups.split()
	groups.reset() // drop references to the finished commands
	for _, c := range batch {
		c.finish()
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
