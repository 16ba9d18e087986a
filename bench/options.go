package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-rl/sluice/lua"
)

// options are the command-line flags of the harness.
type options struct {
	duration     time.Duration // measured time of each run
	warmup       time.Duration // unmeasured time before each run
	callers      []int         // one set of gRPC runs per entry
	rates        []float64     // offered calls per second; one set of gRPC runs per entry, 0 = closed loop
	conns        int           // gRPC connections; 0 = one per 16 callers
	api          string        // "envoy" or "sluice"
	descriptors  int           // descriptors per ShouldRateLimit call
	capPerSecond uint64        // the sluice-overlimit limit
	counters     int           // counters the -spread runs spread their calls over
	ratelimitBin string        // an envoyproxy/ratelimit binary for the ratelimit runs
	runs         []string      // which runs, in order
	redisClients int           // redis-benchmark -c
	pipeline     int           // redis-benchmark -P for the pipelined row
	sluiceBin    string        // a prebuilt sluice binary; empty builds ./cmd/sluice
	layout       string        // --counter-layout for sluice and the redis-script rows; empty: sluice's default, packed
	cpuProfile   string        // write a CPU profile of sluice here
	timeout      time.Duration // bound on the whole program; 0 = derived
	verbose      bool          // copy sluice's log to stderr
	attack       string        // "memory": run memoryAttack instead of the runs
	memAttack    memoryAttack  // its parameters
}

// Run names.
const (
	runSluice     = "sluice"           // one hot counter, leases on (auto)
	runDirect     = "sluice-direct"    // one hot counter, lease: off
	runSpread     = "sluice-spread"    // -counters counters, one per call in turn
	runOverLimit  = "sluice-overlimit" // one counter at -cap per second
	runTokens     = "sluice-tokens"
	runNoop       = "grpc-noop"
	runPaired     = "sluice-paired" // sluice's and grpc-noop's calls on one open-loop schedule (paired.go)
	runNoopPaired = "noop-paired"   // grpc-noop's call on both arms: the paired method's own zero
	// sluice's call against the same ShouldRateLimit on a key no rule
	// matches: what the limit's work adds to the RPC (paired.go)
	runUnmatchedPaired = "unmatched-paired"
	runRedis           = "redis-script"
	// envoyproxy/ratelimit, with -ratelimit-bin
	runRatelimit       = "ratelimit"
	runRatelimitSpread = "ratelimit-spread"
	runRatelimitNoop   = "ratelimit-noop"
)

// defaultRuns are the runs without -runs: every sluice run but the paired
// ones (they need an open loop, and the default is a closed one),
// and the ratelimit runs when -ratelimit-bin names a binary.
var defaultRuns = []string{runSluice, runDirect, runSpread, runOverLimit, runTokens, runNoop, runRedis}

var ratelimitRuns = []string{runRatelimit, runRatelimitSpread, runRatelimitNoop}

// pairedRuns put two calls on one open-loop schedule (paired.go).
var pairedRuns = []string{runPaired, runNoopPaired, runUnmatchedPaired}

var allRuns = slices.Concat(defaultRuns, ratelimitRuns, pairedRuns)

// isPaired reports whether run is a paired run.
func isPaired(run string) bool { return slices.Contains(pairedRuns, run) }

// isRatelimit reports whether run calls envoyproxy/ratelimit.
func isRatelimit(run string) bool { return slices.Contains(ratelimitRuns, run) }

// isNoop reports whether run is a no-op run (grpc-noop, ratelimit-noop).
func isNoop(run string) bool { return run == noopOf(run) }

// noopOf is the no-op run of the process a run calls.
func noopOf(run string) string {
	if isRatelimit(run) {
		return runRatelimitNoop
	}
	return runNoop
}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: go run ./bench [flags]\n\n"+
			"Starts a private redis-server and a sluice process, loads them over\n"+
			"loopback and prints decisions/s and latency per run.\n\nflags:\n")
		fs.PrintDefaults()
	}
	callers := fs.String("callers", "64", "concurrent callers; a comma-separated list runs each")
	rates := fs.String("rate", "0", "calls per second offered to the callers (open loop; latency counts from each call's scheduled time), 0: closed loop; a comma-separated list runs each")
	runs := fs.String("runs", "", "runs to do, comma-separated, from: "+strings.Join(allRuns, ", ")+" (default: all sluice runs but the paired ones, and the ratelimit runs with -ratelimit-bin)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of each run")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up before each run")
	fs.IntVar(&o.conns, "conns", 0, "gRPC connections shared by the callers (0: one per 16 callers)")
	fs.StringVar(&o.api, "api", "envoy", "ShouldRateLimit API: envoy (envoy.service.ratelimit.v3) or sluice (sluice.v1)")
	fs.IntVar(&o.descriptors, "descriptors", 1, "descriptors in each ShouldRateLimit call (and counters in each redis-script call)")
	fs.Uint64Var(&o.capPerSecond, "cap", 1000, "requests per second allowed per descriptor in the sluice-overlimit run")
	fs.IntVar(&o.counters, "counters", 1000, "counters the sluice-spread and ratelimit-spread runs spread their calls over")
	fs.StringVar(&o.ratelimitBin, "ratelimit-bin", "", "an envoyproxy/ratelimit binary (go build ./src/service_cmd of its checkout): run it against the same redis-server for the ratelimit runs")
	fs.IntVar(&o.redisClients, "redis-clients", 50, "redis-benchmark connections (-c)")
	fs.IntVar(&o.pipeline, "pipeline", 16, "redis-benchmark pipeline depth (-P) of the pipelined row; 0 or 1 skips it")
	fs.StringVar(&o.layout, "counter-layout", "", "sluice's --counter-layout (packed or hash) and the layout of the redis-script rows; empty: sluice's default (packed; not passed, for binaries without the flag)")
	fs.StringVar(&o.sluiceBin, "sluice-bin", "", "use this sluice binary instead of building ./cmd/sluice")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the sluice process to this file (builds ./bench/sluiceprof, a profiling wrapper of server.Run)")
	fs.DurationVar(&o.timeout, "timeout", 0, "give up after this long (0: derived from the runs)")
	fs.BoolVar(&o.verbose, "v", false, "copy sluice's log to stderr")
	fs.StringVar(&o.attack, "attack", "", "memory: instead of the runs, send the memory attack of docs/security.md and print sluice's RSS and Redis's memory before and after")
	fs.IntVar(&o.memAttack.calls, "attack-calls", 4000, "-attack memory: calls (each descriptor is sent twice)")
	fs.IntVar(&o.memAttack.entries, "attack-entries", 32, "-attack memory: entries per descriptor")
	fs.IntVar(&o.memAttack.valueBytes, "attack-value-bytes", 1000, "-attack memory: bytes per entry value")
	fs.IntVar(&o.memAttack.years, "attack-years", 9, "-attack memory: the override's unit_multiplier of YEAR")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	if o.layout != "" {
		if _, err := lua.ParseLayout(o.layout); err != nil {
			return nil, fmt.Errorf("-counter-layout: %w", err)
		}
	}
	var err error
	if o.callers, err = parseIntList(*callers); err != nil {
		return nil, fmt.Errorf("-callers: %w", err)
	}
	if o.rates, err = parseRateList(*rates); err != nil {
		return nil, fmt.Errorf("-rate: %w", err)
	}
	names := splitList(*runs)
	if len(names) == 0 && *runs == "" {
		names = defaultRuns
		if o.ratelimitBin != "" {
			names = slices.Concat(defaultRuns, ratelimitRuns)
		}
	}
	for _, r := range names {
		if !slices.Contains(allRuns, r) {
			return nil, fmt.Errorf("-runs: unknown run %q", r)
		}
		o.runs = append(o.runs, r)
	}
	var errs []error
	if len(o.runs) == 0 {
		errs = append(errs, errors.New("-runs: none given"))
	}
	if o.duration <= 0 {
		errs = append(errs, errors.New("-duration: must be positive"))
	}
	if o.warmup < 0 {
		errs = append(errs, errors.New("-warmup: must not be negative"))
	}
	if o.conns < 0 {
		errs = append(errs, errors.New("-conns: must not be negative"))
	}
	if o.api != "envoy" && o.api != "sluice" {
		errs = append(errs, fmt.Errorf("-api: %q is neither envoy nor sluice", o.api))
	}
	if o.descriptors < 1 || o.descriptors > 1000 {
		errs = append(errs, errors.New("-descriptors: must be between 1 and 1000"))
	}
	if o.counters < 1 || o.counters > 100_000 {
		errs = append(errs, errors.New("-counters: must be between 1 and 100000"))
	}
	for _, r := range o.runs {
		if isRatelimit(r) && o.ratelimitBin == "" {
			errs = append(errs, fmt.Errorf("-runs: %s needs -ratelimit-bin", r))
			break
		}
	}
	if slices.ContainsFunc(o.runs, isPaired) && slices.Contains(o.rates, 0) {
		errs = append(errs, fmt.Errorf("-runs: %s pair calls on an open-loop schedule; give -rate without 0", strings.Join(pairedRuns, " and ")))
	}
	if o.capPerSecond < 1 {
		errs = append(errs, errors.New("-cap: must be positive"))
	}
	if o.redisClients < 1 {
		errs = append(errs, errors.New("-redis-clients: must be positive"))
	}
	if o.pipeline < 0 {
		errs = append(errs, errors.New("-pipeline: must not be negative"))
	}
	if o.timeout < 0 {
		errs = append(errs, errors.New("-timeout: must not be negative"))
	}
	if o.attack != "" && o.attack != "memory" {
		errs = append(errs, fmt.Errorf("-attack: %q is not memory", o.attack))
	}
	if a := o.memAttack; a.calls < 1 || a.entries < 1 || a.valueBytes < 8 || a.years < 1 {
		errs = append(errs, errors.New("-attack-calls, -attack-entries, -attack-years: must be positive; -attack-value-bytes at least 8"))
	}
	o.memAttack.callers = o.callers[0]
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.timeout == 0 {
		o.timeout = o.derivedTimeout()
	}
	return o, nil
}

// derivedTimeout allows for building sluice, twice the planned run time and
// slack for start-up and shutdown.
func (o *options) derivedTimeout() time.Duration {
	per := o.warmup + o.duration
	var planned time.Duration
	for _, r := range o.runs {
		if r == runRedis {
			planned += 3 * o.duration // calibration + unpipelined + pipelined
			continue
		}
		planned += time.Duration(len(o.callers)*len(o.rates)) * per
	}
	return 3*time.Minute + 2*planned
}

// connsFor returns how many gRPC connections n callers share.
func (o *options) connsFor(n int) int {
	if o.conns > 0 {
		return min(o.conns, n)
	}
	return max(1, (n+15)/16)
}

func (o *options) has(run string) bool { return slices.Contains(o.runs, run) }

// hasRatelimit reports whether any run calls envoyproxy/ratelimit.
func (o *options) hasRatelimit() bool { return slices.ContainsFunc(o.runs, isRatelimit) }

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseIntList(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 100_000 {
			return nil, fmt.Errorf("%q is not a count between 1 and 100000", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("none given")
	}
	return out, nil
}

// maxRate bounds -rate: far above what one machine's loopback gRPC can do.
const maxRate = 10_000_000

func parseRateList(s string) ([]float64, error) {
	var out []float64
	for _, f := range splitList(s) {
		r, err := strconv.ParseFloat(f, 64)
		if err != nil || !(r >= 0 && r <= maxRate) { // also rejects NaN
			return nil, fmt.Errorf("%q is not a rate between 0 and %d calls per second", f, maxRate)
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, errors.New("none given")
	}
	return out, nil
}

// loadDescription says how the gRPC runs pace their calls, for the report's
// header.
func (o *options) loadDescription() string {
	var open []string
	closed := false
	for _, r := range o.rates {
		if r == 0 {
			closed = true
			continue
		}
		open = append(open, fmtOffered(r))
	}
	var parts []string
	if closed {
		parts = append(parts, "closed loop (each caller calls again as soon as its call returns)")
	}
	if len(open) > 0 {
		parts = append(parts, fmt.Sprintf("open loop at %s calls/s offered, spread over the callers; latency counted from each call's scheduled send time",
			strings.Join(open, ", ")))
	}
	return strings.Join(parts, "; ")
}
