package config

import (
	"bytes"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Export writes the domain as a config file that loads back into the same
// domain: the effective config, runtime limits included (each under a comment
// from its Override.Note), so that a change made at runtime can be committed
// back to the files. Descriptors come sorted by key and value; limits are
// written in Sluice's form where the file used a window, in envoy's form
// where it used a unit.
//
// A field added to the descriptor tree must be added here too:
// TestExportRoundTrip loads, exports and reloads every example config and
// compares the trees.
func (d *Domain) Export() ([]byte, error) {
	doc := mapping(false)
	doc.add("domain", str(d.Name))
	if d.FailOpen {
		doc.add("failure_mode", str("open"))
	}
	if d.OverLimitBody != "" || len(d.OverLimitHeaders) > 0 {
		olr := mapping(false)
		if d.OverLimitBody != "" {
			olr.add("body", str(d.OverLimitBody))
		}
		if len(d.OverLimitHeaders) > 0 {
			hs := mapping(false)
			for _, h := range d.OverLimitHeaders {
				hs.add(h.Name, str(h.Value))
			}
			olr.add("headers", hs.Node)
		}
		doc.add("over_limit_response", olr.Node)
	}
	if list := exportDescriptors(d.root); list != nil {
		doc.add("descriptors", list)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc.Node); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Export writes every domain as Domain.Export does, one YAML document each,
// in name order. A file holds one domain: save each document as a file of
// its own.
func (s *Set) Export() ([]byte, error) {
	var out []byte
	for i, name := range s.Domains() {
		b, err := s.domains[name].Export()
		if err != nil {
			return nil, err
		}
		if i > 0 {
			out = append(out, "---\n"...)
		}
		out = append(out, b...)
	}
	return out, nil
}

// Fragment writes the rule as the fields its descriptor has in a file —
// flags and limits, as ParseOverride reads them — or nil when it has none.
func (r Rule) Fragment() ([]byte, error) {
	m := mapping(false)
	exportFlags(m, r)
	exportLimits(m, r)
	if len(m.Content) == 0 {
		return nil, nil
	}
	return yaml.Marshal(m.Node)
}

// exportDescriptors writes the children of n, or nil when it has none:
// per key (sorted), exact values (sorted), then wildcards in match order,
// then the key-only descriptor.
func exportDescriptors(n *node) *yaml.Node {
	if len(n.keys) == 0 {
		return nil
	}
	list := &yaml.Node{Kind: yaml.SequenceNode}
	for _, key := range slices.Sorted(maps.Keys(n.keys)) {
		k := n.keys[key]
		for _, v := range slices.Sorted(maps.Keys(k.exact)) {
			list.Content = append(list.Content, exportDescriptor(key, v, k.exact[v]))
		}
		for _, w := range k.wild {
			list.Content = append(list.Content, exportDescriptor(key, w.pattern, w.n))
		}
		if k.any != nil {
			list.Content = append(list.Content, exportDescriptor(key, "", k.any))
		}
	}
	return list
}

func exportDescriptor(key, value string, n *node) *yaml.Node {
	m := mapping(false)
	m.HeadComment = n.note
	m.add("key", str(key))
	if value != "" {
		m.add("value", str(value))
	}
	if n.shared {
		m.add("share_threshold", boolean(true))
	}
	exportFlags(m, n.rule)
	if n.hasRule {
		exportLimits(m, n.rule)
	}
	if list := exportDescriptors(n); list != nil {
		m.add("descriptors", list)
	}
	return m.Node
}

// exportFlags adds what a descriptor says besides its limits.
func exportFlags(m yamlMapping, r Rule) {
	if r.Shadow {
		m.add("shadow_mode", boolean(true))
	}
	if r.Quota {
		m.add("quota_mode", boolean(true))
	}
	if r.DetailedMetric {
		m.add("detailed_metric", boolean(true))
	}
	if r.Metadata != nil {
		m.add("metadata", metadataNode(r.Metadata))
	}
}

// metadataNode writes a metadata value as the YAML it was read from: a
// float that looks whole keeps a ".0", so it loads back as a float.
func metadataNode(v any) *yaml.Node {
	switch v := v.(type) {
	case map[string]any:
		m := mapping(false)
		for _, k := range slices.Sorted(maps.Keys(v)) {
			m.add(k, metadataNode(v[k]))
		}
		return m.Node
	case []any:
		l := &yaml.Node{Kind: yaml.SequenceNode}
		for _, e := range v {
			l.Content = append(l.Content, metadataNode(e))
		}
		return l
	case bool:
		return boolean(v)
	case int64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v, 10)}
	case float64:
		text := strconv.FormatFloat(v, 'g', -1, 64)
		if !strings.ContainsAny(text, ".eE") {
			text += ".0"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: text}
	case string:
		return str(v)
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
}

// exportLimits adds the rule's limits to a descriptor: one request limit as
// rate_limit, several as rate_limits, and the token limits grouped as
// TokenGroups does, one group as token_limit, several as token_limits.
func exportLimits(m yamlMapping, r Rule) {
	if r.Unlimited {
		u := mapping(true)
		u.add("unlimited", boolean(true))
		m.add("rate_limit", u.Node)
		return
	}
	var requests, tokens []*yaml.Node
	for _, l := range r.Limits {
		if l.Kind == KindRequests {
			requests = append(requests, exportRequestLimit(l))
		}
	}
	for _, g := range TokenGroups(r.Limits) {
		tokens = append(tokens, exportTokenLimit(g))
	}
	for _, kind := range []struct {
		one, many string
		nodes     []*yaml.Node
	}{{"rate_limit", "rate_limits", requests}, {"token_limit", "token_limits", tokens}} {
		switch len(kind.nodes) {
		case 0:
		case 1:
			m.add(kind.one, kind.nodes[0])
		default:
			m.add(kind.many, &yaml.Node{Kind: yaml.SequenceNode, Content: kind.nodes})
		}
	}
}

func exportRequestLimit(l Limit) *yaml.Node {
	m := mapping(true)
	if l.Name != "" {
		m.add("name", str(l.Name))
	}
	if l.Unit != "" {
		m.add("unit", str(l.Unit))
		m.add("requests_per_unit", integer(l.Requests))
	} else {
		m.add("window", str(WindowText(l.Window)))
		m.add("requests", integer(l.Requests))
	}
	if l.Buckets != DefaultBuckets {
		m.add("buckets", integer(uint64(l.Buckets)))
	}
	if l.Lease != LeaseAuto {
		m.add("lease", str(l.Lease.String()))
	}
	if len(l.Replaces) > 0 {
		list := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, name := range l.Replaces {
			r := mapping(true)
			r.add("name", str(name))
			list.Content = append(list.Content, r.Node)
		}
		m.add("replaces", list)
	}
	return m.Node
}

// exportTokenLimit writes one token_limit from a group of limits that share
// window, unit, buckets and name.
func exportTokenLimit(g []Limit) *yaml.Node {
	m := mapping(true)
	first := g[0]
	if first.Name != "" {
		m.add("name", str(first.Name))
	}
	if first.Unit != "" {
		m.add("unit", str(first.Unit))
	} else {
		m.add("window", str(WindowText(first.Window)))
	}
	if first.Buckets != DefaultBuckets {
		m.add("buckets", integer(uint64(first.Buckets)))
	}
	for _, l := range g {
		m.add(l.Kind.String(), integer(l.Requests))
	}
	return m.Node
}

// TokenGroups splits the token limits among limits into what a file writes
// as one token_limit each: runs of limits that share window, unit, buckets
// and name, each kind at most once, in order.
func TokenGroups(limits []Limit) [][]Limit {
	var groups [][]Limit
	for _, l := range limits {
		if !l.Kind.IsTokens() {
			continue
		}
		if n := len(groups); n > 0 {
			g := groups[n-1]
			f := g[0]
			if f.Window == l.Window && f.Unit == l.Unit && f.Buckets == l.Buckets && f.Name == l.Name &&
				!slices.ContainsFunc(g, func(o Limit) bool { return o.Kind == l.Kind }) {
				groups[n-1] = append(g, l)
				continue
			}
		}
		groups = append(groups, []Limit{l})
	}
	return groups
}

// WindowText writes a window as a duration the config reads back: in its
// largest whole unit of h, m, s, ms, us ("1s", "90s", "48h", "1500ms").
func WindowText(d time.Duration) string {
	for _, u := range []struct {
		d time.Duration
		s string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}, {time.Microsecond, "us"}} {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.s
		}
	}
	return strconv.FormatInt(int64(d), 10) + "ns"
}

// yamlMapping builds a mapping node key by key.
type yamlMapping struct{ *yaml.Node }

func mapping(flow bool) yamlMapping {
	n := &yaml.Node{Kind: yaml.MappingNode}
	if flow {
		n.Style = yaml.FlowStyle
	}
	return yamlMapping{n}
}

func (m yamlMapping) add(key string, v *yaml.Node) {
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func integer(v uint64) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatUint(v, 10)}
}

func boolean(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}
