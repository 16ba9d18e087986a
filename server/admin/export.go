package admin

import (
	"context"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

// ListDomains lists the domains of the effective config.
func (s *Service) ListDomains(ctx context.Context, _ *sluicev1.ListDomainsRequest) (*sluicev1.ListDomainsResponse, error) {
	st := s.read(ctx)
	out := &sluicev1.ListDomainsResponse{}
	for _, name := range st.Set.Domains() {
		d, _ := st.Set.Domain(name)
		out.Domains = append(out.Domains, &sluicev1.Domain{Name: name, File: d.File, RuntimeLimits: int32(len(st.Snapshot.Domain(name)))})
	}
	return out, nil
}

// ExportConfig writes the effective config as YAML in the file format.
func (s *Service) ExportConfig(ctx context.Context, in *sluicev1.ExportConfigRequest) (*sluicev1.ExportConfigResponse, error) {
	st := s.read(ctx)
	var text []byte
	var err error
	if in.GetDomain() != "" {
		d, derr := domainOf(st, in.GetDomain())
		if derr != nil {
			return nil, toStatus(derr)
		}
		text, err = d.Export()
	} else {
		text, err = st.Set.Export()
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &sluicev1.ExportConfigResponse{Yaml: string(text)}, nil
}
