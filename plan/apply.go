package plan

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/hostfs"
)

// ApplyInput is what Apply needs.
type ApplyInput struct {
	Plan     *nodeagent.Plan
	Desired  *nodeagent.Desired // which services are checked
	FS       hostfs.FS
	Services nodeagent.ServiceManager
	Checker  nodeagent.ConfigChecker
	Logger   *slog.Logger
}

// Result is what Apply did.
type Result struct {
	// Written are the files written and left in place (none when Apply put
	// them back after a refused check or a failed write).
	Written []string
	// Actions are the service actions that succeeded, in order.
	Actions []nodeagent.ServiceAction
}

// CheckError is a configuration check that refused the files of an apply.
type CheckError struct {
	Service string // logical service whose check failed
	Output  string // the checker's output
	Err     error  // the checker's error
	// RestoreErr is set when putting the previous files back failed too.
	RestoreErr error
}

func (e *CheckError) Error() string {
	var b strings.Builder
	b.WriteString("plan: config check of ")
	b.WriteString(e.Service)
	b.WriteString(" refused the new files: ")
	b.WriteString(e.Err.Error())
	if e.Output != "" && !strings.Contains(e.Err.Error(), e.Output) {
		b.WriteString(": ")
		b.WriteString(e.Output)
	}
	if e.RestoreErr != nil {
		b.WriteString("; restoring the previous files failed too: ")
		b.WriteString(e.RestoreErr.Error())
	} else {
		b.WriteString("; previous files restored")
	}
	return b.String()
}

func (e *CheckError) Unwrap() []error {
	if e.RestoreErr != nil {
		return []error{e.Err, e.RestoreErr}
	}
	return []error{e.Err}
}

// Log attribute keys.
const (
	logKeyPath    = "path"
	logKeyService = "service"
	logKeyUnit    = "unit"
	logKeyAction  = "action"
	logKeyReason  = "reason"
)

// Apply executes a plan:
//
//  1. every file change is written atomically with its mode and owner;
//  2. every checked service whose files changed, or that will be started,
//     has its whole configuration tree checked; if one is refused, every
//     file written by this apply is put back exactly as it was (content,
//     mode, owner; files that did not exist are removed) and a *CheckError
//     is returned, with no service touched;
//  3. service actions run: starts first, then reloads and restarts.
//
// A failed write also puts back what was already written. Apply snapshots
// each file just before writing it, so what it restores is what was on disk
// at apply time, not what the plan saw.
func Apply(ctx context.Context, in ApplyInput) (*Result, error) {
	if in.Plan == nil || in.Desired == nil {
		return nil, errors.New("plan: apply: no plan or desired state")
	}
	log := in.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	checks := servicesToCheck(in.Plan, in.Desired)
	if len(checks) > 0 && in.Checker == nil {
		return nil, fmt.Errorf("plan: apply: %s needs a config check and no checker is configured", strings.Join(checks, ", "))
	}
	if len(in.Plan.Services) > 0 && in.Services == nil {
		return nil, errors.New("plan: apply: service actions planned and no service manager is configured")
	}

	res := &Result{}
	var saved []current
	var savedPaths []string
	var createdDirs []string // directories the writes created, parents first
	restore := func() error {
		err := restoreAll(in.FS, savedPaths, saved, createdDirs, log)
		if err == nil {
			res.Written = nil
		}
		return err
	}
	for _, fc := range in.Plan.Files {
		// A fresh reader per file: the writes before it may have created
		// directories.
		cur, err := readCurrent(in.FS.Reader(), fc.Path)
		if err == nil && !cur.exists {
			var missing []string
			missing, err = missingDirs(in.FS, fc.Path)
			createdDirs = append(createdDirs, missing...)
		}
		if err == nil {
			err = in.FS.WriteFile(fc.Path, fc.Content, hostfs.WriteOptions{Mode: fc.Mode, Owner: fc.Owner, Group: fc.Group})
		}
		if err != nil {
			err = fmt.Errorf("plan: write %s: %w", fc.Path, err)
			if rerr := restore(); rerr != nil {
				return res, fmt.Errorf("%w; restoring the previous files failed too: %w", err, rerr)
			}
			return res, fmt.Errorf("%w; previous files restored", err)
		}
		saved, savedPaths = append(saved, cur), append(savedPaths, fc.Path)
		res.Written = append(res.Written, fc.Path)
		log.Info("wrote file", logKeyPath, fc.Path, logKeyReason, fc.Reason)
	}

	for _, s := range checks {
		err := in.Checker.Check(ctx, s)
		if err == nil {
			log.Info("config check passed", logKeyService, s)
			continue
		}
		ce := &CheckError{Service: s, Output: checkOutput(err), Err: err}
		ce.RestoreErr = restore()
		log.Error("config check refused; previous files put back", logKeyService, s, "output", ce.Output, "restore_error", ce.RestoreErr)
		return res, ce
	}

	actions := slices.Clone(in.Plan.Services)
	SortActions(actions)
	for _, a := range actions {
		var err error
		switch a.Kind {
		case nodeagent.ActionStart:
			err = in.Services.Start(ctx, a.Unit)
		case nodeagent.ActionReload:
			err = in.Services.Reload(ctx, a.Unit)
		case nodeagent.ActionRestart:
			err = in.Services.Restart(ctx, a.Unit)
		default:
			err = fmt.Errorf("unknown action %q", a.Kind)
		}
		if err != nil {
			return res, fmt.Errorf("plan: %s %s (%s): %w", a.Kind, a.Service, a.Unit, err)
		}
		res.Actions = append(res.Actions, a)
		log.Info("service action done", logKeyService, a.Service, logKeyUnit, a.Unit, logKeyAction, string(a.Kind), logKeyReason, a.Reason)
	}
	return res, nil
}

// servicesToCheck lists, sorted, the checked services whose files change or
// that will be started.
func servicesToCheck(p *nodeagent.Plan, d *nodeagent.Desired) []string {
	affected := map[string]bool{}
	for _, f := range p.Files {
		for _, s := range f.Services {
			affected[s] = true
		}
	}
	for _, a := range p.Services {
		if a.Kind == nodeagent.ActionStart {
			affected[a.Service] = true
		}
	}
	var out []string
	for _, s := range d.Services {
		if s.Checked && affected[s.Name] && !slices.Contains(out, s.Name) {
			out = append(out, s.Name)
		}
	}
	slices.Sort(out)
	return out
}

// checkOutput is the checker's own output when its error carries it (as
// service.CommandError does), else the error text.
func checkOutput(err error) string {
	var o interface{ Output() string }
	if errors.As(err, &o) {
		return o.Output()
	}
	return err.Error()
}

// missingDirs lists the ancestors of path that do not exist yet, outermost
// first: the directories writing path will create.
func missingDirs(fsys hostfs.FS, path string) ([]string, error) {
	var missing []string
	for dir := filepath.Dir(path); dir != "/" && dir != "."; dir = filepath.Dir(dir) {
		_, err := fsys.Lstat(dir)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("stat %s: %w", dir, err)
		}
		missing = append([]string{dir}, missing...)
	}
	return missing, nil
}

// restoreAll puts saved files back, last written first: old content, mode
// and owner, or removal of files that did not exist; then it removes the
// directories the writes created, innermost first.
func restoreAll(fsys hostfs.FS, paths []string, saved []current, dirs []string, log *slog.Logger) error {
	var errs []error
	for i := len(saved) - 1; i >= 0; i-- {
		p, c := paths[i], saved[i]
		var err error
		if c.exists {
			err = fsys.WriteFile(p, c.data, hostfs.WriteOptions{Mode: c.mode, Owner: c.owner, Group: c.group})
		} else {
			err = fsys.Remove(p)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", p, err))
			continue
		}
		log.Info("restored file", logKeyPath, p, "existed", c.exists)
	}
	if len(errs) > 0 {
		return errors.Join(errs...) // keep the directories of files still there
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := fsys.Remove(dirs[i]); err != nil {
			errs = append(errs, fmt.Errorf("restore: remove created directory %s: %w", dirs[i], err))
		}
	}
	return errors.Join(errs...)
}
