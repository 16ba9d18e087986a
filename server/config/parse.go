package config

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var (
	rootKeys        = []string{"domain", "descriptors", "over_limit_response", "failure_mode"}
	overLimitKeys   = []string{"body", "headers"}
	descriptorKeys  = append([]string{"key", "value", "descriptors", "shadow_mode", "quota_mode", "detailed_metric", "value_to_metric", "share_threshold", "metadata"}, limitKeys()...)
	yamlErrorLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// Parse reads one config file. file names it in problems and in Domain.File. Every problem
// of the file is reported, as Problems.
func Parse(file string, data []byte) (*Domain, error) {
	c := &checker{file: file, names: map[string]bool{}}
	d := c.parseFile(data)
	if err := c.problems.err(); err != nil {
		return nil, err
	}
	c.checkReplaces()
	c.warnings.sort()
	d.Warnings = c.warnings
	return d, nil
}

func (c *checker) parseFile(data []byte) *Domain {
	d := &Domain{File: c.file, root: &node{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		c.yamlError(err)
		return d
	}
	root := resolve(&doc)
	if isNull(root) {
		c.errorf(nil, "", "empty file: a config needs at least a domain")
		return d
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != nil && !errors.Is(err, io.EOF) {
		c.yamlError(err)
	} else if err == nil && !isNull(resolve(&extra)) {
		c.errorf(resolve(&extra), "", "more than one yaml document: a file holds one domain")
	}

	f, ok := c.mapping(root, "", rootKeys...)
	if !ok {
		return d
	}
	switch {
	case !f.has("domain"):
		c.errorf(root, "domain", "missing: every file needs a domain")
	default:
		d.Line = f.keys["domain"].Line
		if name, ok := c.str(f.vals["domain"], "domain"); ok && name == "" {
			c.errorf(f.keys["domain"], "domain", "must not be empty")
		} else {
			d.Name = name
		}
	}
	if f.has("over_limit_response") {
		d.OverLimitResponse = true
		c.parseOverLimit(d, f.vals["over_limit_response"], "over_limit_response")
	}
	if f.has("failure_mode") {
		switch mode, _ := c.str(f.vals["failure_mode"], "failure_mode"); mode {
		case "unavailable":
		case "open":
			d.FailOpen = true
		default:
			c.errorf(resolve(f.vals["failure_mode"]), "failure_mode", "unknown mode %q (want unavailable or open)", mode)
		}
	}
	if f.has("descriptors") {
		c.parseDescriptors(d.root, f.vals["descriptors"], "descriptors", d.Name)
	}
	return d
}

// yamlError turns a yaml.v3 syntax error into a problem with its line.
func (c *checker) yamlError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	ln := 0
	if m := yamlErrorLineRe.FindStringSubmatch(err.Error()); m != nil {
		ln, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	c.problems = append(c.problems, Problem{File: c.file, Line: ln, Msg: "invalid yaml: " + msg})
}

func (c *checker) parseOverLimit(d *Domain, n *yaml.Node, path string) {
	f, ok := c.mapping(n, path, overLimitKeys...)
	if !ok {
		return
	}
	if f.has("body") {
		d.OverLimitBody, _ = c.str(f.vals["body"], join(path, "body"))
	}
	if !f.has("headers") {
		return
	}
	hp := join(path, "headers")
	hn := resolve(f.vals["headers"])
	if hn.Kind != yaml.MappingNode {
		c.errorf(hn, hp, "must be a mapping of header name to value, not %s", kindName(hn))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(hn.Content); i += 2 {
		k, v := hn.Content[i], hn.Content[i+1]
		name, ok := c.str(k, hp)
		if !ok {
			continue
		}
		field := join(hp, name)
		if !validHeaderName(name) {
			c.errorf(k, field, "%q is not a valid header name", name)
			continue
		}
		if first, dup := seen[strings.ToLower(name)]; dup {
			c.errorf(k, field, "duplicate header (first on line %d)", first)
			continue
		}
		seen[strings.ToLower(name)] = k.Line
		if value, ok := c.str(v, field); ok {
			d.OverLimitHeaders = append(d.OverLimitHeaders, Header{Name: name, Value: value})
		}
	}
	slices.SortFunc(d.OverLimitHeaders, func(a, b Header) int { return strings.Compare(a.Name, b.Name) })
}

// validHeaderName reports whether s is an HTTP token (RFC 9110).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0 {
			continue
		}
		return false
	}
	return true
}

// parseDescriptors reads a descriptor list into parent's children.
func (c *checker) parseDescriptors(parent *node, n *yaml.Node, path, stat string) {
	items, _ := c.list(n, path)
	first := map[Entry]string{} // key/value → path of its first descriptor
	for i, it := range items {
		p := index(path, i)
		f, ok := c.mapping(it, p, descriptorKeys...)
		if !ok {
			continue
		}
		var e Entry
		switch {
		case !f.has("key"):
			c.errorf(it, join(p, "key"), "missing: every descriptor needs a key")
		default:
			if k, ok := c.str(f.vals["key"], join(p, "key")); ok && k == "" {
				c.errorf(f.keys["key"], join(p, "key"), "must not be empty")
			} else {
				e.Key = k
			}
		}
		if f.has("value") {
			e.Value, _ = c.str(f.vals["value"], join(p, "value"))
		}
		child := &node{}
		var valueToMetric bool
		for _, fl := range []struct {
			name string
			dst  *bool
		}{
			{"shadow_mode", &child.rule.Shadow},
			{"quota_mode", &child.rule.Quota},
			{"detailed_metric", &child.rule.DetailedMetric},
			{"value_to_metric", &valueToMetric},
			{"share_threshold", &child.shared},
		} {
			if f.has(fl.name) {
				*fl.dst, _ = c.boolean(f.vals[fl.name], join(p, fl.name))
			}
		}
		child.rule.DetailedMetric = child.rule.DetailedMetric || valueToMetric
		wildcard := isWildcard(e.Value)
		if child.shared && !wildcard {
			c.warnf(f.keys["share_threshold"], join(p, "share_threshold"), "has no effect without a wildcard value (like \"foo*\")")
			child.shared = false
		}
		child.pattern = e.Value
		if f.has("metadata") {
			child.rule.Metadata, _ = c.metadata(f.vals["metadata"], join(p, "metadata"))
		}

		limits, unlimited, present := c.parseLimits(f, p)
		if present {
			child.hasRule = true
			child.rule.Unlimited = unlimited
			for _, l := range limits {
				child.rule.Limits = append(child.rule.Limits, l.Limit)
				c.noteNames(l)
			}
		}
		c.checkModes(f, p, child, limits)
		child.rule.Stat = stat + "." + e.Key
		if e.Value != "" {
			child.rule.Stat += "_" + e.Value
		}
		if f.has("descriptors") {
			c.parseDescriptors(child, f.vals["descriptors"], join(p, "descriptors"), child.rule.Stat)
		}

		if e.Key == "" {
			continue
		}
		if fp, dup := first[e]; dup {
			what := "key " + strconv.Quote(e.Key) + " without a value"
			if e.Value != "" {
				what = "key " + strconv.Quote(e.Key) + " and value " + strconv.Quote(e.Value)
			}
			c.errorf(it, p, "duplicate descriptor: %s already at %s", what, fp)
			continue
		}
		first[e] = p
		if w := parent.add(e, child); w != nil {
			c.checkShadowed(e.Key, parent.keys[e.Key], w, f.keys["value"], join(p, "value"), first)
		}
	}
}

// checkModes warns of settings that do nothing where they are, and refuses
// quota_mode on token limits, which count Sluice's own way.
func (c *checker) checkModes(f fields, p string, child *node, limits []parsedLimit) {
	noLimit := !child.hasRule || child.rule.Unlimited
	if f.has("metadata") && noLimit {
		c.warnf(f.keys["metadata"], join(p, "metadata"), "has no effect without a rate_limit: only a descriptor that applies a limit sends its metadata")
	}
	if !child.rule.Quota {
		return
	}
	if noLimit {
		c.warnf(f.keys["quota_mode"], join(p, "quota_mode"), "has no effect without a rate_limit")
	}
	for _, l := range limits {
		if l.Kind.IsTokens() {
			c.errorf(f.keys["quota_mode"], join(p, "quota_mode"), "applies to request limits (rate_limit, rate_limits), not to token limits")
			return
		}
	}
}

// checkShadowed warns when wildcard w, just added under key, can never match: a
// wildcard listed before it matches every value it would. first locates the
// descriptors seen so far.
func (c *checker) checkShadowed(key string, k *keyNode, w *wildNode, n *yaml.Node, path string, first map[Entry]string) {
	for i := range k.wild[:len(k.wild)-1] {
		if earlier := &k.wild[i]; earlier.covers(w) {
			c.warnf(n, path, "%q is never matched: %q at %s comes first and matches every value it does (the first matching wildcard wins, as in envoyproxy/ratelimit)",
				w.pattern, earlier.pattern, first[Entry{Key: key, Value: earlier.pattern}])
			return
		}
	}
}

// add puts child under n for e and returns its wildNode when e's value is a
// wildcard, nil otherwise.
func (n *node) add(e Entry, child *node) *wildNode {
	if n.keys == nil {
		n.keys = map[string]*keyNode{}
	}
	k := n.keys[e.Key]
	if k == nil {
		k = &keyNode{}
		n.keys[e.Key] = k
	}
	switch {
	case e.Value == "":
		k.any = child
	case isWildcard(e.Value):
		k.wild = append(k.wild, wildNode{pattern: e.Value, parts: strings.Split(e.Value, "*"), n: child})
		return &k.wild[len(k.wild)-1]
	default:
		if k.exact == nil {
			k.exact = map[string]*node{}
		}
		k.exact[e.Value] = child
	}
	return nil
}

// replaceRef is a replaces entry, kept to check that it names a limit.
type replaceRef struct {
	name string
	node *yaml.Node
	path string
}

func (c *checker) noteNames(l parsedLimit) {
	if l.Name != "" {
		c.names[l.Name] = true
	}
	for _, r := range l.Replaces {
		c.refs = append(c.refs, replaceRef{name: r, node: l.node, path: join(l.path, "replaces")})
	}
}

// checkReplaces warns of replaces naming no limit of the domain. envoyproxy/ratelimit
// accepts them silently, so they are warnings, not errors.
func (c *checker) checkReplaces() {
	for _, r := range c.refs {
		if !c.names[r.name] {
			c.warnf(r.node, r.path, "replaces %q, but no limit of this domain has that name", r.name)
		}
	}
}
