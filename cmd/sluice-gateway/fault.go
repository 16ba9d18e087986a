package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/sluice-rl/sluice/client"
)

// fault is an API manager's error body: {"fault":{code, message, description}}.
type fault struct {
	Code        int    `json:"code"`
	Message     string `json:"message"`
	Description string `json:"description"`
}

// The faults the gateway answers itself (the 900801 over-limit fault comes
// from Sluice, the 900810 unavailable fault from the client library).
var (
	faultMissingKey  = fault{900902, "Missing Credentials", "Invalid Credentials. Make sure your API invocation call has a header: 'Authorization : Bearer ACCESS_TOKEN' or 'apikey: API_KEY'"}
	faultInvalidKey  = fault{900901, "Invalid Credentials", "Invalid Credentials. Make sure you have provided the correct security credentials"}
	faultNoResource  = fault{404, "Not Found", "No matching resource found for given API Request"}
	faultNoBackend   = fault{101503, "Runtime Error", "Error connecting to the back end"}
	faultNoEndpoint  = fault{900900, "Unclassified Authentication Failure", "The API has no endpoint for this key's environment"}
	faultLimit       = fault{900801, "API Limit Reached", "API not accepting requests"}
	faultUnavailable = fault{900810, "Rate Limit Check Unavailable", "The API's limits could not be checked; the call was not sent to the backend"}
)

// The error formats of an API.
const (
	formatWSO2   = "wso2"
	formatOpenAI = "openai"
)

// errorWriter answers errors in one API's format.
type errorWriter struct {
	format        string
	refusalStatus int
}

// openAIError is the error body OpenAI's API answers and its SDKs parse.
type openAIError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// write answers status with f in the writer's format; typ is the openai
// format's error type.
func (e errorWriter) write(w http.ResponseWriter, status int, f fault, typ string) {
	if e.format == formatOpenAI {
		e.writeOpenAI(w, status, openAIError{Message: f.Message + ": " + f.Description, Type: typ, Code: strconv.Itoa(f.Code)})
		return
	}
	writeFault(w, status, f)
}

func (e errorWriter) writeOpenAI(w http.ResponseWriter, status int, oe openAIError) {
	body, _ := json.Marshal(struct {
		Error openAIError `json:"error"`
	}{oe})
	writeBody(w, status, body)
}

// refuse answers a call Sluice refused, or one refused because Sluice did
// not answer (FailedClosed): the decision's headers are set already. Over a
// limit the status is the API's refusal status and the body Sluice's (wso2)
// or an OpenAI rate-limit error naming the limit; an outage is always 503
// with the unavailable fault, never the over-limit one.
func (e errorWriter) refuse(w http.ResponseWriter, _ *http.Request, dec client.Decision) {
	if dec.FailedClosed {
		if e.format == formatOpenAI {
			e.writeOpenAI(w, http.StatusServiceUnavailable, openAIError{Type: "server_error", Code: strconv.Itoa(faultUnavailable.Code),
				Message: "Rate Limit Check Unavailable: the API's limits could not be checked, so the call was not sent to the backend; retry shortly"})
			return
		}
		writeBody(w, http.StatusServiceUnavailable, []byte(dec.Body))
		return
	}
	if e.format == formatOpenAI {
		e.writeOpenAI(w, e.refusalStatus, openAIError{Type: limitType(dec.Limit.Kind), Code: strconv.Itoa(faultLimit.Code), Message: limitMessage(dec)})
		return
	}
	writeBody(w, e.refusalStatus, []byte(dec.Body))
}

// limitType is the OpenAI error type of a refusal: "tokens" or "requests",
// as OpenAI's own rate-limit errors say.
func limitType(k client.Kind) string {
	if k == client.Requests || k == client.KindUnknown {
		return "requests"
	}
	return "tokens"
}

// limitMessage says which limit refused and when to retry, e.g. "API Limit
// Reached: API not accepting requests (2000 total_tokens per 1m0s; retry
// after 11s)", or that retrying will not help.
func limitMessage(dec client.Decision) string {
	msg := faultLimit.Message + ": " + faultLimit.Description
	if dec.Limit.Amount == 0 {
		return msg
	}
	if dec.NeverFits {
		return fmt.Sprintf("%s (%d %s per %v; this call needs more than the whole limit: retrying will not help)",
			msg, dec.Limit.Amount, dec.Limit.Kind, dec.Limit.Window)
	}
	return fmt.Sprintf("%s (%d %s per %v; retry after %v)", msg, dec.Limit.Amount, dec.Limit.Kind, dec.Limit.Window,
		((dec.RetryAfter+time.Second-1)/time.Second)*time.Second)
}

// writeFault answers code with f as JSON, in the wso2 format.
func writeFault(w http.ResponseWriter, code int, f fault) {
	body, _ := json.Marshal(struct {
		Fault fault `json:"fault"`
	}{f})
	writeBody(w, code, body)
}

func writeBody(w http.ResponseWriter, code int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if code == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="sluice-gateway"`)
	}
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
