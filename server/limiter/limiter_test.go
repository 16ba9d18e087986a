package limiter

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/server/config"
)

const testConfig = `
domain: apim
over_limit_response:
  headers:
    X-Sluice-Domain: apim
descriptors:
  - key: api
    value: PizzaShackAPI:1.0.0
    descriptors:
      - key: environment
        value: production
        rate_limit: {unit: second, requests_per_unit: 100}
      - key: environment
        value: sandbox
        rate_limit: {unit: second, requests_per_unit: 3}
  - key: api
    value: Shadowed:1.0.0
    shadow_mode: true
    rate_limit: {unit: minute, requests_per_unit: 1}
  - key: api
    value: Open:1.0.0
    rate_limit: {unlimited: true}
  - key: tenant
    rate_limits:
      - {window: 10s, requests: 5}
      - {unit: hour, requests_per_unit: 1000}
  - key: generic
    rate_limit: {name: generic, unit: minute, requests_per_unit: 2}
  - key: specific
    rate_limit: {name: specific, replaces: [{name: generic}], unit: minute, requests_per_unit: 4}
`

// pinnedClock is a miniredis whose time the test sets, and the limiter's
// clock following it.
type pinnedClock struct {
	*miniredis.Miniredis
	now time.Time
}

func (c *pinnedClock) SetTime(t time.Time) { c.now = t; c.Miniredis.SetTime(t) }

// newTestLimiter returns a limiter on miniredis at a pinned time; the
// limiter's own clock follows the pinned time.
func newTestLimiter(t *testing.T, yaml string) (*Limiter, *pinnedClock) {
	t.Helper()
	dom, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("parse config: %v", err)
	}
	set, err := config.NewSet(dom)
	if err != nil {
		t.Fatal(err)
	}
	mr := &pinnedClock{Miniredis: miniredis.RunT(t)}
	mr.SetTime(time.Date(2025, 7, 4, 12, 0, 0, 0, time.UTC))
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	l := New(func() *config.Set { return set }, rdb, "test:"+t.Name()+":")
	l.now = func() time.Time { return mr.now }
	return l, mr
}

func desc(kv ...string) Descriptor {
	var d Descriptor
	for i := 0; i+1 < len(kv); i += 2 {
		d.Entries = append(d.Entries, config.Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

func sandbox() Descriptor {
	return desc("api", "PizzaShackAPI:1.0.0", "environment", "sandbox")
}

func check(t *testing.T, l *Limiter, req Request) Decision {
	t.Helper()
	dec, err := l.ShouldRateLimit(context.Background(), &req)
	if err != nil {
		t.Fatalf("ShouldRateLimit: %v", err)
	}
	return dec
}

func header(dec Decision, key string) string {
	for _, h := range dec.Headers() {
		if h.Key == key {
			return h.Value
		}
	}
	return ""
}

func TestSandboxCapRefusesWithFaultBodyAndHeaders(t *testing.T) {
	l, _ := newTestLimiter(t, testConfig)
	req := Request{Domain: "apim", Descriptors: []Descriptor{sandbox()}}
	for i := range 3 {
		dec := check(t, l, req)
		if dec.Over {
			t.Fatalf("call %d refused under the cap", i+1)
		}
		if got, want := dec.Statuses[0].Remaining, uint64(2-i); got != want {
			t.Errorf("call %d: remaining %d, want %d", i+1, got, want)
		}
		if dec.Body != "" {
			t.Errorf("call %d: body %q on an admitted call", i+1, dec.Body)
		}
	}
	dec := check(t, l, req)
	if !dec.Over || !dec.Statuses[0].Over {
		t.Fatalf("4th call over a cap of 3 admitted: %+v", dec)
	}
	if dec.Body != DefaultOverLimitBody {
		t.Errorf("body %q, want the 900801 fault", dec.Body)
	}
	if dec.Statuses[0].Limit == nil || dec.Statuses[0].Limit.Requests != 3 {
		t.Errorf("deciding limit %+v, want the 3/s sandbox limit", dec.Statuses[0].Limit)
	}
	if dec.Statuses[0].RetryAfter <= 0 || dec.Statuses[0].RetryAfter > time.Second+100*time.Millisecond {
		t.Errorf("retry after %v, want within the 1s window", dec.Statuses[0].RetryAfter)
	}
	for key, want := range map[string]string{HeaderLimit: "3", HeaderRemaining: "0", "X-Sluice-Domain": "apim"} {
		if got := header(dec, key); got != want {
			t.Errorf("header %s = %q, want %q", key, got, want)
		}
	}
	// Reset and Retry-After round up to whole seconds: the 1s window plus
	// the current 100ms bucket ends within 2 seconds.
	for _, key := range []string{HeaderReset, HeaderRetryAfter} {
		if got := header(dec, key); got != "1" && got != "2" {
			t.Errorf("header %s = %q, want 1 or 2 seconds", key, got)
		}
	}
	// Production counts separately.
	prod := check(t, l, Request{Domain: "apim", Descriptors: []Descriptor{desc("api", "PizzaShackAPI:1.0.0", "environment", "production")}})
	if prod.Over || prod.Statuses[0].Remaining != 99 {
		t.Errorf("production after sandbox is full: over=%v remaining=%d, want admitted with 99 left", prod.Over, prod.Statuses[0].Remaining)
	}
	if header(prod, HeaderRetryAfter) != "" || header(prod, "X-Sluice-Domain") != "" {
		t.Errorf("admitted call carries over-limit headers: %v", prod.Headers())
	}
}

func TestWindowFreesCapacityAsTimePasses(t *testing.T) {
	l, mr := newTestLimiter(t, testConfig)
	req := Request{Domain: "apim", Descriptors: []Descriptor{sandbox()}}
	for range 3 {
		check(t, l, req)
	}
	if !check(t, l, req).Over {
		t.Fatal("cap not reached")
	}
	mr.SetTime(time.Date(2025, 7, 4, 12, 0, 1, 100_000_000, time.UTC))
	if dec := check(t, l, req); dec.Over {
		t.Fatalf("still refused after the window passed: %+v", dec.Statuses[0])
	}
}

func TestAllOrNothing(t *testing.T) {
	l, _ := newTestLimiter(t, testConfig)
	prod := desc("api", "PizzaShackAPI:1.0.0", "environment", "production")
	for range 3 {
		check(t, l, Request{Domain: "apim", Descriptors: []Descriptor{sandbox()}})
	}
	dec := check(t, l, Request{Domain: "apim", Descriptors: []Descriptor{prod, sandbox()}})
	if !dec.Over || dec.Statuses[0].Over || !dec.Statuses[1].Over {
		t.Fatalf("want production OK and sandbox over: %+v", dec.Statuses)
	}
	usage, err := l.Usage(context.Background(), &Request{Domain: "apim", Descriptors: []Descriptor{prod}})
	if err != nil {
		t.Fatal(err)
	}
	if got := usage[0].Limits[0].Used; got != 0 {
		t.Errorf("refused call charged production %d, want 0", got)
	}
}

func TestSameCounterTwiceInOneCallIsChargedOnce(t *testing.T) {
	l, _ := newTestLimiter(t, testConfig)
	dec := check(t, l, Request{Domain: "apim", Descriptors: []Descriptor{sandbox(), sandbox()}, Hits: 2})
	if !dec.Over {
		t.Fatalf("2+2 on a cap of 3 admitted: %+v", dec.Statuses)
	}
	dec = check(t, l, Request{Domain: "apim", Descriptors: []Descriptor{sandbox(), sandbox()}})
	if dec.Over || dec.Statuses[0].Remaining != 1 || dec.Statuses[1].Remaining != 1 {
		t.Fatalf("1+1 on an empty cap of 3: over=%v statuses=%+v, want 1 left", dec.Over, dec.Statuses)
	}
}

func TestShadowModeReportsButAdmits(t *testing.T) {
	l, _ := newTestLimiter(t, testConfig)
	req := Request{Domain: "apim", Descriptors: []Descriptor{desc("api", "Shadowed:1.0.0")}}
	check(t, l, req)
	dec := check(t, l, req)
	if dec.Over {
		t.Fatal("shadow-mode limit refused the call")
	}
	if st := dec.Statuses[0]; !st.Over || !st.Shadow {
		t.Errorf("status %+v, want over in shadow mode", st)
	}
}

func TestUnlimitedUnknownAndUnmatchedAdmitWithoutCounting(t *testing.T) {
	l, mr := newTestLimiter(t, testConfig)
	for _, req := range []Request{
		{Domain: "apim", Descriptors: []Descriptor{desc("api", "Open:1.0.0")}},
		{Domain: "apim", Descriptors: []Descriptor{desc("api", "Nobody:1.0.0")}},
		{Domain: "no-such-domain", Descriptors: []Descriptor{sandbox()}},
	} {
		dec := check(t, l, req)
		if dec.Over || dec.Statuses[0].Limit != nil {
			t.Errorf("%v: %+v, want OK without a limit", req.Descriptors[0].Entries, dec)
		}
	}
	if keys := mr.Keys(); len(keys) != 0 {
		t.Errorf("keys written for unlimited or unmatched descriptors: %v", keys)
	}
}

func TestSeveralLimitsOnOneDescriptor(t *testing.T) {
	l, _ := newTestLimiter(t, testConfig)
	req := Request{Domain: "apim", Descriptors: []Descriptor{desc("tenant", "acme")}}
	for range 5 {
		if check(t, l, req).Over {
			t.Fatal("refused under the 5/10s limit")
		}
	}
	dec := check(t, l, req)
	if !dec.Over || dec.Statuses[0].Limit.Window != 10*time.Second {
		t.Fatalf("want the 10s limit to refuse: %+v", dec.Statuses[0])
	}
	other := check(t, l, Request{Domain: "apim", Descriptors: []Descriptor{desc("tenant", "globex")}})
	if other.Over {
		t.Error("a key-only descriptor shares its counter across values")
	}
	usage, err := l.Usage(context.Background(), &req)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(usage[0].Limits); n != 2 {
		t.Fatalf("usage lists %d limits, want 2", n)
	}
	for _, u := range usage[0].Limits {
		if u.Used != 5 {
			t.Errorf("limit %s used %d, want 5", u.Limit.ID, u.Used)
		}
	}
}

// TestEachStatusHasItsOwnLimits: in a call of several descriptors, each
// status lists exactly the limits of its own descriptor, in order, with its
// own counts, and growing one status's list never writes into the next one's
// (the statuses' lists share one backing array).
func TestEachStatusHasItsOwnLimits(t *testing.T) {
	l, _ := newTestLimiter(t, testConfig)
	req := Request{Domain: "apim", Descriptors: []Descriptor{
		desc("tenant", "acme"),
		desc("api", "PizzaShackAPI:1.0.0", "environment", "sandbox"),
		desc("api", "Open:1.0.0"),
		desc("tenant", "globex"),
	}}
	check(t, l, Request{Domain: "apim", Descriptors: []Descriptor{desc("tenant", "acme")}}) // acme's counters at 1, globex's at 0
	dec := check(t, l, req)
	if dec.Over {
		t.Fatalf("refused: %+v", dec.Statuses)
	}
	want := [][]uint64{{3, 998}, {2}, nil, {4, 999}} // remaining after this call, per limit
	for i, st := range dec.Statuses {
		if len(st.Limits) != len(want[i]) {
			t.Fatalf("status %d lists %d limits, want %d: %+v", i, len(st.Limits), len(want[i]), st.Limits)
		}
		for j, ls := range st.Limits {
			if ls.Remaining != want[i][j] || ls.Charged != 1 {
				t.Errorf("status %d limit %d: remaining %d charged %d, want remaining %d charged 1", i, j, ls.Remaining, ls.Charged, want[i][j])
			}
		}
	}
	first, second := dec.Statuses[0].Limits, dec.Statuses[1].Limits
	_ = append(first, LimitState{Remaining: 12345})
	if second[0].Remaining != 2 {
		t.Errorf("appending to status 0's limits changed status 1's: %+v", second[0])
	}
}

func TestReplacesDropsTheReplacedLimit(t *testing.T) {
	l, _ := newTestLimiter(t, testConfig)
	req := Request{Domain: "apim", Descriptors: []Descriptor{desc("generic", "x"), desc("specific", "x")}}
	for i := range 4 {
		if dec := check(t, l, req); dec.Over {
			t.Fatalf("call %d refused: the replaced 2/min limit still counts", i+1)
		}
	}
	dec := check(t, l, req)
	if !dec.Over || dec.Statuses[0].Limit != nil || dec.Statuses[1].Limit.Name != "specific" {
		t.Fatalf("want only the replacing limit to decide: %+v", dec.Statuses)
	}
}

func TestZeroHitsOnlyChecks(t *testing.T) {
	l, _ := newTestLimiter(t, testConfig)
	d := sandbox()
	d.HasHits = true
	for range 5 {
		if dec := check(t, l, Request{Domain: "apim", Descriptors: []Descriptor{d}}); dec.Over || dec.Statuses[0].Remaining != 3 {
			t.Fatalf("check-only call: %+v", dec.Statuses[0])
		}
	}
}

func TestBadInputNamesTheFieldAndChargesNothing(t *testing.T) {
	l, mr := newTestLimiter(t, testConfig)
	long := strings.Repeat("x", MaxValueLen+1)
	tooMany := make([]Descriptor, MaxDescriptors+1)
	for i := range tooMany {
		tooMany[i] = sandbox()
	}
	hitsDesc := sandbox()
	hitsDesc.Hits, hitsDesc.HasHits = MaxHits+1, true
	for _, tc := range []struct {
		name  string
		req   Request
		field string
	}{
		{"no domain", Request{Descriptors: []Descriptor{sandbox()}}, "domain"},
		{"no descriptors", Request{Domain: "apim"}, "descriptors"},
		{"too many descriptors", Request{Domain: "apim", Descriptors: tooMany}, "descriptors"},
		{"empty entries", Request{Domain: "apim", Descriptors: []Descriptor{sandbox(), {}}}, "descriptors[1].entries"},
		{"empty key", Request{Domain: "apim", Descriptors: []Descriptor{sandbox(), desc("", "v")}}, "descriptors[1].entries[0].key"},
		{"long value", Request{Domain: "apim", Descriptors: []Descriptor{desc("api", long)}}, "descriptors[0].entries[0].value"},
		{"absurd hits", Request{Domain: "apim", Descriptors: []Descriptor{sandbox()}, Hits: MaxHits + 1}, "hits_addend"},
		{"absurd descriptor hits", Request{Domain: "apim", Descriptors: []Descriptor{sandbox(), hitsDesc}}, "descriptors[1].hits_addend"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.ShouldRateLimit(context.Background(), &tc.req)
			var invalid *InvalidError
			if !errors.As(err, &invalid) {
				t.Fatalf("error %v, want an *InvalidError", err)
			}
			if invalid.Field != tc.field {
				t.Errorf("field %q, want %q (%v)", invalid.Field, tc.field, err)
			}
			if keys := mr.Keys(); len(keys) != 0 {
				t.Errorf("bad input wrote %v", keys)
			}
		})
	}
}

func TestStoreDownIsAStoreError(t *testing.T) {
	l, mr := newTestLimiter(t, testConfig)
	mr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := l.ShouldRateLimit(ctx, &Request{Domain: "apim", Descriptors: []Descriptor{sandbox()}})
	var store *StoreError
	if !errors.As(err, &store) {
		t.Fatalf("error %v, want a *StoreError", err)
	}
}

func TestCounterKeysEscapeSeparators(t *testing.T) {
	var b strings.Builder
	a := counterKey(&b, "p:", "d", []config.Entry{{Key: "k", Value: "a|b=c"}}, "r:1s")
	c := counterKey(&b, "p:", "d", []config.Entry{{Key: "k", Value: "a"}, {Key: "b", Value: "c"}}, "r:1s")
	if a == c {
		t.Fatalf("two descriptors share the key %q", a)
	}
	if want := `p:{d|k=a\|b\=c}:r:1s`; a != want {
		t.Errorf("key %q, want %q", a, want)
	}
}

func TestDomainOverLimitBody(t *testing.T) {
	l, _ := newTestLimiter(t, `
domain: custom
over_limit_response:
  body: '{"error":"slow down"}'
descriptors:
  - key: api
    rate_limit: {unit: minute, requests_per_unit: 1}
`)
	req := Request{Domain: "custom", Descriptors: []Descriptor{desc("api", "x")}}
	check(t, l, req)
	if dec := check(t, l, req); !dec.Over || dec.Body != `{"error":"slow down"}` {
		t.Errorf("over limit: %+v, want the domain's own body", dec)
	}
}
