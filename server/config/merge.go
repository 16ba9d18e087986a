package config

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// merge adds the top-level descriptors of o, another file's part of the same domain, to
// d (LoadOptions.MergeDomains). d must be freshly parsed: it is changed in place. It
// returns what o defines that d already has, and a disagreement on the domain's own
// settings.
func (d *Domain) merge(o *Domain) Problems {
	var ps Problems
	problem := func(field, msg string, args ...any) {
		ps = append(ps, Problem{File: o.File, Line: o.Line, Field: field, Msg: fmt.Sprintf(msg, args...)})
	}
	if d.FailOpen != o.FailOpen || d.OverLimitResponse != o.OverLimitResponse || d.OverLimitBody != o.OverLimitBody || !slices.Equal(d.OverLimitHeaders, o.OverLimitHeaders) {
		problem("domain", "merged domain %q: failure_mode and over_limit_response must be the same in every file of the domain (first file %s:%d)", d.Name, d.File, d.Line)
	}
	for _, key := range slices.Sorted(maps.Keys(o.root.keys)) {
		theirs := o.root.keys[key]
		mine := d.root.keys[key]
		if theirs.any != nil {
			if mine != nil && mine.any != nil {
				problem("descriptors", "merged domain %q: descriptor with key %s and no value is defined by another file too", d.Name, strconv.Quote(key))
			} else {
				d.root.add(Entry{Key: key}, theirs.any)
			}
		}
		for _, w := range theirs.wild {
			if mine != nil && slices.ContainsFunc(mine.wild, func(m wildNode) bool { return m.pattern == w.pattern }) {
				problem("descriptors", "merged domain %q: descriptor with key %s and value %s is defined by another file too", d.Name, strconv.Quote(key), strconv.Quote(w.pattern))
				continue
			}
			d.root.add(Entry{Key: key, Value: w.pattern}, w.n)
			mine = d.root.keys[key]
		}
		for _, value := range slices.Sorted(maps.Keys(theirs.exact)) {
			if mine != nil && mine.exact[value] != nil {
				problem("descriptors", "merged domain %q: descriptor with key %s and value %s is defined by another file too", d.Name, strconv.Quote(key), strconv.Quote(value))
				continue
			}
			d.root.add(Entry{Key: key, Value: value}, theirs.exact[value])
			mine = d.root.keys[key]
		}
	}
	d.Warnings = append(d.Warnings, o.Warnings...)
	return ps
}
