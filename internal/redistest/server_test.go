package redistest

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewPingAndAddresses(t *testing.T) {
	s := New(t)
	if s.Port() <= 0 {
		t.Fatalf("Port() = %d", s.Port())
	}
	host, _, err := net.SplitHostPort(s.Addr())
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("Addr() = %q (%v)", s.Addr(), err)
	}
	if want := "redis://" + s.Addr(); s.URL() != want {
		t.Fatalf("URL() = %q, want %q", s.URL(), want)
	}
	opt, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	if opt.Addr != s.Addr() {
		t.Fatalf("ParseURL(URL()).Addr = %q, want %q", opt.Addr, s.Addr())
	}
	rdb := Client(t, s)
	if got, err := rdb.Ping(context.Background()).Result(); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v", got, err)
	}
	// No persistence: save and appendonly are off.
	cfg, err := rdb.ConfigGet(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if cfg["save"] != "" || cfg["appendonly"] != "no" || cfg["bind"] != "127.0.0.1" {
		t.Fatalf("config save=%q appendonly=%q bind=%q", cfg["save"], cfg["appendonly"], cfg["bind"])
	}
}

func TestTwoServersGetDifferentPorts(t *testing.T) {
	a, b := New(t), New(t)
	if a.Port() == b.Port() {
		t.Fatalf("both servers on port %d", a.Port())
	}
}

func TestRestartKeepsPortDropsData(t *testing.T) {
	ctx := context.Background()
	s := New(t)
	rdb := Client(t, s)
	port := s.Port()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.Port() != port {
		t.Fatalf("port changed from %d to %d", port, s.Port())
	}
	// The pool reconnects; the first command may see the dropped connection.
	var err error
	for range 3 {
		if err = rdb.Ping(ctx).Err(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
	if _, err := rdb.Get(ctx, "k").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET k after restart: err = %v, want redis.Nil", err)
	}
}

func TestStopTwiceAndRestartAfterStop(t *testing.T) {
	s, err := Run()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := ping(s.Addr(), 0, nil); err == nil {
		t.Fatal("server still answers after Stop")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if err := ping(s.Addr(), s.proc.cmd.Process.Pid, nil); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
}

func TestRunMissingBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Run()
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Run with empty PATH: err = %v, want ErrNotFound", err)
	}
}

func TestRunBadArgsReportsOutput(t *testing.T) {
	_, err := Run(WithArgs("--no-such-option", "x"))
	if err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("Run with a bad option: err = %v", err)
	}
}

// TestProxyForwardsAndStalls: through the proxy Redis answers; stalled, it
// answers nothing (the call runs into its deadline) and the connection stays
// open; resumed, the held command is answered and new ones are too.
func TestProxyForwardsAndStalls(t *testing.T) {
	s := New(t)
	p := NewProxy(t, s.Addr())
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1, PoolSize: 1, ContextTimeoutEnabled: true})
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "v", time.Minute).Err(); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	p.Stall()
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := rdb.Get(short, "k").Err()
	cancel()
	if err == nil {
		t.Fatal("a stalled proxy answered")
	}
	held := make(chan error, 1)
	raw := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1})
	defer raw.Close()
	go func() { held <- raw.Incr(ctx, "n").Err() }()
	select {
	case err := <-held:
		t.Fatalf("a command through a stalled proxy returned %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	p.Resume()
	if err := <-held; err != nil {
		t.Fatalf("the held command after Resume: %v", err)
	}
	if got, err := rdb.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("after Resume: %q %v", got, err)
	}
}
