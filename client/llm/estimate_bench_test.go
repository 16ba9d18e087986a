package llm

import (
	"encoding/json"
	"strings"
	"testing"
)

// benchPrompt is a chat request whose one user message is size bytes of
// English prose.
func benchPrompt(size int) []byte {
	const p = "The sluice gate controls the flow of water from the reservoir into the channel; operators open it a little at a time, " +
		"watching the level downstream, because a sudden surge would flood the fields below. In 1897 the engineers rebuilt it. "
	text := strings.Repeat(p, size/len(p)+1)[:size]
	body, _ := json.Marshal(map[string]any{"model": "gpt-4o", "messages": []map[string]string{{"role": "user", "content": text}}})
	return body
}

// BenchmarkEstimate is the cost of the estimate every ai call pays before
// the check: client/llm/README.md quotes it.
func BenchmarkEstimate(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1KB", 1 << 10}, {"100KB", 100 << 10}} {
		body := benchPrompt(size.n)
		for _, enc := range []Encoding{O200kBase, Cl100kBase, Bytes} {
			Warm(enc)
			b.Run(size.name+"/"+string(enc), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size.n))
				for b.Loop() {
					Estimate(body, enc, 0)
				}
			})
		}
	}
}
