package limiter

import (
	"fmt"
	"unicode/utf8"

	"github.com/sluice-rl/sluice/server/config"
)

// Bounds on one request. They keep a single call from costing Redis (or the
// key space) more than a gateway could mean to spend.
const (
	MaxDescriptors = 64
	MaxEntries     = 32
	MaxDomainLen   = 256
	MaxKeyLen      = 256
	MaxValueLen    = 1024
	MaxHits        = 1_000_000_000
)

// Request is one "may this go through?" question.
type Request struct {
	Domain      string
	Descriptors []Descriptor
	// Hits is the cost of the request; 0 means 1.
	Hits uint64
}

// Descriptor selects limits; Hits, when HasHits, replaces the request's cost
// for this descriptor (0 then means "check only").
type Descriptor struct {
	Entries []config.Entry
	Hits    uint64
	HasHits bool
}

// InvalidError is bad input. Field names the offending field as the caller
// spelled it, e.g. "descriptors[1].entries[0].key".
type InvalidError struct {
	Field string
	Msg   string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Msg }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// validate checks a request before anything is read or charged.
func (r *Request) validate() error {
	switch {
	case r.Domain == "":
		return invalid("domain", "must not be empty")
	case len(r.Domain) > MaxDomainLen:
		return invalid("domain", "longer than %d bytes", MaxDomainLen)
	case len(r.Descriptors) == 0:
		return invalid("descriptors", "must not be empty")
	case len(r.Descriptors) > MaxDescriptors:
		return invalid("descriptors", "more than %d descriptors", MaxDescriptors)
	case r.Hits > MaxHits:
		return invalid("hits_addend", "must be at most %d, got %d", MaxHits, r.Hits)
	}
	for i, d := range r.Descriptors {
		if err := d.validate(i); err != nil {
			return err
		}
	}
	return nil
}

func (d *Descriptor) validate(i int) error {
	if len(d.Entries) == 0 {
		return invalid(fmt.Sprintf("descriptors[%d].entries", i), "must not be empty")
	}
	if len(d.Entries) > MaxEntries {
		return invalid(fmt.Sprintf("descriptors[%d].entries", i), "more than %d entries", MaxEntries)
	}
	if d.HasHits && d.Hits > MaxHits {
		return invalid(fmt.Sprintf("descriptors[%d].hits_addend", i), "must be at most %d, got %d", MaxHits, d.Hits)
	}
	for j, e := range d.Entries {
		field := func(name string) string { return fmt.Sprintf("descriptors[%d].entries[%d].%s", i, j, name) }
		switch {
		case e.Key == "":
			return invalid(field("key"), "must not be empty")
		case len(e.Key) > MaxKeyLen:
			return invalid(field("key"), "longer than %d bytes", MaxKeyLen)
		case len(e.Value) > MaxValueLen:
			return invalid(field("value"), "longer than %d bytes", MaxValueLen)
		case !utf8.ValidString(e.Key):
			return invalid(field("key"), "not valid UTF-8")
		case !utf8.ValidString(e.Value):
			return invalid(field("value"), "not valid UTF-8")
		}
	}
	return nil
}

// cost is what this descriptor charges each of its limits.
func (r *Request) cost(d *Descriptor) uint64 {
	if d.HasHits {
		return d.Hits
	}
	if r.Hits == 0 {
		return 1
	}
	return r.Hits
}
