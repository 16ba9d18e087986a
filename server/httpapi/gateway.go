package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

// gatewayMethods is the Allow header of a /v1 path called with the wrong
// method: every rule of proto/sluice/v1/ratelimit_http.yaml is a POST.
const gatewayMethods = http.MethodPost

// gateway serves sluice.v1 as JSON (/v1/...) through grpc-gateway, as a
// JSON client expects: one JSON object per body and nothing after it
// (strictJSON), a body over MaxBodyBytes 413, a wrong method 405 with Allow,
// and none of gRPC's own metadata (content-type) among the headers.
func gateway(ctx context.Context, conn *grpc.ClientConn) (http.Handler, error) {
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, strictJSON{&runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}}),
		runtime.WithIncomingHeaderMatcher(traceHeaders),
		runtime.WithOutgoingHeaderMatcher(sluiceMetadata(runtime.MetadataHeaderPrefix)),
		runtime.WithOutgoingTrailerMatcher(sluiceMetadata(runtime.MetadataTrailerPrefix)),
		runtime.WithRoutingErrorHandler(routingError),
	)
	if err := sluicev1.RegisterRateLimitServiceHandler(ctx, gw, conn); err != nil {
		return nil, fmt.Errorf("register grpc-gateway: %w", err)
	}
	return readBody(gw), nil
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

// routingError answers a path that takes another method with 405 and the
// Allow header (grpc-gateway's default is 501 Unimplemented), and the rest
// as grpc-gateway does.
func routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
	if code != http.StatusMethodNotAllowed {
		runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, code)
		return
	}
	w.Header().Set("Allow", gatewayMethods)
	runtime.HTTPError(ctx, mux, m, w, r, &runtime.HTTPStatusError{
		HTTPStatus: http.StatusMethodNotAllowed,
		Err:        status.Errorf(codes.Unimplemented, "method %s not allowed on %s: use %s", r.Method, r.URL.Path, gatewayMethods),
	})
}

// readBody reads the body, at most MaxBodyBytes of it, before gw sees it,
// and answers a longer one with 413 (grpc-gateway would make any read error
// a 400) in grpc-gateway's error format.
func readBody(gw *runtime.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		if err != nil {
			answer := &runtime.HTTPStatusError{HTTPStatus: http.StatusBadRequest, Err: status.Errorf(codes.InvalidArgument, "request body: %v", err)}
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				answer = &runtime.HTTPStatusError{HTTPStatus: http.StatusRequestEntityTooLarge,
					Err: status.Errorf(codes.ResourceExhausted, "request body: larger than %d bytes", tooBig.Limit)}
			}
			_, out := runtime.MarshalerForRequest(gw, r)
			runtime.HTTPError(r.Context(), gw, out, w, r, answer)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		gw.ServeHTTP(w, r)
	})
}
