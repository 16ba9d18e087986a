package llm

import (
	"encoding/json"
	"strings"
)

// Tool definitions are priced with the rule of OpenAI's cookbook ("How to
// count tokens with tiktoken", num_tokens_for_tools), which it verified
// against the API for gpt-4o, gpt-4o-mini, gpt-4 and gpt-3.5-turbo: per
// function funcInit plus the tokens of "name:description" (one trailing
// period dropped); when it has properties, propInit, and per property
// propKey plus the tokens of "name:type:description", plus enumInit and, per
// enum value, enumItem and its tokens; funcEnd once for all functions.
// Nested object properties are priced the same way, one level down
// (Sluice's extension; the cookbook stops at the top level).
type toolCosts struct{ funcInit, propInit, propKey, enumInit, enumItem, funcEnd int64 }

var (
	o200kTools  = toolCosts{funcInit: 7, propInit: 3, propKey: 3, enumInit: -3, enumItem: 3, funcEnd: 12}
	cl100kTools = toolCosts{funcInit: 10, propInit: 3, propKey: 3, enumInit: -3, enumItem: 3, funcEnd: 12}
)

// tool is a tool definition in any of the shapes OpenAI's APIs take: Chat
// Completions ({type, function: {...}}), Responses ({type, name, ...}) or
// the legacy functions list ({name, ...}).
type tool struct {
	Type     string    `json:"type"`
	Function *function `json:"function"`
	function
}

type function struct {
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Parameters  *jsonSchema `json:"parameters"`
}

type jsonSchema struct {
	Type        json.RawMessage        `json:"type"`
	Description string                 `json:"description"`
	Enum        []json.RawMessage      `json:"enum"`
	Properties  map[string]*jsonSchema `json:"properties"`
}

// maxSchemaDepth bounds how deep nested properties are priced.
const maxSchemaDepth = 4

// toolsTokens prices the function definitions of a request; other tool types
// (web search, file search, …) are not priced: their cost shows in the
// backend's report.
func toolsTokens(raw []json.RawMessage, tc tokenCounter, enc Encoding) uint64 {
	costs := o200kTools
	if enc == Cl100kBase {
		costs = cl100kTools
	}
	var n int64
	functions := 0
	for _, r := range raw {
		var t tool
		if json.Unmarshal(r, &t) != nil {
			continue
		}
		f := &t.function
		if t.Function != nil {
			f = t.Function
		}
		if f.Name == "" || (t.Type != "" && t.Type != "function") {
			continue
		}
		functions++
		n += costs.funcInit + int64(tc.count(f.Name+":"+trimPeriod(f.Description)))
		if f.Parameters != nil {
			n += propertiesTokens(f.Parameters.Properties, tc, costs, 0)
		}
	}
	if functions == 0 {
		return 0
	}
	n += costs.funcEnd
	return uint64(max(n, 0))
}

func propertiesTokens(props map[string]*jsonSchema, tc tokenCounter, costs toolCosts, depth int) int64 {
	if len(props) == 0 || depth >= maxSchemaDepth {
		return 0
	}
	n := costs.propInit
	for name, p := range props {
		if p == nil {
			continue
		}
		n += costs.propKey
		if len(p.Enum) > 0 {
			n += costs.enumInit
			for _, e := range p.Enum {
				n += costs.enumItem + int64(tc.count(jsonText(e)))
			}
		}
		n += int64(tc.count(name + ":" + jsonText(p.Type) + ":" + trimPeriod(p.Description)))
		n += propertiesTokens(p.Properties, tc, costs, depth+1)
	}
	return n
}

// jsonText is a JSON string's value, or the raw JSON of anything else
// (["string","null"], 3).
func jsonText(raw json.RawMessage) string {
	var s string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return strings.TrimSpace(string(raw))
}

// trimPeriod drops one trailing period, as OpenAI's tool format does.
func trimPeriod(s string) string { return strings.TrimSuffix(s, ".") }
