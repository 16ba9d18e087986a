package main

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// prGetTimerSlack is prctl's PR_GET_TIMERSLACK (linux/prctl.h).
const prGetTimerSlack = 30

// timerSlack returns the calling thread's timer slack in nanoseconds.
func timerSlack() uintptr {
	slack, _, _ := syscall.RawSyscall(syscall.SYS_PRCTL, prGetTimerSlack, 0, 0)
	return slack
}

// pacedThread is what one goroutine saw of the thread pacingThread gave it.
type pacedThread struct {
	tid           int
	during, after uintptr // timer slack while pacing and after release
}

// pace runs pacingThread and release on a new goroutine, which then ends.
func pace() pacedThread {
	ch := make(chan pacedThread)
	go func() {
		release := pacingThread()
		s := pacedThread{tid: syscall.Gettid(), during: timerSlack()}
		release()
		runtime.LockOSThread() // read the slack of the same thread, if still on it
		if syscall.Gettid() == s.tid {
			s.after = timerSlack()
		}
		runtime.UnlockOSThread()
		ch <- s
	}()
	return <-ch
}

// TestPacingThreadOutlivesPacer: the pacer's thread must not end with the
// pacer, or the kernel would kill the children it started (Pdeathsig), and it
// must get its default timer slack back.
func TestPacingThreadOutlivesPacer(t *testing.T) {
	// Holding this thread keeps the pacer off it while this goroutine waits.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defaultSlack := timerSlack()
	// The main thread never ends, so it cannot show the bug: try until the
	// pacer runs on another thread.
	for range 20 {
		s := pace()
		if s.during != 1 {
			t.Errorf("timer slack %dns while pacing, want 1ns", s.during)
		}
		if s.after != 0 && s.after != defaultSlack {
			t.Errorf("timer slack %dns after pacing, want the default %dns back", s.after, defaultSlack)
		}
		if s.tid == os.Getpid() {
			continue
		}
		time.Sleep(50 * time.Millisecond) // a thread that ends does so right after its goroutine
		if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", s.tid)); err != nil {
			t.Fatalf("the pacing thread %d ended with its goroutine: %v", s.tid, err)
		}
		return
	}
	t.Skip("the pacer ran on the main thread every time")
}
