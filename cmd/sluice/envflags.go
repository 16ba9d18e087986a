package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// envFlags defines flags whose defaults come from the environment: flag
// --a-b from the variable SLUICE_A_B (envKey), which ends its usage. A
// variable that does not parse is kept in err, for the caller to report
// after parsing.
type envFlags struct {
	fs     *flag.FlagSet
	getenv func(string) string
	err    error
}

func (e *envFlags) string(p *string, name, def, usage string) {
	key := envKey(name)
	e.fs.StringVar(p, name, cmp.Or(e.getenv(key), def), usage+envUsage(key))
}

func (e *envFlags) bool(p *bool, name string, def bool, usage string) {
	envFlag(e, e.fs.BoolVar, strconv.ParseBool, "true or false", p, name, def, usage)
}

// int is a whole number; bytes is one too, a size.
func (e *envFlags) int(p *int, name string, def int, usage string) {
	envFlag(e, e.fs.IntVar, strconv.Atoi, "a whole number", p, name, def, usage)
}

func (e *envFlags) bytes(p *int, name string, def int, usage string) {
	envFlag(e, e.fs.IntVar, strconv.Atoi, "a number of bytes", p, name, def, usage)
}

func (e *envFlags) duration(p *time.Duration, name string, def time.Duration, usage string) {
	envFlag(e, e.fs.DurationVar, time.ParseDuration, "a duration like 10s", p, name, def, usage)
}

func (e *envFlags) float(p *float64, name string, def float64, usage string) {
	parse := func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }
	envFlag(e, e.fs.Float64Var, parse, "a number", p, name, def, usage)
}

// envFlag defines a flag with define; its default is its variable's value,
// parsed, or def when the variable is unset.
func envFlag[T any](e *envFlags, define func(*T, string, T, string), parse func(string) (T, error), want string, p *T, name string, def T, usage string) {
	key := envKey(name)
	v := def
	if raw := e.getenv(key); raw != "" {
		var err error
		if v, err = parse(raw); err != nil {
			e.err = errors.Join(e.err, fmt.Errorf("%s=%q: want %s", key, raw, want))
		}
	}
	define(p, name, v, usage+envUsage(key))
}

// envKey is the variable of flag --a-b: SLUICE_A_B.
func envKey(flagName string) string {
	return "SLUICE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// envUsage is the ending of a flag's usage that names its variable.
func envUsage(key string) string { return " (env " + key + ")" }
