package main

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// fault is an API manager's error body: {"fault":{code, message, description}}.
type fault struct {
	Code        int    `json:"code"`
	Message     string `json:"message"`
	Description string `json:"description"`
}

// The faults the gateway answers itself (the 900801 over-limit fault comes
// from Sluice).
var (
	faultMissingKey = fault{900902, "Missing Credentials", "Invalid Credentials. Make sure your API invocation call has a header: 'Authorization : Bearer ACCESS_TOKEN' or 'apikey: API_KEY'"}
	faultInvalidKey = fault{900901, "Invalid Credentials", "Invalid Credentials. Make sure you have provided the correct security credentials"}
	faultNoResource = fault{404, "Not Found", "No matching resource found for given API Request"}
	faultNoBackend  = fault{101503, "Runtime Error", "Error connecting to the back end"}
	faultNoEndpoint = fault{900900, "Unclassified Authentication Failure", "The API has no endpoint for this key's environment"}
)

// writeFault answers code with f as JSON.
func writeFault(w http.ResponseWriter, code int, f fault) {
	body, _ := json.Marshal(struct {
		Fault fault `json:"fault"`
	}{f})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if code == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="sluice-gateway"`)
	}
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
