package config

import (
	"maps"
	"slices"
)

// Lookup returns the rule of the descriptor at a literal path — as a file
// writes it: a value "foo*" names the wildcard descriptor, an empty value the
// key-only one — unlike Match, which matches a request's values. ok is false
// when there is no descriptor at path or it has no limits. The rule's Path
// is path.
func (d *Domain) Lookup(path []Entry) (Rule, bool) {
	if d == nil || len(path) == 0 {
		return Rule{}, false
	}
	n := d.root
	for _, e := range path {
		if n = n.at(e); n == nil {
			return Rule{}, false
		}
	}
	if !n.hasRule {
		return Rule{}, false
	}
	r := n.rule
	r.Path = path
	return r, true
}

// Values returns the exact values that descriptors with key have right
// below the descriptor at the literal path (an empty path: the top level),
// sorted. Wildcard and key-only descriptors are not values.
func (d *Domain) Values(path []Entry, key string) []string {
	if d == nil {
		return nil
	}
	n := d.root
	for _, e := range path {
		if n = n.at(e); n == nil {
			return nil
		}
	}
	k := n.keys[key]
	if k == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(k.exact))
}
