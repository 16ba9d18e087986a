package main

import (
	"io"
	"slices"
	"strings"
	"testing"
)

func TestParseRateList(t *testing.T) {
	got, err := parseRateList("2000, 5000,0,0.5")
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{2000, 5000, 0, 0.5}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"", "-1", "fast", "NaN", "1e12"} {
		if _, err := parseRateList(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestRateFlag(t *testing.T) {
	o, err := parseOptions(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.rates, []float64{0}) || !strings.HasPrefix(o.loadDescription(), "closed loop") {
		t.Errorf("default: rates %v, %q; want a closed loop", o.rates, o.loadDescription())
	}
	o, err = parseOptions([]string{"-rate", "2000,10000"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if d := o.loadDescription(); !strings.HasPrefix(d, "open loop at 2000, 10000 calls/s") {
		t.Errorf("description %q", d)
	}
	if _, err := parseOptions([]string{"-rate", "-5"}, io.Discard); err == nil {
		t.Error("-rate -5: want an error")
	}
}

func TestRatelimitRunsNeedTheBinary(t *testing.T) {
	o, err := parseOptions(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.hasRatelimit() || !o.has(runSpread) || !o.has(runDirect) {
		t.Errorf("default runs %v: want the sluice runs (spread and direct among them) and no ratelimit run", o.runs)
	}
	if _, err := parseOptions([]string{"-runs", "sluice,ratelimit"}, io.Discard); err == nil || !strings.Contains(err.Error(), "-ratelimit-bin") {
		t.Errorf("ratelimit without -ratelimit-bin: %v, want an error naming -ratelimit-bin", err)
	}
	o, err = parseOptions([]string{"-ratelimit-bin", "/x/ratelimit"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ratelimitRuns {
		if !o.has(r) {
			t.Errorf("with -ratelimit-bin, default runs %v lack %s", o.runs, r)
		}
	}
	if noopOf(runRatelimitSpread) != runRatelimitNoop || noopOf(runSpread) != runNoop {
		t.Error("noopOf: a run's no-op is the one of its own process")
	}
	if !isNoop(runNoop) || !isNoop(runRatelimitNoop) || isNoop(runSluice) || isNoop(runRatelimit) {
		t.Error("isNoop: true for the two no-op runs only")
	}
}
