package client

import (
	"crypto/tls"
	"errors"
	"time"

	"google.golang.org/grpc"
)

// FailureMode decides a call when Sluice cannot answer.
type FailureMode int

const (
	// FailOpen admits the call and marks the Decision FailedOpen.
	FailOpen FailureMode = iota
	// FailClosed refuses the call with DefaultUnavailableBody: the limit
	// could not be checked (never the 900801 fault of a reached cap).
	FailClosed
)

// String is "open" or "closed", as in a gateway config.
func (m FailureMode) String() string {
	if m == FailClosed {
		return "closed"
	}
	return "open"
}

// ParseFailureMode reads "open" or "closed".
func ParseFailureMode(s string) (FailureMode, error) {
	switch s {
	case "open":
		return FailOpen, nil
	case "closed":
		return FailClosed, nil
	}
	return FailOpen, errors.New(`failure mode: want "open" or "closed", got "` + s + `"`)
}

// Option configures a Client.
type Option func(*options)

type options struct {
	tls             *tls.Config
	timeout         time.Duration
	failure         FailureMode
	retries         int
	backoff         time.Duration
	queueSize       int
	reportRetries   int
	reportBackoff   time.Duration
	reportTimeout   time.Duration
	dialOptions     []grpc.DialOption
	unavailableBody string
}

func defaultOptions() options {
	return options{
		timeout:         50 * time.Millisecond,
		failure:         FailOpen,
		retries:         1,
		backoff:         5 * time.Millisecond,
		queueSize:       1024,
		reportRetries:   5,
		reportBackoff:   100 * time.Millisecond,
		reportTimeout:   time.Second,
		unavailableBody: DefaultUnavailableBody,
	}
}

func (o *options) validate() error {
	var errs []error
	if o.timeout <= 0 {
		errs = append(errs, errors.New("timeout: must be positive"))
	}
	if o.retries < 0 || o.reportRetries < 0 {
		errs = append(errs, errors.New("retries: must not be negative"))
	}
	if o.backoff < 0 || o.reportBackoff < 0 {
		errs = append(errs, errors.New("backoff: must not be negative"))
	}
	if o.queueSize < 1 {
		errs = append(errs, errors.New("report queue: size must be at least 1"))
	}
	if o.reportTimeout <= 0 {
		errs = append(errs, errors.New("report timeout: must be positive"))
	}
	return errors.Join(errs...)
}

// WithTLS connects to Sluice over TLS. (Optional, default plaintext)
func WithTLS(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// WithTimeout bounds one Check, retries included. (Optional, default 50ms)
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithFailureMode says what Check decides when Sluice cannot answer.
// (Optional, default FailOpen)
func WithFailureMode(m FailureMode) Option { return func(o *options) { o.failure = m } }

// WithRetries retries a Check that failed with Unavailable up to n more
// times, waiting backoff, then twice as long, and so on, all within the
// timeout. (Optional, default 1 retry after 5ms)
func WithRetries(n int, backoff time.Duration) Option {
	return func(o *options) { o.retries, o.backoff = n, backoff }
}

// WithReportQueue bounds the reports waiting to be sent; a report that finds
// the queue full is dropped and counted. (Optional, default 1024)
func WithReportQueue(size int) Option { return func(o *options) { o.queueSize = size } }

// WithReportRetries retries a report that failed with Unavailable,
// DeadlineExceeded or ResourceExhausted up to n more times, waiting backoff,
// then twice as long, and so on. (Optional, default 5 retries after 100ms)
func WithReportRetries(n int, backoff time.Duration) Option {
	return func(o *options) { o.reportRetries, o.reportBackoff = n, backoff }
}

// WithReportTimeout bounds one ReportUsage attempt. (Optional, default 1s)
func WithReportTimeout(d time.Duration) Option { return func(o *options) { o.reportTimeout = d } }

// WithUnavailableBody is the body a FailClosed decision carries. (Optional,
// default DefaultUnavailableBody)
func WithUnavailableBody(body string) Option { return func(o *options) { o.unavailableBody = body } }

// WithDialOptions adds gRPC dial options, e.g. interceptors. (Optional)
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOptions = append(o.dialOptions, opts...) }
}
