package grpcapi

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluice-rl/sluice/server/limiter"
)

// toStatus is the one place where errors become gRPC codes (and, through
// grpc-gateway, HTTP statuses): bad input is InvalidArgument (400), a Redis
// failure Unavailable (503), an unknown reservation NotFound (404), what the
// caller's token does not allow PermissionDenied (403), a caller that gave up
// DeadlineExceeded or Canceled, anything else Internal.
func toStatus(err error) error {
	var invalid *limiter.InvalidError
	var store *limiter.StoreError
	var notFound *limiter.NotFoundError
	var denied *limiter.PermissionError
	switch {
	case errors.As(err, &invalid):
		return status.Error(codes.InvalidArgument, invalid.Error())
	case errors.As(err, &denied):
		return status.Error(codes.PermissionDenied, denied.Error())
	case errors.As(err, &notFound):
		return status.Error(codes.NotFound, notFound.Error())
	case errors.As(err, &store):
		return status.Error(codes.Unavailable, store.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	default:
		return status.Error(codes.Internal, err.Error())
	}
}
