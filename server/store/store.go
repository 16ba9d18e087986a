// Package store opens the Redis that holds the counters: a server named by a
// URL, or — with no URL — an embedded in-process miniredis that runs the very
// same Lua scripts, for trying Sluice out on one node.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Store is an open counter store.
type Store struct {
	Client *redis.Client
	// Embedded is true for the in-process store: one node, in memory.
	Embedded bool
	embedded *miniredis.Miniredis
}

// Open connects to the Redis at url (redis:// or rediss://, as go-redis
// parses them); an empty url starts the embedded store.
func Open(url string) (*Store, error) {
	if url == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("start embedded store: %w", err)
		}
		return &Store{Client: redis.NewClient(clientOptions(&redis.Options{Addr: mr.Addr()})), Embedded: true, embedded: mr}, nil
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	return &Store{Client: redis.NewClient(clientOptions(opts))}, nil
}

// clientOptions makes every call obey its context's deadline, so a dead Redis
// costs a caller its deadline at most, never a hang.
func clientOptions(o *redis.Options) *redis.Options {
	o.ContextTimeoutEnabled = true
	if o.DialTimeout == 0 {
		o.DialTimeout = time.Second
	}
	return o
}

// Ping checks that the store answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.Client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis ping: %w", err)
	}
	return nil
}

// Close closes the client and stops the embedded store.
func (s *Store) Close() error {
	err := s.Client.Close()
	if s.embedded != nil {
		s.embedded.Close()
	}
	if errors.Is(err, redis.ErrClosed) {
		return nil
	}
	return err
}
