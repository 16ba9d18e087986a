package main

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// sample is one call of a paired run: when it was due, from the start of the
// measured window (negative for a call due in the warm-up that ended in the
// window), and its latency from that time.
type sample struct {
	due     time.Duration
	latency time.Duration
}

// armStats are the exact percentiles of one arm's latencies.
type armStats struct {
	n             int
	p50, p90, p99 time.Duration
}

// pairedStats compare the two arms of a paired run: the difference of their
// medians (the tested call's − the no-op's), a 95% interval for it, and the
// same difference second by second.
type pairedStats struct {
	tested, noop armStats
	diff         time.Duration   // p50 of the tested calls − p50 of the no-op calls
	lo, hi       time.Duration   // 95% block-bootstrap interval of diff; 0, 0 when unknown
	perSecond    []time.Duration // diff within each second of the window, noDiff where an arm has no call
}

// noDiff marks a second in which an arm made no call.
const noDiff = time.Duration(math.MinInt64)

const (
	// bootstrapBlock is the stretch of the schedule the bootstrap resamples
	// as a whole. Both arms' calls of a block go together, so what the
	// machine did to both in that stretch (another process's burst, a GC)
	// stays paired, and latencies that are alike because they are close in
	// time are not counted as independent.
	bootstrapBlock = 100 * time.Millisecond
	// bootstrapResamples is enough for the 2.5% and 97.5% points to move by
	// much less than the interval is wide.
	bootstrapResamples = 2000
)

// comparePaired computes the statistics of a paired run whose measured
// window lasted window. The bootstrap's random draws are seeded, so the same
// samples always give the same interval.
func comparePaired(tested, noop []sample, window time.Duration) pairedStats {
	s := pairedStats{tested: percentiles(tested), noop: percentiles(noop)}
	if len(tested) == 0 || len(noop) == 0 {
		return s
	}
	s.diff = s.tested.p50 - s.noop.p50
	s.lo, s.hi = medianDiffInterval(tested, noop, window, bootstrapBlock, bootstrapResamples, rand.New(rand.NewPCG(1, 2)))
	s.perSecond = perBlockMedianDiffs(tested, noop, window, time.Second)
	return s
}

func percentiles(samples []sample) armStats {
	sorted := latencies(samples)
	slices.Sort(sorted)
	return armStats{n: len(sorted), p50: nearestRank(sorted, 0.50), p90: nearestRank(sorted, 0.90), p99: nearestRank(sorted, 0.99)}
}

func latencies(samples []sample) []time.Duration {
	out := make([]time.Duration, len(samples))
	for i, s := range samples {
		out[i] = s.latency
	}
	return out
}

// nearestRank returns the q-quantile of sorted values the way histogram
// Quantile does: the smallest value with at least q of all values at or
// below it; 0 when there are none.
func nearestRank(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// blockOf returns the block of a call due at due, for blocks of length block
// over a window of nblocks of them: calls due before the window go to the
// first block, calls due after its end to the last.
func blockOf(due, block time.Duration, nblocks int) int {
	return min(max(int(due/block), 0), nblocks-1)
}

func blockCount(window, block time.Duration) int {
	return max(1, int((window+block-1)/block))
}

// blockedLatencies are one arm's latencies sorted, each with its block, so
// that the median of any weighting of the blocks is one walk up the list.
type blockedLatencies struct {
	latency []time.Duration
	block   []int
	count   []int // calls per block
}

func newBlockedLatencies(samples []sample, block time.Duration, nblocks int) blockedLatencies {
	sorted := slices.Clone(samples)
	slices.SortFunc(sorted, func(a, b sample) int { return cmp.Compare(a.latency, b.latency) })
	b := blockedLatencies{latency: make([]time.Duration, len(sorted)), block: make([]int, len(sorted)), count: make([]int, nblocks)}
	for i, s := range sorted {
		b.latency[i] = s.latency
		b.block[i] = blockOf(s.due, block, nblocks)
		b.count[b.block[i]]++
	}
	return b
}

// weightedQuantile returns the nearest-rank q-quantile of the latencies with
// block k's calls counted weight[k] times each, and false when the weights
// leave no call.
func (b blockedLatencies) weightedQuantile(weight []int, q float64) (time.Duration, bool) {
	total := 0
	for k, c := range b.count {
		total += weight[k] * c
	}
	if total == 0 {
		return 0, false
	}
	rank := max(int(math.Ceil(q*float64(total))), 1)
	seen := 0
	for i, l := range b.latency {
		if seen += weight[b.block[i]]; seen >= rank {
			return l, true
		}
	}
	return b.latency[len(b.latency)-1], true
}

// medianDiffInterval returns a 95% percentile-bootstrap interval of
// median(tested) − median(noop): each resample draws as many blocks of the
// window as it has, with replacement, and takes both arms' calls of the
// drawn blocks.
func medianDiffInterval(tested, noop []sample, window, block time.Duration, resamples int, rng *rand.Rand) (lo, hi time.Duration) {
	nblocks := blockCount(window, block)
	d := newBlockedLatencies(tested, block, nblocks)
	n := newBlockedLatencies(noop, block, nblocks)
	weight := make([]int, nblocks)
	diffs := make([]time.Duration, 0, resamples)
	for range resamples {
		clear(weight)
		for range nblocks {
			weight[rng.IntN(nblocks)]++
		}
		dm, ok1 := d.weightedQuantile(weight, 0.5)
		nm, ok2 := n.weightedQuantile(weight, 0.5)
		if ok1 && ok2 {
			diffs = append(diffs, dm-nm)
		}
	}
	if len(diffs) == 0 {
		return 0, 0
	}
	slices.Sort(diffs)
	return nearestRank(diffs, 0.025), nearestRank(diffs, 0.975)
}

// perBlockMedianDiffs returns median(tested) − median(noop) within each
// block of the window, noDiff for a block where an arm made no call.
func perBlockMedianDiffs(tested, noop []sample, window, block time.Duration) []time.Duration {
	nblocks := blockCount(window, block)
	split := func(samples []sample) [][]time.Duration {
		out := make([][]time.Duration, nblocks)
		for _, s := range samples {
			k := blockOf(s.due, block, nblocks)
			out[k] = append(out[k], s.latency)
		}
		for _, l := range out {
			slices.Sort(l)
		}
		return out
	}
	d, n := split(tested), split(noop)
	diffs := make([]time.Duration, nblocks)
	for k := range diffs {
		diffs[k] = noDiff
		if len(d[k]) > 0 && len(n[k]) > 0 {
			diffs[k] = nearestRank(d[k], 0.5) - nearestRank(n[k], 0.5)
		}
	}
	return diffs
}
