package server

import (
	"context"
	"time"

	"github.com/sluice-rl/sluice/server/overlay"
)

// openRuntimeLimits sets up the runtime limits: their store, next to the
// counters, and the watcher that lays every change over the files' config.
func (s *Server) openRuntimeLimits() {
	log := s.cfg.Logger
	s.runtime = overlay.NewStore(s.store.Client, s.cfg.KeyPrefix)
	s.watcher = overlay.NewWatcher(s.runtime, s.cfg.RuntimePollInterval, func(snap *overlay.Snapshot) {
		s.configs.SetSnapshot(snap)
		log.Info("runtime limits applied", "revision", snap.Revision, "limits", len(snap.Records))
	}, func(err error) {
		log.Error("runtime limits: keeping the ones applied before", "err", err)
	})
}

// loadRuntimeLimits loads the runtime limits before the service takes
// calls, so that a replica that starts or restarts decides with them from
// its first call. When Redis does not answer, the service stays unready
// until they are loaded (runtimeLimitsLoaded).
func (s *Server) loadRuntimeLimits(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_ = s.watcher.Refresh(ctx) // a failure is logged by the watcher
}

// runtimeLimitsLoaded is part of readiness: nil once the runtime limits
// have been loaded at least once.
func (s *Server) runtimeLimitsLoaded(ctx context.Context) error {
	if s.watcher.Loaded() {
		return nil
	}
	return s.watcher.Refresh(ctx)
}
