package main

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// redisStats is a snapshot of the counters the report needs from INFO.
type redisStats struct {
	scripts  uint64  // calls of evalsha, eval, evalsha_ro, eval_ro, fcall, fcall_ro
	commands uint64  // calls of every command
	cpu      float64 // used_cpu_sys + used_cpu_user, seconds
}

// scriptCommands are the commandstats entries that run a script.
var scriptCommands = map[string]bool{
	"evalsha": true, "eval": true, "evalsha_ro": true, "eval_ro": true,
	"fcall": true, "fcall_ro": true,
}

// readRedisStats reads INFO commandstats and INFO cpu.
func readRedisStats(ctx context.Context, rdb *redis.Client) (redisStats, error) {
	info, err := rdb.Info(ctx, "commandstats", "cpu").Result()
	if err != nil {
		return redisStats{}, fmt.Errorf("redis INFO: %w", err)
	}
	return parseRedisInfo(info)
}

// parseRedisInfo reads lines like
//
//	cmdstat_evalsha:calls=1234,usec=5678,usec_per_call=4.60,...
//	used_cpu_sys:1.234
func parseRedisInfo(info string) (redisStats, error) {
	var st redisStats
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(name, "cmdstat_"):
			calls, err := statField(val, "calls")
			if err != nil {
				return redisStats{}, fmt.Errorf("redis INFO %s: %w", name, err)
			}
			cmd := strings.TrimPrefix(name, "cmdstat_")
			st.commands += calls
			if scriptCommands[cmd] {
				st.scripts += calls
			}
		case name == "used_cpu_sys" || name == "used_cpu_user":
			f, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return redisStats{}, fmt.Errorf("redis INFO %s: %w", name, err)
			}
			st.cpu += f
		}
	}
	return st, sc.Err()
}

// statField returns the integer field of "calls=1,usec=2,...".
func statField(val, field string) (uint64, error) {
	for kv := range strings.SplitSeq(val, ",") {
		k, v, _ := strings.Cut(kv, "=")
		if k == field {
			return strconv.ParseUint(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s field in %q", field, val)
}

// sub returns the counts from o to st.
func (st redisStats) sub(o redisStats) redisStats {
	return redisStats{scripts: st.scripts - o.scripts, commands: st.commands - o.commands, cpu: st.cpu - o.cpu}
}
