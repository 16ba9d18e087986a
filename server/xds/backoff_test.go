package xds

import (
	"testing"
	"time"
)

func TestBackoffDoublesUpToMax(t *testing.T) {
	b := Backoff{Initial: 10 * time.Second, Max: 60 * time.Second, NoJitter: true}
	b.setDefaults()
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 60 * time.Second, 60 * time.Second}
	for n, w := range want {
		if got := b.wait(n); got != w {
			t.Errorf("wait(%d) = %v, want %v", n, got, w)
		}
	}
	if got := b.wait(1000); got != 60*time.Second { // no overflow
		t.Errorf("wait(1000) = %v", got)
	}
}

func TestBackoffJitterStaysWithinTheFactorAndMax(t *testing.T) {
	var b Backoff // upstream's defaults: 10s, 60s, 0.5, jittered
	b.setDefaults()
	if b.Initial != 10*time.Second || b.Max != 60*time.Second || b.RandomFactor != 0.5 || b.NoJitter {
		t.Fatalf("defaults %+v", b)
	}
	seen := map[time.Duration]bool{}
	for range 200 {
		d := b.wait(0)
		if d < 5*time.Second || d > 15*time.Second {
			t.Fatalf("first wait %v outside 10s ± 50%%", d)
		}
		seen[d] = true
		if d := b.wait(5); d < 30*time.Second || d > 60*time.Second {
			t.Fatalf("capped wait %v outside [30s, 60s]", d)
		}
	}
	if len(seen) < 100 {
		t.Errorf("only %d distinct waits in 200: not jittered", len(seen))
	}
}

func TestBackoffMaxDefaultsToAtLeastInitial(t *testing.T) {
	b := Backoff{Initial: 2 * time.Minute}
	b.setDefaults()
	if b.Max != 2*time.Minute || b.Validate() != nil {
		t.Errorf("%+v %v", b, b.Validate())
	}
}
