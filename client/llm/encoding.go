package llm

import (
	"errors"
	"strings"
	"sync"

	"github.com/tiktoken-go/tokenizer"
	"github.com/tiktoken-go/tokenizer/codec"
)

// Encoding names a tokenizer vocabulary, or the byte heuristic.
type Encoding string

// The encodings an estimate can use.
const (
	// ByModel picks the encoding from the request's model field
	// (EncodingForModel).
	ByModel Encoding = ""
	// O200kBase is the encoding of gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o1, o3,
	// o4 and gpt-oss.
	O200kBase Encoding = "o200k_base"
	// Cl100kBase is the encoding of gpt-4, gpt-3.5-turbo and the
	// text-embedding-3 and ada-002 embeddings.
	Cl100kBase Encoding = "cl100k_base"
	// Bytes is the heuristic for models of no known encoding: UTF-8 bytes ÷ 4
	// plus 4 tokens per message.
	Bytes Encoding = "bytes"
)

// ParseEncoding reads an encoding name as a config writes it: "" (by
// model), o200k_base, cl100k_base or bytes.
func ParseEncoding(s string) (Encoding, error) {
	switch e := Encoding(s); e {
	case ByModel, O200kBase, Cl100kBase, Bytes:
		return e, nil
	}
	return ByModel, errors.New(`encoding: want o200k_base, cl100k_base or bytes, got "` + s + `"`)
}

// o200kModels and cl100kModels are model-name families: a model is in one
// when its name is the family or starts with the family and "-". The first
// list is checked first (gpt-4o before gpt-4).
var (
	o200kModels  = []string{"gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "gpt-oss"}
	cl100kModels = []string{"gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada-002"}
)

// EncodingForModel is the encoding OpenAI's models of that name use, or
// Bytes for a name it does not know. Fine-tuned names (ft:gpt-4o-…:org::id),
// a provider prefix (openai/gpt-4o) and dated snapshots count as their base
// model. Azure deployment names are the operator's own: configure the
// encoding of such an API instead.
func EncodingForModel(model string) Encoding {
	m := strings.ToLower(strings.TrimSpace(model))
	m = strings.TrimPrefix(m, "ft:")
	if i := strings.LastIndexByte(m, '/'); i >= 0 {
		m = m[i+1:]
	}
	for _, fams := range []struct {
		names []string
		enc   Encoding
	}{{o200kModels, O200kBase}, {cl100kModels, Cl100kBase}} {
		for _, f := range fams.names {
			if m == f || strings.HasPrefix(m, f+"-") || strings.HasPrefix(m, f+":") {
				return fams.enc
			}
		}
	}
	return Bytes
}

// codecs load each vocabulary on first use: o200k_base takes ~100 ms and
// ~10 MB, so a gateway that never sees a cl100k model never pays for it.
var codecs = map[Encoding]func() tokenizer.Codec{
	O200kBase:  sync.OnceValue(func() tokenizer.Codec { return codec.NewO200kBase() }),
	Cl100kBase: sync.OnceValue(func() tokenizer.Codec { return codec.NewCl100kBase() }),
}

// Warm loads the vocabulary of enc now, so that the first call does not
// wait for it. Bytes and ByModel load nothing.
func Warm(enc Encoding) {
	if c, ok := codecs[enc]; ok {
		c()
	}
}

// tokenCounter counts the tokens of strings in one encoding.
type tokenCounter struct {
	codec tokenizer.Codec // nil: the byte heuristic
}

func counterFor(enc Encoding) tokenCounter {
	if c, ok := codecs[enc]; ok {
		return tokenCounter{codec: c()}
	}
	return tokenCounter{}
}

// exact reports whether the counter tokenizes (not the byte heuristic).
func (t tokenCounter) exact() bool { return t.codec != nil }

// count is the number of tokens of s: the tokenizer's, or bytes ÷ 4 rounded
// up.
func (t tokenCounter) count(s string) uint64 {
	if s == "" {
		return 0
	}
	if t.codec == nil {
		return tokens(len(s))
	}
	n, err := t.codec.Count(s)
	if err != nil { // only in strict UTF-8 mode, which is not used
		return tokens(len(s))
	}
	return uint64(n)
}

// tokens is bytes/4, rounded up.
func tokens(bytes int) uint64 { return uint64(bytes+3) / 4 }
