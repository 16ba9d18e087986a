package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// upstream is where envoyproxy/ratelimit's own config files live, copied as test data
// (see its README.md). These tests carry over the expectations of upstream's
// test/config/config_test.go: what loads, what is refused, and what each lookup finds.
var upstream = filepath.Join("..", "testdata", "envoyproxy-ratelimit")

func loadUpstream(t *testing.T, o LoadOptions, path string) *Set {
	t.Helper()
	s, err := LoadWith(filepath.Join(upstream, path), o)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s
}

func TestUpstreamConfigsLoad(t *testing.T) {
	for _, c := range []struct {
		path    string
		merge   bool
		domains []string
	}{
		{"test-config/basic_config.yaml", false, []string{"test-domain"}},
		{"test-config/metadata.yaml", false, []string{"test-domain"}},
		{"test-config/shadowmode_config.yaml", false, []string{"test-domain"}},
		{"test-config/share_threshold.yaml", false, []string{"test-domain"}},
		{"test-config/wildcard.yaml", false, []string{"test-domain"}},
		{"test-config/duplicate_domain.yaml", false, []string{"test-domain"}},
		{"examples", false, []string{"mongo_cps", "rl"}},
		{"integration", false, []string{"another", "basic", "share-threshold-test"}},
		{"reload.yaml", false, []string{"reload"}},
		{"readme", false, nil}, // each file on its own: see below
	} {
		t.Run(c.path, func(t *testing.T) {
			if c.path == "readme" {
				// example4a and 4b are two versions of one domain, and 9a..c share one
				// too: each README example file must load on its own.
				files, _ := filepath.Glob(filepath.Join(upstream, "readme", "*.yaml"))
				if len(files) != 16 {
					t.Fatalf("%d README examples, want 16", len(files))
				}
				var names []string
				for _, f := range files {
					s := loadUpstream(t, LoadOptions{}, filepath.Join("readme", filepath.Base(f)))
					if ws := s.Warnings(); len(ws) != 0 {
						t.Errorf("%s: warnings %v", f, ws)
					}
					for _, n := range s.Domains() {
						if len(names) == 0 || names[len(names)-1] != n {
							names = append(names, n)
						}
					}
				}
				if len(names) != 13 {
					t.Errorf("README domains %v", names)
				}
				return
			}
			s := loadUpstream(t, LoadOptions{MergeDomains: c.merge}, c.path)
			if !reflect.DeepEqual(s.Domains(), c.domains) {
				t.Errorf("domains %v, want %v", s.Domains(), c.domains)
			}
			if ws := s.Warnings(); len(ws) != 0 {
				t.Errorf("warnings %v", ws)
			}
		})
	}
}

// TestUpstreamBadConfigs: every file upstream refuses, Sluice refuses too, naming the
// same cause (in its own words, with file, line and field).
func TestUpstreamBadConfigs(t *testing.T) {
	for _, c := range []struct {
		files []string
		merge bool
		want  string // in the error
	}{
		{[]string{"empty_domain.yaml"}, false, "domain: missing"},
		{[]string{"basic_config.yaml", "duplicate_domain.yaml"}, false, `duplicate domain "test-domain"`},
		{[]string{"empty_key.yaml"}, false, "descriptors[0].key: missing"},
		{[]string{"duplicate_key.yaml"}, false, `duplicate descriptor: key "key1" and value "value1"`},
		{[]string{"bad_limit_unit.yaml"}, false, `unknown unit "foo"`},
		{[]string{"replaces_self.yaml"}, false, "a limit cannot replace itself"},
		{[]string{"replaces_empty.yaml"}, false, "replaces[0].name: must not be empty"},
		{[]string{"bad_yaml.yaml"}, false, "invalid yaml: found unexpected end of stream"},
		{[]string{"misspelled_key.yaml"}, false, `ratelimit: unknown key (did you mean "rate_limit"?)`},
		{[]string{"misspelled_key2.yaml"}, false, `requestsperunit: unknown key`},
		{[]string{"non_string_key.yaml"}, false, "0.25: unknown key"},
		{[]string{"non_map_list.yaml"}, false, "descriptors[0]: must be a mapping"},
		{[]string{"unlimited_with_unit.yaml"}, false, "unit: must not be given with unlimited"},
		{[]string{"merge_domain_key1.yaml", "merge_domain_key1.yaml"}, true, `key "key1" and value "value1" is defined by another file too`},
	} {
		t.Run(strings.Join(c.files, "+"), func(t *testing.T) {
			dir := t.TempDir()
			for i, f := range c.files {
				copyFile(t, filepath.Join(upstream, "test-config", f), filepath.Join(dir, string(rune('a'+i))+"-"+f))
			}
			_, err := LoadWith(dir, LoadOptions{MergeDomains: c.merge})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to say %q", err, c.want)
			}
		})
	}
}

func TestUpstreamMergeDomains(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"merge_domain_key1.yaml", "merge_domain_key2.yaml"} {
		copyFile(t, filepath.Join(upstream, "test-config", f), filepath.Join(dir, f))
	}
	if _, err := Load(dir); err == nil {
		t.Error("two files of one domain load without merging")
	}
	s, err := LoadWith(dir, LoadOptions{MergeDomains: true})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := s.Domain("test-domain")
	expectLimit(t, d, e("key1", "value1"), 10, time.Minute)
	expectLimit(t, d, e("key2", "value2"), 20, time.Minute)
}

// TestUpstreamBasicConfig carries over upstream's TestBasicConfig lookups.
func TestUpstreamBasicConfig(t *testing.T) {
	d := upstreamDomain(t, "test-config/basic_config.yaml", "test-domain")
	for _, none := range [][]Entry{
		nil,
		e("key1", "something"),
		e("key1", "value1"),
		e("key2", "value2", "subkey", "subvalue"),
		e("key5", "value5", "subkey5", "subvalue"),
		e("key2", "value3"), // a value without a limit lets it through
	} {
		if r, ok := d.Match(none); ok {
			t.Errorf("%v matched %+v", none, r)
		}
	}
	expectLimit(t, d, e("key1", "value1", "subkey1", "something"), 5, time.Second)
	expectLimit(t, d, e("key1", "value1", "subkey1", "subvalue1"), 10, time.Second)
	expectLimit(t, d, e("key2", "something"), 20, time.Minute)
	expectLimit(t, d, e("key2", "value2"), 30, time.Minute)
	expectLimit(t, d, e("key3", "foo"), 1, time.Hour)
	if r := expectLimit(t, d, e("key4", "foo"), 1, 24*time.Hour); r.Limits[0].Name != "key4_rate_limit" {
		t.Errorf("key4 name %q", r.Limits[0].Name)
	}
	expectLimit(t, d, e("key5", "value5"), 15, 24*time.Hour)
	expectLimit(t, d, e("key5", "value5", "subkey5", "subvalue5"), 25, 24*time.Hour)
	if r, ok := d.Match(e("key6", "foo")); !ok || !r.Unlimited {
		t.Errorf("key6 is unlimited: %+v %v", r, ok)
	}
	if r := expectLimit(t, d, e("key7", "unspecified_value"), 70, time.Minute); !r.DetailedMetric || r.Stat != "test-domain.key7" {
		t.Errorf("key7: detailed %v stat %q", r.DetailedMetric, r.Stat)
	}
}

func TestUpstreamShadowModeConfig(t *testing.T) {
	d := upstreamDomain(t, "test-config/shadowmode_config.yaml", "test-domain")
	for _, c := range []struct {
		entries []Entry
		shadow  bool
	}{
		{e("key1", "value1", "subkey1", "something"), false},
		{e("key1", "value1", "subkey1", "subvalue1"), true},
		{e("key2", "something"), true},
		{e("key2", "value2"), false},
	} {
		if r, ok := d.Match(c.entries); !ok || r.Shadow != c.shadow {
			t.Errorf("%v: shadow %v (matched %v), want %v", c.entries, r.Shadow, ok, c.shadow)
		}
	}
}

// TestUpstreamWildcardConfig: upstream's TestWildcardConfig — a "*" anywhere in a value,
// several of them, each matching any text (none too); the stat names the pattern.
func TestUpstreamWildcardConfig(t *testing.T) {
	d := upstreamDomain(t, "test-config/wildcard.yaml", "test-domain")
	for _, c := range []struct {
		entries []Entry
		stat    string // "" for no match
	}{
		{e("noVal", "foo1"), "test-domain.noVal"},
		{e("wild", "foo1"), "test-domain.wild_foo*"},
		{e("wild", "foo2"), "test-domain.wild_foo*"},
		{e("nestedWild", "val1", "wild", "goo2"), "test-domain.nestedWild_val1.wild_goo*"},
		{e("wild", "bar"), ""},
		{e("noWild", "foo1"), ""},
		{e("midWild", "barab"), "test-domain.midWild_bar*b"},
		{e("midWild", "bar123b"), "test-domain.midWild_bar*b"},
		{e("midWild", "barb"), "test-domain.midWild_bar*b"},
		{e("midWild", "bara"), ""},
		{e("midWild", "xbarb"), ""},
		{e("multiWild", "foo123bar456baz"), "test-domain.multiWild_foo*bar*baz"},
		{e("multiWild", "foobarbaz"), "test-domain.multiWild_foo*bar*baz"},
		{e("multiWild", "foo123baz"), ""},
		{e("multiWild", "bar456baz"), ""},
	} {
		r, ok := d.Match(c.entries)
		if ok != (c.stat != "") || r.Stat != c.stat {
			t.Errorf("%v: matched %v stat %q, want %q", c.entries, ok, r.Stat, c.stat)
			continue
		}
		if ok && !reflect.DeepEqual(r.Path, c.entries) {
			t.Errorf("%v: counter path %v, want each value its own counter", c.entries, r.Path)
		}
	}
}

// TestUpstreamShareThreshold: upstream's TestShareThreshold — every value matching a
// share_threshold wildcard counts in one counter named by the pattern; an exact value
// still wins over the wildcard.
func TestUpstreamShareThreshold(t *testing.T) {
	d := upstreamDomain(t, "test-config/share_threshold.yaml", "test-domain")
	for _, c := range []struct {
		entries  []Entry
		path     []Entry
		requests uint64
	}{
		{e("files", "files/a.pdf"), e("files", "files/*"), 100},
		{e("files", "files/b.csv"), e("files", "files/*"), 100},
		{e("nested", "parent", "files", "nested/x"), e("nested", "parent", "files", "nested/*"), 200},
		{e("files", "top/a", "files", "nested/b"), e("files", "top/*", "files", "nested/*"), 300},
		{e("route", "api/v1", "method", "GET"), e("route", "api/*", "method", "GET"), 60},
		{e("service", "svc/a", "endpoint", "e1"), e("service", "svc/*", "endpoint", "e1"), 80},
		{e("path", "path/a", "file", "file/b", "type", "t"), e("path", "path/*", "file", "file/b", "type", "t"), 120},
		{e("user", "user/1", "resource", "res/2", "action", "read"), e("user", "user/*", "resource", "res/*", "action", "read"), 150},
		{e("file", "test1"), e("file", "test1"), 50},
		{e("file", "test2"), e("file", "test*"), 100},
		{e("midpath", "/api/v1"), e("midpath", "/api*v1"), 100},
		{e("midpath", "/apiXYZv1"), e("midpath", "/api*v1"), 100},
		{e("multiroute", "svcXXXepYYYrpc"), e("multiroute", "svc*ep*rpc"), 50},
		{e("multiroute", "svceprpc"), e("multiroute", "svc*ep*rpc"), 50},
		{e("midroute", "/api-beta-v2"), e("midroute", "/api*v2"), 80},
		{e("tenant", "t99prod", "resource", "resBBBv2"), e("tenant", "t*prod", "resource", "res*v2"), 60},
	} {
		r, ok := d.Match(c.entries)
		if !ok || !reflect.DeepEqual(r.Path, c.path) || r.Limits[0].Requests != c.requests {
			t.Errorf("%v: matched %v path %v limits %v, want path %v and %d", c.entries, ok, r.Path, r.Limits, c.path, c.requests)
		}
	}
	for _, none := range [][]Entry{e("midpath", "/api/v2"), e("multiroute", "svcABCrpc")} {
		if _, ok := d.Match(none); ok {
			t.Errorf("%v matched", none)
		}
	}
}

// TestUpstreamMetadata: upstream's TestMetadata — a descriptor's metadata comes with
// the limit it matches, nested mappings included.
func TestUpstreamMetadata(t *testing.T) {
	d := upstreamDomain(t, "test-config/metadata.yaml", "test-domain")
	r := expectLimit(t, d, e("key1", "value1", "subkey1", "something"), 5, time.Second)
	if !reflect.DeepEqual(r.Metadata, map[string]any{"name": "service_1"}) {
		t.Errorf("subkey1 metadata %#v", r.Metadata)
	}
	if r := expectLimit(t, d, e("key1", "value1", "subkey1", "subvalue1"), 10, time.Second); r.Metadata != nil {
		t.Errorf("subvalue1 has no metadata, got %#v", r.Metadata)
	}
	r = expectLimit(t, d, e("key2", "something"), 20, time.Minute)
	if !reflect.DeepEqual(r.Metadata, map[string]any{"service_with_quota": map[string]any{"name": "service_2"}}) {
		t.Errorf("key2 metadata %#v", r.Metadata)
	}
}

// TestUpstreamExampleConfig: the config upstream's docker-compose example and
// integration scripts run, with quota_mode and metadata, loads and matches.
func TestUpstreamExampleConfig(t *testing.T) {
	s := loadUpstream(t, LoadOptions{}, "examples")
	d, _ := s.Domain("rl")
	for _, svc := range []struct {
		value    string
		requests uint64
	}{{"service_1", 1}, {"service_2", 2}} {
		r := expectLimit(t, d, e("service", svc.value), svc.requests, time.Minute)
		want := map[string]any{"service_with_quota": map[string]any{"name": svc.value}}
		if !r.Quota || !reflect.DeepEqual(r.Metadata, want) {
			t.Errorf("%s: quota %v metadata %#v", svc.value, r.Quota, r.Metadata)
		}
	}
	if r := expectLimit(t, d, e("foo", "x", "baz", "shady"), 3, time.Minute); !r.Shadow || r.Quota {
		t.Errorf("shady: %+v", r)
	}
	if r, ok := d.Match(e("foo", "x", "bay", "y")); !ok || !r.Unlimited {
		t.Errorf("bay is unlimited: %+v %v", r, ok)
	}
}

func upstreamDomain(t *testing.T, path, name string) *Domain {
	t.Helper()
	d, ok := loadUpstream(t, LoadOptions{}, path).Domain(name)
	if !ok {
		t.Fatalf("%s: no domain %q", path, name)
	}
	return d
}

// expectLimit checks that entries match one limit of that amount and window.
func expectLimit(t *testing.T, d *Domain, entries []Entry, requests uint64, window time.Duration) Rule {
	t.Helper()
	r, ok := d.Match(entries)
	if !ok || len(r.Limits) != 1 || r.Limits[0].Requests != requests || r.Limits[0].Window != window {
		t.Errorf("%v: matched %v limits %+v, want %d per %v", entries, ok, r.Limits, requests, window)
	}
	return r
}

func e(kv ...string) []Entry {
	var es []Entry
	for i := 0; i+1 < len(kv); i += 2 {
		es = append(es, Entry{kv[i], kv[i+1]})
	}
	return es
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	write(t, to, string(data))
}
