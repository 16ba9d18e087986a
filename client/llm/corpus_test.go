package llm

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// corpus is testdata/corpus: OpenAI-style request bodies and, in
// counts.json, their prompt tokens as OpenAI's own tiktoken counts them in the
// cookbook's chat format (made by count.cjs beside them).
type corpus struct {
	names  []string
	bodies map[string][]byte
	actual map[string]map[Encoding]uint64
}

func loadCorpus(t testing.TB) *corpus {
	t.Helper()
	dir := filepath.Join("testdata", "corpus")
	raw, err := os.ReadFile(filepath.Join(dir, "counts.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := &corpus{bodies: map[string][]byte{}}
	if err := json.Unmarshal(raw, &c.actual); err != nil {
		t.Fatal(err)
	}
	for name := range c.actual {
		body, err := os.ReadFile(filepath.Join(dir, name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		c.bodies[name] = body
		c.names = append(c.names, name)
	}
	slices.Sort(c.names)
	if len(c.names) < 15 {
		t.Fatalf("corpus of %d texts", len(c.names))
	}
	return c
}

// TestEstimateMatchesTiktokenOnTheCorpus is the ±5% target of the estimate
// on every corpus text, for both encodings (the Go tokenizer and walk of the
// body agree exactly with tiktoken and count.cjs today).
func TestEstimateMatchesTiktokenOnTheCorpus(t *testing.T) {
	c := loadCorpus(t)
	for _, name := range c.names {
		for _, enc := range []Encoding{O200kBase, Cl100kBase} {
			want := c.actual[name][enc]
			got := Estimate(c.bodies[name], enc, 0).PromptTokens
			if r := float64(got) / float64(want); math.Abs(r-1) > 0.05 {
				t.Errorf("%s, %s: estimate %d, tiktoken %d (%.2f)", name, enc, got, want, r)
			}
		}
	}
}

// TestEstimateMatchesTheAPIOnTheCookbookExamples checks the chat format
// against the only real backend counts this repository can know offline:
// those OpenAI's cookbook printed from the API for its two examples (gpt-4o
// 124 and 101, gpt-4 129 and 105).
func TestEstimateMatchesTheAPIOnTheCookbookExamples(t *testing.T) {
	c := loadCorpus(t)
	for _, tc := range []struct {
		name string
		enc  Encoding
		api  uint64
	}{
		{"cookbook_messages", O200kBase, 124}, {"cookbook_messages", Cl100kBase, 129},
		{"cookbook_tools", O200kBase, 101}, {"cookbook_tools", Cl100kBase, 105},
	} {
		if got := Estimate(c.bodies[tc.name], tc.enc, 0).PromptTokens; got != tc.api {
			t.Errorf("%s, %s: %d, the API counted %d", tc.name, tc.enc, got, tc.api)
		}
	}
	// By model: the body names gpt-4o.
	if got := Estimate(c.bodies["cookbook_messages"], ByModel, 0).PromptTokens; got != 124 {
		t.Errorf("by model: %d, want 124", got)
	}
}

// TestCorpusTable prints the table of client/llm/README.md (go test -run
// TestCorpusTable -v ./client/llm/).
func TestCorpusTable(t *testing.T) {
	c := loadCorpus(t)
	var b strings.Builder
	b.WriteString("| text | body bytes | o200k_base | estimate ÷ actual | byte heuristic ÷ actual | cl100k_base | estimate ÷ actual | byte heuristic ÷ actual |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, name := range c.names {
		body := c.bodies[name]
		old := Estimate(body, Bytes, 0).PromptTokens
		fmt.Fprintf(&b, "| %s | %d", name, len(body))
		for _, enc := range []Encoding{O200kBase, Cl100kBase} {
			want := float64(c.actual[name][enc])
			got := Estimate(body, enc, 0).PromptTokens
			fmt.Fprintf(&b, " | %.0f | %.2f | %.2f", want, float64(got)/want, float64(old)/want)
		}
		b.WriteString(" |\n")
	}
	t.Log("\n" + b.String())
}
