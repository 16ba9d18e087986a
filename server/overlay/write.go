package overlay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sluice-rl/sluice/lua"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server/config"
)

// Actor is who asks for a change, for the audit trail.
type Actor struct {
	// Who is the admin token's name or the client certificate's subject.
	Who string
	// Remote is the caller's network address.
	Remote string
}

// Change is one path of a write.
type Change struct {
	Domain string
	Path   []config.Entry
	// Limit is the new runtime limit; nil deletes the path's (if it has
	// one), unless CheckOnly.
	Limit *sluicev1.RuntimeLimit
	// CheckOnly only checks Expect (or MustExist): the path stays as it is.
	CheckOnly bool
	// Expect is the version the path must have now: "" any, "0" none yet,
	// else a version; MustExist asks for a record of any version.
	Expect    string
	MustExist bool
}

// Written is the outcome of a successful write.
type Written struct {
	// Changed is false when there was nothing to change (only checks, or
	// deletes of paths without a runtime limit).
	Changed bool
	// Revision is the version of every record written, or when nothing
	// changed the current revision.
	Revision int64
	// Time is when, by the Redis clock.
	Time time.Time
}

// ErrVersion is a version that is not a version.
var ErrVersion = errors.New("version: want the version a read returned (a whole number), or empty")

// Write applies changes in one step, all or none. Each limit is checked
// first (config.Problems on a bad one, nothing written); a path whose version
// is not the expected one fails the whole write with a *StaleError. A Redis
// failure is a *StoreError.
func (s *Store) Write(ctx context.Context, who Actor, changes []Change) (Written, error) {
	if len(changes) > lua.MaxRuntimeWrites {
		return Written{}, fmt.Errorf("changes: at most %d in one write", lua.MaxRuntimeWrites)
	}
	writes := make([]lua.RuntimeWrite, len(changes))
	for i, c := range changes {
		w := lua.RuntimeWrite{Field: fieldOf(c.Domain, c.Path)}
		switch {
		case c.Expect != "":
			v, err := strconv.ParseInt(c.Expect, 10, 64)
			if err != nil || v < 0 {
				return Written{}, ErrVersion
			}
			w.Expected = strconv.FormatInt(v, 10)
		case c.MustExist:
			w.Expected = "+"
		}
		w.Op = lua.RuntimeDelete
		action := "delete"
		switch {
		case c.CheckOnly:
			w.Op = lua.RuntimeCheck
			writes[i] = w
			continue
		case c.Limit != nil:
			w.Op, action = lua.RuntimePut, "put"
			if _, err := Override(c.Domain, c.Path, c.Limit); err != nil {
				return Written{}, err
			}
			tail, err := encodeRecordTail(who.Who, c.Domain, c.Path, c.Limit)
			if err != nil {
				return Written{}, err
			}
			w.Record = tail
		}
		audit, err := json.Marshal(struct {
			Who    string        `json:"who"`
			Remote string        `json:"remote"`
			Action string        `json:"action"`
			Domain string        `json:"domain"`
			Path   []storedEntry `json:"path"`
		}{who.Who, who.Remote, action, c.Domain, storedEntries(c.Path)})
		if err != nil {
			return Written{}, err
		}
		w.Audit = string(audit[1 : len(audit)-1])
		writes[i] = w
	}
	res, err := s.script.Run(ctx, s.rdb, s.keys, s.channel, s.auditMax, writes)
	if err != nil {
		return Written{}, &StoreError{Err: err}
	}
	if !res.Written && !res.Unchanged {
		return Written{}, &StaleError{Change: res.Stale, Current: res.Current}
	}
	return Written{Changed: res.Written, Revision: res.Revision, Time: time.UnixMicro(res.TimeUS)}, nil
}
