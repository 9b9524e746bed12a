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
	"sync"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/hostfs"
	"github.com/nodeagent/nodeagent/journal"
)

// ApplyInput is what Apply needs.
type ApplyInput struct {
	Plan     *nodeagent.Plan
	Desired  *nodeagent.Desired // which services are checked
	FS       hostfs.FS
	Services nodeagent.ServiceManager
	Checker  nodeagent.ConfigChecker
	Logger   *slog.Logger
	// Journal records the apply durably before its first write and clears
	// each service action once done; its Record may already hold the
	// apply's release switches and the reloads owed to them, which Apply
	// records but leaves to the caller. nil keeps the record in memory only.
	Journal *journal.Journal
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

// Apply executes a plan:
//
//  0. the journal records the apply before the first write: every planned
//     file as it is on disk now (content, mode, owner, or missing with the
//     directories its write creates; read fresh, not what the plan saw),
//     and the service actions owed;
//  1. every file change is written atomically with its mode and owner;
//  2. every checked service whose files changed, or that will be started,
//     has its whole configuration tree checked; if one is refused, the
//     journal's undo puts every file back exactly as it was (content, mode,
//     owner; files that did not exist are removed with the directories
//     their writes created) and a *CheckError is returned, with no service
//     touched;
//  3. service actions run (starts first, then reloads and restarts), each
//     cleared in the journal once done. A failed action leaves the journal
//     on disk with the action owed: the caller undoes it (journal.Undo) or
//     keeps it owed.
//
// A failed write also puts back what was already written. A plan that
// changes nothing writes no journal.
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

	j := in.Journal
	if j == nil {
		j = &journal.Journal{}
	}
	j.FS = in.FS // the files Apply writes are the ones the undo puts back
	if j.Services == nil {
		j.Services = in.Services
	}
	if j.Logger == nil {
		j.Logger = log
	}
	res := &Result{}

	// Record the intent before the first write: every file as it is now
	// (read fresh, so what goes back is what was on disk at apply time,
	// not what the plan saw), the directories the writes create, and the
	// service actions owed.
	files, err := snapshot(in.FS, in.Plan.Files)
	if err != nil {
		return res, fmt.Errorf("plan: %w", err)
	}
	actions := slices.Clone(in.Plan.Services)
	SortActions(actions)
	owed := make([]journal.Action, 0, len(actions)+len(j.Record.Actions))
	for _, a := range actions {
		owed = append(owed, journal.Action{ServiceAction: a})
	}
	j.AddFiles(files)
	j.Record.Actions = append(owed, j.Record.Actions...)
	j.Record.Stage = journal.StageWriting
	if j.Empty() {
		return res, nil
	}
	if err := j.Save(); err != nil {
		return res, fmt.Errorf("plan: record the apply before writing: %w", err)
	}
	undo := func() error {
		_, err := j.Undo(ctx, "files refused")
		if err == nil {
			res.Written = nil
		}
		return err
	}

	for _, fc := range in.Plan.Files {
		err := in.FS.WriteFile(fc.Path, fc.Content, hostfs.WriteOptions{Mode: fc.Mode, Owner: fc.Owner, Group: fc.Group})
		if err != nil {
			err = fmt.Errorf("plan: write %s: %w", fc.Path, err)
			if rerr := undo(); rerr != nil {
				return res, fmt.Errorf("%w; restoring the previous files failed too: %w", err, rerr)
			}
			return res, fmt.Errorf("%w; previous files restored", err)
		}
		res.Written = append(res.Written, fc.Path)
		log.Info("wrote file", nodeagent.LogKeyPath, fc.Path, nodeagent.LogKeyReason, fc.Reason)
	}

	// The checks read disjoint trees (apache2ctl -t, php-fpm -t), so they
	// run at the same time; a refusal is reported for the first refused
	// service in sorted order, whatever finished first.
	errs := runChecks(ctx, in.Checker, checks)
	for i, s := range checks {
		err := errs[i]
		if err == nil {
			log.Info("config check passed", nodeagent.LogKeyService, s)
			continue
		}
		ce := &CheckError{Service: s, Output: checkOutput(err), Err: err}
		ce.RestoreErr = undo()
		log.Error("config check refused; previous files put back", nodeagent.LogKeyService, s, nodeagent.LogKeyOutput, ce.Output, nodeagent.LogKeyRestoreError, ce.RestoreErr)
		return res, ce
	}
	j.Record.Stage = journal.StageChecked
	if err := j.Save(); err != nil {
		return res, fmt.Errorf("plan: record the checked files: %w", err)
	}

	for i, a := range j.Record.Actions {
		if a.Release || a.Done {
			continue
		}
		if err := j.Run(ctx, i); err != nil {
			return res, fmt.Errorf("plan: %w", err)
		}
		res.Actions = append(res.Actions, a.ServiceAction)
	}
	return res, nil
}

// snapshot reads every planned file as it is now, for the journal: content,
// mode and owner, or that it does not exist and which directories its
// write will create (each created directory is recorded once, by the
// first file under it).
func snapshot(fsys hostfs.FS, changes []nodeagent.FileChange) ([]journal.File, error) {
	host := fsys.Reader()
	created := map[string]bool{}
	files := make([]journal.File, 0, len(changes))
	for _, fc := range changes {
		cur, err := readCurrent(host, fc.Path)
		if err != nil {
			return nil, err
		}
		f := journal.File{Path: fc.Path, Existed: cur.exists, Content: cur.data, Mode: cur.mode, Owner: cur.owner, Group: cur.group, Services: fc.Services}
		if !cur.exists {
			missing, err := missingDirs(fsys, fc.Path)
			if err != nil {
				return nil, err
			}
			for _, d := range missing {
				if !created[d] {
					created[d] = true
					f.CreatedDirs = append(f.CreatedDirs, d)
				}
			}
		}
		files = append(files, f)
	}
	return files, nil
}

// runChecks runs every check at once and returns their errors in the order
// of services.
func runChecks(ctx context.Context, c nodeagent.ConfigChecker, services []string) []error {
	errs := make([]error, len(services))
	if len(services) == 1 {
		errs[0] = c.Check(ctx, services[0])
		return errs
	}
	var wg sync.WaitGroup
	for i, s := range services {
		wg.Go(func() { errs[i] = c.Check(ctx, s) })
	}
	wg.Wait()
	return errs
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
