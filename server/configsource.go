package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluice-rl/sluice/server/config"
)

// ConfigSource supplies the base config in place of files: xds.Client, which
// follows an xDS management server, is one. Each Set it applies replaces the
// base exactly as a file reload does — the runtime limits stay laid over it
// — and a config it cannot load it reports, keeping the one in force.
type ConfigSource interface {
	// Run delivers configs until ctx is done, calling apply and report from
	// one goroutine, one at a time.
	Run(ctx context.Context, apply func(*config.Set), report func(error))
	// String names the source in logs.
	String() string
}

// errNoConfigYet is the readiness answer until a ConfigSource's first config.
var errNoConfigYet = errors.New("no config received yet from the config source")

// initialConfig is the base config the server starts from: the files', or
// none at all until the source sends one.
func initialConfig(cfg Config) (*config.Set, error) {
	if cfg.ConfigSource != nil {
		return config.NewSet()
	}
	set, err := config.LoadWith(cfg.ConfigPath, config.LoadOptions{MergeDomains: cfg.MergeDomainConfig})
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", cfg.ConfigPath, err)
	}
	return set, nil
}

// configPending is errNoConfigYet until the first config has arrived.
func (s *Server) configPending() error {
	if s.configArrived.Load() {
		return nil
	}
	return errNoConfigYet
}

// configName is where the config comes from, for logs.
func (s *Server) configName() string {
	if s.cfg.ConfigSource != nil {
		return s.cfg.ConfigSource.String()
	}
	return s.cfg.ConfigPath
}

// watchConfig keeps the base config current until ctx is done: from the
// source, or by watching the files.
func (s *Server) watchConfig(ctx context.Context) {
	log := s.cfg.Logger
	apply := func(set *config.Set) {
		s.configs.SetBase(set)
		s.tel.ConfigReloaded()
		log.Info("config reloaded", "config", s.configName(), "domains", set.Domains())
		if !s.configArrived.Swap(true) {
			s.ready.probe(ctx, s.cfg.ReadinessInterval) // ready now, not at the next probe
		}
	}
	report := func(err error) {
		s.tel.ConfigReloadFailed()
		log.Error("config reload failed; keeping the previous config", "config", s.configName(), "err", err)
	}
	if src := s.cfg.ConfigSource; src != nil {
		src.Run(ctx, apply, report)
		return
	}
	config.Watch(ctx, s.cfg.ConfigPath, s.cfg.ReloadInterval, s.configs.State().Base, apply, report)
}
