package plan_test

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/nodeagent/nodeagent"
)

// fakeServices is a ServiceManager of function fields that records every
// call as "method unit".
type fakeServices struct {
	ActiveFunc  func(ctx context.Context, unit string) (bool, error)
	StartFunc   func(ctx context.Context, unit string) error
	ReloadFunc  func(ctx context.Context, unit string) error
	RestartFunc func(ctx context.Context, unit string) error

	mu    sync.Mutex
	calls []string
}

var _ nodeagent.ServiceManager = (*fakeServices)(nil)

func (f *fakeServices) record(method, unit string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, method+" "+unit)
}

func (f *fakeServices) Active(ctx context.Context, unit string) (bool, error) {
	f.record("active", unit)
	if f.ActiveFunc == nil {
		return true, nil
	}
	return f.ActiveFunc(ctx, unit)
}

func (f *fakeServices) Start(ctx context.Context, unit string) error {
	f.record("start", unit)
	if f.StartFunc == nil {
		return nil
	}
	return f.StartFunc(ctx, unit)
}

func (f *fakeServices) Reload(ctx context.Context, unit string) error {
	f.record("reload", unit)
	if f.ReloadFunc == nil {
		return nil
	}
	return f.ReloadFunc(ctx, unit)
}

func (f *fakeServices) Restart(ctx context.Context, unit string) error {
	f.record("restart", unit)
	if f.RestartFunc == nil {
		return nil
	}
	return f.RestartFunc(ctx, unit)
}

// stopped returns an ActiveFunc reporting the given units stopped.
func stopped(units ...string) func(context.Context, string) (bool, error) {
	return func(_ context.Context, unit string) (bool, error) {
		for _, u := range units {
			if u == unit {
				return false, nil
			}
		}
		return true, nil
	}
}

// fakeChecker is a ConfigChecker of a function field that records the
// services it checked.
type fakeChecker struct {
	CheckFunc func(ctx context.Context, service string) error
	mu        sync.Mutex
	checked   []string
}

var _ nodeagent.ConfigChecker = (*fakeChecker)(nil)

func (f *fakeChecker) Check(ctx context.Context, service string) error {
	f.mu.Lock()
	f.checked = append(f.checked, service)
	slices.Sort(f.checked) // concurrent checks: the order they started in is not part of the contract
	f.mu.Unlock()
	if f.CheckFunc == nil {
		return nil
	}
	return f.CheckFunc(ctx, service)
}

// outputError is a checker error carrying output, as service.CommandError.
type outputError struct{ out string }

func (e *outputError) Error() string  { return fmt.Sprintf("apache2ctl -t: exit status 1: %s", e.out) }
func (e *outputError) Output() string { return e.out }
