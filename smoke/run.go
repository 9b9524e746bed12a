package smoke

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/backoff"
)

// Defaults for RunOptions.
const (
	DefaultDeadline       = 60 * time.Second
	DefaultBackoff        = 100 * time.Millisecond
	DefaultAttemptTimeout = 10 * time.Second
	// MaxBackoff caps the delay between two attempts of one check.
	MaxBackoff = 2 * time.Second
)

// Result is the outcome of one check.
type Result struct {
	Name     string        `json:"name"`
	OK       bool          `json:"ok"`
	Err      string        `json:"error,omitempty"` // the last attempt's error
	Attempts int           `json:"attempts"`
	Duration time.Duration `json:"duration_ns"` // from the first attempt to the last
}

// RunOptions tune Run. Zero values mean the defaults.
type RunOptions struct {
	// Deadline bounds the whole run (every check, every retry); default
	// DefaultDeadline.
	Deadline time.Duration
	// Backoff is the first delay between attempts of a check; it doubles
	// with jitter after each failure, capped at MaxBackoff. Default
	// DefaultBackoff.
	Backoff time.Duration
	// AttemptTimeout bounds one attempt, so one hung request does not use up
	// the whole deadline; default DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// Logger receives failed attempts (debug) and results; nil discards.
	Logger *slog.Logger
	// QuietResults leaves the results out of the log: the caller logs the
	// ones that count with LogResults (an apply's early checks, which it
	// may stop and discard).
	QuietResults bool
	// Now is the clock for durations; default time.Now.
	Now func() time.Time
}

func (o RunOptions) withDefaults() RunOptions {
	if o.Deadline <= 0 {
		o.Deadline = DefaultDeadline
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Run runs every check concurrently, each retried with backoff until it
// passes or the deadline passes, and returns the results in the order of
// checks. Every check is attempted at least once.
func Run(ctx context.Context, checks []Check, o RunOptions) []Result {
	o = o.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, o.Deadline)
	defer cancel()

	results := make([]Result, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() { results[i] = runOne(ctx, c, o) })
	}
	wg.Wait()
	return results
}

// runOne retries one check until it passes or ctx ends.
func runOne(ctx context.Context, c Check, o RunOptions) Result {
	log := o.Logger.With(nodeagent.LogKeyCheck, c.Name())
	r := Result{Name: c.Name()}
	start := o.Now()
	policy := backoff.Policy{Base: o.Backoff, Max: MaxBackoff}
	for retry := 0; ; retry++ {
		r.Attempts++
		err := attempt(ctx, c, o.AttemptTimeout)
		if err == nil {
			r.OK, r.Err = true, ""
			break
		}
		r.Err = err.Error()
		log.Debug("smoke check attempt failed", nodeagent.LogKeyAttempt, r.Attempts, nodeagent.LogKeyError, err)

		// No wait for an attempt that would start after the deadline.
		if backoff.Sleep(ctx, policy.Delay(retry)) != nil {
			break
		}
	}
	r.Duration = o.Now().Sub(start)
	if !o.QuietResults {
		logResult(log, r)
	}
	return r
}

// LogResults logs each result as Run does unless QuietResults.
func LogResults(log *slog.Logger, rs []Result) {
	for _, r := range rs {
		logResult(log.With(nodeagent.LogKeyCheck, r.Name), r)
	}
}

func logResult(log *slog.Logger, r Result) {
	ms := float64(r.Duration.Microseconds()) / 1000
	if r.OK {
		log.Info("smoke check passed", nodeagent.LogKeyAttempts, r.Attempts, nodeagent.LogKeyDuration, ms)
	} else {
		log.Warn("smoke check failed", nodeagent.LogKeyAttempts, r.Attempts, nodeagent.LogKeyDuration, ms, nodeagent.LogKeyError, r.Err)
	}
}

// attempt runs c once within timeout; a check that returns nil after its
// context ended still counts as passed.
func attempt(ctx context.Context, c Check, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := c.Run(ctx)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return errors.Join(err, context.Cause(ctx))
	}
	return err
}

// Failed reports whether any result failed.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if !r.OK {
			return true
		}
	}
	return false
}
