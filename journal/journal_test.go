package journal_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/hostfs"
	"github.com/nodeagent/nodeagent/journal"
)

const stateDir = "/var/lib/nodeagent"

// services records service calls; fail makes the named "action unit" fail.
type services struct {
	calls []string
	fail  map[string]bool
}

func (s *services) call(action, unit string) error {
	s.calls = append(s.calls, action+" "+unit)
	if s.fail[action+" "+unit] {
		return errors.New("job failed")
	}
	return nil
}
func (s *services) Active(context.Context, string) (bool, error) { return true, nil }
func (s *services) Start(_ context.Context, u string) error      { return s.call("start", u) }
func (s *services) Reload(_ context.Context, u string) error     { return s.call("reload", u) }
func (s *services) Restart(_ context.Context, u string) error    { return s.call("restart", u) }

var _ nodeagent.ServiceManager = (*services)(nil)

// releases records switches: product -> active id.
type releases struct {
	active map[string]string
	calls  []string
}

func (r *releases) Activate(product, id string) (string, error) {
	prev := r.active[product]
	r.active[product] = id
	r.calls = append(r.calls, product+" "+id)
	return prev, nil
}

// env is a root with its own user database (owners are names from it) and
// a journal store in its state dir.
type env struct {
	root  string
	fs    hostfs.FS
	owner string
	group string
	svc   *services
	rel   *releases
}

func newEnv(t *testing.T) *env {
	t.Helper()
	root := t.TempDir()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{root: root, fs: hostfs.FS{Root: root, StateDir: stateDir}, owner: u.Username, group: g.Name,
		svc: &services{fail: map[string]bool{}}, rel: &releases{active: map[string]string{}}}
	e.write(t, "/etc/passwd", fmt.Sprintf("%s:x:%s:%s::/:/bin/sh\n", u.Username, u.Uid, u.Gid), 0o644)
	e.write(t, "/etc/group", fmt.Sprintf("%s:x:%s:\n", g.Name, u.Gid), 0o644)
	return e
}

func (e *env) write(t *testing.T, p, content string, mode fs.FileMode) {
	t.Helper()
	full := filepath.Join(e.root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(full, mode); err != nil {
		t.Fatal(err)
	}
}

func (e *env) read(t *testing.T, p string) (string, fs.FileMode, bool) {
	t.Helper()
	full := filepath.Join(e.root, p)
	b, err := os.ReadFile(full)
	if errors.Is(err, fs.ErrNotExist) {
		return "", 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(full)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), fi.Mode().Perm(), true
}

func (e *env) store() journal.Store { return journal.Store{FS: e.fs, StateDir: stateDir} }

func (e *env) journal(r journal.Record) *journal.Journal {
	return &journal.Journal{FS: e.fs, Store: e.store(), Services: e.svc, Releases: e.rel, Record: r}
}

// applied is a record of an apply that changed /etc/app.conf (was "old",
// 0600) and created /etc/new/sub/x.conf, owing reloads of apache2 and
// php-fpm, and switching shop from r1 to r2; the files on disk are the new
// ones.
func (e *env) applied(t *testing.T, stage journal.Stage) journal.Record {
	t.Helper()
	e.write(t, "/etc/app.conf", "new\n", 0o644)
	e.write(t, "/etc/new/sub/x.conf", "x\n", 0o644)
	e.rel.active["shop"] = "r2"
	return journal.Record{
		ID: "test", Serial: 7, Stage: stage,
		Files: []journal.File{
			{Path: "/etc/app.conf", Existed: true, Content: []byte("old\n"), Mode: 0o600, Owner: e.owner, Group: e.group, Services: []string{"apache"}},
			{Path: "/etc/new/sub/x.conf", CreatedDirs: []string{"/etc/new", "/etc/new/sub"}, Services: []string{"php-fpm"}},
		},
		Actions: []journal.Action{
			{ServiceAction: nodeagent.ServiceAction{Service: "apache", Unit: "apache2", Kind: nodeagent.ActionReload}, Tried: true, Done: true},
			{ServiceAction: nodeagent.ServiceAction{Service: "php-fpm", Unit: "php8.2-fpm", Kind: nodeagent.ActionReload}},
			{ServiceAction: nodeagent.ServiceAction{Service: "php-fpm", Unit: "php8.2-fpm", Kind: nodeagent.ActionReload, Reason: "release switched"}, Release: true},
		},
		Switches: []journal.Switch{{Product: "shop", From: "r1", To: "r2", Done: true}},
	}
}

// checkRestored asserts the files of applied are back as they were.
func (e *env) checkRestored(t *testing.T) {
	t.Helper()
	if got, mode, ok := e.read(t, "/etc/app.conf"); !ok || got != "old\n" || mode != 0o600 {
		t.Errorf("/etc/app.conf = %q %v %t, want \"old\\n\" 0600", got, mode, ok)
	}
	if _, err := os.Lstat(filepath.Join(e.root, "etc/new")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("/etc/new, created by the apply, is still there: %v", err)
	}
}

func (e *env) pending(t *testing.T) *journal.Record {
	t.Helper()
	r, err := e.store().Load()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSaveIsPrivateAndLoadsBack(t *testing.T) {
	e := newEnv(t)
	j := e.journal(e.applied(t, journal.StageChecked))
	if err := j.Save(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(e.root, stateDir, journal.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %v, want 0600 (it holds previous file contents)", fi.Mode().Perm())
	}
	r := e.pending(t)
	if r == nil || r.Serial != 7 || len(r.Files) != 2 || string(r.Files[0].Content) != "old\n" || r.Files[0].Mode != 0o600 {
		t.Fatalf("loaded %+v", r)
	}
	if err := j.Clear(); err != nil {
		t.Fatal(err)
	}
	if r := e.pending(t); r != nil {
		t.Errorf("journal still there after Clear: %+v", r)
	}
}

func TestLoadRefusesGarbage(t *testing.T) {
	e := newEnv(t)
	e.write(t, stateDir+"/"+journal.FileName, "{\"stage\":\"sideways\"}\n", 0o600)
	if _, err := e.store().Load(); err == nil || !strings.Contains(err.Error(), "move it away") {
		t.Errorf("Load of a journal with an unknown stage: %v, want an error that says what to do", err)
	}
}

func TestRecoverCheckedFinishesWhatIsOwed(t *testing.T) {
	e := newEnv(t)
	r := e.applied(t, journal.StageChecked)
	r.Switches[0].Done = false // died before the switch
	e.rel.active["shop"] = "r1"
	if err := e.journal(r).Save(); err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(e.store(), e.svc, e.rel, nil)
	if err != nil || j == nil {
		t.Fatalf("Open = %v, %v", j, err)
	}
	if owed := j.Record.Owed(); len(owed) != 2 {
		t.Errorf("owed %v, want the php-fpm reload and the release reload", owed)
	}
	done, err := j.Recover(context.Background())
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	// Apache's reload happened before the crash and is not repeated; the
	// file reload comes before the switch, the release reload after it.
	if want := []string{"reload php8.2-fpm", "reload php8.2-fpm"}; !slices.Equal(e.svc.calls, want) {
		t.Errorf("service calls %v, want %v", e.svc.calls, want)
	}
	if len(done) != 2 {
		t.Errorf("Recover reported %v, want two actions", done)
	}
	if e.rel.active["shop"] != "r2" {
		t.Errorf("shop active %q, want the switch finished to r2", e.rel.active["shop"])
	}
	if got, _, _ := e.read(t, "/etc/app.conf"); got != "new\n" {
		t.Errorf("finishing the apply changed its files: %q", got)
	}
	// Nothing is owed, but no smoke check has judged the result: the
	// record stays for the next apply to adopt.
	if r := e.pending(t); r == nil || r.Stage != journal.StageApplied || len(r.Owed()) != 0 {
		t.Errorf("journal after the apply was finished: %+v, want stage applied with nothing owed", r)
	}
}

func TestAdoptedApplyIsUndoneWithTheNextOne(t *testing.T) {
	e := newEnv(t)
	dead := e.applied(t, journal.StageApplied) // app.conf old -> new, shop r1 -> r2
	for i := range dead.Actions {
		dead.Actions[i].Tried, dead.Actions[i].Done = true, true
	}
	// The next apply changes app.conf again and switches shop to r3.
	j := e.journal(journal.Record{Serial: 8})
	j.Adopt(&dead)
	j.AddFiles([]journal.File{{Path: "/etc/app.conf", Existed: true, Content: []byte("new\n"), Mode: 0o644}})
	j.Record.Switches = append(j.Record.Switches, journal.Switch{Product: "shop", To: "r3"})
	if err := j.Save(); err != nil {
		t.Fatal(err)
	}
	e.write(t, "/etc/app.conf", "newer\n", 0o644)
	prev, _ := e.rel.Activate("shop", "r3")
	if err := j.Switched(1, prev); err != nil {
		t.Fatal(err)
	}
	if len(j.Record.Files) != 2 {
		t.Fatalf("files %+v, want app.conf once (with its state before the dead apply) and x.conf", j.Record.Files)
	}

	// Its smoke checks fail: the undo goes back past the dead apply, to
	// the last state that passed its checks.
	e.svc.calls = nil
	if _, err := j.Undo(context.Background(), "smoke checks failed"); err != nil {
		t.Fatal(err)
	}
	e.checkRestored(t)
	if e.rel.active["shop"] != "r1" {
		t.Errorf("shop active %q, want r1 (before the dead apply)", e.rel.active["shop"])
	}
	if want := []string{"reload apache2", "reload php8.2-fpm"}; !slices.Equal(e.svc.calls, want) {
		t.Errorf("undo service calls %v, want %v", e.svc.calls, want)
	}
}

func TestRecoverWritingPutsFilesBackWithoutTouchingServices(t *testing.T) {
	e := newEnv(t)
	r := e.applied(t, journal.StageWriting)
	r.Actions[0].Tried, r.Actions[0].Done = false, false
	r.Switches[0].Done = false
	e.rel.active["shop"] = "r1"
	if err := e.journal(r).Save(); err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(e.store(), e.svc, e.rel, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Recover(context.Background()); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	e.checkRestored(t)
	if len(e.svc.calls) != 0 || len(e.rel.calls) != 0 {
		t.Errorf("undoing unchecked files touched services %v, releases %v; want nothing", e.svc.calls, e.rel.calls)
	}
	if r := e.pending(t); r != nil {
		t.Errorf("journal still there: %+v", r)
	}
}

func TestUndoPutsEverythingBackAndReloadsWhatWasTouched(t *testing.T) {
	e := newEnv(t)
	r := e.applied(t, journal.StageChecked)
	r.Actions[1].Tried = true // the php-fpm reload failed: it may have half happened
	r.Actions[2].Done = false
	j := e.journal(r)
	if err := j.Save(); err != nil {
		t.Fatal(err)
	}
	rep, err := j.Undo(context.Background(), "reload php-fpm failed")
	if err != nil {
		t.Fatalf("Undo: %v", err)
	}
	e.checkRestored(t)
	if e.rel.active["shop"] != "r1" {
		t.Errorf("shop active %q, want switched back to r1", e.rel.active["shop"])
	}
	if want := []string{"reload apache2", "reload php8.2-fpm"}; !slices.Equal(e.svc.calls, want) {
		t.Errorf("undo service calls %v, want %v (each touched unit once)", e.svc.calls, want)
	}
	for _, s := range []string{"switched back to release r1 of shop", "put back 2 file(s)", "reload apache2", "reload php8.2-fpm"} {
		if !strings.Contains(rep.Summary(), s) {
			t.Errorf("summary %q does not say %q", rep.Summary(), s)
		}
	}
	if r := e.pending(t); r != nil {
		t.Errorf("journal still there after a complete undo: %+v", r)
	}
}

func TestUndoReloadFailingStaysOwedUntilItWorks(t *testing.T) {
	e := newEnv(t)
	r := e.applied(t, journal.StageChecked)
	e.svc.fail["reload php8.2-fpm"] = true
	if err := e.journal(r).Save(); err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(e.store(), e.svc, e.rel, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Finishing fails on the php-fpm reload; the apply is undone, and the
	// undo's php-fpm reload fails too: it stays owed.
	_, err = j.Recover(context.Background())
	if err == nil || !strings.Contains(err.Error(), "still owed") {
		t.Fatalf("Recover = %v, want the owed reload reported", err)
	}
	e.checkRestored(t)
	left := e.pending(t)
	if left == nil || left.Stage != journal.StageUndoing {
		t.Fatalf("journal after a failed undo reload = %+v, want it kept at stage undoing", left)
	}
	if owed := left.Owed(); len(owed) != 1 || owed[0].Unit != "php8.2-fpm" {
		t.Errorf("owed %v, want only the php-fpm reload (apache's was done)", owed)
	}

	// The reload works again: the next process finishes the undo.
	e.svc.fail = map[string]bool{}
	e.svc.calls = nil
	j, err = journal.Open(e.store(), e.svc, e.rel, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Recover(context.Background()); err != nil {
		t.Fatalf("second Recover: %v", err)
	}
	if want := []string{"reload php8.2-fpm"}; !slices.Equal(e.svc.calls, want) {
		t.Errorf("service calls %v, want %v", e.svc.calls, want)
	}
	e.checkRestored(t)
	if r := e.pending(t); r != nil {
		t.Errorf("journal still there: %+v", r)
	}
}

func TestKeptApplyStaysOwed(t *testing.T) {
	e := newEnv(t)
	r := e.applied(t, journal.StageChecked)
	r.Keep = true
	e.svc.fail["reload php8.2-fpm"] = true
	if err := e.journal(r).Save(); err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(e.store(), e.svc, e.rel, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Recover(context.Background()); err == nil {
		t.Fatal("Recover succeeded with a failing reload")
	}
	if got, _, _ := e.read(t, "/etc/app.conf"); got != "new\n" {
		t.Errorf("a kept (first) apply's files were put back: %q", got)
	}
	left := e.pending(t)
	if left == nil || left.Stage != journal.StageChecked || len(left.Owed()) != 2 {
		t.Errorf("journal %+v, want the php-fpm reloads still owed at stage checked", left)
	}
}

func TestUndoOfAFirstReleaseSaysItStays(t *testing.T) {
	e := newEnv(t)
	r := e.applied(t, journal.StageChecked)
	r.Files = nil
	r.Switches[0].From = ""
	j := e.journal(r)
	rep, err := j.Undo(context.Background(), "smoke checks failed")
	if err != nil {
		t.Fatal(err)
	}
	if len(e.rel.calls) != 0 || e.rel.active["shop"] != "r2" {
		t.Errorf("releases %v, active %q: want nothing switched (nothing before r2)", e.rel.calls, e.rel.active["shop"])
	}
	if s := rep.Summary(); !strings.Contains(s, "release r2 of shop stays active (no release was active before it)") || strings.Contains(s, "switched") {
		t.Errorf("summary %q does not say the release stays", s)
	}
}
