package store

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// autoScripter is a redis.Scripter on go-redis's (experimental) deferred
// autopipeliner: each script call is submitted and then awaited with the
// caller's context, so a caller never waits past its deadline.
type autoScripter struct {
	rdb *redis.Client
	ap  *redis.AutoPipeliner
}

func newAutoScripter(rdb *redis.Client, opts *redis.AutoPipelineOptions) (*autoScripter, error) {
	ap, err := rdb.AsyncAutoPipelineWithOptions(opts)
	if err != nil {
		return nil, err
	}
	return &autoScripter{rdb: rdb, ap: ap}, nil
}

func (a *autoScripter) do(ctx context.Context, name, payload string, keys []string, args []any) *redis.Cmd {
	cmd := evalCmd(ctx, name, payload, keys, args)
	if err := a.ap.Submit(ctx, cmd).WaitContext(ctx); err != nil && ctx.Err() != nil {
		return failed(ctx, ctx.Err())
	}
	return cmd
}

func (a *autoScripter) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return a.do(ctx, "eval", script, keys, args)
}

func (a *autoScripter) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return a.do(ctx, "evalsha", sha1, keys, args)
}

func (a *autoScripter) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return a.do(ctx, "eval_ro", script, keys, args)
}

func (a *autoScripter) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return a.do(ctx, "evalsha_ro", sha1, keys, args)
}

func (a *autoScripter) ScriptExists(ctx context.Context, hashes ...string) *redis.BoolSliceCmd {
	return a.rdb.ScriptExists(ctx, hashes...)
}

func (a *autoScripter) ScriptLoad(ctx context.Context, script string) *redis.StringCmd {
	return a.rdb.ScriptLoad(ctx, script)
}

func (a *autoScripter) Close() error { return a.ap.Close() }
