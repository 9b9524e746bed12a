package readiness_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent/readiness"
)

// notifySocket listens on a unixgram socket in a temporary directory, as
// systemd does for a Type=notify unit, and points NOTIFY_SOCKET at it.
func notifySocket(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

// datagrams reads what arrives within wait.
func datagrams(t *testing.T, conn *net.UnixConn, wait time.Duration) []string {
	t.Helper()
	var got []string
	buf := make([]byte, 4096)
	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := conn.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(buf[:n]))
	}
}

func TestSystemdNotifierDatagrams(t *testing.T) {
	conn := notifySocket(t)
	health := filepath.Join(t.TempDir(), "ready")
	s := readiness.New(readiness.Options{HealthFile: health, Notifier: readiness.SystemdNotifier{}, Logger: testLogger(t)})

	s.Update(func(st *readiness.Status) {
		st.LastApply, st.LastApplyOK, st.Serial, st.Smoke = time.Now(), true, 42, smokeOK
	})
	s.Update(func(st *readiness.Status) { st.Smoke = smokeBad })
	s.Drain()

	want := []string{
		"READY=1\nSTATUS=ready: serial 42 applied, 2 smoke checks passed",
		"STATUS=not ready: smoke checks failed: shop/home",
		"STATUS=draining",
	}
	if diff := cmp.Diff(want, datagrams(t, conn, 200*time.Millisecond)); diff != "" {
		t.Errorf("datagrams (-want +got):\n%s", diff)
	}
}

func TestSystemdNotifierWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := (readiness.SystemdNotifier{}).Notify("READY=1"); err != nil {
		t.Errorf("Notify without NOTIFY_SOCKET: %v, want a no-op", err)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody-listens"))
	if err := (readiness.SystemdNotifier{}).Notify("READY=1"); err == nil {
		t.Error("Notify to a socket nobody listens on: no error")
	}
}

func TestWatchdogPings(t *testing.T) {
	conn := notifySocket(t)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() {
		readiness.Watchdog(ctx, readiness.SystemdNotifier{}, 20*time.Millisecond, func() bool { return true })
		close(done)
	}()
	got := datagrams(t, conn, 500*time.Millisecond)
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Watchdog did not return after its context ended")
	}
	// 300ms at 20ms is 16 pings at most; a loaded machine sends fewer.
	if len(got) < 3 || len(got) > 16 {
		t.Errorf("got %d pings in 300ms at 20ms intervals", len(got))
	}
	for _, d := range got {
		if d != "WATCHDOG=1" {
			t.Fatalf("datagram %q, want WATCHDOG=1", d)
		}
	}
}

func TestWatchdogStopsWhenStuck(t *testing.T) {
	tests := []struct {
		name      string
		aliveFor  int64 // alive() answers true this many times
		wantPings int
	}{
		{name: "never alive", aliveFor: 0, wantPings: 0},
		{name: "stuck after three", aliveFor: 3, wantPings: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := &recorder{}
			var calls atomic.Int64
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			readiness.Watchdog(ctx, n, 10*time.Millisecond, func() bool { return calls.Add(1) <= tt.aliveFor })
			if got := len(n.take()); got != tt.wantPings {
				t.Errorf("%d pings, want %d", got, tt.wantPings)
			}
			if calls.Load() <= tt.aliveFor {
				t.Errorf("alive() asked only %d times in 200ms at 10ms", calls.Load())
			}
		})
	}
}

func TestWatchdogInterval(t *testing.T) {
	tests := []struct {
		name   string
		usec   string
		pid    string
		want   time.Duration
		wantOK bool
	}{
		{name: "unit asks for pings", usec: "4000000", pid: strconv.Itoa(os.Getpid()), want: 2 * time.Second, wantOK: true},
		{name: "no pid given", usec: "1000000", want: 500 * time.Millisecond, wantOK: true},
		{name: "meant for another process", usec: "4000000", pid: "1"},
		{name: "no watchdog", usec: ""},
		{name: "garbage", usec: "soon"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tt.usec)
			t.Setenv("WATCHDOG_PID", tt.pid)
			got, ok := readiness.WatchdogInterval()
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("WatchdogInterval() = %s, %v; want %s, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
