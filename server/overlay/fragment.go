package overlay

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
	"gopkg.in/yaml.v3"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server/config"
)

// Override checks a runtime limit with the config code and returns it ready
// to lay over a Set. Bad fields come back as config.Problems naming the field
// as the JSON API spells it ("rate_limit.requests"), since RuntimeLimit's
// fields are named as a config file's descriptor fields.
func Override(domain string, path []config.Entry, limit *sluicev1.RuntimeLimit) (*config.Override, error) {
	text, err := Fragment(limit)
	if err != nil {
		return nil, err
	}
	return config.ParseOverride(domain, path, text)
}

// notLimitFields are the RuntimeLimit fields that are not a descriptor's.
var notLimitFields = map[protoreflect.Name]bool{
	"domain": true, "path": true, "version": true, "updated_by": true, "update_time": true,
}

// Fragment writes the limit fields of a RuntimeLimit as the YAML a config
// file has inside a descriptor: every field that is set, under its own name.
func Fragment(limit *sluicev1.RuntimeLimit) ([]byte, error) {
	n := messageNode(limit.ProtoReflect(), notLimitFields)
	if len(n.Content) == 0 {
		return nil, nil // ParseOverride says what is missing
	}
	b, err := yaml.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("runtime limit: %w", err)
	}
	return b, nil
}

// messageNode writes the fields of m that are set (repeated: not empty),
// in field-number order, but those in skip.
func messageNode(m protoreflect.Message, skip map[protoreflect.Name]bool) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if skip[fd.Name()] || !m.Has(fd) {
			continue
		}
		var v *yaml.Node
		if fd.IsList() {
			list := m.Get(fd).List()
			v = &yaml.Node{Kind: yaml.SequenceNode}
			for j := range list.Len() {
				v.Content = append(v.Content, valueNode(fd, list.Get(j)))
			}
		} else {
			v = valueNode(fd, m.Get(fd))
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: string(fd.Name())}, v)
	}
	return n
}

// anyNode writes a JSON value (a Struct's) as YAML; whole numbers as
// integers, as a file would write them.
func anyNode(v any) *yaml.Node {
	scalar := func(tag, s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: s} }
	switch v := v.(type) {
	case map[string]any:
		n := &yaml.Node{Kind: yaml.MappingNode}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			n.Content = append(n.Content, scalar("!!str", k), anyNode(v[k]))
		}
		return n
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		for _, e := range v {
			n.Content = append(n.Content, anyNode(e))
		}
		return n
	case bool:
		return scalar("!!bool", strconv.FormatBool(v))
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return scalar("!!int", strconv.FormatInt(int64(v), 10))
		}
		return scalar("!!float", strconv.FormatFloat(v, 'g', -1, 64))
	case string:
		return scalar("!!str", v)
	}
	return scalar("!!null", "null")
}

func valueNode(fd protoreflect.FieldDescriptor, v protoreflect.Value) *yaml.Node {
	scalar := func(tag, s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: s} }
	switch fd.Kind() {
	case protoreflect.MessageKind:
		if st, ok := v.Message().Interface().(*structpb.Struct); ok {
			return anyNode(st.AsMap())
		}
		return messageNode(v.Message(), nil)
	case protoreflect.BoolKind:
		return scalar("!!bool", strconv.FormatBool(v.Bool()))
	case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind:
		return scalar("!!int", strconv.FormatInt(v.Int(), 10))
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind:
		return scalar("!!int", strconv.FormatUint(v.Uint(), 10))
	default:
		return scalar("!!str", v.String())
	}
}
