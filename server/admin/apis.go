package admin

import (
	"context"
	"errors"
	"slices"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/grpcapi"
	"github.com/sluice-rl/sluice/server/limiter"
	"github.com/sluice-rl/sluice/server/overlay"
	"github.com/sluice-rl/sluice/server/traffic"
)

// TrafficSeconds is how many seconds of traffic ListApis shows.
const TrafficSeconds = 60

// usageBatch bounds the descriptors of one usage peek.
const usageBatch = 32

// apiNames lists the APIs of a domain: api=<name> descriptors with a
// production or sandbox environment below them.
func apiNames(d *config.Domain) []string {
	var out []string
	for _, name := range d.Values(nil, "api") {
		envs := d.Values([]config.Entry{{Key: "api", Value: name}}, "environment")
		if slices.Contains(envs, environments[0]) || slices.Contains(envs, environments[1]) {
			out = append(out, name)
		}
	}
	return out
}

// ListApis is the API manager's view of a domain, with live usage.
func (s *Service) ListApis(ctx context.Context, in *sluicev1.ListApisRequest) (*sluicev1.ListApisResponse, error) {
	st := s.read(ctx)
	d, err := domainOf(st, in.GetDomain())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &sluicev1.ListApisResponse{}
	type peek struct {
		env  *sluicev1.ApiEnvironment
		path []config.Entry
	}
	var peeks []peek
	for _, name := range apiNames(d) {
		api := &sluicev1.Api{Name: name, Version: apiVersion(st, d.Name, name)}
		for i, envName := range environments {
			path := envPath(name, envName)
			rule, has := d.Lookup(path)
			env := &sluicev1.ApiEnvironment{Source: source(st, d.Name, path, has), Unlimited: rule.Unlimited, ShadowMode: rule.Shadow}
			if env.Source == "file" {
				env.File = d.File
			}
			if rec := st.Snapshot.Find(d.Name, path); rec != nil {
				env.UpdatedBy, env.UpdateTime = rec.UpdatedBy, timestamppb.New(rec.UpdatedAt)
			}
			for j := range rule.Limits {
				env.Limits = append(env.Limits, &sluicev1.LimitUsage{Limit: grpcapi.LimitProto(&rule.Limits[j])})
				api.Tokens = api.Tokens || rule.Limits[j].Kind.IsTokens()
			}
			if len(rule.Limits) > 0 {
				peeks = append(peeks, peek{env, path})
			}
			if i == 0 {
				api.Production = env
			} else {
				api.Sandbox = env
			}
		}
		out.Apis = append(out.Apis, api)
	}

	// Usage now, charging nothing, in a few peeks.
	for start := 0; start < len(peeks); start += usageBatch {
		batch := peeks[start:min(start+usageBatch, len(peeks))]
		req := &limiter.Request{Domain: d.Name, Descriptors: make([]limiter.Descriptor, len(batch))}
		for i, p := range batch {
			req.Descriptors[i].Entries = p.path
		}
		usage, err := s.o.Usage(ctx, req)
		if err != nil {
			out.UsageError = err.Error()
			break
		}
		for i, u := range usage {
			batch[i].env.Limits = usageOf(u)
		}
	}
	if s.o.Traffic != nil && out.UsageError == "" {
		if err := s.addTraffic(ctx, d.Name, out); err != nil {
			out.UsageError = "traffic: " + err.Error()
		}
	}
	return out, nil
}

func usageOf(u limiter.DescriptorUsage) []*sluicev1.LimitUsage {
	out := make([]*sluicev1.LimitUsage, len(u.Limits))
	for i, l := range u.Limits {
		out[i] = &sluicev1.LimitUsage{
			Limit: grpcapi.LimitProto(l.Limit), Used: l.Used, Remaining: l.Remaining, Reserved: l.Reserved,
			DurationUntilReset: durationpb.New(l.ResetAfter),
		}
	}
	return out
}

// addTraffic fills in every environment's calls per second.
func (s *Service) addTraffic(ctx context.Context, domain string, out *sluicev1.ListApisResponse) error {
	start, series, err := s.o.Traffic.Read(ctx, domain, TrafficSeconds, s.o.Now())
	if err != nil {
		return err
	}
	out.TrafficStart = timestamppb.New(start)
	zeros := make([]uint64, TrafficSeconds)
	for _, api := range out.Apis {
		for i, env := range []*sluicev1.ApiEnvironment{api.Production, api.Sandbox} {
			s, ok := series[traffic.Key{Domain: domain, API: api.Name, Environment: environments[i]}]
			if !ok {
				s = traffic.Series{Admitted: zeros, Refused: zeros}
			}
			env.Admitted, env.Refused = s.Admitted, s.Refused
		}
	}
	return nil
}

// GetBackendThroughput returns an API's caps.
func (s *Service) GetBackendThroughput(ctx context.Context, in *sluicev1.GetBackendThroughputRequest) (*sluicev1.GetBackendThroughputResponse, error) {
	st := s.read(ctx)
	d, err := domainOf(st, in.GetDomain())
	if err != nil {
		return nil, toStatus(err)
	}
	if in.GetApi() == "" {
		return nil, toStatus(badField("api", "required"))
	}
	if !slices.Contains(apiNames(d), in.GetApi()) {
		return nil, toStatus(notFound("api %q: domain %q has no descriptor api=%s with a production or sandbox environment", in.GetApi(), d.Name, in.GetApi()))
	}
	bt := throughput(st, d, in.GetApi())
	setETag(ctx, bt.Version)
	return &sluicev1.GetBackendThroughputResponse{BackendThroughput: bt}, nil
}

// PutBackendThroughput sets the parts of an API's caps the body gives, for
// production and sandbox together, all or nothing.
func (s *Service) PutBackendThroughput(ctx context.Context, in *sluicev1.PutBackendThroughputRequest) (*sluicev1.PutBackendThroughputResponse, error) {
	body := in.GetBackendThroughput()
	if in.GetDomain() == "" {
		return nil, toStatus(badField("domain", "required"))
	}
	if in.GetApi() == "" {
		return nil, toStatus(badField("api", "required"))
	}
	expect, err := parseAPIVersion(ifMatch(ctx, body.GetVersion()))
	if err != nil {
		return nil, toStatus(err)
	}
	parts := [2]struct {
		req        *sluicev1.RequestThroughput
		tok        *sluicev1.TokenThroughput
		reqF, tokF string
	}{
		{body.GetProduction(), body.GetProductionTokens(), "production", "production_tokens"},
		{body.GetSandbox(), body.GetSandboxTokens(), "sandbox", "sandbox_tokens"},
	}
	if parts[0].req == nil && parts[0].tok == nil && parts[1].req == nil && parts[1].tok == nil {
		return nil, toStatus(badField("backend_throughput", "give production, sandbox, production_tokens or sandbox_tokens"))
	}
	// Compose from what is in Redis now, not from what this replica saw
	// last: the version check then covers what the parts left out keep.
	if err := s.o.Refresh(ctx); err != nil {
		return nil, toStatus(err)
	}
	st := s.o.Configs.State()
	d, _ := st.Set.Domain(in.GetDomain()) // nil when the domain is new: nothing in effect
	var changes []overlay.Change
	for i, p := range parts {
		path := envPath(in.GetApi(), environments[i])
		c := overlay.Change{Domain: in.GetDomain(), Path: path, Expect: expect[i], CheckOnly: p.req == nil && p.tok == nil}
		if !c.CheckOnly {
			cur, _ := d.Lookup(path)
			lim, err := composeEnvironment(cur, p.req, p.tok, p.reqF, p.tokF)
			if err != nil {
				return nil, toStatus(err)
			}
			if _, err := overlay.Override(in.GetDomain(), path, lim); err != nil {
				return nil, toStatus(formFields(err, p.reqF, p.tokF))
			}
			c.Limit = lim
		}
		if !c.CheckOnly || c.Expect != "" {
			changes = append(changes, c)
		}
	}
	if _, err := s.write(ctx, changes); err != nil {
		return nil, toStatus(s.apiStale(ctx, err, in.GetDomain(), in.GetApi()))
	}
	return &sluicev1.PutBackendThroughputResponse{BackendThroughput: s.answerThroughput(ctx, in.GetDomain(), in.GetApi())}, nil
}

// DeleteBackendThroughput removes the API's runtime limits.
func (s *Service) DeleteBackendThroughput(ctx context.Context, in *sluicev1.DeleteBackendThroughputRequest) (*sluicev1.DeleteBackendThroughputResponse, error) {
	if in.GetDomain() == "" {
		return nil, toStatus(badField("domain", "required"))
	}
	if in.GetApi() == "" {
		return nil, toStatus(badField("api", "required"))
	}
	expect, err := parseAPIVersion(ifMatch(ctx, in.GetVersion()))
	if err != nil {
		return nil, toStatus(err)
	}
	changes := make([]overlay.Change, len(environments))
	for i, env := range environments {
		changes[i] = overlay.Change{Domain: in.GetDomain(), Path: envPath(in.GetApi(), env), Expect: expect[i]}
	}
	w, err := s.write(ctx, changes)
	if err != nil {
		return nil, toStatus(s.apiStale(ctx, err, in.GetDomain(), in.GetApi()))
	}
	if !w.Changed {
		return nil, toStatus(notFound("api %q: has no runtime limits in domain %q", in.GetApi(), in.GetDomain()))
	}
	return &sluicev1.DeleteBackendThroughputResponse{BackendThroughput: s.answerThroughput(ctx, in.GetDomain(), in.GetApi())}, nil
}

// answerThroughput is the API's caps after a write, with this replica
// caught up on it.
func (s *Service) answerThroughput(ctx context.Context, domain, api string) *sluicev1.BackendThroughput {
	st := s.read(ctx)
	d, ok := st.Set.Domain(domain)
	if !ok { // nothing left in a domain only runtime limits made
		return &sluicev1.BackendThroughput{Version: "0.0"}
	}
	bt := throughput(st, d, api)
	setETag(ctx, bt.Version)
	return bt
}

// apiStale words a stale write of an API with the API's version now.
func (s *Service) apiStale(ctx context.Context, err error, domain, api string) error {
	var stale *overlay.StaleError
	if !errors.As(err, &stale) {
		return err
	}
	return &apiStaleError{current: apiVersion(s.read(ctx), domain, api)}
}
