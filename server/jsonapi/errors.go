package jsonapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ReadBody reads the body, at most max bytes of it, before gw sees it, and
// answers a longer one with 413 (grpc-gateway would make any read error a
// 400) in grpc-gateway's error format, through gw's error handler.
func ReadBody(gw *runtime.ServeMux, max int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
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

// RoutingErrors answers a path that takes another method with 405 and an
// Allow header of allow(path) (grpc-gateway's default is 501
// Unimplemented), and the rest as grpc-gateway does.
func RoutingErrors(allow func(path string) string) runtime.RoutingErrorHandlerFunc {
	return func(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
		if code != http.StatusMethodNotAllowed {
			runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, code)
			return
		}
		methods := allow(r.URL.Path)
		w.Header().Set("Allow", methods)
		runtime.HTTPError(ctx, mux, m, w, r, &runtime.HTTPStatusError{
			HTTPStatus: http.StatusMethodNotAllowed,
			Err:        status.Errorf(codes.Unimplemented, "method %s not allowed on %s: use %s", r.Method, r.URL.Path, methods),
		})
	}
}
