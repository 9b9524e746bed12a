// Package harness starts the real components nodeagent's tests run against,
// each on 127.0.0.0/8 with free ports and each stopped by the test that
// started it (t.Cleanup):
//
//   - StartIMDS: AWS's amazon-ec2-metadata-mock, IMDSv2 only, one process
//     per simulated instance.
//   - StartMinIO: a MinIO server (S3), with Put and a CountingProxy that
//     counts requests per object.
//   - StartAutoScaling: a test server speaking the Auto Scaling Query
//     protocol for lifecycle actions, recording every call.
//   - NodeRoot, ServiceCommands, StopServices: a rooted copy of this
//     machine's Apache, PHP-FPM and memcached configuration, and the
//     exec-driver commands that run the real daemons against it.
//
// The tool binaries are built by `make tools` (see ToolsDir); the Debian
// packages are installed by `make deps`. Only tests import this package.
package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ToolsDirEnv names the directory holding the tool binaries.
const ToolsDirEnv = "NODEAGENT_TOOLS_DIR"

// Tool binaries built by `make tools` from tools/go.mod.
const (
	ToolIMDS  = "ec2-metadata-mock"
	ToolMinIO = "minio"
	ToolNFPM  = "nfpm"
)

// ToolsDir returns the directory of the test tool binaries:
// $NODEAGENT_TOOLS_DIR, else ~/.cache/nodeagent/tools/bin (the Makefile's
// TOOLS_DIR). It fails the test when a tool is missing there.
func ToolsDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(ToolsDirEnv)
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatalf("harness: tools dir: %v", err)
		}
		dir = filepath.Join(home, ".cache", "nodeagent", "tools", "bin")
	}
	for _, name := range []string{ToolIMDS, ToolMinIO, ToolNFPM} {
		if _, err := exec.LookPath(filepath.Join(dir, name)); err != nil {
			t.Fatalf("harness: tool %s missing in %s (run `make tools`): %v", name, dir, err)
		}
	}
	return dir
}

// Tool returns the path of one tool binary (see ToolsDir).
func Tool(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(ToolsDir(t), name)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// lockedBuffer collects a process's output; written by exec's copier
// goroutines while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns the last 4 KiB of output, enough for a failure message.
func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > 4096 {
		s = "…" + s[len(s)-4096:]
	}
	return s
}

// process is a tool server started by the harness.
type process struct {
	name   string
	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan struct{}
	err    error // set before exited closes
}

// startProcess starts argv with extra env and registers its stop with
// t.Cleanup: SIGTERM, then SIGKILL after a bounded wait.
func startProcess(t testing.TB, name string, env []string, argv ...string) *process {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("harness: start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, out: out, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if err := p.stop(10 * time.Second); err != nil {
			t.Errorf("harness: %v", err)
		}
	})
	return p
}

// stop ends the process group: TERM, then KILL after wait.
func (p *process) stop(wait time.Duration) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(wait):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-p.exited:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("stop %s: pid %d still running after SIGKILL", p.name, pgid)
	}
}

var errNotReady = errors.New("not ready")

// errExited: the process ended before it was ready.
var errExited = errors.New("exited before it was ready")

// awaitReady polls ready every 50ms until it returns nil, the process
// exits (errExited, with the process's output) or limit passes.
func (p *process) awaitReady(limit time.Duration, ready func(ctx context.Context) error) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("%s %w (%v); output:\n%s", p.name, errExited, p.err, p.out)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		last = ready(ctx)
		cancel()
		if last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s (last: %v); output:\n%s", p.name, limit, last, p.out)
}

// startOnFreePort starts a server on a free port of 127.0.0.1 and waits
// until it is ready. FreePort's port is free when it is picked, but
// another process (a parallel test package's server) can bind it before
// the server does; a server that then exits saying so is started again on
// another port, up to three times.
func startOnFreePort(t testing.TB, limit time.Duration, start func(port int) *process, ready func(ctx context.Context, port int) error) (*process, int) {
	t.Helper()
	var err error
	for range 3 {
		port := FreePort(t)
		p := start(port)
		if err = p.awaitReady(limit, func(ctx context.Context) error { return ready(ctx, port) }); err == nil {
			return p, port
		}
		if !errors.Is(err, errExited) || !strings.Contains(p.out.String(), "address already in use") {
			break
		}
		t.Logf("harness: port %d was taken before %s bound it; trying another", port, p.name)
	}
	t.Fatalf("harness: %v", err)
	return nil, 0
}

func itoa(i int) string { return strconv.Itoa(i) }
