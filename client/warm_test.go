package client_test

import (
	"context"
	"net"
	"testing"
	"time"
)

func TestWarmConnectsAndCallsOnce(t *testing.T) {
	c := newClient(t, startFake(t, &fakeSluice{limit: 1}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Warm(ctx); err != nil {
		t.Fatalf("warm: %v", err)
	}
	// The connection is up: a check with a tight timeout does not dial.
	if _, err := c.Check(context.Background(), sandbox()); err != nil {
		t.Errorf("check after warm-up: %v", err)
	}
}

func TestWarmGivesUpWhenSluiceIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	c := newClient(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.Warm(ctx); err == nil {
		t.Error("warm-up against a closed port: no error")
	}
}
