// Package backoff is the one retry delay of nodeagent: exponential backoff
// with "equal jitter", capped, and aware of the caller's deadline. IMDS,
// the topology and release sources, the Auto Scaling client, the smoke
// checks and the boot apply all space their retries with it, so a fleet
// whose shared dependency fails never comes back at once.
//
// Before retry n (0 for the first retry) the delay is drawn from [c/2, c)
// with c = min(Max, Base·2ⁿ): never shorter than half the step, so retries
// still back off, and spread over the other half so that nodes that failed
// together do not retry together.
package backoff

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Policy is a backoff schedule. The zero Jitter draws from math/rand/v2.
type Policy struct {
	// Base is the step before the first retry.
	Base time.Duration
	// Max caps the step; Max below Base means Base.
	Max time.Duration
	// Jitter returns a number in [0, n); nil means rand.Int64N. Tests set
	// it to make delays exact.
	Jitter func(n int64) int64
}

// Step is the undrawn step c before retry n: min(Max, Base·2ⁿ).
func (p Policy) Step(n int) time.Duration {
	limit := max(p.Max, p.Base)
	if n < 0 {
		n = 0
	}
	if n >= 32 || p.Base<<n <= 0 || p.Base<<n > limit {
		return limit
	}
	return p.Base << n
}

// Delay is the wait before retry n: in [Step(n)/2, Step(n)).
func (p Policy) Delay(n int) time.Duration {
	c := p.Step(n)
	half := c / 2
	if c-half <= 1 {
		return c
	}
	jitter := p.Jitter
	if jitter == nil {
		jitter = rand.Int64N
	}
	return half + time.Duration(jitter(int64(c-half)))
}

// BackoffDelay implements the AWS SDK's retry.BackoffDelayer, so the SDK's
// retryers (IMDS, S3) use this schedule. The SDK counts attempts from 1.
func (p Policy) BackoffDelay(attempt int, _ error) (time.Duration, error) {
	return p.Delay(attempt), nil
}

// ErrDeadline says the next retry would start after the caller's deadline,
// so Sleep did not wait for it.
var ErrDeadline = errors.New("the next retry would start after the deadline")

// Sleep waits d unless ctx ends first. When ctx has a deadline that comes
// before d has passed it returns ErrDeadline at once instead of waiting for
// a retry that could not start in time; when ctx ends during the wait it
// returns ctx.Err().
func Sleep(ctx context.Context, d time.Duration) error {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return ErrDeadline
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Retry calls f until it returns nil or an error retry does not accept,
// waiting p.Delay(n) before retry n, until ctx ends or its deadline would
// pass before the next try. It returns how many times f ran and f's last
// error (joined with ctx's error or ErrDeadline when those stopped it).
func Retry(ctx context.Context, p Policy, retry func(error) bool, f func(context.Context) error) (int, error) {
	return RetryNotify(ctx, p, retry, f, nil)
}

// RetryNotify is Retry that calls notify, when not nil, before it waits
// for retry n (from 0): with n, the wait and the error being retried.
func RetryNotify(ctx context.Context, p Policy, retry func(error) bool, f func(context.Context) error, notify func(n int, wait time.Duration, err error)) (int, error) {
	for n := 0; ; n++ {
		err := f(ctx)
		if err == nil {
			return n + 1, nil
		}
		if ctx.Err() != nil || !retry(err) {
			return n + 1, err
		}
		wait := p.Delay(n)
		if notify != nil {
			notify(n, wait, err)
		}
		if serr := Sleep(ctx, wait); serr != nil {
			return n + 1, fmt.Errorf("%w (gave up retrying: %w)", err, serr)
		}
	}
}
