package admin

import (
	"context"
	"errors"

	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server/overlay"
)

// ListRuntimeLimits lists a domain's runtime limits.
func (s *Service) ListRuntimeLimits(ctx context.Context, in *sluicev1.ListRuntimeLimitsRequest) (*sluicev1.ListRuntimeLimitsResponse, error) {
	if in.GetDomain() == "" {
		return nil, toStatus(badField("domain", "required"))
	}
	st := s.read(ctx)
	out := &sluicev1.ListRuntimeLimitsResponse{}
	for _, r := range st.Snapshot.Domain(in.GetDomain()) {
		out.RuntimeLimits = append(out.RuntimeLimits, r.Proto())
	}
	return out, nil
}

// GetRuntimeLimit returns the runtime limit at a path.
func (s *Service) GetRuntimeLimit(ctx context.Context, in *sluicev1.GetRuntimeLimitRequest) (*sluicev1.GetRuntimeLimitResponse, error) {
	if in.GetDomain() == "" {
		return nil, toStatus(badField("domain", "required"))
	}
	path, err := parsePath(in.GetPath())
	if err != nil {
		return nil, toStatus(err)
	}
	rec := s.read(ctx).Snapshot.Find(in.GetDomain(), path)
	if rec == nil {
		return nil, toStatus(notFound("no runtime limit at %v in domain %q", path, in.GetDomain()))
	}
	setETag(ctx, rec.Proto().Version)
	return &sluicev1.GetRuntimeLimitResponse{RuntimeLimit: rec.Proto()}, nil
}

// PutRuntimeLimit creates or replaces the runtime limit at a path.
func (s *Service) PutRuntimeLimit(ctx context.Context, in *sluicev1.PutRuntimeLimitRequest) (*sluicev1.PutRuntimeLimitResponse, error) {
	lim := in.GetRuntimeLimit()
	switch {
	case in.GetDomain() == "":
		return nil, toStatus(badField("domain", "required"))
	case lim == nil:
		return nil, toStatus(badField("runtime_limit", "required"))
	case len(lim.GetPath()) == 0:
		return nil, toStatus(badField("path", "required: give the descriptor path as [{key, value}, ...], outermost first"))
	}
	path := entriesOf(lim.GetPath())
	change := overlay.Change{Domain: in.GetDomain(), Path: path, Limit: proto.CloneOf(lim), Expect: ifMatch(ctx, lim.GetVersion())}
	if _, err := s.write(ctx, []overlay.Change{change}); err != nil {
		return nil, toStatus(err)
	}
	rec := s.read(ctx).Snapshot.Find(in.GetDomain(), path)
	if rec == nil { // deleted again already, by someone else
		return nil, toStatus(notFound("no runtime limit at %v in domain %q", path, in.GetDomain()))
	}
	setETag(ctx, rec.Proto().Version)
	return &sluicev1.PutRuntimeLimitResponse{RuntimeLimit: rec.Proto()}, nil
}

// DeleteRuntimeLimit removes the runtime limit at a path.
func (s *Service) DeleteRuntimeLimit(ctx context.Context, in *sluicev1.DeleteRuntimeLimitRequest) (*sluicev1.DeleteRuntimeLimitResponse, error) {
	if in.GetDomain() == "" {
		return nil, toStatus(badField("domain", "required"))
	}
	path, err := parsePath(in.GetPath())
	if err != nil {
		return nil, toStatus(err)
	}
	before := s.read(ctx).Snapshot.Find(in.GetDomain(), path)
	expect := ifMatch(ctx, in.GetVersion())
	_, err = s.write(ctx, []overlay.Change{{Domain: in.GetDomain(), Path: path, Expect: expect, MustExist: expect == ""}})
	var stale *overlay.StaleError
	if errors.As(err, &stale) && stale.Current == 0 {
		return nil, toStatus(notFound("no runtime limit at %v in domain %q", path, in.GetDomain()))
	}
	if err != nil {
		return nil, toStatus(err)
	}
	_ = s.o.Refresh(ctx)
	out := &sluicev1.DeleteRuntimeLimitResponse{}
	if before != nil {
		out.RuntimeLimit = before.Proto()
	}
	return out, nil
}
