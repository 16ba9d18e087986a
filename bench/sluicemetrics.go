package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// serverMetrics is what the report reads from sluice's /metrics: how many
// decisions came from quota leases and how many lease calls went to Redis.
type serverMetrics struct {
	leaseDecisions float64 // sluice_lease_decisions_total, every series
	leaseCalls     float64 // sluice_redis_duration_seconds_count{script="lease"}
}

// readServerMetrics scrapes http://addr/metrics; ok is false when the
// process has no such page (envoyproxy/ratelimit) or it cannot be read.
func readServerMetrics(ctx context.Context, addr string) (m serverMetrics, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return m, false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return m, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, false
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if err := m.add(sc.Text()); err != nil {
			return m, false
		}
	}
	return m, sc.Err() == nil
}

// add counts one line of the Prometheus text format.
func (m *serverMetrics) add(line string) error {
	var dst *float64
	switch {
	case strings.HasPrefix(line, "sluice_lease_decisions_total"):
		dst = &m.leaseDecisions
	case strings.HasPrefix(line, "sluice_redis_duration_seconds_count") && strings.Contains(line, `script="lease"`):
		dst = &m.leaseCalls
	default:
		return nil
	}
	f := strings.Fields(line)
	v, err := strconv.ParseFloat(f[len(f)-1], 64)
	if err != nil {
		return fmt.Errorf("metrics: %q: %w", line, err)
	}
	*dst += v
	return nil
}
