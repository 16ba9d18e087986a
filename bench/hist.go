package main

import (
	"math"
	"math/bits"
	"time"
)

// histogram records latencies in a log-linear layout like HdrHistogram's:
// values below 2*subBuckets nanoseconds are exact, and every power of two
// above is split into subBuckets equal parts, so a recorded value is known to
// within 1/subBuckets (0.8%). Recording is an index computation and an
// increment; a histogram is not safe for concurrent use, so each caller keeps
// its own and they are merged at the end.
type histogram struct {
	counts [histSize]uint64
	n      uint64
	sum    uint64 // nanoseconds
	min    uint64
	max    uint64
}

const (
	subBits    = 7
	subBuckets = 1 << subBits
	// histSize covers every uint64: shifts 0..56 each own subBuckets slots
	// after the first 2*subBuckets exact ones.
	histSize = (64 - subBits + 1) * subBuckets
)

// bucketOf returns the slot of v.
func bucketOf(v uint64) int {
	if v < 2*subBuckets {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	m := v >> uint(shift) // in [subBuckets, 2*subBuckets)
	return (shift+1)*subBuckets + int(m-subBuckets)
}

// bucketRange returns the smallest and largest value of slot i.
func bucketRange(i int) (lo, hi uint64) {
	if i < 2*subBuckets {
		return uint64(i), uint64(i)
	}
	shift := uint(i/subBuckets - 1)
	m := uint64(i%subBuckets + subBuckets)
	lo = m << shift
	return lo, lo + (1 << shift) - 1
}

// Record adds one latency; negative durations count as zero.
func (h *histogram) Record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += v
}

// Merge adds every value recorded in o.
func (h *histogram) Merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of recorded values.
func (h *histogram) Count() uint64 { return h.n }

// Mean returns the exact mean, 0 when empty.
func (h *histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / h.n)
}

// Max returns the exact largest value.
func (h *histogram) Max() time.Duration { return time.Duration(h.max) }

// Quantile returns the nearest-rank q-quantile (0 < q <= 1): the smallest
// recorded value with at least q of all values at or below it, to within
// 1/subBuckets, and never outside [min, max]. It returns 0 when empty.
func (h *histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketRange(i)
			v := lo + (hi-lo)/2
			return time.Duration(min(max(v, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}
