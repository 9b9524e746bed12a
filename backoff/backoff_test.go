package backoff_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nodeagent/nodeagent/backoff"
)

func lowest(int64) int64    { return 0 }
func highest(n int64) int64 { return n - 1 }

func TestDelaySchedule(t *testing.T) {
	p := backoff.Policy{Base: 100 * time.Millisecond, Max: time.Second}
	steps := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for n, step := range steps {
		step *= time.Millisecond
		if got := p.Step(n); got != step {
			t.Errorf("Step(%d) = %s, want %s", n, got, step)
		}
		p.Jitter = lowest
		if got := p.Delay(n); got != step/2 {
			t.Errorf("Delay(%d) with the lowest draw = %s, want %s", n, got, step/2)
		}
		p.Jitter = highest
		if got := p.Delay(n); got != step-1 {
			t.Errorf("Delay(%d) with the highest draw = %s, want %s", n, got, step-1)
		}
	}
	if got := p.Step(1000); got != time.Second {
		t.Errorf("Step(1000) = %s, want the cap 1s", got)
	}
	if got := (backoff.Policy{Base: time.Second, Max: 0}).Step(3); got != time.Second {
		t.Errorf("Max below Base: Step(3) = %s, want Base", got)
	}
}

func TestDelayDrawsWithinBounds(t *testing.T) {
	p := backoff.Policy{Base: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	for n := range 6 {
		c := p.Step(n)
		for range 200 {
			if d := p.Delay(n); d < c/2 || d >= c {
				t.Fatalf("Delay(%d) = %s, want in [%s, %s)", n, d, c/2, c)
			}
		}
	}
}

var errTransient = errors.New("503 Service Unavailable")

// TestRetryUntilDeadline: with the lowest draw the waits are 0.5, 1, 2, 2,
// 2 s…; in a 6 s deadline the tries start at 0, 0.5, 1.5, 3.5 and 5.5 s, and
// the next would start at 7.5 s, after the deadline: five tries, and Retry
// returns at 5.5 s without waiting for one that cannot start.
func TestRetryUntilDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := backoff.Policy{Base: time.Second, Max: 4 * time.Second, Jitter: lowest}
		ctx, cancel := context.WithTimeout(t.Context(), 6*time.Second)
		defer cancel()
		start := time.Now()
		var at []time.Duration
		n, err := backoff.Retry(ctx, p, func(error) bool { return true }, func(context.Context) error {
			at = append(at, time.Since(start))
			return errTransient
		})
		want := []time.Duration{0, 500 * time.Millisecond, 1500 * time.Millisecond, 3500 * time.Millisecond, 5500 * time.Millisecond}
		if n != len(want) || len(at) != len(want) {
			t.Fatalf("Retry ran %d tries at %v, want %d at %v", n, at, len(want), want)
		}
		for i := range want {
			if at[i] != want[i] {
				t.Errorf("try %d at %s, want %s", i+1, at[i], want[i])
			}
		}
		if !errors.Is(err, errTransient) || !errors.Is(err, backoff.ErrDeadline) {
			t.Errorf("Retry error %v, want the last error and ErrDeadline", err)
		}
		if took := time.Since(start); took != 5500*time.Millisecond {
			t.Errorf("Retry returned after %s, want 5.5s (no wait for a try past the deadline)", took)
		}
	})
}

func TestRetryStopsOnSuccessAndPermanentErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := backoff.Policy{Base: time.Second, Max: time.Second, Jitter: highest}
		start := time.Now()
		calls := 0
		n, err := backoff.Retry(t.Context(), p, func(error) bool { return true }, func(context.Context) error {
			calls++
			if calls < 3 {
				return errTransient
			}
			return nil
		})
		if n != 3 || err != nil {
			t.Errorf("Retry = %d, %v; want 3 tries and success", n, err)
		}
		// Two waits of the highest draw of a 1s step: 999.999999ms each.
		if took, want := time.Since(start), 2*(time.Second-1); took != want {
			t.Errorf("Retry took %s, want %s", took, want)
		}

		errPermanent := errors.New("403 Forbidden")
		calls = 0
		n, err = backoff.Retry(t.Context(), p, func(err error) bool { return err == errTransient }, func(context.Context) error {
			calls++
			return errPermanent
		})
		if n != 1 || err != errPermanent {
			t.Errorf("Retry of a permanent error = %d, %v; want 1 try and that error unchanged", n, err)
		}
	})
}

func TestSleepEndsWithTheContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		start := time.Now()
		time.AfterFunc(3*time.Second, cancel)
		if err := backoff.Sleep(ctx, time.Minute); !errors.Is(err, context.Canceled) {
			t.Errorf("Sleep cancelled after 3s = %v, want context.Canceled", err)
		}
		if took := time.Since(start); took != 3*time.Second {
			t.Errorf("Sleep returned after %s, want 3s", took)
		}
		dctx, dcancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer dcancel()
		start = time.Now()
		if err := backoff.Sleep(dctx, 11*time.Second); !errors.Is(err, backoff.ErrDeadline) {
			t.Errorf("Sleep past the deadline = %v, want ErrDeadline", err)
		}
		if took := time.Since(start); took != 0 {
			t.Errorf("Sleep past the deadline waited %s, want no wait", took)
		}
		if err := backoff.Sleep(dctx, 9*time.Second); err != nil {
			t.Errorf("Sleep ending before the deadline = %v, want nil", err)
		}
	})
}

// TestRetryNotifyTellsEachWait: notify sees every retry, from 0, with the
// wait Retry then sleeps and the error it retries, and nothing after the
// last try.
func TestRetryNotifyTellsEachWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := backoff.Policy{Base: time.Second, Max: 4 * time.Second, Jitter: lowest}
		type note struct {
			n    int
			wait time.Duration
			err  error
		}
		var notes []note
		calls := 0
		start := time.Now()
		n, err := backoff.RetryNotify(t.Context(), p, func(error) bool { return calls < 3 }, func(context.Context) error {
			calls++
			return errTransient
		}, func(n int, wait time.Duration, err error) { notes = append(notes, note{n, wait, err}) })
		want := []note{{0, 500 * time.Millisecond, errTransient}, {1, time.Second, errTransient}}
		if n != 3 || !errors.Is(err, errTransient) {
			t.Fatalf("RetryNotify = %d, %v; want 3 tries and the last error", n, err)
		}
		if len(notes) != len(want) {
			t.Fatalf("notify saw %v, want %v", notes, want)
		}
		for i := range want {
			if notes[i] != want[i] {
				t.Errorf("notify %d = %v, want %v", i, notes[i], want[i])
			}
		}
		if took := time.Since(start); took != 1500*time.Millisecond {
			t.Errorf("RetryNotify returned after %s, want the two waits notify saw, 1.5s", took)
		}
	})
}
