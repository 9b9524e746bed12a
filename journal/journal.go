// Package journal is the durable record of one apply, kept in the state dir
// (<state dir>/apply.json) from before its first write until its smoke
// checks pass or its undo is complete: what it
// is about to change (every file with its previous content, mode and owner
// and the directories its write creates), what it owes the services (the
// reloads, restarts and starts, each cleared only once it has happened) and
// the release switches.
//
// The record is written before the first file of an apply is, so a process
// that dies anywhere in the apply leaves it behind, and the next apply
// finishes or undoes it (Recover) before it plans anything: "converged"
// always means the running services were reloaded with what is on disk.
// The undo of a failed apply (a refused config check, a failed reload or
// release switch, failed smoke checks) is driven from the same record
// (Undo), in the same process or in the next one.
package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/hostfs"
	"github.com/nodeagent/nodeagent/state"
)

// FileName is the record's name in the state dir. (Not under journal/,
// which holds hostfs's in-place rewrites.)
const FileName = state.JournalFile

// Stage is how far the recorded apply got.
type Stage string

const (
	// StageWriting: files are being written and have not been checked;
	// no service has been touched. A dead apply at this stage is undone
	// (its files put back), since a half-written, unchecked tree must not
	// be loaded.
	StageWriting Stage = "writing"
	// StageChecked: every file is written and passed its config check;
	// the service actions and release switches not done yet are owed. A
	// dead apply at this stage is finished.
	StageChecked Stage = "checked"
	// StageApplied: every action and switch happened; the smoke checks
	// have not passed yet. Nothing is owed, but the record stays: an apply
	// that finds it adopts it (Adopt), so that if the smoke checks then
	// fail, the undo goes back to the state before the dead apply too.
	StageApplied Stage = "applied"
	// StageUndoing: the apply failed and is being undone; the previous
	// files go back and the undo's actions are owed.
	StageUndoing Stage = "undoing"
)

// File is one file the apply writes, as it was before.
type File struct {
	Path    string      `json:"path"`
	Existed bool        `json:"existed"`
	Content []byte      `json:"content,omitempty"` // previous content (base64 in the record)
	Mode    fs.FileMode `json:"mode,omitempty"`
	Owner   string      `json:"owner,omitempty"`
	Group   string      `json:"group,omitempty"`
	// CreatedDirs are the directories writing this file creates,
	// outermost first; the undo removes them.
	CreatedDirs []string `json:"created_dirs,omitempty"`
	// Services are the logical services that read the file.
	Services []string `json:"services,omitempty"`
}

// Action is a service action the apply owes.
type Action struct {
	nodeagent.ServiceAction
	// Release marks the reload owed to a release switch (it runs after
	// the switches, and an undo that switches back owes it again).
	Release bool `json:"release,omitempty"`
	// Tried: the action was started, so the service may have loaded the
	// new files even if the action then failed.
	Tried bool `json:"tried,omitempty"`
	Done  bool `json:"done"`
}

func (a Action) String() string {
	return fmt.Sprintf("%s %s (%s)", a.Kind, a.Service, a.Unit)
}

// Switch is a release switch of the apply.
type Switch struct {
	Product string `json:"product"`
	From    string `json:"from,omitempty"` // active before ("" for none)
	To      string `json:"to"`
	Done    bool   `json:"done"`
}

// Record is the journal's content.
type Record struct {
	ID      string    `json:"apply_id"`
	Serial  int64     `json:"serial"`
	Started time.Time `json:"started"`
	PID     int       `json:"pid"`
	Stage   Stage     `json:"stage"`
	// Keep says a failure keeps the files and releases in place instead of
	// undoing them: the node's first apply has no good state to go back
	// to. Its failed actions stay owed.
	Keep     bool     `json:"keep,omitempty"`
	Files    []File   `json:"files,omitempty"`
	Actions  []Action `json:"actions,omitempty"`
	Switches []Switch `json:"switches,omitempty"`
	// Undo are the actions owed by the undo (stage undoing) and Why the
	// failure that started it.
	Undo []Action `json:"undo,omitempty"`
	Why  string   `json:"why,omitempty"`
}

// Owed lists the service actions and release switches still owed, in the
// order they will run.
func (r *Record) Owed() []Action {
	var out []Action
	if r.Stage == StageUndoing {
		for _, a := range r.Undo {
			if !a.Done {
				out = append(out, a)
			}
		}
		return out
	}
	if r.Stage != StageChecked {
		return nil
	}
	for _, a := range r.Actions {
		if !a.Done {
			out = append(out, a)
		}
	}
	return out
}

// Releases switches a product's active release (release.Manager).
type Releases interface {
	Activate(product, id string) (previous string, err error)
}

// Journal is an apply's record and what acts on it. The zero Store keeps
// the record in memory only (plan tests without a state dir).
type Journal struct {
	// FS holds the recorded files (the host under --root).
	FS       hostfs.FS
	Store    Store
	Services nodeagent.ServiceManager
	Releases Releases
	Logger   *slog.Logger
	Record   Record

	saved bool // the record is on disk
}

// Store is where the record lives: FS under its root, at StateDir/apply.json.
// A zero Store (empty StateDir) keeps nothing.
type Store struct {
	FS       hostfs.FS
	StateDir string
}

// Path is the record's host path ("" for a memory-only store).
func (s Store) Path() string {
	if s.StateDir == "" {
		return ""
	}
	return path.Join(s.StateDir, FileName)
}

// Load reads the record left on disk; nil when there is none.
func (s Store) Load() (*Record, error) {
	if s.Path() == "" {
		return nil, nil
	}
	b, err := s.FS.ReadFile(s.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: read %s: %w", s.Path(), err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("journal: %s is not an apply journal (move it away to apply without it): %w", s.Path(), err)
	}
	switch r.Stage {
	case StageWriting, StageChecked, StageApplied, StageUndoing:
	default:
		return nil, fmt.Errorf("journal: %s has unknown stage %q (move it away to apply without it)", s.Path(), r.Stage)
	}
	return &r, nil
}

// Open loads the record left on disk into a Journal; nil when there is
// none.
func Open(s Store, services nodeagent.ServiceManager, releases Releases, log *slog.Logger) (*Journal, error) {
	r, err := s.Load()
	if err != nil || r == nil {
		return nil, err
	}
	return &Journal{FS: s.FS, Store: s, Services: services, Releases: releases, Logger: log, Record: *r, saved: true}, nil
}

func (j *Journal) log() *slog.Logger {
	if j.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return j.Logger
}

// Path is where the record is kept ("" in memory only).
func (j *Journal) Path() string { return j.Store.Path() }

// Pending reports whether the record is on disk: something is in flight or
// owed.
func (j *Journal) Pending() bool { return j != nil && j.saved }

// Empty reports whether the record holds nothing to do.
func (j *Journal) Empty() bool {
	r := &j.Record
	return len(r.Files) == 0 && len(r.Actions) == 0 && len(r.Switches) == 0 && len(r.Undo) == 0
}

// Save writes the record durably (mode 0600: it holds previous file
// contents, secrets included).
func (j *Journal) Save() error {
	p := j.Path()
	if p == "" {
		return nil
	}
	b, err := json.Marshal(&j.Record)
	if err != nil {
		return fmt.Errorf("journal: encode: %w", err)
	}
	if err := j.Store.FS.WriteFile(p, append(b, '\n'), hostfs.WriteOptions{Mode: 0o600}); err != nil {
		return fmt.Errorf("journal: save: %w", err)
	}
	j.saved = true
	return nil
}

// Clear removes the record: nothing is in flight or owed any more.
func (j *Journal) Clear() error {
	if !j.saved {
		return nil
	}
	if err := j.Store.FS.Remove(j.Path()); err != nil {
		return fmt.Errorf("journal: clear: %w", err)
	}
	j.saved = false
	return nil
}

// Run performs action i of the record and records that it happened.
func (j *Journal) Run(ctx context.Context, i int) error {
	a := &j.Record.Actions[i]
	a.Tried = true
	if err := j.do(ctx, a.ServiceAction); err != nil {
		return err
	}
	a.Done = true
	j.log().Info("service action done", nodeagent.LogKeyService, a.Service, nodeagent.LogKeyUnit, a.Unit, nodeagent.LogKeyAction, string(a.Kind), nodeagent.LogKeyReason, a.Reason)
	return j.Save()
}

func (j *Journal) do(ctx context.Context, a nodeagent.ServiceAction) error {
	if j.Services == nil {
		return fmt.Errorf("journal: %s %s (%s): no service manager is configured", a.Kind, a.Service, a.Unit)
	}
	var err error
	switch a.Kind {
	case nodeagent.ActionStart:
		err = j.Services.Start(ctx, a.Unit)
	case nodeagent.ActionReload:
		err = j.Services.Reload(ctx, a.Unit)
	case nodeagent.ActionRestart:
		err = j.Services.Restart(ctx, a.Unit)
	default:
		err = fmt.Errorf("unknown action %q", a.Kind)
	}
	if err != nil {
		return fmt.Errorf("%s %s (%s): %w", a.Kind, a.Service, a.Unit, err)
	}
	return nil
}

// Switched records that switch i happened, and what was active before.
func (j *Journal) Switched(i int, previous string) error {
	s := &j.Record.Switches[i]
	s.From, s.Done = previous, true
	return j.Save()
}

// Finish completes a recorded apply that got past its config checks: the
// service actions not done, the release switches not done, then the
// reloads owed to them; the record is cleared once nothing is owed. It
// returns the actions it performed. On failure the record stays with what
// is still owed.
func (j *Journal) Finish(ctx context.Context) ([]nodeagent.ServiceAction, error) {
	var done []nodeagent.ServiceAction
	run := func(release bool) error {
		for i, a := range j.Record.Actions {
			if a.Done || a.Release != release {
				continue
			}
			if err := j.Run(ctx, i); err != nil {
				return err
			}
			done = append(done, a.ServiceAction)
		}
		return nil
	}
	if err := run(false); err != nil {
		return done, err
	}
	for i, s := range j.Record.Switches {
		if s.Done {
			continue
		}
		if j.Releases == nil {
			return done, fmt.Errorf("journal: switch %s to %s: no release manager is configured", s.Product, s.To)
		}
		prev, err := j.Releases.Activate(s.Product, s.To)
		if err != nil {
			return done, fmt.Errorf("switch %s to %s: %w", s.Product, s.To, err)
		}
		if s.From == "" {
			s.From = prev
		}
		if err := j.Switched(i, s.From); err != nil {
			return done, err
		}
	}
	if err := run(true); err != nil {
		return done, err
	}
	return done, j.Applied()
}

// Applied records that everything owed happened (stage applied); the
// record stays until the smoke checks pass (then Clear) or fail (then
// Undo). A kept (first) apply has nothing to undo: it is cleared at once.
func (j *Journal) Applied() error {
	if !j.saved {
		return nil // nothing was recorded: nothing changed
	}
	if j.Record.Keep {
		return j.Clear()
	}
	j.Record.Stage = StageApplied
	return j.Save()
}

// Adopt takes over the record of a dead apply that got to stage applied
// (its changes are in place, never smoke-checked): its files, keeping
// their state from before it, its actions (done) and its switches become
// this apply's, so that undoing this apply also undoes that one, back to
// the last state that passed its smoke checks.
func (j *Journal) Adopt(dead *Record) {
	r := &j.Record
	r.Files = append(slices.Clone(dead.Files), r.Files...)
	r.Actions = append(slices.Clone(dead.Actions), r.Actions...)
	r.Switches = append(slices.Clone(dead.Switches), r.Switches...)
	r.Keep = r.Keep || dead.Keep
}

// AddFiles records files this apply is about to write, as they are now;
// a file the record has already (adopted from a dead apply) keeps its
// older state, the one to go back to.
func (j *Journal) AddFiles(files []File) {
	for _, f := range files {
		if !slices.ContainsFunc(j.Record.Files, func(x File) bool { return x.Path == f.Path }) {
			j.Record.Files = append(j.Record.Files, f)
		}
	}
}

// UndoReport says what an undo did.
type UndoReport struct {
	Restored int               // files put back (or removed)
	Switched map[string]string // product -> release switched back to
	Kept     map[string]string // product -> release left active: nothing before it
	Actions  []nodeagent.ServiceAction
}

// Summary is the report for an operator.
func (u UndoReport) Summary() string {
	var parts []string
	for _, prod := range sortedKeys(u.Switched) {
		parts = append(parts, fmt.Sprintf("switched back to release %s of %s", u.Switched[prod], prod))
	}
	for _, prod := range sortedKeys(u.Kept) {
		parts = append(parts, fmt.Sprintf("release %s of %s stays active (no release was active before it)", u.Kept[prod], prod))
	}
	if u.Restored > 0 {
		parts = append(parts, fmt.Sprintf("put back %d file(s)", u.Restored))
	}
	if len(u.Actions) > 0 {
		var as []string
		for _, a := range u.Actions {
			as = append(as, fmt.Sprintf("%s %s", a.Kind, a.Unit))
		}
		parts = append(parts, "then "+strings.Join(as, ", "))
	}
	if len(parts) == 0 {
		return "nothing to undo"
	}
	return strings.Join(parts, "; ")
}

// Undo takes back the recorded apply: the releases it switched go back to
// the previous ones (a release with nothing before it stays), every file
// goes back to its previous content, mode and owner (or is removed, with
// the directories its write created), and the services the apply touched
// are reloaded (restarted) with what is on disk again; the record is then
// cleared. The undo is recorded first, so an undo that dies or fails is
// resumed by the next apply; what failed stays owed. why is the failure
// being undone.
func (j *Journal) Undo(ctx context.Context, why string) (UndoReport, error) {
	r := &j.Record
	rep := UndoReport{Switched: map[string]string{}, Kept: map[string]string{}}
	if r.Stage != StageUndoing {
		r.Undo = undoActions(r)
		r.Stage, r.Why = StageUndoing, why
		if err := j.Save(); err != nil {
			return rep, err
		}
	}
	var errs []error
	// Last switch first: an adopted switch r1 -> r2 followed by this
	// apply's r2 -> r3 ends on r1.
	for i := len(r.Switches) - 1; i >= 0; i-- {
		s := &r.Switches[i]
		if !s.Done {
			continue
		}
		if s.From == "" || s.From == s.To {
			if _, back := rep.Switched[s.Product]; !back {
				rep.Kept[s.Product] = s.To
			}
			continue
		}
		delete(rep.Kept, s.Product)
		if j.Releases == nil {
			errs = append(errs, fmt.Errorf("switch %s back to %s: no release manager is configured", s.Product, s.From))
			continue
		}
		if _, err := j.Releases.Activate(s.Product, s.From); err != nil {
			errs = append(errs, fmt.Errorf("switch %s back to %s: %w", s.Product, s.From, err))
			continue
		}
		rep.Switched[s.Product] = s.From
		j.log().Warn("switched back to the previous release", nodeagent.LogKeyProduct, s.Product, nodeagent.LogKeyRelease, s.From)
	}
	restored, err := restoreFiles(j.FS, r.Files, j.log())
	rep.Restored = restored
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		// Reloading a half-restored tree would load neither state.
		return rep, errors.Join(errs...)
	}
	for i := range r.Undo {
		a := &r.Undo[i]
		if a.Done {
			continue
		}
		if err := j.do(ctx, a.ServiceAction); err != nil {
			errs = append(errs, err)
			continue
		}
		a.Done = true
		rep.Actions = append(rep.Actions, a.ServiceAction)
		j.log().Info("service action done", nodeagent.LogKeyService, a.Service, nodeagent.LogKeyUnit, a.Unit, nodeagent.LogKeyAction, string(a.Kind), nodeagent.LogKeyReason, a.Reason)
	}
	if len(errs) > 0 {
		if err := j.Save(); err != nil {
			errs = append(errs, err)
		}
		return rep, fmt.Errorf("%w (still owed, retried by the next apply: %s)", errors.Join(errs...), strings.Join(actionStrings(j.Record.Owed()), ", "))
	}
	return rep, j.Clear()
}

// undoActions are what the services owe after the files go back: every
// unit the apply touched (an action tried, done or not: a failed reload
// may have half happened) is reloaded, or restarted when that is how it
// takes a change; a release switched back owes its reload again.
func undoActions(r *Record) []Action {
	switchedBack := false
	for _, s := range r.Switches {
		if s.Done && s.From != "" && s.From != s.To {
			switchedBack = true
		}
	}
	var out []Action
	seen := map[string]bool{}
	for _, a := range r.Actions {
		if !a.Tried && !(a.Release && switchedBack) {
			continue
		}
		if seen[a.Unit] {
			continue
		}
		seen[a.Unit] = true
		kind := nodeagent.ActionReload
		if a.Kind == nodeagent.ActionRestart {
			kind = nodeagent.ActionRestart
		}
		out = append(out, Action{ServiceAction: nodeagent.ServiceAction{
			Service: a.Service, Unit: a.Unit, Kind: kind, Reason: fmt.Sprintf("undo of the apply of serial %d", r.Serial),
		}})
	}
	return out
}

// restoreFiles puts the recorded files back, last first: previous content,
// mode and owner, or removal of files that did not exist; then it removes
// the directories the writes created, innermost first. It is idempotent,
// so a resumed undo runs it again. It returns how many files it put back.
func restoreFiles(fsys hostfs.FS, files []File, log *slog.Logger) (int, error) {
	var errs []error
	n := 0
	for i := len(files) - 1; i >= 0; i-- {
		f := files[i]
		var err error
		if f.Existed {
			err = fsys.WriteFile(f.Path, f.Content, hostfs.WriteOptions{Mode: f.Mode, Owner: f.Owner, Group: f.Group})
		} else {
			err = fsys.Remove(f.Path)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", f.Path, err))
			continue
		}
		n++
		log.Info("restored file", nodeagent.LogKeyPath, f.Path, nodeagent.LogKeyExisted, f.Existed)
	}
	if len(errs) > 0 {
		return n, errors.Join(errs...) // keep the directories of files still there
	}
	for i := len(files) - 1; i >= 0; i-- {
		dirs := files[i].CreatedDirs
		for k := len(dirs) - 1; k >= 0; k-- {
			if err := fsys.Remove(dirs[k]); err != nil {
				errs = append(errs, fmt.Errorf("restore: remove created directory %s: %w", dirs[k], err))
			}
		}
	}
	return n, errors.Join(errs...)
}

// Recover finishes or undoes the apply a dead process left, and returns the
// service actions it performed (the finish's, or the undo's):
//
//   - stage writing: the files go back (no service was touched);
//   - stage checked: the owed actions and switches are done (Finish),
//     which leaves the record at stage applied; if one fails, the apply is
//     undone like a live failure, unless the record says to keep it (a
//     first apply), when it stays owed;
//   - stage applied: nothing is owed; the record stays for the next apply
//     to adopt (see Adopt);
//   - stage undoing: the undo is resumed.
//
// On error the record stays on disk with what is still owed.
func (j *Journal) Recover(ctx context.Context) ([]nodeagent.ServiceAction, error) {
	r := &j.Record
	switch r.Stage {
	case StageChecked:
		done, err := j.Finish(ctx)
		if err == nil || r.Keep {
			return done, err
		}
		rep, uerr := j.Undo(ctx, err.Error())
		if uerr != nil {
			return append(done, rep.Actions...), fmt.Errorf("%w; undoing it failed too: %w", err, uerr)
		}
		return append(done, rep.Actions...), fmt.Errorf("%w; undone: %s", err, rep.Summary())
	case StageApplied:
		return nil, nil
	case StageWriting:
		rep, err := j.Undo(ctx, "interrupted while writing files")
		return rep.Actions, err
	default:
		rep, err := j.Undo(ctx, r.Why)
		return rep.Actions, err
	}
}

func actionStrings(as []Action) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
