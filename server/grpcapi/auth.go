package grpcapi

import (
	"context"
	"crypto/subtle"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Access is what a caller may do on the data plane.
type Access uint8

const (
	// NoAccess: no valid credentials; only health checks answer.
	NoAccess Access = iota
	// DecideAccess asks ShouldRateLimit and reads GetUsage, charging only
	// within the limits: it never gives quota back (ReportUsage, Envoy's
	// is_negative_hits), never charges past a limit (Envoy's hits on a
	// token limit) and never replaces a limit (Envoy's limit override).
	DecideAccess
	// FullAccess may do everything the data plane offers.
	FullAccess
)

// ReportUsageMethod is the gRPC method that gives back or charges quota
// after the fact: only FullAccess may call it.
const ReportUsageMethod = "/sluice.v1.RateLimitService/ReportUsage"

// healthService answers without credentials: probes and load balancers
// carry none.
const healthService = "/grpc.health.v1.Health/"

// Auth is the data plane's one authentication policy, for gRPC and (through
// the in-process gRPC call every HTTP call becomes) HTTP alike. With no
// token configured every caller has FullAccess; otherwise a caller needs
// "authorization: Bearer <token>" — Token for FullAccess, DecideToken for
// DecideAccess — or a client certificate verified by the TLS client CA,
// which gives FullAccess.
type Auth struct {
	// Token is the full token. (Optional)
	Token string
	// DecideToken is the decide-only token. (Optional; needs Token)
	DecideToken string
}

// Enabled reports whether any token is configured.
func (a Auth) Enabled() bool { return a.Token != "" || a.DecideToken != "" }

// Access is what a caller presenting these authorization values may do;
// verifiedCert is true when its connection presented a client certificate
// that the TLS client CA verified.
func (a Auth) Access(authorization []string, verifiedCert bool) Access {
	switch {
	case !a.Enabled(), verifiedCert:
		return FullAccess
	case a.Token != "" && ValidBearer(authorization, a.Token):
		return FullAccess
	case a.DecideToken != "" && ValidBearer(authorization, a.DecideToken):
		return DecideAccess
	}
	return NoAccess
}

// UnaryInterceptor enforces a on every method but health checks: a caller
// without valid credentials gets Unauthenticated, a decide-only caller of
// ReportUsage PermissionDenied, before anything is read or charged. The
// caller's Access goes with the call for the handlers (see decideOnly).
func (a Auth) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if strings.HasPrefix(info.FullMethod, healthService) {
		return handler(ctx, req)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	access := a.Access(md.Get("authorization"), verifiedPeer(ctx))
	switch {
	case access == NoAccess:
		return nil, status.Error(codes.Unauthenticated, "authorization: a valid bearer token (or a verified client certificate) is required")
	case access < FullAccess && info.FullMethod == ReportUsageMethod:
		return nil, status.Error(codes.PermissionDenied, "authorization: ReportUsage gives back or charges quota after the fact; the decide-only token may not, use the full token")
	case access == DecideAccess:
		ctx = context.WithValue(ctx, decideOnlyKey{}, true)
	}
	return handler(ctx, req)
}

type decideOnlyKey struct{}

// decideOnly reports whether the call's caller has only DecideAccess.
func decideOnly(ctx context.Context) bool {
	v, _ := ctx.Value(decideOnlyKey{}).(bool)
	return v
}

// verifiedPeer reports whether the call's connection presented a client
// certificate that TLS verified (tlsconf.PeerCredentials reports it).
func verifiedPeer(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	return ok && len(info.State.VerifiedChains) > 0
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
