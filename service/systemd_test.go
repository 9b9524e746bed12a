package service_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent/service"
)

// call is one recorded D-Bus call.
type call struct {
	Method, Unit, Arg string
}

// fakeConn records calls and answers jobs with a configured result; "" means
// the job never finishes.
type fakeConn struct {
	mu      sync.Mutex
	calls   []call
	result  string
	state   any
	propErr error
	jobErr  error
}

var _ service.Conn = (*fakeConn)(nil)

func (f *fakeConn) job(method, name, mode string, ch chan<- string) (int, error) {
	f.mu.Lock()
	f.calls = append(f.calls, call{method, name, mode})
	f.mu.Unlock()
	if f.jobErr != nil {
		return 0, f.jobErr
	}
	if f.result != "" {
		// Like go-systemd: the result arrives later, from another goroutine.
		go func() { ch <- f.result }()
	}
	return 42, nil
}

func (f *fakeConn) StartUnitContext(_ context.Context, name, mode string, ch chan<- string) (int, error) {
	return f.job("StartUnit", name, mode, ch)
}

func (f *fakeConn) ReloadUnitContext(_ context.Context, name, mode string, ch chan<- string) (int, error) {
	return f.job("ReloadUnit", name, mode, ch)
}

func (f *fakeConn) RestartUnitContext(_ context.Context, name, mode string, ch chan<- string) (int, error) {
	return f.job("RestartUnit", name, mode, ch)
}

func (f *fakeConn) GetUnitPropertyContext(_ context.Context, unit, prop string) (*sddbus.Property, error) {
	f.mu.Lock()
	f.calls = append(f.calls, call{"GetUnitProperty", unit, prop})
	f.mu.Unlock()
	if f.propErr != nil {
		return nil, f.propErr
	}
	return &sddbus.Property{Name: prop, Value: dbus.MakeVariant(f.state)}, nil
}

func TestSystemdJobs(t *testing.T) {
	type action func(*service.Systemd, context.Context, string) error
	start := (*service.Systemd).Start
	reload := (*service.Systemd).Reload
	restart := (*service.Systemd).Restart
	tests := []struct {
		name    string
		do      action
		result  string
		jobErr  error
		timeout time.Duration
		want    call
		wantErr []string // substrings; nil means success
	}{
		{name: "start done", do: start, result: "done", want: call{"StartUnit", "apache2.service", "replace"}},
		{name: "reload done", do: reload, result: "done", want: call{"ReloadUnit", "php8.2-fpm.service", "replace"}},
		{name: "restart done", do: restart, result: "done", want: call{"RestartUnit", "memcached.service", "replace"}},
		{name: "reload failed", do: reload, result: "failed", want: call{"ReloadUnit", "apache2.service", "replace"},
			wantErr: []string{"systemd: reload apache2.service", `result "failed"`, "journalctl -u apache2.service"}},
		{name: "start dependency", do: start, result: "dependency", want: call{"StartUnit", "apache2.service", "replace"},
			wantErr: []string{"systemd: start apache2", `result "dependency"`}},
		{name: "restart timeout result", do: restart, result: "timeout", want: call{"RestartUnit", "memcached.service", "replace"},
			wantErr: []string{"systemd: restart memcached", `result "timeout"`}},
		{name: "job never finishes", do: reload, result: "", timeout: 50 * time.Millisecond, want: call{"ReloadUnit", "apache2.service", "replace"},
			wantErr: []string{"systemd: reload apache2", "waiting for the job", "deadline exceeded"}},
		{name: "enqueue refused", do: start, jobErr: errors.New("Unit nope.service not found."), want: call{"StartUnit", "nope.service", "replace"},
			wantErr: []string{"systemd: start nope", "not found"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeConn{result: tt.result, jobErr: tt.jobErr}
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			err := tt.do(service.NewSystemdWith(f), ctx, strings.TrimSuffix(tt.want.Unit, ".service"))
			if diff := cmp.Diff([]call{tt.want}, f.calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("err = nil, want an error")
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("err = %q, want it to contain %q", err, s)
				}
			}
			if tt.result != "" && tt.result != "done" {
				var je *service.JobError
				if !errors.As(err, &je) || je.Result != tt.result {
					t.Errorf("errors.As JobError = %+v, want result %q", je, tt.result)
				}
			}
		})
	}
}

func TestSystemdActive(t *testing.T) {
	tests := []struct {
		state   any
		propErr error
		want    bool
		wantErr bool
	}{
		{state: "active", want: true},
		{state: "reloading", want: true},
		{state: "inactive", want: false},
		{state: "failed", want: false},
		{state: "activating", want: false},
		{state: uint32(1), wantErr: true},
		{propErr: errors.New("no such unit"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSpace(strings.ReplaceAll(sprint(tt.state, tt.propErr), " ", "_")), func(t *testing.T) {
			f := &fakeConn{state: tt.state, propErr: tt.propErr}
			got, err := service.NewSystemdWith(f).Active(context.Background(), "apache2")
			if diff := cmp.Diff([]call{{"GetUnitProperty", "apache2.service", "ActiveState"}}, f.calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "apache2") {
				t.Errorf("err = %q, want the unit named", err)
			}
			if got != tt.want {
				t.Errorf("Active = %v, want %v", got, tt.want)
			}
		})
	}
}

func sprint(state any, err error) string {
	if err != nil {
		return "error " + err.Error()
	}
	switch s := state.(type) {
	case string:
		return s
	default:
		return "non-string"
	}
}

func TestUnitName(t *testing.T) {
	for in, want := range map[string]string{
		"apache2":         "apache2.service",
		"php8.2-fpm":      "php8.2-fpm.service",
		"httpd.service":   "httpd.service",
		"nodeagent.timer": "nodeagent.timer",
		"memcached@1":     "memcached@1.service",
	} {
		if got := service.UnitName(in); got != want {
			t.Errorf("UnitName(%q) = %q, want %q", in, got, want)
		}
	}
}

// connFake is a fakeConn that can say it lost its bus.
type connFake struct {
	fakeConn
	lost bool
}

func (c *connFake) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.lost
}

// dialer hands out the given connections in turn and records the context
// each was dialled on.
type dialer struct {
	mu     sync.Mutex
	conns  []*connFake
	ctxs   []context.Context
	closed int
}

func (d *dialer) dial(ctx context.Context) (service.Conn, func(), error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.ctxs) == len(d.conns) {
		return nil, nil, errors.New("no bus")
	}
	c := d.conns[len(d.ctxs)]
	d.ctxs = append(d.ctxs, ctx)
	return c, func() { d.mu.Lock(); d.closed++; d.mu.Unlock() }, nil
}

// TestSystemdOwnsItsConnection: the connection is not bound to the context
// of whoever made the driver (an apply), so a reload on another context
// (the undo's own deadline) still goes through it.
func TestSystemdOwnsItsConnection(t *testing.T) {
	d := &dialer{conns: []*connFake{{fakeConn: fakeConn{result: "done"}}}}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := service.NewSystemdDialer(ctx, d.dial, time.Minute)
	if err != nil {
		t.Fatalf("NewSystemdDialer: %v", err)
	}
	cancel() // the apply that built the driver ends
	if err := d.ctxs[0].Err(); err != nil {
		t.Fatalf("the connection's context ended with its creator's: %v", err)
	}
	undo, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	if err := s.Reload(undo, "apache2"); err != nil {
		t.Errorf("reload after the creating context ended: %v", err)
	}
	if len(d.ctxs) != 1 {
		t.Errorf("dialled %d times, want once", len(d.ctxs))
	}
	s.Close()
	if d.closed != 1 || d.ctxs[0].Err() == nil {
		t.Errorf("Close: %d connections closed, context %v; want the one closed and its context ended", d.closed, d.ctxs[0].Err())
	}
}

// TestSystemdReconnects: after D-Bus restarts, a call that finds the
// connection closed is made again on a new one, and a connection that says
// it is no longer connected is replaced before the call.
func TestSystemdReconnects(t *testing.T) {
	first := &connFake{fakeConn: fakeConn{result: "done"}}
	second := &connFake{fakeConn: fakeConn{result: "done"}}
	third := &connFake{fakeConn: fakeConn{result: "done"}}
	d := &dialer{conns: []*connFake{first, second, third}}
	s, err := service.NewSystemdDialer(context.Background(), d.dial, time.Minute)
	if err != nil {
		t.Fatalf("NewSystemdDialer: %v", err)
	}

	first.mu.Lock()
	first.jobErr = dbus.ErrClosed // the bus went away under an open connection
	first.mu.Unlock()
	if err := s.Reload(context.Background(), "php8.2-fpm"); err != nil {
		t.Fatalf("reload after D-Bus restarted: %v", err)
	}
	if diff := cmp.Diff([]call{{"ReloadUnit", "php8.2-fpm.service", "replace"}}, second.calls); diff != "" {
		t.Errorf("calls on the new connection (-want +got):\n%s", diff)
	}

	second.mu.Lock()
	second.lost = true
	second.mu.Unlock()
	if err := s.Restart(context.Background(), "memcached"); err != nil {
		t.Fatalf("restart after the connection said it was lost: %v", err)
	}
	if diff := cmp.Diff([]call{{"RestartUnit", "memcached.service", "replace"}}, third.calls); diff != "" {
		t.Errorf("calls on the third connection (-want +got):\n%s", diff)
	}
	if len(second.calls) != 1 {
		t.Errorf("the lost connection got %d calls, want only the first reload", len(second.calls))
	}
	if len(d.ctxs) != 3 || d.closed != 2 {
		t.Errorf("%d dials and %d closes, want 3 and 2 (each replaced connection closed)", len(d.ctxs), d.closed)
	}
}

// TestSystemdDialTimeout: a system bus that does not answer fails the dial
// after DialTimeout, exactly.
func TestSystemdDialTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		hung := func(ctx context.Context) (service.Conn, func(), error) {
			<-release
			return &connFake{}, func() {}, nil
		}
		start := time.Now()
		_, err := service.NewSystemdDialer(context.Background(), hung, 7*time.Second)
		if err == nil || !strings.Contains(err.Error(), "no answer from the system bus") || !strings.Contains(err.Error(), "7s") {
			t.Errorf("dial of a hung bus: %v, want a timeout naming 7s", err)
		}
		if took := time.Since(start); took != 7*time.Second {
			t.Errorf("dial gave up after %s, want 7s", took)
		}
		close(release)
		synctest.Wait()
	})
}
