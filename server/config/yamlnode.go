package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// checker walks yaml.Nodes of one file and collects problems; its helpers report a problem
// and return ok=false when a node is not of the expected shape.
type checker struct {
	file     string
	problems Problems
	warnings Problems
	names    map[string]bool // limit names, for replaces
	refs     []replaceRef
}

func (c *checker) errorf(n *yaml.Node, field, format string, args ...any) {
	c.problems = append(c.problems, Problem{File: c.file, Line: line(n), Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (c *checker) warnf(n *yaml.Node, field, format string, args ...any) {
	c.warnings = append(c.warnings, Problem{File: c.file, Line: line(n), Field: field, Msg: fmt.Sprintf(format, args...)})
}

func line(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}

// resolve follows aliases and unwraps documents.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil {
		switch {
		case n.Kind == yaml.AliasNode:
			n = n.Alias
		case n.Kind == yaml.DocumentNode && len(n.Content) == 1:
			n = n.Content[0]
		default:
			return n
		}
	}
	return nil
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return "a " + strings.TrimPrefix(n.Tag, "!!")
	}
	return "something else"
}

// fields is a checked mapping: the value and key node of each key present.
type fields struct {
	vals map[string]*yaml.Node
	keys map[string]*yaml.Node
}

func (f fields) has(name string) bool { return f.vals[name] != nil }

// mapping checks that n is a mapping whose keys are all in allowed, with no key twice, and
// returns its fields. Merge keys (<<: *anchor) are expanded; explicit keys win.
func (c *checker) mapping(n *yaml.Node, path string, allowed ...string) (fields, bool) {
	f := fields{vals: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}}
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		c.errorf(n, path, "must be a mapping, not %s", kindName(n))
		return f, false
	}
	var merged []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merged = append(merged, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			c.errorf(k, path, "keys must be strings, not %s", kindName(k))
			continue
		}
		field := join(path, k.Value)
		if !slices.Contains(allowed, k.Value) {
			c.errorf(k, field, "unknown key%s", suggest(k.Value, allowed))
			continue
		}
		if f.vals[k.Value] != nil {
			c.errorf(k, field, "duplicate key (first on line %d)", f.keys[k.Value].Line)
			continue
		}
		f.vals[k.Value], f.keys[k.Value] = v, k
	}
	for _, m := range merged {
		var sources []*yaml.Node
		if m.Kind == yaml.SequenceNode {
			for _, s := range m.Content {
				sources = append(sources, resolve(s))
			}
		} else {
			sources = append(sources, m)
		}
		for _, s := range sources {
			sub, ok := c.mapping(s, path, allowed...)
			if !ok {
				continue
			}
			for name, v := range sub.vals {
				if f.vals[name] == nil {
					f.vals[name], f.keys[name] = v, sub.keys[name]
				}
			}
		}
	}
	return f, true
}

// list checks that n is a list (null counts as empty) and returns its items.
func (c *checker) list(n *yaml.Node, path string) ([]*yaml.Node, bool) {
	n = resolve(n)
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.SequenceNode {
		c.errorf(n, path, "must be a list, not %s", kindName(n))
		return nil, false
	}
	items := make([]*yaml.Node, len(n.Content))
	for i, it := range n.Content {
		items[i] = resolve(it)
	}
	return items, true
}

// str reads a scalar as a string, as envoy's yaml.v2 does: numbers and booleans keep their
// text, null is "".
func (c *checker) str(n *yaml.Node, path string) (string, bool) {
	n = resolve(n)
	if isNull(n) {
		return "", true
	}
	if n.Kind != yaml.ScalarNode {
		c.errorf(n, path, "must be a string, not %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

// boolean reads true or false (and YAML 1.1's yes/no/on/off, which envoy's yaml.v2 accepts).
func (c *checker) boolean(n *yaml.Node, path string) (bool, bool) {
	n = resolve(n)
	var b bool
	if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
		c.errorf(n, path, "must be true or false, not %s", describe(n))
		return false, false
	}
	return b, true
}

// count reads a non-negative integer no greater than max.
func (c *checker) count(n *yaml.Node, path string, max uint64) (uint64, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		c.errorf(n, path, "must be a whole number, not %s", describe(n))
		return 0, false
	}
	var i int64
	if err := n.Decode(&i); err == nil && i < 0 {
		c.errorf(n, path, "must not be negative")
		return 0, false
	}
	var u uint64
	if err := n.Decode(&u); err != nil || u > max {
		c.errorf(n, path, "must be at most %d", max)
		return 0, false
	}
	return u, true
}

// duration reads a Go duration like "10s" or "1h30m".
func (c *checker) duration(n *yaml.Node, path string) (time.Duration, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		c.errorf(n, path, "must be a duration like 10s or 1h, not %s", describe(n))
		return 0, false
	}
	d, err := time.ParseDuration(n.Value)
	switch {
	case err != nil:
		c.errorf(n, path, "%q is not a duration like 10s or 1h", n.Value)
	case d < 0:
		c.errorf(n, path, "must not be negative")
	case d < MinWindow:
		c.errorf(n, path, "must be at least %v", MinWindow)
	default:
		return d, true
	}
	return 0, false
}

// describe names a node for an error: its value when a scalar, its kind otherwise.
func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return strconv.Quote(n.Value)
	}
	return kindName(n)
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// suggest returns ` (did you mean "x"?)` for the allowed key closest to s, if close enough.
func suggest(s string, allowed []string) string {
	best, bestD := "", 3
	for _, a := range allowed {
		if d := distance(s, a); d < bestD {
			best, bestD = a, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
