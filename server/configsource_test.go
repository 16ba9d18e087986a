package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sluice-rl/sluice/server"
	"github.com/sluice-rl/sluice/server/config"
)

// idleSource is a ConfigSource that never sends a config.
type idleSource struct{}

func (idleSource) Run(ctx context.Context, _ func(*config.Set), _ func(error)) { <-ctx.Done() }
func (idleSource) String() string                                              { return "idle" }

func TestConfigNeedsFilesOrASourceNotBoth(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  server.Config
		want string
	}{
		{"neither", server.Config{}, "config path: required"},
		{"both", server.Config{ConfigPath: "limits.yaml", ConfigSource: idleSource{}}, "config path: not with a config source"},
	} {
		if _, err := server.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
