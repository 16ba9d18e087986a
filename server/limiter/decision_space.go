package limiter

// decisionSpace is a Decision with room for the statuses of a call of one
// descriptor and their limit states, so that such a decision is one
// allocation instead of three (the Decision itself goes to the heap anyway:
// the observer is handed a pointer to it). ShouldRateLimit returns a copy of
// dec; its Statuses keep the space alive, and nothing else refers to it.
type decisionSpace struct {
	dec      Decision
	statuses [inlineDescriptors]Status
	limits   [inlineCounters]LimitState
}

// newDecision returns a decision with n zero statuses.
func newDecision(n int) *decisionSpace {
	ds := &decisionSpace{}
	ds.dec.Statuses = zeroed(ds.statuses[:], n)
	return ds
}
