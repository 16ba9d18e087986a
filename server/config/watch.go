package config

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// DefaultWatchInterval is how often Watch polls when given no interval.
const DefaultWatchInterval = time.Second

// Watch keeps the config at path current. It starts from current, the Set the caller
// loaded from path (nil: it loads path at once), and loads with current's LoadOptions;
// then it looks every interval
// (DefaultWatchInterval when interval <= 0), and whenever the files' names or contents
// differ from the last look it loads them: apply gets the new Set, or report gets the error
// while the caller keeps its old Set (apply is not called). Because it compares contents,
// not events or times, it sees in-place writes, an editor's rename over the file and a
// Kubernetes ConfigMap's symlink swap of ..data alike; a broken state is reported once, not
// at every poll, and only once two polls in a row saw it, so a write caught half-way is
// not reported at all.
// Watch returns when ctx is done; it calls apply and report from its own goroutine, one at
// a time.
func Watch(ctx context.Context, path string, interval time.Duration, current *Set, apply func(*Set), report func(error)) {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	var last, broken [sha256.Size]byte
	first, seenBroken := true, false
	var opts LoadOptions
	if current != nil {
		opts = current.options
		if current.loaded != ([sha256.Size]byte{}) {
			first, last = false, current.loaded
		}
	}
	check := func() {
		srcs, err := readSources(path)
		sum := fingerprint(srcs, err)
		if !first && sum == last {
			return
		}
		if err == nil {
			var s *Set
			if s, err = build(srcs, opts); err == nil {
				first, last, seenBroken = false, sum, false
				apply(s)
				return
			}
		}
		// A broken state is reported only when the next poll still sees
		// it, so a write caught half-way is never reported.
		if seenBroken && sum == broken {
			first, last = false, sum
			report(err)
			return
		}
		broken, seenBroken = sum, true
	}
	check()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			check()
		}
	}
}

// fingerprint hashes the names and contents of the sources, or the read error.
func fingerprint(srcs []source, err error) [sha256.Size]byte {
	h := sha256.New()
	if err != nil {
		h.Write([]byte("error\x00" + err.Error()))
	}
	var n [8]byte
	for _, s := range srcs {
		for _, b := range [][]byte{[]byte(s.name), s.data} {
			binary.BigEndian.PutUint64(n[:], uint64(len(b)))
			h.Write(n[:])
			h.Write(b)
		}
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
