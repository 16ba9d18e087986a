// Package store opens the Redis that holds the counters: a server named by a
// URL, or — with no URL — an embedded in-process miniredis that runs the very
// same Lua scripts, for trying Sluice out on one node.
//
// A URL names one of three topologies (see Open): a single node, a master
// found through Sentinel, or a Redis Cluster. Script calls go through
// Store.Scripter, which by default pipelines concurrent calls (see Batcher):
// one write and one read per batch of decisions instead of per decision; on
// a cluster each batch is split by node. With a Merger, the calls of a batch
// that one script can run together become one script call.
package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Pipelining chooses how concurrent script calls reach Redis.
type Pipelining int

const (
	// PipelineBatch sends concurrent calls together through a Batcher.
	PipelineBatch Pipelining = iota
	// PipelineNone sends every call on its own pooled connection, one
	// round trip each (what go-redis does by itself).
	PipelineNone
)

// Topology is how the Redis behind a Store is laid out.
type Topology int

const (
	// Single is one Redis node (or the embedded store): redis://, rediss://.
	Single Topology = iota
	// Sentinel is a master found, and followed across failovers, through
	// Redis Sentinel: redis+sentinel://, rediss+sentinel://.
	Sentinel
	// Cluster is a Redis Cluster: keys are spread over 16384 hash slots, and
	// one script call may only touch keys of one slot. redis+cluster://,
	// rediss+cluster://.
	Cluster
)

func (t Topology) String() string {
	switch t {
	case Sentinel:
		return "sentinel"
	case Cluster:
		return "cluster"
	default:
		return "single"
	}
}

// Config tunes Open. The zero Config is the recommended one.
type Config struct {
	// Pipelining (Optional, default PipelineBatch).
	Pipelining Pipelining
	// Batch sizes the Batcher (Optional, see BatchConfig).
	Batch BatchConfig
	// Tune, if set, adjusts the go-redis client options of a single node
	// last (Optional; for tests and benchmarks of pool settings).
	Tune func(*redis.Options)
	// TuneFailover adjusts the options of a Sentinel client last (Optional).
	TuneFailover func(*redis.FailoverOptions)
	// TuneCluster adjusts the options of a cluster client last (Optional).
	TuneCluster func(*redis.ClusterOptions)
	// TLS, when set, is the client TLS of a TLS URL (rediss://,
	// rediss+sentinel://, rediss+cluster://): the CAs to trust, a client
	// certificate for servers that require one (mutual TLS), and how the
	// server is verified (tlsconf.NewClient builds it). A URL without TLS,
	// or the embedded store, with TLS set is an error. (Optional, default:
	// the system's roots, no client certificate)
	TLS *tls.Config
	// PoolSize is the connections per Redis node (Optional, default
	// go-redis's: 10 per CPU).
	PoolSize int
}

// Store is an open counter store.
type Store struct {
	// Client is the go-redis client, for commands that are not scripts: a
	// *redis.Client for a single node or Sentinel, a *redis.ClusterClient
	// for a cluster.
	Client redis.UniversalClient
	// Scripter runs the Lua scripts; pass it to the limiter. It pipelines
	// concurrent calls unless Config said otherwise. On a cluster it is a
	// *redis.ClusterClient or a Batcher whose Cluster method reports true,
	// so that the limiter knows to split calls by hash slot.
	Scripter redis.Scripter
	// Topology says how the Redis is laid out.
	Topology Topology
	// Embedded is true for the in-process store: one node, in memory.
	Embedded bool
	embedded *miniredis.Miniredis
	closer   interface{ Close() error } // the Scripter's, if it has goroutines
	info     Info
	failover *redis.FailoverOptions // a Sentinel store's, to explain a failed Ping
}

// Open connects to the Redis at url; an empty url starts the embedded store.
// The URL forms are:
//
//	redis://[user:pass@]host:port[/db]            one node (go-redis's ParseURL)
//	rediss://...                                  the same over TLS
//	unix://[user:pass@]/path/to/redis.sock[?db=N]  one node on a Unix socket
//	redis+sentinel://[user:pass@]host:port[,host:port...]/<master-name>[?db=N]
//	rediss+sentinel://...                         the same, TLS to master, replicas and Sentinels
//	redis+cluster://[user:pass@]host:port[,host:port...]
//	rediss+cluster://...                          the same over TLS
//
// For Sentinel, user:pass authenticate to the master and replicas; the
// Sentinels themselves take sentinel_username= and sentinel_password= query
// parameters. A cluster node list needs only some of the nodes (the rest are
// discovered). A host without a port gets 26379 (Sentinel) or 6379. Open does
// not dial: a Redis that does not answer yet is not an error.
func Open(url string) (*Store, error) { return OpenConfig(url, Config{}) }

// OpenConfig is Open with a Config.
func OpenConfig(url string, cfg Config) (*Store, error) {
	s := &Store{}
	switch {
	case url == "":
		if cfg.TLS != nil {
			return nil, errors.New("redis tls: there is no Redis URL (the embedded store has no TLS); TLS settings need a rediss:// URL")
		}
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("start embedded store: %w", err)
		}
		s.Embedded, s.embedded = true, mr
		s.Client = newSingle(&redis.Options{Addr: mr.Addr()}, cfg)
		s.info = Info{Embedded: true, Hosts: []string{mr.Addr()}}
	default:
		t, err := parseURL(url)
		if err != nil {
			return nil, err
		}
		if err := t.apply(cfg); err != nil {
			return nil, err
		}
		s.Topology, s.info = t.topology, t.describe()
		switch t.topology {
		case Sentinel:
			s.Client, s.failover = newFailover(t.failover, cfg), t.failover
		case Cluster:
			s.Client = newCluster(t.cluster, cfg)
		default:
			s.Client = newSingle(t.single, cfg)
		}
	}
	switch cfg.Pipelining {
	case PipelineNone:
		s.Scripter = s.Client
	default:
		b := NewBatcher(s.Client, cfg.Batch)
		s.Scripter, s.closer = b, b
	}
	return s, nil
}

// Dial timeouts: long enough for a loaded Redis, short enough that a dead
// node costs a call its deadline (which ends it in any case) and not more.
const (
	dialTimeout     = time.Second
	sentinelTimeout = 500 * time.Millisecond // asking one Sentinel for the master
)

// newSingle makes every call obey its context's deadline, so a dead Redis
// costs a caller its deadline at most, never a hang.
func newSingle(o *redis.Options, cfg Config) *redis.Client {
	o.ContextTimeoutEnabled = true
	if o.DialTimeout == 0 {
		o.DialTimeout = dialTimeout
	}
	if cfg.Tune != nil {
		cfg.Tune(o)
	}
	return redis.NewClient(o)
}

func newFailover(o *redis.FailoverOptions, cfg Config) *redis.Client {
	o.ContextTimeoutEnabled = true
	if o.DialTimeout == 0 {
		o.DialTimeout = sentinelTimeout
	}
	if cfg.TuneFailover != nil {
		cfg.TuneFailover(o)
	}
	return redis.NewFailoverClient(o)
}

func newCluster(o *redis.ClusterOptions, cfg Config) *redis.ClusterClient {
	o.ContextTimeoutEnabled = true
	if o.DialTimeout == 0 {
		o.DialTimeout = dialTimeout
	}
	if cfg.TuneCluster != nil {
		cfg.TuneCluster(o)
	}
	return redis.NewClusterClient(o)
}

// Ping checks that the store answers: on a cluster, every master.
func (s *Store) Ping(ctx context.Context) error {
	var err error
	if cc, ok := s.Client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			if err := node.Ping(ctx).Err(); err != nil {
				return fmt.Errorf("%s: %w", node.Options().Addr, err)
			}
			return nil
		})
	} else if err = s.Client.Ping(ctx).Err(); err != nil && s.failover != nil {
		err = s.sentinelCause(ctx, err)
	}
	if err != nil {
		return fmt.Errorf("redis ping: %w", explainTLS(err))
	}
	return nil
}

// Close stops the Scripter, closes the client and stops the embedded store.
func (s *Store) Close() error {
	var err error
	if s.closer != nil {
		err = s.closer.Close()
	}
	if cerr := s.Client.Close(); cerr != nil && !errors.Is(cerr, redis.ErrClosed) {
		err = errors.Join(err, cerr)
	}
	if s.embedded != nil {
		s.embedded.Close()
	}
	return err
}
