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

// The run lock is apart from the apply lock: `run` holds it for its life
// while its own applies take the apply lock, and a one-shot apply beside it
// is refused at once, naming the daemon.
func TestTryLockRun(t *testing.T) {
	f := newFS(t)
	// No daemon has ever run here: nothing to take, nothing created.
	unlock, err := f.TryLockRun()
	if err != nil {
		t.Fatalf("TryLockRun with no run lock file: %v", err)
	}
	unlock()
	if _, err := os.Stat(f.Path("/var/lib/nodeagent/run.lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("TryLockRun created the run lock file (stat: %v)", err)
	}

	daemon, err := f.LockRun(context.Background())
	if err != nil {
		t.Fatalf("LockRun: %v", err)
	}
	unlockApply, err := f.Lock(context.Background())
	if err != nil {
		t.Fatalf("Lock while the run lock is held: %v, want the apply lock to be separate", err)
	}
	unlockApply()

	start := time.Now()
	unlock, err = f.TryLockRun()
	if err == nil {
		unlock()
		t.Fatal("TryLockRun succeeded while LockRun holds the run lock")
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("TryLockRun took %v, want it to give up at once", waited)
	}
	var locked *hostfs.LockedError
	if !errors.Is(err, hostfs.ErrLocked) || !errors.As(err, &locked) || locked.PID != os.Getpid() {
		t.Errorf("TryLockRun error = %v, want a *LockedError (ErrLocked) naming pid %d", err, os.Getpid())
	}
	if !strings.HasSuffix(locked.Path, "/var/lib/nodeagent/run.lock") {
		t.Errorf("LockedError.Path = %q, want the run lock", locked.Path)
	}

	if err := daemon(); err != nil {
		t.Fatalf("unlock run: %v", err)
	}
	unlock, err = f.TryLockRun()
	if err != nil {
		t.Fatalf("TryLockRun after the daemon released it: %v", err)
	}
	if err := unlock(); err != nil {
		t.Errorf("unlock: %v", err)
	}
}
