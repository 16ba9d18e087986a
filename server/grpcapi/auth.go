package grpcapi

import (
	"context"
	"crypto/subtle"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// ReportUsageMethod is the gRPC method that spends or refunds quota after
// the fact, and so needs the bearer token when one is configured.
const ReportUsageMethod = "/sluice.v1.RateLimitService/ReportUsage"

// TokenInterceptor requires "authorization: Bearer <token>" on the given
// methods, so that nobody who merely reaches the port can refund or spend
// someone's quota. Other methods pass untouched.
func TokenInterceptor(token string, methods ...string) grpc.UnaryServerInterceptor {
	protected := make(map[string]bool, len(methods))
	for _, m := range methods {
		protected[m] = true
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if protected[info.FullMethod] {
			md, _ := metadata.FromIncomingContext(ctx)
			if !ValidBearer(md.Get("authorization"), token) {
				return nil, status.Error(codes.Unauthenticated, "authorization: a valid bearer token is required")
			}
		}
		return handler(ctx, req)
	}
}

// ValidBearer reports whether one of the authorization values is
// "Bearer <token>", compared in constant time.
func ValidBearer(values []string, token string) bool {
	for _, v := range values {
		scheme, got, ok := strings.Cut(v, " ")
		if ok && strings.EqualFold(scheme, "bearer") && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) == 1 {
			return true
		}
	}
	return false
}
