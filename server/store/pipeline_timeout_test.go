package store

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/internal/redistest"
)

// slowScript takes ARGV[1] ms of Redis time (a busy loop on TIME), then
// answers 1.
var slowScript = redis.NewScript(`
local t = redis.call('TIME')
local stop = t[1] * 1000000 + t[2] + tonumber(ARGV[1]) * 1000
repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] >= stop
return 1`)

// connectionsReceived is Redis' count of connections accepted so far.
func connectionsReceived(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	info, err := rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_connections_received:"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	t.Fatal("no total_connections_received in INFO stats")
	return 0
}

// TestShortDeadlinesKeepTheConnections: callers that give Redis 1 ms for a
// script that needs 5 ms get their deadline's error at their deadline, but
// their deadlines do not abort the pipelines: the Batcher keeps its
// connections instead of dialing one per batch, and a caller with time to
// wait is answered.
func TestShortDeadlinesKeepTheConnections(t *testing.T) {
	rs := redistest.New(t)
	admin := redistest.Client(t, rs)
	s := openStore(t, rs.URL(), Config{})
	ctx := context.Background()
	if err := slowScript.Run(ctx, s.Scripter, nil, 0).Err(); err != nil { // warm: connections pooled
		t.Fatal(err)
	}
	before := connectionsReceived(t, admin)
	for range 30 {
		short, cancel := context.WithTimeout(ctx, time.Millisecond)
		start := time.Now()
		err := slowScript.Run(short, s.Scripter, nil, 5).Err()
		took := time.Since(start)
		cancel()
		// nil when the answer and the deadline came together (a starved
		// goroutine may see both); never an i/o timeout.
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a 1 ms deadline on a 5 ms script: %v, want DeadlineExceeded", err)
		}
		if took > 500*time.Millisecond {
			t.Fatalf("a 1 ms deadline answered after %v", took)
		}
		time.Sleep(6 * time.Millisecond) // the script ends; the next batch finds the connection idle
	}
	if err := slowScript.Run(ctx, s.Scripter, nil, 1).Err(); err != nil {
		t.Fatalf("a caller with time to wait: %v", err)
	}
	if dialed := connectionsReceived(t, admin) - before; dialed > 3 {
		t.Errorf("30 short deadlines made the Batcher dial %d new connections; want it to keep its own", dialed)
	}
}
