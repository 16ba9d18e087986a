package httpapi

import (
	"net/http"

	"github.com/sluice-rl/sluice/server/grpcapi"
)

// authenticate applies the data plane's policy (grpcapi.Auth) to the JSON
// API: a call without valid credentials gets 401 at once; the others go on
// to the in-process gRPC call with their Authorization header, where the
// same policy decides what they may do (a decide-only caller's refund is 403
// there). The in-process call carries no certificate, so a caller whose
// client certificate this port verified is vouched for with the full token.
// A policy with no token requires nothing.
func authenticate(auth grpcapi.Auth, h http.Handler) http.Handler {
	if !auth.Enabled() {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		verified := r.TLS != nil && len(r.TLS.VerifiedChains) > 0
		if auth.Access(r.Header.Values("Authorization"), verified) == grpcapi.NoAccess {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
			writeError(w, http.StatusUnauthorized, "authorization: a valid bearer token (or a verified client certificate) is required")
			return
		}
		if verified {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+auth.Token)
		}
		h.ServeHTTP(w, r)
	})
}
