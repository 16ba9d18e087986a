// Package jsonapi holds what every grpc-gateway JSON API of Sluice (the
// data plane's /v1 and the admin port's /v1) answers alike, as a JSON
// client expects: one JSON value per body and nothing after it (Strict),
// a body over the limit 413 (ReadBody), a wrong method 405 with Allow
// (RoutingErrors).
package jsonapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
)

// Strict is grpc-gateway's JSONPb that takes one JSON value per body and
// nothing after it but white space: grpc-gateway's own decoder reads the
// first value and ignores the rest, so `{...} this is not json` was a
// call. An empty body stays io.EOF, which grpc-gateway takes as an empty
// request (whose missing fields are then named where they are checked).
type Strict struct {
	*runtime.JSONPb
}

// NewDecoder reads the whole body (bounded by ReadBody before it gets
// here) and decodes it as exactly one JSON value.
func (m Strict) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		body, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("request body: %w", err)
		}
		return m.decode(body, v)
	})
}

// decode unmarshals body, one JSON value and white space, into v.
func (m Strict) decode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return io.EOF
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var value json.RawMessage
	if err := dec.Decode(&value); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	end := int(dec.InputOffset())
	if rest := bytes.TrimLeft(body[end:], " \t\r\n"); len(rest) > 0 {
		return fmt.Errorf("request body: unexpected data after the JSON object, at byte %d: %q", len(body)-len(rest), rest[:min(len(rest), 16)])
	}
	if err := m.Unmarshal(value, v); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	return nil
}
