package main

import "syscall"

// childAttr makes the kernel kill a child process if the harness dies
// without stopping it (e.g. SIGKILL).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
