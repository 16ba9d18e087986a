// Package store opens the Redis that holds the counters: a server named by a
// URL, or — with no URL — an embedded in-process miniredis that runs the very
// same Lua scripts, for trying Sluice out on one node.
//
// Script calls go through Store.Scripter, which by default pipelines
// concurrent calls (see Batcher): one write and one read per batch of
// decisions instead of per decision.
package store

import (
	"context"
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

// Config tunes Open. The zero Config is the recommended one.
type Config struct {
	// Pipelining (Optional, default PipelineBatch).
	Pipelining Pipelining
	// Batch sizes the Batcher (Optional, see BatchConfig).
	Batch BatchConfig
	// Tune, if set, adjusts the go-redis client options last (Optional; for
	// tests and benchmarks of pool settings).
	Tune func(*redis.Options)
}

// Store is an open counter store.
type Store struct {
	// Client is the go-redis client: for commands that are not scripts.
	Client *redis.Client
	// Scripter runs the Lua scripts; pass it to the limiter. It pipelines
	// concurrent calls unless Config said otherwise.
	Scripter redis.Scripter
	// Embedded is true for the in-process store: one node, in memory.
	Embedded bool
	embedded *miniredis.Miniredis
	closer   interface{ Close() error } // the Scripter's, if it has goroutines
}

// Open connects to the Redis at url (redis:// or rediss://, as go-redis
// parses them); an empty url starts the embedded store.
func Open(url string) (*Store, error) { return OpenConfig(url, Config{}) }

// OpenConfig is Open with a Config.
func OpenConfig(url string, cfg Config) (*Store, error) {
	var (
		opts *redis.Options
		mr   *miniredis.Miniredis
	)
	if url == "" {
		mr = miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("start embedded store: %w", err)
		}
		opts = &redis.Options{Addr: mr.Addr()}
	} else {
		var err error
		if opts, err = redis.ParseURL(url); err != nil {
			return nil, fmt.Errorf("redis url: %w", err)
		}
	}
	clientOptions(opts)
	if cfg.Tune != nil {
		cfg.Tune(opts)
	}
	s := &Store{Client: redis.NewClient(opts), Embedded: mr != nil, embedded: mr}
	switch cfg.Pipelining {
	case PipelineNone:
		s.Scripter = s.Client
	default:
		b := NewBatcher(s.Client, cfg.Batch)
		s.Scripter, s.closer = b, b
	}
	return s, nil
}

// clientOptions makes every call obey its context's deadline, so a dead Redis
// costs a caller its deadline at most, never a hang.
func clientOptions(o *redis.Options) {
	o.ContextTimeoutEnabled = true
	if o.DialTimeout == 0 {
		o.DialTimeout = time.Second
	}
}

// Ping checks that the store answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.Client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis ping: %w", err)
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
