package main

import (
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	// pid (comm with ) space) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
	s := "4242 (sl uice) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 7 20 0 9 0 1 1 1\n"
	self, children, err := parseProcStat(s)
	if err != nil {
		t.Fatal(err)
	}
	if self != 3*time.Second || children != 70*time.Millisecond {
		t.Fatalf("got %v and %v, want 3s and 70ms", self, children)
	}
}
