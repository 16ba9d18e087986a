package limiter

import (
	"context"
	"testing"
)

const shadowConfig = `
domain: rl
descriptors:
  - {key: a, rate_limit: {unit: minute, requests_per_unit: 2}}
  - {key: b, rate_limit: {unit: minute, requests_per_unit: 5}}
`

// TestGlobalShadowMode: with every limit in shadow mode nothing is refused,
// the statuses show what would have been, and each limit counts the calls
// it would have admitted — so that turning shadow mode off enforces from
// the counts it kept.
func TestGlobalShadowMode(t *testing.T) {
	l, _ := newTestLimiter(t, shadowConfig)
	l.SetShadowMode(true)
	both := Request{Domain: "rl", Descriptors: []Descriptor{desc("a", "x"), desc("b", "y")}}
	for i, want := range []string{"OK|ok,ok", "OK|ok,ok", "OK|over,ok", "OK|over,ok"} {
		dec := check(t, l, both)
		if got := codes(dec); got != want {
			t.Errorf("shadow call %d: %s, want %s", i+1, got, want)
		}
		for j, st := range dec.Statuses {
			if !st.Shadow {
				t.Errorf("shadow call %d: status %d not marked shadow", i+1, j)
			}
		}
	}
	usage, err := l.Usage(context.Background(), &both)
	if err != nil {
		t.Fatal(err)
	}
	for j, u := range usage {
		if !u.Shadow {
			t.Errorf("usage %d not marked shadow under global shadow mode", j)
		}
	}
	l.SetShadowMode(false)
	// b counted 4 of its 5, a its 2 (the two over it were not counted).
	for i, tc := range []struct {
		req  Request
		want string
	}{
		{Request{Domain: "rl", Descriptors: []Descriptor{desc("b", "y")}}, "OK|ok"},
		{Request{Domain: "rl", Descriptors: []Descriptor{desc("b", "y")}}, "OVER|over"},
		{Request{Domain: "rl", Descriptors: []Descriptor{desc("a", "x")}}, "OVER|over"},
	} {
		if got := codes(check(t, l, tc.req)); got != tc.want {
			t.Errorf("enforced call %d: %s, want %s", i+1, got, tc.want)
		}
	}
}
