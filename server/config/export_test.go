package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// everyField uses every field the descriptor tree has, so that the round trip
// notices one that Export forgets.
const everyField = `
domain: full
failure_mode: open
over_limit_response:
  body: '{"fault":{"code":900801}}'
  headers: {Content-Type: application/json, X-Why: cap}
descriptors:
  - key: api
    value: A
    shadow_mode: true
    descriptors:
      - key: environment
        value: production
        detailed_metric: true
        metadata: {team: payments, tier: 2, share: 0.5, whole: 3.0, tags: [a, 1, true, null], nested: {k: v}}
        rate_limits:
          - {name: burst, window: 10s, requests: 50, replaces: [{name: other}], lease: off}
          - {unit: hour, requests_per_unit: 10000, buckets: 60}
          - {window: 1500ms, requests: 3}
          - {window: 48h, requests: 9}
        token_limits:
          - {window: 1m, total_tokens: 100000, prompt_tokens: 60000, completion_tokens: 50000}
          - {unit: day, total_tokens: 20000000, name: daily}
          - {window: 1h, prompt_tokens: 7}
          - {window: 1h, completion_tokens: 8}
      - key: environment
        value: sandbox
        rate_limit: {unlimited: true}
  - key: tenant
    value: acme*
    share_threshold: true
    value_to_metric: true
    rate_limit: {unit: minute, requests_per_unit: 0, name: other}
  - key: tenant
    value: ac*
    rate_limit: {unit: second, requests_per_unit: 1}
  - key: tenant
    quota_mode: true
    rate_limit: {unit: second, requests_per_unit: 2}
  - key: "true"
    value: "10"
    descriptors:
      - key: x
        shadow_mode: true
`

// sameTree reports whether two domains load the same: everything but where
// they were read from and their warnings' lines.
func sameTree(a, b *Domain) bool {
	return a.Name == b.Name && a.FailOpen == b.FailOpen && a.OverLimitBody == b.OverLimitBody &&
		reflect.DeepEqual(a.OverLimitHeaders, b.OverLimitHeaders) && reflect.DeepEqual(a.root, b.root)
}

func roundTrip(t *testing.T, d *Domain) *Domain {
	t.Helper()
	out, err := d.Export()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("export.yaml", out)
	if err != nil {
		t.Fatalf("export does not load: %v\n%s", err, out)
	}
	if !sameTree(d, back) {
		t.Fatalf("export loads into another tree:\n%s", out)
	}
	return back
}

func TestExportRoundTrip(t *testing.T) {
	d, err := Parse("full.yaml", []byte(everyField))
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, d)

	var files []string
	for _, pattern := range []string{"../../deploy/examples/*.yaml", "../../deploy/gateway/sluice.yaml", "../testdata/*.yaml"} {
		m, _ := filepath.Glob(pattern)
		files = append(files, m...)
	}
	if len(files) < 3 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d, err := Parse(f, data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		t.Run(filepath.Base(f), func(t *testing.T) { roundTrip(t, d) })
	}
}

func TestExportOverlayWithNotes(t *testing.T) {
	base := mustSet(t, overlayBase)
	o := mustOverride(t, "apim", sandbox, "rate_limit: {window: 1s, requests: 3}")
	o.Note = "runtime limit, version 7, by alice"
	eff := base.Overlay([]*Override{o, mustOverride(t, "added", entries("k", "v"), "rate_limit: {window: 1s, requests: 1}")})
	out, err := eff.Export()
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	if !strings.Contains(text, "# runtime limit, version 7, by alice\n") {
		t.Errorf("no note:\n%s", text)
	}
	docs := strings.Split(text, "---\n")
	if len(docs) != 2 {
		t.Fatalf("%d documents, want one per domain:\n%s", len(docs), text)
	}
	for i, name := range []string{"added", "apim"} {
		back, err := Parse(name+".yaml", []byte(docs[i]))
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, docs[i])
		}
		want, _ := eff.Domain(name)
		if !sameTree(want, back) {
			// Notes are comments: they do not load back.
			if !reflect.DeepEqual(stripNotes(want.root), back.root) {
				t.Errorf("%s loads into another tree:\n%s", name, docs[i])
			}
		}
	}
}

// stripNotes returns a copy of the tree without runtime notes.
func stripNotes(n *node) *node {
	c := *n
	c.note = ""
	if n.keys != nil {
		c.keys = map[string]*keyNode{}
		for k, kn := range n.keys {
			nk := &keyNode{}
			if kn.any != nil {
				nk.any = stripNotes(kn.any)
			}
			for v, e := range kn.exact {
				if nk.exact == nil {
					nk.exact = map[string]*node{}
				}
				nk.exact[v] = stripNotes(e)
			}
			for _, w := range kn.wild {
				nk.wild = append(nk.wild, wildNode{pattern: w.pattern, parts: w.parts, n: stripNotes(w.n)})
			}
			c.keys[k] = nk
		}
	}
	return &c
}

func TestWindowText(t *testing.T) {
	for _, w := range []string{"1s", "90s", "1m", "48h", "1500ms"} {
		d, err := Parse("w.yaml", []byte("domain: d\ndescriptors:\n  - {key: k, rate_limit: {window: "+w+", requests: 1}}\n"))
		if err != nil {
			t.Fatal(err)
		}
		r, _ := d.Match([]Entry{{"k", "x"}})
		if got := WindowText(r.Limits[0].Window); got != w {
			t.Errorf("WindowText(%v) = %q, want %q", r.Limits[0].Window, got, w)
		}
	}
}

func TestRuleFragmentParsesBack(t *testing.T) {
	d, err := Parse("full.yaml", []byte(everyField))
	if err != nil {
		t.Fatal(err)
	}
	path := []Entry{{"api", "A"}, {"environment", "production"}}
	r, _ := d.Lookup(path)
	frag, err := r.Fragment()
	if err != nil {
		t.Fatal(err)
	}
	o, err := ParseOverride("full", path, frag)
	if err != nil {
		t.Fatalf("%v\n%s", err, frag)
	}
	o.leaf.rule.Path = path
	if !reflect.DeepEqual(o.leaf.rule, r) {
		t.Errorf("fragment\n%s\nparses into %+v, want %+v", frag, o.leaf.rule, r)
	}
}
