// Package httpapi serves the HTTP side of Sluice: sluice.v1 as JSON through
// grpc-gateway, Envoy ratelimit's POST /json, the health endpoints and
// GET /metrics — and, for an optional plain-HTTP ops port, the health
// endpoints and metrics alone.
//
// Every API call goes through the service's own gRPC endpoint, so HTTP and
// gRPC callers pass the same interceptors (deadline, errors, metrics).
package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	"github.com/sluice-rl/sluice/server/grpcapi"
)

// MaxBodyBytes bounds a JSON request body, and a gRPC request message.
const MaxBodyBytes = 1 << 20

// Options is what the HTTP side needs from the service.
type Options struct {
	// Conn is a client connection to the service's own gRPC endpoint.
	// (Required)
	Conn *grpc.ClientConn
	// Ready reports whether the service can answer (config loaded, Redis
	// reachable). (Required)
	Ready func(context.Context) error
	// Metrics, when not nil, serves GET /metrics. (Optional)
	Metrics http.Handler
	// Auth is the data plane's authentication policy, applied to every call
	// of the JSON API (/v1/..., /json); health and metrics stay open.
	// (Optional, default: no token, everything open)
	Auth grpcapi.Auth
}

// Handler returns the HTTP handler for the service.
func Handler(ctx context.Context, o Options) (http.Handler, error) {
	conn, ready, metrics := o.Conn, o.Ready, o.Metrics
	gw, err := gateway(ctx, conn)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", authenticate(o.Auth, gw))
	mux.Handle("/json", authenticate(o.Auth, limitBody(envoyJSON(conn))))
	addOps(mux, ready, metrics)
	return mux, nil
}

// OpsHandler serves only what probes and scrapers need — GET /healthz,
// GET /readyz, envoyproxy/ratelimit's /healthcheck and, when metrics is not
// nil, GET /metrics — for a port of its
// own that stays plain HTTP when the service port needs (mutual) TLS.
func OpsHandler(ready func(context.Context) error, metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	addOps(mux, ready, metrics)
	return mux
}

// addOps adds the health endpoints and metrics to mux.
func addOps(mux *http.ServeMux, ready func(context.Context) error, metrics http.Handler) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := ready(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	// envoyproxy/ratelimit's health check, for probes copied from its
	// deployments: any method, 200 "OK" when ready, 500 with no body when not.
	mux.HandleFunc("/healthcheck", func(w http.ResponseWriter, r *http.Request) {
		if ready(r.Context()) != nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("OK"))
	})
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
}

// traceHeaders passes the W3C trace context of an HTTP caller on to the gRPC
// call, so that the call's span continues the caller's trace.
func traceHeaders(key string) (string, bool) {
	switch k := strings.ToLower(key); k {
	case "traceparent", "tracestate", "baggage":
		return k, true
	}
	return runtime.DefaultHeaderMatcher(key)
}

func limitBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		h.ServeHTTP(w, r)
	})
}
