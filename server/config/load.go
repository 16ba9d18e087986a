package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// source is one config file's name and contents.
type source struct {
	name string
	data []byte
}

// Load reads the config at path: a file, or a directory of which it reads every *.yaml and
// *.yml file directly inside, following symlinks and skipping names that start with "." (so
// a Kubernetes ConfigMap volume's ..data and ..2025_* entries are ignored). A directory
// without config files is an error. The problems of every file come back together as
// Problems. A domain may be defined in one file only (see LoadWith).
func Load(path string) (*Set, error) { return LoadWith(path, LoadOptions{}) }

// LoadOptions changes how LoadWith reads a config.
type LoadOptions struct {
	// MergeDomains lets several files define one domain, as envoyproxy/ratelimit does
	// with MERGE_DOMAIN_CONFIG=true: the domain gets the top-level descriptors of every
	// file. A descriptor (key and value) defined by two files is an error, and so are
	// files of one domain that disagree on failure_mode or over_limit_response.
	MergeDomains bool
}

// LoadWith is Load with options; the Set remembers them, so that Watch reloads it the
// same way.
func LoadWith(path string, o LoadOptions) (*Set, error) {
	srcs, err := readSources(path)
	if err != nil {
		return nil, err
	}
	set, err := build(srcs, o)
	if err != nil {
		return nil, err
	}
	set.loaded = fingerprint(srcs, nil)
	return set, nil
}

// readSources reads the files Load would load, in name order.
func readSources(path string) ([]source, error) {
	fail := func(file string, err error) ([]source, error) {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, Problems{{File: file, Msg: "cannot read: " + err.Error()}}
	}
	st, err := os.Stat(path)
	if err != nil {
		return fail(path, err)
	}
	if !st.IsDir() {
		data, err := os.ReadFile(path)
		if err != nil {
			return fail(path, err)
		}
		return []source{{name: path, data: data}}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return fail(path, err)
	}
	var srcs []source
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
			continue
		}
		file := filepath.Join(path, name)
		st, err := os.Stat(file) // follows symlinks
		if err != nil {
			return fail(file, err)
		}
		if !st.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return fail(file, err)
		}
		srcs = append(srcs, source{name: file, data: data})
	}
	if len(srcs) == 0 {
		return nil, Problems{{File: path, Msg: "no *.yaml or *.yml files in the directory"}}
	}
	return srcs, nil
}

// build parses the sources into a Set; a domain may appear in one file only, unless
// o.MergeDomains.
func build(srcs []source, o LoadOptions) (*Set, error) {
	var (
		problems Problems
		domains  []*Domain
		byName   = map[string]*Domain{}
	)
	for _, s := range srcs {
		d, err := Parse(s.name, s.data)
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) {
				ps = Problems{{File: s.name, Msg: err.Error()}}
			}
			problems = append(problems, ps...)
			continue
		}
		if first, dup := byName[d.Name]; dup {
			if o.MergeDomains {
				problems = append(problems, first.merge(d)...)
				continue
			}
			problems = append(problems, Problem{File: d.File, Line: d.Line, Field: "domain",
				Msg: fmt.Sprintf("duplicate domain %q (also in %s:%d; to merge files of one domain, as MERGE_DOMAIN_CONFIG=true does in envoyproxy/ratelimit, use --merge-domain-config)", d.Name, first.File, first.Line)})
			continue
		}
		byName[d.Name] = d
		domains = append(domains, d)
	}
	if err := problems.err(); err != nil {
		return nil, err
	}
	set := newSet(domains)
	set.options = o
	return set, nil
}
