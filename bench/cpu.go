package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times; 100 on every
// mainstream Linux.
const clockTicks = 100

// processCPU returns the user+system CPU time a process has used, and that
// of its children it has waited for, from /proc/<pid>/stat (pid 0: this
// process). It returns an error where /proc is missing; the report then
// leaves the CPU columns empty.
func processCPU(pid int) (self, children time.Duration, err error) {
	path := "/proc/self/stat"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	return parseProcStat(string(b))
}

// parseProcStat reads utime+stime and cutime+cstime, fields 14-17 of
// /proc/<pid>/stat. The command name (field 2) may hold spaces and
// parentheses, so fields count from its last ')'.
func parseProcStat(s string) (self, children time.Duration, err error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("proc stat: no ')' in %q", s)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("proc stat: %d fields", len(f)+2)
	}
	var t [4]int64 // utime, stime, cutime, cstime
	for j := range t {
		if t[j], err = strconv.ParseInt(f[11+j], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("proc stat: %w", err)
		}
	}
	tick := func(n int64) time.Duration { return time.Duration(n) * time.Second / clockTicks }
	return tick(t[0] + t[1]), tick(t[2] + t[3]), nil
}
