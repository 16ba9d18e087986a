package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server/jsonapi"
)

// gatewayMethods is the Allow header of a /v1 path called with the wrong
// method: every rule of proto/sluice/v1/ratelimit_http.yaml is a POST.
const gatewayMethods = http.MethodPost

// gateway serves sluice.v1 as JSON (/v1/...) through grpc-gateway, as a
// JSON client expects: one JSON object per body and nothing after it
// (jsonapi.Strict), a body over MaxBodyBytes 413, a wrong method 405 with Allow,
// and none of gRPC's own metadata (content-type) among the headers.
func gateway(ctx context.Context, conn *grpc.ClientConn) (http.Handler, error) {
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, jsonapi.Strict{JSONPb: &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}}),
		runtime.WithIncomingHeaderMatcher(traceHeaders),
		runtime.WithOutgoingHeaderMatcher(sluiceMetadata(runtime.MetadataHeaderPrefix)),
		runtime.WithOutgoingTrailerMatcher(sluiceMetadata(runtime.MetadataTrailerPrefix)),
		runtime.WithRoutingErrorHandler(jsonapi.RoutingErrors(func(string) string { return gatewayMethods })),
	)
	if err := sluicev1.RegisterRateLimitServiceHandler(ctx, gw, conn); err != nil {
		return nil, fmt.Errorf("register grpc-gateway: %w", err)
	}
	return jsonapi.ReadBody(gw, MaxBodyBytes), nil
}

// sluiceMetadata passes on only Sluice's own response metadata
// (x-sluice-..., e.g. grpcapi.FailedOpenHeader), under prefix; gRPC's
// content-type and the like mean nothing to a JSON client.
func sluiceMetadata(prefix string) runtime.HeaderMatcherFunc {
	return func(key string) (string, bool) {
		if strings.HasPrefix(strings.ToLower(key), "x-sluice-") {
			return prefix + key, true
		}
		return "", false
	}
}
