package main

import (
	"testing"
	"time"
)

func TestParseRedisBenchmarkCSV(t *testing.T) {
	out := `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"EVALSHA 5c1f 1 k 1","70123.45","0.643","0.296","0.599","0.839","1.711","4.991"
`
	r, err := parseRedisBenchmarkCSV([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if r.rps != 70123.45 || r.p50 != 599*time.Microsecond || r.p99 != 1711*time.Microsecond {
		t.Fatalf("got %+v", r)
	}
	if _, err := parseRedisBenchmarkCSV([]byte("Error: NOSCRIPT No matching script\n")); err == nil {
		t.Fatal("want an error for output without a result row")
	}
}
