package client_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

// fakeSluice is a Sluice stand-in: a fixed request cap per descriptor, in a
// one-minute window that never slides, and a log of the reports it got.
type fakeSluice struct {
	sluicev1.UnimplementedRateLimitServiceServer

	mu          sync.Mutex
	limit       uint64
	used        map[string]uint64
	delay       time.Duration // before every answer
	unavailable int           // the next checks that fail Unavailable
	checks      int
	estimates   []*sluicev1.UsageEstimate
	reserve     bool          // answer a reservation for estimates
	reportFail  int           // the next reports that fail Unavailable
	reportCode  codes.Code    // when set, every report fails with it
	reportGate  chan struct{} // when set, reports wait for it
	reports     []*sluicev1.ReportUsageRequest
}

// startFake serves f on a loopback port until the test ends.
func startFake(tb testing.TB, f *fakeSluice) string {
	tb.Helper()
	addr, stop, err := serveFake(f)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(stop)
	return addr
}

// serveFake serves f on a loopback port until stop.
func serveFake(f *fakeSluice) (addr string, stop func(), err error) {
	if f.used == nil {
		f.used = map[string]uint64{}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := grpc.NewServer()
	sluicev1.RegisterRateLimitServiceServer(srv, f)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() { srv.Stop(); <-done }, nil
}

func (f *fakeSluice) wait(ctx context.Context) error {
	f.mu.Lock()
	d := f.delay
	f.mu.Unlock()
	if d == 0 {
		return nil
	}
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

func (f *fakeSluice) ShouldRateLimit(ctx context.Context, in *sluicev1.ShouldRateLimitRequest) (*sluicev1.ShouldRateLimitResponse, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks++
	if f.unavailable > 0 {
		f.unavailable--
		return nil, status.Error(codes.Unavailable, "redis: connection refused")
	}
	if in.GetDomain() == "" {
		return nil, status.Error(codes.InvalidArgument, "domain: required")
	}
	f.estimates = append(f.estimates, in.GetUsageEstimate())
	limit := &sluicev1.RateLimit{Kind: sluicev1.LimitKind_REQUESTS, RequestsPerUnit: f.limit, Window: durationpb.New(time.Minute)}
	out := &sluicev1.ShouldRateLimitResponse{OverallCode: sluicev1.Code_OK}
	var remaining uint64
	for _, d := range in.GetDescriptors() {
		key := keyOf(d)
		st := &sluicev1.DescriptorStatus{Code: sluicev1.Code_OK, CurrentLimit: limit, DurationUntilReset: durationpb.New(time.Minute)}
		if f.used[key] >= f.limit {
			st.Code = sluicev1.Code_OVER_LIMIT
			st.RetryAfter = durationpb.New(42 * time.Second)
			out.OverallCode = sluicev1.Code_OVER_LIMIT
		} else {
			f.used[key]++
			st.LimitRemaining = f.limit - f.used[key]
		}
		remaining = st.LimitRemaining
		out.Statuses = append(out.Statuses, st)
	}
	out.ResponseHeadersToAdd = []*sluicev1.Header{
		{Key: "RateLimit-Limit", Value: strconv.FormatUint(f.limit, 10)},
		{Key: "RateLimit-Remaining", Value: strconv.FormatUint(remaining, 10)},
		{Key: "RateLimit-Reset", Value: "60"},
	}
	if out.OverallCode == sluicev1.Code_OVER_LIMIT {
		out.ResponseHeadersToAdd = append(out.ResponseHeadersToAdd, &sluicev1.Header{Key: "Retry-After", Value: "42"})
		out.RawBody = `{"fault":{"code":900801,"message":"API Limit Reached","description":"API not accepting requests"}}`
	} else if f.reserve && in.GetUsageEstimate() != nil {
		out.ReservationId = fmt.Sprintf("res-%d", f.checks)
	}
	return out, nil
}

func (f *fakeSluice) ReportUsage(ctx context.Context, in *sluicev1.ReportUsageRequest) (*sluicev1.ReportUsageResponse, error) {
	f.mu.Lock()
	gate := f.reportGate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reportCode != codes.OK {
		return nil, status.Error(f.reportCode, "report refused")
	}
	if f.reportFail > 0 {
		f.reportFail--
		return nil, status.Error(codes.Unavailable, "redis: connection refused")
	}
	f.reports = append(f.reports, in)
	return &sluicev1.ReportUsageResponse{}, nil
}

func (f *fakeSluice) reported() []*sluicev1.ReportUsageRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*sluicev1.ReportUsageRequest(nil), f.reports...)
}

func keyOf(d *sluicev1.Descriptor) string {
	var parts []string
	for _, e := range d.GetEntries() {
		parts = append(parts, e.GetKey()+"="+e.GetValue())
	}
	return strings.Join(parts, ",")
}
