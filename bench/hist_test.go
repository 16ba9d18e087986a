package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketLayout(t *testing.T) {
	// Slots are contiguous and each value lies inside its own slot's range.
	prevHi := uint64(0)
	for i := 1; i < histSize; i++ {
		lo, hi := bucketRange(i)
		if lo != prevHi+1 {
			t.Fatalf("slot %d starts at %d, want %d", i, lo, prevHi+1)
		}
		if got := bucketOf(lo); got != i {
			t.Fatalf("bucketOf(%d) = %d, want %d", lo, got, i)
		}
		if got := bucketOf(hi); got != i {
			t.Fatalf("bucketOf(%d) = %d, want %d", hi, got, i)
		}
		prevHi = hi
	}
	if prevHi != math.MaxUint64 {
		t.Fatalf("last slot ends at %d, want MaxUint64", prevHi)
	}
}

// exactQuantile is the nearest-rank quantile of sorted values.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func TestQuantileMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var a, b histogram
	var all []time.Duration
	for i := range 100_000 {
		// log-normal around 300µs with a long tail, like RPC latencies
		d := time.Duration(300e3 * math.Exp(rng.NormFloat64()))
		all = append(all, d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	slices.Sort(all)
	if a.Count() != uint64(len(all)) {
		t.Fatalf("count %d, want %d", a.Count(), len(all))
	}
	for _, q := range []float64{0.001, 0.5, 0.9, 0.99, 0.999, 1} {
		want := exactQuantile(all, q)
		got := a.Quantile(q)
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 1.0/subBuckets {
			t.Errorf("q%v = %v, want %v (off by %.2f%%)", q, got, want, 100*rel)
		}
	}
	if a.Max() != all[len(all)-1] {
		t.Errorf("max %v, want %v", a.Max(), all[len(all)-1])
	}
}

func TestQuantileSmallExact(t *testing.T) {
	var h histogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram should report 0")
	}
	for _, d := range []time.Duration{5, 1, 4, 2, 3, -7} {
		h.Record(d)
	}
	for q, want := range map[float64]time.Duration{0.01: 0, 0.5: 2, 0.99: 5, 1: 5} {
		if got := h.Quantile(q); got != want {
			t.Errorf("q%v = %v, want %v", q, got, want)
		}
	}
	if got := h.Mean(); got != 2 { // (5+1+4+2+3+0)/6
		t.Errorf("mean %v, want 2ns", got)
	}
}
