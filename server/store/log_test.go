package store

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/internal/syncbuf"
)

// TestGoRedisLogsGoThroughSlogThrottled: with Redis down for 2 s and calls
// dialing it all the while, go-redis' own lines arrive as JSON records of
// the given logger, at most one a second, saying how many were left out.
func TestGoRedisLogsGoThroughSlogThrottled(t *testing.T) {
	var out syncbuf.Buffer
	SetLogger(slog.New(slog.NewJSONHandler(&out, nil)))
	t.Cleanup(func() { redis.SetLogger(quiet{}) })

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close() // nothing listens: every dial is refused
	s := openStore(t, "redis://"+dead, Config{})
	for until := time.Now().Add(2 * time.Second); time.Now().Before(until); {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_ = s.Client.Ping(ctx).Err()
		_, _ = runEcho(ctx, s.Scripter, "k", "x")
		cancel()
		time.Sleep(5 * time.Millisecond)
	}

	var records, left int64
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON record: %q", line)
		}
		if detail, _ := rec["detail"].(string); rec["msg"] != "redis client" || rec["level"] != "WARN" || detail == "" {
			t.Errorf("record %v, want a warning \"redis client\" with go-redis' line as detail", rec)
		}
		records++
		n, _ := rec["suppressed_since_last"].(float64)
		left += int64(n)
	}
	t.Logf("%d records, %d lines left out", records, left)
	if records == 0 {
		t.Fatal("go-redis logged nothing through slog while Redis was down")
	}
	if records > 3 {
		t.Errorf("%d go-redis records in 2 s, want at most one a second", records)
	}
	if left == 0 {
		t.Error("no go-redis line was left out: nothing shows the throttle")
	}
}
