package admin

import (
	"context"
	"strconv"

	"google.golang.org/protobuf/types/known/timestamppb"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server/overlay"
)

// Audit page sizes.
const (
	defaultAuditPage = 100
	maxAuditPage     = 1000
)

// ListAuditEntries returns a page of the audit trail, newest first.
func (s *Service) ListAuditEntries(ctx context.Context, in *sluicev1.ListAuditEntriesRequest) (*sluicev1.ListAuditEntriesResponse, error) {
	size := int(in.GetPageSize())
	switch {
	case size < 0 || size > maxAuditPage:
		return nil, toStatus(badField("page_size", "must be between 0 and %d", maxAuditPage))
	case size == 0:
		size = defaultAuditPage
	}
	var before int64
	if t := in.GetPageToken(); t != "" {
		var err error
		if before, err = strconv.ParseInt(t, 10, 64); err != nil || before <= 0 {
			return nil, toStatus(badField("page_token", "not a token an earlier page returned"))
		}
	}
	entries, err := s.o.Store.Audit(ctx, before, size+1)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &sluicev1.ListAuditEntriesResponse{}
	if len(entries) > size {
		entries = entries[:size]
		out.NextPageToken = strconv.FormatInt(entries[size-1].Cursor, 10)
	}
	for _, e := range entries {
		out.Entries = append(out.Entries, auditProto(e))
	}
	return out, nil
}

func auditProto(e overlay.AuditEntry) *sluicev1.AuditEntry {
	out := &sluicev1.AuditEntry{
		Revision: e.Revision, Time: timestamppb.New(e.Time), Who: e.Who, Remote: e.Remote,
		Action: e.Action, Domain: e.Domain,
	}
	for _, p := range e.Path {
		out.Path = append(out.Path, &sluicev1.Entry{Key: p.Key, Value: p.Value})
	}
	if e.Old != nil {
		out.OldValue = e.Old.Proto()
	}
	if e.New != nil {
		out.NewValue = e.New.Proto()
	}
	return out
}
