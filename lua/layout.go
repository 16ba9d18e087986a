package lua

import "fmt"

// Layout is how the scripts store a counter when they write it. Both layouts
// are read whichever one a script writes, and a counter read in the other one
// is converted at its next write, so a deployment can change layout replica by
// replica without losing a count (docs/design-notes.md, "Counter layout").
type Layout uint8

const (
	// Packed keeps each counter as one string, a MessagePack array of its
	// buckets and lease records: one GET and one SET per script call, nothing
	// parsed from text — a fifth less Redis CPU per decision than a hash on
	// 1,000 counters (bench/README.md, "Counter layout"). It needs Redis's
	// cmsgpack; on a server
	// without it (miniredis: the embedded store) counters are hashes.
	Packed Layout = iota
	// Hash keeps each counter as a hash of one field per bucket and lease
	// record: the layout of builds before Packed, for a rolling upgrade from
	// one of them (their scripts cannot read a packed counter).
	Hash
)

// ParseLayout reads a layout's name: "packed" or "hash".
func ParseLayout(s string) (Layout, error) {
	switch s {
	case "packed":
		return Packed, nil
	case "hash":
		return Hash, nil
	}
	return 0, fmt.Errorf("counter layout %q: want packed or hash", s)
}

func (l Layout) String() string {
	if l == Hash {
		return "hash"
	}
	return "packed"
}

// prelude is the line put in front of counters.lua: what the script writes.
func (l Layout) prelude() string {
	return fmt.Sprintf("local PACKED = %t -- lua.Layout %s\n", l == Packed, l)
}
