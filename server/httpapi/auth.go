package httpapi

import (
	"net/http"

	"github.com/sluice-rl/sluice/server/grpcapi"
)

// RequireToken wraps the JSON API so that every call must carry
// "Authorization: Bearer <token>"; without it the answer is 401. An empty
// token requires nothing.
func RequireToken(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !grpcapi.ValidBearer(r.Header.Values("Authorization"), token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
			writeError(w, http.StatusUnauthorized, "authorization: a valid bearer token is required")
			return
		}
		h.ServeHTTP(w, r)
	})
}
