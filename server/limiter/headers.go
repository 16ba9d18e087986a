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

// rateLimitHeaders describes the deciding status of the call: when over,
// the enforced refusal with the longest wait; else the limit with the least
// remaining. extra is room to leave for the refusal headers.
func rateLimitHeaders(dec *Decision, extra int) []Header {
	top := decidingStatus(dec)
	if top == nil {
		return nil
	}
	h := make([]Header, 0, 3+extra)
	return append(h,
		Header{HeaderLimit, strconv.FormatUint(top.Limit.Requests, 10)},
		Header{HeaderRemaining, strconv.FormatUint(top.Remaining, 10)},
		Header{HeaderReset, seconds(top.ResetAfter)},
	)
}

// refusalHeaders are the headers of a refusal: Retry-After of the deciding
// status, then the domain's own; nil when the call is not over.
func refusalHeaders(dec *Decision, dom *config.Domain) []Header {
	if !dec.Over {
		return nil
	}
	h := make([]Header, 0, 1+len(dom.OverLimitHeaders))
	if top := decidingStatus(dec); top != nil && !top.NeverFits { // no retry to invite
		h = append(h, Header{HeaderRetryAfter, seconds(max(top.RetryAfter, time.Second))})
	}
	for _, dh := range dom.OverLimitHeaders {
		h = append(h, Header{dh.Name, dh.Value})
	}
	return h
}

// decidingStatus is the status the headers describe: when over, the enforced
// refusal with the longest wait (waitsLonger); else the limit with the least
// remaining; nil when no limit matched.
func decidingStatus(dec *Decision) *Status {
	var top *Status
	for i := range dec.Statuses {
		s := &dec.Statuses[i]
		if s.Limit == nil || (dec.Over && (!s.Over || s.Shadow)) {
			continue
		}
		if top == nil || (dec.Over && waitsLonger(s, top)) || (!dec.Over && s.Remaining < top.Remaining) {
			top = s
		}
	}
	return top
}

// waitsLonger reports whether refusal s lasts longer than refusal t: one
// that never fits lasts forever.
func waitsLonger(s, t *Status) bool {
	return !t.NeverFits && (s.NeverFits || s.RetryAfter > t.RetryAfter)
}

// seconds renders d as whole seconds, rounded up, as HTTP headers want them.
func seconds(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}
