package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

// Client asks one Sluice service (any number of replicas behind one address)
// for decisions. It is safe for concurrent use.
type Client struct {
	opts  options
	conn  *grpc.ClientConn
	api   sluicev1.RateLimitServiceClient
	stats counters
	rep   *reporter
}

// New makes a client of the Sluice gRPC service at addr (host:port). It
// starts connecting in the background and does not wait for it.
func New(addr string, opts ...Option) (*Client, error) {
	if addr == "" {
		return nil, errors.New("sluice address: required")
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if o.tls != nil {
		creds = credentials.NewTLS(o.tls)
	}
	dial := append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, o.dialOptions...)
	conn, err := grpc.NewClient(addr, dial...)
	if err != nil {
		return nil, fmt.Errorf("sluice client: %w", err)
	}
	conn.Connect() // start dialing now, not in the first Check's 50ms
	c := &Client{opts: o, conn: conn, api: sluicev1.NewRateLimitServiceClient(conn)}
	c.rep = newReporter(c.api, &c.stats, o)
	return c, nil
}

// Check asks Sluice whether req may go through. It returns within the
// client's timeout (or ctx's deadline, if sooner).
//
// The Decision is always usable. When Sluice did not answer, the error says
// why and the Decision follows the failure mode: allowed and FailedOpen, or
// refused and FailedClosed with the unavailable body, each marked with the
// X-Sluice-Decision header. Over limit is a Decision
// with Allowed false, not an error.
func (c *Client) Check(ctx context.Context, req Request) (Decision, error) {
	c.stats.checks.Add(1)
	ctx, cancel := context.WithTimeout(ctx, c.opts.timeout)
	defer cancel()
	in := req.proto()
	resp, err := c.shouldRateLimit(ctx, in)
	if err != nil {
		c.stats.errors.Add(1)
		return c.failed(&req), fmt.Errorf("sluice check: %w", err)
	}
	d := decisionFrom(resp)
	d.c, d.req = c, &req
	if !d.Allowed {
		c.stats.overLimit.Add(1)
	}
	return d, nil
}

// shouldRateLimit calls Sluice, retrying Unavailable with backoff while ctx
// allows.
func (c *Client) shouldRateLimit(ctx context.Context, in *sluicev1.ShouldRateLimitRequest) (*sluicev1.ShouldRateLimitResponse, error) {
	backoff := c.opts.backoff
	for attempt := 0; ; attempt++ {
		resp, err := c.api.ShouldRateLimit(ctx, in)
		if err == nil || status.Code(err) != codes.Unavailable || attempt >= c.opts.retries {
			return resp, err
		}
		if !sleep(ctx, backoff) {
			return nil, err
		}
		c.stats.retries.Add(1)
		backoff *= 2
	}
}

// failed is the decision of the failure mode.
func (c *Client) failed(req *Request) Decision {
	if c.opts.failure == FailClosed {
		c.stats.failedClosed.Add(1)
		return Decision{
			FailedClosed: true,
			RetryAfter:   time.Second,
			Headers:      http.Header{"Retry-After": {"1"}, HeaderDecision: {DecisionUnavailable}},
			Body:         c.opts.unavailableBody,
			c:            c,
			req:          req,
		}
	}
	c.stats.failedOpen.Add(1)
	return Decision{Allowed: true, FailedOpen: true, Headers: http.Header{HeaderDecision: {DecisionFailedOpen}}, c: c, req: req}
}

// GetUsage shows the current usage of req's descriptors, charging nothing.
// It is bounded by the client's timeout and never retried.
func (c *Client) GetUsage(ctx context.Context, domain string, descriptors ...Descriptor) (*sluicev1.GetUsageResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.timeout)
	defer cancel()
	resp, err := c.api.GetUsage(ctx, &sluicev1.GetUsageRequest{Domain: domain, Descriptors: protoDescriptors(descriptors)})
	if err != nil {
		return nil, fmt.Errorf("sluice get usage: %w", err)
	}
	return resp, nil
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats { return c.stats.snapshot() }

// FailureMode is the client's failure mode.
func (c *Client) FailureMode() FailureMode { return c.opts.failure }

// Close sends the reports still queued, waiting as long as ctx allows, then
// closes the connection. Reports still queued when ctx ends are counted lost.
// Check must not be called after Close.
func (c *Client) Close(ctx context.Context) error {
	err := c.rep.close(ctx)
	return errors.Join(err, c.conn.Close())
}

// sleep waits d, or less when ctx ends first; it reports whether it waited
// the whole d.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
