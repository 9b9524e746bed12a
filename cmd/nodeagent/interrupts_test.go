package main

import (
	"context"
	"errors"
	"strings"
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
	if cause := context.Cause(i.ctx); cause == nil || !strings.Contains(cause.Error(), "signal") {
		t.Errorf("cause %v, want the signal's (\"terminated signal received\")", cause)
	}
}

// TestInterruptsStop: stop cancels the context whether or not signals were
// caught, and a catch after it catches nothing.
func TestInterruptsStop(t *testing.T) {
	i := newInterrupts()
	if i.ctx.Err() != nil {
		t.Fatal("context cancelled before anything happened")
	}
	i.stop()
	if !errors.Is(i.ctx.Err(), context.Canceled) {
		t.Fatalf("after stop: %v, want context.Canceled", i.ctx.Err())
	}
	i.catch()
	if i.stopSignals != nil {
		t.Error("catch after stop started catching signals")
	}
}
