package config

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// watcher runs Watch on path and records what it applies and reports.
type watcher struct {
	applied chan *Set
	reports chan error
	stop    func()
}

func startWatch(t *testing.T, path string) *watcher {
	t.Helper()
	return startWatchFrom(t, path, nil)
}

// startWatchFrom watches path starting from current, a set loaded from it.
func startWatchFrom(t *testing.T, path string, current *Set) *watcher {
	t.Helper()
	w := &watcher{applied: make(chan *Set, 100), reports: make(chan error, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		Watch(ctx, path, 20*time.Millisecond, current, func(s *Set) { w.applied <- s }, func(err error) { w.reports <- err })
	}()
	w.stop = func() { cancel(); wg.Wait() }
	t.Cleanup(w.stop)
	return w
}

func (w *watcher) nextSet(t *testing.T) *Set {
	t.Helper()
	select {
	case s := <-w.applied:
		return s
	case err := <-w.reports:
		t.Fatalf("reported instead of applied: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no set applied")
	}
	return nil
}

func (w *watcher) nextReport(t *testing.T) error {
	t.Helper()
	select {
	case s := <-w.applied:
		t.Fatalf("applied %v instead of reporting", s.Domains())
	case err := <-w.reports:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("nothing reported")
	}
	return nil
}

// quiet checks that nothing is applied or reported for a few polls.
func (w *watcher) quiet(t *testing.T) {
	t.Helper()
	select {
	case s := <-w.applied:
		t.Fatalf("applied %v", s.Domains())
	case err := <-w.reports:
		t.Fatalf("reported %v", err)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestWatchInPlaceWrite(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a.yaml")
	write(t, file, limitConfig("a", 1))
	w := startWatch(t, dir)
	if got := requestsOf(w.nextSet(t), "a"); got != 1 {
		t.Fatalf("initial = %d", got)
	}
	w.quiet(t)
	write(t, file, limitConfig("a", 2))
	if got := requestsOf(w.nextSet(t), "a"); got != 2 {
		t.Fatalf("after write = %d", got)
	}
	write(t, filepath.Join(dir, "b.yaml"), limitConfig("b", 3))
	if s := w.nextSet(t); requestsOf(s, "b") != 3 || requestsOf(s, "a") != 2 {
		t.Fatalf("after new file = %v", s.Domains())
	}
	w.quiet(t)
}

func TestWatchRenameReplace(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a.yaml")
	write(t, file, limitConfig("a", 1))
	w := startWatch(t, file) // watching a single file
	w.nextSet(t)
	tmp := filepath.Join(dir, ".a.yaml.swp")
	write(t, tmp, limitConfig("a", 7))
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	if got := requestsOf(w.nextSet(t), "a"); got != 7 {
		t.Fatalf("after rename = %d", got)
	}
}

func TestWatchKubernetesSwap(t *testing.T) {
	dir, swap := kubernetesLayout(t, map[string]string{"a.yaml": limitConfig("a", 1)})
	w := startWatch(t, dir)
	w.nextSet(t)
	swap(map[string]string{"a.yaml": limitConfig("a", 9)})
	if got := requestsOf(w.nextSet(t), "a"); got != 9 {
		t.Fatalf("after swap = %d", got)
	}
	w.quiet(t)
}

func TestWatchBrokenEditReportedOnce(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a.yaml")
	write(t, file, limitConfig("a", 1))
	w := startWatch(t, dir)
	w.nextSet(t)

	write(t, file, "domain: a\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n")
	err := w.nextReport(t)
	if !strings.Contains(err.Error(), `a.yaml:4: descriptors[0].rate_limit.unit: unknown unit "fortnight"`) {
		t.Errorf("report = %v", err)
	}
	w.quiet(t) // the same broken contents are not reported again

	write(t, file, limitConfig("a", 4))
	if got := requestsOf(w.nextSet(t), "a"); got != 4 {
		t.Fatalf("after fix = %d", got)
	}

	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := w.nextReport(t); !strings.Contains(err.Error(), "no *.yaml") {
		t.Errorf("report = %v", err)
	}
	w.quiet(t)
}

func TestWatchStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	go func() {
		Watch(ctx, t.TempDir(), 0, nil, func(*Set) {}, func(error) {})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after its context ended")
	}
}

// TestWatchStartsFromTheLoadedSet: a set the caller loaded is not applied
// again; the first change is.
func TestWatchStartsFromTheLoadedSet(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a.yaml")
	write(t, file, limitConfig("a", 1))
	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := startWatchFrom(t, dir, loaded)
	w.quiet(t)
	write(t, file, limitConfig("a", 2))
	if got := requestsOf(w.nextSet(t), "a"); got != 2 {
		t.Fatalf("after write = %d", got)
	}
}
