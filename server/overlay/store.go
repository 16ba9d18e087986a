// Package overlay keeps the runtime limits: limits stored in Redis and laid
// over the config files by descriptor path, so that an operator or a control
// plane can change one API's cap without a redeploy.
//
// # How it works
//
// All runtime limits live in one Redis hash (field: the domain and path,
// value: a JSON record holding the limit as the AdminService's RuntimeLimit,
// its version, who wrote it and when), next to a revision counter and an
// audit trail, under one hash tag so that one script can change them
// together. Writes go through lua/runtime.lua: several paths at once, all or
// none, each checked against the version the writer saw; the script bumps the
// revision, stamps the records with it and the Redis time, appends an audit
// entry per path and publishes the revision. These keys are durable data,
// not counters: they carry no TTL (the rule that every key has one is about
// counters), and Redis must not evict them (maxmemory-policy noeviction or a
// volatile-* policy, which only evicts keys with a TTL).
//
// Every replica runs a Watcher: it subscribes to the revision channel and
// also polls the revision (the fallback when a message is lost), and when the
// revision moved it reads all records in one transaction into a Snapshot,
// checking each with config.ParseOverride — the code that checks files. The
// Effective config is the base Set (files, or xDS) with the snapshot's
// overrides laid over it, rebuilt on every base change and every snapshot and
// stored atomically; the limiter reads it on every call.
package overlay

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/lua"
	"github.com/sluice-rl/sluice/server/config"
)

// DefaultAuditEntries is how many audit entries the store keeps.
const DefaultAuditEntries = 10_000

// StoreError is a failure of Redis while reading or writing runtime limits.
type StoreError struct{ Err error }

func (e *StoreError) Error() string { return "runtime limits store: " + e.Err.Error() }
func (e *StoreError) Unwrap() error { return e.Err }

// StaleError is a write refused because a path's version was not the one
// the writer expected. Nothing was written.
type StaleError struct {
	// Change is the index of the change whose version did not hold.
	Change int
	// Current is the version the path has (0: no runtime limit).
	Current int64
}

func (e *StaleError) Error() string {
	if e.Current == 0 {
		return "version: the runtime limit does not exist (any more)"
	}
	return "version: not current (the runtime limit is at version " + strconv.FormatInt(e.Current, 10) + ")"
}

// Store reads and writes the runtime limits in Redis.
type Store struct {
	rdb      redis.UniversalClient
	script   *lua.Runtime
	keys     lua.RuntimeKeys
	channel  string
	auditMax int
}

// NewStore keeps the runtime limits in rdb under keys starting with prefix
// (e.g. "sluice:"): <prefix>{runtime}:limits, :revision and :audit, and
// publishes changes on the channel <prefix>runtime.
func NewStore(rdb redis.UniversalClient, prefix string) *Store {
	return &Store{
		rdb:    rdb,
		script: lua.NewRuntime(),
		keys: lua.RuntimeKeys{
			Limits:   prefix + "{runtime}:limits",
			Revision: prefix + "{runtime}:revision",
			Audit:    prefix + "{runtime}:audit",
		},
		channel:  prefix + "runtime",
		auditMax: DefaultAuditEntries,
	}
}

// Revision returns the revision of the runtime limits: the number of writes
// so far (0 before the first).
func (s *Store) Revision(ctx context.Context) (int64, error) {
	n, err := s.rdb.Get(ctx, s.keys.Revision).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, &StoreError{Err: err}
	}
	return n, nil
}

// Snapshot reads every runtime limit and the revision they are at, in one
// transaction. Records that do not decode or do not pass the config checks
// are left out of the overrides and listed in Problems.
func (s *Store) Snapshot(ctx context.Context) (*Snapshot, error) {
	var rev *redis.StringCmd
	var all *redis.MapStringStringCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		rev = p.Get(ctx, s.keys.Revision)
		all = p.HGetAll(ctx, s.keys.Limits)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, &StoreError{Err: err}
	}
	snap := &Snapshot{}
	if rev.Err() == nil {
		if snap.Revision, err = rev.Int64(); err != nil {
			return nil, &StoreError{Err: fmt.Errorf("revision: %w", err)}
		}
	}
	for field, value := range all.Val() {
		rec, err := decodeRecord(value)
		if err == nil {
			rec.Override, err = Override(rec.Domain, rec.Path, rec.Limit)
		}
		if err != nil {
			snap.Problems = append(snap.Problems, fmt.Errorf("runtime limit %s: %w", field, err))
			continue
		}
		rec.Override.Note = fmt.Sprintf("runtime limit: version %d, by %s, %s", rec.Version, rec.UpdatedBy, rec.UpdatedAt.UTC().Format(time.RFC3339))
		snap.Records = append(snap.Records, rec)
	}
	slices.SortFunc(snap.Records, func(a, b *Record) int { return comparePaths(a.Domain, a.Path, b.Domain, b.Path) })
	return snap, nil
}

// fieldOf is a path's field in the hash: the JSON array of the domain and
// every key and value, one string each — unique and unambiguous.
func fieldOf(domain string, path []config.Entry) string {
	parts := make([]string, 0, 1+2*len(path))
	parts = append(parts, domain)
	for _, e := range path {
		parts = append(parts, e.Key, e.Value)
	}
	b, _ := json.Marshal(parts) // strings always marshal
	return string(b)
}

func comparePaths(da string, a []config.Entry, db string, b []config.Entry) int {
	return cmp.Or(cmp.Compare(da, db), slices.CompareFunc(a, b, func(x, y config.Entry) int {
		return cmp.Or(cmp.Compare(x.Key, y.Key), cmp.Compare(x.Value, y.Value))
	}))
}
