package release_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/release"
)

// Environment of the crash child: the test binary re-executed to install,
// activate and prune, killed with SIGKILL after a named step (or at a random
// moment by the parent when the step is "run").
const (
	crashStepEnv = "RELEASE_TEST_CRASH_STEP"
	crashRootEnv = "RELEASE_TEST_CRASH_ROOT"
	crashRelEnv  = "RELEASE_TEST_CRASH_RELEASE"
)

func TestMain(m *testing.M) {
	if step := os.Getenv(crashStepEnv); step != "" {
		if err := crashChild(step); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func crashChild(step string) error {
	var r nodeagent.Release
	if err := json.Unmarshal([]byte(os.Getenv(crashRelEnv)), &r); err != nil {
		return err
	}
	m := &release.Manager{Root: os.Getenv(crashRootEnv), Store: &fileStore{}, Keep: 1}
	release.SetAfterStep(m, func(s string) {
		if s == step {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	})
	if err := m.Install(context.Background(), "shop", r); err != nil {
		return err
	}
	if _, err := m.Activate("shop", r.ID); err != nil {
		return err
	}
	_, err := m.Prune("shop")
	return err
}

// runChild runs the crash child. With kill > 0 the parent kills it after
// that long; otherwise the child must kill itself at its step.
func runChild(t *testing.T, root, step string, r nodeagent.Release, kill time.Duration) (killed bool) {
	t.Helper()
	rel, _ := json.Marshal(r)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashStepEnv+"="+step, crashRootEnv+"="+root, crashRelEnv+"="+string(rel))
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if kill > 0 {
		timer := time.AfterFunc(kill, func() { cmd.Process.Signal(syscall.SIGKILL) })
		defer timer.Stop()
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	if err != nil {
		t.Fatalf("crash child: %v\n%s", err, out.String())
	}
	return false
}

// assertCurrentComplete checks that current, if present, points at a
// release whose marker is there.
func assertCurrentComplete(t *testing.T, m *release.Manager, allowed ...string) {
	t.Helper()
	id, err := m.Active("shop")
	if err != nil {
		t.Fatalf("after the crash: %v", err)
	}
	if !slices.Contains(allowed, id) {
		t.Fatalf("after the crash current is %q, want one of %q", id, allowed)
	}
	if _, err := os.Stat(m.Layout("shop").Marker(id)); err != nil {
		t.Fatalf("after the crash current points at an incomplete release: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(m.Layout("shop").Current(), "public/index.php"))
	if err != nil || len(b) == 0 {
		t.Fatalf("after the crash current/public/index.php = %q, %v", b, err)
	}
}

// converge runs the next apply and checks it reaches release r cleanly.
func converge(t *testing.T, root string, r nodeagent.Release, wantIndex string) {
	t.Helper()
	m := newManager(t, root, &fileStore{})
	m.Keep = 1
	m.Now = time.Now // later than the setup's fake clock
	if err := m.Install(context.Background(), "shop", r); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Activate("shop", r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Prune("shop"); err != nil {
		t.Fatal(err)
	}
	l := m.Layout("shop")
	if id, _ := m.Active("shop"); id != r.ID || !m.Installed("shop", r) {
		t.Fatalf("after the next apply active %q (installed %v), want %q", id, m.Installed("shop", r), r.ID)
	}
	if b, err := os.ReadFile(filepath.Join(l.Current(), "public/index.php")); err != nil || string(b) != wantIndex {
		t.Fatalf("current/public/index.php = %q, %v; want %q", b, err, wantIndex)
	}
	for _, debris := range []string{l.Staging(), filepath.Join(l.Base, "current.tmp")} {
		if _, err := os.Lstat(debris); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("debris %s left after the next apply: %v", debris, err)
		}
	}
	entries, err := os.ReadDir(l.Releases())
	if err != nil || len(entries) != 1 || entries[0].Name() != r.ID {
		t.Errorf("releases after prune: %v, %v; want only %s", entries, err, r.ID)
	}
}

func TestCrashBetweenSteps(t *testing.T) {
	steps := []struct {
		step        string
		wantCurrent []string // where current may point after the kill
	}{
		{step: "install:extracted", wantCurrent: []string{"r1"}},
		{step: "install:marker", wantCurrent: []string{"r1"}},
		{step: "install:renamed", wantCurrent: []string{"r1"}},
		{step: "activate:shared", wantCurrent: []string{"r1"}},
		{step: "activate:link", wantCurrent: []string{"r1"}},
		{step: "activate:renamed", wantCurrent: []string{"r2"}},
		{step: "discard:moved", wantCurrent: []string{"r2"}},
	}
	for _, tc := range steps {
		t.Run(tc.step, func(t *testing.T) {
			root, pub := t.TempDir(), t.TempDir()
			m := newManager(t, root, &fileStore{})
			var rels []nodeagent.Release
			for _, id := range []string{"r0", "r1", "r2"} {
				rels = append(rels, publish(t, pub, id, goodArchive(t, id)))
			}
			for _, r := range rels[:2] {
				if err := m.Install(context.Background(), "shop", r); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := m.Activate("shop", "r1"); err != nil {
				t.Fatal(err)
			}
			if !runChild(t, root, tc.step, rels[2], 0) {
				t.Fatalf("child was not killed at %s", tc.step)
			}
			assertCurrentComplete(t, m, tc.wantCurrent...)
			converge(t, root, rels[2], "<?php echo 'Welcome r2';\n")
		})
	}
}

// TestCrashAtRandomMoments kills installs and switches at random moments
// (bounded count), each followed by a converging apply.
func TestCrashAtRandomMoments(t *testing.T) {
	root, pub := t.TempDir(), t.TempDir()
	rnd := rand.New(rand.NewPCG(7, 11))
	var rels []nodeagent.Release
	for i := range 6 {
		// Enough files that an install takes a few tens of milliseconds.
		es := []entry{file("public/index.php", fmt.Sprintf("v%d", i), 0o644)}
		for j := range 300 {
			es = append(es, file(fmt.Sprintf("src/f%03d.php", j), fmt.Sprintf("<?php // %d %d\n", i, j), 0o644))
		}
		rels = append(rels, publish(t, pub, fmt.Sprintf("r%d", i), tarGz(t, es...)))
	}
	m := newManager(t, root, &fileStore{})
	if err := m.Install(context.Background(), "shop", rels[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Activate("shop", rels[0].ID); err != nil {
		t.Fatal(err)
	}
	for i, r := range rels[1:] {
		prev := rels[i]
		killed := runChild(t, root, "run", r, time.Duration(10+rnd.IntN(150))*time.Millisecond)
		id, err := m.Active("shop")
		_, staging := os.Lstat(m.Layout("shop").Staging())
		t.Logf("%s: killed %v, active %s, staging left %v", r.ID, killed, id, staging == nil)
		if err != nil || (id != prev.ID && id != r.ID) {
			t.Fatalf("after the kill active %q, %v; want %s or %s", id, err, prev.ID, r.ID)
		}
		if _, err := os.Stat(m.Layout("shop").Marker(id)); err != nil {
			t.Fatalf("after the kill current points at an incomplete release: %v", err)
		}
		converge(t, root, r, fmt.Sprintf("v%d", i+1))
	}
}
