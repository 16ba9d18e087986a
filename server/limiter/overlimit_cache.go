package limiter

import (
	"sync"
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
type overLimitCache struct {
	maxEntries int

	mu      sync.Mutex
	entries map[string]blocked
}

type blocked struct {
	until time.Time // when the counter could admit again
	reset time.Time // when everything it counted has aged out, as the refusal said
	limit uint64
}

func newOverLimitCache(maxEntries int) *overLimitCache {
	return &overLimitCache{maxEntries: maxEntries, entries: make(map[string]blocked)}
}

// blockedFor returns how long the counter under key with this limit stays
// refused (0 when it is not known to be) and how long until what it counts
// has aged out.
func (c *overLimitCache) blockedFor(key string, limit uint64, now time.Time) (retry, reset time.Duration) {
	c.mu.Lock()
	b, ok := c.entries[key]
	c.mu.Unlock()
	if !ok || b.limit != limit || !now.Before(b.until) {
		return 0, 0
	}
	return b.until.Sub(now), max(b.reset.Sub(now), b.until.Sub(now))
}

// block records that the counter under key refuses until until, and that
// what it counts ages out at reset; now is the clock's time, for evicting
// expired entries when the cache is full.
func (c *overLimitCache) block(key string, limit uint64, until, reset, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.maxEntries {
		for k, b := range c.entries {
			if !now.Before(b.until) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.maxEntries {
			return // full of live entries: ask Redis instead
		}
	}
	c.entries[key] = blocked{until: until, reset: reset, limit: limit}
}

// forget drops what the cache knows of the counter under key: its count went
// down (a refund), so it may admit before the entry would expire.
func (c *overLimitCache) forget(key string) {
	c.mu.Lock()
	delete(c.entries, key)
	c.mu.Unlock()
}
