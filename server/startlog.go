package server

import (
	"log/slog"

	"github.com/sluice-rl/sluice/internal/version"
)

// startupAttrs are the attributes of the "sluice serving" record a platform
// team reads first: the version, the store (topology, the hosts dialled, TLS;
// never a password), the domains loaded from the config files with their
// descriptor counts, the modes that change every decision (shadow, quota)
// when set, the layout counters are written in, and every listening port.
func (s *Server) startupAttrs() []any {
	info := s.store.Info()
	attrs := []any{
		"version", version.String(),
		slog.Group("store", "topology", info.Kind(), "hosts", info.Hosts, "tls", info.TLS, "client_cert", info.ClientCert),
	}
	if info.Master != "" {
		attrs = append(attrs, "store_master", info.Master)
	}
	base := s.configs.State().Base
	var domains []any
	for _, name := range base.Domains() {
		d, _ := base.Domain(name)
		domains = append(domains, name, d.Descriptors())
	}
	attrs = append(attrs, "config", s.configName(), slog.Group("descriptors", domains...))
	if s.cfg.ShadowMode { // nothing is refused: say so where it is read first
		attrs = append(attrs, "shadow_mode", true)
	}
	if s.cfg.QuotaMode {
		attrs = append(attrs, "quota_mode", true)
	}
	attrs = append(attrs, "counter_layout", s.cfg.CounterLayout.String())
	attrs = append(attrs, "grpc", s.GRPCAddr(), "http", s.HTTPAddr())
	if s.ops != nil {
		attrs = append(attrs, "health", s.HealthAddr())
	}
	if s.admin != nil {
		attrs = append(attrs, "admin", s.AdminAddr())
	}
	return attrs
}
