package config

import (
	"math"
	"strconv"

	"gopkg.in/yaml.v3"
)

// metadata reads a descriptor's metadata: any YAML mapping, returned as JSON-like
// values (map[string]any, []any, string, int64, float64, bool, nil) that the Envoy
// API sends as the response's dynamic metadata (a protobuf Struct). Timestamps and
// other tagged scalars keep their text; numbers must be finite.
func (c *checker) metadata(n *yaml.Node, path string) (map[string]any, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		c.errorf(n, path, "must be a mapping, not %s", kindName(n))
		return nil, false
	}
	v, ok := c.metadataValue(n, path)
	if !ok {
		return nil, false
	}
	m := v.(map[string]any)
	return m, true
}

func (c *checker) metadataValue(n *yaml.Node, path string) (any, bool) {
	n = resolve(n)
	switch {
	case isNull(n):
		return nil, true
	case n.Kind == yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		lines := map[string]int{}
		ok := true
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := resolve(n.Content[i])
			if k.Kind != yaml.ScalarNode {
				c.errorf(k, path, "keys must be strings, not %s", kindName(k))
				ok = false
				continue
			}
			field := join(path, k.Value)
			if first, dup := lines[k.Value]; dup {
				c.errorf(k, field, "duplicate key (first on line %d)", first)
				ok = false
				continue
			}
			lines[k.Value] = k.Line
			v, vok := c.metadataValue(n.Content[i+1], field)
			ok = ok && vok
			m[k.Value] = v
		}
		return m, ok
	case n.Kind == yaml.SequenceNode:
		l := make([]any, len(n.Content))
		ok := true
		for i, it := range n.Content {
			v, vok := c.metadataValue(it, index(path, i))
			ok = ok && vok
			l[i] = v
		}
		return l, ok
	case n.Kind == yaml.ScalarNode:
		switch n.Tag {
		case "!!bool":
			var b bool
			if n.Decode(&b) == nil {
				return b, true
			}
		case "!!int":
			if i, err := strconv.ParseInt(n.Value, 0, 64); err == nil {
				return i, true
			}
			var i int64
			if n.Decode(&i) == nil {
				return i, true
			}
			fallthrough
		case "!!float":
			var f float64
			if n.Decode(&f) == nil {
				if math.IsInf(f, 0) || math.IsNaN(f) {
					c.errorf(n, path, "must be a finite number, not %s", n.Value)
					return nil, false
				}
				return f, true
			}
		}
		return n.Value, true
	}
	c.errorf(n, path, "must be a mapping, a list or a scalar, not %s", kindName(n))
	return nil, false
}
