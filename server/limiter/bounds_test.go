package limiter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/server/config"
)

// TestBoundsRefuseLargeDescriptorsRequestsAndOverrides: what no gateway
// sends is INVALID_ARGUMENT naming the field, and nothing reaches Redis.
func TestBoundsRefuseLargeDescriptorsRequestsAndOverrides(t *testing.T) {
	l, mr := newTestLimiter(t, testConfig)
	entries := func(n, valueBytes int) Descriptor {
		var d Descriptor
		for i := range n {
			d.Entries = append(d.Entries, config.Entry{Key: fmt.Sprintf("k%d", i), Value: strings.Repeat("v", valueBytes)})
		}
		return d
	}
	year := config.RequestLimit(1, MaxOverrideWindow, "year")
	nineYears := config.RequestLimit(1, 9*MaxOverrideWindow, "")
	negative := config.RequestLimit(1, -time.Second, "")
	long := entries(32, 1000) // the attack: 32 entries of 1,000 bytes
	big := Request{Domain: "apim"}
	for range 20 {
		big.Descriptors = append(big.Descriptors, entries(4, 1000)) // 4 KB each, 80 KB in all
	}
	withYear, withNine, withNegative := desc("tenant", "a"), desc("tenant", "a"), desc("tenant", "a")
	withYear.Override, withNine.Override, withNegative.Override = &year, &nineYears, &negative
	for _, c := range []struct {
		name  string
		req   Request
		field string
	}{
		{"the issue's descriptor", Request{Domain: "apim", Descriptors: []Descriptor{long}}, "descriptors[0].entries"},
		{"a descriptor over 4 KiB", Request{Domain: "apim", Descriptors: []Descriptor{desc("tenant", "a"), entries(5, 1000)}}, "descriptors[1].entries"},
		{"a request over 64 KiB", big, "descriptors"},
		{"a nine-year override", Request{Domain: "apim", Descriptors: []Descriptor{withNine}}, "descriptors[0].limit"},
		{"a negative override window", Request{Domain: "apim", Descriptors: []Descriptor{withNegative}}, "descriptors[0].limit"},
	} {
		calls := mr.CommandCount()
		_, err := l.ShouldRateLimit(context.Background(), &c.req)
		var inv *InvalidError
		if !errors.As(err, &inv) || inv.Field != c.field {
			t.Errorf("%s: %v, want an InvalidError naming %s", c.name, err, c.field)
		}
		if mr.CommandCount() != calls {
			t.Errorf("%s: reached Redis", c.name)
		}
	}
	if dec := check(t, l, Request{Domain: "apim", Descriptors: []Descriptor{withYear}}); dec.Over {
		t.Errorf("a one-year override: %+v, want admitted", dec)
	}
	if dec := check(t, l, Request{Domain: "apim", Descriptors: []Descriptor{entries(4, 1000)}}); dec.Over {
		t.Errorf("a 4 KB descriptor: %+v, want admitted", dec)
	}

	l.SetBounds(Bounds{DescriptorBytes: 100, RequestBytes: 150})
	for _, c := range []struct {
		req   Request
		field string
	}{
		{Request{Domain: "apim", Descriptors: []Descriptor{desc("tenant", strings.Repeat("x", 95))}}, "descriptors[0].entries"},
		{Request{Domain: "apim", Descriptors: []Descriptor{desc("tenant", strings.Repeat("x", 70)), desc("tenant", strings.Repeat("y", 70))}}, "descriptors"},
	} {
		_, err := l.ShouldRateLimit(context.Background(), &c.req)
		var inv *InvalidError
		if !errors.As(err, &inv) || inv.Field != c.field {
			t.Errorf("with small bounds: %v, want an InvalidError naming %s", err, c.field)
		}
	}
}

// TestOverLimitCacheIsBoundedByBytes: long-lived refusals of long keys fill
// the cache up to its bytes and no further, and it keeps working: new
// refusals still get in.
func TestOverLimitCacheIsBoundedByBytes(t *testing.T) {
	const budget = 64 << 10
	c := newOverLimitCache(budget)
	now := time.Date(2025, 7, 4, 12, 0, 0, 0, time.UTC)
	year := now.Add(MaxOverrideWindow)
	key := func(i int) string { return fmt.Sprintf("%06d", i) + strings.Repeat("k", 4000) }
	for i := range 1000 { // 4 MB of keys
		c.block(key(i), 1, year, year, now)
		if c.bytes > budget {
			t.Fatalf("after %d entries the cache holds %d bytes, more than its %d", i+1, c.bytes, budget)
		}
	}
	held := 0
	for k := range c.entries {
		held += len(k) + entryOverhead
	}
	if held != c.bytes || len(c.entries) < budget/(4006+entryOverhead)-1 {
		t.Errorf("%d entries holding %d bytes (counted %d): want it full, counted right", len(c.entries), held, c.bytes)
	}
	c.block("fresh", 1, now.Add(time.Second), now.Add(time.Second), now)
	if d, _ := c.blockedFor("fresh", 1, now); d != time.Second {
		t.Errorf("a refusal after the cache filled up: blocked for %v, want 1s", d)
	}
	c.block(strings.Repeat("x", budget), 1, year, year, now)
	if c.bytes > budget {
		t.Errorf("one key larger than the whole cache got in")
	}
	for k := range c.entries {
		c.forget(k)
	}
	if c.bytes != 0 || len(c.entries) != 0 {
		t.Errorf("after forgetting everything: %d bytes in %d entries", c.bytes, len(c.entries))
	}
}
