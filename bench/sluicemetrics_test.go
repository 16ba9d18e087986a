package main

import "testing"

func TestServerMetricsAdd(t *testing.T) {
	var m serverMetrics
	for _, line := range []string{
		`# HELP sluice_lease_decisions_total Decisions answered entirely from the replica's quota leases.`,
		`sluice_lease_decisions_total{domain="bench"} 1200`,
		`sluice_lease_decisions_total{domain="apim"} 34`,
		`sluice_redis_duration_seconds_count{script="lease"} 7`,
		`sluice_redis_duration_seconds_count{script="window"} 99`,
	} {
		if err := m.add(line); err != nil {
			t.Fatal(err)
		}
	}
	if m.leaseDecisions != 1234 || m.leaseCalls != 7 {
		t.Errorf("got %+v, want 1234 lease decisions and 7 lease calls", m)
	}
	if err := m.add(`sluice_lease_decisions_total{domain="x"} many`); err == nil {
		t.Error("a value that is no number: want an error")
	}
}
