package lua

import (
	"context"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"
)

// Merger folds calls of Sluice's scripts that are sent together into one
// script call per script: window.lua and report.lua each run a batch of calls
// one after another, exactly as separate calls at the same Redis TIME would
// run, reading each counter once and writing it once for the whole batch. A
// pipelining client (the store's Batcher) hands it the calls it is about to
// send.
//
// Every call Window and Report send is a batch of one — EVALSHA or EVAL of
// the script with the call count 1 as the first argument — so Merge can
// concatenate their keys and their per-call arguments, and Split can give
// each its own element of the merged reply, in the one-call shape the
// wrappers parse. Only calls of the same script may be merged together.
type Merger struct {
	scripts map[string]bool // the hash and the source of every batch-capable script
}

// NewMerger returns the merger of window.lua and report.lua calls.
func NewMerger() *Merger {
	m := &Merger{scripts: map[string]bool{}}
	for _, l := range []Layout{Packed, Hash} {
		for _, src := range []string{windowSource(l), reportSource(l)} {
			m.scripts[src] = true
			m.scripts[redis.NewScript(src).Hash()] = true
		}
	}
	return m
}

// Mergeable reports whether cmd is one call of a batch-capable script:
// EVALSHA of its hash or EVAL of its source, with one call's arguments.
func (m *Merger) Mergeable(cmd *redis.Cmd) bool {
	a := cmd.Args()
	if len(a) < 4 || (a[0] != "evalsha" && a[0] != "eval") {
		return false
	}
	if payload, ok := a[1].(string); !ok || !m.scripts[payload] {
		return false
	}
	nkeys, ok := a[2].(int)
	return ok && nkeys >= 0 && len(a) > 3+nkeys && a[3+nkeys] == any(1)
}

// Merge returns one command that runs every call of cmds, in order, its
// command line appended to line (empty; the Batcher passes the storage of a
// merged line it is done with, so batches need not allocate one each). The
// commands must all be Mergeable, of one name (all EVALSHA or all EVAL) and
// of one script.
func (m *Merger) Merge(line []any, cmds []*redis.Cmd) *redis.Cmd {
	nkeys, nargs := 0, 0
	for _, c := range cmds {
		a := c.Args()
		k := a[2].(int)
		nkeys += k
		nargs += len(a) - 4 - k
	}
	first := cmds[0].Args()
	args := slices.Grow(line[:0], 4+nkeys+nargs)
	args = append(args, first[0], first[1], nkeys)
	for _, c := range cmds {
		a := c.Args()
		args = append(args, a[3:3+a[2].(int)]...)
	}
	args = append(args, len(cmds))
	for _, c := range cmds {
		a := c.Args()
		args = append(args, a[4+a[2].(int):]...)
	}
	merged := redis.NewCmd(context.Background(), args...)
	if nkeys > 0 {
		merged.SetFirstKeyPos(3)
	}
	return merged
}

// Split gives each of cmds its part of merged's reply: its own one-call
// reply (a one-element slice of merged's reply, not a copy: each call reads
// its own element only), or its own error; an error of the whole merged call
// (a network error, NOSCRIPT) goes to every one of them.
func (m *Merger) Split(merged *redis.Cmd, cmds []*redis.Cmd) {
	fail := func(err error) {
		for _, c := range cmds {
			c.SetErr(err)
		}
	}
	if err := merged.Err(); err != nil {
		fail(err)
		return
	}
	vals, ok := merged.Val().([]any)
	if !ok || len(vals) != len(cmds) {
		fail(fmt.Errorf("lua: merged reply is %T, want an array of %d replies", merged.Val(), len(cmds)))
		return
	}
	for i, c := range cmds {
		if err, ok := vals[i].(error); ok {
			c.SetErr(err)
			continue
		}
		c.SetVal(vals[i : i+1 : i+1])
	}
}
