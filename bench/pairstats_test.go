package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestNearestRank(t *testing.T) {
	sorted := []time.Duration{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	for q, want := range map[float64]time.Duration{0.5: 50, 0.9: 90, 0.99: 100, 0.01: 10, 1: 100} {
		if got := nearestRank(sorted, q); got != want {
			t.Errorf("q %v: %v, want %v", q, got, want)
		}
	}
	if got := nearestRank(nil, 0.5); got != 0 {
		t.Errorf("no values: %v, want 0", got)
	}
}

func TestBlockOf(t *testing.T) {
	const block = 100 * time.Millisecond
	for due, want := range map[time.Duration]int{
		-time.Second: 0, 0: 0, 99 * time.Millisecond: 0, 100 * time.Millisecond: 1,
		4999 * time.Millisecond: 49, 5 * time.Second: 49, time.Hour: 49,
	} {
		if got := blockOf(due, block, 50); got != want {
			t.Errorf("due +%v: block %d, want %d", due, got, want)
		}
	}
	if n := blockCount(5*time.Second, block); n != 50 {
		t.Errorf("5s in 100ms blocks: %d, want 50", n)
	}
	if n := blockCount(5050*time.Millisecond, block); n != 51 {
		t.Errorf("5.05s in 100ms blocks: %d, want 51 (the partial block counts)", n)
	}
}

// TestWeightedQuantileMatchesExpanded: the quantile of block-weighted
// latencies is the quantile of the list with each block's calls repeated
// weight times.
func TestWeightedQuantileMatchesExpanded(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const block, nblocks = time.Second, 7
	var samples []sample
	for range 500 {
		samples = append(samples, sample{
			due:     time.Duration(rng.Int64N(int64(nblocks * block))),
			latency: time.Duration(rng.IntN(1000)) * time.Microsecond,
		})
	}
	b := newBlockedLatencies(samples, block, nblocks)
	for range 200 {
		weight := make([]int, nblocks)
		for range nblocks {
			weight[rng.IntN(nblocks)]++
		}
		var expanded []time.Duration
		for _, s := range samples {
			for range weight[blockOf(s.due, block, nblocks)] {
				expanded = append(expanded, s.latency)
			}
		}
		slices.Sort(expanded)
		for _, q := range []float64{0.5, 0.9, 0.99} {
			got, ok := b.weightedQuantile(weight, q)
			if want := nearestRank(expanded, q); !ok || got != want {
				t.Fatalf("weights %v, q %v: %v (%v), want %v", weight, q, got, ok, want)
			}
		}
	}
	if _, ok := b.weightedQuantile(make([]int, nblocks), 0.5); ok {
		t.Error("all weights 0: want no quantile")
	}
}

// pairedSamples simulates a paired run of n slots at rate over a window:
// the arms split by armOf, every call's latency a base of 300µs, plus a
// slowdown common to both arms that changes every 50ms (the machine), plus
// its own noise, plus shift for the decisions.
func pairedSamples(rng *rand.Rand, rate float64, window, shift time.Duration) (decision, noop []sample) {
	slowdown := map[int]time.Duration{}
	for j := uint64(0); ; j++ {
		due := time.Duration(float64(j) * float64(time.Second) / rate)
		if due >= window {
			return decision, noop
		}
		stretch := int(due / (50 * time.Millisecond))
		if _, ok := slowdown[stretch]; !ok {
			slowdown[stretch] = time.Duration(rng.ExpFloat64() * float64(150*time.Microsecond))
		}
		l := 300*time.Microsecond + slowdown[stretch] + time.Duration(rng.ExpFloat64()*float64(50*time.Microsecond))
		if armOf(7, j) == armTested {
			decision = append(decision, sample{due: due, latency: l + shift})
		} else {
			noop = append(noop, sample{due: due, latency: l})
		}
	}
}

// TestComparePairedIntervalHoldsTheShift: on a machine whose slowdowns
// (150µs on average, changing every 50ms) dwarf the shift, a paired run of 5s
// at 2000/s gives an interval of the difference of the medians that holds
// the true shift, is under 10µs wide, and excludes 0 when the decisions are
// 10µs slower. (The width is set by how spread out the latencies are around
// their median: the common slowdowns cancel in the difference but still
// widen each arm's distribution.)
func TestComparePairedIntervalHoldsTheShift(t *testing.T) {
	const window = 5 * time.Second
	for _, shift := range []time.Duration{0, 10 * time.Microsecond} {
		for seed := range uint64(5) {
			dec, noop := pairedSamples(rand.New(rand.NewPCG(seed, 11)), 2000, window, shift)
			s := comparePaired(dec, noop, window)
			if s.tested.n != 5000 || s.noop.n != 5000 {
				t.Fatalf("%d and %d calls, want 5000 each", s.tested.n, s.noop.n)
			}
			if s.lo > shift || s.hi < shift {
				t.Errorf("shift %v, seed %d: Δp50 %v, interval [%v, %v] misses the shift", shift, seed, s.diff, s.lo, s.hi)
			}
			if shift > 0 && s.lo <= 0 {
				t.Errorf("shift %v, seed %d: interval [%v, %v] does not exclude 0", shift, seed, s.lo, s.hi)
			}
			if w := s.hi - s.lo; w > 10*time.Microsecond {
				t.Errorf("shift %v, seed %d: interval [%v, %v] is %v wide, want under 10µs", shift, seed, s.lo, s.hi, w)
			}
			if len(s.perSecond) != 5 {
				t.Errorf("%d per-second differences over 5s, want 5", len(s.perSecond))
			}
		}
	}
}

// TestBootstrapKeepsTheArmsPaired: the slowdown of each 50ms stretch is
// large and hits both arms alike. Resampling the arms' blocks together
// cancels it; resampling them apart would not, and the interval would be
// several times wider.
func TestBootstrapKeepsTheArmsPaired(t *testing.T) {
	const window = 5 * time.Second
	dec, noop := pairedSamples(rand.New(rand.NewPCG(1, 11)), 2000, window, 0)
	lo, hi := medianDiffInterval(dec, noop, window, bootstrapBlock, 1000, rand.New(rand.NewPCG(1, 2)))

	// The same bootstrap with the arms' blocks drawn independently.
	nblocks := blockCount(window, bootstrapBlock)
	d, n := newBlockedLatencies(dec, bootstrapBlock, nblocks), newBlockedLatencies(noop, bootstrapBlock, nblocks)
	rng := rand.New(rand.NewPCG(1, 2))
	draw := func() []int {
		w := make([]int, nblocks)
		for range nblocks {
			w[rng.IntN(nblocks)]++
		}
		return w
	}
	var diffs []time.Duration
	for range 1000 {
		dm, _ := d.weightedQuantile(draw(), 0.5)
		nm, _ := n.weightedQuantile(draw(), 0.5)
		diffs = append(diffs, dm-nm)
	}
	slices.Sort(diffs)
	unpairedWidth := nearestRank(diffs, 0.975) - nearestRank(diffs, 0.025)
	if hi-lo >= unpairedWidth/3 {
		t.Errorf("paired interval [%v, %v] is %v wide, unpaired %v: want the pairing to narrow it at least threefold", lo, hi, hi-lo, unpairedWidth)
	}
}

func TestPerBlockMedianDiffs(t *testing.T) {
	at := func(sec float64, latency time.Duration) sample {
		return sample{due: time.Duration(sec * float64(time.Second)), latency: latency}
	}
	dec := []sample{at(0.1, 310), at(0.5, 320), at(0.9, 330), at(1.2, 500), at(2.5, 400)}
	noop := []sample{at(0.2, 300), at(0.7, 305), at(1.5, 480), at(1.6, 490), at(1.7, 470)}
	got := perBlockMedianDiffs(dec, noop, 3*time.Second, time.Second)
	// second 0: 320 − 300 (nearest rank of 2 values is the lower);
	// second 1: 500 − 480; second 2: no no-op call.
	if want := []time.Duration{20, 20, noDiff}; !slices.Equal(got, want) {
		t.Errorf("per-second differences %v, want %v", got, want)
	}
}

func TestComparePairedWithAnEmptyArm(t *testing.T) {
	s := comparePaired([]sample{{latency: time.Millisecond}}, nil, time.Second)
	if s.tested.n != 1 || s.noop.n != 0 || s.diff != 0 || s.lo != 0 || s.hi != 0 || s.perSecond != nil {
		t.Errorf("one arm empty: %+v, want no difference, interval or per-second list", s)
	}
}
