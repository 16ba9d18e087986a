package client_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"

	"github.com/sluice-rl/sluice/client"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newClient(t *testing.T, addr string, opts ...client.Option) *client.Client {
	t.Helper()
	// A generous default: the race detector slows the first dial; tests of
	// the timeout set their own.
	c, err := client.New(addr, append([]client.Option{client.WithTimeout(5 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func sandbox() client.Request {
	return client.Request{Domain: "apim", Descriptors: client.APIDescriptors("PizzaShackAPI", "1.0.0", client.Sandbox)}
}

func TestCheckReadsTheDecision(t *testing.T) {
	f := &fakeSluice{limit: 1}
	c := newClient(t, startFake(t, f))
	dec, err := c.Check(context.Background(), sandbox())
	if err != nil || !dec.Allowed || dec.FailedOpen {
		t.Fatalf("first: %+v %v", dec, err)
	}
	if dec.Limit != (client.Limit{Kind: client.Requests, Amount: 1, Window: time.Minute}) || dec.Remaining != 0 || dec.ResetAfter != time.Minute {
		t.Errorf("first: limit %+v remaining %d reset %v", dec.Limit, dec.Remaining, dec.ResetAfter)
	}
	if dec.Headers.Get("RateLimit-Limit") != "1" || dec.Body != "" {
		t.Errorf("first: headers %v body %q", dec.Headers, dec.Body)
	}
	dec, err = c.Check(context.Background(), sandbox())
	if err != nil || dec.Allowed {
		t.Fatalf("second: %+v %v, want over limit (not an error)", dec, err)
	}
	if dec.RetryAfter != 42*time.Second || dec.Headers.Get("Retry-After") != "42" || dec.Body != client.DefaultOverLimitBody {
		t.Errorf("second: retry %v headers %v body %q", dec.RetryAfter, dec.Headers, dec.Body)
	}
	if s := c.Stats(); s.Checks != 2 || s.OverLimit != 1 || s.Errors != 0 {
		t.Errorf("stats %+v", s)
	}
}

// refused is an address nothing listens on.
func refused(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestFailureModesAnswerWithinTheTimeout(t *testing.T) {
	slow := &fakeSluice{limit: 100, delay: time.Second}
	for _, tc := range []struct {
		name string
		addr string
	}{
		{"refused", refused(t)},
		{"slow", startFake(t, slow)},
	} {
		for _, mode := range []client.FailureMode{client.FailOpen, client.FailClosed} {
			c := newClient(t, tc.addr, client.WithFailureMode(mode), client.WithTimeout(50*time.Millisecond))
			start := time.Now()
			dec, err := c.Check(context.Background(), sandbox())
			took := time.Since(start)
			if err == nil {
				t.Errorf("%s %s: no error", tc.name, mode)
			}
			if took > 300*time.Millisecond {
				t.Errorf("%s %s: took %v with a 50ms timeout", tc.name, mode, took)
			}
			switch mode {
			case client.FailOpen:
				if !dec.Allowed || !dec.FailedOpen || dec.Headers.Get(client.HeaderDecision) != client.DecisionFailedOpen || c.Stats().FailedOpen != 1 {
					t.Errorf("%s open: %+v %+v", tc.name, dec, c.Stats())
				}
			case client.FailClosed:
				if dec.Allowed || !dec.FailedClosed || dec.Body != client.DefaultUnavailableBody || dec.Headers.Get("Retry-After") == "" ||
					dec.Headers.Get(client.HeaderDecision) != client.DecisionUnavailable || c.Stats().FailedClosed != 1 {
					t.Errorf("%s closed: %+v %+v", tc.name, dec, c.Stats())
				}
			}
		}
	}
}

func TestCheckRetriesUnavailableOnly(t *testing.T) {
	f := &fakeSluice{limit: 10, unavailable: 2}
	c := newClient(t, startFake(t, f), client.WithRetries(2, time.Millisecond), client.WithTimeout(time.Second))
	dec, err := c.Check(context.Background(), sandbox())
	if err != nil || !dec.Allowed || dec.FailedOpen {
		t.Fatalf("after two Unavailable: %+v %v", dec, err)
	}
	if s := c.Stats(); s.Retries != 2 {
		t.Errorf("retries %d, want 2", s.Retries)
	}
	f.mu.Lock()
	f.unavailable = 3
	f.mu.Unlock()
	if _, err := c.Check(context.Background(), sandbox()); err == nil {
		t.Error("three Unavailable with two retries: no error")
	}
	// InvalidArgument is not retried.
	before := c.Stats().Retries
	if _, err := c.Check(context.Background(), client.Request{Descriptors: sandbox().Descriptors}); err == nil {
		t.Error("no domain: no error")
	}
	if got := c.Stats().Retries; got != before {
		t.Errorf("InvalidArgument retried %d times", got-before)
	}
}

func TestReportsUseTheReservationWithDescriptorsAsFallback(t *testing.T) {
	f := &fakeSluice{limit: 10, reserve: true}
	c := newClient(t, startFake(t, f))
	req := sandbox()
	req.Estimate = client.Usage{PromptTokens: 10, CompletionTokens: 100}
	dec, err := c.Check(context.Background(), req)
	if err != nil || dec.Reservation == "" {
		t.Fatalf("%+v %v", dec, err)
	}
	dec.Report(client.Usage{PromptTokens: 12, CompletionTokens: 30, TotalTokens: 42})
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	reps := f.reported()
	if len(reps) != 1 {
		t.Fatalf("%d reports, want 1", len(reps))
	}
	r := reps[0]
	if r.GetReservationId() != dec.Reservation || r.GetUsage().GetTotalTokens() != 42 || r.GetUsage().GetPromptTokens() != 12 ||
		r.GetDomain() != "apim" || len(r.GetDescriptors()) != 1 {
		t.Errorf("report %v", r)
	}
	if s := c.Stats(); s.ReportsSent != 1 || s.ReportsQueued != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestAnEstimateWithoutReservationReportsNothing(t *testing.T) {
	f := &fakeSluice{limit: 10}
	c := newClient(t, startFake(t, f))
	req := sandbox()
	req.Estimate = client.Usage{PromptTokens: 10}
	dec, _ := c.Check(context.Background(), req)
	dec.Report(client.Usage{PromptTokens: 12})
	_ = c.Close(context.Background())
	if n := len(f.reported()); n != 0 {
		t.Errorf("%d reports for a call that matched no token limit", n)
	}
}

func TestReportsRetryAndCountWhatIsLost(t *testing.T) {
	f := &fakeSluice{limit: 100, reportFail: 2}
	c := newClient(t, startFake(t, f), client.WithReportRetries(3, time.Millisecond))
	dec, _ := c.Check(context.Background(), sandbox())
	dec.Report(client.Usage{PromptTokens: 1})
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.ReportsSent != 1 || s.ReportRetries != 2 || s.ReportsLost != 0 {
		t.Errorf("after two failures: %+v", s)
	}

	f2 := &fakeSluice{limit: 100, reportCode: codes.InvalidArgument}
	c2 := newClient(t, startFake(t, f2), client.WithReportRetries(3, time.Millisecond))
	dec, _ = c2.Check(context.Background(), sandbox())
	dec.Report(client.Usage{PromptTokens: 1})
	_ = c2.Close(context.Background())
	if s := c2.Stats(); s.ReportsLost != 1 || s.ReportRetries != 0 {
		t.Errorf("refused report: %+v, want lost without retries", s)
	}
}

func TestAFullQueueDropsWithoutBlocking(t *testing.T) {
	gate := make(chan struct{})
	f := &fakeSluice{limit: 100, reportGate: gate}
	c := newClient(t, startFake(t, f), client.WithReportQueue(2), client.WithReportTimeout(5*time.Second))
	dec, _ := c.Check(context.Background(), sandbox())
	start := time.Now()
	for range 10 {
		dec.Report(client.Usage{PromptTokens: 1})
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("ten reports took %v", took)
	}
	s := c.Stats()
	// One may be in flight (taken off the queue), two queued: at least 7 dropped.
	if s.ReportsDropped < 7 || s.ReportsQueued+s.ReportsDropped != 10 {
		t.Errorf("stats %+v", s)
	}
	close(gate)
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := uint64(len(f.reported())); got != s.ReportsQueued {
		t.Errorf("%d reports arrived, %d were queued", got, s.ReportsQueued)
	}
	dec.Report(client.Usage{PromptTokens: 1})
	if got := c.Stats().ReportsDropped; got != s.ReportsDropped+1 {
		t.Errorf("a report after Close: dropped %d, want %d", got, s.ReportsDropped+1)
	}
}

func TestCloseGivesUpWhenItsContextEnds(t *testing.T) {
	gate := make(chan struct{})
	defer close(gate)
	f := &fakeSluice{limit: 100, reportGate: gate}
	c, err := client.New(startFake(t, f), client.WithReportTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	dec, _ := c.Check(context.Background(), sandbox())
	dec.Report(client.Usage{PromptTokens: 1})
	dec.Report(client.Usage{PromptTokens: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = c.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close: %v, want deadline exceeded", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Close took %v", took)
	}
	if s := c.Stats(); s.ReportsLost != 2 {
		t.Errorf("stats %+v, want 2 lost", s)
	}
}

func TestConcurrentChecksAndReports(t *testing.T) {
	f := &fakeSluice{limit: 1 << 30}
	c := newClient(t, startFake(t, f), client.WithTimeout(5*time.Second))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				dec, err := c.Check(context.Background(), sandbox())
				if err != nil {
					t.Error(err)
					return
				}
				dec.Report(client.Usage{CompletionTokens: 1})
			}
		}()
	}
	wg.Wait()
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := c.Stats()
	if s.Checks != 400 || s.ReportsSent+s.ReportsDropped != 400 {
		t.Errorf("stats %+v", s)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, opts := range [][]client.Option{
		{client.WithTimeout(0)},
		{client.WithRetries(-1, 0)},
		{client.WithReportQueue(0)},
	} {
		if c, err := client.New("127.0.0.1:1", opts...); err == nil {
			_ = c.Close(context.Background())
			t.Errorf("%d options: no error", len(opts))
		}
	}
	if _, err := client.New(""); err == nil {
		t.Error("no address: no error")
	}
	if _, err := client.ParseFailureMode("sometimes"); err == nil {
		t.Error(`failure mode "sometimes": no error`)
	}
}
