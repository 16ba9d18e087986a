package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
)

// The ratelimit runs put envoyproxy/ratelimit — the field's reference, a
// fixed-window counter per descriptor (INCRBY + EXPIRE in Redis) — beside
// sluice, on the same redis-server and in the same bench run. The harness
// does not build or vendor it: -ratelimit-bin names a binary built from its
// checkout (`go build -o ratelimit ./src/service_cmd`).

// writeRatelimitConfig writes envoyproxy/ratelimit's runtime directory for
// the runs: the same domain and limit as sluice's open counter (key api,
// every value its own counter, a limit no run reaches). It returns the
// runtime root.
func writeRatelimitConfig(dir string) (string, error) {
	root := filepath.Join(dir, "ratelimit-runtime")
	conf := filepath.Join(root, "ratelimit", "config")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		return "", err
	}
	cfg := fmt.Sprintf(`domain: %s
descriptors:
  - key: %s
    rate_limit: {unit: second, requests_per_unit: 1000000000}
`, benchDomain, keyOpen)
	if err := os.WriteFile(filepath.Join(conf, "bench.yaml"), []byte(cfg), 0o644); err != nil {
		return "", fmt.Errorf("write ratelimit config: %w", err)
	}
	return root, nil
}

// startRatelimit runs envoyproxy/ratelimit from bin against the Redis at
// redisAddr with its own defaults but for addresses, the config directory
// and statsd (off: nothing listens for it), and waits for /healthcheck.
func startRatelimit(ctx context.Context, bin, dir, redisAddr string, logTo io.Writer) (*sluiceProc, error) {
	root, err := writeRatelimitConfig(dir)
	if err != nil {
		return nil, err
	}
	grpcAddr, httpAddr, err := twoPorts()
	if err != nil {
		return nil, err
	}
	debugPort, err := freePort()
	if err != nil {
		return nil, err
	}
	_, grpcPort, _ := net.SplitHostPort(grpcAddr)
	_, httpPort, _ := net.SplitHostPort(httpAddr)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"HOST=127.0.0.1", "PORT="+httpPort,
		"GRPC_HOST=127.0.0.1", "GRPC_PORT="+grpcPort,
		"DEBUG_HOST=127.0.0.1", fmt.Sprintf("DEBUG_PORT=%d", debugPort),
		"REDIS_SOCKET_TYPE=tcp", "REDIS_URL="+redisAddr,
		"RUNTIME_ROOT="+root, "RUNTIME_SUBDIRECTORY=ratelimit", "RUNTIME_WATCH_ROOT=false",
		"USE_STATSD=false", "LOG_LEVEL=warn",
	)
	return startProc(ctx, "ratelimit", cmd, grpcAddr, httpAddr, "/healthcheck", logTo)
}
