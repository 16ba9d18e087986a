package client

import (
	"context"
	"fmt"

	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Warm waits until the connection to Sluice is up and makes one call over it
// (the standard gRPC health check, which charges nothing), so that the first
// Check does not spend its timeout on dialing, the TLS handshake or the
// HTTP/2 setup. It returns when ctx ends at the latest; an error says Sluice
// could not be reached, and the client keeps trying in the background.
func (c *Client) Warm(ctx context.Context) error {
	for {
		s := c.conn.GetState()
		if s == connectivity.Ready {
			break
		}
		if s == connectivity.Idle {
			c.conn.Connect()
		}
		if !c.conn.WaitForStateChange(ctx, s) {
			return fmt.Errorf("sluice warm-up: connection %s: %w", s, ctx.Err())
		}
	}
	if _, err := healthpb.NewHealthClient(c.conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		return fmt.Errorf("sluice warm-up: health check: %w", err)
	}
	return nil
}
