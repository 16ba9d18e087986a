package overlay

import (
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server/config"
)

// Record is one stored runtime limit.
type Record struct {
	Domain string
	Path   []config.Entry
	// Limit holds the limit fields only (no domain, path or metadata).
	Limit *sluicev1.RuntimeLimit
	// Version is the revision that wrote the record.
	Version   int64
	UpdatedBy string
	UpdatedAt time.Time
	// Override is Limit checked and ready to lay over a Set.
	Override *config.Override
}

// Proto returns the record as the AdminService shows it.
func (r *Record) Proto() *sluicev1.RuntimeLimit {
	out := proto.CloneOf(r.Limit)
	out.Domain = r.Domain
	out.Path = entriesProto(r.Path)
	out.Version = fmt.Sprint(r.Version)
	out.UpdatedBy = r.UpdatedBy
	out.UpdateTime = timestamppb.New(r.UpdatedAt)
	return out
}

// storedRecord is a record as runtime.lua stores it: version and
// updated_at_us first (the script writes them), then what encodeRecordTail
// gives.
type storedRecord struct {
	Version     int64           `json:"version"`
	UpdatedAtUS int64           `json:"updated_at_us"`
	UpdatedBy   string          `json:"updated_by"`
	Domain      string          `json:"domain"`
	Path        []storedEntry   `json:"path"`
	Limit       json.RawMessage `json:"limit"`
}

type storedEntry struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// encodeRecordTail writes the members of a record after version and
// updated_at_us, without the opening brace, as runtime.lua wants them.
func encodeRecordTail(by, domain string, path []config.Entry, limit *sluicev1.RuntimeLimit) (string, error) {
	lim, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(limitOnly(limit))
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(struct {
		UpdatedBy string          `json:"updated_by"`
		Domain    string          `json:"domain"`
		Path      []storedEntry   `json:"path"`
		Limit     json.RawMessage `json:"limit"`
	}{by, domain, storedEntries(path), lim})
	if err != nil {
		return "", err
	}
	return string(b[1:]), nil
}

func decodeRecord(value string) (*Record, error) {
	var s storedRecord
	if err := json.Unmarshal([]byte(value), &s); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	lim := &sluicev1.RuntimeLimit{}
	if err := protojson.Unmarshal(s.Limit, lim); err != nil {
		return nil, fmt.Errorf("record limit (written by a newer sluice?): %w", err)
	}
	rec := &Record{
		Domain: s.Domain, Limit: lim, Version: s.Version, UpdatedBy: s.UpdatedBy,
		UpdatedAt: time.UnixMicro(s.UpdatedAtUS),
	}
	for _, e := range s.Path {
		rec.Path = append(rec.Path, config.Entry{Key: e.Key, Value: e.Value})
	}
	return rec, nil
}

// limitOnly returns the limit fields of m: no domain, path or metadata.
func limitOnly(m *sluicev1.RuntimeLimit) *sluicev1.RuntimeLimit {
	out := proto.CloneOf(m)
	out.Domain, out.Path, out.Version, out.UpdatedBy, out.UpdateTime = "", nil, "", "", nil
	return out
}

func storedEntries(path []config.Entry) []storedEntry {
	out := make([]storedEntry, len(path))
	for i, e := range path {
		out[i] = storedEntry(e)
	}
	return out
}

func entriesProto(path []config.Entry) []*sluicev1.Entry {
	out := make([]*sluicev1.Entry, len(path))
	for i, e := range path {
		out[i] = &sluicev1.Entry{Key: e.Key, Value: e.Value}
	}
	return out
}
