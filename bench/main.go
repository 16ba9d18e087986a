// Command bench load-tests Sluice on this machine and compares it with its
// two ceilings: the gRPC stack of the same process (grpc.health.v1 Check) and
// Redis running the same sliding-window script (redis-benchmark EVALSHA).
//
// How it works: it starts a private redis-server (internal/redistest), builds
// ./cmd/sluice into a temporary directory and runs it as a separate process
// against that Redis with a generated config, waits for /readyz, then for each
// -callers count and -rate runs the gRPC loads (warm-up, then -duration
// measured), and finally runs redis-benchmark. Every call's latency is recorded
// client-side in a per-caller log-linear histogram; with a -rate the callers
// follow a fixed schedule (open loop) and latency counts from each call's
// scheduled send time. Redis work per decision comes from INFO commandstats
// before and after each run. Everything it starts is stopped on return, on
// error and on Ctrl-C, and the whole program is bounded by -timeout.
//
//	go run ./bench -duration 5s -callers 1,16,64
//	go run ./bench -duration 5s -rate 2000,5000,10000 -runs sluice,grpc-noop
//	go run ./bench -duration 5s -rate 1000,2000,5000 -runs sluice-paired
//	make bench BENCH_ARGS='-api sluice -descriptors 3'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/internal/redistest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		os.Exit(1)
	}
}

// run is main without the process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	defer func() {
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("%w (the whole run is bounded by -timeout %v)", err, o.timeout)
		}
	}()

	if o.has(runRedis) {
		if _, err := exec.LookPath("redis-benchmark"); err != nil {
			return fmt.Errorf("the %s run needs redis-benchmark on PATH: %w", runRedis, err)
		}
	}
	dir, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// Redis.
	rs, err := redistest.Run()
	if err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	defer rs.Stop()
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	env, err := describeEnv(ctx, rdb)
	if err != nil {
		return err
	}
	redisPID := env.redisPID

	// Sluice.
	bin, extra := o.sluiceBin, []string(nil)
	switch {
	case o.cpuProfile != "":
		prof, err := filepath.Abs(o.cpuProfile)
		if err != nil {
			return err
		}
		fmt.Fprintln(stderr, "building ./bench/sluiceprof (sluice with a CPU profile) ...")
		if bin, err = buildSluice(ctx, dir, "./bench/sluiceprof"); err != nil {
			return err
		}
		extra = []string{"--cpuprofile", prof}
	case bin == "":
		fmt.Fprintln(stderr, "building ./cmd/sluice ...")
		if bin, err = buildSluice(ctx, dir, "./cmd/sluice"); err != nil {
			return err
		}
	}
	if o.layout != "" {
		extra = append(extra, "--counter-layout", o.layout)
	}
	cfgPath, err := writeConfig(dir, o.capPerSecond)
	if err != nil {
		return err
	}
	var logTo io.Writer
	if o.verbose {
		logTo = stderr
	}
	sp, err := startSluice(ctx, bin, cfgPath, rs.URL(), extra, logTo)
	if err != nil {
		return err
	}
	defer func() {
		if serr := sp.stop(); serr != nil && err == nil {
			err = serr
		}
	}()

	if o.attack == "memory" {
		return o.memAttack.run(ctx, stdout, sp, rdb)
	}
	var rl *sluiceProc
	if o.hasRatelimit() {
		bin, err := filepath.Abs(o.ratelimitBin)
		if err != nil {
			return err
		}
		if rl, err = startRatelimit(ctx, bin, dir, rs.Addr(), logTo); err != nil {
			return err
		}
		defer func() {
			if serr := rl.stop(); serr != nil && err == nil {
				err = serr
			}
		}()
	}

	fmt.Fprintf(stdout, "sluice bench  %s  go %s  %d CPUs  redis %s\n", time.Now().Format("2006-01-02 15:04 MST"), runtime.Version(), runtime.NumCPU(), env.redisVersion)
	fmt.Fprintf(stdout, "api %s, %d descriptor(s) per call, %d counters in the -spread runs, warm-up %v, measured %v per run, sluice pid %d, redis %s (pid %d)\n",
		o.api, o.descriptors, o.counters, o.warmup, o.duration, sp.pid(), rs.Addr(), redisPID)
	if rl != nil {
		fmt.Fprintf(stdout, "envoyproxy/ratelimit %s, pid %d, same redis\n", o.ratelimitBin, rl.pid())
	}
	fmt.Fprintf(stdout, "load: %s\n\n", o.loadDescription())

	fmt.Fprintf(stdout, "load average before: %s\n", loadAverage())
	rep := newReport(stdout, o)
	rep.header()
	for _, n := range o.callers {
		for _, rate := range o.rates {
			for _, name := range o.runs {
				if name == runRedis {
					continue
				}
				if isPaired(name) {
					p, err := pairedRun(ctx, o, name, n, rate, sp, redisPID, rdb)
					if err != nil {
						return err
					}
					rep.addPaired(p)
					if !sp.alive() {
						return sp.stop()
					}
					continue
				}
				target := sp
				if isRatelimit(name) {
					target = rl
				}
				row, err := grpcRun(ctx, o, name, n, rate, target, redisPID, rdb)
				if err != nil {
					return err
				}
				rep.add(row)
				if !target.alive() {
					return target.stop()
				}
			}
		}
	}
	if o.has(runRedis) {
		cmd, err := windowCommand(ctx, rdb, o.descriptors, o.layout)
		if err != nil {
			return err
		}
		depths := []int{1}
		if o.pipeline > 1 {
			depths = append(depths, o.pipeline)
		}
		for _, p := range depths {
			n, err := redisBenchRequests(ctx, rs.Port(), o.redisClients, p, o.duration, cmd)
			if err != nil {
				return err
			}
			before, err := snapshot(ctx, sp.pid(), redisPID, rdb)
			if err != nil {
				return err
			}
			r, err := redisBenchmarkOnce(ctx, rs.Port(), o.redisClients, p, n, 3*o.duration+10*time.Second, cmd)
			if err != nil {
				return err
			}
			after, err := snapshot(ctx, sp.pid(), redisPID, rdb)
			if err != nil {
				return err
			}
			rep.addRedis(r, before, after)
		}
	}
	rep.ratios()
	rep.pairedTable()
	fmt.Fprintf(stdout, "load average after: %s\n", loadAverage())
	if o.cpuProfile != "" {
		if err := sp.stop(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nCPU profile of sluice: %s\n  go tool pprof -top %s\n", o.cpuProfile, o.cpuProfile)
	}
	return nil
}

// env describes the machine for the report.
type env struct {
	redisVersion string
	redisPID     int // for its CPU time in /proc; 0 when unknown
}

func describeEnv(ctx context.Context, rdb *redis.Client) (env, error) {
	info, err := rdb.InfoMap(ctx, "server").Result()
	if err != nil {
		return env{}, fmt.Errorf("redis INFO server: %w", err)
	}
	pid, _ := strconv.Atoi(info["Server"]["process_id"])
	return env{redisVersion: info["Server"]["redis_version"], redisPID: pid}, nil
}

// grpcRun runs one gRPC load with n callers at rate calls per second (0:
// closed loop) on the server target and measures what it cost Redis and
// each process.
func grpcRun(ctx context.Context, o *options, name string, n int, rate float64, target *sluiceProc, redisPID int, rdb *redis.Client) (*row, error) {
	nconns := o.connsFor(n)
	conns, closeConns, err := dialConns(target.grpcAddr, nconns)
	if err != nil {
		return nil, err
	}
	defer closeConns()
	var calls []callFunc
	switch name {
	case runSluice:
		calls = shouldRateLimitCalls(o.api, keyOpen, o.descriptors, 1, n, conns)
	case runDirect:
		calls = shouldRateLimitCalls(o.api, keyDirect, o.descriptors, 1, n, conns)
	case runSpread:
		calls = shouldRateLimitCalls(o.api, keyOpen, o.descriptors, o.counters, n, conns)
	case runOverLimit:
		calls = shouldRateLimitCalls(o.api, keyCapped, o.descriptors, 1, n, conns)
	case runTokens:
		calls = reserveReportCalls(n, conns)
	case runNoop, runRatelimitNoop:
		calls = healthCalls(n, conns)
	case runRatelimit: // Envoy's API: it has no other
		calls = shouldRateLimitCalls("envoy", keyOpen, o.descriptors, 1, n, conns)
	case runRatelimitSpread:
		calls = shouldRateLimitCalls("envoy", keyOpen, o.descriptors, o.counters, n, conns)
	default:
		return nil, fmt.Errorf("unknown run %q", name)
	}

	// The /metrics scrapes stay outside the snapshots, so that the CPU the
	// scrape costs is not counted against the run's calls.
	mBefore, okBefore := readServerMetrics(ctx, target.httpAddr)
	before, err := snapshot(ctx, target.pid(), redisPID, rdb)
	if err != nil {
		return nil, err
	}
	res, err := runLoad(ctx, name, nconns, rate, o.warmup, o.duration, calls)
	if err != nil {
		return nil, err
	}
	after, err := snapshot(ctx, target.pid(), redisPID, rdb)
	if err != nil {
		return nil, err
	}
	w := newRow(res, before, after)
	if mAfter, okAfter := readServerMetrics(ctx, target.httpAddr); okBefore && okAfter && res.allCalls > 0 && !isNoop(name) {
		w.leasedPct = 100 * (mAfter.leaseDecisions - mBefore.leaseDecisions) / float64(res.allCalls)
		w.leaseCallsPer = (mAfter.leaseCalls - mBefore.leaseCalls) / float64(res.allCalls)
	}
	return w, nil
}

// usage is what the processes had used at one moment.
type usage struct {
	at        time.Time
	redis     redisStats
	serverCPU time.Duration // the server a run calls (sluice or ratelimit), -1 when unknown
	redisCPU  time.Duration // redis-server, from /proc; -1 when unknown
	benchCPU  time.Duration // this process, -1 when unknown
	childCPU  time.Duration // children waited for (redis-benchmark), -1 when unknown
}

// snapshot reads Redis' counters and the CPU time of the server process
// pid, of redis-server (redisPID, 0: unknown) and of this process.
func snapshot(ctx context.Context, pid, redisPID int, rdb *redis.Client) (usage, error) {
	u := usage{at: time.Now(), serverCPU: -1, redisCPU: -1, benchCPU: -1, childCPU: -1}
	var err error
	if u.redis, err = readRedisStats(ctx, rdb); err != nil {
		return usage{}, err
	}
	if d, _, err := processCPU(pid); err == nil {
		u.serverCPU = d
	}
	if redisPID > 0 {
		if d, _, err := processCPU(redisPID); err == nil {
			u.redisCPU = d
		}
	}
	if self, children, err := processCPU(0); err == nil {
		u.benchCPU, u.childCPU = self, children
	}
	return u, nil
}

// loadAverage returns the first line of /proc/loadavg, or "unknown": other
// work on the machine skews every number.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
