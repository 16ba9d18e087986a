package lua

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// A cmdSender takes a script call whose command line is already built and
// returns the command holding its reply (the store's Batcher).
type cmdSender interface {
	Send(ctx context.Context, cmd *redis.Cmd) *redis.Cmd
}

// A cmdProcessor runs a built command (*redis.Client, *redis.ClusterClient).
type cmdProcessor interface {
	Process(ctx context.Context, cmd redis.Cmder) error
}

// newEvalSha starts the EVALSHA command line of script with nkeys keys and
// room for them and nargs arguments: the caller appends the keys, then the
// arguments.
func newEvalSha(script *redis.Script, nkeys, nargs int) []any {
	line := make([]any, 3, 3+nkeys+nargs)
	line[0], line[1], line[2] = "evalsha", script.Hash(), nkeys
	return line
}

// runEvalSha runs script with line, built by newEvalSha, as
// redis.Script.Run does — EVALSHA, and EVAL of the source when Redis answers
// NOSCRIPT (restarted without its scripts, SCRIPT FLUSH, a failover) — but
// sends line as it is, building no second command line, when rdb takes a
// built command. Other Scripters, and the EVAL, go through script as before.
func runEvalSha(ctx context.Context, rdb redis.Scripter, script *redis.Script, line []any) *redis.Cmd {
	var cmd *redis.Cmd
	switch r := rdb.(type) {
	case cmdSender:
		cmd = r.Send(ctx, newCmd(ctx, line))
	case cmdProcessor:
		cmd = newCmd(ctx, line)
		_ = r.Process(ctx, cmd) // the error is cmd's
	default:
		keys, args := splitLine(line)
		return script.Run(ctx, rdb, keys, args...)
	}
	if isNoScript(cmd.Err()) {
		keys, args := splitLine(line)
		return script.Eval(ctx, rdb, keys, args...)
	}
	return cmd
}

// newCmd is the command of line, with its first key where go-redis's Eval
// family puts it (a cluster client routes by it).
func newCmd(ctx context.Context, line []any) *redis.Cmd {
	cmd := redis.NewCmd(ctx, line...)
	if line[2].(int) > 0 {
		cmd.SetFirstKeyPos(3)
	}
	return cmd
}

// splitLine returns the keys and the arguments of an EVALSHA command line.
func splitLine(line []any) (keys []string, args []any) {
	n := line[2].(int)
	keys = make([]string, n)
	for i := range keys {
		keys[i] = line[3+i].(string)
	}
	return keys, line[3+n:]
}

// isNoScript reports whether err says Redis does not have the script, as
// redis.Script.Run decides it.
func isNoScript(err error) bool {
	return err != nil && (errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT"))
}
