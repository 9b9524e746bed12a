package hostfs_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent/hostfs"
)

func TestLock(t *testing.T) {
	f := newFS(t)
	ctx := context.Background()

	unlock, err := f.Lock(ctx)
	if err != nil {
		t.Fatalf("first Lock: %v", err)
	}
	pid := strconv.Itoa(os.Getpid())
	if got, err := os.ReadFile(f.Path("/var/lib/nodeagent/lock")); err != nil || strings.TrimSpace(string(got)) != pid {
		t.Errorf("lock file = %q, %v; want our pid %s", got, err, pid)
	}

	// A second locker (its own open file description, as another process
	// would have) waits, then gives up naming the holder.
	short, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	unlock2, err := f.Lock(short)
	if err == nil {
		unlock2()
		t.Fatal("second Lock succeeded while the first holds the lock")
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Errorf("second Lock gave up after %v, want it to wait for the context", waited)
	}
	if !errors.Is(err, hostfs.ErrLocked) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second Lock error = %v, want ErrLocked and DeadlineExceeded", err)
	}
	var locked *hostfs.LockedError
	if !errors.As(err, &locked) || locked.PID != os.Getpid() {
		t.Errorf("second Lock error = %#v, want a *LockedError with PID %d", err, os.Getpid())
	}
	if !strings.Contains(err.Error(), "pid "+pid) {
		t.Errorf("error %q does not name pid %s", err, pid)
	}

	// A waiting locker gets the lock once it is released.
	go func() {
		time.Sleep(100 * time.Millisecond)
		unlock()
	}()
	wait, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	unlock3, err := f.Lock(wait)
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	if err := unlock3(); err != nil {
		t.Errorf("unlock: %v", err)
	}
	if err := unlock3(); err != nil {
		t.Errorf("second unlock: %v, want nil", err)
	}
	if got, _ := os.ReadFile(f.Path("/var/lib/nodeagent/lock")); len(got) != 0 {
		t.Errorf("lock file after unlock = %q, want empty", got)
	}
}

func TestLockCanceledBeforeStart(t *testing.T) {
	f := newFS(t)
	unlock, err := f.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Lock(ctx); !errors.Is(err, hostfs.ErrLocked) || !errors.Is(err, context.Canceled) {
		t.Errorf("Lock with a canceled context = %v, want ErrLocked and Canceled", err)
	}
}
