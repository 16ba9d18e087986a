package xds_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	rlsconfv3 "github.com/envoyproxy/go-control-plane/ratelimit/config/ratelimit/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/xds"
)

func anys(t *testing.T, msgs ...proto.Message) []*anypb.Any {
	t.Helper()
	out := make([]*anypb.Any, len(msgs))
	for i, m := range msgs {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = a
	}
	return out
}

func match(t *testing.T, s *config.Set, domain string, entries ...string) (config.Rule, bool) {
	t.Helper()
	d, ok := s.Domain(domain)
	if !ok {
		t.Fatalf("no domain %q in %v", domain, s.Domains())
	}
	var es []config.Entry
	for i := 0; i+1 < len(entries); i += 2 {
		es = append(es, config.Entry{Key: entries[i], Value: entries[i+1]})
	}
	return d.Match(es)
}

// TestBuildCarriesEveryField pushes a config that uses every field of the
// xDS RateLimitConfig and checks the loaded rules, as upstream's provider
// test checks its dump: units, nesting, unlimited, replaces, shadow_mode,
// quota_mode, detailed_metric, metadata and wildcard values.
func TestBuildCarriesEveryField(t *testing.T) {
	md, err := structpb.NewStruct(map[string]any{"service": map[string]any{"name": "pizza", "tier": 2.0}})
	if err != nil {
		t.Fatal(err)
	}
	foo := &rlsconfv3.RateLimitConfig{Name: "foo", Domain: "foo", Descriptors: []*rlsconfv3.RateLimitDescriptor{
		{Key: "k1", Value: "v1", RateLimit: &rlsconfv3.RateLimitPolicy{Unit: rlsconfv3.RateLimitUnit_MINUTE, RequestsPerUnit: 10, Name: "outer"},
			Descriptors: []*rlsconfv3.RateLimitDescriptor{
				{Key: "k2", RateLimit: &rlsconfv3.RateLimitPolicy{Unlimited: true}},
				{Key: "k2", Value: "v2", RateLimit: &rlsconfv3.RateLimitPolicy{Unit: rlsconfv3.RateLimitUnit_HOUR, RequestsPerUnit: 15,
					Replaces: []*rlsconfv3.RateLimitReplace{{Name: "outer"}}}},
			}},
		{Key: "j1", Value: "v2", RateLimit: &rlsconfv3.RateLimitPolicy{Unlimited: true}, Descriptors: []*rlsconfv3.RateLimitDescriptor{
			{Key: "j2", Value: "v2", RateLimit: &rlsconfv3.RateLimitPolicy{Unit: rlsconfv3.RateLimitUnit_DAY, RequestsPerUnit: 15},
				ShadowMode: true, QuotaMode: true, DetailedMetric: true, Metadata: md},
		}},
		{Key: "w", Value: "bar*b*z", RateLimit: &rlsconfv3.RateLimitPolicy{Unit: rlsconfv3.RateLimitUnit_SECOND, RequestsPerUnit: 2}},
		{Key: "blocked", RateLimit: &rlsconfv3.RateLimitPolicy{Unit: rlsconfv3.RateLimitUnit_SECOND}}, // 0: refuse all
		{Key: "long", Value: "w", RateLimit: &rlsconfv3.RateLimitPolicy{Unit: rlsconfv3.RateLimitUnit_WEEK, RequestsPerUnit: 1}},
		{Key: "long", Value: "m", RateLimit: &rlsconfv3.RateLimitPolicy{Unit: rlsconfv3.RateLimitUnit_MONTH, RequestsPerUnit: 1}},
		{Key: "long", Value: "y", RateLimit: &rlsconfv3.RateLimitPolicy{Unit: rlsconfv3.RateLimitUnit_YEAR, RequestsPerUnit: 1}},
	}}
	bar := limited("bar", "bar", "k1", "v1", 100, rlsconfv3.RateLimitUnit_MINUTE)
	set, err := xds.Build(anys(t, foo, bar), config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := set.Domains(); !reflect.DeepEqual(got, []string{"bar", "foo"}) {
		t.Fatalf("domains %v", got)
	}
	if d, _ := set.Domain("foo"); d.File != "xds:foo" {
		t.Errorf("file %q", d.File)
	}

	one := func(r config.Rule, ok bool) config.Limit {
		t.Helper()
		if !ok || len(r.Limits) != 1 {
			t.Fatalf("rule %+v ok=%v, want one limit", r, ok)
		}
		return r.Limits[0]
	}
	if l := one(match(t, set, "foo", "k1", "v1")); l.Requests != 10 || l.Window != time.Minute || l.Name != "outer" {
		t.Errorf("foo.k1_v1: %+v", l)
	}
	if r, ok := match(t, set, "foo", "k1", "v1", "k2", "other"); !ok || !r.Unlimited {
		t.Errorf("foo.k1_v1.k2: %+v %v", r, ok)
	}
	if l := one(match(t, set, "foo", "k1", "v1", "k2", "v2")); l.Requests != 15 || l.Window != time.Hour || !reflect.DeepEqual(l.Replaces, []string{"outer"}) {
		t.Errorf("foo.k1_v1.k2_v2: %+v", l)
	}
	if r, ok := match(t, set, "foo", "j1", "v2"); !ok || !r.Unlimited {
		t.Errorf("foo.j1_v2: %+v %v", r, ok)
	}
	r, ok := match(t, set, "foo", "j1", "v2", "j2", "v2")
	if l := one(r, ok); l.Requests != 15 || l.Window != 24*time.Hour || !r.Shadow || !r.Quota || !r.DetailedMetric || r.Stat != "foo.j1_v2.j2_v2" {
		t.Errorf("foo.j1_v2.j2_v2: %+v", r)
	}
	if want := map[string]any{"service": map[string]any{"name": "pizza", "tier": int64(2)}}; !reflect.DeepEqual(r.Metadata, want) {
		t.Errorf("metadata %#v, want %#v", r.Metadata, want)
	}
	if l := one(match(t, set, "foo", "w", "bar-b-z")); l.Requests != 2 {
		t.Errorf("wildcard: %+v", l)
	}
	if _, ok := match(t, set, "foo", "w", "barz"); ok {
		t.Error("bar*b*z matched barz")
	}
	if l := one(match(t, set, "foo", "blocked", "x")); l.Requests != 0 || l.Window != time.Second {
		t.Errorf("requests_per_unit 0: %+v", l)
	}
	for v, w := range map[string]time.Duration{"w": 7 * 24 * time.Hour, "m": 30 * 24 * time.Hour, "y": 365 * 24 * time.Hour} {
		if l := one(match(t, set, "foo", "long", v)); l.Window != w {
			t.Errorf("long=%s: window %v, want %v", v, l.Window, w)
		}
	}
	if l := one(match(t, set, "bar", "k1", "v1")); l.Requests != 100 {
		t.Errorf("bar.k1_v1: %+v", l)
	}
}

// TestBuildRefusesWhatAFileReloadRefuses: a push is checked as a file is,
// and the problem names the resource and the field.
func TestBuildRefusesWhatAFileReloadRefuses(t *testing.T) {
	desc := func(d *rlsconfv3.RateLimitDescriptor) *rlsconfv3.RateLimitConfig {
		return &rlsconfv3.RateLimitConfig{Name: "r", Domain: "d", Descriptors: []*rlsconfv3.RateLimitDescriptor{d}}
	}
	for _, tc := range []struct {
		name string
		msgs []proto.Message
		o    config.LoadOptions
		want string
	}{
		{"no unit", []proto.Message{desc(&rlsconfv3.RateLimitDescriptor{Key: "k", RateLimit: &rlsconfv3.RateLimitPolicy{RequestsPerUnit: 1}})},
			config.LoadOptions{}, "xds:r: descriptors[0].rate_limit.unit: missing"},
		{"unknown unit", []proto.Message{desc(&rlsconfv3.RateLimitDescriptor{Key: "k", RateLimit: &rlsconfv3.RateLimitPolicy{Unit: 42, RequestsPerUnit: 1}})},
			config.LoadOptions{}, `descriptors[0].rate_limit.unit: unknown unit "42"`},
		{"unlimited with a unit", []proto.Message{desc(&rlsconfv3.RateLimitDescriptor{Key: "k", RateLimit: &rlsconfv3.RateLimitPolicy{Unlimited: true, Unit: rlsconfv3.RateLimitUnit_SECOND}})},
			config.LoadOptions{}, "descriptors[0].rate_limit.unit: must not be given with unlimited"},
		{"unlimited with requests", []proto.Message{desc(&rlsconfv3.RateLimitDescriptor{Key: "k", RateLimit: &rlsconfv3.RateLimitPolicy{Unlimited: true, RequestsPerUnit: 5}})},
			config.LoadOptions{}, "descriptors[0].rate_limit.requests_per_unit: must not be given with unlimited"},
		{"no key", []proto.Message{desc(&rlsconfv3.RateLimitDescriptor{Value: "v", RateLimit: &rlsconfv3.RateLimitPolicy{Unlimited: true}})},
			config.LoadOptions{}, "descriptors[0].key: must not be empty"},
		{"no domain", []proto.Message{&rlsconfv3.RateLimitConfig{Name: "nameless"}}, config.LoadOptions{}, "xds:nameless: domain: must not be empty"},
		{"duplicate descriptor", []proto.Message{&rlsconfv3.RateLimitConfig{Name: "r", Domain: "d", Descriptors: []*rlsconfv3.RateLimitDescriptor{
			{Key: "k", Value: "v", RateLimit: &rlsconfv3.RateLimitPolicy{Unlimited: true}}, {Key: "k", Value: "v", RateLimit: &rlsconfv3.RateLimitPolicy{Unlimited: true}},
		}}}, config.LoadOptions{}, "descriptors[1]: duplicate descriptor"},
		{"a domain twice", []proto.Message{limited("a", "d", "k", "", 1, rlsconfv3.RateLimitUnit_SECOND), limited("b", "d", "j", "", 1, rlsconfv3.RateLimitUnit_SECOND)},
			config.LoadOptions{}, `duplicate domain "d"`},
		{"a merged domain defining one descriptor twice", []proto.Message{limited("a", "d", "k", "", 1, rlsconfv3.RateLimitUnit_SECOND), limited("b", "d", "k", "", 2, rlsconfv3.RateLimitUnit_SECOND)},
			config.LoadOptions{MergeDomains: true}, "xds:b: descriptors: merged domain \"d\": descriptor with key \"k\" and no value is defined by another file too"},
		{"not a RateLimitConfig", []proto.Message{wrapperspb.String("hello")}, config.LoadOptions{}, "resource 0 (type.googleapis.com/google.protobuf.StringValue)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := xds.Build(anys(t, tc.msgs...), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			var ps config.Problems
			if errors.As(err, &ps) {
				for _, p := range ps {
					if p.Line != 0 {
						t.Errorf("problem %q has a line of the generated document", p.Error())
					}
				}
			}
		})
	}
}

// TestBuildMergesOneDomainFromSeveralResources is upstream's "same domain
// multiple times" case, with MERGE_DOMAIN_CONFIG=true.
func TestBuildMergesOneDomainFromSeveralResources(t *testing.T) {
	set, err := xds.Build(anys(t,
		limited("foo-1", "foo", "k1", "v1", 10, rlsconfv3.RateLimitUnit_MINUTE),
		limited("foo-2", "foo", "k1", "v2", 100, rlsconfv3.RateLimitUnit_MINUTE),
	), config.LoadOptions{MergeDomains: true})
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[string]uint64{"v1": 10, "v2": 100} {
		if r, ok := match(t, set, "foo", "k1", v); !ok || r.Limits[0].Requests != want {
			t.Errorf("foo.k1_%s: %+v %v", v, r, ok)
		}
	}
}

// TestBuildOfNoResourcesIsAConfigWithoutDomains: a server that sends none
// removes every domain, as an empty push does upstream.
func TestBuildOfNoResourcesIsAConfigWithoutDomains(t *testing.T) {
	set, err := xds.Build(nil, config.LoadOptions{})
	if err != nil || len(set.Domains()) != 0 {
		t.Fatalf("%v %v", set.Domains(), err)
	}
}
