package limiter

import (
	"strconv"
	"time"

	"github.com/sluice-rl/sluice/server/config"
)

// Header names the gateway adds to its answer (IETF RateLimit header fields,
// as Envoy's ratelimit service sends them).
const (
	HeaderLimit      = "RateLimit-Limit"
	HeaderRemaining  = "RateLimit-Remaining"
	HeaderReset      = "RateLimit-Reset"
	HeaderRetryAfter = "Retry-After"
)

// headersFor describes the deciding status of the call: when over, the
// enforced refusal with the longest wait; else the limit with the least
// remaining. Over limit, the domain's own headers follow.
func headersFor(dec *Decision, dom *config.Domain) []Header {
	var top *Status
	for i := range dec.Statuses {
		s := &dec.Statuses[i]
		if s.Limit == nil || (dec.Over && (!s.Over || s.Shadow)) {
			continue
		}
		if top == nil || (dec.Over && s.RetryAfter > top.RetryAfter) || (!dec.Over && s.Remaining < top.Remaining) {
			top = s
		}
	}
	if top == nil {
		return nil
	}
	h := make([]Header, 0, 4+len(dom.OverLimitHeaders))
	h = append(h,
		Header{HeaderLimit, strconv.FormatUint(top.Limit.Requests, 10)},
		Header{HeaderRemaining, strconv.FormatUint(top.Remaining, 10)},
		Header{HeaderReset, seconds(top.ResetAfter)},
	)
	if dec.Over {
		h = append(h, Header{HeaderRetryAfter, seconds(max(top.RetryAfter, time.Second))})
		for _, dh := range dom.OverLimitHeaders {
			h = append(h, Header{dh.Name, dh.Value})
		}
	}
	return h
}

// seconds renders d as whole seconds, rounded up, as HTTP headers want them.
func seconds(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}
