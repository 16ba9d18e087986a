package llm

import (
	"encoding/json"
	"strings"
)

// maxProduced bounds the text kept to count what a backend produced; past
// it, text counts bytes ÷ 4.
const maxProduced = 4 << 20

// produced collects the text a backend generated — in a JSON answer or in
// the events of a stream — to count the completion tokens of an answer that
// states no usage (a stream cut off, a backend that never reports usage).
type produced struct {
	text  strings.Builder
	extra int // bytes past maxProduced
}

func (p *produced) add(s string) {
	if room := maxProduced - p.text.Len(); len(s) > room {
		p.extra += len(s) - max(room, 0)
		s = s[:max(room, 0)]
	}
	p.text.WriteString(s)
}

// tokens counts what was collected in the call's encoding.
func (p *produced) tokens(enc Encoding) uint64 {
	return counterFor(enc).count(p.text.String()) + tokens(p.extra)
}

// generated is the part of an answer or stream event that holds generated
// text, in any of OpenAI's APIs.
type generated struct {
	Choices []struct {
		Delta   generatedMessage `json:"delta"`   // Chat Completions stream
		Message generatedMessage `json:"message"` // Chat Completions
		Text    string           `json:"text"`    // Completions
	} `json:"choices"`
	Type   string `json:"type"`  // Responses API stream event
	Delta  any    `json:"delta"` // its text, for the delta events below
	Output []struct {
		Type      string `json:"type"`
		Arguments string `json:"arguments"`
		Name      string `json:"name"`
		Content   []struct {
			Text    string `json:"text"`
			Refusal string `json:"refusal"`
		} `json:"content"`
	} `json:"output"` // Responses API
}

type generatedMessage struct {
	Content   any    `json:"content"`
	Refusal   string `json:"refusal"`
	ToolCalls []struct {
		Function functionCall `json:"function"`
	} `json:"tool_calls"`
}

// responsesTextEvents are the Responses API stream events whose delta is
// generated text.
var responsesTextEvents = map[string]bool{
	"response.output_text.delta":             true,
	"response.refusal.delta":                 true,
	"response.function_call_arguments.delta": true,
}

// addGenerated adds the generated text of one JSON answer or stream event.
func (p *produced) addGenerated(data []byte) {
	var g generated
	if json.Unmarshal(data, &g) != nil {
		return
	}
	for _, c := range g.Choices {
		for _, m := range []*generatedMessage{&c.Delta, &c.Message} {
			if s, ok := m.Content.(string); ok {
				p.add(s)
			}
			p.add(m.Refusal)
			for _, call := range m.ToolCalls {
				p.add(call.Function.Name)
				p.add(call.Function.Arguments)
			}
		}
		p.add(c.Text)
	}
	if s, ok := g.Delta.(string); ok && responsesTextEvents[g.Type] {
		p.add(s)
	}
	for _, o := range g.Output {
		p.add(o.Name)
		p.add(o.Arguments)
		for _, c := range o.Content {
			p.add(c.Text)
			p.add(c.Refusal)
		}
	}
}
