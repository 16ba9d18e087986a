package limiter

import (
	"strings"
	"testing"
	"time"
)

// quotaConfig is the quota part of envoyproxy/ratelimit's examples/ratelimit
// config (service_1: 1/min, service_2: 2/min, both quota_mode), plus an
// enforced limit and a shadow-mode quota descriptor.
const quotaConfig = `
domain: rl
descriptors:
  - key: service
    value: service_1
    quota_mode: true
    rate_limit: {unit: minute, requests_per_unit: 1}
    metadata: {service_with_quota: {name: service_1}}
  - key: service
    value: service_2
    quota_mode: true
    rate_limit: {unit: minute, requests_per_unit: 2}
    metadata: {service_with_quota: {name: service_2}}
  - key: service
    value: soft
    quota_mode: true
    shadow_mode: true
    rate_limit: {unit: minute, requests_per_unit: 1}
  - key: user
    rate_limit: {unit: minute, requests_per_unit: 1}
  - key: plain
    rate_limit: {unit: minute, requests_per_unit: 1}
`

func services(names ...string) []Descriptor {
	var ds []Descriptor
	for _, n := range names {
		ds = append(ds, desc("service", n))
	}
	return ds
}

func withHits(d Descriptor, hits uint64) Descriptor {
	d.Hits, d.HasHits = hits, true
	return d
}

// codes renders a decision as "OK|ok,over": the overall code, then each
// descriptor's.
func codes(dec Decision) string {
	s := "OK|"
	if dec.Over {
		s = "OVER|"
	}
	for i, st := range dec.Statuses {
		if i > 0 {
			s += ","
		}
		if st.Over {
			s += "over"
		} else {
			s += "ok"
		}
	}
	return s
}

func used(t *testing.T, l *Limiter, d Descriptor) uint64 {
	t.Helper()
	u, err := l.Usage(t.Context(), &Request{Domain: "rl", Descriptors: []Descriptor{d}})
	if err != nil {
		t.Fatal(err)
	}
	return u[0].Limits[0].Used
}

// TestQuotaModeRefusesOnlyWhenEveryQuotaDescriptorIsOver is upstream's
// integration-test/scripts/quota.sh: one call hits both services; the third
// call is refused, when both are over.
func TestQuotaModeRefusesOnlyWhenEveryQuotaDescriptorIsOver(t *testing.T) {
	l, mr := newTestLimiter(t, quotaConfig)
	req := Request{Domain: "rl", Descriptors: services("service_1", "service_2")}
	for i, want := range []string{"OK|ok,ok", "OK|over,ok", "OVER|over,over", "OVER|over,over"} {
		dec := check(t, l, req)
		if got := codes(dec); got != want {
			t.Fatalf("call %d: %s, want %s (%+v)", i+1, got, want, dec.Statuses)
		}
		if dec.Cached {
			t.Errorf("call %d: quota mode answered from the over-limit cache", i+1)
		}
	}
	// Counted as upstream counts, but no further: the call that took each
	// service past its limit counted, the calls after it did not.
	if u1, u2 := used(t, l, desc("service", "service_1")), used(t, l, desc("service", "service_2")); u1 != 2 || u2 != 3 {
		t.Errorf("used %d and %d, want 2 (limit 1 + the call past it) and 3 (limit 2 + 1)", u1, u2)
	}
	dec := check(t, l, req)
	mr.SetTime(mr.now.Add(dec.Statuses[1].RetryAfter))
	if got := codes(check(t, l, req)); got != "OK|ok,ok" {
		t.Errorf("after the window: %s", got)
	}
}

// TestQuotaModeCheckThenCharge is upstream's token-quota.sh: the request path
// checks (hits_addend 0), the response path charges 1. On a 2/min quota the
// checks let 3 requests through, as upstream does; the 4th is refused.
func TestQuotaModeCheckThenCharge(t *testing.T) {
	l, _ := newTestLimiter(t, quotaConfig)
	svc := desc("service", "service_2")
	for i := range 4 {
		dec := check(t, l, Request{Domain: "rl", Descriptors: []Descriptor{withHits(svc, 0)}})
		if want := i == 3; dec.Over != want {
			t.Fatalf("request %d: over %v, want %v (%+v)", i+1, dec.Over, want, dec.Statuses)
		}
		if dec.Over {
			break
		}
		check(t, l, Request{Domain: "rl", Descriptors: []Descriptor{withHits(svc, 1)}})
	}
	if u := used(t, l, svc); u != 3 {
		t.Errorf("used %d, want 3: every response-path charge counted", u)
	}
}

// TestQuotaModeSelectsAServiceWithQuota is upstream's
// multiservice-tokenquota.sh: both services checked on the request path, the
// one that served charged on the response path; service_1 serves 2 requests,
// service_2 the next 3, the 6th is refused.
func TestQuotaModeSelectsAServiceWithQuota(t *testing.T) {
	l, _ := newTestLimiter(t, quotaConfig)
	var served []string
	for range 6 {
		dec := check(t, l, Request{Domain: "rl", Descriptors: []Descriptor{
			withHits(desc("service", "service_1"), 0), withHits(desc("service", "service_2"), 0)}})
		if dec.Over {
			served = append(served, "refused")
			break
		}
		// Envoy routes to the first service that passed (its metadata).
		svc := "service_2"
		if !dec.Statuses[0].Over {
			svc = "service_1"
		}
		served = append(served, svc)
		check(t, l, Request{Domain: "rl", Descriptors: []Descriptor{withHits(desc("service", svc), 1)}})
	}
	want := "service_1 service_1 service_2 service_2 service_2 refused"
	if got := strings.Join(served, " "); got != want {
		t.Errorf("served %s, want %s", got, want)
	}
}

// TestQuotaModeUnderOverloadDoesNotGrow: calls that keep arriving over a quota
// are not counted, so the count ages out and the quota admits again.
func TestQuotaModeUnderOverloadDoesNotGrow(t *testing.T) {
	l, mr := newTestLimiter(t, quotaConfig)
	req := Request{Domain: "rl", Descriptors: services("service_2")}
	for range 50 {
		check(t, l, req)
	}
	if u := used(t, l, desc("service", "service_2")); u != 3 {
		t.Errorf("used %d after 50 calls on 2/min, want 3", u)
	}
	mr.SetTime(mr.now.Add(time.Minute + 6*time.Second))
	if dec := check(t, l, req); dec.Over {
		t.Errorf("one window later: %+v", dec.Statuses)
	}
}

// TestQuotaModeWithEnforcedAndShadowDescriptors carries over upstream's
// TestServicePerDescriptorQuotaMode and TestServiceMixedPerDescriptorModes: an
// enforced limit that refuses refuses the call whatever the quota says; an
// enforced limit under its cap does not save a call whose only quota is over;
// a shadow-mode quota descriptor over its limit counts as passed.
func TestQuotaModeWithEnforcedAndShadowDescriptors(t *testing.T) {
	l, _ := newTestLimiter(t, quotaConfig)
	check(t, l, Request{Domain: "rl", Descriptors: []Descriptor{desc("user", "u1")}})
	if got := codes(check(t, l, Request{Domain: "rl", Descriptors: []Descriptor{desc("user", "u1"), desc("service", "service_2")}})); got != "OVER|over,ok" {
		t.Errorf("enforced over, quota ok: %s", got)
	}
	if used(t, l, desc("service", "service_2")) != 0 {
		t.Error("a call an enforced limit refused charged its quota")
	}
	check(t, l, Request{Domain: "rl", Descriptors: services("service_1")})
	if got := codes(check(t, l, Request{Domain: "rl", Descriptors: []Descriptor{desc("user", "u2"), desc("service", "service_1")}})); got != "OVER|ok,over" {
		t.Errorf("enforced ok, the only quota over: %s", got)
	}
	// Refused for quota only: charged as upstream charges it.
	if u := used(t, l, desc("user", "u2")); u != 1 {
		t.Errorf("a call refused for its quota charged its enforced limit %d, want 1", u)
	}
	if got := codes(check(t, l, Request{Domain: "rl", Descriptors: []Descriptor{desc("user", "u3"), desc("service", "service_1"), desc("service", "service_2")}})); got != "OK|ok,over,ok" {
		t.Errorf("enforced ok, one of two quotas over: %s", got)
	}
	check(t, l, Request{Domain: "rl", Descriptors: services("soft")})
	if got := codes(check(t, l, Request{Domain: "rl", Descriptors: services("service_1", "soft")})); got != "OK|over,over" {
		t.Errorf("quota over, shadow quota over: %s", got)
	}
}

// TestGlobalQuotaMode is upstream's QUOTA_MODE=true: every descriptor is
// quota-mode, so the call is refused only when all are over; one that matches
// no limit counts as passed.
func TestGlobalQuotaMode(t *testing.T) {
	l, _ := newTestLimiter(t, quotaConfig)
	l.SetQuotaMode(true)
	req := Request{Domain: "rl", Descriptors: []Descriptor{desc("user", "u1"), desc("plain", "p")}}
	for i, want := range []string{"OK|ok,ok", "OVER|over,over"} {
		if got := codes(check(t, l, req)); got != want {
			t.Errorf("call %d: %s, want %s", i+1, got, want)
		}
	}
	if got := codes(check(t, l, Request{Domain: "rl", Descriptors: []Descriptor{desc("user", "u1"), desc("nothing", "x")}})); got != "OK|over,ok" {
		t.Errorf("over and unmatched: %s", got)
	}
}
