package service_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nodeagent/nodeagent/service"
)

func TestMain(m *testing.M) {
	// Daemons started by the tests (memcached -d) are re-parented to this
	// process instead of an init that may never reap them, so the tests can
	// reap what they kill.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "prctl PR_SET_CHILD_SUBREAPER:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// readPid reads a pidfile and registers the pid to be killed and reaped when
// the test ends.
func readPid(t *testing.T, pidfile string) int {
	t.Helper()
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatalf("read pidfile: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("pidfile %s holds %q", pidfile, b)
	}
	t.Cleanup(func() { killAndReap(pid) })
	return pid
}

// killAndReap kills pid and reaps it when it is our child (we are the
// subreaper); it waits at most a few seconds.
func killAndReap(pid int) {
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for range 100 {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if got == pid || err != nil { // reaped, or not our child
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killByArg kills and reaps every process whose command line has arg (a
// unique temporary path), so that a daemon whose pidfile never appeared is
// not left behind.
func killByArg(arg string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && slices.Contains(strings.Split(string(cmdline), "\x00"), arg) {
			killAndReap(pid)
		}
	}
}

// alive reports whether pid is a running, non-zombie process.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	return !strings.HasPrefix(s[strings.LastIndexByte(s, ')')+2:], "Z")
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// memcachedVersion asks memcached for its version over TCP.
func memcachedVersion(port int) (string, error) {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("version\r\n")); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

func memcachedConfig(t *testing.T) (service.ExecConfig, string, int) {
	t.Helper()
	if _, err := exec.LookPath("memcached"); err != nil {
		t.Fatalf("memcached is not installed (apt-get install memcached): %v", err)
	}
	dir := t.TempDir()
	// memcached writes its pidfile after dropping to the memcache user.
	if err := errors.Join(os.Chmod(filepath.Dir(dir), 0o755), os.Chmod(dir, 0o777)); err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(dir, "memcached.pid")
	t.Cleanup(func() { killByArg(pidfile) })
	port := freePort(t)
	argv := []string{"memcached", "-d", "-P", pidfile, "-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "16"}
	if os.Geteuid() == 0 {
		argv = append(argv, "-u", "memcache")
	}
	return service.ExecConfig{"memcached": {Pidfile: pidfile, Start: &service.Command{Argv: argv}}}, pidfile, port
}

func TestExecMemcachedLifecycle(t *testing.T) {
	cfg, pidfile, port := memcachedConfig(t)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	e := service.NewExec(cfg, service.ExecRunner, testLogger(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	mustActive := func(want bool) {
		t.Helper()
		got, err := e.Active(ctx, "memcached")
		if err != nil {
			t.Fatalf("Active: %v", err)
		}
		if got != want {
			t.Fatalf("Active = %v, want %v", got, want)
		}
	}
	mustAnswer := func() {
		t.Helper()
		v, err := memcachedVersion(port)
		if err != nil || !strings.HasPrefix(v, "VERSION ") {
			t.Fatalf("memcached version = %q, %v; want VERSION …", v, err)
		}
	}

	mustActive(false)
	if err := e.Start(ctx, "memcached"); err != nil {
		t.Fatalf("Start: %v", err)
	}
	first := readPid(t, pidfile)
	mustActive(true)
	mustAnswer()

	// Starting a running unit does nothing (a second memcached would not bind).
	if err := e.Start(ctx, "memcached"); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if again := readPid(t, pidfile); again != first {
		t.Fatalf("second Start changed pid %d -> %d", first, again)
	}

	// Restart with no restart or stop command: SIGTERM, wait, start.
	if err := e.Restart(ctx, "memcached"); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	second := readPid(t, pidfile)
	if second == first {
		t.Fatalf("Restart kept pid %d", first)
	}
	if alive(first) {
		t.Fatalf("old pid %d still alive after Restart", first)
	}
	mustActive(true)
	mustAnswer()

	if err := e.Stop(ctx, "memcached"); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if alive(second) {
		t.Fatalf("pid %d alive after Stop", second)
	}
	mustActive(false)
	if _, err := memcachedVersion(port); err == nil {
		t.Fatal("memcached still answers after Stop")
	}
	// Stopping a stopped unit is fine.
	if err := e.Stop(ctx, "memcached"); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

// startShell starts a long-running shell script that writes its pid to
// pidfile; it is killed and reaped when the test ends.
func startShell(t *testing.T, script, pidfile string) int {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	// A shell cannot trap a signal that was ignored when it started, and a
	// test run under nohup ignores SIGHUP. Handled here while the child
	// starts, SIGHUP reaches it with its default disposition instead.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	err := cmd.Start()
	signal.Stop(hup)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	for range 250 {
		if b, err := os.ReadFile(pidfile); err == nil && strings.HasSuffix(string(b), "\n") {
			return cmd.Process.Pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("script wrote no pidfile %s", pidfile)
	return 0
}

// hupDaemon starts a shell daemon that writes its pid to pidfile and
// appends "reloaded" to marker on each SIGHUP, and the exec driver that
// reloads it with SIGHUP.
func hupDaemon(t *testing.T) (e *service.Exec, pidfile, marker string, pid int) {
	t.Helper()
	dir := t.TempDir()
	pidfile = filepath.Join(dir, "svc.pid")
	marker = filepath.Join(dir, "reloaded")
	script := fmt.Sprintf(`trap 'echo reloaded >> %s' HUP; echo $$ > %s; while :; do sleep 0.05; done`, marker, pidfile)
	pid = startShell(t, script, pidfile)
	cfg := service.ExecConfig{"svc": {Pidfile: pidfile, Reload: &service.Command{Signal: "SIGHUP"}}}
	return service.NewExec(cfg, service.ExecRunner, testLogger(t)), pidfile, marker, pid
}

// wantReloadedOnce waits (5 s at most) for hupDaemon's marker and fails
// unless the HUP trap ran exactly once.
func wantReloadedOnce(t *testing.T, marker string) {
	t.Helper()
	var got []byte
	for range 250 {
		if got, _ = os.ReadFile(marker); len(got) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if string(got) != "reloaded\n" {
		t.Fatalf("marker = %q, want the HUP trap to have run once", got)
	}
}

func TestExecReloadSignal(t *testing.T) {
	e, _, marker, pid := hupDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.Reload(ctx, "svc"); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	wantReloadedOnce(t, marker)
	if !alive(pid) {
		t.Fatal("process died on reload")
	}
}

// TestExecReloadWaitsForARewrittenPidfile: a reload that finds the pidfile
// empty, as a daemon re-executing itself leaves it for a moment (PHP-FPM
// on USR2), reads it again and signals the pid once it is written, instead
// of failing with "no live pid".
func TestExecReloadWaitsForARewrittenPidfile(t *testing.T) {
	e, pidfile, marker, pid := hupDaemon(t)
	if err := os.WriteFile(pidfile, nil, 0o644); err != nil { // truncated, as by the re-exec
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		os.WriteFile(pidfile, []byte(strconv.Itoa(pid)+"\n"), 0o644)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.Reload(ctx, "svc"); err != nil {
		t.Fatalf("Reload with the pidfile being rewritten: %v", err)
	}
	wantReloadedOnce(t, marker)

	// A pidfile that stays empty is not waited for past the bound.
	if err := os.WriteFile(pidfile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := e.Reload(ctx, "svc")
	if err == nil || !strings.Contains(err.Error(), "no live pid") {
		t.Errorf("Reload with an empty pidfile = %v, want no live pid", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Reload with an empty pidfile took %s", took)
	}
}

func TestExecStopWaitsForExit(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "stubborn.pid")
	// Ignores SIGTERM: a stop by signal must give up, bounded, and say so.
	pid := startShell(t, fmt.Sprintf(`trap '' TERM; echo $$ > %s; while :; do sleep 0.05; done`, pidfile), pidfile)
	e := service.NewExec(service.ExecConfig{"stubborn": {Pidfile: pidfile}}, service.ExecRunner, testLogger(t))

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err := e.Stop(ctx, "stubborn")
	if err == nil {
		t.Fatal("Stop of a process that ignores TERM succeeded")
	}
	for _, want := range []string{"exec: stop stubborn", strconv.Itoa(pid), pidfile, "did not exit after TERM"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %q, want it to contain %q", err, want)
		}
	}
	if !alive(pid) {
		t.Fatal("process is gone; the test proves nothing")
	}
}

func TestExecStartErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  service.UnitCommands
		want []string
	}{
		{
			name: "command fails with output",
			cfg:  service.UnitCommands{Start: &service.Command{Argv: []string{"sh", "-c", "echo bind: address in use >&2; exit 71"}}},
			want: []string{"exec: start svc", "exit status 71", "bind: address in use"},
		},
		{
			name: "no live pid after start",
			cfg:  service.UnitCommands{Pidfile: "/nonexistent/svc.pid", Start: &service.Command{Argv: []string{"true"}}},
			want: []string{"exec: start svc", "started but no live pid in /nonexistent/svc.pid"},
		},
		{
			name: "program missing",
			cfg:  service.UnitCommands{Start: &service.Command{Argv: []string{"/nonexistent/bin/svc"}}},
			want: []string{"exec: start svc", "/nonexistent/bin/svc"},
		},
		{
			name: "signal cannot start",
			cfg:  service.UnitCommands{Pidfile: "/run/svc.pid", Start: &service.Command{Signal: "HUP"}},
			want: []string{"exec: start svc", "set argv"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := service.NewExec(service.ExecConfig{"svc": tt.cfg}, service.ExecRunner, testLogger(t))
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			err := e.Start(ctx, "svc")
			if err == nil {
				t.Fatal("Start succeeded")
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("err = %q, want it to contain %q", err, s)
				}
			}
		})
	}
}

// recorder is a Runner that records argv and env and fails the commands
// listed in fail with a real exit status.
type recorder struct {
	calls [][]string
	fail  map[string]bool // by joined argv
}

func (r *recorder) run(_ context.Context, env []string, name string, args ...string) ([]byte, error) {
	argv := append([]string{name}, args...)
	r.calls = append(r.calls, append(slices.Clone(env), argv...))
	if r.fail[strings.Join(argv, " ")] {
		err := exec.Command("false").Run() // a genuine *exec.ExitError
		return []byte("unit is not running\n"), err
	}
	return nil, nil
}

func TestExecDefaultsAndConfiguredCommands(t *testing.T) {
	r := &recorder{fail: map[string]bool{"service php8.2-fpm status": true}}
	cfg := service.ExecConfig{
		"apache2": {
			Reload: &service.Command{Argv: []string{"apache2ctl", "graceful"}, Env: []string{"APACHE_CONFDIR=/srv/root/etc/apache2"}},
			Status: &service.Command{Argv: []string{"apache2ctl", "status"}},
		},
	}
	e := service.NewExec(cfg, r.run, testLogger(t))
	ctx := context.Background()

	if ok, err := e.Active(ctx, "apache2"); err != nil || !ok {
		t.Fatalf("Active(apache2) = %v, %v; want true", ok, err)
	}
	if ok, err := e.Active(ctx, "php8.2-fpm"); err != nil || ok {
		t.Fatalf("Active(php8.2-fpm) = %v, %v; want false (status exited 1)", ok, err)
	}
	for _, step := range []func() error{
		func() error { return e.Reload(ctx, "apache2") },
		func() error { return e.Start(ctx, "php8.2-fpm") },
		func() error { return e.Reload(ctx, "php8.2-fpm") },
		func() error { return e.Restart(ctx, "memcached") },
		func() error { return e.Stop(ctx, "memcached") },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	want := [][]string{
		{"apache2ctl", "status"},
		{"service", "php8.2-fpm", "status"},
		{"APACHE_CONFDIR=/srv/root/etc/apache2", "apache2ctl", "graceful"},
		{"service", "php8.2-fpm", "start"},
		{"service", "php8.2-fpm", "reload"},
		{"service", "memcached", "restart"},
		{"service", "memcached", "stop"},
	}
	if diff := cmp.Diff(want, r.calls); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
}

func TestExecRestartIsStopThenStart(t *testing.T) {
	r := &recorder{}
	cfg := service.ExecConfig{"php-fpm": {
		Start: &service.Command{Argv: []string{"php-fpm8.2", "--fpm-config", "/x/php-fpm.conf"}},
		Stop:  &service.Command{Argv: []string{"pkill-free-stop"}},
	}}
	if err := service.NewExec(cfg, r.run, testLogger(t)).Restart(context.Background(), "php-fpm"); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"pkill-free-stop"}, {"php-fpm8.2", "--fpm-config", "/x/php-fpm.conf"}}
	if diff := cmp.Diff(want, r.calls); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
}

func TestExecConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  service.ExecConfig
		want []string // substrings; nil means valid
	}{
		{name: "empty", cfg: nil},
		{name: "good", cfg: service.ExecConfig{"apache2": {
			Pidfile: "/run/apache2/apache2.pid",
			Start:   &service.Command{Argv: []string{"apache2ctl", "start"}},
			Reload:  &service.Command{Signal: "USR1"},
			Stop:    &service.Command{Signal: "SIGTERM"},
		}}},
		{name: "argv and signal", cfg: service.ExecConfig{"a": {Pidfile: "/p", Reload: &service.Command{Argv: []string{"x"}, Signal: "HUP"}}},
			want: []string{"exec.a.reload", "not both"}},
		{name: "empty command", cfg: service.ExecConfig{"a": {Stop: &service.Command{}}},
			want: []string{"exec.a.stop", "set argv or signal"}},
		{name: "signal without pidfile", cfg: service.ExecConfig{"a": {Reload: &service.Command{Signal: "HUP"}}},
			want: []string{"exec.a.reload", "pidfile"}},
		{name: "unknown signal", cfg: service.ExecConfig{"a": {Pidfile: "/p", Reload: &service.Command{Signal: "RELOAD"}}},
			want: []string{"exec.a.reload", `unknown signal "RELOAD"`}},
		{name: "signal for status", cfg: service.ExecConfig{"a": {Pidfile: "/p", Status: &service.Command{Signal: "HUP"}}},
			want: []string{"exec.a.status", "set argv"}},
		{name: "two errors", cfg: service.ExecConfig{
			"b": {Start: &service.Command{}},
			"a": {Restart: &service.Command{Signal: "HUP"}},
		}, want: []string{"exec.a.restart", "exec.b.start"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate = nil, want an error")
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("err = %q, want it to contain %q", err, s)
				}
			}
		})
	}
}

func TestNone(t *testing.T) {
	var n service.None
	ctx := context.Background()
	ok, err := n.Active(ctx, "apache2")
	if err != nil || !ok {
		t.Fatalf("Active = %v, %v; want true", ok, err)
	}
	if err := errors.Join(n.Start(ctx, "a"), n.Reload(ctx, "a"), n.Restart(ctx, "a")); err != nil {
		t.Fatal(err)
	}
}
