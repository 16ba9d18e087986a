package server

import (
	"crypto/tls"

	"github.com/sluice-rl/sluice/lua"
	"github.com/sluice-rl/sluice/server/store"
	"github.com/sluice-rl/sluice/server/tlsconf"
)

// openStore opens the counter store of cfg: its URL, client TLS and pool
// size. Decisions sent together become one window-script call (lua.Merger).
func openStore(cfg *Config) (*store.Store, error) {
	var tc *tls.Config
	if !cfg.RedisTLS.IsZero() {
		var err error
		if tc, err = tlsconf.NewClient(cfg.RedisTLS); err != nil {
			return nil, err
		}
	}
	return store.OpenConfig(cfg.RedisURL, store.Config{
		Batch:    store.BatchConfig{Mergers: []store.Merger{lua.NewMerger()}},
		TLS:      tc,
		PoolSize: cfg.RedisPoolSize,
	})
}
