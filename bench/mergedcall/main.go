// Command mergedcall loads the window script into a Redis and prints, one
// argument per line, the merged script call a Batcher sends for m one-counter
// charges: built by lua.Window and lua.Merger themselves, so that
// bench/scripts/redis-instructions.sh replays the script and the wire shape
// sluice really uses. Each key holds redis-benchmark's __rand_int__.
//
//	go run ./bench/mergedcall -addr 127.0.0.1:6390 -calls 11 -layout packed
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/lua"
)

func main() {
	addr := flag.String("addr", "", "the Redis to load the script into (host:port)")
	calls := flag.Int("calls", 11, "one-counter charges merged into the call")
	layoutName := flag.String("layout", "packed", "counter layout: packed or hash")
	flag.Parse()
	if err := run(*addr, *calls, *layoutName); err != nil {
		fmt.Fprintln(os.Stderr, "mergedcall:", err)
		os.Exit(1)
	}
}

func run(addr string, calls int, layoutName string) error {
	layout, err := lua.ParseLayout(layoutName)
	if err != nil {
		return err
	}
	if addr == "" || calls < 1 {
		return fmt.Errorf("-addr is required and -calls must be at least 1")
	}
	ctx := context.Background()
	rec := &recorder{Client: redis.NewClient(&redis.Options{Addr: addr})}
	defer rec.Close()
	win := lua.NewWindow(layout)
	if err := win.Load(ctx, rec); err != nil {
		return err
	}
	// one-second windows split as sluice splits them (10 buckets), limits
	// high enough that every charge is admitted and writes
	width, n := lua.SplitWindow(time.Second, 10)
	counter := []lua.Counter{{Key: "sluice:{bench|rs=__rand_int__}:r:1s", Bucket: width, Buckets: n, Limit: 1_000_000_000, Cost: 1}}
	for range calls {
		if _, err := win.Run(ctx, rec, lua.Charge, counter); err != nil {
			return err
		}
	}
	for _, a := range lua.NewMerger().Merge(nil, rec.sent).Args() {
		fmt.Println(a)
	}
	return nil
}

// recorder is a client that keeps the script calls it sends: the window
// wrapper hands a client with Send its command line as built.
type recorder struct {
	*redis.Client
	sent []*redis.Cmd
}

func (r *recorder) Send(ctx context.Context, cmd *redis.Cmd) *redis.Cmd {
	r.sent = append(r.sent, cmd)
	_ = r.Process(ctx, cmd) // the error is cmd's
	return cmd
}
