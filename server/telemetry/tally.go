package telemetry

import (
	"context"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// A tally is one series of a counter that is added to on every decision:
// an atomic add (a few ns, no lock shared with other series) instead of the
// SDK's Add, which looks the attribute set up and takes its aggregation's lock
// (0.2 µs alone, 0.4 µs per decision at 64 callers). The counter is an
// observable one; its callback reports every tally at each collection, so the
// exported series are the same cumulative counters. (They carry no exemplars:
// the call duration histogram does.)
type tally struct {
	n     atomic.Int64
	attrs metric.ObserveOption
}

// Add counts n more.
func (t *tally) Add(n int64) { t.n.Add(n) }

// talliedCounter is an observable counter and the tallies it reports.
type talliedCounter struct {
	inst metric.Int64ObservableCounter
	mu   sync.Mutex
	all  []*tally
}

// newTalliedCounter creates the observable counter name on m.
func newTalliedCounter(m metric.Meter, name, unit, desc string) (*talliedCounter, error) {
	c := &talliedCounter{}
	inst, err := m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	if err != nil {
		return nil, err
	}
	c.inst = inst
	if _, err := m.RegisterCallback(c.observe, inst); err != nil {
		return nil, err
	}
	return c, nil
}

// tally returns a new series of c with the attributes kvs. Series are made
// once per attribute set (the caches in series.go hold them), so the list
// grows with the label sets seen, as the SDK's own aggregation would.
func (c *talliedCounter) tally(kvs ...attribute.KeyValue) *tally {
	t := &tally{attrs: metric.WithAttributeSet(attribute.NewSet(kvs...))}
	c.mu.Lock()
	c.all = append(c.all, t)
	c.mu.Unlock()
	return t
}

func (c *talliedCounter) observe(_ context.Context, o metric.Observer) error {
	c.mu.Lock()
	all := c.all
	c.mu.Unlock()
	for _, t := range all {
		if n := t.n.Load(); n > 0 { // a series shows from its first count, as with Add
			o.ObserveInt64(c.inst, n, t.attrs)
		}
	}
	return nil
}
