package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/limiter"
	"github.com/sluice-rl/sluice/server/overlay"
)

// fieldError is bad input in one field of a call.
type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func badField(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// errNotFound is a domain, API or runtime limit that is not there.
type notFoundError struct{ what string }

func (e *notFoundError) Error() string { return e.what }

func notFound(format string, args ...any) error {
	return &notFoundError{what: fmt.Sprintf(format, args...)}
}

// apiStaleError is a write of an API's caps whose version is not current.
type apiStaleError struct{ current string }

func (e *apiStaleError) Error() string {
	return "version: not current (someone changed this API's caps since you read them; it is at version " + e.current + " now)"
}

// toStatus is the one place where the admin API's errors become gRPC codes
// (and, through grpc-gateway, HTTP statuses): bad input INVALID_ARGUMENT
// (400) with a BadRequest detail per field, a stale version
// FAILED_PRECONDITION (412 on the admin port), a missing thing NOT_FOUND
// (404), Redis UNAVAILABLE (503), anything else INTERNAL.
func toStatus(err error) error {
	var (
		problems config.Problems
		field    *fieldError
		stale    *overlay.StaleError
		apiStale *apiStaleError
		missing  *notFoundError
		store    *overlay.StoreError
		counters *limiter.StoreError
	)
	switch {
	case errors.As(err, &problems):
		var v []*errdetails.BadRequest_FieldViolation
		var msgs []string
		for _, p := range problems {
			v = append(v, &errdetails.BadRequest_FieldViolation{Field: p.Field, Description: p.Msg})
			msgs = append(msgs, p.Error())
		}
		return invalid(strings.Join(msgs, "; "), v)
	case errors.As(err, &field):
		return invalid(field.Error(), []*errdetails.BadRequest_FieldViolation{{Field: field.field, Description: field.msg}})
	case errors.Is(err, overlay.ErrVersion):
		return invalid(err.Error(), []*errdetails.BadRequest_FieldViolation{{Field: "version", Description: strings.TrimPrefix(err.Error(), "version: ")}})
	case errors.As(err, &stale):
		return status.Error(codes.FailedPrecondition, stale.Error())
	case errors.As(err, &apiStale):
		return status.Error(codes.FailedPrecondition, apiStale.Error())
	case errors.As(err, &missing):
		return status.Error(codes.NotFound, missing.Error())
	case errors.As(err, &store), errors.As(err, &counters):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	default:
		return status.Error(codes.Internal, err.Error())
	}
}

func invalid(msg string, violations []*errdetails.BadRequest_FieldViolation) error {
	st := status.New(codes.InvalidArgument, msg)
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: violations}); err == nil {
		st = d
	}
	return st.Err()
}
