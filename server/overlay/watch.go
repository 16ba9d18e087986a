package overlay

import (
	"context"
	"sync"
	"time"
)

// DefaultPollInterval is how often a Watcher checks the revision when no
// change message arrives: the fallback that bounds how late a lost message
// makes a replica.
const DefaultPollInterval = 500 * time.Millisecond

// Watcher keeps a replica's runtime limits current: it loads a Snapshot
// whenever the revision moves, told by a message on the store's channel or
// seen by polling, and hands it to apply.
type Watcher struct {
	store  *Store
	poll   time.Duration
	apply  func(*Snapshot)
	report func(error)

	mu      sync.Mutex // one load at a time, in revision order
	loaded  bool
	last    int64
	failing bool // the last load failed; report once per streak
}

// NewWatcher returns a watcher of store that calls apply with every new
// snapshot and report with load failures (once per run of failures) and
// with records that do not pass the checks. poll <= 0 means
// DefaultPollInterval.
func NewWatcher(store *Store, poll time.Duration, apply func(*Snapshot), report func(error)) *Watcher {
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	return &Watcher{store: store, poll: poll, apply: apply, report: report}
}

// Loaded reports whether a snapshot has been applied.
func (w *Watcher) Loaded() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.loaded
}

// Refresh loads and applies the runtime limits now if their revision moved
// since the last load (or nothing was loaded yet). After a write, it makes
// this replica apply the write before the call answers.
func (w *Watcher) Refresh(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.refresh(ctx)
	if err != nil && !w.failing {
		w.report(err)
	}
	w.failing = err != nil
	return err
}

func (w *Watcher) refresh(ctx context.Context) error {
	if w.loaded {
		rev, err := w.store.Revision(ctx)
		if err != nil {
			return err
		}
		if rev == w.last {
			return nil
		}
	}
	snap, err := w.store.Snapshot(ctx)
	if err != nil {
		return err
	}
	if w.loaded && snap.Revision < w.last {
		return nil // an older answer than what is applied: keep it
	}
	for _, p := range snap.Problems {
		w.report(p)
	}
	w.apply(snap)
	w.loaded, w.last = true, snap.Revision
	return nil
}

// Run refreshes on every change message and every poll interval until ctx
// is done.
func (w *Watcher) Run(ctx context.Context) {
	sub := w.store.rdb.Subscribe(ctx, w.store.channel)
	defer func() { _ = sub.Close() }()
	msgs := sub.Channel()
	t := time.NewTicker(w.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-msgs:
		case <-t.C:
		}
		_ = w.Refresh(ctx) // failures are reported, and the next poll retries
	}
}
