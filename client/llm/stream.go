package llm

import (
	"bytes"
	"encoding/json"
)

// IncludeStreamUsage returns body with stream_options.include_usage set to
// true when body is a streaming Chat Completions request ("stream": true and
// "messages"), so that the backend sends its usage in a final chunk. Any
// other body is returned unchanged, as is a body that asks for it already.
func IncludeStreamUsage(body []byte) ([]byte, bool) {
	var head struct {
		Stream        bool            `json:"stream"`
		Messages      json.RawMessage `json:"messages"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	if json.Unmarshal(body, &head) != nil || !head.Stream || len(head.Messages) == 0 {
		return body, false
	}
	if head.StreamOptions != nil && head.StreamOptions.IncludeUsage {
		return body, false
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil {
		return body, false
	}
	opts := map[string]json.RawMessage{}
	if raw, ok := fields["stream_options"]; ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		if json.Unmarshal(raw, &opts) != nil {
			return body, false
		}
	}
	opts["include_usage"] = json.RawMessage("true")
	raw, err := marshal(opts)
	if err != nil {
		return body, false
	}
	fields["stream_options"] = raw
	out, err := marshal(fields)
	if err != nil {
		return body, false
	}
	return out, true
}

// marshal encodes v without escaping <, > and &, so text passes unchanged.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
