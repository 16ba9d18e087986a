package server_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/internal/redistest"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

const capTemplate = `
domain: apim
descriptors:
  - key: api
    value: PizzaShackAPI:1.0.0
    descriptors:
      - key: environment
        value: sandbox
        rate_limit: {unit: minute, requests_per_unit: %s}
`

func capConfig(n string) []byte { return []byte(replacePct(capTemplate, n)) }

func replacePct(s, v string) string {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '%' && s[i+1] == 's' {
			return s[:i] + v + s[i+2:]
		}
	}
	return s
}

// waitForCap polls GetUsage until the sandbox limit reads want.
func waitForCap(t *testing.T, client sluicev1.RateLimitServiceClient, want uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := client.GetUsage(context.Background(), &sluicev1.GetUsageRequest{Domain: "apim", Descriptors: sandboxRequest().Descriptors})
		if err == nil && len(resp.Descriptors[0].Limits) == 1 && resp.Descriptors[0].Limits[0].Limit.RequestsPerUnit == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cap never became %d: %v %v", want, resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConfigReloadsOnEditRenameAndSymlinkSwap(t *testing.T) {
	rs := redistest.New(t)
	dir := t.TempDir()
	// Kubernetes' ConfigMap layout: the file is a symlink into ..data, which
	// is a symlink to a timestamped directory that is swapped atomically.
	mustWrite := func(path string, data []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite(filepath.Join(dir, "..v1", "limits.yaml"), capConfig("10"))
	if err := os.Symlink("..v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "limits.yaml"), filepath.Join(dir, "limits.yaml")); err != nil {
		t.Fatal(err)
	}
	s := startSluice(t, dir, rs.URL())
	client := sluicev1.NewRateLimitServiceClient(dial(t, s))
	waitForCap(t, client, 10)

	// Symlink swap, as kubelet does it.
	mustWrite(filepath.Join(dir, "..v2", "limits.yaml"), capConfig("20"))
	if err := os.Symlink("..v2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	waitForCap(t, client, 20)

	// A broken edit keeps the old config, and calls go on being answered.
	mustWrite(filepath.Join(dir, "..v3", "limits.yaml"), []byte("domain: apim\ndescriptors:\n  - key: api\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n"))
	if err := os.Symlink("..v3", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	waitForCap(t, client, 20)
	if resp, err := client.ShouldRateLimit(context.Background(), sandboxRequest()); err != nil || resp.OverallCode != sluicev1.Code_OK {
		t.Fatalf("call after a broken edit: %v %v", resp, err)
	}
}

func TestConfigReloadsOnEditorRenameReplace(t *testing.T) {
	rs := redistest.New(t)
	path := filepath.Join(t.TempDir(), "limits.yaml")
	if err := os.WriteFile(path, capConfig("10"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startSluice(t, path, rs.URL())
	client := sluicev1.NewRateLimitServiceClient(dial(t, s))
	waitForCap(t, client, 10)
	tmp := path + ".swp"
	if err := os.WriteFile(tmp, capConfig("30"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitForCap(t, client, 30)
	if err := os.WriteFile(path, capConfig("40"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitForCap(t, client, 40)
}
