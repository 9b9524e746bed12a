package plan_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/hostfs"
	"github.com/nodeagent/nodeagent/plan"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, nil))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// diskFile is a file as it is on disk.
type diskFile struct {
	Content string
	Mode    fs.FileMode
}

func snapshotDisk(t *testing.T, root string) map[string]diskFile {
	t.Helper()
	out := map[string]diskFile{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			out["/"+rel+"/"] = diskFile{Mode: fs.ModeDir}
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		out["/"+rel] = diskFile{string(b), fi.Mode()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// applyCase builds a plan for a node where ports.conf was hand-edited with
// another mode, memcached.conf is missing and memcached is stopped.
func applyCase(t *testing.T) (root string, d *nodeagent.Desired, p *nodeagent.Plan, svc *fakeServices) {
	t.Helper()
	d = desired(t)
	root = converged(t, d)
	write(t, root, portsConf, "Listen 8080\n", 0o600)
	if err := os.Remove(filepath.Join(root, mcConf)); err != nil {
		t.Fatal(err)
	}
	svc = &fakeServices{ActiveFunc: stopped("memcached")}
	p, err := plan.Build(context.Background(), plan.Input{Desired: d, FS: hostfs.FS{Root: root}, Services: svc, Serial: 2, PreviousSerial: 1})
	if err != nil {
		t.Fatal(err)
	}
	svc.calls = nil
	return root, d, p, svc
}

func TestApplySuccess(t *testing.T) {
	root, d, p, svc := applyCase(t)
	chk := &fakeChecker{}
	res, err := plan.Apply(context.Background(), plan.ApplyInput{
		Plan: p, Desired: d, FS: hostfs.FS{Root: root}, Services: svc, Checker: chk, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if diff := cmp.Diff([]string{portsConf, mcConf}, res.Written); diff != "" {
		t.Errorf("written (-want +got):\n%s", diff)
	}
	disk := snapshotDisk(t, root)
	for _, f := range d.Files {
		if got := disk[f.Path]; got.Content != string(f.Content) || got.Mode.Perm() != f.Mode {
			t.Errorf("%s on disk = %q %v, want %q %v", f.Path, got.Content, got.Mode, f.Content, f.Mode)
		}
	}
	// memcached is started (unchecked), apache has changed files (checked).
	if diff := cmp.Diff([]string{"apache"}, chk.checked); diff != "" {
		t.Errorf("checked (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"start memcached", "reload apache2"}, svc.calls); diff != "" {
		t.Errorf("service calls (-want +got):\n%s", diff)
	}
	if len(res.Actions) != 2 || res.Actions[0].Kind != nodeagent.ActionStart {
		t.Errorf("actions = %+v", res.Actions)
	}

	// Applying converged the node: a new plan is empty.
	again, err := plan.Build(context.Background(), plan.Input{Desired: d, FS: hostfs.FS{Root: root}, Services: &fakeServices{}, Serial: 2, PreviousSerial: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Empty() {
		t.Errorf("plan after apply is not empty: %+v", again)
	}
}

func TestApplyCheckFailureRestores(t *testing.T) {
	root, d, _, svc := applyCase(t)
	// A second new file, two directories deep into a tree that does not
	// exist yet: a refused check leaves no empty directories behind.
	d.Files = append(d.Files, nodeagent.File{Path: "/etc/apache2/conf-enabled/nodeagent/extra.conf", Content: []byte("ServerTokens Prod\n"), Mode: 0o644, Services: []string{"apache"}})
	p, err := plan.Build(context.Background(), plan.Input{Desired: d, FS: hostfs.FS{Root: root}, Services: svc, Serial: 2, PreviousSerial: 1})
	if err != nil {
		t.Fatal(err)
	}
	svc.calls = nil
	before := snapshotDisk(t, root)

	chk := &fakeChecker{CheckFunc: func(_ context.Context, s string) error {
		if s == "apache" {
			return &outputError{out: "AH00526: Syntax error on line 1 of ports.conf"}
		}
		return nil
	}}
	res, err := plan.Apply(context.Background(), plan.ApplyInput{
		Plan: p, Desired: d, FS: hostfs.FS{Root: root}, Services: svc, Checker: chk, Logger: testLogger(t),
	})
	if err == nil {
		t.Fatal("Apply succeeded despite the refused check")
	}
	var ce *plan.CheckError
	if !errors.As(err, &ce) || ce.Service != "apache" || ce.Output != "AH00526: Syntax error on line 1 of ports.conf" || ce.RestoreErr != nil {
		t.Fatalf("err = %#v, want a *CheckError for apache with the checker output", err)
	}
	for _, s := range []string{"apache", "AH00526: Syntax error", "previous files restored"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("err = %q, want it to contain %q", err, s)
		}
	}
	if diff := cmp.Diff(before, snapshotDisk(t, root)); diff != "" {
		t.Errorf("disk after a refused check differs from before (-before +after):\n%s", diff)
	}
	if len(svc.calls) != 0 {
		t.Errorf("service calls after a refused check: %v", svc.calls)
	}
	if len(res.Written) != 0 || len(res.Actions) != 0 {
		t.Errorf("result = %+v, want nothing written and no action", res)
	}
}

func TestApplyActionFailure(t *testing.T) {
	root, d, p, svc := applyCase(t)
	svc.ReloadFunc = func(context.Context, string) error { return errors.New("job failed") }
	res, err := plan.Apply(context.Background(), plan.ApplyInput{
		Plan: p, Desired: d, FS: hostfs.FS{Root: root}, Services: svc, Checker: &fakeChecker{}, Logger: testLogger(t),
	})
	if err == nil || !strings.Contains(err.Error(), "plan: reload apache (apache2): job failed") {
		t.Fatalf("err = %v, want the failed reload named", err)
	}
	// The files passed their check and stay; the start before the reload ran.
	if diff := cmp.Diff([]string{portsConf, mcConf}, res.Written); diff != "" {
		t.Errorf("written (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"start memcached", "reload apache2"}, svc.calls); diff != "" {
		t.Errorf("service calls (-want +got):\n%s", diff)
	}
}

func TestApplyNeedsChecker(t *testing.T) {
	root, d, p, svc := applyCase(t)
	before := snapshotDisk(t, root)
	_, err := plan.Apply(context.Background(), plan.ApplyInput{Plan: p, Desired: d, FS: hostfs.FS{Root: root}, Services: svc})
	if err == nil || !strings.Contains(err.Error(), "apache needs a config check") {
		t.Fatalf("err = %v, want a missing checker refused", err)
	}
	if diff := cmp.Diff(before, snapshotDisk(t, root)); diff != "" {
		t.Errorf("disk changed (-before +after):\n%s", diff)
	}
}

func TestApplyWriteFailureRestores(t *testing.T) {
	root, d, _, svc := applyCase(t)
	d.Files = append(d.Files, nodeagent.File{Path: "/etc/zz/x.conf", Content: []byte("x\n"), Mode: 0o644})
	p, err := plan.Build(context.Background(), plan.Input{Desired: d, FS: hostfs.FS{Root: root}, Services: svc, Serial: 2, PreviousSerial: 1})
	if err != nil {
		t.Fatal(err)
	}
	svc.calls = nil
	before := snapshotDisk(t, root)
	// The last file's rename fails after the two before it were written
	// (and its directory, /etc/zz, was created).
	fsys := hostfs.FS{Root: root, Rename: func(oldpath, newpath string) error {
		if filepath.Base(newpath) == "x.conf" {
			return errors.New("injected rename failure")
		}
		return os.Rename(oldpath, newpath)
	}}

	res, err := plan.Apply(context.Background(), plan.ApplyInput{Plan: p, Desired: d, FS: fsys, Services: svc, Checker: &fakeChecker{}})
	if err == nil || !strings.Contains(err.Error(), "plan: write /etc/zz/x.conf") || !strings.Contains(err.Error(), "previous files restored") {
		t.Fatalf("err = %v, want the failed write named and the files restored", err)
	}
	if diff := cmp.Diff(before, snapshotDisk(t, root)); diff != "" {
		t.Errorf("disk changed (-before +after):\n%s", diff)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/zz")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the directory the failed apply created is still there: %v", err)
	}
	if len(res.Written) != 0 || len(svc.calls) != 0 {
		t.Errorf("written = %v, service calls = %v; want none", res.Written, svc.calls)
	}
}

func TestApplyUnreadableTargetWritesNothing(t *testing.T) {
	root, d, _, svc := applyCase(t)
	d.Files = append(d.Files, nodeagent.File{Path: "/etc/zz/x.conf", Content: []byte("x\n"), Mode: 0o644})
	p, err := plan.Build(context.Background(), plan.Input{Desired: d, FS: hostfs.FS{Root: root}, Services: svc, Serial: 2, PreviousSerial: 1})
	if err != nil {
		t.Fatal(err)
	}
	svc.calls = nil
	// After planning, the last file's directory becomes a regular file:
	// the snapshot taken before the first write finds it, and nothing is
	// written.
	write(t, root, "/etc/zz", "not a directory\n", 0o644)
	before := snapshotDisk(t, root)
	res, err := plan.Apply(context.Background(), plan.ApplyInput{Plan: p, Desired: d, FS: hostfs.FS{Root: root}, Services: svc, Checker: &fakeChecker{}})
	if err == nil || !strings.Contains(err.Error(), "/etc/zz/x.conf") {
		t.Fatalf("err = %v, want the unreadable target named", err)
	}
	if diff := cmp.Diff(before, snapshotDisk(t, root)); diff != "" {
		t.Errorf("disk changed (-before +after):\n%s", diff)
	}
	if len(res.Written) != 0 || len(svc.calls) != 0 {
		t.Errorf("written = %v, service calls = %v; want none", res.Written, svc.calls)
	}
}

// bothChecked is applyCase with a php-fpm file changed too, so the apply
// checks apache and php-fpm.
func bothChecked(t *testing.T) (root string, d *nodeagent.Desired, p *nodeagent.Plan, svc *fakeServices) {
	t.Helper()
	root, d, _, svc = applyCase(t)
	d.Files = append(d.Files, nodeagent.File{Path: "/etc/php/8.2/fpm/pool.d/zz-extra.conf", Content: []byte("; extra\n"), Mode: 0o644, Services: []string{"php-fpm"}})
	p, err := plan.Build(context.Background(), plan.Input{Desired: d, FS: hostfs.FS{Root: root}, Services: svc, Serial: 2, PreviousSerial: 1})
	if err != nil {
		t.Fatal(err)
	}
	svc.calls = nil
	return root, d, p, svc
}

// TestApplyChecksRunTogether: apache2ctl -t and php-fpm -t run at the same
// time. Each check here waits until the other has started, so checks run
// one after the other would each time out.
func TestApplyChecksRunTogether(t *testing.T) {
	root, d, p, svc := bothChecked(t)
	started := map[string]chan struct{}{"apache": make(chan struct{}), "php-fpm": make(chan struct{})}
	other := map[string]string{"apache": "php-fpm", "php-fpm": "apache"}
	chk := &fakeChecker{CheckFunc: func(_ context.Context, s string) error {
		close(started[s])
		select {
		case <-started[other[s]]:
			return nil
		case <-time.After(10 * time.Second):
			return fmt.Errorf("%s: the %s check did not start while this one ran", s, other[s])
		}
	}}
	if _, err := plan.Apply(context.Background(), plan.ApplyInput{
		Plan: p, Desired: d, FS: hostfs.FS{Root: root}, Services: svc, Checker: chk, Logger: testLogger(t),
	}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if diff := cmp.Diff([]string{"apache", "php-fpm"}, chk.checked); diff != "" {
		t.Errorf("checked (-want +got):\n%s", diff)
	}
}

// TestApplyBothChecksRefused: when both checks refuse, the error names the
// first service in sorted order, whichever finished first, and the files
// are put back once.
func TestApplyBothChecksRefused(t *testing.T) {
	root, d, p, svc := bothChecked(t)
	before := snapshotDisk(t, root)
	phpDone := make(chan struct{})
	chk := &fakeChecker{CheckFunc: func(_ context.Context, s string) error {
		if s == "apache" {
			<-phpDone // apache finishes last
			return &outputError{out: "AH00526: Syntax error"}
		}
		defer close(phpDone)
		return &outputError{out: "ERROR: [pool zz] unknown entry"}
	}}
	_, err := plan.Apply(context.Background(), plan.ApplyInput{
		Plan: p, Desired: d, FS: hostfs.FS{Root: root}, Services: svc, Checker: chk, Logger: testLogger(t),
	})
	var ce *plan.CheckError
	if !errors.As(err, &ce) || ce.Service != "apache" || ce.RestoreErr != nil {
		t.Fatalf("err = %#v, want a *CheckError for apache", err)
	}
	if diff := cmp.Diff(before, snapshotDisk(t, root)); diff != "" {
		t.Errorf("disk after refused checks differs from before (-before +after):\n%s", diff)
	}
}
