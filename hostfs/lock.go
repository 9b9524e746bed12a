package hostfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nodeagent/nodeagent/hostfs/beneath"
)

// ErrLocked: another process holds the apply lock. Lock's error matches it
// (errors.Is) and is a *LockedError naming the holder.
var ErrLocked = errors.New("apply lock held by another process")

// LockedError says who holds the apply lock a Lock call gave up on.
type LockedError struct {
	Path string // host path of the lock file under Root
	PID  int    // the holder's pid as it wrote it; 0 if unknown
	Err  error  // why Lock stopped waiting: the context's error
}

func (e *LockedError) Error() string {
	holder := "another process (pid unknown)"
	if e.PID > 0 {
		holder = "pid " + strconv.Itoa(e.PID)
	}
	return "hostfs: lock " + e.Path + ": held by " + holder + ": " + e.Err.Error()
}

// Unwrap makes the error match both ErrLocked and the context's error.
func (e *LockedError) Unwrap() []error { return []error{ErrLocked, e.Err} }

// lockPoll is how often Lock retries a held lock.
const lockPoll = 50 * time.Millisecond

// Lock takes the apply lock, an exclusive flock on <StateDir>/lock, waiting
// for it until ctx is done; it then fails with a *LockedError naming the
// pid of the holder. The holder's pid is written into the lock file. The
// kernel drops the lock when the process exits, so a crash never leaves it
// held. unlock releases it (calling it again does nothing).
func (f FS) Lock(ctx context.Context) (unlock func() error, err error) {
	return f.lock(ctx, "lock", true)
}

// LockRun takes the run lock, <StateDir>/run.lock, the way Lock takes the
// apply lock. `nodeagent run` holds it for its whole life: the daemon keeps
// the node's readiness, status file and health file in step with what it
// applied, and an apply by hand beside it would change the node under it.
func (f FS) LockRun(ctx context.Context) (unlock func() error, err error) {
	return f.lock(ctx, "run.lock", true)
}

// TryLockRun takes the run lock without waiting: a one-shot apply holds it
// for its duration, and fails at once with a *LockedError (matching
// ErrLocked) while `nodeagent run` manages the node. Where no run lock file
// exists, no daemon has ever run with this state dir: TryLockRun then
// creates nothing (a failed apply leaves the host as it was) and its
// unlock does nothing; a daemon starting meanwhile still waits for the
// apply lock.
func (f FS) TryLockRun() (unlock func() error, err error) {
	return f.lock(context.Background(), "run.lock", false)
}

// lock takes the exclusive flock on <StateDir>/name. With wait it creates
// the file and retries a held lock until ctx is done; without, it gives up
// at once and takes no lock where the file does not exist.
func (f FS) lock(ctx context.Context, name string, wait bool) (unlock func() error, err error) {
	path := f.Path(filepath.Join(f.stateDir(), name))
	// The state dir and the lock file are opened beneath the root without
	// following a symlink: a lock planted as a link to a file elsewhere is
	// refused, never truncated.
	var dir *beneath.Dir
	if wait {
		dir, err = f.OpenStateDir()
	} else {
		dir, err = beneath.OpenDir(f.root(), f.stateDir())
	}
	if !wait && errors.Is(err, fs.ErrNotExist) {
		return func() error { return nil }, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hostfs: lock %s: %w", path, err)
	}
	defer dir.Close()
	flags := os.O_RDWR
	if wait {
		flags |= os.O_CREATE
	}
	file, err := dir.Open(name, flags, 0o644)
	if !wait && errors.Is(err, fs.ErrNotExist) {
		return func() error { return nil }, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hostfs: lock: %w", err)
	}
	if fi, err := file.Stat(); err != nil || !fi.Mode().IsRegular() {
		file.Close()
		if err == nil {
			err = fmt.Errorf("%s is %v: %w", path, fi.Mode().Type(), ErrNotRegular)
		}
		return nil, fmt.Errorf("hostfs: lock: %w", err)
	}
	if wait {
		err = flockWait(ctx, file)
	} else if err = syscall.Flock(int(file.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); errors.Is(err, syscall.EWOULDBLOCK) {
		err = errHeld
	}
	if err != nil {
		defer file.Close()
		if ctx.Err() != nil || err == errHeld {
			return nil, &LockedError{Path: path, PID: holderPID(file), Err: err}
		}
		return nil, fmt.Errorf("hostfs: lock %s: %w", path, err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err = file.Truncate(0); err == nil {
		_, err = file.WriteAt(pid, 0)
	}
	if err != nil {
		syscall.Flock(int(file.Fd()), syscall.LOCK_UN)
		file.Close()
		return nil, fmt.Errorf("hostfs: lock %s: record pid: %w", path, err)
	}
	return sync.OnceValue(func() error {
		// Clear the pid first: once unlocked, it would name the wrong
		// process.
		terr := file.Truncate(0)
		uerr := syscall.Flock(int(file.Fd()), syscall.LOCK_UN)
		cerr := file.Close()
		if err := errors.Join(terr, uerr, cerr); err != nil {
			return fmt.Errorf("hostfs: unlock %s: %w", path, err)
		}
		return nil
	}), nil
}

// errHeld is why a lock taken without waiting failed.
var errHeld = errors.New("the lock is held")

// flockWait tries a non-blocking exclusive flock until it succeeds or ctx
// is done (a blocking flock could not be cancelled).
func flockWait(ctx context.Context, file *os.File) error {
	t := time.NewTicker(lockPoll)
	defer t.Stop()
	for {
		err := syscall.Flock(int(file.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, syscall.EINTR):
		default:
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// holderPID reads the pid the lock's holder wrote into the open lock file;
// 0 when there is none.
func holderPID(file *os.File) int {
	data := make([]byte, 32)
	n, err := file.ReadAt(data, 0)
	if n == 0 || (err != nil && !errors.Is(err, io.EOF)) {
		return 0
	}
	data = data[:n]
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
