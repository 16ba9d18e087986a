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
	wild  []wildNode // longest prefix first
	any   *node      // the key-only descriptor
}

type wildNode struct {
	prefix string
	n      *node
}

// child finds the child for key and value: an exact value, else the longest wildcard
// prefix, else the key-only descriptor.
func (n *node) child(key, value string) *node {
	k := n.keys[key]
	if k == nil {
		return nil
	}
	if c, ok := k.exact[value]; ok {
		return c
	}
	for _, w := range k.wild {
		if strings.HasPrefix(value, w.prefix) {
			return w.n
		}
	}
	return k.any
}

// Match finds the rule for one request descriptor, with envoyproxy/ratelimit's semantics:
// it walks the entries in order, at each level taking the exact key and value, else the
// longest matching wildcard prefix, else the key-only descriptor. The descriptor matches
// only when every entry found a node and the last one has a rate limit (or is unlimited);
// a rate limit on an earlier level does not apply to a longer request descriptor.
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
