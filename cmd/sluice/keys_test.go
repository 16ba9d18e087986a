package main

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// counterKeys is the keys under the default prefix that counters wrote:
// all of them but the readiness probe's own (limiter.Probe).
func counterKeys(t *testing.T, rdb *redis.Client) []string {
	t.Helper()
	keys, err := rdb.Keys(context.Background(), "sluice:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := keys[:0]
	for _, k := range keys {
		if !strings.HasSuffix(k, ":probe:{readiness}") {
			out = append(out, k)
		}
	}
	return out
}
