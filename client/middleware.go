package client

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
)

// Environment names the backend an API manager sends a call to; each has its
// own cap.
const (
	Production = "production"
	Sandbox    = "sandbox"
)

type environmentKey struct{}

// WithEnvironment returns ctx marked with the call's environment, for the
// default descriptors of Middleware to read.
func WithEnvironment(ctx context.Context, env string) context.Context {
	return context.WithValue(ctx, environmentKey{}, env)
}

// EnvironmentFrom is the environment WithEnvironment set, or Production.
func EnvironmentFrom(ctx context.Context) string {
	if env, ok := ctx.Value(environmentKey{}).(string); ok && env != "" {
		return env
	}
	return Production
}

// Meter prices a call in tokens: before Sluice is asked, and after the
// backend answered. Package llm has one for OpenAI-style APIs.
type Meter interface {
	// Estimate returns the expected usage of r and the Measure of its
	// answer (never nil). It may read and replace r.Body, and must leave a
	// body the backend can read.
	Estimate(r *http.Request) (Usage, Measure, error)
}

// Measure wraps the writer of one call's answer, to find what the call used
// as the answer passes through. After the handler returns (or panics), used
// says what to charge.
type Measure func(w http.ResponseWriter) (mw http.ResponseWriter, used func() Used)

// Used is what one call used, as its Meter found it.
type Used struct {
	// Usage is what to charge: the usage the backend stated, else what the
	// Meter counted of what the backend produced (zero when it produced
	// nothing, e.g. an error before any generation).
	Usage Usage
	// Stated is true when the backend stated Usage itself.
	Stated bool
}

// MiddlewareConfig configures Middleware.
type MiddlewareConfig struct {
	// Domain is Sluice's config domain. (Required)
	Domain string
	// API and Version name the API for the default descriptors. (Required
	// unless Descriptors is set)
	API, Version string
	// Descriptors maps a call to its descriptors. (Optional, default
	// APIDescriptors(API, Version, EnvironmentFrom(r.Context())))
	Descriptors func(r *http.Request) []Descriptor
	// Meter, when set, estimates each call's tokens before the check and
	// reports its actual usage after the response. (Optional)
	Meter Meter
	// Logger receives failed checks and estimates. (Optional, default
	// slog.Default())
	Logger *slog.Logger
	// Refuse answers a refused call (over limit, or FailedClosed). (Optional,
	// default WriteRefusal)
	Refuse func(w http.ResponseWriter, r *http.Request, dec Decision)
}

// Middleware guards next with Sluice: a call over limit is answered 503 with
// the fault body, Retry-After and RateLimit-* headers, and never reaches next;
// an allowed call gets the RateLimit-* headers on its response. With a Meter,
// what the call used is reported after next returns: the backend's stated
// usage, else what the Meter counted (counted in Stats.UsageMissing), so
// that a call the backend rejected releases its reservation.
func (c *Client) Middleware(cfg MiddlewareConfig) (func(http.Handler) http.Handler, error) {
	if cfg.Domain == "" {
		return nil, errors.New("middleware: domain: required")
	}
	if cfg.Descriptors == nil {
		if cfg.API == "" || cfg.Version == "" {
			return nil, errors.New("middleware: api and version: required without descriptors")
		}
		api, version := cfg.API, cfg.Version
		cfg.Descriptors = func(r *http.Request) []Descriptor {
			return APIDescriptors(api, version, EnvironmentFrom(r.Context()))
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Refuse == nil {
		cfg.Refuse = func(w http.ResponseWriter, _ *http.Request, dec Decision) { WriteRefusal(w, dec) }
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c.serve(&cfg, next, w, r)
		})
	}, nil
}

func (c *Client) serve(cfg *MiddlewareConfig, next http.Handler, w http.ResponseWriter, r *http.Request) {
	req := Request{Domain: cfg.Domain, Descriptors: cfg.Descriptors(r)}
	var measure Measure
	if cfg.Meter != nil {
		est, m, err := cfg.Meter.Estimate(r)
		if err != nil {
			cfg.Logger.Warn("sluice: estimate failed", "path", r.URL.Path, "err", err)
		}
		req.Estimate, measure = est, m
	}
	dec, err := c.Check(r.Context(), req)
	if err != nil {
		cfg.Logger.Warn("sluice: check failed", "path", r.URL.Path, "failure_mode", c.opts.failure.String(), "err", err)
	}
	for k, vs := range dec.Headers {
		w.Header()[k] = vs
	}
	if !dec.Allowed {
		cfg.Refuse(w, r, dec)
		return
	}
	if measure == nil {
		next.ServeHTTP(w, r)
		return
	}
	mw, used := measure(w)
	// Deferred, so that a handler that aborts (panics with
	// http.ErrAbortHandler, as a reverse proxy does when the backend breaks
	// off a stream) still reports.
	defer func() {
		u := used()
		if !u.Stated && !req.Estimate.IsZero() {
			c.stats.usageMissing.Add(1)
		}
		if u.Usage.IsZero() && req.Estimate.IsZero() {
			return // nothing reserved, nothing used
		}
		dec.Report(u.Usage)
	}()
	next.ServeHTTP(mw, r)
}

// WriteRefusal answers a refused call: 503, the decision's headers and its
// body as JSON.
func WriteRefusal(w http.ResponseWriter, dec Decision) {
	h := w.Header()
	for k, vs := range dec.Headers {
		h[k] = vs
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Content-Length", strconv.Itoa(len(dec.Body)))
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(dec.Body))
}
