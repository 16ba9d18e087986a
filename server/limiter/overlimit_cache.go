package limiter

import (
	"sync"
	"sync/atomic"
	"time"
)

// overLimitCache remembers request counters that refused a call, until the
// earliest moment they could admit again, so a replica answers OVER_LIMIT for
// them from memory without asking Redis. Refusing from memory is always safe
// for the sliding-window guarantee; it never admits.
//
// Only request counters are kept (never token counters, whose count a report
// can lower at any time), and only when the refused cost was 1: a later call
// of any cost cannot fit before a cost-1 call could. A config change of the
// limit makes an entry void. Envoy's is_negative_hits on a request limit can
// reopen a counter early: the replica that gives the hits back forgets the
// counter's entry at once; other replicas may keep refusing it from memory
// until their entries expire (at most the refusal's retry_after).
//
// It is bounded by bytes (Bounds.OverLimitCacheBytes): a full cache evicts an
// entry — an expired one if a short walk from a random place in the map
// finds one, else the first it met — so a caller who fills it with
// long-lived refusals gets no more than its share, and never stops it from
// working for others.
type overLimitCache struct {
	maxBytes int

	mu      sync.Mutex
	bytes   int // what the entries hold: their keys plus entryOverhead each
	entries map[string]blocked
	// size is len(entries), written under mu: a lookup in an empty cache —
	// the usual case, and every call asks — skips the lock, which all
	// calls of the replica would otherwise take in turn.
	size atomic.Int64
}

type blocked struct {
	until time.Time // when the counter could admit again
	reset time.Time // when everything it counted has aged out, as the refusal said
	limit uint64
}

// entryOverhead is what an entry holds besides its key's bytes: the map
// slot, the key's string header and the entry, with the map's slack.
const entryOverhead = 120

// evictWalk is how many entries an eviction looks at for an expired one.
const evictWalk = 8

func newOverLimitCache(maxBytes int) *overLimitCache {
	return &overLimitCache{maxBytes: maxBytes, entries: make(map[string]blocked)}
}

// blockedFor returns how long the counter under key with this limit stays
// refused (0 when it is not known to be) and how long until what it counts
// has aged out.
func (c *overLimitCache) blockedFor(key string, limit uint64, now time.Time) (retry, reset time.Duration) {
	if c.size.Load() == 0 {
		return 0, 0
	}
	c.mu.Lock()
	b, ok := c.entries[key]
	c.mu.Unlock()
	if !ok || b.limit != limit || !now.Before(b.until) {
		return 0, 0
	}
	return b.until.Sub(now), max(b.reset.Sub(now), b.until.Sub(now))
}

// block records that the counter under key refuses until until, and that
// what it counts ages out at reset; now is the clock's time, for preferring
// expired entries when the cache is full.
func (c *overLimitCache) block(key string, limit uint64, until, reset, now time.Time) {
	cost := len(key) + entryOverhead
	if cost > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok {
		for c.bytes+cost > c.maxBytes {
			c.evict(now)
		}
		c.bytes += cost
	}
	c.entries[key] = blocked{until: until, reset: reset, limit: limit}
	c.size.Store(int64(len(c.entries)))
}

// evict drops one entry; c.mu is held and the cache is not empty.
func (c *overLimitCache) evict(now time.Time) {
	victim, seen := "", 0
	for k, b := range c.entries { // Go starts every walk at a random place
		if !now.Before(b.until) {
			victim = k
			break
		}
		if seen == 0 {
			victim = k
		}
		if seen++; seen == evictWalk {
			break
		}
	}
	c.remove(victim)
}

// remove drops key's entry, if any; c.mu is held.
func (c *overLimitCache) remove(key string) {
	if _, ok := c.entries[key]; ok {
		delete(c.entries, key)
		c.bytes -= len(key) + entryOverhead
		c.size.Store(int64(len(c.entries)))
	}
}

// forget drops what the cache knows of the counter under key: its count went
// down (a refund), so it may admit before the entry would expire.
func (c *overLimitCache) forget(key string) {
	c.mu.Lock()
	c.remove(key)
	c.mu.Unlock()
}
