package main

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"
)

// TestInterruptsCatch: after catch (called twice, as the agent may), a
// SIGTERM cancels the command's context instead of ending the process.
func TestInterruptsCatch(t *testing.T) {
	i := newInterrupts()
	defer i.stop()
	i.catch()
	i.catch()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-i.ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGTERM after catch did not cancel the context within 10s")
	}
	if cause := context.Cause(i.ctx); cause == nil || errors.Is(cause, context.DeadlineExceeded) {
		t.Errorf("cause %v, want the signal's cancellation", cause)
	}
}

// TestInterruptsStop: stop cancels the context whether or not signals were
// caught.
func TestInterruptsStop(t *testing.T) {
	i := newInterrupts()
	if i.ctx.Err() != nil {
		t.Fatal("context cancelled before anything happened")
	}
	i.stop()
	if !errors.Is(i.ctx.Err(), context.Canceled) {
		t.Fatalf("after stop: %v, want context.Canceled", i.ctx.Err())
	}
}
