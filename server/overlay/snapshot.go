package overlay

import (
	"slices"

	"github.com/sluice-rl/sluice/server/config"
)

// Snapshot is every runtime limit at one revision. It is immutable.
type Snapshot struct {
	// Revision is the number of writes the snapshot reflects.
	Revision int64
	// Records are the runtime limits that passed the checks, sorted by
	// domain and path.
	Records []*Record
	// Problems are the records that did not (skipped).
	Problems []error
}

// Overrides returns the records' overrides, in order.
func (s *Snapshot) Overrides() []*config.Override {
	if s == nil {
		return nil
	}
	out := make([]*config.Override, len(s.Records))
	for i, r := range s.Records {
		out[i] = r.Override
	}
	return out
}

// Find returns the runtime limit at path in domain, or nil.
func (s *Snapshot) Find(domain string, path []config.Entry) *Record {
	if s == nil {
		return nil
	}
	for _, r := range s.Records {
		if r.Domain == domain && slices.Equal(r.Path, path) {
			return r
		}
	}
	return nil
}

// Domain returns the runtime limits of domain, sorted by path.
func (s *Snapshot) Domain(domain string) []*Record {
	if s == nil {
		return nil
	}
	var out []*Record
	for _, r := range s.Records {
		if r.Domain == domain {
			out = append(out, r)
		}
	}
	return out
}
