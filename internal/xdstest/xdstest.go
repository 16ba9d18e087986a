// Package xdstest runs an xDS management server inside a test, built from
// go-control-plane's server and snapshot cache as envoyproxy/ratelimit's
// tests and Envoy Gateway build theirs, and records what its streams
// receive.
package xdstest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	xdsserver "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	rlsconfv3 "github.com/envoyproxy/go-control-plane/ratelimit/config/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// ControlPlane is a running management server. It records every request
// its streams receive.
type ControlPlane struct {
	Addr  string
	cache cache.SnapshotCache

	mu       sync.Mutex
	requests []*discoveryv3.DiscoveryRequest
	sent     map[string][]string // version → nonces of the responses that sent it
	headers  []metadata.MD       // of each stream, in the order they opened
	changed  chan struct{}       // closed and renewed at every request
	stopOnce func()
}

// Start serves on addr ("127.0.0.1:0" for any port) until the
// test ends or stop is called; tlsCfg, when set, makes it serve TLS.
func Start(t testing.TB, addr string, tlsCfg *tls.Config) *ControlPlane {
	t.Helper()
	cp := &ControlPlane{cache: cache.NewSnapshotCache(true, cache.IDHash{}, nil), changed: make(chan struct{}), sent: map[string][]string{}}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cp.Addr = lis.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	callbacks := xdsserver.CallbackFuncs{
		StreamOpenFunc: func(ctx context.Context, _ int64, _ string) error {
			md, _ := metadata.FromIncomingContext(ctx)
			cp.mu.Lock()
			cp.headers = append(cp.headers, md)
			cp.mu.Unlock()
			return nil
		},
		StreamRequestFunc: func(_ int64, req *discoveryv3.DiscoveryRequest) error {
			cp.mu.Lock()
			cp.requests = append(cp.requests, proto.Clone(req).(*discoveryv3.DiscoveryRequest))
			close(cp.changed)
			cp.changed = make(chan struct{})
			cp.mu.Unlock()
			return nil
		},
		StreamResponseFunc: func(_ context.Context, _ int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			cp.mu.Lock()
			cp.sent[resp.GetVersionInfo()] = append(cp.sent[resp.GetVersionInfo()], resp.GetNonce())
			cp.mu.Unlock()
		},
	}
	var opts []grpc.ServerOption
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	gs := grpc.NewServer(opts...)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, xdsserver.NewServer(ctx, cp.cache, callbacks))
	served := make(chan struct{})
	go func() { defer close(served); _ = gs.Serve(lis) }()
	cp.stopOnce = sync.OnceFunc(func() {
		gs.Stop()
		cancel()
		<-served
	})
	t.Cleanup(cp.Stop)
	return cp
}

// Stop stops the server, closing its streams; later calls do nothing.
func (cp *ControlPlane) Stop() { cp.stopOnce() }

// Push makes configs the snapshot of version for node.
func (cp *ControlPlane) Push(t testing.TB, node, version string, configs ...*rlsconfv3.RateLimitConfig) {
	t.Helper()
	res := make([]types.Resource, len(configs))
	for i, c := range configs {
		res[i] = c
	}
	snap, err := cache.NewSnapshot(version, map[resource.Type][]types.Resource{resource.RateLimitConfigType: res})
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.cache.SetSnapshot(context.Background(), node, snap); err != nil {
		t.Fatal(err)
	}
}

// WaitRequest waits up to 10s for a request that satisfies match, among
// those received from the from'th on, and returns it with its index.
func (cp *ControlPlane) WaitRequest(t testing.TB, from int, what string, match func(*discoveryv3.DiscoveryRequest) bool) (*discoveryv3.DiscoveryRequest, int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		cp.mu.Lock()
		for i := from; i < len(cp.requests); i++ {
			if match(cp.requests[i]) {
				req := cp.requests[i]
				cp.mu.Unlock()
				return req, i
			}
		}
		changed := cp.changed
		cp.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			cp.mu.Lock()
			defer cp.mu.Unlock()
			t.Fatalf("no %s among the control plane's requests:\n%s", what, describe(cp.requests))
		}
	}
}

// Received is how many requests have arrived.
func (cp *ControlPlane) Received() int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return len(cp.requests)
}

// Nonces are the nonces of the responses that sent version, in order.
func (cp *ControlPlane) Nonces(version string) []string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]string(nil), cp.sent[version]...)
}

// StreamHeaders returns the metadata of every stream opened so far.
func (cp *ControlPlane) StreamHeaders() []metadata.MD {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]metadata.MD(nil), cp.headers...)
}

func describe(reqs []*discoveryv3.DiscoveryRequest) string {
	s := ""
	for i, r := range reqs {
		s += fmt.Sprintf("%d: version=%q nonce=%q node=%q error=%q\n", i, r.GetVersionInfo(), r.GetResponseNonce(), r.GetNode().GetId(), r.GetErrorDetail().GetMessage())
	}
	return s
}

// IsACK matches the ACK of version.
func IsACK(version string) func(*discoveryv3.DiscoveryRequest) bool {
	return func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetResponseNonce() != "" && r.GetErrorDetail() == nil && r.GetVersionInfo() == version
	}
}

// IsNACK matches a NACK that keeps version.
func IsNACK(version string) func(*discoveryv3.DiscoveryRequest) bool {
	return func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetErrorDetail() != nil && r.GetVersionInfo() == version
	}
}
