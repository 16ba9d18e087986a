package config

import (
	"errors"
	"strings"
	"testing"
)

func TestLoadSourcesChecksAsLoadDoes(t *testing.T) {
	s, err := LoadSources([]Source{
		{Name: "xds:a", Data: []byte(limitConfig("a", 1))},
		{Name: "xds:b", Data: []byte(limitConfig("b", 2))},
	}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if requestsOf(s, "a") != 1 || requestsOf(s, "b") != 2 {
		t.Errorf("limits: a=%d b=%d", requestsOf(s, "a"), requestsOf(s, "b"))
	}
	if d, _ := s.Domain("a"); d.File != "xds:a" {
		t.Errorf("file = %q", d.File)
	}

	// Every problem of every document, named by the document.
	_, err = LoadSources([]Source{
		{Name: "xds:bad", Data: []byte("domain: a\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n")},
		{Name: "xds:worse", Data: []byte("domain: ''\n")},
	}, LoadOptions{})
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 2 {
		t.Fatalf("err = %v, want two problems", err)
	}
	for _, want := range []string{"xds:bad:4: descriptors[0].rate_limit.unit: unknown unit", "xds:worse:1: domain: must not be empty"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err lacks %q:\n%v", want, err)
		}
	}

	// One domain in two documents: refused, or merged when asked.
	twice := []Source{{Name: "one", Data: []byte(limitConfig("a", 1))}, {Name: "two", Data: []byte("domain: a\ndescriptors:\n  - {key: j, rate_limit: {unit: second, requests_per_unit: 3}}\n")}}
	if _, err := LoadSources(twice, LoadOptions{}); err == nil || !strings.Contains(err.Error(), `duplicate domain "a"`) {
		t.Errorf("duplicate domain: %v", err)
	}
	merged, err := LoadSources(twice, LoadOptions{MergeDomains: true})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := merged.Domain("a")
	if r, ok := d.Match([]Entry{{"j", "x"}}); !ok || r.Limits[0].Requests != 3 {
		t.Errorf("merged domain: %v %v", r, ok)
	}

	// No documents: a Set without domains.
	if s, err := LoadSources(nil, LoadOptions{}); err != nil || len(s.Domains()) != 0 {
		t.Errorf("no documents: %v %v", s.Domains(), err)
	}
}
