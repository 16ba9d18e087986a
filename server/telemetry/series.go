package telemetry

import (
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/codes"

	"github.com/sluice-rl/sluice/server/config"
)

// Label keys.
const (
	attrDomain     = attribute.Key("domain")
	attrDescriptor = attribute.Key("descriptor")
	attrLimit      = attribute.Key("limit")
	attrCode       = attribute.Key("code")
	attrKind       = attribute.Key("kind")
	attrVia        = attribute.Key("via")
	attrScript     = attribute.Key("script")
	attrMethod     = attribute.Key("method")
	attrReason     = attribute.Key("reason")
	attrEvent      = attribute.Key("event")
)

// Label values of code.
const (
	codeOK        = "ok"
	codeOverLimit = "over_limit"
)

// maxCached bounds the copy-on-write part of each attribute-set cache, whose
// every miss copies it. Past it, values are kept in a map read under the
// mutex (slower, never copied): a config whose labels exceed it is unusual.
var maxCached = 10_000 // a var so that a test can reach the overflow

// cache is a copy-on-write map: lookups read an immutable map through one
// atomic load, without locks or allocation; a miss builds the value under a
// mutex and publishes a copy of the map with it. Every key is built once —
// its value may hold a series' count (a tally) — so past maxCached keys go
// to the overflow map.
type cache[K comparable, V any] struct {
	m        atomic.Pointer[map[K]V]
	mu       sync.Mutex
	overflow map[K]V
	build    func(K) V
}

func (c *cache[K, V]) get(k K) V {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	var n int
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
		n = len(*old)
	}
	if n >= maxCached {
		if v, ok := c.overflow[k]; ok {
			return v
		}
		if c.overflow == nil {
			c.overflow = make(map[K]V)
		}
		v := c.build(k)
		c.overflow[k] = v
		return v
	}
	v := c.build(k)
	m := make(map[K]V, n+1)
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	m[k] = v
	c.m.Store(&m)
	return v
}

func addOpts(kvs ...attribute.KeyValue) []metric.AddOption {
	return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(kvs...))}
}

func recordOpts(kvs ...attribute.KeyValue) []metric.RecordOption {
	return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(kvs...))}
}

// limitKey names the series of one limit of one descriptor.
type limitKey struct{ domain, descriptor, limit string }

// limitSeries holds the attribute sets of one limitKey.
type limitSeries struct {
	ok, over *tally             // sluice.decisions, with code
	plain    []metric.AddOption // without code: near limit, shadow mode
}

func (t *Telemetry) newLimitSeries(k limitKey) *limitSeries {
	base := []attribute.KeyValue{attrDomain.String(k.domain), attrDescriptor.String(k.descriptor), attrLimit.String(k.limit)}
	return &limitSeries{
		ok:    t.decisions.tally(append(base[:3:3], attrCode.String(codeOK))...),
		over:  t.decisions.tally(append(base[:3:3], attrCode.String(codeOverLimit))...),
		plain: addOpts(base...),
	}
}

// limitLabel is a limit's name, or its ID (kind:window:buckets) when it has
// none; unique among one descriptor's limits either way.
func limitLabel(l *config.Limit) string {
	if l.Name != "" {
		return l.Name
	}
	return l.ID
}

// token kinds, indexed by config.Kind.
var tokenKinds = [...]config.Kind{config.KindTotalTokens, config.KindPromptTokens, config.KindCompletionTokens}

// domainSeries holds the token attribute sets of one domain, indexed by
// config.Kind.
type domainSeries struct {
	plain    []metric.AddOption // domain alone
	cacheHit *tally             // sluice.over_limit_cache.hits
	leased   *tally             // sluice.lease.decisions
	lease    [numLeaseEvents][]metric.AddOption
	reserved [config.KindCompletionTokens + 1][]metric.AddOption
	missing  [config.KindCompletionTokens + 1][]metric.AddOption
	reported [numVias][config.KindCompletionTokens + 1][]metric.AddOption
}

func (t *Telemetry) newDomainSeries(domain string) *domainSeries {
	s := &domainSeries{
		plain:    addOpts(attrDomain.String(domain)),
		cacheHit: t.cacheHits.tally(attrDomain.String(domain)),
		leased:   t.leaseDecisions.tally(attrDomain.String(domain)),
	}
	for e := range numLeaseEvents {
		s.lease[e] = addOpts(attrDomain.String(domain), attrEvent.String(e.String()))
	}
	for _, k := range tokenKinds {
		d, kind := attrDomain.String(domain), attrKind.String(k.String())
		s.reserved[k] = addOpts(d, kind)
		s.missing[k] = addOpts(d, kind)
		for v := range numVias {
			s.reported[v][k] = addOpts(d, kind, attrVia.String(via(v).String()))
		}
	}
	return s
}

// via is how usage reached the counters.
type via int

const (
	viaReservation via = iota // ReportUsage by reservation_id
	viaRepeated               // ReportUsage of a reservation reported before: nothing changed
	viaDescriptors            // ReportUsage by domain and descriptors, no reservation_id
	viaFallback               // ReportUsage whose reservation was unknown or expired, charged by descriptors
	viaEnvoyHits              // Envoy's token flow: hits_addend on a token limit
	numVias
)

func (v via) String() string {
	return [...]string{"reservation", "repeated", "descriptors", "fallback", "envoy_hits"}[v]
}

// leaseEvent is what happened to units of quota leases.
type leaseEvent int

const (
	leaseGranted  leaseEvent = iota // charged in Redis for this replica
	leaseReturned                   // given back to Redis unspent
	leaseWasted                     // neither spent nor given back
	numLeaseEvents
)

func (e leaseEvent) String() string { return [...]string{"granted", "returned", "wasted"}[e] }

// reason is why a script call failed.
type reason int

const (
	reasonTimeout     reason = iota // a deadline ran out after Redis had all the time a healthy one needs
	reasonCircuitOpen               // the circuit breaker kept the call from Redis
	reasonOther                     // connection refused, script error, ...
	numReasons
)

func (r reason) String() string {
	return [...]string{"timeout", "circuit_open", "other"}[r]
}

// goneReason is why a caller ended a script call before Redis answered,
// too soon to blame Redis.
type goneReason int

const (
	goneDeadline goneReason = iota // the caller's own deadline ran out
	goneCanceled                   // the caller left
	numGoneReasons
)

func (r goneReason) String() string { return [...]string{"deadline", "canceled"}[r] }

// scriptSeries holds the attribute sets and span name of one script.
type scriptSeries struct {
	errors   [numReasons][]metric.AddOption
	gone     [numGoneReasons][]metric.AddOption
	record   []metric.RecordOption
	spanName string
	spanAttr []attribute.KeyValue
}

func newScriptSeries(script string) *scriptSeries {
	s := &scriptSeries{
		record:   recordOpts(attrScript.String(script)),
		spanName: "redis " + script,
		spanAttr: []attribute.KeyValue{
			attribute.String("db.system.name", "redis"),
			attribute.String("db.operation.name", "EVALSHA"),
			attribute.String("sluice.script", script),
		},
	}
	for r := range numReasons {
		s.errors[r] = addOpts(attrScript.String(script), attrReason.String(r.String()))
	}
	for r := range numGoneReasons {
		s.gone[r] = addOpts(attrScript.String(script), attrReason.String(r.String()))
	}
	return s
}

// callKey names the series of one gRPC method and code.
type callKey struct {
	method string
	code   codes.Code
}

func newCallSeries(k callKey) []metric.RecordOption {
	m := k.method
	if len(m) > 0 && m[0] == '/' {
		m = m[1:]
	}
	return recordOpts(attrMethod.String(m), attrCode.String(k.code.String()))
}
