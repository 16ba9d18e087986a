package config

import (
	"path/filepath"
	"testing"
)

func TestDescriptorsCountsEveryLevel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	write(t, path, `domain: d
descriptors:
  - key: api
    value: a
    descriptors:
      - key: env
        value: prod
        rate_limit: {unit: second, requests_per_unit: 1}
      - key: env
        value: sand*
        rate_limit: {unit: second, requests_per_unit: 1}
  - key: api
    rate_limit: {unit: second, requests_per_unit: 9}
  - key: user
    descriptors:
      - key: path
        rate_limit: {unit: minute, requests_per_unit: 3}
`)
	s, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := s.Domain("d")
	if got := d.Descriptors(); got != 6 {
		t.Errorf("Descriptors() = %d, want 6 (api=a, env=prod, env=sand*, api, user, path)", got)
	}
	if got := (*Domain)(nil).Descriptors(); got != 0 {
		t.Errorf("nil domain: %d", got)
	}
}
