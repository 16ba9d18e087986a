package server_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-rl/sluice/internal/redistest"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

// isolationConfig has a fail-closed domain for the victims, a fail-open one
// capped at 100 a minute, and a domain for the attacker's overrides.
var isolationConfig = map[string]string{
	"victims.yaml":      "domain: victims\ndescriptors:\n  - key: api\n    rate_limit: {unit: second, requests_per_unit: 1000000}\n",
	"victims_open.yaml": "domain: victims_open\nfailure_mode: open\ndescriptors:\n  - key: api\n    rate_limit: {unit: minute, requests_per_unit: 100}\n",
	"attacker.yaml":     "domain: attacker\ndescriptors:\n  - key: remote_address\n    rate_limit: {unit: second, requests_per_unit: 10}\n",
}

// writeConfigDir writes files into a fresh directory and returns it.
func writeConfigDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// victims is a load of well-behaved callers beside an attacker.
type victims struct {
	ok, unavailable, other atomic.Int64
	expired                atomic.Int64 // their own 1 s deadline: a starved machine, not Sluice's answer
	openAdmitted           atomic.Int64
	firstOther             atomic.Value
}

// run keeps n callers asking (each with a 1 s deadline) until stop, half on
// the fail-closed domain, half on the fail-open one, half through sluice.v1,
// half through Envoy's API.
func (v *victims) run(conn *grpc.ClientConn, n int, stop *atomic.Bool, wg *sync.WaitGroup) {
	native, envoy := sluicev1.NewRateLimitServiceClient(conn), rlsv3.NewRateLimitServiceClient(conn)
	for i := range n {
		domain := "victims"
		if i%2 == 1 {
			domain = "victims_open"
		}
		viaEnvoy := i%4 >= 2
		ask := func(ctx context.Context) (bool, error) {
			if viaEnvoy {
				resp, err := envoy.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: domain, Descriptors: []*ratelimitv3.RateLimitDescriptor{envoyDesc("api", "shared")}})
				return err == nil && resp.OverallCode == rlsv3.RateLimitResponse_OK, err
			}
			resp, err := native.ShouldRateLimit(ctx, &sluicev1.ShouldRateLimitRequest{Domain: domain, Descriptors: []*sluicev1.Descriptor{{Entries: []*sluicev1.Entry{{Key: "api", Value: "shared"}}}}})
			return err == nil && resp.OverallCode == sluicev1.Code_OK, err
		}
		wg.Go(func() {
			for !stop.Load() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				admitted, err := ask(ctx)
				cancel()
				switch {
				case err == nil:
					v.ok.Add(1)
					if domain == "victims_open" && admitted {
						v.openAdmitted.Add(1)
					}
				case status.Code(err) == codes.Unavailable:
					v.unavailable.Add(1)
				case status.Code(err) == codes.DeadlineExceeded:
					v.expired.Add(1)
				default:
					v.other.Add(1)
					v.firstOther.CompareAndSwap(nil, err.Error())
				}
			}
		})
	}
}

// isolationTest is a Sluice with isolationConfig, on a Redis of its own,
// and victims asking it beside the attackers a test adds: each a goroutine
// of wg that runs until stop.
type isolationTest struct {
	rs    *redistest.Server
	s     *sluice
	envoy rlsv3.RateLimitServiceClient // for the attackers
	v     victims
	stop  atomic.Bool
	wg    sync.WaitGroup
}

// startIsolationTest starts the Sluice and n victims (victims.run).
func startIsolationTest(t *testing.T, n int) *isolationTest {
	t.Helper()
	it := &isolationTest{rs: redistest.New(t)}
	it.s = startSluice(t, writeConfigDir(t, isolationConfig), it.rs.URL())
	conn := dial(t, it.s)
	it.envoy = rlsv3.NewRateLimitServiceClient(conn)
	it.v.run(conn, n, &it.stop, &it.wg)
	return it
}

// runFor lets the victims and the attackers run for d, then stops them and
// waits until they all have.
func (it *isolationTest) runFor(d time.Duration) {
	time.Sleep(d)
	it.stop.Store(true)
	it.wg.Wait()
}

// check asserts that the victims never saw the attack.
func (v *victims) check(t *testing.T) {
	t.Helper()
	t.Logf("victims: ok %d, unavailable %d, own deadline %d, other %d; the fail-open domain admitted %d", v.ok.Load(), v.unavailable.Load(), v.expired.Load(), v.other.Load(), v.openAdmitted.Load())
	if v.ok.Load() == 0 {
		t.Error("no victim call got through")
	}
	if n := v.unavailable.Load(); n > 0 {
		t.Errorf("victims got %d Unavailable: the attacker opened the circuit breaker for everybody", n)
	}
	if n := v.other.Load(); n > 0 {
		t.Errorf("victims got %d other errors, e.g. %v", n, v.firstOther.Load())
	}
	if n := v.openAdmitted.Load(); n > 100 {
		t.Errorf("the fail-open domain admitted %d against a limit of 100 a minute", n)
	}
}

// circuitNeverOpened asserts from the metrics that the circuit breaker never
// opened and kept no call from Redis.
func circuitNeverOpened(t *testing.T, s *sluice) {
	t.Helper()
	series, _ := scrape(t, s)
	for k, v := range series {
		if v > 0 && (strings.HasPrefix(k, "sluice_circuit_opens_total") || strings.Contains(k, "reason=circuit_open")) {
			t.Errorf("%s = %v: the circuit breaker opened", k, v)
		}
	}
}

// TestBadOverridesNeverOpenTheBreakerForOthers: limit overrides no counter
// can have (a window that overflows time.Duration or runs for centuries)
// are the caller's error, InvalidArgument naming the field, before any Redis
// call — never a Redis failure that opens the circuit for every caller.
func TestBadOverridesNeverOpenTheBreakerForOthers(t *testing.T) {
	it := startIsolationTest(t, 8)
	bad := []*ratelimitv3.RateLimitDescriptor_RateLimitOverride{
		{RequestsPerUnit: 1, Unit: typev3.RateLimitUnit_YEAR, UnitMultiplier: wrapperspb.UInt32(292)},
		{RequestsPerUnit: 1, Unit: typev3.RateLimitUnit_YEAR, UnitMultiplier: wrapperspb.UInt32(293)}, // overflows time.Duration
		{RequestsPerUnit: 1, Unit: typev3.RateLimitUnit_SECOND, UnitMultiplier: wrapperspb.UInt32(math.MaxUint32)},
		{RequestsPerUnit: 1, Unit: typev3.RateLimitUnit_DAY, UnitMultiplier: wrapperspb.UInt32(366)},
	}
	var attacks, refused atomic.Int64
	for a := range 4 {
		it.wg.Go(func() {
			for i := 0; !it.stop.Load(); i++ {
				d := envoyDesc("remote_address", "10.0.0.1")
				d.Limit = bad[(a+i)%len(bad)]
				_, err := it.envoy.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{Domain: "attacker", Descriptors: []*ratelimitv3.RateLimitDescriptor{d}})
				attacks.Add(1)
				if status.Code(err) == codes.InvalidArgument && strings.Contains(err.Error(), "descriptors[0].limit.unit_multiplier") {
					refused.Add(1)
				} else if i < 3 {
					t.Errorf("override %v: %v, want InvalidArgument naming descriptors[0].limit.unit_multiplier", d.Limit, err)
				}
			}
		})
	}
	it.runFor(time.Second)
	t.Logf("attacker: %d calls, %d InvalidArgument", attacks.Load(), refused.Load())
	if refused.Load() != attacks.Load() {
		t.Errorf("%d of %d bad overrides were not InvalidArgument", attacks.Load()-refused.Load(), attacks.Load())
	}
	it.v.check(t)
	circuitNeverOpened(t, it.s)
	if keys, err := redistest.Client(t, it.rs).Keys(context.Background(), "*attacker*").Result(); err != nil || len(keys) > 0 {
		t.Errorf("the refused overrides wrote %v (%v)", keys, err)
	}
}
