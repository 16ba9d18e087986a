// Package xds takes Sluice's rate-limit config from an xDS management
// server instead of files, as envoyproxy/ratelimit does with
// CONFIG_TYPE=GRPC_XDS_SOTW: Envoy Gateway, for one, pushes the config of its
// rate-limit service this way.
//
// # How it works
//
// The client opens the Aggregated Discovery Service's state-of-the-world
// stream (envoy.service.discovery.v3.AggregatedDiscoveryService/
// StreamAggregatedResources) and asks for every resource of TypeURL, for its
// node. Each response holds the whole config, one RateLimitConfig per
// domain (or part of a domain, with MergeDomains). Build writes each as the
// config file it stands for and loads them with the checks of a file reload:
//
//   - a config that loads is applied — it replaces the base config as a file
//     reload does, runtime limits stay laid over it — and the response is
//     ACKed: a request with its version and nonce;
//   - one that does not is reported and NACKed: a request with the version
//     last applied, the rejected response's nonce and error_detail saying
//     what is wrong; the config in force stays.
//
// When the stream ends or cannot be opened the client dials again after
// Backoff's wait, asking for the version it last applied, so that an
// unchanged server sends nothing new. It keeps the last config it applied
// all the while.
package xds

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluice-rl/sluice/server/config"
)

// DefaultNodeID is the node id sent when Options.NodeID is empty, as
// envoyproxy/ratelimit's CONFIG_GRPC_XDS_NODE_ID defaults to.
const DefaultNodeID = "default"

// Options configure a Client.
type Options struct {
	// Server is the management server's address, host:port
	// (CONFIG_GRPC_XDS_SERVER_URL). (Required)
	Server string
	// NodeID identifies this service to the server, which keys its
	// snapshots by it. (Optional, default "default")
	NodeID string
	// NodeMetadata is sent as the node's metadata, as string values
	// (CONFIG_GRPC_XDS_NODE_METADATA). (Optional)
	NodeMetadata map[string]string
	// Headers are sent as gRPC metadata on the stream
	// (CONFIG_GRPC_XDS_CLIENT_ADDITIONAL_HEADERS). (Optional)
	Headers map[string]string
	// TLS, when set, connects over TLS (CONFIG_GRPC_XDS_SERVER_USE_TLS).
	// (Optional, default plaintext)
	TLS *TLS
	// MaxRecvMsgBytes bounds one discovery response
	// (XDS_CLIENT_MAX_MSG_SIZE_IN_BYTES). (Optional, default gRPC's 4 MiB)
	MaxRecvMsgBytes int
	// Backoff paces reconnects. (Optional, default upstream's)
	Backoff Backoff
	// MergeDomains lets several resources define one domain
	// (config.LoadOptions.MergeDomains). (Optional, default false)
	MergeDomains bool
	// Logger receives the client's logs. (Optional, default slog.Default())
	Logger *slog.Logger
}

// Client subscribes to the rate-limit config of a management server.
type Client struct {
	opts Options
	// Only Run's goroutine touches these.
	acked    string            // version last applied
	rejected [sha256.Size]byte // digest of the response last rejected, zero after an apply
	why      string            // why it was rejected
}

// repeatNACKDelay paces the answer to a response rejected before. A server
// may send the rejected version again at once in answer to a NACK (go-control-
// plane's snapshot cache does, until its snapshot changes); the client does
// not check it again and says no again only after this wait, so that the two
// do not spin, and a fixed snapshot arrives at most this late.
const repeatNACKDelay = time.Second

// New checks o and returns a client; nothing is dialled before Run.
func New(o Options) (*Client, error) {
	if o.Server == "" {
		return nil, errors.New("xds server: required")
	}
	if o.NodeID == "" {
		o.NodeID = DefaultNodeID
	}
	if o.MaxRecvMsgBytes < 0 {
		return nil, errors.New("xds max message size: must not be negative")
	}
	o.Backoff.setDefaults()
	if err := o.Backoff.Validate(); err != nil {
		return nil, fmt.Errorf("xds %w", err)
	}
	if o.TLS != nil {
		if err := o.TLS.Validate(); err != nil {
			return nil, fmt.Errorf("xds %w", err)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Client{opts: o}, nil
}

// String names the source in logs: "xds://host:port".
func (c *Client) String() string { return "xds://" + c.opts.Server }

// Run follows the server until ctx is done; call it once. apply gets each
// config that loads, report the error of each that does not, both from
// Run's goroutine, one at a time. A stream that fails is logged, not
// reported: it is no config, and the one in force stays.
func (c *Client) Run(ctx context.Context, apply func(*config.Set), report func(error)) {
	log := c.opts.Logger
	failures := 0
	for {
		delivered, err := c.stream(ctx, apply, report)
		if ctx.Err() != nil {
			return
		}
		if delivered {
			failures = 0
		}
		wait := c.opts.Backoff.wait(failures)
		failures++
		log.Warn("xds stream ended; reconnecting", "server", c.opts.Server, "in", wait.Round(time.Millisecond), "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// stream runs one connection and stream until it fails. delivered says
// whether the server sent at least one response on it.
func (c *Client) stream(ctx context.Context, apply func(*config.Set), report func(error)) (delivered bool, err error) {
	conn, err := c.dial()
	if err != nil {
		return false, err
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if len(c.opts.Headers) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, metadata.New(c.opts.Headers))
	}
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return false, err
	}
	// The node goes with the first request of a stream only, as xDS asks.
	if err := st.Send(&discoveryv3.DiscoveryRequest{Node: c.node(), TypeUrl: TypeURL, VersionInfo: c.acked}); err != nil {
		_, err = st.Recv() // the stream's own error
		return false, err
	}
	c.opts.Logger.Info("xds stream open", "server", c.opts.Server, "node", c.opts.NodeID, "version", c.acked)
	for {
		resp, err := st.Recv()
		if err != nil {
			return delivered, err
		}
		delivered = true
		if resp.GetTypeUrl() != TypeURL { // an ADS server sends only what was asked for
			c.opts.Logger.Warn("xds response of a type not asked for, ignored", "type", resp.GetTypeUrl())
			continue
		}
		req, repeat := c.answer(resp, apply, report)
		if repeat {
			t := time.NewTimer(repeatNACKDelay)
			select {
			case <-ctx.Done():
				t.Stop()
				return delivered, ctx.Err()
			case <-t.C:
			}
		}
		if err := st.Send(req); err != nil {
			_, err = st.Recv()
			return delivered, err
		}
	}
}

// answer applies a response's config and returns its ACK, or reports why
// it does not load and returns its NACK. repeat says that the response is
// one it rejected just before: NACKed again without a new report.
func (c *Client) answer(resp *discoveryv3.DiscoveryResponse, apply func(*config.Set), report func(error)) (req *discoveryv3.DiscoveryRequest, repeat bool) {
	req = &discoveryv3.DiscoveryRequest{TypeUrl: TypeURL, ResponseNonce: resp.GetNonce()}
	nack := func(why string) *discoveryv3.DiscoveryRequest {
		req.VersionInfo = c.acked
		req.ErrorDetail = &status.Status{Code: int32(codes.InvalidArgument), Message: why}
		return req
	}
	sum := digest(resp)
	if sum == c.rejected {
		c.opts.Logger.Debug("xds config sent again after its NACK; rejected again", "version", resp.GetVersionInfo())
		return nack(c.why), true
	}
	set, err := Build(resp.GetResources(), config.LoadOptions{MergeDomains: c.opts.MergeDomains})
	if err != nil {
		c.opts.Logger.Error("xds config rejected; keeping the previous config", "version", resp.GetVersionInfo(), "err", err)
		report(fmt.Errorf("xds config version %q: %w", resp.GetVersionInfo(), err))
		c.rejected, c.why = sum, err.Error()
		return nack(c.why), false
	}
	for _, w := range withoutLines(set.Warnings()) {
		c.opts.Logger.Warn("xds config", "version", resp.GetVersionInfo(), "warning", w.Error())
	}
	apply(set)
	c.opts.Logger.Info("xds config applied", "version", resp.GetVersionInfo(), "domains", set.Domains())
	c.acked, c.rejected, c.why = resp.GetVersionInfo(), [sha256.Size]byte{}, ""
	req.VersionInfo = c.acked
	return req, false
}

// digest identifies a response's version and resources.
func digest(resp *discoveryv3.DiscoveryResponse) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	write := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	write([]byte(resp.GetVersionInfo()))
	for _, r := range resp.GetResources() {
		write([]byte(r.GetTypeUrl()))
		write(r.GetValue())
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// node is how the client introduces itself.
func (c *Client) node() *corev3.Node {
	n := &corev3.Node{Id: c.opts.NodeID}
	if len(c.opts.NodeMetadata) > 0 {
		fields := make(map[string]*structpb.Value, len(c.opts.NodeMetadata))
		for k, v := range c.opts.NodeMetadata {
			fields[k] = structpb.NewStringValue(v)
		}
		n.Metadata = &structpb.Struct{Fields: fields}
	}
	return n
}

// dial makes a new connection for each attempt, so that Backoff alone
// paces reconnects and TLS files are reread.
func (c *Client) dial() (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if c.opts.TLS != nil {
		cfg, err := c.opts.TLS.config()
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(cfg)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if c.opts.MaxRecvMsgBytes > 0 {
		opts = append(opts, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(c.opts.MaxRecvMsgBytes)))
	}
	return grpc.NewClient(c.opts.Server, opts...)
}
