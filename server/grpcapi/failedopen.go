package grpcapi

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/sluice-rl/sluice/server/limiter"
)

// FailedOpenHeader is the response metadata (over HTTP:
// Grpc-Metadata-X-Sluice-Failed-Open) that marks an answer admitted without
// counting because Redis could not be asked and the domain's failure_mode is
// open.
const FailedOpenHeader = "x-sluice-failed-open"

var failedOpenMD = metadata.Pairs(FailedOpenHeader, "true")

// markFailedOpen sets FailedOpenHeader on a failed-open answer.
func markFailedOpen(ctx context.Context, dec *limiter.Decision) {
	if dec.FailedOpen {
		_ = grpc.SetHeader(ctx, failedOpenMD)
	}
}
