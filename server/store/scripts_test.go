package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/internal/redistest"
	"github.com/sluice-rl/sluice/lua"
)

// TestScriptsFallBackToEvalAfterFlush runs Sluice's own scripts (a window
// charge, a reservation and its report) through every way a Store sends
// them, on a real redis-server that has forgotten them (SCRIPT FLUSH, as
// after a restart or a failover): each call tries EVALSHA, gets NOSCRIPT,
// falls back to EVAL of the source and is answered; once the EVAL has put
// the script back in the server's cache, calls go by EVALSHA again.
func TestScriptsFallBackToEvalAfterFlush(t *testing.T) {
	cases := append(variants[:len(variants):len(variants)], struct {
		name string
		cfg  Config
	}{"batch-merged", Config{Batch: BatchConfig{Mergers: []Merger{lua.NewMerger()}}}})
	for _, v := range cases {
		t.Run(v.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s := openStore(t, redistest.New(t).URL(), v.cfg)
			win, rep := lua.NewWindow(lua.Packed), lua.NewReport(lua.Packed)
			counter := lua.Counter{Key: testKey(t, "c"), Bucket: time.Second, Buckets: 10, Limit: 1000, Cost: 1}
			tokens := lua.Counter{Key: testKey(t, "tokens"), Bucket: time.Second, Buckets: 10, Limit: 1000, Cost: 5, Op: lua.OpReserve, Kind: 1}
			round := 0
			decide := func() {
				t.Helper()
				round++
				res, err := win.Run(ctx, s.Scripter, lua.Charge, []lua.Counter{counter})
				if err != nil || !res.Allowed || res.Counters[0].Used != uint64(round) {
					t.Fatalf("round %d: window: %+v, %v; want allowed with used %d", round, res, err, round)
				}
				rec := testKey(t, fmt.Sprint("rec", round))
				if res, err := win.Reserve(ctx, s.Scripter, []lua.Counter{tokens}, rec, time.Minute); err != nil || !res.Allowed {
					t.Fatalf("round %d: reserve: %+v, %v", round, res, err)
				}
				rr, err := rep.Run(ctx, s.Scripter, rec, lua.Actual{1: 2})
				if err != nil || rr.Status != lua.ReportReconciled {
					t.Fatalf("round %d: report: %+v, %v; want reconciled", round, rr, err)
				}
			}
			decide() // before any SCRIPT LOAD: NOSCRIPT, then EVAL
			for _, flush := range []bool{false, true, true} {
				if flush {
					// Our own server: flushing its scripts is ours to do.
					if err := s.Client.ScriptFlush(ctx).Err(); err != nil {
						t.Fatal(err)
					}
				}
				sha, eval := scriptStats(t, s)
				decide()
				sha2, eval2 := scriptStats(t, s)
				wantEval := 0
				if flush {
					// window and report: the reservation runs window.lua,
					// which the window call's EVAL has put back.
					wantEval = 2
				}
				if sha2-sha != 3 || eval2-eval != wantEval {
					t.Errorf("flush %v: %d EVALSHA and %d EVAL for three calls, want 3 and %d", flush, sha2-sha, eval2-eval, wantEval)
				}
			}
			// Concurrent callers all see NOSCRIPT (in one batch, or one merged
			// call) and each still gets its own answer.
			if err := s.Client.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for i := range 16 {
				c := counter
				c.Key = testKey(t, fmt.Sprint("c", i))
				wg.Go(func() {
					res, err := win.Run(ctx, s.Scripter, lua.Charge, []lua.Counter{c})
					if err != nil || !res.Allowed || res.Counters[0].Used != 1 {
						errs <- fmt.Errorf("caller %d after SCRIPT FLUSH: %+v, %v", i, res, err)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// scriptStats is the number of EVALSHA and EVAL calls the server has run,
// those refused included.
func scriptStats(t *testing.T, s *Store) (evalsha, eval int) {
	t.Helper()
	info, err := s.Client.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(info) {
		var n int
		if rest, ok := strings.CutPrefix(line, "cmdstat_evalsha:calls="); ok {
			fmt.Sscanf(rest, "%d", &n)
			evalsha = n
		} else if rest, ok := strings.CutPrefix(line, "cmdstat_eval:calls="); ok {
			fmt.Sscanf(rest, "%d", &n)
			eval = n
		}
	}
	return evalsha, eval
}
