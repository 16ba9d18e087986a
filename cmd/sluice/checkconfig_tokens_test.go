package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestCheckConfigRefusesATokenPartAboveItsTotal(t *testing.T) {
	path := tempFile(t, "ai.yaml", "domain: ai\ndescriptors:\n  - key: api\n    token_limit: {window: 1m, total_tokens: 1000, prompt_tokens: 600, completion_tokens: 1500}\n")
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"check-config", path}, noEnv, &out, &errOut)
	if err == nil {
		t.Fatalf("a completion_tokens limit above its total_tokens passed: %s", out.String())
	}
	if want := path + ":4: descriptors[0].token_limit.completion_tokens: 1500 is above total_tokens 1000"; !strings.Contains(errOut.String(), want) {
		t.Errorf("check-config said %q, want %q", errOut.String(), want)
	}
	if strings.Contains(errOut.String(), "prompt_tokens") {
		t.Errorf("prompt_tokens 600 of 1000 is fine, but check-config named it: %q", errOut.String())
	}
}
