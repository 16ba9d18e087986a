package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/lua"
)

// windowCommand returns the EVALSHA command, as text arguments, that the
// lua.Window wrapper sends for n one-second counters split like sluice splits
// them (config.DefaultBuckets = 10 buckets). It loads the script with SCRIPT
// LOAD, makes one real call through the wrapper and records what went on the
// wire, so the shape can never drift from what sluice sends.
func windowCommand(ctx context.Context, rdb *redis.Client, n int, layoutName string) ([]string, error) {
	layout := lua.Packed
	if layoutName != "" {
		var err error
		if layout, err = lua.ParseLayout(layoutName); err != nil {
			return nil, err
		}
	}
	const buckets = 10
	width, nb := lua.SplitWindow(time.Second, buckets)
	counters := make([]lua.Counter, n)
	for i := range counters {
		counters[i] = lua.Counter{
			// same shape as sluice's <prefix>{<domain>|<key>=<value>}:<limit id>
			Key:     fmt.Sprintf("sluice:{%s|rs=%s}:r:1s", benchDomain, descriptorValue(i)),
			Bucket:  width,
			Buckets: nb,
			Limit:   1_000_000_000,
			Cost:    1,
		}
	}
	w := lua.NewWindow(layout)
	if err := w.Load(ctx, rdb); err != nil {
		return nil, err
	}
	rec := &recordHook{}
	cl := redis.NewClient(&redis.Options{Addr: rdb.Options().Addr})
	defer cl.Close()
	cl.AddHook(rec)
	if _, err := w.Run(ctx, cl, lua.Charge, counters); err != nil {
		return nil, fmt.Errorf("window call: %w", err)
	}
	args := rec.evalsha()
	if args == nil {
		return nil, errors.New("the window wrapper sent no EVALSHA")
	}
	return args, nil
}

// recordHook keeps the arguments of the last EVALSHA a client sent.
type recordHook struct {
	mu   sync.Mutex
	last []string
}

func (h *recordHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *recordHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *recordHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if strings.EqualFold(cmd.Name(), "evalsha") {
			args := make([]string, len(cmd.Args()))
			for i, a := range cmd.Args() {
				args[i] = fmt.Sprint(a)
			}
			h.mu.Lock()
			h.last = args
			h.mu.Unlock()
		}
		return next(ctx, cmd)
	}
}

func (h *recordHook) evalsha() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// redisBenchResult is one redis-benchmark row.
type redisBenchResult struct {
	name     string
	clients  int
	pipeline int
	requests int
	rps      float64
	p50      time.Duration
	p99      time.Duration
	max      time.Duration
}

// redisBenchRequests runs redis-benchmark briefly to estimate its rate and
// returns how many requests take about duration (redis-benchmark has no
// duration flag).
func redisBenchRequests(ctx context.Context, port, clients, pipeline int, duration time.Duration, command []string) (int, error) {
	const probe = 20_000
	cal, err := redisBenchmarkOnce(ctx, port, clients, pipeline, probe, 30*time.Second, command)
	if err != nil {
		return 0, err
	}
	return max(int(cal.rps*duration.Seconds()), probe), nil
}

// redisBenchmarkOnce runs redis-benchmark against 127.0.0.1:port, killed after
// timeout.
func redisBenchmarkOnce(ctx context.Context, port, clients, pipeline, requests int, timeout time.Duration, command []string) (*redisBenchResult, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(port),
		"-c", strconv.Itoa(clients), "-n", strconv.Itoa(requests), "--csv"}
	if pipeline > 1 {
		args = append(args, "-P", strconv.Itoa(pipeline))
	}
	args = append(args, command...)
	cmd := exec.CommandContext(ctx, "redis-benchmark", args...)
	cmd.SysProcAttr = childAttr()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("redis-benchmark: no result within %v", timeout)
		}
		return nil, fmt.Errorf("redis-benchmark: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	r, err := parseRedisBenchmarkCSV(out)
	if err != nil {
		return nil, err
	}
	r.clients, r.pipeline, r.requests = clients, max(pipeline, 1), requests
	return r, nil
}

// parseRedisBenchmarkCSV reads the --csv output of redis-benchmark 7:
//
//	"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
//	"EVALSHA ...","70000.00","0.643","0.296","0.599","0.839","1.711","4.991"
//
// An error reply makes redis-benchmark print the error instead of a row.
func parseRedisBenchmarkCSV(out []byte) (*redisBenchResult, error) {
	rd := csv.NewReader(bytes.NewReader(out))
	rd.FieldsPerRecord = -1
	recs, err := rd.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("redis-benchmark output: %w: %q", err, out)
	}
	var header []string
	for _, rec := range recs {
		if len(rec) > 1 && rec[0] == "test" {
			header = rec
			continue
		}
		if header == nil || len(rec) != len(header) {
			continue
		}
		r := &redisBenchResult{name: rec[0]}
		for i, h := range header {
			switch h {
			case "rps":
				if r.rps, err = strconv.ParseFloat(rec[i], 64); err != nil {
					return nil, fmt.Errorf("redis-benchmark rps %q: %w", rec[i], err)
				}
			case "p50_latency_ms":
				r.p50 = parseMillis(rec[i])
			case "p99_latency_ms":
				r.p99 = parseMillis(rec[i])
			case "max_latency_ms":
				r.max = parseMillis(rec[i])
			}
		}
		if r.rps <= 0 {
			return nil, fmt.Errorf("redis-benchmark reported %v requests/s: %q", r.rps, out)
		}
		return r, nil
	}
	return nil, fmt.Errorf("redis-benchmark printed no result row: %q", out)
}

func parseMillis(s string) time.Duration {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0
	}
	return time.Duration(f * float64(time.Millisecond))
}
