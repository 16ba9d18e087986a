package grpcapi

import (
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server/config"
)

// LimitProto is a config limit as sluice.v1 shows it, for the admin API to
// show limits as the data plane does.
func LimitProto(l *config.Limit) *sluicev1.RateLimit { return sluiceLimit(l) }
