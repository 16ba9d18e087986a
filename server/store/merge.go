package store

import (
	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/internal/keyslot"
)

// mergeGroups sorts the calls of one batch that a Merger can fold into
// groups that can share one merged command: same Merger, same command name,
// same script and, on a cluster, same hash slot. A flusher keeps one and
// reuses it.
type mergeGroups struct {
	list []*mergeGroup
	free []*mergeGroup // emptied groups, for reuse
}

type mergeGroup struct {
	merger  Merger
	name    any // EVAL or EVALSHA
	payload any // the script's source or hash
	slot    int
	cmds    []*redis.Cmd
	merged  *redis.Cmd // set by command once the group has more than one call
	line    []any      // the storage of an earlier merged command line, for the next
}

// reset empties the groups for the next batch, keeping their storage.
func (gs *mergeGroups) reset() {
	for _, g := range gs.list {
		if g.merged != nil { // Exec is done with its command line
			line := g.merged.Args()
			clear(line)
			g.line = line[:0]
		}
		clear(g.cmds)
		g.cmds, g.merged, g.merger, g.name, g.payload = g.cmds[:0], nil, nil, nil, nil
		gs.free = append(gs.free, g)
	}
	clear(gs.list)
	gs.list = gs.list[:0]
}

// add puts cmd into its group and reports true, or reports false when no
// Merger can fold it.
func (gs *mergeGroups) add(mergers []Merger, cluster bool, cmd *redis.Cmd) bool {
	for _, m := range mergers {
		if !m.Mergeable(cmd) {
			continue
		}
		args := cmd.Args()
		name, payload, slot := args[0], args[1], 0
		if cluster {
			slot = firstKeySlot(cmd)
		}
		for _, g := range gs.list {
			if g.merger == m && g.name == name && g.payload == payload && g.slot == slot {
				g.cmds = append(g.cmds, cmd)
				return true
			}
		}
		var g *mergeGroup
		if n := len(gs.free); n > 0 {
			g, gs.free = gs.free[n-1], gs.free[:n-1]
		} else {
			g = &mergeGroup{}
		}
		g.merger, g.name, g.payload, g.slot = m, name, payload, slot
		g.cmds = append(g.cmds, cmd)
		gs.list = append(gs.list, g)
		return true
	}
	return false
}

// command is what the group sends: its one call as it is, or the merged
// command of its calls.
func (g *mergeGroup) command() *redis.Cmd {
	if len(g.cmds) == 1 {
		return g.cmds[0]
	}
	g.merged = g.merger.Merge(g.line, g.cmds)
	g.line = nil // the merged command's now
	return g.merged
}

// split hands every merged group's reply out to its calls.
func (gs *mergeGroups) split() {
	for _, g := range gs.list {
		if g.merged != nil {
			g.merger.Split(g.merged, g.cmds)
		}
	}
}

// firstKeySlot is the hash slot of an EVAL/EVALSHA command's first key, or
// -1 when it has none.
func firstKeySlot(cmd *redis.Cmd) int {
	a := cmd.Args()
	if n, ok := a[2].(int); !ok || n < 1 {
		return -1
	}
	key, ok := a[3].(string)
	if !ok {
		return -1
	}
	return keyslot.Of(key)
}
