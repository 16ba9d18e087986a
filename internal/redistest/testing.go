package redistest

import (
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"
)

// New starts a redis-server for the test and stops it when the test ends. It
// fails the test, never skips it, when redis-server is not installed.
func New(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s, err := Run(opts...)
	if errors.Is(err, ErrNotFound) {
		tb.Fatalf("redistest: redis-server is required on PATH for this test (install the redis-server package): %v", err)
	}
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Errorf("redistest: stop: %v", err)
		}
	})
	return s
}

// Client returns a go-redis client for s that is closed when the test ends.
func Client(tb testing.TB, s *Server) *redis.Client {
	tb.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), TLSConfig: s.ClientTLS()})
	tb.Cleanup(func() {
		if err := rdb.Close(); err != nil {
			tb.Errorf("redistest: close client: %v", err)
		}
	})
	return rdb
}
