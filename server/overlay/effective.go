package overlay

import (
	"sync"
	"sync/atomic"

	"github.com/sluice-rl/sluice/server/config"
)

// Effective is the config the limiter decides with: the base Set (from the
// files, or xDS) with the runtime limits laid over it. Every new base and
// every new snapshot rebuilds it, under one lock, from the latest of both,
// so the result never depends on which of two simultaneous changes came
// first: at a path with a runtime limit the runtime limit wins, elsewhere
// the base does.
type Effective struct {
	mu    sync.Mutex // serializes rebuilds
	state atomic.Pointer[State]
}

// State is one consistent view: the base, the snapshot laid over it and
// the resulting Set.
type State struct {
	Base     *config.Set
	Snapshot *Snapshot // nil before the first load
	Set      *config.Set
}

// NewEffective starts from base, with no runtime limits yet.
func NewEffective(base *config.Set) *Effective {
	e := &Effective{}
	e.state.Store(&State{Base: base, Set: base})
	return e
}

// Load returns the effective Set. It is safe for concurrent use and does
// not block.
func (e *Effective) Load() *config.Set { return e.state.Load().Set }

// State returns the current base, snapshot and effective Set together.
func (e *Effective) State() *State { return e.state.Load() }

// SetBase lays the runtime limits over a new base Set.
func (e *Effective) SetBase(base *config.Set) {
	e.mu.Lock()
	defer e.mu.Unlock()
	snap := e.state.Load().Snapshot
	e.state.Store(&State{Base: base, Snapshot: snap, Set: base.Overlay(snap.Overrides())})
}

// SetSnapshot lays a new snapshot of the runtime limits over the base.
func (e *Effective) SetSnapshot(snap *Snapshot) {
	e.mu.Lock()
	defer e.mu.Unlock()
	base := e.state.Load().Base
	e.state.Store(&State{Base: base, Snapshot: snap, Set: base.Overlay(snap.Overrides())})
}
