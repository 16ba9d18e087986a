package client

import (
	"context"

	"google.golang.org/grpc"
)

// WithAuthToken sends "authorization: Bearer <token>" with every call, as a
// Sluice started with --auth-token-file requires on every call. A gateway
// that reports usage (AI APIs) needs the full token; one that only checks
// may use the decide-only token (--decide-token-file). Use it with WithTLS
// outside a trusted network: the token travels with each call.
func WithAuthToken(token string) Option {
	return WithDialOptions(grpc.WithPerRPCCredentials(bearer{"Bearer " + token}))
}

// bearer is a per-call credential carrying a bearer token.
type bearer struct{ value string }

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": b.value}, nil
}

// RequireTransportSecurity is false so a token also works on a plaintext
// connection inside a trusted network (a sidecar, a private subnet).
func (bearer) RequireTransportSecurity() bool { return false }
