package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Override is a runtime limit: the limits of one descriptor path of a domain,
// given outside the files and laid over a Set by Overlay. Build it with
// ParseOverride; it is immutable.
type Override struct {
	Domain string
	Path   []Entry
	// Note, when not empty, is written as a comment above the descriptor
	// when the effective config is exported (Domain.Export).
	Note string
	leaf *node // the parsed descriptor, without nested descriptors
}

// notOverridable are the descriptor keys a runtime limit cannot carry: its
// path gives key and value, and it replaces limits, not the tree below.
var notOverridable = []string{"key", "value", "descriptors"}

// ParseOverride reads a runtime limit for path in domain. data is a YAML (or
// JSON) mapping of a descriptor's own fields as a config file writes them —
// rate_limit(s), token_limit(s), shadow_mode, detailed_metric, ... — all but
// key, value and descriptors, and it must give a limit (or rate_limit:
// {unlimited: true}). It is checked by the very code that checks files, so
// the problems are the same; their Field is relative to the mapping, like
// "rate_limits[0].requests", and they carry no file or line.
//
// A path value with a "*" names a wildcard descriptor, an empty value a
// key-only one, as in a file.
func ParseOverride(domain string, path []Entry, data []byte) (*Override, error) {
	var ps Problems
	if domain == "" {
		ps = append(ps, Problem{Field: "domain", Msg: "must not be empty"})
	}
	if len(path) == 0 {
		ps = append(ps, Problem{Field: "path", Msg: "must have at least one entry"})
	}
	for i, e := range path {
		if e.Key == "" {
			ps = append(ps, Problem{Field: fmt.Sprintf("path[%d].key", i), Msg: "must not be empty"})
		}
	}
	var fragment yaml.Node
	if err := yaml.Unmarshal(data, &fragment); err != nil {
		ps = append(ps, Problem{Msg: "invalid yaml: " + strings.TrimPrefix(err.Error(), "yaml: ")})
	}
	fields := resolve(&fragment)
	switch {
	case len(ps) > 0:
	case isNull(fields):
		ps = append(ps, Problem{Field: "rate_limit", Msg: "missing: give rate_limit(s) or token_limit(s), or rate_limit: {unlimited: true}"})
	case fields.Kind != yaml.MappingNode:
		ps = append(ps, Problem{Msg: "must be a mapping, not " + kindName(fields)})
	default:
		for i := 0; i+1 < len(fields.Content); i += 2 {
			if k := fields.Content[i].Value; slices.Contains(notOverridable, k) {
				ps = append(ps, Problem{Field: k, Msg: "not allowed in a runtime limit: the path gives the descriptor"})
			}
		}
	}
	if len(ps) > 0 {
		return nil, ps
	}

	// Parse a one-descriptor file whose descriptor at path carries the
	// fields: the same checks, messages and rule (with its Stat) as a file.
	doc, leafField := overrideDocument(domain, path, fields)
	text, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("runtime limit: %w", err)
	}
	d, err := Parse("", text)
	if err != nil {
		var fps Problems
		if !errors.As(err, &fps) {
			return nil, err
		}
		for _, p := range fps {
			p.File, p.Line = "", 0
			switch {
			case p.Field == leafField:
				p.Field = ""
			case strings.HasPrefix(p.Field, leafField+"."):
				p.Field = strings.TrimPrefix(p.Field, leafField+".")
			}
			ps = append(ps, p)
		}
		return nil, ps
	}
	leaf := d.root
	for _, e := range path {
		leaf = leaf.at(e)
	}
	if !leaf.hasRule {
		return nil, Problems{{Field: "rate_limit", Msg: "missing: give rate_limit(s) or token_limit(s), or rate_limit: {unlimited: true}"}}
	}
	return &Override{Domain: domain, Path: slices.Clone(path), leaf: &node{rule: leaf.rule, hasRule: true, shared: leaf.shared, pattern: leaf.pattern}}, nil
}

// overrideDocument builds a config file of domain with one chain of
// descriptors along path, the last of which has fields; leafField is that
// descriptor's field path in problems.
func overrideDocument(domain string, path []Entry, fields *yaml.Node) (doc *yaml.Node, leafField string) {
	str := func(s string) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Style: yaml.DoubleQuotedStyle}
	}
	var below *yaml.Node // the descriptor list of the level being built
	for i := len(path) - 1; i >= 0; i-- {
		m := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{str("key"), str(path[i].Key)}}
		if path[i].Value != "" {
			m.Content = append(m.Content, str("value"), str(path[i].Value))
		}
		if below != nil {
			m.Content = append(m.Content, str("descriptors"), below)
		} else {
			m.Content = append(m.Content, fields.Content...)
		}
		below = &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{m}}
	}
	doc = &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{str("domain"), str(domain), str("descriptors"), below}}
	leafField = "descriptors[0]" + strings.Repeat(".descriptors[0]", len(path)-1)
	return doc, leafField
}

// Overlay returns s with every override laid over it: an override's limits
// and flags replace those of the descriptor at its path — which keeps its
// nested descriptors — or add the path, and the domain, where s has none.
// Later overrides of one path win. s is not changed; the parts of it that no
// override touches are shared, so Overlay costs what the overridden paths
// cost, not what the whole config does.
func (s *Set) Overlay(overrides []*Override) *Set {
	if len(overrides) == 0 {
		return s
	}
	changed := map[string]*Domain{}
	fresh := map[*node]bool{} // nodes copied in this call, safe to change
	for _, o := range overrides {
		d := changed[o.Domain]
		if d == nil {
			if base, ok := s.Domain(o.Domain); ok {
				c := *base
				d = &c
			} else {
				d = &Domain{Name: o.Domain, root: &node{}}
			}
			d.root = d.root.copyFor(fresh)
			changed[o.Domain] = d
		}
		cur := d.root
		for _, e := range o.Path {
			cur = cur.childFor(e, fresh)
		}
		cur.rule, cur.hasRule, cur.shared = o.leaf.rule, true, o.leaf.shared
		cur.note = o.Note
	}
	domains := make([]*Domain, 0, len(s.Domains())+len(changed))
	for _, name := range s.Domains() {
		if d, ok := changed[name]; ok {
			domains = append(domains, d)
			delete(changed, name)
			continue
		}
		domains = append(domains, s.domains[name])
	}
	for _, d := range changed {
		domains = append(domains, d)
	}
	out := newSet(domains)
	out.loaded, out.options = s.loaded, s.options
	return out
}

// copyFor returns a copy of n that may be changed, unless n is one already.
// The copy shares n's children until childFor copies them.
func (n *node) copyFor(fresh map[*node]bool) *node {
	if fresh[n] {
		return n
	}
	c := *n
	if n.keys != nil {
		c.keys = make(map[string]*keyNode, len(n.keys))
		for k, v := range n.keys {
			c.keys[k] = v
		}
	}
	fresh[&c] = true
	return &c
}

// childFor returns the child of n (a fresh node) at the literal entry e, as
// a fresh node: a copy of the existing child, or a new descriptor without
// limits put in its place.
func (n *node) childFor(e Entry, fresh map[*node]bool) *node {
	old := n.at(e)
	var child *node
	if old != nil {
		child = old.copyFor(fresh)
	} else {
		child = &node{pattern: e.Value}
		fresh[child] = true
	}
	// n.keys is n's own map (copyFor), but the keyNode is shared: copy it.
	k := &keyNode{}
	if cur := n.keys[e.Key]; cur != nil {
		*k = *cur
		k.exact = nil
		if cur.exact != nil {
			k.exact = make(map[string]*node, len(cur.exact))
			for v, c := range cur.exact {
				k.exact[v] = c
			}
		}
		k.wild = slices.Clone(cur.wild)
	}
	if n.keys == nil {
		n.keys = map[string]*keyNode{}
	}
	n.keys[e.Key] = k
	if old != nil && isWildcard(e.Value) {
		for i := range k.wild {
			if k.wild[i].pattern == e.Value {
				k.wild[i].n = child
			}
		}
		return child
	}
	n.add(e, child)
	return child
}

// at returns the child of n at the literal entry e: an exact value, the
// wildcard descriptor whose value is e.Value ("foo*"), or for an empty value
// the key-only descriptor. Unlike child, it does not match request values.
func (n *node) at(e Entry) *node {
	if n == nil {
		return nil
	}
	k := n.keys[e.Key]
	if k == nil {
		return nil
	}
	switch {
	case e.Value == "":
		return k.any
	case isWildcard(e.Value):
		for _, w := range k.wild {
			if w.pattern == e.Value {
				return w.n
			}
		}
		return nil
	default:
		return k.exact[e.Value]
	}
}
