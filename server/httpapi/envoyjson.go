package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// envoyJSON serves envoyproxy/ratelimit's /json: a RateLimitRequest as JSON
// in, the RateLimitResponse as JSON out, with HTTP 200 when OK and 429 when
// over limit. Errors answer as upstream's do — a status line as a plain-text
// body ("Bad Request\n") — and name the problem in the X-Sluice-Error
// header: bad input is 400, as upstream; where upstream answers 400 for
// everything, a Redis failure is 503, a call that ran out of time 504, a body
// over MaxBodyBytes 413. Like upstream it takes any method.
func envoyJSON(conn *grpc.ClientConn) http.Handler {
	client := rlsv3.NewRateLimitServiceClient(conn)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			code := http.StatusBadRequest
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				code = http.StatusRequestEntityTooLarge
			}
			writeEnvoyError(w, code, "reading body: "+err.Error())
			return
		}
		var req rlsv3.RateLimitRequest
		if err := protojson.Unmarshal(body, &req); err != nil {
			writeEnvoyError(w, http.StatusBadRequest, "request body: "+err.Error())
			return
		}
		ctx := r.Context()
		for _, v := range r.Header.Values("Authorization") { // for grpcapi.Auth
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", v)
		}
		resp, err := client.ShouldRateLimit(ctx, &req)
		if err != nil {
			st := status.Convert(err)
			writeEnvoyError(w, runtime.HTTPStatusFromCode(st.Code()), st.Message())
			return
		}
		out, err := protojson.Marshal(resp)
		if err != nil {
			writeEnvoyError(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if resp.GetOverallCode() == rlsv3.RateLimitResponse_OVER_LIMIT {
			w.WriteHeader(http.StatusTooManyRequests)
		}
		_, _ = w.Write(out)
	})
}

// ErrorHeader names what went wrong in an error answer of /json, whose body
// is only the status line, as envoyproxy/ratelimit's is.
const ErrorHeader = "X-Sluice-Error"

// writeEnvoyError answers as envoyproxy/ratelimit's http.Error does, with
// msg in ErrorHeader.
func writeEnvoyError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set(ErrorHeader, strings.ToValidUTF8(strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, msg), "?"))
	http.Error(w, http.StatusText(code), code)
}

// writeError answers with a JSON error body naming what went wrong.
func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg})
}
