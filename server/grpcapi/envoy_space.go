package grpcapi

import (
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// oneStatusResponse is the answer to a call of one descriptor — the common
// call — with its status, limit and reset, in one allocation instead of
// five. The messages are built in place and never copied; gRPC marshals the
// response after the handler returns, and the pointers into the struct keep
// it alive until then. Nothing reuses it.
type oneStatusResponse struct {
	out    rlsv3.RateLimitResponse
	list   [1]*rlsv3.RateLimitResponse_DescriptorStatus
	status rlsv3.RateLimitResponse_DescriptorStatus
	limit  rlsv3.RateLimitResponse_RateLimit
	reset  durationpb.Duration
}

// responseRoom is where response builds its messages: the fields of a
// oneStatusResponse for one status, else an allocation per message.
type responseRoom struct{ one *oneStatusResponse }

// newResponse returns an empty response with n nil statuses.
func newResponse(n int) (*rlsv3.RateLimitResponse, responseRoom) {
	if n == 1 {
		one := &oneStatusResponse{}
		one.out.Statuses = one.list[:]
		return &one.out, responseRoom{one}
	}
	return &rlsv3.RateLimitResponse{Statuses: make([]*rlsv3.RateLimitResponse_DescriptorStatus, n)}, responseRoom{}
}

// status returns an empty descriptor status.
func (r responseRoom) status() *rlsv3.RateLimitResponse_DescriptorStatus {
	if r.one != nil {
		return &r.one.status
	}
	return &rlsv3.RateLimitResponse_DescriptorStatus{}
}

// limit returns an empty limit message.
func (r responseRoom) limit() *rlsv3.RateLimitResponse_RateLimit {
	if r.one != nil {
		return &r.one.limit
	}
	return &rlsv3.RateLimitResponse_RateLimit{}
}

// duration returns d as a message, as durationpb.New does.
func (r responseRoom) duration(d time.Duration) *durationpb.Duration {
	if r.one == nil {
		return durationpb.New(d)
	}
	r.one.reset.Seconds, r.one.reset.Nanos = int64(d/time.Second), int32(d%time.Second)
	return &r.one.reset
}
