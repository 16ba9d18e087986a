package lua

import (
	"context"
	_ "embed"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

//go:embed runtime.lua
var runtimeSource string

// MaxRuntimeWrites bounds the writes of one call: audit entries are scored
// revision*1000 + j.
const MaxRuntimeWrites = 999

// RuntimeKeys are the keys runtime.lua writes; on a cluster they must share
// a hash tag.
type RuntimeKeys struct {
	Limits, Revision string
	// Audit is a sorted set: entries scored revision*1000 + j, j the
	// write's place in its call (1..MaxRuntimeWrites).
	Audit string
}

// RuntimeOp is what a RuntimeWrite does to its path.
type RuntimeOp string

// The operations of runtime.lua.
const (
	RuntimePut    RuntimeOp = "p" // write the record
	RuntimeDelete RuntimeOp = "d" // delete the record, if there is one
	RuntimeCheck  RuntimeOp = "c" // only check the version
)

// RuntimeWrite is one path of a runtime.lua call.
type RuntimeWrite struct {
	// Field is the path's id in the hash of runtime limits.
	Field string
	// Expected is "" (any), "+" (a record must exist), or the decimal
	// version the record must have now ("0": there must be none).
	Expected string
	Op       RuntimeOp
	// Record holds, for RuntimePut, the new record's JSON members after
	// version and updated_at_us, without the opening brace (`"a":1}`).
	Record string
	// Audit holds, for RuntimePut and RuntimeDelete, the audit entry's JSON
	// members after revision and at_us, without braces (`"who":"x"`).
	Audit string
}

// RuntimeResult is the answer of a runtime.lua call.
type RuntimeResult struct {
	// Written is true when the checks held and something was changed;
	// then Revision is the version of the records written. Unchanged is
	// true when the checks held but nothing needed a change; then Revision
	// is the current one. TimeUS is the Redis time, in µs.
	Written, Unchanged bool
	Revision           int64
	TimeUS             int64
	// Stale, when not Written, is the index of the write whose Expected
	// did not hold, and Current the version it found (0: none).
	Stale   int
	Current int64
}

// Runtime runs runtime.lua. It is safe for concurrent use.
type Runtime struct{ script *redis.Script }

// NewRuntime returns the wrapper of the runtime-limit write script.
func NewRuntime() *Runtime { return &Runtime{script: redis.NewScript(runtimeSource)} }

// Run applies writes in one step, all or none, keeping auditMax audit
// entries and publishing the new revision on channel.
func (r *Runtime) Run(ctx context.Context, rdb redis.Scripter, keys RuntimeKeys, channel string, auditMax int, writes []RuntimeWrite) (RuntimeResult, error) {
	if len(writes) == 0 || len(writes) > MaxRuntimeWrites {
		return RuntimeResult{}, fmt.Errorf("runtime script: %d writes, want 1 to %d", len(writes), MaxRuntimeWrites)
	}
	if auditMax < 1 {
		return RuntimeResult{}, fmt.Errorf("runtime script: audit bound %d, want at least 1", auditMax)
	}
	args := make([]any, 0, 3+5*len(writes))
	args = append(args, channel, auditMax, len(writes))
	for _, w := range writes {
		if w.Field == "" {
			return RuntimeResult{}, errors.New("runtime script: empty field")
		}
		switch w.Op {
		case RuntimePut, RuntimeDelete, RuntimeCheck:
		default:
			return RuntimeResult{}, fmt.Errorf("runtime script: op %q", w.Op)
		}
		args = append(args, w.Field, w.Expected, string(w.Op), w.Record, w.Audit)
	}
	reply, err := r.script.Run(ctx, rdb, []string{keys.Limits, keys.Revision, keys.Audit}, args...).Int64Slice()
	if err != nil {
		return RuntimeResult{}, fmt.Errorf("runtime script: %w", err)
	}
	if len(reply) != 3 || reply[0] < 0 || reply[0] > 2 {
		return RuntimeResult{}, fmt.Errorf("runtime script: reply %v, want {status, a, b}", reply)
	}
	if reply[0] == 0 {
		j := reply[1]
		if j < 1 || j > int64(len(writes)) {
			return RuntimeResult{}, fmt.Errorf("runtime script: stale write %d of %d", j, len(writes))
		}
		return RuntimeResult{Stale: int(j - 1), Current: reply[2]}, nil
	}
	return RuntimeResult{Written: reply[0] == 1, Unchanged: reply[0] == 2, Revision: reply[1], TimeUS: reply[2]}, nil
}
