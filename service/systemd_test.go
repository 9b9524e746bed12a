package service_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
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
