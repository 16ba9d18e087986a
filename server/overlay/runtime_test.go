package overlay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-rl/sluice/internal/redistest"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// backends runs f on miniredis and on a real redis-server.
func backends(t *testing.T, f func(t *testing.T, rdb redis.UniversalClient)) {
	t.Run("miniredis", func(t *testing.T) {
		m := miniredis.RunT(t)
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
		t.Cleanup(func() { _ = rdb.Close() })
		f(t, rdb)
	})
	t.Run("redis", func(t *testing.T) {
		if testing.Short() {
			t.Skip("real redis-server")
		}
		f(t, redistest.Client(t, redistest.New(t)))
	})
}

var sandbox = []config.Entry{{Key: "api", Value: "PizzaShackAPI:1.0.0"}, {Key: "environment", Value: "sandbox"}}

func requests(n int64, window string) *sluicev1.RuntimeLimit {
	return &sluicev1.RuntimeLimit{RateLimit: &sluicev1.RequestLimit{Requests: proto.Int64(n), Window: proto.String(window)}}
}

func TestFragmentNamesFieldsAsTheAPI(t *testing.T) {
	lim := &sluicev1.RuntimeLimit{
		Domain:     "ignored",
		RateLimits: []*sluicev1.RequestLimit{{Unit: proto.String("second"), RequestsPerUnit: proto.Int64(100)}, {Window: proto.String("1h"), Requests: proto.Int64(0), Buckets: proto.Int64(60), Name: proto.String("hourly"), Replaces: []*sluicev1.LimitName{{Name: proto.String("x")}}}},
		TokenLimit: &sluicev1.TokenLimit{Window: proto.String("1m"), TotalTokens: proto.Int64(1000), PromptTokens: proto.Int64(600)},
		ShadowMode: proto.Bool(true),
		Version:    "9",
	}
	o, err := Override("apim", sandbox, lim)
	if err != nil {
		t.Fatal(err)
	}
	set := (&config.Set{}).Overlay([]*config.Override{o})
	d, _ := set.Domain("apim")
	r, ok := d.Match(sandbox)
	if !ok || len(r.Limits) != 4 || !r.Shadow || r.Limits[1].Requests != 0 || r.Limits[1].Buckets != 60 || r.Limits[3].Kind != config.KindPromptTokens {
		t.Fatalf("rule %+v", r)
	}
	for _, tc := range []struct {
		lim   *sluicev1.RuntimeLimit
		field string
	}{
		{requests(-1, "1s"), "rate_limit.requests"},
		{requests(5, "1 second"), "rate_limit.window"},
		{&sluicev1.RuntimeLimit{}, "rate_limit"},
		{&sluicev1.RuntimeLimit{RateLimit: &sluicev1.RequestLimit{}}, "rate_limit.unit"},
		{&sluicev1.RuntimeLimit{TokenLimits: []*sluicev1.TokenLimit{{Window: proto.String("1m"), TotalTokens: proto.Int64(1)}, {Window: proto.String("1m"), TotalTokens: proto.Int64(2)}}}, "token_limits[1]"},
	} {
		_, err := Override("apim", sandbox, tc.lim)
		var ps config.Problems
		if !errors.As(err, &ps) || ps[0].Field != tc.field {
			t.Errorf("%v: %v, want a problem at %s", tc.lim, err, tc.field)
		}
	}
}

func TestStoreWriteSnapshotAudit(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		s := NewStore(rdb, "t:")
		alice := Actor{Who: "alice", Remote: "127.0.0.1:5"}
		production := []config.Entry{sandbox[0], {Key: "environment", Value: "production"}}

		w, err := s.Write(ctx, alice, []Change{{Domain: "apim", Path: sandbox, Limit: requests(3, "1s"), Expect: "0"}, {Domain: "apim", Path: production, Limit: requests(30, "1s")}})
		if err != nil || w.Revision != 1 {
			t.Fatalf("write: %+v %v", w, err)
		}
		snap, err := s.Snapshot(ctx)
		if err != nil || snap.Revision != 1 || len(snap.Records) != 2 || len(snap.Problems) != 0 {
			t.Fatalf("snapshot %+v %v", snap, err)
		}
		rec := snap.Find("apim", sandbox)
		if rec == nil || rec.Version != 1 || rec.UpdatedBy != "alice" || !rec.UpdatedAt.Equal(w.Time) || rec.Limit.GetRateLimit().GetRequests() != 3 {
			t.Fatalf("record %+v", rec)
		}
		if p := rec.Proto(); p.Version != "1" || p.Domain != "apim" || len(p.Path) != 2 || p.UpdatedBy != "alice" {
			t.Errorf("proto %v", p)
		}
		if snap.Records[0].Path[1].Value != "production" {
			t.Errorf("records not sorted by path: %v", snap.Records[0].Path)
		}

		// Stale, bad and missing writes change nothing.
		var stale *StaleError
		if _, err := s.Write(ctx, alice, []Change{{Domain: "apim", Path: production, Limit: requests(1, "1s"), Expect: "1"}, {Domain: "apim", Path: sandbox, Limit: requests(1, "1s"), Expect: "0"}}); !errors.As(err, &stale) || stale.Change != 1 || stale.Current != 1 {
			t.Errorf("stale write: %v", err)
		}
		var ps config.Problems
		if _, err := s.Write(ctx, alice, []Change{{Domain: "apim", Path: production, Limit: requests(1, "1s")}, {Domain: "apim", Path: sandbox, Limit: requests(-1, "1s")}}); !errors.As(err, &ps) {
			t.Errorf("bad write: %v", err)
		}
		if _, err := s.Write(ctx, alice, []Change{{Domain: "apim", Path: []config.Entry{{Key: "x", Value: "y"}}, MustExist: true}}); !errors.As(err, &stale) || stale.Current != 0 {
			t.Errorf("delete of nothing: %v", err)
		}
		if _, err := s.Write(ctx, alice, []Change{{Domain: "apim", Path: sandbox, Expect: "one"}}); !errors.Is(err, ErrVersion) {
			t.Errorf("bad version: %v", err)
		}
		if rev, _ := s.Revision(ctx); rev != 1 {
			t.Fatalf("refused writes moved the revision to %d", rev)
		}

		if _, err := s.Write(ctx, Actor{Who: "bob"}, []Change{{Domain: "apim", Path: sandbox, Expect: "1"}}); err != nil {
			t.Fatal(err)
		}
		// Audit: newest first, pages by cursor.
		page, err := s.Audit(ctx, 0, 2)
		if err != nil || len(page) != 2 {
			t.Fatalf("audit %+v %v", page, err)
		}
		if e := page[0]; e.Revision != 2 || e.Who != "bob" || e.Action != "delete" || e.Old == nil || e.Old.Limit.GetRateLimit().GetRequests() != 3 || e.New != nil {
			t.Errorf("newest entry %+v", e)
		}
		if e := page[1]; e.Revision != 1 || e.Who != "alice" || e.Remote != "127.0.0.1:5" || e.Action != "put" || e.Old != nil || e.New == nil {
			t.Errorf("second entry %+v", e)
		}
		rest, err := s.Audit(ctx, page[1].Cursor, 10)
		if err != nil || len(rest) != 1 || rest[0].Revision != 1 || rest[0].Cursor >= page[1].Cursor {
			t.Errorf("next page %+v %v", rest, err)
		}
	})
}

func TestSnapshotSkipsBadRecords(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	s := NewStore(rdb, "t:")
	ctx := context.Background()
	if _, err := s.Write(ctx, Actor{Who: "a"}, []Change{{Domain: "apim", Path: sandbox, Limit: requests(3, "1s")}}); err != nil {
		t.Fatal(err)
	}
	m.HSet("t:{runtime}:limits", "junk", "{not json")
	m.HSet("t:{runtime}:limits", "future", `{"version":1,"updated_at_us":1,"domain":"apim","path":[{"key":"k"}],"limit":{"quota":true}}`)
	snap, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Records) != 1 || len(snap.Problems) != 2 {
		t.Errorf("records %d problems %v", len(snap.Records), snap.Problems)
	}
}

// TestWatcherAppliesByMessageAndByPoll checks both ways a change reaches a
// replica: the published revision (with a poll interval far too long to
// matter), and polling alone when no message comes.
func TestWatcherAppliesByMessageAndByPoll(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient) {
		for _, tc := range []struct {
			name    string
			poll    time.Duration
			channel string // the writer's; another one loses the message
		}{{"message", time.Hour, ""}, {"poll", 50 * time.Millisecond, "elsewhere"}} {
			t.Run(tc.name, func(t *testing.T) {
				prefix := "w" + tc.name + ":"
				reader := NewStore(rdb, prefix)
				writer := NewStore(rdb, prefix)
				if tc.channel != "" {
					writer.channel = tc.channel
				}
				got := make(chan *Snapshot, 10)
				w := NewWatcher(reader, tc.poll, func(s *Snapshot) { got <- s }, func(err error) { t.Error(err) })
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				if err := w.Refresh(ctx); err != nil || !w.Loaded() {
					t.Fatal(err)
				}
				if s := <-got; s.Revision != 0 {
					t.Fatalf("first snapshot at %d", s.Revision)
				}
				wg.Go(func() { w.Run(ctx) })
				defer func() { cancel(); wg.Wait() }()
				// The subscription may not be in place yet when the first
				// write is published: write until a snapshot comes.
				deadline := time.After(5 * time.Second)
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for i := int64(1); ; i++ {
					if _, err := writer.Write(ctx, Actor{Who: "t"}, []Change{{Domain: "apim", Path: sandbox, Limit: requests(i, "1s")}}); err != nil {
						t.Fatal(err)
					}
					select {
					case s := <-got:
						if rec := s.Find("apim", sandbox); rec == nil || s.Revision < 1 {
							t.Fatalf("snapshot %+v", s)
						}
						return
					case <-tick.C:
					case <-deadline:
						t.Fatal("no snapshot within 5s")
					}
				}
			})
		}
	})
}

func TestWatcherReportsAFailureOncePerStreak(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1})
	defer rdb.Close()
	var reports []error
	applied := 0
	w := NewWatcher(NewStore(rdb, "t:"), 0, func(*Snapshot) { applied++ }, func(err error) { reports = append(reports, err) })
	ctx := context.Background()
	if err := w.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	m.SetError("down")
	for range 3 {
		var se *StoreError
		if err := w.Refresh(ctx); !errors.As(err, &se) {
			t.Fatalf("refresh while down: %v", err)
		}
	}
	m.SetError("")
	if err := w.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if len(reports) != 1 || applied != 1 {
		t.Errorf("reports %v applied %d, want one report and the first snapshot only", reports, applied)
	}
}

// TestEffectiveWinnerDoesNotDependOnOrder races base changes against
// runtime changes: whatever the order, the result is the latest base with
// the latest runtime limits laid over it, the runtime limit winning at its
// path.
func TestEffectiveWinnerDoesNotDependOnOrder(t *testing.T) {
	base := func(n int) *config.Set {
		d, err := config.Parse("f.yaml", fmt.Appendf(nil, `
domain: apim
descriptors:
  - key: api
    value: PizzaShackAPI:1.0.0
    descriptors:
      - {key: environment, value: sandbox, rate_limit: {unit: minute, requests_per_unit: %d}}
      - {key: environment, value: production, rate_limit: {unit: minute, requests_per_unit: %d}}
`, n, n))
		if err != nil {
			t.Fatal(err)
		}
		s, _ := config.NewSet(d)
		return s
	}
	snap := func(n int64) *Snapshot {
		o, err := Override("apim", sandbox, requests(n, "1m"))
		if err != nil {
			t.Fatal(err)
		}
		return &Snapshot{Revision: n, Records: []*Record{{Domain: "apim", Path: sandbox, Override: o}}}
	}
	capAt := func(s *config.Set, env string) uint64 {
		d, _ := s.Domain("apim")
		r, _ := d.Match([]config.Entry{sandbox[0], {Key: "environment", Value: env}})
		return r.Limits[0].Requests
	}
	for range 20 {
		e := NewEffective(base(10))
		var wg sync.WaitGroup
		wg.Go(func() { e.SetBase(base(20)) })
		wg.Go(func() { e.SetSnapshot(snap(30)) })
		wg.Wait()
		if got := capAt(e.Load(), "sandbox"); got != 30 {
			t.Fatalf("sandbox %d, want the runtime 30 whatever came first", got)
		}
		if got := capAt(e.Load(), "production"); got != 20 {
			t.Fatalf("production %d, want the new file's 20", got)
		}
		e.SetSnapshot(&Snapshot{Revision: 31})
		if got := capAt(e.Load(), "sandbox"); got != 20 {
			t.Fatalf("after the delete sandbox is %d, want the new file's 20", got)
		}
	}
	if st := NewEffective(base(1)).State(); st.Snapshot != nil || st.Set != st.Base {
		t.Errorf("initial state %+v", st)
	}
}

// TestWriteCheckOnlyGuardsAPathItDoesNotChange checks that a version check
// of one path stops the write of another, and that a write of nothing but
// checks changes nothing.
func TestWriteCheckOnlyGuardsAPathItDoesNotChange(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	s := NewStore(rdb, "t:")
	ctx := context.Background()
	other := []config.Entry{sandbox[0], {Key: "environment", Value: "production"}}
	if _, err := s.Write(ctx, Actor{Who: "a"}, []Change{{Domain: "apim", Path: sandbox, Limit: requests(1, "1s")}}); err != nil {
		t.Fatal(err)
	}
	var stale *StaleError
	_, err := s.Write(ctx, Actor{Who: "b"}, []Change{{Domain: "apim", Path: sandbox, CheckOnly: true, Expect: "0"}, {Domain: "apim", Path: other, Limit: requests(2, "1s")}})
	if !errors.As(err, &stale) || stale.Change != 0 || stale.Current != 1 {
		t.Fatalf("write behind a failed check: %v", err)
	}
	w, err := s.Write(ctx, Actor{Who: "b"}, []Change{{Domain: "apim", Path: sandbox, CheckOnly: true, Expect: "1"}, {Domain: "apim", Path: other}})
	if err != nil || w.Changed || w.Revision != 1 {
		t.Fatalf("checks only: %+v %v", w, err)
	}
	if snap, _ := s.Snapshot(ctx); snap.Revision != 1 || len(snap.Records) != 1 {
		t.Errorf("snapshot %+v", snap)
	}
}
