package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/overlay"
)

// environments are an API's two backends, as API managers name them; an
// API is a descriptor api=<name> with environment=<one of these> below it.
var environments = [2]string{"production", "sandbox"}

func envPath(api, env string) []config.Entry {
	return []config.Entry{{Key: "api", Value: api}, {Key: "environment", Value: env}}
}

// source says where an environment's limits come from.
func source(st *overlay.State, domain string, path []config.Entry, has bool) string {
	switch {
	case st.Snapshot.Find(domain, path) != nil:
		return "runtime"
	case has:
		return "file"
	}
	return ""
}

// apiVersion is an API's backend-throughput version: the versions of its
// production and sandbox runtime limits (0: none), as "p.s". Any change to
// either, a delete included, changes it, and never back to an old value.
func apiVersion(st *overlay.State, domain, api string) string {
	var v [2]string
	for i, env := range environments {
		v[i] = "0"
		if r := st.Snapshot.Find(domain, envPath(api, env)); r != nil {
			v[i] = strconv.FormatInt(r.Version, 10)
		}
	}
	return v[0] + "." + v[1]
}

// parseAPIVersion splits "p.s" into the versions the two environments must
// have; "" checks nothing.
func parseAPIVersion(v string) ([2]string, error) {
	if v == "" {
		return [2]string{}, nil
	}
	p, s, ok := strings.Cut(v, ".")
	_, perr := strconv.ParseUint(p, 10, 63)
	_, serr := strconv.ParseUint(s, 10, 63)
	if !ok || perr != nil || serr != nil {
		return [2]string{}, badField("version", "want the version a read returned, like 12.0, not %q", v)
	}
	return [2]string{p, s}, nil
}

// throughput is an API's backend throughput as the form shows it.
func throughput(st *overlay.State, d *config.Domain, api string) *sluicev1.BackendThroughput {
	out := &sluicev1.BackendThroughput{Version: apiVersion(st, d.Name, api)}
	for i, env := range environments {
		path := envPath(api, env)
		rule, has := d.Lookup(path)
		src := source(st, d.Name, path, has)
		req, tok := requestThroughput(rule, src), tokenThroughput(rule, src)
		if i == 0 {
			out.Production, out.ProductionTokens = req, tok
		} else {
			out.Sandbox, out.SandboxTokens = req, tok
		}
	}
	return out
}

// requestThroughput is the first request limit of a rule (Unlimited when it
// has none) and how many more it has.
func requestThroughput(r config.Rule, src string) *sluicev1.RequestThroughput {
	out := &sluicev1.RequestThroughput{Source: src, Unlimited: true}
	for _, l := range r.Limits {
		if l.Kind != config.KindRequests {
			continue
		}
		if !out.Unlimited {
			out.MoreLimits++
			continue
		}
		out.Unlimited = false
		out.Requests = proto.Int64(int64(l.Requests))
		out.Window = config.WindowText(l.Window)
		if l.Buckets != config.DefaultBuckets {
			out.Buckets = proto.Int64(int64(l.Buckets))
		}
	}
	return out
}

// tokenThroughput is the first token_limit of a rule (Unlimited when it has
// none) and how many more it has.
func tokenThroughput(r config.Rule, src string) *sluicev1.TokenThroughput {
	out := &sluicev1.TokenThroughput{Source: src, Unlimited: true}
	groups := config.TokenGroups(r.Limits)
	if len(groups) == 0 {
		return out
	}
	first := groups[0]
	out.Unlimited = false
	out.MoreLimits = int32(len(groups) - 1)
	out.Window = config.WindowText(first[0].Window)
	if first[0].Buckets != config.DefaultBuckets {
		out.Buckets = proto.Int64(int64(first[0].Buckets))
	}
	for _, l := range first {
		n := proto.Int64(int64(l.Requests))
		switch l.Kind {
		case config.KindTotalTokens:
			out.TotalTokens = n
		case config.KindPromptTokens:
			out.PromptTokens = n
		case config.KindCompletionTokens:
			out.CompletionTokens = n
		}
	}
	return out
}

// composeEnvironment builds the runtime limit of one environment from what
// the form gives — req (requests) and tok (tokens), either may be nil — and,
// for a part not given, from the limits in effect (cur): a part left out
// stays as it is, and so do the flags (shadow_mode, detailed_metric).
// reqField and tokField name the parts in errors ("production",
// "production_tokens").
func composeEnvironment(cur config.Rule, req *sluicev1.RequestThroughput, tok *sluicev1.TokenThroughput, reqField, tokField string) (*sluicev1.RuntimeLimit, error) {
	if err := checkRequestPart(req, reqField); err != nil {
		return nil, err
	}
	if err := checkTokenPart(tok, tokField); err != nil {
		return nil, err
	}
	lim, err := runtimeLimitOf(cur)
	if err != nil {
		return nil, err
	}
	if lim.GetRateLimit().GetUnlimited() {
		lim.RateLimit = nil // requests unlimited = no request limit, whatever tokens get
	}
	if req != nil {
		lim.RateLimit, lim.RateLimits = nil, nil
		if !req.GetUnlimited() {
			w := req.GetWindow()
			lim.RateLimits = []*sluicev1.RequestLimit{{Window: &w, Requests: req.Requests, Buckets: req.Buckets}}
		}
	}
	if tok != nil {
		lim.TokenLimit, lim.TokenLimits = nil, nil
		if !tok.GetUnlimited() {
			w := tok.GetWindow()
			lim.TokenLimits = []*sluicev1.TokenLimit{{
				Window: &w, Buckets: tok.Buckets,
				TotalTokens: tok.TotalTokens, PromptTokens: tok.PromptTokens, CompletionTokens: tok.CompletionTokens,
			}}
		}
	}
	if lim.RateLimit == nil && len(lim.RateLimits) == 0 && lim.TokenLimit == nil && len(lim.TokenLimits) == 0 {
		lim.RateLimit = &sluicev1.RequestLimit{Unlimited: proto.Bool(true)}
	}
	return lim, nil
}

func checkRequestPart(req *sluicev1.RequestThroughput, field string) error {
	switch {
	case req == nil:
	case req.GetUnlimited() && (req.Requests != nil || req.Window != "" || req.Buckets != nil):
		return badField(field+".unlimited", "give unlimited, or requests and window, not both")
	case req.GetUnlimited():
	case req.Requests == nil:
		return badField(field+".requests", "missing: give requests and window, or unlimited: true")
	case req.Window == "":
		return badField(field+".window", "missing: give a window like 1s or 1m")
	}
	return nil
}

func checkTokenPart(tok *sluicev1.TokenThroughput, field string) error {
	switch {
	case tok == nil:
	case tok.GetUnlimited() && (tok.Window != "" || tok.Buckets != nil || tok.TotalTokens != nil || tok.PromptTokens != nil || tok.CompletionTokens != nil):
		return badField(field+".unlimited", "give unlimited, or a window and token counts, not both")
	case tok.GetUnlimited():
	case tok.Window == "":
		return badField(field+".window", "missing: give a window like 1m")
	}
	return nil
}

// runtimeLimitOf is a rule as a RuntimeLimit: the rule written as a file's
// descriptor fields (config.Rule.Fragment) read as JSON, since RuntimeLimit's
// fields are named as those.
func runtimeLimitOf(r config.Rule) (*sluicev1.RuntimeLimit, error) {
	out := &sluicev1.RuntimeLimit{}
	frag, err := r.Fragment()
	if err != nil || frag == nil {
		return out, err
	}
	var fields map[string]any
	if err := yaml.Unmarshal(frag, &fields); err != nil {
		return nil, err
	}
	js, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	if err := protojson.Unmarshal(js, out); err != nil {
		return nil, fmt.Errorf("limits in effect as a runtime limit: %w", err)
	}
	return out, nil
}

// formFields renames the problems of a composed runtime limit after the
// form's parts: rate_limits[0].x is reqField.x, token_limits[0].x is
// tokField.x.
func formFields(err error, reqField, tokField string) error {
	var ps config.Problems
	if !errors.As(err, &ps) {
		return err
	}
	out := make(config.Problems, len(ps))
	for i, p := range ps {
		for _, part := range []struct{ prefix, field string }{{"rate_limits[0]", reqField}, {"token_limits[0]", tokField}} {
			if rest, ok := strings.CutPrefix(p.Field, part.prefix); ok {
				p.Field = part.field + rest
			}
		}
		out[i] = p
	}
	return out
}
