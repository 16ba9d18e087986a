//go:build !linux

package main

import "syscall"

// childAttr has nothing to add outside Linux; stop still ends the child.
func childAttr() *syscall.SysProcAttr { return nil }
