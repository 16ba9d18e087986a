package xds

import (
	"errors"
	"fmt"
	"strings"

	rlsconfv3 "github.com/envoyproxy/go-control-plane/ratelimit/config/ratelimit/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"gopkg.in/yaml.v3"

	"github.com/sluice-rl/sluice/server/config"
)

// TypeURL is the type of the resources this client subscribes to: the
// rate-limit config of envoyproxy/ratelimit's xDS API, as Envoy Gateway and
// other control planes push it.
const TypeURL = "type.googleapis.com/ratelimit.config.ratelimit.v3.RateLimitConfig"

// Build turns the resources of one discovery response into a config Set:
// each RateLimitConfig becomes the config file it stands for and is loaded
// with the checks of a file reload (config.LoadSources), so a push is held
// to exactly the rules of a file. A problem names the resource ("xds:NAME")
// and the field path; it has no line, since there is no file to look at.
func Build(resources []*anypb.Any, o config.LoadOptions) (*config.Set, error) {
	docs := make([]config.Source, 0, len(resources))
	for i, res := range resources {
		var rc rlsconfv3.RateLimitConfig
		if err := res.UnmarshalTo(&rc); err != nil {
			return nil, fmt.Errorf("resource %d (%s): %w", i, res.GetTypeUrl(), err)
		}
		data, err := Document(&rc)
		if err != nil {
			return nil, fmt.Errorf("resource %d (%s): %w", i, rc.GetName(), err)
		}
		docs = append(docs, config.Source{Name: sourceName(i, rc.GetName()), Data: data})
	}
	set, err := config.LoadSources(docs, o)
	if err != nil {
		var ps config.Problems
		if errors.As(err, &ps) {
			return nil, withoutLines(ps)
		}
		return nil, err
	}
	return set, nil
}

// sourceName names a resource in problems and in Domain.File.
func sourceName(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("xds:#%d", i)
	}
	return "xds:" + name
}

// withoutLines drops the line numbers, which would point into the generated
// document nobody sees.
func withoutLines(ps config.Problems) config.Problems {
	out := make(config.Problems, len(ps))
	for i, p := range ps {
		p.Line = 0
		out[i] = p
	}
	return out
}

// Document writes one RateLimitConfig as the config file it stands for, in
// the file format of envoyproxy/ratelimit (which Sluice reads): domain,
// descriptors with key, value (a "*" in it is a wildcard), rate_limit
// (unit, requests_per_unit, unlimited, name, replaces), shadow_mode,
// quota_mode, detailed_metric, metadata and nested descriptors. Whatever
// is wrong with it — an unknown unit, a missing key, requests with
// unlimited — is left for the config parser to find and name.
func Document(rc *rlsconfv3.RateLimitConfig) ([]byte, error) {
	return yaml.Marshal(fileRoot{Domain: rc.GetDomain(), Descriptors: descriptors(rc.GetDescriptors())})
}

// The file format's shapes, in the order a person would write them.
type (
	fileRoot struct {
		Domain      string           `yaml:"domain"`
		Descriptors []fileDescriptor `yaml:"descriptors,omitempty"`
	}
	fileDescriptor struct {
		Key            string           `yaml:"key"`
		Value          string           `yaml:"value,omitempty"`
		RateLimit      *fileLimit       `yaml:"rate_limit,omitempty"`
		ShadowMode     bool             `yaml:"shadow_mode,omitempty"`
		QuotaMode      bool             `yaml:"quota_mode,omitempty"`
		DetailedMetric bool             `yaml:"detailed_metric,omitempty"`
		Metadata       map[string]any   `yaml:"metadata,omitempty"`
		Descriptors    []fileDescriptor `yaml:"descriptors,omitempty"`
	}
	fileLimit struct {
		Unit            string        `yaml:"unit,omitempty"`
		RequestsPerUnit *uint32       `yaml:"requests_per_unit,omitempty"`
		Unlimited       bool          `yaml:"unlimited,omitempty"`
		Name            string        `yaml:"name,omitempty"`
		Replaces        []fileReplace `yaml:"replaces,omitempty"`
	}
	fileReplace struct {
		Name string `yaml:"name"`
	}
)

func descriptors(pb []*rlsconfv3.RateLimitDescriptor) []fileDescriptor {
	if len(pb) == 0 {
		return nil
	}
	out := make([]fileDescriptor, len(pb))
	for i, d := range pb {
		out[i] = fileDescriptor{
			Key:            d.GetKey(),
			Value:          d.GetValue(),
			RateLimit:      limit(d.GetRateLimit()),
			ShadowMode:     d.GetShadowMode(),
			QuotaMode:      d.GetQuotaMode(),
			DetailedMetric: d.GetDetailedMetric(),
			Descriptors:    descriptors(d.GetDescriptors()),
		}
		if md := d.GetMetadata(); md != nil {
			out[i].Metadata = md.AsMap()
		}
	}
	return out
}

// limit writes a policy. Protobuf cannot tell a requests_per_unit of 0 from
// none, so a limited policy always has one (0 refuses everything, as in a
// file); an unlimited one has it only when it is not 0, for the parser to
// refuse. UNKNOWN, the unit's zero value, is no unit.
func limit(pb *rlsconfv3.RateLimitPolicy) *fileLimit {
	if pb == nil {
		return nil
	}
	l := &fileLimit{Unlimited: pb.GetUnlimited(), Name: pb.GetName()}
	if u := pb.GetUnit(); u != rlsconfv3.RateLimitUnit_UNKNOWN {
		l.Unit = strings.ToLower(u.String())
	}
	if n := pb.GetRequestsPerUnit(); !l.Unlimited || n > 0 {
		l.RequestsPerUnit = &n
	}
	for _, r := range pb.GetReplaces() {
		l.Replaces = append(l.Replaces, fileReplace{Name: r.GetName()})
	}
	return l
}
