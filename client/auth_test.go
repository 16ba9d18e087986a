package client_test

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/sluice-rl/sluice/client"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

func TestWithAuthTokenSendsTheBearerToken(t *testing.T) {
	seen := make(chan []string, 1)
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		select {
		case seen <- md.Get("authorization"):
		default:
		}
		return h(ctx, req)
	}))
	sluicev1.RegisterRateLimitServiceServer(srv, &fakeSluice{limit: 10, used: map[string]uint64{}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	c := newClient(t, ln.Addr().String(), client.WithAuthToken("t0ken"))
	if _, err := c.Check(context.Background(), client.Request{Domain: "apim", Descriptors: []client.Descriptor{{{Key: "api", Value: "x"}}}}); err != nil {
		t.Fatal(err)
	}
	if got := <-seen; len(got) != 1 || got[0] != "Bearer t0ken" {
		t.Errorf("authorization %q, want [Bearer t0ken]", got)
	}
}
