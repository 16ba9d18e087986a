package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func limitConfig(domain string, requests int) string {
	return "domain: " + domain + "\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, requests_per_unit: " + itoa(requests) + "}\n"
}

func itoa(i int) string { return strconv.Itoa(i) }

// requestsOf returns the first limit's count for [k=v] in domain, or -1.
func requestsOf(s *Set, domain string) int {
	d, ok := s.Domain(domain)
	if !ok {
		return -1
	}
	r, ok := d.Match([]Entry{{"k", "v"}})
	if !ok || len(r.Limits) == 0 {
		return -1
	}
	return int(r.Limits[0].Requests)
}

func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), limitConfig("a", 1))
	write(t, filepath.Join(dir, "b.yml"), limitConfig("b", 2))
	write(t, filepath.Join(dir, ".hidden.yaml"), "not: valid")
	write(t, filepath.Join(dir, "notes.txt"), "not yaml")
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Domains(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("domains = %v", got)
	}
	if requestsOf(s, "a") != 1 || requestsOf(s, "b") != 2 {
		t.Errorf("limits: a=%d b=%d", requestsOf(s, "a"), requestsOf(s, "b"))
	}
	if d, _ := s.Domain("b"); d.File != filepath.Join(dir, "b.yml") {
		t.Errorf("file = %q", d.File)
	}
	if _, ok := s.Domain("c"); ok {
		t.Error("found domain c")
	}

	s, err = Load(filepath.Join(dir, "a.yaml"))
	if err != nil || !reflect.DeepEqual(s.Domains(), []string{"a"}) {
		t.Errorf("Load(file) = %v, %v", s.Domains(), err)
	}
}

// kubernetesLayout builds what a ConfigMap volume looks like: files are symlinks into ..data,
// which is a symlink to a timestamped directory. It returns a function that swaps in new
// contents the way the kubelet does.
func kubernetesLayout(t *testing.T, files map[string]string) (dir string, swap func(map[string]string)) {
	t.Helper()
	dir = t.TempDir()
	n := 0
	swap = func(files map[string]string) {
		n++
		ts := "..2025_01_0" + itoa(n) + "_00_00_00.00000000" + itoa(n)
		if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range files {
			write(t, filepath.Join(dir, ts, name), data)
			link := filepath.Join(dir, name)
			if _, err := os.Lstat(link); err != nil {
				if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
					t.Fatal(err)
				}
			}
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(ts, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	swap(files)
	return dir, swap
}

func TestLoadKubernetesLayout(t *testing.T) {
	dir, _ := kubernetesLayout(t, map[string]string{"a.yaml": limitConfig("a", 1), "b.yaml": limitConfig("b", 2)})
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Domains(), []string{"a", "b"}) || requestsOf(s, "b") != 2 {
		t.Errorf("domains = %v", s.Domains())
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), limitConfig("same", 1))
	write(t, filepath.Join(dir, "b.yaml"), "\n"+limitConfig("same", 2))
	write(t, filepath.Join(dir, "c.yaml"), "domain: c\nbogus: 1\n")
	write(t, filepath.Join(dir, "d.yaml"), "")
	_, err := Load(dir)
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("err = %v", err)
	}
	want := []string{
		filepath.Join(dir, "b.yaml") + `:2: domain: duplicate domain "same" (also in ` + filepath.Join(dir, "a.yaml") + ":1; to merge files of one domain, as MERGE_DOMAIN_CONFIG=true does in envoyproxy/ratelimit, use --merge-domain-config)",
		filepath.Join(dir, "c.yaml") + `:2: bogus: unknown key`,
		filepath.Join(dir, "d.yaml") + `: empty file: a config needs at least a domain`,
	}
	if len(ps) != len(want) {
		t.Fatalf("problems:\n%v", err)
	}
	for i, w := range want {
		if got := ps[i].Error(); got != w {
			t.Errorf("problem %d = %q\nwant        %q", i, got, w)
		}
	}

	empty := t.TempDir()
	if _, err := Load(empty); err == nil || !strings.Contains(err.Error(), "no *.yaml or *.yml files") {
		t.Errorf("empty dir: %v", err)
	}
	if _, err := Load(filepath.Join(empty, "missing")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing path: %v", err)
	}
	if err := os.Symlink("nowhere.yaml", filepath.Join(empty, "dangling.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(empty); err == nil || !strings.Contains(err.Error(), "dangling.yaml: cannot read") {
		t.Errorf("dangling symlink: %v", err)
	}
}

func TestExamplesLoad(t *testing.T) {
	dir := filepath.Join("..", "..", "deploy", "examples")
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ws := s.Warnings(); len(ws) != 0 {
		t.Errorf("warnings:\n%v", ws)
	}
	if !reflect.DeepEqual(s.Domains(), []string{"apim", "edge_proxy"}) {
		t.Fatalf("domains = %v", s.Domains())
	}
	apim, _ := s.Domain("apim")
	if !strings.Contains(apim.OverLimitBody, "900801") || len(apim.OverLimitHeaders) != 1 {
		t.Errorf("over limit response = %q %v", apim.OverLimitBody, apim.OverLimitHeaders)
	}
	for _, c := range []struct {
		api, env string
		ids      string
	}{
		{"PizzaShackAPI:1.0.0", "production", "r:1s:10=100"},
		{"PizzaShackAPI:1.0.0", "sandbox", "r:1s:10=10"},
		{"WeatherAPI:2.0.0", "production", "r:10s:10=50 r:1h:60=10000"},
		{"WeatherAPI:2.0.0", "sandbox", "r:10s:10=5"},
	} {
		r, ok := apim.Match([]Entry{{"api", c.api}, {"environment", c.env}})
		if !ok {
			t.Errorf("%s %s: no match", c.api, c.env)
			continue
		}
		var ids []string
		for _, l := range r.Limits {
			ids = append(ids, l.ID+"="+itoa(int(l.Requests)))
		}
		if got := strings.Join(ids, " "); got != c.ids {
			t.Errorf("%s %s: limits %s, want %s", c.api, c.env, got, c.ids)
		}
	}
	edge, _ := s.Domain("edge_proxy")
	if r, ok := edge.Match([]Entry{{"download", "/files/a.pdf"}}); !ok || r.Path[0].Value != "/files/*" {
		t.Errorf("share_threshold: %+v %v", r, ok)
	}
}
