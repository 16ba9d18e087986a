package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	_ "google.golang.org/genproto/googleapis/rpc/errdetails" // BadRequest details in JSON errors
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server/jsonapi"
)

// MaxBodyBytes bounds an admin request body.
const MaxBodyBytes = 1 << 20

// HandlerOptions is what the admin port's HTTP side needs.
type HandlerOptions struct {
	// Conn is a client connection to the in-process gRPC server that
	// serves the Service. (Required)
	Conn *grpc.ClientConn
	// Auth checks every API call. (Required)
	Auth *Auth
	// Console, when not nil, serves GET / and what it loads: static files
	// with nothing secret in them, so without a token. (Optional)
	Console http.Handler
}

// Handler serves the admin API as JSON under /v1/ (GET /v1/config:export as
// YAML) and the console at /.
func Handler(ctx context.Context, o HandlerOptions) (http.Handler, error) {
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, jsonapi.Strict{JSONPb: &runtime.JSONPb{
			MarshalOptions: protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true},
		}}),
		runtime.WithRoutingErrorHandler(jsonapi.RoutingErrors(allowedMethods)),
		runtime.WithIncomingHeaderMatcher(incomingHeaders),
		runtime.WithOutgoingHeaderMatcher(outgoingHeaders),
		runtime.WithMetadata(callerMetadata),
		runtime.WithErrorHandler(errorHandler),
	)
	if err := sluicev1.RegisterAdminServiceHandler(ctx, gw, o.Conn); err != nil {
		return nil, fmt.Errorf("register admin grpc-gateway: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", o.Auth.Require(jsonapi.ReadBody(gw, MaxBodyBytes)))
	mux.Handle("GET /v1/config:export", o.Auth.Require(exportYAML(sluicev1.NewAdminServiceClient(o.Conn))))
	if o.Console != nil {
		mux.Handle("/", o.Console)
	}
	return mux, nil
}

// incomingHeaders passes on only what the Service reads — If-Match — and
// the W3C trace context; in particular nothing a client sends can become the
// caller metadata (whoKey, remoteKey).
func incomingHeaders(key string) (string, bool) {
	switch k := strings.ToLower(key); k {
	case "if-match", "traceparent", "tracestate", "baggage":
		return k, true
	}
	return "", false
}

// outgoingHeaders turns the Service's etag header into the HTTP ETag.
func outgoingHeaders(key string) (string, bool) {
	if strings.EqualFold(key, "etag") {
		return "ETag", true
	}
	return "", false
}

// callerMetadata carries who called, as Auth.Require found, to the Service.
func callerMetadata(_ context.Context, r *http.Request) metadata.MD {
	c, ok := callerFrom(r.Context())
	if !ok {
		return nil
	}
	return metadata.Pairs(whoKey, c.Who, remoteKey, c.Remote)
}

// errorHandler answers as grpc-gateway does — the status as JSON: code,
// message, details — except that FAILED_PRECONDITION, a version that is not
// current, is HTTP 412 Precondition Failed, as for a failed If-Match.
func errorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition {
		runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
		return
	}
	body, merr := m.Marshal(st.Proto())
	if merr != nil {
		runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
		return
	}
	w.Header().Set("Content-Type", m.ContentType(st.Proto()))
	w.WriteHeader(http.StatusPreconditionFailed)
	_, _ = w.Write(body)
}

// exportYAML serves ExportConfig as the YAML itself, ready to be saved as a
// config file (one domain with ?domain=).
func exportYAML(client sluicev1.AdminServiceClient) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := client.ExportConfig(r.Context(), &sluicev1.ExportConfigRequest{Domain: r.URL.Query().Get("domain")})
		if err != nil {
			st := status.Convert(err)
			writeStatus(w, runtime.HTTPStatusFromCode(st.Code()), int(st.Code()), st.Message())
			return
		}
		w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
		_, _ = w.Write([]byte(resp.GetYaml()))
	})
}

// writeStatus answers with an error in grpc-gateway's JSON shape.
func writeStatus(w http.ResponseWriter, httpCode, grpcCode int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpCode)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": grpcCode, "message": msg, "details": []any{}})
}
