package lua_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/lua"
)

func ExampleWindow_Run() {
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		panic(err)
	}
	defer m.Close()
	m.SetTime(time.Date(2025, 7, 4, 12, 0, 0, 0, time.UTC))
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()

	// 3 per minute, counted in 6 buckets of 10s.
	width, n := lua.SplitWindow(time.Minute, 6)
	counters := []lua.Counter{{Key: "api:orders", Bucket: width, Buckets: n, Limit: 3, Cost: 1}}
	win := lua.NewWindow(lua.Packed)
	ctx := context.Background()
	for range 4 {
		res, err := win.Run(ctx, rdb, lua.Charge, counters)
		if err != nil {
			panic(err)
		}
		c := res.Counters[0]
		fmt.Printf("allowed=%v used=%d remaining=%d reset=%v retry=%v\n",
			res.Allowed, c.Used, c.Remaining, c.ResetAfter, c.RetryAfter)
		m.SetTime(res.Now.Add(15 * time.Second))
	}
	// Output:
	// allowed=true used=1 remaining=2 reset=1m10s retry=0s
	// allowed=true used=2 remaining=1 reset=1m5s retry=0s
	// allowed=true used=3 remaining=0 reset=1m10s retry=0s
	// allowed=false used=3 remaining=0 reset=55s retry=25s
}
