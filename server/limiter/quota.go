package limiter

import (
	"github.com/sluice-rl/sluice/lua"
	"github.com/sluice-rl/sluice/server/config"
)

// Quota mode, as envoyproxy/ratelimit's quota_mode (per descriptor) and
// QUOTA_MODE (every descriptor): a quota-mode descriptor that is over does not
// refuse the call by itself; the call is over only when every quota-mode
// descriptor of it is over (or an enforced limit refuses). It is how Envoy
// picks a backend that still has quota (the response's dynamic metadata names
// the descriptors that passed), and how it counts usage in two calls: a check
// on the request path (hits_addend 0), the charge on the response path.
//
// A quota-mode request limit counts as upstream counts: a call is counted on it,
// whole, while its count is at most the limit — so the call that takes it past
// its limit is counted too, even when the answer is OVER_LIMIT, and a check at
// the limit passes — and nothing more once it is past (lua.Counter.Inclusive).
// In any window a quota-mode counter thus holds at most its limit plus one
// call's hits, and never grows while calls keep arriving over it. Token limits
// are not affected: they count Sluice's own way (the config refuses
// quota_mode on them).

// SetQuotaMode makes every descriptor quota-mode (QUOTA_MODE=true), as if each
// had quota_mode: true. Call it before serving.
func (l *Limiter) SetQuotaMode(on bool) { l.quotaMode = on }

// inQuotaMode reports whether a descriptor that matched r counts in quota
// mode: its own quota_mode, or every descriptor but the unlimited ones when
// quota mode is global (matched or not, as upstream counts them).
func (l *Limiter) inQuotaMode(r *config.Rule) bool {
	return r.Quota || (l.quotaMode && !r.Unlimited)
}

// quotaCounter makes the counter of a quota-mode request limit count as
// upstream counts: hits are charged while the count is at most the limit
// (an inclusive force, which never refuses the call); a check (cost 0) passes
// while the count is at most the limit and refuses nothing by itself. Other
// ops (refunds) are left as they are.
func quotaCounter(cost uint64, op lua.Op) (lua.Op, bool, bool) {
	if op != lua.OpCheck {
		return op, false, false
	}
	if cost == 0 {
		return lua.OpCheck, true, true // inclusive, and never refuses: shadow
	}
	return lua.OpForce, true, false
}

// quotaRefuses reports whether every quota-mode descriptor of the call is
// over, so that the call is refused although no enforced limit refused it. A
// shadow-mode descriptor over its limit counts as passed, as upstream's does.
func quotaRefuses(statuses []Status) bool {
	n := 0
	for i := range statuses {
		s := &statuses[i]
		if !s.Quota {
			continue
		}
		if !s.Over || s.Shadow {
			return false
		}
		n++
	}
	return n > 0
}
