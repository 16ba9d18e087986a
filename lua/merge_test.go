package lua

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/internal/redistest"
)

// The merge tests run random batches of window calls, then of reports on the
// reservations they made, twice on one Redis: once merged into one script
// call by Merger, once call by call, on keys under another prefix. Every call
// must get the same answer both ways and the keys must end up holding the
// same thing: a merged batch is exactly its calls run one after another.

// mergeCall is one Window call of a test batch, on keys without a prefix.
type mergeCall struct {
	mode      Mode
	counters  []Counter
	recordKey string // Reserve when set
}

// run makes the call through rdb with every key under prefix.
func (c mergeCall) run(ctx context.Context, win *Window, rdb redis.Scripter, prefix string) (Result, error) {
	cs := make([]Counter, len(c.counters))
	for i, ct := range c.counters {
		ct.Key = prefix + ct.Key
		cs[i] = ct
	}
	if c.recordKey != "" {
		return win.Reserve(ctx, rdb, cs, prefix+c.recordKey, time.Hour)
	}
	return win.Run(ctx, rdb, c.mode, cs)
}

// mergeBatch collects the commands of concurrent Window calls, one per
// call, and sends them as one merged command once all are in.
type mergeBatch struct {
	cmds []*redis.Cmd
	in   sync.WaitGroup
	ran  chan struct{}
}

// callScripter is the redis.Scripter of call i of a mergeBatch: it hands
// the command over and waits until the merged command has run.
type callScripter struct {
	b *mergeBatch
	i int
}

func (s callScripter) send(ctx context.Context, name, payload string, keys []string, args []any) *redis.Cmd {
	all := []any{name, payload, len(keys)}
	for _, k := range keys {
		all = append(all, k)
	}
	cmd := redis.NewCmd(ctx, append(all, args...)...)
	s.b.cmds[s.i] = cmd
	s.b.in.Done()
	<-s.b.ran
	return cmd
}

func (s callScripter) Eval(ctx context.Context, src string, keys []string, args ...any) *redis.Cmd {
	return s.send(ctx, "eval", src, keys, args)
}

func (s callScripter) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	return s.send(ctx, "evalsha", sha, keys, args)
}

func (s callScripter) EvalRO(ctx context.Context, src string, keys []string, args ...any) *redis.Cmd {
	return s.send(ctx, "eval_ro", src, keys, args)
}

func (s callScripter) EvalShaRO(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	return s.send(ctx, "evalsha_ro", sha, keys, args)
}

func (s callScripter) ScriptExists(ctx context.Context, _ ...string) *redis.BoolSliceCmd {
	cmd := redis.NewBoolSliceCmd(ctx)
	cmd.SetErr(errors.New("not in a merge test"))
	return cmd
}

func (s callScripter) ScriptLoad(ctx context.Context, _ string) *redis.StringCmd {
	cmd := redis.NewStringCmd(ctx)
	cmd.SetErr(errors.New("not in a merge test"))
	return cmd
}

type mergeOutcome struct {
	res Result
	err error
}

// runMerged runs calls concurrently, each through its own callScripter,
// merges their commands in call order into one and runs it on rdb.
func runMerged(t *testing.T, rdb *redis.Client, win *Window, calls []mergeCall, prefix string) []mergeOutcome {
	t.Helper()
	out := make([]mergeOutcome, len(calls))
	fns := make([]func(redis.Scripter), len(calls))
	for i, c := range calls {
		fns[i] = func(sc redis.Scripter) { out[i].res, out[i].err = c.run(context.Background(), win, sc, prefix) }
	}
	runMergedFuncs(t, rdb, fns)
	return out
}

// runMergedFuncs runs fns concurrently, each with its own callScripter
// through which it makes exactly one script call, merges those calls in
// order into one command and runs it on rdb.
func runMergedFuncs(t *testing.T, rdb *redis.Client, fns []func(redis.Scripter)) {
	t.Helper()
	b := &mergeBatch{cmds: make([]*redis.Cmd, len(fns)), ran: make(chan struct{})}
	b.in.Add(len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Go(func() { fn(callScripter{b, i}) })
	}
	b.in.Wait()
	m := NewMerger()
	for i, cmd := range b.cmds {
		if !m.Mergeable(cmd) {
			t.Fatalf("call %d is not mergeable: %v", i, cmd.Args()[:4])
		}
	}
	merged := m.Merge(nil, b.cmds)
	_ = rdb.Process(context.Background(), merged)
	m.Split(merged, b.cmds)
	close(b.ran)
	wg.Wait()
}

// reportOutcome is what one Report call answered.
type reportOutcome struct {
	res ReportResult
	err error
}

// runReports reports on random records of recs (some twice, and one that
// does not exist), merged under "merged:" and one by one under "single:",
// and compares the answers.
func runReports(t *testing.T, rng *rand.Rand, rdb *redis.Client, recs []string, round int) {
	t.Helper()
	ctx := context.Background()
	rep := NewReport(Packed)
	type report struct {
		key    string
		actual Actual
	}
	reports := []report{{key: fmt.Sprintf("{t}rec:none:%d", round), actual: Actual{0, 1, 1, 1}}}
	for range 1 + rng.IntN(12) {
		if len(recs) == 0 {
			break
		}
		reports = append(reports, report{key: recs[rng.IntN(len(recs))],
			actual: Actual{0, uint64(rng.IntN(9)), uint64(rng.IntN(9)), uint64(rng.IntN(9))}})
	}
	merged := make([]reportOutcome, len(reports))
	fns := make([]func(redis.Scripter), len(reports))
	for i, r := range reports {
		fns[i] = func(sc redis.Scripter) { merged[i].res, merged[i].err = rep.Run(ctx, sc, "merged:"+r.key, r.actual) }
	}
	runMergedFuncs(t, rdb, fns)
	for i, r := range reports {
		res, err := rep.Run(ctx, rdb, "single:"+r.key, r.actual)
		if fmt.Sprint(merged[i].res, merged[i].err) != fmt.Sprint(res, err) {
			t.Fatalf("round %d report %d (%s): merged %+v %v, single %+v %v", round, i, r.key, merged[i].res, merged[i].err, res, err)
		}
	}
}

// randomMergeBatch makes n calls on a few shared keys: every op (leases
// granted and returned too), shadow counters, peeks, reservations, and now
// and then a key holding a string.
func randomMergeBatch(rng *rand.Rand, n, round int, bucketNow int64) []mergeCall {
	keys := []string{"{t}a", "{t}b", "{t}c"}
	calls := make([]mergeCall, n)
	for i := range calls {
		c := mergeCall{mode: Charge}
		if rng.IntN(8) == 0 {
			c.mode = Peek
		}
		perm := rng.Perm(len(keys))[:1+rng.IntN(len(keys))]
		for _, k := range perm {
			ct := Counter{
				Key: keys[k], Bucket: time.Hour, Buckets: 1 + k,
				Limit: uint64(5 + 5*k), Cost: uint64(rng.IntN(6)),
				Shadow: rng.IntN(6) == 0, Op: Op(rng.IntN(5)),
			}
			if ct.Op == OpReserve {
				ct.Kind = uint8(1 + rng.IntN(3))
			}
			if ct.Op == OpLease && c.mode == Peek {
				ct.Op = OpCheck
			}
			if ct.Op == OpLease {
				ct.Shadow, ct.Holder = false, []string{"h1", "h2"}[rng.IntN(2)]
				if rng.IntN(2) == 0 {
					ct.From = bucketNow // a return
				}
			}
			if ct.Op == OpRefund && rng.IntN(2) == 0 {
				ct.From = bucketNow
			}
			c.counters = append(c.counters, ct)
		}
		if c.mode == Charge && rng.IntN(5) == 0 {
			c.recordKey = fmt.Sprintf("{t}rec:%d:%d", round, i)
		}
		if rng.IntN(25) == 0 {
			c.counters[0].Key = "{t}str" // holds a string: this call fails alone
		}
		calls[i] = c
	}
	return calls
}

// mergeEnv is the Redis a merge test runs on and how close in time its two
// runs are (0: the same instant, on miniredis with a pinned clock).
type mergeEnv struct {
	rdb   *redis.Client
	slack time.Duration
}

func testMergedEqualsSequential(t *testing.T, env mergeEnv) {
	ctx := context.Background()
	win := NewWindow(Packed)
	if err := win.Load(ctx, env.rdb); err != nil {
		t.Fatal(err)
	}
	if err := env.rdb.Set(ctx, "merged:{t}str", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := env.rdb.Set(ctx, "single:{t}str", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := NewReport(Packed).Load(ctx, env.rdb); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	var records []string // reservations made (and allowed) so far, without the prefix
	for round := range 40 {
		bucketNow := redisNow(t, env.rdb) / time.Hour.Microseconds()
		n := 1 + rng.IntN(24)
		if round == 0 {
			n = 128 // the Batcher's largest batch
		}
		calls := randomMergeBatch(rng, n, round, bucketNow)
		merged := runMerged(t, env.rdb, win, calls, "merged:")
		for i, c := range calls {
			res, err := c.run(ctx, win, env.rdb, "single:")
			compareOutcome(t, fmt.Sprintf("round %d call %d", round, i), merged[i], mergeOutcome{res, err}, env.slack)
			if c.recordKey != "" && err == nil && res.Allowed {
				records = append(records, c.recordKey)
			}
		}
		compareKeys(t, env.rdb, round)
		runReports(t, rng, env.rdb, records, round)
		compareKeys(t, env.rdb, round)
	}
}

func compareOutcome(t *testing.T, what string, merged, single mergeOutcome, slack time.Duration) {
	t.Helper()
	if (merged.err == nil) != (single.err == nil) {
		t.Fatalf("%s: merged err %v, single err %v", what, merged.err, single.err)
	}
	if merged.err != nil {
		if !strings.Contains(merged.err.Error(), "WRONGTYPE") {
			t.Fatalf("%s: unexpected error %v", what, merged.err)
		}
		return
	}
	m, s := merged.res, single.res
	if m.Allowed != s.Allowed || len(m.Counters) != len(s.Counters) {
		t.Fatalf("%s: merged allowed %v (%d counters), single %v (%d)", what, m.Allowed, len(m.Counters), s.Allowed, len(s.Counters))
	}
	near := func(a, b time.Duration) bool { return a-b <= slack && b-a <= slack }
	for j := range m.Counters {
		mc, sc := m.Counters[j], s.Counters[j]
		if mc.Over != sc.Over || mc.Used != sc.Used || mc.Remaining != sc.Remaining || mc.Amount != sc.Amount ||
			!near(mc.ResetAfter, sc.ResetAfter) || !near(mc.RetryAfter, sc.RetryAfter) || !near(mc.BucketLeft, sc.BucketLeft) {
			t.Fatalf("%s counter %d: merged %+v, single %+v", what, j, mc, sc)
		}
	}
}

// compareKeys checks that every key under "merged:" holds what its twin
// under "single:" holds, and that both expire or both do not.
func compareKeys(t *testing.T, rdb *redis.Client, round int) {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, k := range keys {
		_, rest, _ := strings.Cut(k, ":")
		if seen[rest] {
			continue
		}
		seen[rest] = true
		a, b := "merged:"+rest, "single:"+rest
		sa, sb := readKey(t, rdb, a), readKey(t, rdb, b) // a counter in either layout, or a hash
		if sa.kind != sb.kind {
			t.Fatalf("round %d: %s is a %s, %s a %s", round, a, sa.kind, b, sb.kind)
		}
		ha, hb := sa.hash, sb.hash
		if fmt.Sprint(withoutKeyPrefix(ha)) != fmt.Sprint(withoutKeyPrefix(hb)) {
			t.Fatalf("round %d: %s = %v, %s = %v", round, a, ha, b, hb)
		}
		if ta, tb := rdb.PTTL(ctx, a).Val(), rdb.PTTL(ctx, b).Val(); (ta > 0) != (tb > 0) {
			t.Fatalf("round %d: %s ttl %v, %s ttl %v", round, a, ta, b, tb)
		}
	}
}

// withoutKeyPrefix drops the prefix from a reservation record's key fields.
func withoutKeyPrefix(h map[string]string) map[string]string {
	out := make(map[string]string, len(h))
	for f, v := range h {
		if strings.HasPrefix(f, "k") {
			_, v, _ = strings.Cut(v, ":")
		}
		out[f] = v
	}
	return out
}

func TestMergedEqualsSequentialMiniredis(t *testing.T) {
	m := miniredis.RunT(t)
	m.SetTime(time.Date(2025, 7, 4, 10, 30, 0, 0, time.UTC))
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	testMergedEqualsSequential(t, mergeEnv{rdb: rdb})
}

func TestMergedEqualsSequentialRedis(t *testing.T) {
	rdb := redistest.Client(t, redistest.New(t))
	// Hour buckets: the two runs of a batch are milliseconds apart, so they
	// fall in one bucket unless an hour turns between them; wait that out.
	if left := time.Hour - time.Duration(redisNow(t, rdb)%time.Hour.Microseconds())*time.Microsecond; left < 5*time.Second {
		time.Sleep(left + 100*time.Millisecond)
	}
	testMergedEqualsSequential(t, mergeEnv{rdb: rdb, slack: time.Second})
}

// TestMergeRejectsOtherCommands checks what Mergeable lets through.
func TestMergeRejectsOtherCommands(t *testing.T) {
	m := NewMerger()
	one := func(name, payload string, rest ...any) *redis.Cmd {
		return redis.NewCmd(context.Background(), append([]any{name, payload}, rest...)...)
	}
	sha := redis.NewScript(windowSource(Packed)).Hash()
	for _, tc := range []struct {
		cmd  *redis.Cmd
		want bool
	}{
		{one("evalsha", sha, 1, "k", 1, 1, 0, 1), true},
		{one("eval", windowSource(Packed), 1, "k", 1, 1, 0, 1), true},
		{one("evalsha", sha, 1, "k", 2, 1, 0, 1), false}, // already two calls
		{one("evalsha", "0123", 1, "k", 1, 1, 0, 1), false},
		{one("eval", "return 1", 0, 1), false},
		{one("evalsha_ro", sha, 1, "k", 1, 0, 0, 1), false},
		{one("evalsha", sha, "1", "k", 1), false}, // key count not an int
		{one("evalsha", sha, 3, "k"), false},      // fewer keys than it says
	} {
		if got := m.Mergeable(tc.cmd); got != tc.want {
			t.Errorf("Mergeable(%v) = %v, want %v", tc.cmd.Args(), got, tc.want)
		}
	}
}

// TestSplitHandsOutWholeCallErrors checks that an error of the merged call
// reaches every call, and that a malformed reply is an error, not a panic.
func TestSplitHandsOutWholeCallErrors(t *testing.T) {
	m := NewMerger()
	cmds := []*redis.Cmd{redis.NewCmd(context.Background()), redis.NewCmd(context.Background())}
	merged := redis.NewCmd(context.Background())
	merged.SetErr(errors.New("NOSCRIPT No matching script"))
	m.Split(merged, cmds)
	for i, c := range cmds {
		if c.Err() == nil || !strings.Contains(c.Err().Error(), "NOSCRIPT") {
			t.Fatalf("call %d err = %v, want the merged call's NOSCRIPT", i, c.Err())
		}
	}
	merged = redis.NewCmd(context.Background())
	merged.SetVal([]any{int64(1)})
	m.Split(merged, cmds)
	for i, c := range cmds {
		if c.Err() == nil || !strings.Contains(c.Err().Error(), "want an array of 2") {
			t.Fatalf("call %d err = %v, want a reply-shape error", i, c.Err())
		}
	}
}

// TestMergeReusesTheLineItIsGiven checks that Merge builds into the storage
// it is handed, whatever that held before, and builds the same command line
// as into nothing.
func TestMergeReusesTheLineItIsGiven(t *testing.T) {
	m := NewMerger()
	hash := redis.NewScript(windowSource(Packed)).Hash()
	call := func(key string, args ...any) *redis.Cmd {
		return redis.NewCmd(context.Background(), append([]any{"evalsha", hash, 1, key, 1}, args...)...)
	}
	first := m.Merge(nil, []*redis.Cmd{call("a", "x", 1), call("b", "y", 2), call("c", "z", 3)})
	line := first.Args()
	line = line[:0]
	cmds := []*redis.Cmd{call("d", "v", 4), call("e", "w", 5)}
	reused := m.Merge(line, cmds)
	fresh := m.Merge(nil, cmds)
	if got, want := fmt.Sprint(reused.Args()), fmt.Sprint(fresh.Args()); got != want {
		t.Fatalf("merged into used storage: %s, want %s", got, want)
	}
	if &reused.Args()[0] != &line[:1][0] {
		t.Error("Merge did not build into the storage it was given")
	}
}

// TestSplitGivesEachCallItsOwnReply checks each call's reply is the one-call
// shape the wrappers parse, holding its own element of the merged reply.
func TestSplitGivesEachCallItsOwnReply(t *testing.T) {
	m := NewMerger()
	cmds := []*redis.Cmd{redis.NewCmd(context.Background()), redis.NewCmd(context.Background()), redis.NewCmd(context.Background())}
	merged := redis.NewCmd(context.Background())
	merged.SetVal([]any{[]any{int64(1)}, errors.New("WRONGTYPE x"), []any{int64(3)}})
	m.Split(merged, cmds)
	for i, want := range []string{"[[1]] <nil>", "[] WRONGTYPE x", "[[3]] <nil>"} {
		v, _ := cmds[i].Val().([]any)
		if got := fmt.Sprint(v, " ", cmds[i].Err()); got != want {
			t.Errorf("call %d: %s, want %s", i, got, want)
		}
		if v != nil && cap(v) != 1 {
			t.Errorf("call %d: reply has room for %d values; an append would write into another call's", i, cap(v))
		}
	}
}
