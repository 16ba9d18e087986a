package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/internal/leakcheck"
	"github.com/sluice-rl/sluice/internal/redistest"
)

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{}) // the stopped-Redis tests make go-redis log every failed dial
	leakcheck.VerifyTestMain(m)
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// echoIncr returns its first argument (so a caller can tell its own reply
// from another's) and the new value of a counter (distinct for every call).
var echoIncr = redis.NewScript(`return {ARGV[1], redis.call('INCR', KEYS[1])}`)

// variants are the ways a Store can send scripts; every test runs on each.
var variants = []struct {
	name string
	cfg  Config
}{
	{"batch", Config{}},
	{"batch-1flusher-maxbatch4", Config{Batch: BatchConfig{Flushers: 1, MaxBatch: 4, QueueSize: 8}}},
	{"plain", Config{Pipelining: PipelineNone}},
}

func openStore(t testing.TB, url string, cfg Config) *Store {
	t.Helper()
	s, err := OpenConfig(url, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// testKey prefixes key with the test's name, so tests never share keys.
func testKey(t testing.TB, key string) string {
	return "{" + strings.ReplaceAll(t.Name(), "/", ":") + "}:" + key
}

// servers runs fn against a real redis-server and against miniredis.
func servers(t *testing.T, fn func(t *testing.T, url string)) {
	t.Run("redis", func(t *testing.T) { fn(t, redistest.New(t).URL()) })
	t.Run("miniredis", func(t *testing.T) {
		mr := miniredis.RunT(t)
		fn(t, "redis://"+mr.Addr())
	})
}

// runEcho calls echoIncr with token and checks the reply carries it back.
func runEcho(ctx context.Context, sc redis.Scripter, key, token string) (int64, error) {
	v, err := echoIncr.Run(ctx, sc, []string{key}, token).Slice()
	if err != nil {
		return 0, err
	}
	if len(v) != 2 {
		return 0, fmt.Errorf("reply %v: want 2 values", v)
	}
	if got, _ := v[0].(string); got != token {
		return 0, fmt.Errorf("reply for %q carries %q: another caller's answer", token, v[0])
	}
	n, ok := v[1].(int64)
	if !ok {
		return 0, fmt.Errorf("reply %v: counter is %T", v, v[1])
	}
	return n, nil
}

// hammer makes callers×calls concurrent calls and checks every caller got its
// own reply and every counter value was handed out exactly once.
func hammer(t *testing.T, sc redis.Scripter, key string, callers, calls int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := make([]int, callers*calls+1)
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := range callers {
		wg.Go(func() {
			for i := range calls {
				n, err := runEcho(ctx, sc, key, fmt.Sprintf("caller-%d-call-%d", g, i))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if n >= 1 && int(n) < len(seen) {
					seen[n]++
				} else {
					seen[0]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for n, c := range seen {
		if (n == 0 && c != 0) || (n > 0 && c != 1) {
			t.Fatalf("counter value %d handed out %d times", n, c)
		}
	}
}

func TestEveryCallerGetsItsOwnReply(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			servers(t, func(t *testing.T, url string) {
				s := openStore(t, url, v.cfg)
				hammer(t, s.Scripter, testKey(t, "n"), 64, 50)
			})
		})
	}
}

func TestNoScriptFallbackAfterFlush(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			servers(t, func(t *testing.T, url string) {
				ctx := context.Background()
				s := openStore(t, url, v.cfg)
				if err := echoIncr.Load(ctx, s.Scripter).Err(); err != nil {
					t.Fatal(err)
				}
				key := testKey(t, "n")
				if _, err := runEcho(ctx, s.Scripter, key, "before"); err != nil {
					t.Fatal(err)
				}
				// Our own server: flushing its scripts is ours to do.
				if err := s.Client.ScriptFlush(ctx).Err(); err != nil {
					t.Fatal(err)
				}
				// Concurrent calls all see NOSCRIPT in one batch and each falls back.
				var wg sync.WaitGroup
				errs := make(chan error, 16)
				for i := range 16 {
					wg.Go(func() {
						if _, err := runEcho(ctx, s.Scripter, key, fmt.Sprint("after-", i)); err != nil {
							errs <- err
						}
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Fatalf("after SCRIPT FLUSH: %v", err)
				}
				if n, err := s.Client.Get(ctx, key).Int(); err != nil || n != 17 {
					t.Fatalf("counter = %d, %v; want 17", n, err)
				}
			})
		})
	}
}

// callWithin runs one echo call with a deadline of d and checks it fails,
// with an error, within d plus a little scheduling slack.
func callWithin(t *testing.T, sc redis.Scripter, key string, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	_, err := runEcho(ctx, sc, key, "x")
	if took := time.Since(start); took > d+500*time.Millisecond {
		t.Errorf("call took %v with a deadline of %v", took, d)
	}
	if err == nil {
		t.Error("call succeeded, want an error")
	}
	return err
}

func TestDeadlineWhenRedisStopped(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			rs := redistest.New(t)
			s := openStore(t, rs.URL(), v.cfg)
			key := testKey(t, "n")
			hammer(t, s.Scripter, key, 8, 10) // connections pooled and warm
			if err := rs.Stop(); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() { callWithin(t, s.Scripter, key, 300*time.Millisecond) })
			}
			wg.Wait()
		})
	}
}

// blackhole accepts connections and reads them but never answers: a Redis
// that hangs.
func blackhole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "redis://" + l.Addr().String()
}

func TestDeadlineWhenRedisHangs(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			s := openStore(t, blackhole(t), v.cfg)
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					err := callWithin(t, s.Scripter, testKey(t, "n"), 300*time.Millisecond)
					if !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
						t.Errorf("err = %v, want a deadline error", err)
					}
				})
			}
			wg.Wait()
		})
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestRecoversAfterRestart(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			rs := redistest.New(t)
			s := openStore(t, rs.URL(), v.cfg)
			key := testKey(t, "n")
			hammer(t, s.Scripter, key, 8, 10)
			if err := rs.Restart(); err != nil { // no data, no scripts survive
				t.Fatal(err)
			}
			// Pooled connections are dead; the first calls may see that.
			deadline := time.Now().Add(5 * time.Second)
			for {
				_, err := runEcho(context.Background(), s.Scripter, key, "probe")
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no recovery after restart: %v", err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			// The counter restarted with the server; one probe may have landed.
			if err := s.Client.Del(context.Background(), key).Err(); err != nil {
				t.Fatal(err)
			}
			hammer(t, s.Scripter, key, 32, 20)
		})
	}
}

func TestCallsAfterCloseFail(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			mr := miniredis.RunT(t)
			s, err := OpenConfig("redis://"+mr.Addr(), v.cfg)
			if err != nil {
				t.Fatal(err)
			}
			hammer(t, s.Scripter, testKey(t, "n"), 4, 4)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if _, err := runEcho(ctx, s.Scripter, testKey(t, "n"), "x"); !errors.Is(err, redis.ErrClosed) {
				t.Fatalf("after Close: err = %v, want redis.ErrClosed", err)
			}
		})
	}
}

// TestCloseWhileCallsWait closes a Batcher under load: every caller returns,
// with its reply or an error, and no goroutine is left (TestMain checks).
func TestCloseWhileCallsWait(t *testing.T) {
	rs := redistest.New(t)
	s, err := OpenConfig(rs.URL(), Config{Batch: BatchConfig{Flushers: 1, MaxBatch: 2, QueueSize: 4}})
	if err != nil {
		t.Fatal(err)
	}
	key := testKey(t, "n")
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for {
				if _, err := runEcho(ctx, s.Scripter, key, "x"); err != nil {
					if !errors.Is(err, redis.ErrClosed) {
						t.Errorf("err = %v, want redis.ErrClosed", err)
					}
					return
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

func TestCanceledContextIsNotSent(t *testing.T) {
	ctx := context.Background()
	mr := miniredis.RunT(t)
	s := openStore(t, "redis://"+mr.Addr(), Config{})
	key := testKey(t, "n")
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := runEcho(canceled, s.Scripter, key, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if mr.Exists(key) {
		t.Fatal("a call with a canceled context reached Redis")
	}
}

func TestOpen(t *testing.T) {
	s, err := Open("")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Embedded {
		t.Error("Open(\"\").Embedded = false")
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Error(err)
	}
	hammer(t, s.Scripter, testKey(t, "n"), 8, 8)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// rediss:// parses (and turns TLS on) without dialling.
	s, err = Open("rediss://user:pw@127.0.0.1:1/2")
	if err != nil {
		t.Fatal(err)
	}
	if o := s.Client.(*redis.Client).Options(); o.TLSConfig == nil || o.DB != 2 || !o.ContextTimeoutEnabled {
		t.Errorf("rediss options: TLS %v, DB %d, ContextTimeoutEnabled %v", o.TLSConfig != nil, o.DB, o.ContextTimeoutEnabled)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if _, err := Open("http://127.0.0.1:6379"); err == nil {
		t.Error("Open(http://...) succeeded")
	}
}
