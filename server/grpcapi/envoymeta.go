package grpcapi

import (
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluice-rl/sluice/server/limiter"
)

// envoyMetadata is the response's dynamic_metadata, as envoyproxy/ratelimit
// fills it with RESPONSE_DYNAMIC_METADATA=true (Envoy puts it under the
// namespace envoy.filters.http.ratelimit):
//
//	domain       the request's domain
//	descriptors  per request descriptor: entries ["key=value", ...], and its
//	             limit override (as text) and hitsAddend when it has them
//	hitsAddend   the request's hits_addend, when not 0
//	metadata     the config metadata of every descriptor that passed (a limit
//	             applied and did not refuse it), merged in request order: the
//	             first descriptor's value wins, mappings merge key by key
//
// and, as upstream sent them from January to April 2026 (before metadata
// replaced them), quotaModeViolations (the indices of the quota-mode
// descriptors over their limit, when there are any) and quotaModeEnabled (a
// descriptor of the call that a limit applied to is in quota mode).
func envoyMetadata(in *rlsv3.RateLimitRequest, dec *limiter.Decision) *structpb.Struct {
	fields := map[string]*structpb.Value{"domain": structpb.NewStringValue(in.GetDomain())}
	descriptors := make([]*structpb.Value, 0, len(in.GetDescriptors()))
	for _, d := range in.GetDescriptors() {
		entries := make([]*structpb.Value, len(d.GetEntries()))
		for i, e := range d.GetEntries() {
			entries[i] = structpb.NewStringValue(e.GetKey() + "=" + e.GetValue())
		}
		f := map[string]*structpb.Value{"entries": structpb.NewListValue(&structpb.ListValue{Values: entries})}
		if d.GetLimit() != nil {
			f["limit"] = structpb.NewStringValue(d.GetLimit().String())
		}
		if h := d.GetHitsAddend(); h != nil {
			f["hitsAddend"] = structpb.NewNumberValue(float64(h.GetValue()))
		}
		descriptors = append(descriptors, structpb.NewStructValue(&structpb.Struct{Fields: f}))
	}
	fields["descriptors"] = structpb.NewListValue(&structpb.ListValue{Values: descriptors})
	if h := in.GetHitsAddend(); h != 0 {
		fields["hitsAddend"] = structpb.NewNumberValue(float64(h))
	}

	passed := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	var violations []*structpb.Value
	quotaEnabled := false
	for i, st := range dec.Statuses {
		if st.Limit == nil {
			continue // no limit applied: unmatched, unlimited or replaced
		}
		if st.Quota && st.Over && !st.Shadow {
			violations = append(violations, structpb.NewNumberValue(float64(i)))
		}
		quotaEnabled = quotaEnabled || st.Quota
		if (!st.Over || st.Shadow) && st.Metadata != nil {
			if m, err := structpb.NewStruct(st.Metadata); err == nil { // config values always convert
				mergeMetadata(passed, m)
			}
		}
	}
	if len(passed.GetFields()) > 0 {
		fields["metadata"] = structpb.NewStructValue(passed)
	}
	if len(violations) > 0 {
		fields["quotaModeViolations"] = structpb.NewListValue(&structpb.ListValue{Values: violations})
	}
	fields["quotaModeEnabled"] = structpb.NewBoolValue(quotaEnabled)
	return &structpb.Struct{Fields: fields}
}

// mergeMetadata adds src's fields to dst: a field dst has keeps its value,
// except that two mappings merge recursively.
func mergeMetadata(dst, src *structpb.Struct) {
	for k, v := range src.GetFields() {
		have, ok := dst.GetFields()[k]
		switch {
		case !ok:
			dst.Fields[k] = v
		case have.GetStructValue() != nil && v.GetStructValue() != nil:
			mergeMetadata(have.GetStructValue(), v.GetStructValue())
		}
	}
}
