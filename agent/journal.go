package agent

import (
	"context"
	"fmt"
	"path"
	"slices"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/journal"
	"github.com/nodeagent/nodeagent/readiness"
)

// recoverJournal finishes or undoes the apply a dead process left (see
// journal.Journal.Recover) and returns the service actions that took, and
// the dead apply's record when it is in place but was never smoke-checked
// (this apply adopts it). It fails only when something is still owed: then
// the running services may not match the files on disk, and no new apply
// goes on top of that.
func (a *Agent) recoverJournal(ctx context.Context) ([]nodeagent.ServiceAction, *journal.Record, error) {
	j, err := journal.Open(a.journalStore(), a.Services, a.Releases, a.Logger)
	if err != nil {
		return nil, nil, err
	}
	if j == nil {
		return nil, nil, nil
	}
	a.beforeChange()
	r := j.Record
	log := a.Logger.With(LogKeyApply, r.ID, LogKeySerial, r.Serial)
	j.Logger = log
	log.Warn("an interrupted apply left its journal; finishing or undoing it before anything else",
		nodeagent.LogKeyPath, j.Path(), nodeagent.LogKeyStage, string(r.Stage), nodeagent.LogKeyPID, r.PID, nodeagent.LogKeyStarted, r.Started.Format(time.RFC3339), nodeagent.LogKeyOwed, owedStrings(r.Owed()))
	done, err := j.Recover(ctx)
	a.reportOwed(j)
	if err != nil && j.Pending() {
		return done, nil, fmt.Errorf("finish the interrupted apply of serial %d (journal %s): %w", r.Serial, j.Path(), err)
	}
	if err != nil {
		log.Error("the interrupted apply could not be finished and was undone", nodeagent.LogKeyError, err.Error())
		return done, nil, nil
	}
	if j.Pending() {
		log.Info("interrupted apply finished; this apply's smoke checks judge it, and a failure undoes it too", nodeagent.LogKeyActions, len(done))
		return done, &j.Record, nil
	}
	log.Info("interrupted apply done", nodeagent.LogKeyStage, string(r.Stage), nodeagent.LogKeyActions, len(done))
	return done, nil, nil
}

// reportOwed puts what the journal still owes in the status (nothing once
// it is cleared).
func (a *Agent) reportOwed(j *journal.Journal) {
	var owed []string
	why := ""
	if j.Pending() {
		owed = owedStrings(j.Record.Owed())
		why = fmt.Sprintf("apply of serial %d, stage %s (journal %s)", j.Record.Serial, j.Record.Stage, j.Path())
	}
	a.Readiness.Update(func(s *readiness.Status) { s.Owed, s.OwedWhy = owed, why })
}

func owedStrings(as []journal.Action) []string {
	var out []string
	for _, x := range as {
		out = append(out, x.String())
	}
	return out
}

// owedByJournal adds to a plan what the journal a dead process left still
// owes, so that a dry run shows it: the real apply does it first (see
// Converge). An action the plan has already is not repeated.
func (a *Agent) owedByJournal(p *nodeagent.Plan) error {
	r, err := a.journalStore().Load()
	if err != nil || r == nil {
		return err
	}
	why := fmt.Sprintf("owed by an interrupted apply of serial %d (journal %s, stage %s)", r.Serial, a.journalStore().Path(), r.Stage)
	switch r.Stage {
	case journal.StageWriting:
		why = fmt.Sprintf("an interrupted apply of serial %d was writing files (journal %s): they are put back first", r.Serial, a.journalStore().Path())
	case journal.StageUndoing:
		why = fmt.Sprintf("owed by the undo of an interrupted apply of serial %d (journal %s)", r.Serial, a.journalStore().Path())
	}
	owed := r.Owed()
	if r.Stage == journal.StageChecked {
		for _, s := range r.Switches {
			if !s.Done {
				why += fmt.Sprintf("; %s is switched to release %s first", s.Product, s.To)
			}
		}
	}
	for _, o := range owed {
		if slices.ContainsFunc(p.Services, func(x nodeagent.ServiceAction) bool { return x.Unit == o.Unit && x.Kind == o.Kind }) {
			continue
		}
		act := o.ServiceAction
		act.Reason = why
		p.Services = append(p.Services, act)
	}
	return nil
}

// sweep removes the temporary files a process killed in the middle of a
// write left behind: only the agent's own names (hostfs's
// ".NAME.nodeagent-*", atomicfile's ".NAME.tmp-*" in the state dir), only
// in the directories it manages (those of the desired files, /etc, the
// state dir), and only files older than this process, so that no write in
// flight loses its temporary file. A failure is logged: leftovers never
// fail an apply. A living process removes its own temporary files, so
// leftovers come only from dead ones: once the first apply of this process
// has swept, later ones (in run) skip it (about 0.8 ms of directory reads).
// Callers hold the apply lock.
func (a *Agent) sweep(p *Prepared) {
	if a.swept {
		return
	}
	if p != nil {
		a.swept = true
	}
	dirs := []string{"/etc", a.Config.StateDir, path.Join(a.Config.StateDir, "health")}
	if p != nil {
		for _, f := range p.Desired.Files {
			dirs = append(dirs, path.Dir(f.Path))
		}
	}
	slices.Sort(dirs)
	dirs = slices.Compact(dirs)
	before := processStarted
	for _, d := range dirs {
		state := d == a.Config.StateDir || d == path.Join(a.Config.StateDir, "health")
		removed, err := a.FS.SweepTemp(d, before, state)
		for _, r := range removed {
			a.Logger.Warn("removed a temporary file an interrupted write left", nodeagent.LogKeyPath, r)
		}
		if err != nil {
			a.Logger.Warn("sweep temporary files", nodeagent.LogKeyPath, d, nodeagent.LogKeyError, err.Error())
		}
	}
}

// processStarted is when this process started (near enough: package
// initialisation): a temporary file older than that is no write of ours in
// flight.
var processStarted = time.Now()
