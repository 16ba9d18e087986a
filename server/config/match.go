package config

import (
	"slices"
	"strings"
)

// node is one descriptor of the tree, or the domain's root.
type node struct {
	rule    Rule // without Path; meaningful when hasRule
	hasRule bool
	// shared is set on a share_threshold wildcard: Match puts pattern ("foo*") in the
	// counter path instead of the request's value.
	shared  bool
	pattern string
	keys    map[string]*keyNode
	note    string // a runtime limit's comment for Export (Override.Note)
}

// keyNode holds the children of a node that share one key.
type keyNode struct {
	exact map[string]*node
	wild  []wildNode // in the order the config lists them
	any   *node      // the key-only descriptor
}

// wildNode is a descriptor whose value holds a '*': parts is the value split at
// every '*', each '*' standing for any run of characters, the empty one too.
type wildNode struct {
	pattern string
	parts   []string
	n       *node
}

// isWildcard reports whether a config value is a wildcard pattern.
func isWildcard(value string) bool { return strings.Contains(value, "*") }

// matches reports whether value matches the pattern: it starts with the first part,
// ends with the last, and holds the parts between in order, none overlapping.
func (w *wildNode) matches(value string) bool {
	first, last := w.parts[0], w.parts[len(w.parts)-1]
	if !strings.HasPrefix(value, first) {
		return false
	}
	rest := value[len(first):]
	if len(rest) < len(last) || !strings.HasSuffix(rest, last) {
		return false
	}
	rest = rest[:len(rest)-len(last)]
	for _, p := range w.parts[1 : len(w.parts)-1] {
		i := strings.Index(rest, p)
		if i < 0 {
			return false
		}
		rest = rest[i+len(p):]
	}
	return true
}

// covers reports whether every value that o matches is matched by w too, in the
// one case that is cheap to prove: w is a prefix pattern ("foo*") and o's values
// all start with that prefix.
func (w *wildNode) covers(o *wildNode) bool {
	return len(w.parts) == 2 && w.parts[1] == "" && strings.HasPrefix(o.parts[0], w.parts[0])
}

// child finds the child for key and value: an exact value, else the first wildcard
// in config order that matches, else the key-only descriptor.
func (n *node) child(key, value string) *node {
	k := n.keys[key]
	if k == nil {
		return nil
	}
	if c, ok := k.exact[value]; ok {
		return c
	}
	for i := range k.wild {
		if k.wild[i].matches(value) {
			return k.wild[i].n
		}
	}
	return k.any
}

// Match finds the rule for one request descriptor, with envoyproxy/ratelimit's semantics:
// it walks the entries in order, at each level taking the exact key and value, else the
// first wildcard value (in config order) that matches, else the key-only descriptor. The
// descriptor matches only when every entry found a node and the last one has a rate limit
// (or is unlimited); a rate limit on an earlier level does not apply to a longer request
// descriptor.
//
// Match does not allocate unless a share_threshold wildcard rewrites the path.
func (d *Domain) Match(entries []Entry) (Rule, bool) {
	if d == nil || d.root == nil || len(entries) == 0 {
		return Rule{}, false
	}
	cur := d.root
	var path []Entry
	for i := range entries {
		n := cur.child(entries[i].Key, entries[i].Value)
		if n == nil {
			return Rule{}, false
		}
		if n.shared {
			if path == nil {
				path = slices.Clone(entries)
			}
			path[i].Value = n.pattern
		}
		cur = n
	}
	if !cur.hasRule {
		return Rule{}, false
	}
	r := cur.rule
	r.Path = entries
	if path != nil {
		r.Path = path
	}
	return r, true
}
