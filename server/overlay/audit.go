package overlay

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/server/config"
)

// AuditEntry is one change of the audit trail.
type AuditEntry struct {
	Revision int64
	Time     time.Time
	Who      string
	Remote   string
	Action   string // "put" or "delete"
	Domain   string
	Path     []config.Entry
	// Old and New are the runtime limit before and after; nil when there
	// was none (Old) or after a delete (New).
	Old, New *Record
	// Cursor continues a listing after this entry (Audit's before).
	Cursor int64
}

// Audit returns up to n audit entries older than the cursor before (0: from
// the newest), newest first.
func (s *Store) Audit(ctx context.Context, before int64, n int) ([]AuditEntry, error) {
	max := "+inf"
	if before > 0 {
		max = "(" + strconv.FormatInt(before, 10)
	}
	zs, err := s.rdb.ZRevRangeByScoreWithScores(ctx, s.keys.Audit, &redis.ZRangeBy{Max: max, Min: "-inf", Count: int64(n)}).Result()
	if err != nil {
		return nil, &StoreError{Err: err}
	}
	out := make([]AuditEntry, 0, len(zs))
	for _, z := range zs {
		raw, _ := z.Member.(string)
		e, err := decodeAudit(raw)
		if err != nil {
			return nil, &StoreError{Err: fmt.Errorf("audit entry %v: %w", z.Score, err)}
		}
		e.Cursor = int64(z.Score)
		out = append(out, e)
	}
	return out, nil
}

func decodeAudit(raw string) (AuditEntry, error) {
	var s struct {
		Revision int64           `json:"revision"`
		AtUS     int64           `json:"at_us"`
		Who      string          `json:"who"`
		Remote   string          `json:"remote"`
		Action   string          `json:"action"`
		Domain   string          `json:"domain"`
		Path     []storedEntry   `json:"path"`
		Old      json.RawMessage `json:"old"`
		New      json.RawMessage `json:"new"`
	}
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return AuditEntry{}, err
	}
	e := AuditEntry{Revision: s.Revision, Time: time.UnixMicro(s.AtUS), Who: s.Who, Remote: s.Remote, Action: s.Action, Domain: s.Domain}
	for _, p := range s.Path {
		e.Path = append(e.Path, config.Entry(p))
	}
	for _, side := range []struct {
		raw json.RawMessage
		dst **Record
	}{{s.Old, &e.Old}, {s.New, &e.New}} {
		if len(side.raw) == 0 || string(side.raw) == "null" {
			continue
		}
		r, err := decodeRecord(string(side.raw))
		if err != nil {
			return AuditEntry{}, err
		}
		*side.dst = r
	}
	return e, nil
}
