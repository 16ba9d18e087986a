package main

import (
	"context"
	"runtime"
	"syscall"
	"time"
)

// prSetTimerSlack is prctl's PR_SET_TIMERSLACK (linux/prctl.h).
const prSetTimerSlack = 29

// sleepChunk bounds one nanosleep, so that sleepUntil notices ctx ending.
const sleepChunk = 10 * time.Millisecond

// pacingThread wires the calling goroutine to its thread and makes that
// thread's sleeps end within microseconds of their time (the kernel's default
// timer slack lets them overrun by 50µs). release restores the default slack
// and unwires the thread; the goroutine must call it before it returns. It
// must not return with the thread still locked: the runtime would then end
// the thread, and if that thread started sluice, the kernel kills sluice with
// it (Pdeathsig, see childAttr).
func pacingThread() (release func()) {
	runtime.LockOSThread()
	setTimerSlack(1) // best effort: a failure only costs precision
	return func() {
		setTimerSlack(0) // 0: back to the thread's default
		runtime.UnlockOSThread()
	}
}

// setTimerSlack sets the calling thread's timer slack in nanoseconds.
func setTimerSlack(ns uintptr) {
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, ns, 0)
}

// sleepUntil returns at t, or at once if t has passed; it returns ctx's error
// if ctx ends first. It sleeps in nanosleep(2) rather than on a Go timer: when
// the process is idle, the runtime waits for timers in epoll_wait, whose
// timeout is in whole milliseconds.
func sleepUntil(ctx context.Context, t time.Time) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := time.Until(t)
		if d <= 0 {
			return nil
		}
		ts := syscall.NsecToTimespec(int64(min(d, sleepChunk)))
		_ = syscall.Nanosleep(&ts, nil) // EINTR: the loop sleeps the rest
	}
}
