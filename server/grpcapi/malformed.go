package grpcapi

import (
	"context"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
)

// Malformed requests: grpc-go answers a request message its codec cannot
// decode with Internal ("grpc: failed to unmarshal the received message"),
// whatever error the codec returns, before any interceptor runs — and
// Internal is "our fault" (and logged as an error) for what is the caller's.
// So the server's codec (Codec) does not fail: it notes the message it
// could not decode and lets the call go on; the first interceptor that
// sees the message (MalformedInterceptor, MalformedStreamInterceptor)
// answers it InvalidArgument before anything reads it. Every message the
// codec decodes reaches one of them: unary requests the unary interceptor
// (which always runs), stream messages the RecvMsg that asked for them.

// Malformed decodes requests as grpc-go's proto codec does, and remembers
// the ones it could not decode for the interceptors. The zero value is not
// usable; use NewMalformed.
type Malformed struct {
	proto   encoding.CodecV2
	pending atomic.Int64 // entries in bad, so that good calls skip the map
	bad     sync.Map     // message pointer → decoding error
}

// NewMalformed returns a codec for grpc.ForceServerCodecV2 with its
// interceptors.
func NewMalformed() *Malformed {
	return &Malformed{proto: encoding.GetCodecV2(proto.Name)}
}

// Codec is the server's codec: grpc-go's proto codec, but a message that
// does not decode is noted rather than failed.
func (m *Malformed) Codec() encoding.CodecV2 { return malformedCodec{m} }

type malformedCodec struct{ m *Malformed }

func (c malformedCodec) Marshal(v any) (mem.BufferSlice, error) { return c.m.proto.Marshal(v) }
func (c malformedCodec) Name() string                           { return c.m.proto.Name() }

func (c malformedCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if err := c.m.proto.Unmarshal(data, v); err != nil {
		if _, loaded := c.m.bad.Swap(v, err); !loaded {
			c.m.pending.Add(1)
		}
	}
	return nil
}

// take reports the decoding error of msg, if it had one, and forgets it.
func (m *Malformed) take(msg any) error {
	if m.pending.Load() == 0 {
		return nil
	}
	err, ok := m.bad.LoadAndDelete(msg)
	if !ok {
		return nil
	}
	m.pending.Add(-1)
	return status.Errorf(codes.InvalidArgument, "request: not a valid protobuf message: %v", err)
}

// UnaryInterceptor answers a request that did not decode with
// InvalidArgument. It must come before any interceptor that may answer
// without calling on (auth), so that every noted message is taken.
func (m *Malformed) UnaryInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := m.take(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// StreamInterceptor does the same for every message a stream receives.
func (m *Malformed) StreamInterceptor(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, malformedStream{ss, m})
}

type malformedStream struct {
	grpc.ServerStream
	m *Malformed
}

func (s malformedStream) RecvMsg(msg any) error {
	if err := s.ServerStream.RecvMsg(msg); err != nil {
		return err
	}
	return s.m.take(msg)
}
