// Package leakcheck runs a package's tests and then fails if goroutines
// outlived them (goleak), allowing for go-redis' dial probe.
package leakcheck

import (
	"testing"

	"go.uber.org/goleak"
)

// goRedisDialProbe is the goroutine go-redis starts after a failed dial: it
// dials again once a second until one succeeds or the pool is closed, so it
// outlives a closed pool by up to a second — longer than goleak waits.
const goRedisDialProbe = "github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"

// VerifyTestMain is goleak.VerifyTestMain for tests whose Redis clients
// meet a Redis that is down.
func VerifyTestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction(goRedisDialProbe))
}
