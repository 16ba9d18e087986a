package server_test

import (
	"context"
	"strings"
	"testing"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-rl/sluice/internal/redistest"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

// rawCodec sends and receives the bytes it is given, as they are: a client
// that speaks gRPC but sends whatever it likes as the message.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.([]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

func TestMalformedProtobufIsInvalidArgumentAndChargesNothing(t *testing.T) {
	rs := redistest.New(t)
	s := startSluice(t, writeConfig(t, apimConfig), rs.URL())
	conn := dial(t, s)
	ctx := context.Background()
	valid, err := proto.Marshal(&sluicev1.ShouldRateLimitRequest{Domain: "apim", Descriptors: []*sluicev1.Descriptor{{Entries: []*sluicev1.Entry{
		{Key: "api", Value: "PizzaShackAPI:1.0.0"}, {Key: "environment", Value: "sandbox"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	// A whole request with a truncated field after it: decoded as far as it
	// goes, it would be a call that charges.
	truncated := append(append([]byte(nil), valid...), 0x0a, 0x05, 'a')
	for _, c := range []struct {
		method string
		body   []byte
	}{
		{"/sluice.v1.RateLimitService/ShouldRateLimit", truncated},
		{"/sluice.v1.RateLimitService/ShouldRateLimit", []byte{0xff, 0xff, 0xff}},
		{"/sluice.v1.RateLimitService/GetUsage", truncated},
		{"/sluice.v1.RateLimitService/ReportUsage", []byte{0x12, 0x80}},
		{"/" + rlsv3.RateLimitService_ServiceDesc.ServiceName + "/ShouldRateLimit", []byte{0x12, 0x7f, 0x01}},
		{healthpb.Health_Check_FullMethodName, []byte{0x0a, 0x10, 'x'}},
	} {
		var out []byte
		err := conn.Invoke(ctx, c.method, c.body, &out, grpc.ForceCodec(rawCodec{}))
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "request") {
			t.Errorf("%s with % x: %v, want InvalidArgument naming the request", c.method, c.body, err)
		}
	}
	// The health service's stream (Watch) reads its request the same way.
	stream, err := conn.NewStream(ctx, &healthpb.Health_ServiceDesc.Streams[0], healthpb.Health_Watch_FullMethodName, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.SendMsg([]byte{0x0a, 0x10, 'x'}); err != nil {
		t.Fatal(err)
	}
	_ = stream.CloseSend()
	var out []byte
	if err := stream.RecvMsg(&out); status.Code(err) != codes.InvalidArgument {
		t.Errorf("health Watch with a malformed request: %v, want InvalidArgument", err)
	}
	if used := sandboxUsed(t, s); used != "0" {
		t.Errorf("malformed requests charged: used %v, want 0", used)
	}
	// A well-formed request on the same connection is answered as ever.
	var ok []byte
	if err := conn.Invoke(ctx, "/sluice.v1.RateLimitService/ShouldRateLimit", valid, &ok, grpc.ForceCodec(rawCodec{})); err != nil {
		t.Errorf("a valid request after the malformed ones: %v", err)
	}
	if used := sandboxUsed(t, s); used != "1" {
		t.Errorf("after one valid call: used %v, want 1", used)
	}
}
