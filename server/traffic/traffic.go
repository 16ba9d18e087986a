// Package traffic counts, per API and environment, the calls every replica
// admitted and refused in each second of the last minutes, for the admin
// console's live chart.
//
// # How it works
//
// A decision whose descriptor matched a limit at [api=<name>,
// environment=<env>, ...] adds one to that API environment's admitted or
// refused count in memory (two atomic adds and a lock-free map read: the hot
// path never waits on Redis). Once a second, off the hot path, each replica
// folds what it counted into one Redis hash per domain and second —
// HINCRBY per API environment that had calls, and an EXPIRE, in one
// pipeline — so that the hash of a second holds every replica's calls and a
// console served by any replica shows the whole API's traffic. The hashes
// expire after a few minutes, like every counter key.
//
// A second's count is the calls a replica counted between two of its folds,
// filed under the second that just ended by its clock: with clocks in step
// (NTP) the series is right to a few milliseconds per second.
package traffic

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/limiter"
)

// Keep is how long Redis keeps a second's counts.
const Keep = 3 * time.Minute

// MaxTracked bounds how many API environments a replica counts; beyond it
// new ones are not counted (a wildcard api descriptor could otherwise grow
// the map with every value callers send).
const MaxTracked = 10_000

// Key names one API environment of a domain.
type Key struct{ Domain, API, Environment string }

// counts are one API environment's calls since the last fold.
type counts struct {
	admitted, refused atomic.Uint64
	idle              int // folds in a row without calls (the folder's own)
}

// Recorder counts decisions and folds the counts into Redis. Its Decided is
// a limiter.Observer method; the others are no-ops.
type Recorder struct {
	rdb     redis.UniversalClient
	prefix  string
	counts  sync.Map // Key → *counts
	tracked atomic.Int64
	now     func() time.Time
}

// NewRecorder folds into rdb under keys starting with prefix (e.g. "sluice:"):
// <prefix>{traffic|<domain>}:<unix second>.
func NewRecorder(rdb redis.UniversalClient, prefix string) *Recorder {
	return &Recorder{rdb: rdb, prefix: prefix, now: time.Now}
}

// Decided counts a decision once for every API environment its descriptors
// matched a limit at.
func (r *Recorder) Decided(_ context.Context, req *limiter.Request, rules []config.Rule, dec *limiter.Decision) {
	for i := range rules {
		p := rules[i].Path
		if len(p) < 2 || p[0].Key != "api" || p[1].Key != "environment" {
			continue
		}
		k := Key{req.Domain, p[0].Value, p[1].Value}
		if i > 0 && seenBefore(rules[:i], k) {
			continue
		}
		c := r.countsOf(k)
		if c == nil {
			continue
		}
		if dec.Over {
			c.refused.Add(1)
		} else {
			c.admitted.Add(1)
		}
	}
}

// seenBefore reports whether an earlier rule named k's API environment.
func seenBefore(rules []config.Rule, k Key) bool {
	for _, r := range rules {
		if p := r.Path; len(p) >= 2 && p[0].Key == "api" && p[1].Key == "environment" && p[0].Value == k.API && p[1].Value == k.Environment {
			return true
		}
	}
	return false
}

func (r *Recorder) countsOf(k Key) *counts {
	if c, ok := r.counts.Load(k); ok {
		return c.(*counts)
	}
	if r.tracked.Load() >= MaxTracked {
		return nil
	}
	c, loaded := r.counts.LoadOrStore(k, &counts{})
	if !loaded {
		r.tracked.Add(1)
	}
	return c.(*counts)
}

// Reported is a no-op: reports are not calls.
func (r *Recorder) Reported(context.Context, *limiter.ReportRequest, *limiter.ReportResult) {}

// StoreCall is a no-op.
func (r *Recorder) StoreCall(context.Context, string, time.Duration, error) {}

// Run folds the counts into Redis just after every second boundary until
// ctx is done, and once more then.
func (r *Recorder) Run(ctx context.Context) {
	for {
		now := r.now()
		next := now.Truncate(time.Second).Add(time.Second + 10*time.Millisecond)
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = r.Fold(fctx, r.now())
			cancel()
			return
		case <-time.After(next.Sub(now)):
			fctx, cancel := context.WithTimeout(ctx, time.Second)
			_ = r.Fold(fctx, r.now()) // counts of a failed fold are lost: it is a chart
			cancel()
		}
	}
}

// Fold adds what was counted since the last fold to the second before now's,
// in one pipeline, and forgets API environments without calls for Keep.
func (r *Recorder) Fold(ctx context.Context, now time.Time) error {
	sec := now.Unix() - 1
	pipe := r.rdb.Pipeline()
	keys := map[string]bool{}
	r.counts.Range(func(k, v any) bool {
		key, c := k.(Key), v.(*counts)
		a, f := c.admitted.Swap(0), c.refused.Swap(0)
		if a == 0 && f == 0 {
			if c.idle++; c.idle > int(Keep/time.Second) {
				r.counts.Delete(key)
				r.tracked.Add(-1)
			}
			return true
		}
		c.idle = 0
		hk := r.key(key.Domain, sec)
		keys[hk] = true
		if a > 0 {
			pipe.HIncrBy(ctx, hk, field("a", key), int64(a))
		}
		if f > 0 {
			pipe.HIncrBy(ctx, hk, field("r", key), int64(f))
		}
		return true
	})
	if len(keys) == 0 {
		return nil
	}
	for hk := range keys {
		pipe.Expire(ctx, hk, Keep)
	}
	_, err := pipe.Exec(ctx)
	return err
}

func (r *Recorder) key(domain string, sec int64) string {
	return r.prefix + "{traffic|" + domain + "}:" + strconv.FormatInt(sec, 10)
}

// field names one count in a second's hash: kind (a or r), API and
// environment, separated by NUL, which names do not contain.
func field(kind string, k Key) string { return kind + "\x00" + k.API + "\x00" + k.Environment }

// Series is one API environment's calls per second.
type Series struct{ Admitted, Refused []uint64 }

// Read returns every replica's counts for domain over the n seconds that end
// with the last whole second before now (the one being folded is left out),
// per API environment, and the first second's start.
func (r *Recorder) Read(ctx context.Context, domain string, n int, now time.Time) (time.Time, map[Key]Series, error) {
	last := now.Add(-1100 * time.Millisecond).Unix() // folded by every replica by now
	first := last - int64(n) + 1
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, n)
	for i := range cmds {
		cmds[i] = pipe.HGetAll(ctx, r.key(domain, first+int64(i)))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return time.Time{}, nil, err
	}
	out := map[Key]Series{}
	for i, cmd := range cmds {
		for f, v := range cmd.Val() {
			kind, api, env, ok := splitField(f)
			n, err := strconv.ParseUint(v, 10, 64)
			if !ok || err != nil {
				return time.Time{}, nil, fmt.Errorf("traffic: field %q = %q", f, v)
			}
			k := Key{domain, api, env}
			s, ok := out[k]
			if !ok {
				s = Series{Admitted: make([]uint64, len(cmds)), Refused: make([]uint64, len(cmds))}
			}
			if kind == "a" {
				s.Admitted[i] = n
			} else {
				s.Refused[i] = n
			}
			out[k] = s
		}
	}
	return time.Unix(first, 0), out, nil
}

func splitField(f string) (kind, api, env string, ok bool) {
	parts := strings.Split(f, "\x00")
	if len(parts) != 3 || (parts[0] != "a" && parts[0] != "r") {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}
