package config

import (
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// units are envoy's rate-limit units as fixed lengths. envoy accepts them in any case.
var units = []struct {
	name   string
	window time.Duration
}{
	{"second", time.Second},
	{"minute", time.Minute},
	{"hour", time.Hour},
	{"day", 24 * time.Hour},
	{"week", 7 * 24 * time.Hour},
	{"month", 30 * 24 * time.Hour},
	{"year", 365 * 24 * time.Hour},
}

// UnitWindow returns the window of an envoy unit name ("second".."year", any case).
func UnitWindow(unit string) (time.Duration, bool) {
	unit = strings.ToLower(unit)
	for _, u := range units {
		if u.name == unit {
			return u.window, true
		}
	}
	return 0, false
}

func unitNames() string {
	names := make([]string, len(units))
	for i, u := range units {
		names[i] = u.name
	}
	return strings.Join(names, ", ")
}

// limitKind is one kind of limit a descriptor may carry, under a key for one limit and a
// key for a list of them. Adding a kind means adding an entry to limitKinds with its own
// parse function; the descriptor code needs no change.
type limitKind struct {
	one, many string
	// parse reads one entry, which may hold several limits (a token_limit holds one per
	// token kind). single is true under the one-limit key; unlimited may only be returned
	// then.
	parse func(c *checker, n *yaml.Node, path string, single bool) (l []Limit, unlimited, ok bool)
}

var limitKinds = []limitKind{
	{one: "rate_limit", many: "rate_limits", parse: parseRequestLimit},
	{one: "token_limit", many: "token_limits", parse: parseTokenLimit},
}

// limitKeys are the descriptor keys of every limit kind.
func limitKeys() []string {
	var keys []string
	for _, k := range limitKinds {
		keys = append(keys, k.one, k.many)
	}
	return keys
}

// parsedLimit is a limit with where it was written, for later checks.
type parsedLimit struct {
	Limit
	node *yaml.Node
	path string
}

// parseLimits reads every limit of a descriptor. present is false when it has none.
func (c *checker) parseLimits(f fields, path string) (limits []parsedLimit, unlimited, present bool) {
	for _, k := range limitKinds {
		one, many := f.vals[k.one], f.vals[k.many]
		if f.has(k.one) && f.has(k.many) {
			c.errorf(f.keys[k.many], join(path, k.many), "give %s or %s, not both", k.one, k.many)
			continue
		}
		if f.has(k.one) {
			present = true
			p := join(path, k.one)
			ls, unl, ok := k.parse(c, one, p, true)
			if unl {
				unlimited = true
			} else if ok {
				for _, l := range ls {
					limits = append(limits, parsedLimit{l, resolve(one), p})
				}
			}
		}
		if f.has(k.many) {
			present = true
			p := join(path, k.many)
			items, ok := c.list(many, p)
			if ok && len(items) == 0 {
				c.errorf(resolve(many), p, "must list at least one limit")
			}
			for i, it := range items {
				ip := index(p, i)
				if ls, _, ok := k.parse(c, it, ip, false); ok {
					for _, l := range ls {
						limits = append(limits, parsedLimit{l, it, ip})
					}
				}
			}
		}
	}
	if unlimited && len(limits) > 0 {
		c.errorf(limits[0].node, limits[0].path, "a descriptor with an unlimited rate_limit cannot have other limits")
	}
	seen := map[string]string{}
	for _, l := range limits {
		window := l.Kind.idPrefix() + ":" + formatWindow(l.Window)
		if first, dup := seen[window]; dup {
			c.errorf(l.node, l.path, "same window (%s) as %s: limits of one kind on one descriptor need different windows", formatWindow(l.Window), first)
			continue
		}
		seen[window] = l.path
	}
	return limits, unlimited, present
}

var requestLimitKeys = []string{"unit", "requests_per_unit", "unlimited", "name", "replaces", "window", "requests", "buckets", "lease"}

// parseRequestLimit reads a request limit: envoy's {unit, requests_per_unit, unlimited, name,
// replaces} or Sluice's {window, requests, buckets, lease}, in any mix.
func parseRequestLimit(c *checker, n *yaml.Node, path string, single bool) ([]Limit, bool, bool) {
	l := Limit{Kind: KindRequests, Buckets: DefaultBuckets}
	f, ok := c.mapping(n, path, requestLimitKeys...)
	if !ok {
		return nil, false, false
	}
	n = resolve(n)
	errs := len(c.problems)

	if f.has("name") {
		l.Name, _ = c.str(f.vals["name"], join(path, "name"))
	}
	if f.has("replaces") {
		l.Replaces = c.parseReplaces(f.vals["replaces"], join(path, "replaces"), l.Name)
	}
	if f.has("lease") {
		l.Lease = c.leaseMode(f.vals["lease"], join(path, "lease"))
	}

	var unlimited bool
	if f.has("unlimited") {
		if unlimited, ok = c.boolean(f.vals["unlimited"], join(path, "unlimited")); !ok {
			return nil, false, false // what else is missing depends on what was meant
		}
	}
	countKey := ""
	for _, k := range []string{"requests_per_unit", "requests"} {
		if !f.has(k) {
			continue
		}
		if countKey != "" {
			c.errorf(f.keys[k], join(path, k), "requests and requests_per_unit mean the same; give one")
			continue
		}
		countKey = k
		l.Requests, _ = c.count(f.vals[k], join(path, k), MaxRequests)
	}

	if unlimited {
		if !single {
			c.errorf(f.keys["unlimited"], join(path, "unlimited"), "unlimited is only allowed in a single rate_limit, not in a list")
		}
		for _, k := range []string{"unit", "window", "buckets", "lease"} {
			if f.has(k) {
				c.errorf(f.keys[k], join(path, k), "must not be given with unlimited")
			}
		}
		if l.Requests > 0 {
			c.errorf(f.keys[countKey], join(path, countKey), "must not be given with unlimited")
		}
		return nil, len(c.problems) == errs, len(c.problems) == errs
	}

	c.parseWindow(f, n, path, &l)
	if countKey == "" {
		c.errorf(n, join(path, "requests_per_unit"), "missing: give requests_per_unit or requests (or unlimited: true)")
	}
	l.ID = limitID(l)
	return []Limit{l}, false, len(c.problems) == errs
}

// leaseMode reads `lease: auto | off`.
func (c *checker) leaseMode(n *yaml.Node, path string) LeaseMode {
	v, ok := c.str(n, path)
	switch {
	case !ok:
	case v == "auto":
		return LeaseAuto
	case v == "off":
		return LeaseOff
	default:
		c.errorf(resolve(n), path, "must be auto or off, not %q", v)
	}
	return LeaseAuto
}

// parseWindow reads the window of a limit, as a unit or a duration, and its buckets.
func (c *checker) parseWindow(f fields, n *yaml.Node, path string, l *Limit) {
	switch {
	case f.has("unit") && f.has("window"):
		c.errorf(f.keys["window"], join(path, "window"), "window and unit are alternatives; give one")
	case f.has("unit"):
		if u, ok := c.str(f.vals["unit"], join(path, "unit")); ok {
			if w, known := UnitWindow(u); known {
				l.Unit, l.Window = strings.ToLower(u), w
			} else {
				c.errorf(resolve(f.vals["unit"]), join(path, "unit"), "unknown unit %q (want one of %s)", u, unitNames())
			}
		}
	case f.has("window"):
		l.Window, _ = c.duration(f.vals["window"], join(path, "window"))
	default:
		c.errorf(n, join(path, "unit"), "missing: give unit (second, minute, ...) or window (like 10s)")
	}
	if f.has("buckets") {
		b, ok := c.count(f.vals["buckets"], join(path, "buckets"), MaxBuckets)
		if ok && b == 0 {
			c.errorf(resolve(f.vals["buckets"]), join(path, "buckets"), "must be between 1 and %d", MaxBuckets)
		}
		if ok && b > 0 {
			l.Buckets = int(b)
		}
	}
	if l.Window > 0 && l.Window/time.Duration(l.Buckets) < time.Microsecond {
		c.errorf(n, join(path, "buckets"), "%d buckets over %v are shorter than 1µs each", l.Buckets, l.Window)
	}
}

// limitID names a limit's counter among its descriptor's: kind, window and
// bucket count. The bucket count is part of it because the counter's hash
// fields are bucket numbers, meaningless under another bucket width.
func limitID(l Limit) string {
	return l.Kind.idPrefix() + ":" + formatWindow(l.Window) + ":" + strconv.Itoa(l.Buckets)
}

// tokenKinds are the amounts a token_limit may cap, each its own counter.
var tokenKinds = []struct {
	key  string
	kind Kind
}{
	{"total_tokens", KindTotalTokens},
	{"prompt_tokens", KindPromptTokens},
	{"completion_tokens", KindCompletionTokens},
}

var tokenLimitKeys = []string{"unit", "window", "buckets", "name", "total_tokens", "prompt_tokens", "completion_tokens"}

// parseTokenLimit reads a token limit: {window or unit, buckets, name, and any of
// total_tokens, prompt_tokens, completion_tokens}. Each amount given becomes one limit.
func parseTokenLimit(c *checker, n *yaml.Node, path string, _ bool) ([]Limit, bool, bool) {
	f, ok := c.mapping(n, path, tokenLimitKeys...)
	if !ok {
		return nil, false, false
	}
	n = resolve(n)
	errs := len(c.problems)
	base := Limit{Buckets: DefaultBuckets}
	if f.has("name") {
		base.Name, _ = c.str(f.vals["name"], join(path, "name"))
	}
	c.parseWindow(f, n, path, &base)
	var out []Limit
	amounts := map[Kind]uint64{}
	for _, tk := range tokenKinds {
		if !f.has(tk.key) {
			continue
		}
		l := base
		l.Kind = tk.kind
		var ok bool
		if l.Requests, ok = c.count(f.vals[tk.key], join(path, tk.key), MaxRequests); ok {
			amounts[tk.kind] = l.Requests
		}
		l.ID = limitID(l)
		out = append(out, l)
	}
	if len(out) == 0 {
		c.errorf(n, join(path, "total_tokens"), "missing: give total_tokens, prompt_tokens or completion_tokens")
	}
	c.checkTokenParts(f, path, amounts)
	return out, false, len(c.problems) == errs
}

// checkTokenParts refuses a prompt_tokens or completion_tokens amount above
// the total_tokens of the same token_limit (one window): a call's prompt and
// completion are parts of its total (a report whose total is below them is
// refused), so such a limit could never refuse a call that the total admits —
// it does nothing, and is far likelier a slip of the pen than a wish. An
// error rather than a warning, so that check-config and a reload say so.
func (c *checker) checkTokenParts(f fields, path string, amounts map[Kind]uint64) {
	total, ok := amounts[KindTotalTokens]
	if !ok {
		return
	}
	for _, tk := range tokenKinds {
		if part, ok := amounts[tk.kind]; ok && tk.kind != KindTotalTokens && part > total {
			c.errorf(f.vals[tk.key], join(path, tk.key), "%d is above total_tokens %d: %s are part of the total, so this limit would never refuse a call the total_tokens limit admits; lower it or raise total_tokens", part, total, tk.key)
		}
	}
}

// parseReplaces reads envoy's replaces: [{name: x}, ...].
func (c *checker) parseReplaces(n *yaml.Node, path, own string) []string {
	items, _ := c.list(n, path)
	var names []string
	for i, it := range items {
		ip := index(path, i)
		f, ok := c.mapping(it, ip, "name")
		if !ok {
			continue
		}
		name, ok := c.str(f.vals["name"], join(ip, "name"))
		switch {
		case !ok:
		case name == "":
			c.errorf(it, join(ip, "name"), "must not be empty")
		case name == own:
			c.errorf(resolve(f.vals["name"]), join(ip, "name"), "a limit cannot replace itself")
		default:
			names = append(names, name)
		}
	}
	return names
}

// formatWindow writes a window in its largest whole unit: "1s", "10s", "90s", "1h", "7d",
// "1500ms". Limit IDs use it, so it must never change.
func formatWindow(d time.Duration) string {
	for _, u := range []struct {
		d time.Duration
		s string
	}{
		{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"},
		{time.Millisecond, "ms"}, {time.Microsecond, "us"},
	} {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.s
		}
	}
	return strconv.FormatInt(int64(d), 10) + "ns"
}

// RequestLimit is a request limit made outside a config file — Envoy's
// per-descriptor limit override — with the default bucket count and the ID a
// config limit of the same window would have, so both count in one counter.
func RequestLimit(requests uint64, window time.Duration, unit string) Limit {
	l := Limit{Kind: KindRequests, Window: window, Buckets: DefaultBuckets, Requests: requests, Unit: unit}
	l.ID = limitID(l)
	return l
}
