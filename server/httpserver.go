package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"
)

// Timeouts of every HTTP port (data, health, admin), so that no client can
// hold a connection — or the drain at shutdown — for ever: a request must
// arrive, body and all, within httpReadTimeout (the largest body is 1 MiB),
// its answer be taken within httpWriteTimeout, and a kept-alive connection
// is closed after httpIdleTimeout without a request.
const (
	httpReadHeaderTimeout = 5 * time.Second
	httpReadTimeout       = 10 * time.Second
	httpWriteTimeout      = 30 * time.Second
	httpIdleTimeout       = 2 * time.Minute
)

// newHTTPServer is the http.Server of one port: h behind the timeouts, its
// own errors (failed TLS handshakes, say) logged at debug level.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// shutdownHTTP stops srv taking requests and waits for those in flight
// until ctx ends; then it closes the connections still open. Those are
// clients that stalled (a body sent in part, an answer never read): giving
// up on them is the drain working, not failing, so it is logged and not an
// error.
func shutdownHTTP(ctx context.Context, srv *http.Server, port string, log *slog.Logger) error {
	err := srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		log.Warn("drain: closing the connections still open", "port", port, "err", err)
		_ = srv.Close()
		return nil
	}
	return err
}
