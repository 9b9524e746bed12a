// Package agent runs nodeagent's work end to end: one apply (discover,
// fetch, validate, resolve, plan, apply, release, smoke, readiness, launch
// hook) and the run loop that re-applies when the topology changes. It sees
// the outside world only through the interfaces of the root package and the
// host filesystem under --root; cmd/nodeagent wires the real adapters in.
package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/hostfs"
	"github.com/nodeagent/nodeagent/journal"
	"github.com/nodeagent/nodeagent/plan"
	"github.com/nodeagent/nodeagent/readiness"
	"github.com/nodeagent/nodeagent/release"
	"github.com/nodeagent/nodeagent/roles"
	"github.com/nodeagent/nodeagent/smoke"
	"github.com/nodeagent/nodeagent/source"
	"github.com/nodeagent/nodeagent/state"
	"github.com/nodeagent/nodeagent/topology"
)

// Log attribute keys of an apply's records, as the root package names them
// (nodeagent.LogKey*); here for tests that read the records.
const (
	LogKeyApply    = nodeagent.LogKeyApply
	LogKeyStep     = nodeagent.LogKeyStep
	LogKeyDuration = nodeagent.LogKeyDuration
	LogKeySerial   = nodeagent.LogKeySerial
	LogKeySource   = nodeagent.LogKeySource
)

// Agent holds everything one node's applies need.
type Agent struct {
	Config   Config
	Metadata nodeagent.MetadataSource
	Source   nodeagent.TopologySource
	FS       hostfs.FS
	Services nodeagent.ServiceManager
	// Checker returns the config checker for the discovered instance (the
	// commands depend on its OS family and PHP version).
	Checker   func(nodeagent.Instance) nodeagent.ConfigChecker
	Releases  *release.Manager
	Hooks     nodeagent.LifecycleHooks // nil: no Auto Scaling API configured
	Readiness *readiness.State
	Logger    *slog.Logger
	Now       func() time.Time
	// HTTPClient is used by smoke checks; nil means smoke.NewHTTPClient
	// (no redirects followed, no proxy, a 10 s bound per request).
	HTTPClient *http.Client
	// BeforeChange, when set, is called before this process first changes
	// the node, finishes a dead apply's journal, calls Auto Scaling or
	// waits to retry; it may be called more than once. `nodeagent apply`
	// starts catching SIGINT and SIGTERM there. An apply that finds
	// nothing to change never calls it: up to its end, a signal can stop
	// it anywhere, as a kill could, without leaving anything owed. What it
	// may write before then is crash-safe by design: whole-file
	// replacements of the agent's own records, the sweep of a dead
	// process's temporary files, and the replay of its interrupted writes
	// (hostfs.FS.Recover), which the next process replays again.
	BeforeChange func()

	// swept: this process has swept the temp files dead processes left
	// (see sweep); only the first apply needs to.
	swept bool
	// rollouts is the last rollout object read and the document it holds
	// back (rollout.go).
	rollouts rolloutCache
	// saved is the last-good copy this process saved, with its decoding:
	// the next changed document in `run` is compared with it without
	// decoding the copy again (a 5,000-node document: one strict decode,
	// about 4 MB of garbage and 10-40 ms). Only used while the copy on
	// disk is still byte for byte what was saved.
	saved atomic.Pointer[lastApplied]
}

// beforeChange calls BeforeChange, when there is one.
func (a *Agent) beforeChange() {
	if a.BeforeChange != nil {
		a.BeforeChange()
	}
}

// Applied records the last successful apply in the state dir (state.Applied).
type Applied = state.Applied

// Prepared is a planned apply: everything read, nothing changed.
type Prepared struct {
	Instance nodeagent.Instance
	Topology *nodeagent.Topology
	Body     []byte
	ETag     string
	From     string           // where the document came from
	Format   nodeagent.Format // how Body is written, as the source said
	Desired  *nodeagent.Desired
	Plan     *nodeagent.Plan
	Previous *nodeagent.Topology // last applied document, nil on first apply

	// The last-good copy as Prepare read it (under the apply lock, so
	// still what is on disk when the apply records its success).
	lastGoodBody   []byte
	lastGoodETag   string
	lastGoodFormat nodeagent.Format
	// recovered are the service actions Converge did to finish or undo
	// the apply a dead process left, before this one; adopted is that
	// apply's journal when it got as far as stage applied and was never
	// smoke-checked: this apply's smoke checks judge it too.
	recovered []nodeagent.ServiceAction
	adopted   *journal.Record
	// early are the smoke checks Converge started while this plan was
	// built (see earlyChecks); nil when it did not.
	early *earlyChecks
}

// Document is a fetched topology document.
type Document struct {
	Body []byte
	ETag string
	From string
	// Format is how Body is written, as its source said ("" is JSON).
	Format nodeagent.Format
	// Stale says the source was unreachable and this is the last-good copy.
	Stale bool

	// decoded is the document's one decoding, shared by every copy of
	// this Document: the serial it shows as seen, the launch hook lookup
	// and the apply all use it. nil (a Document built by hand) decodes
	// on use.
	decoded *decoded
}

type decoded struct {
	t   *nodeagent.Topology
	err error
}

// NewDocument is a fetched document, decoded and validated once. format is
// the source's word for how body is written (nodeagent.Fetched.Format).
func NewDocument(body []byte, etag, from string, format nodeagent.Format, stale bool) Document {
	t, err := topology.Load(body, from, format)
	return Document{Body: body, ETag: etag, From: from, Format: format, Stale: stale, decoded: &decoded{t: t, err: err}}
}

// load is the document's decoding (topology.Load).
func (d Document) load() (*nodeagent.Topology, error) {
	if d.decoded != nil {
		return d.decoded.t, d.decoded.err
	}
	return topology.Load(d.Body, d.From, d.Format)
}

// seeSerial records the document's serial as seen, valid or not:
// serial_seen above serial_applied is how a bad push shows on a dashboard.
func (a *Agent) seeSerial(d Document) {
	if d.decoded == nil {
		return
	}
	n := int64(0)
	if d.decoded.t != nil {
		n = d.decoded.t.Serial
	} else if s, ok := topology.SerialOf(d.decoded.err); ok {
		n = s
	}
	if n > 0 && n > a.Readiness.Snapshot().SeenSerial {
		a.Readiness.Update(func(s *readiness.Status) { s.SeenSerial = max(s.SeenSerial, n) })
	}
}

func (a *Agent) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Agent) statePath(name string) string { return a.stateDir().File(name) }

// stateDir is the agent's own records (applied.json, lifecycle.json).
func (a *Agent) stateDir() state.Dir { return state.Dir{FS: a.FS, Path: a.Config.StateDir} }

// journalStore is where an apply's journal is kept: <state dir>/apply.json.
func (a *Agent) journalStore() journal.Store {
	return journal.Store{FS: a.FS, StateDir: a.Config.StateDir}
}

// newJournal is an empty journal for a new apply.
func (a *Agent) newJournal(log *slog.Logger, r journal.Record) *journal.Journal {
	return &journal.Journal{FS: a.FS, Store: a.journalStore(), Services: a.Services, Releases: a.Releases, Logger: log, Record: r}
}

func (a *Agent) lastGood() source.LastGood {
	return source.LastGood{Root: a.FS.Root, Path: a.statePath(state.LastGoodFile)}
}

// Fetch gets the topology document from the source. When the source is
// unreachable and a last-good copy exists, it returns that copy, marked
// Stale, and says so loudly.
func (a *Agent) Fetch(ctx context.Context) (Document, error) {
	f, err := a.fetchSource(ctx)
	return a.document(f, err)
}

// fetchSource fetches the document from the source. When the last-good
// copy has an ETag it asks only whether the document changed since: an
// unchanged one (every re-apply of the same topology) is then a 304 with no
// body from S3 or an https server, and the copy, which LastGood keeps
// paired with its ETag, is the document.
func (a *Agent) fetchSource(ctx context.Context) (nodeagent.Fetched, error) {
	body, etag, format, err := a.lastGood().Load()
	if err != nil || etag == "" {
		return a.Source.Fetch(ctx, "")
	}
	f, err := a.Source.Fetch(ctx, etag)
	if err == nil && f.NotModified {
		f = nodeagent.Fetched{Body: body, ETag: etag, Format: format, Source: f.Source}
	}
	return f, err
}

// document is a fetch's outcome as the document to apply: the fetched one,
// or, when the source failed, the last-good copy (said loudly).
func (a *Agent) document(f nodeagent.Fetched, err error) (Document, error) {
	if err == nil {
		return NewDocument(f.Body, f.ETag, a.Source.String(), f.Format, false), nil
	}
	body, etag, format, lgErr := a.lastGood().Load()
	if lgErr != nil {
		if errors.Is(lgErr, os.ErrNotExist) {
			return Document{}, fmt.Errorf("fetch topology: %w (and there is no last-good copy in %s to boot from)", err, a.statePath(state.LastGoodFile))
		}
		return Document{}, fmt.Errorf("fetch topology: %w (and the last-good copy is unreadable: %w)", err, lgErr)
	}
	a.Logger.Warn("topology source unreachable: using the last-good copy; the node converges to it and re-checks the source later",
		LogKeySource, a.Source.String(), nodeagent.LogKeyError, err.Error(), nodeagent.LogKeyPath, a.statePath(state.LastGoodFile))
	return NewDocument(body, etag, "last-good copy "+a.statePath(state.LastGoodFile)+" (source unreachable)", format, true), nil
}

// Prepare plans an apply of doc for inst. It reads the host and the state
// dir and changes nothing.
func (a *Agent) Prepare(ctx context.Context, inst nodeagent.Instance, doc Document) (*Prepared, error) {
	return a.prepare(ctx, inst, doc, false)
}

// prepare is Prepare. With checkEarly, when doc is the document last
// applied, it starts the smoke checks as soon as it knows the node's
// desired state, before it reads the host (see earlyChecks).
func (a *Agent) prepare(ctx context.Context, inst nodeagent.Instance, doc Document, checkEarly bool) (_ *Prepared, err error) {
	t, err := doc.load()
	if err != nil {
		// topology.Load's errors name the document ("topology <from>: …").
		return nil, &RefusedError{From: doc.From, Err: err, named: true}
	}
	last, err := a.previousTopology(doc.Body, doc.Format, t)
	if err != nil {
		return nil, err
	}
	prev := last.topology
	guards := topology.Guards{AllowLowerSerial: a.Config.AllowLowerSerial, AllowNodeDrop: a.Config.AllowNodeDrop}
	if err := topology.CheckSuccessor(prev, t, guards); err != nil {
		return nil, &RefusedError{From: doc.From, Err: err}
	}
	d, err := a.desire(inst, t)
	if err != nil {
		return nil, &RefusedError{From: doc.From, Err: err}
	}
	var early *earlyChecks
	if checkEarly && last.same {
		early = a.startChecks(ctx, d)
		defer func() {
			if err != nil {
				early.stop()
			}
		}()
	}
	id := d.Identity
	var prevSerial int64
	if prev != nil {
		prevSerial = prev.Serial
	}
	p, err := plan.Build(ctx, plan.Input{
		Desired:        d,
		Instance:       inst,
		FS:             a.FS,
		Services:       a.Services,
		Changes:        topology.Changes(prev, t),
		Serial:         t.Serial,
		PreviousSerial: prevSerial,
	})
	if err != nil {
		return nil, err // plan.Build's errors say "plan:" and name the file
	}
	if err := a.planReleases(p, d); err != nil {
		return nil, err
	}
	if err := a.owedByJournal(p); err != nil {
		return nil, err
	}
	if h, ok := a.pendingLaunchHook(inst, id); ok {
		p.Lifecycle = &nodeagent.LifecycleAction{Hook: h, Result: nodeagent.LifecycleContinue,
			Reason: fmt.Sprintf("groups.%s.launch_hook %s has not been completed for %s", id.Group, h.Hook, inst.ID)}
	}
	return &Prepared{Instance: inst, Topology: t, Body: doc.Body, ETag: doc.ETag, From: doc.From, Format: doc.Format, Desired: d, Plan: p, Previous: prev,
		lastGoodBody: last.body, lastGoodETag: last.etag, lastGoodFormat: last.format, early: early}, nil
}

// RefusedError is a topology document that was not applied because it is
// invalid, stale, or does not fit this node; nothing was changed.
type RefusedError struct {
	From string
	Err  error

	named bool // Err names the document already (topology.Load's errors)
}

func (e *RefusedError) Error() string {
	if e.named {
		return fmt.Sprintf("refused an invalid document, nothing was changed: %v", e.Err)
	}
	return fmt.Sprintf("topology from %s refused, nothing was changed: %v", e.From, e.Err)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// desire resolves this node's identity in t and derives its desired state.
func (a *Agent) desire(inst nodeagent.Instance, t *nodeagent.Topology) (*nodeagent.Desired, error) {
	id, err := topology.Resolve(t, inst, a.overrides())
	if err != nil {
		return nil, fmt.Errorf("resolve identity: %w", err)
	}
	d, err := roles.Desire(roles.Input{
		Instance:    inst,
		Topology:    t,
		Identity:    id,
		ServiceRoot: a.Config.ServiceRoot,
		StateDir:    a.Config.StateDir,
	})
	if err != nil {
		return nil, fmt.Errorf("derive desired state for role %s: %w", id.Role, err)
	}
	return d, nil
}

func (a *Agent) planReleases(p *nodeagent.Plan, d *nodeagent.Desired) error {
	for _, prod := range d.Products {
		if prod.Release == nil {
			continue
		}
		active, err := a.Releases.Active(prod.Name)
		if err != nil {
			return fmt.Errorf("read active release of %s: %w", prod.Name, err)
		}
		installed := a.Releases.Installed(prod.Name, *prod.Release)
		if active == prod.Release.ID && installed {
			continue
		}
		reason := fmt.Sprintf("products.%s.release.id is %s", prod.Name, prod.Release.ID)
		if active == "" {
			reason += ", nothing active yet"
		} else if active != prod.Release.ID {
			reason += fmt.Sprintf(", %s is active", active)
		} else {
			reason += ", active but not verified"
		}
		p.Releases = append(p.Releases, nodeagent.ReleaseAction{
			Product: prod.Name, From: active, To: prod.Release.ID, Download: !installed, Reason: reason,
		})
	}
	return nil
}

// lastApplied is the last-good copy: its bytes and ETag, and the document
// they hold (nil when there is no copy, or it no longer validates).
type lastApplied struct {
	body     []byte
	etag     string
	format   nodeagent.Format
	topology *nodeagent.Topology
	same     bool // the document being applied is this one
}

// previousTopology loads the last good document, which is the last one
// applied. When its bytes are those of the document being applied (every
// re-check that finds nothing new), that document's decoding, next, serves
// for both rather than decoding the same bytes twice: for a fleet of
// thousands of nodes that is most of a no-change apply.
func (a *Agent) previousTopology(body []byte, format nodeagent.Format, next *nodeagent.Topology) (lastApplied, error) {
	last, etag, lastFormat, err := a.lastGood().Load()
	if errors.Is(err, os.ErrNotExist) {
		return lastApplied{}, nil
	}
	if err != nil {
		return lastApplied{}, fmt.Errorf("read last-good topology: %w", err)
	}
	if bytes.Equal(last, body) && lastFormat == formatOrJSON(format) {
		return lastApplied{body: last, etag: etag, format: lastFormat, topology: next, same: true}, nil
	}
	if s := a.saved.Load(); s != nil && s.format == lastFormat && bytes.Equal(s.body, last) {
		return lastApplied{body: last, etag: etag, format: lastFormat, topology: s.topology}, nil
	}
	t, err := topology.Load(last, a.statePath(state.LastGoodFile), lastFormat)
	if err != nil {
		// A last-good copy that no longer validates (an agent upgrade
		// tightened a rule) must not block a good new document.
		a.Logger.Warn("last-good topology no longer validates; treating this apply as the first", nodeagent.LogKeyError, err.Error())
		return lastApplied{body: last, etag: etag, format: lastFormat}, nil
	}
	return lastApplied{body: last, etag: etag, format: lastFormat, topology: t}, nil
}

func (a *Agent) overrides() nodeagent.Overrides {
	return nodeagent.Overrides{Role: a.Config.Role, Products: a.Config.Products, Group: a.Config.Group}
}

func (a *Agent) pendingLaunchHook(inst nodeagent.Instance, id nodeagent.Identity) (nodeagent.LifecycleHook, bool) {
	if id.LaunchHook == "" || id.Group == "" {
		return nodeagent.LifecycleHook{}, false
	}
	h := nodeagent.LifecycleHook{Group: id.Group, Hook: id.LaunchHook, InstanceID: inst.ID}
	// An instance launches once: once its launch hook was completed (or
	// found gone), no later process, boot or apply completes it again.
	return h, !a.stateDir().LaunchCompleted(inst.ID)
}

// Outcome is what an apply did.
type Outcome struct {
	Prepared *Prepared
	Written  []string
	Actions  []nodeagent.ServiceAction
	Switched map[string]string // product -> release id activated
	Smoke    []smoke.Result
	Ready    bool
}

// ApplyOnce converges the node to p: files and services, releases, smoke
// checks with rollback, then records the document as last good. The caller
// holds the apply lock (see Converge); lifecycle hooks are Boot's.
func (a *Agent) ApplyOnce(ctx context.Context, p *Prepared) (*Outcome, error) {
	applyID := newID()
	log := a.Logger.With(LogKeyApply, applyID, LogKeySerial, p.Topology.Serial)
	out := &Outcome{Prepared: p, Switched: map[string]string{}}
	unchanged := p.Plan.Empty() && len(p.recovered) == 0 && p.adopted == nil
	early := p.early
	p.early = nil
	defer early.stop() // whatever way the apply ends, none outlives it
	if !unchanged {
		// The checks that started early judged the node before this
		// apply's changes: none of theirs is in flight when they begin.
		if early != nil {
			early.stop()
			early = nil
			log.Debug("early smoke checks stopped: this apply changes the node, and checks it after")
		}
		a.beforeChange()
	}

	// shared/ belongs to the web server's user, so the application can
	// write sessions, uploads and caches there.
	a.Releases.Owner, a.Releases.Group = p.Desired.WebUser, p.Desired.WebGroup
	// Download and verify every release before anything on the node
	// changes: a wrong checksum or URL fails the apply with nothing touched.
	for _, ra := range p.Plan.Releases {
		rel := releaseOf(p.Desired, ra.Product)
		if _, err := step(ctx, log, "download "+ra.Product, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, a.Releases.Install(ctx, ra.Product, *rel)
		}); err != nil {
			// release.Install names the product and release id, the
			// store the URL: this layer adds only what it knows.
			err = fmt.Errorf("%w; nothing was changed", err)
			a.recordFailure(p, err, nil)
			return out, err
		}
	}

	// The journal records the apply before its first write; a process
	// that dies from here on leaves it for the next apply to finish or
	// undo (see Converge).
	j := a.newJournal(log, journal.Record{
		ID: applyID, Serial: p.Topology.Serial, Started: a.now().UTC(), PID: os.Getpid(),
		// A first apply has no good state to go back to: a failure keeps
		// its files for the operator, and what it owes stays owed.
		Keep: p.Previous == nil,
	})
	if p.adopted != nil {
		j.Adopt(p.adopted)
	}
	for _, ra := range p.Plan.Releases {
		j.Record.Switches = append(j.Record.Switches, journal.Switch{Product: ra.Product, From: ra.From, To: ra.To})
	}
	if len(p.Plan.Releases) > 0 {
		for _, s := range p.Desired.Services {
			if s.OnRelease { // runs product code: reloaded on a switch
				j.Record.Actions = append(j.Record.Actions, journal.Action{Release: true, ServiceAction: nodeagent.ServiceAction{
					Service: s.Name, Unit: s.Unit, Kind: nodeagent.ActionReload, Reason: "release switched"}})
			}
		}
	}
	out.Actions = append(out.Actions, p.recovered...)

	res, err := step(ctx, log, "files", func(ctx context.Context) (*plan.Result, error) {
		return plan.Apply(ctx, plan.ApplyInput{Plan: p.Plan, Desired: p.Desired, FS: a.FS, Services: a.Services, Checker: a.Checker(p.Instance), Logger: log, Journal: j})
	})
	if res != nil {
		out.Written = res.Written
		out.Actions = append(out.Actions, res.Actions...)
	}
	if err != nil {
		if !j.Pending() {
			// Nothing reached the services: plan.Apply put the files back
			// itself (a refused check, a failed write).
			a.recordFailure(p, err, nil)
			return out, err
		}
		return out, a.fail(ctx, log, p, j, nil, err)
	}

	for i, sw := range j.Record.Switches {
		if sw.Done {
			continue // adopted from a dead apply
		}
		_, err := step(ctx, log, "activate "+sw.Product, func(context.Context) (struct{}, error) {
			prev, err := a.Releases.Activate(sw.Product, sw.To)
			if err != nil {
				return struct{}{}, err
			}
			return struct{}{}, j.Switched(i, prev)
		})
		if err != nil {
			return out, a.fail(ctx, log, p, j, nil, fmt.Errorf("activate release %s of %s: %w", sw.To, sw.Product, err))
		}
		out.Switched[sw.Product] = sw.To
	}
	for i, act := range j.Record.Actions {
		if !act.Release || act.Done {
			continue
		}
		if err := j.Run(ctx, i); err != nil {
			return out, a.fail(ctx, log, p, j, nil, fmt.Errorf("%w (release switched)", err))
		}
		out.Actions = append(out.Actions, act.ServiceAction)
	}
	// Everything owed has happened: the running services have loaded what
	// is on disk. The record stays (stage applied) until the smoke checks
	// pass: a process killed before then leaves it for the next apply to
	// adopt, and failed checks undo from it.
	if err := j.Applied(); err != nil {
		return out, a.fail(ctx, log, p, j, nil, err)
	}

	results, _ := step(ctx, log, "smoke", func(ctx context.Context) ([]smoke.Result, error) {
		if early != nil {
			rs := early.wait()
			smoke.LogResults(a.Logger, rs)
			return rs, nil
		}
		return a.Smoke(ctx, p.Desired), nil
	})
	out.Smoke = results
	if smoke.Failed(results) {
		return out, a.fail(ctx, log, p, j, results, fmt.Errorf("smoke checks failed: %s", smokeSummary(results)))
	}
	if err := j.Clear(); err != nil {
		return out, fmt.Errorf("the node converged and passed its smoke checks, but: %w", err)
	}

	if _, err := step(ctx, log, "record", func(context.Context) (struct{}, error) { return struct{}{}, a.recordSuccess(p) }); err != nil {
		return out, fmt.Errorf("record the applied state: %w", err)
	}
	for _, prod := range slices.Sorted(maps.Keys(out.Switched)) {
		if removed, err := a.Releases.Prune(prod); err != nil {
			log.Warn("prune old releases", nodeagent.LogKeyProduct, prod, nodeagent.LogKeyError, err.Error())
		} else if len(removed) > 0 {
			log.Info("pruned old releases", nodeagent.LogKeyProduct, prod, nodeagent.LogKeyRemoved, removed)
		}
	}
	a.Readiness.Update(func(s *readiness.Status) {
		s.LastApply = a.now()
		s.LastApplyOK = true
		s.ApplyError = ""
		s.Serial = p.Topology.Serial
		s.SeenSerial = max(s.SeenSerial, p.Topology.Serial)
		s.Smoke = results
		s.Release = a.activeReleases(p.Desired)
		s.Instance, s.Role, s.Node = p.Instance.ID, p.Desired.Identity.Role, p.Desired.Identity.Node
		s.Owed, s.OwedWhy = nil, "" // the journal is cleared: nothing is owed
	})
	out.Ready = a.Readiness.Snapshot().Ready
	log.Info("apply done", nodeagent.LogKeyFiles, len(out.Written), nodeagent.LogKeyActions, len(out.Actions), nodeagent.LogKeyReleases, len(out.Switched), nodeagent.LogKeyReady, out.Ready)
	return out, nil
}

// fail undoes what this apply changed, from its journal: the previous
// releases, the previous files, and reloads of the services it touched.
// It then checks that the node serves again with its previous state, and
// records the failure. The undo runs on its own deadline, so an apply that
// ran out of time (or was cancelled by a drain) still puts the node back.
//
// A first apply has nothing to go back to: its files and release stay for
// the operator to inspect (the node is not ready), and an action it owed
// and could not do stays owed for the next apply.
func (a *Agent) fail(ctx context.Context, log *slog.Logger, p *Prepared, j *journal.Journal, failed []smoke.Result, err error) error {
	a.beforeChange()
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if j.Record.Keep {
		err = fmt.Errorf("%w; %s", err, keepSummary(j))
		if owed := j.Record.Owed(); len(owed) > 0 {
			if sErr := j.Save(); sErr != nil {
				err = fmt.Errorf("%w; recording what is owed failed too: %w", err, sErr)
			}
		} else if cErr := j.Clear(); cErr != nil {
			err = fmt.Errorf("%w; %w", err, cErr)
		}
		a.recordFailure(p, err, failed)
		a.reportOwed(j)
		return err
	}
	rep, uErr := j.Undo(uctx, err.Error())
	if uErr != nil {
		err = fmt.Errorf("%w; undoing this apply failed: %s: %w", err, rep.Summary(), uErr)
	} else {
		err = fmt.Errorf("%w; undone: %s", err, rep.Summary())
	}
	results := failed
	// Judge readiness by the state the node is back in.
	if d, dErr := a.desire(p.Instance, p.Previous); dErr == nil {
		results = a.Smoke(uctx, d)
	}
	a.recordFailure(p, err, results)
	a.reportOwed(j)
	return err
}

// keepSummary says what a failed first apply leaves in place.
func keepSummary(j *journal.Journal) string {
	var parts []string
	for _, s := range j.Record.Switches {
		if s.Done {
			parts = append(parts, fmt.Sprintf("release %s of %s stays active (no release was active before it)", s.To, s.Product))
		}
	}
	parts = append(parts, "the files stay as written for inspection (the node's first apply: there is no previous state to go back to; it is not ready)")
	if owed := j.Record.Owed(); len(owed) > 0 {
		var as []string
		for _, o := range owed {
			as = append(as, o.String())
		}
		parts = append(parts, fmt.Sprintf("still owed, done by the next apply: %s (journal %s)", strings.Join(as, ", "), j.Path()))
	}
	return strings.Join(parts, "; ")
}

// Smoke runs the node's smoke checks against its real local services.
func (a *Agent) Smoke(ctx context.Context, d *nodeagent.Desired) []smoke.Result {
	return a.smoke(ctx, d, false)
}

// smoke is Smoke; quiet leaves the results out of the log (the caller logs
// them with smoke.LogResults if they count).
func (a *Agent) smoke(ctx context.Context, d *nodeagent.Desired, quiet bool) []smoke.Result {
	checks := smoke.ForNode(d, a.httpClient())
	if len(checks) == 0 {
		return nil
	}
	return smoke.Run(ctx, checks, smoke.RunOptions{Deadline: a.Config.SmokeDeadline.D(), Backoff: 100 * time.Millisecond, Logger: a.Logger, QuietResults: quiet})
}

// earlyChecks are a node's smoke checks started while its apply is still
// being planned. Converge starts them when the document is the one last
// applied and nothing was recovered or adopted from a dead apply's
// journal: most such applies change nothing (every re-check of an
// unchanged topology), and their checks then overlap the plan's reads of
// the host instead of following them. They are used only by an apply that
// changes nothing, so they judge what the node serves after the apply as
// well as checks run at the end would. An apply that finds something to
// change stops them before its first change and runs its own after it.
// Their results are logged only when they are used.
type earlyChecks struct {
	cancel  context.CancelFunc
	done    chan struct{}
	results []smoke.Result // set before done is closed
}

func (a *Agent) startChecks(ctx context.Context, d *nodeagent.Desired) *earlyChecks {
	ctx, cancel := context.WithCancel(ctx)
	e := &earlyChecks{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		e.results = a.smoke(ctx, d, true)
	}()
	return e
}

// wait returns the checks' results once they are all in.
func (e *earlyChecks) wait() []smoke.Result {
	<-e.done
	e.cancel()
	return e.results
}

// stop cancels the checks and returns once they have returned; a nil e is
// a no-op.
func (e *earlyChecks) stop() {
	if e == nil {
		return
	}
	e.cancel()
	<-e.done
}

// httpClient is the smoke checks' client; nil lets package smoke use its
// own (smoke.NewHTTPClient), shared by every apply.
func (a *Agent) httpClient() *http.Client { return a.HTTPClient }

func releaseOf(d *nodeagent.Desired, product string) *nodeagent.Release {
	for _, p := range d.Products {
		if p.Name == product {
			return p.Release
		}
	}
	return nil
}

func (a *Agent) activeReleases(d *nodeagent.Desired) map[string]string {
	m := map[string]string{}
	for _, p := range d.Products {
		if id, err := a.Releases.Active(p.Name); err == nil && id != "" {
			m[p.Name] = id
		}
	}
	return m
}

// recordSuccess keeps the applied document as the last good copy and notes
// what was applied. Re-applying the same document with nothing to do
// rewrites neither.
func (a *Agent) recordSuccess(p *Prepared) error {
	if p.lastGoodBody != nil && p.lastGoodETag == p.ETag && p.lastGoodFormat == formatOrJSON(p.Format) && bytes.Equal(p.lastGoodBody, p.Body) && p.Plan.Empty() {
		return nil
	}
	a.saved.Store(nil)
	if err := a.lastGood().Save(p.Body, p.ETag, p.Format); err != nil {
		return err
	}
	a.saved.Store(&lastApplied{body: p.Body, etag: p.ETag, format: formatOrJSON(p.Format), topology: p.Topology})
	return a.stateDir().WriteApplied(state.Applied{
		Serial: p.Topology.Serial, ETag: p.ETag, InstanceID: p.Instance.ID, Identity: p.Desired.Identity,
		Releases: a.activeReleases(p.Desired), At: a.now().UTC(),
	})
}

// recordFailure reports a failed apply. A node that has applied a good
// state before stays as ready as its smoke results say: the failure shows
// in the log, /status and metrics, never as a 503 for a bad push. results,
// when not nil, are the smoke results of the state the node is in now.
func (a *Agent) recordFailure(p *Prepared, err error, results []smoke.Result) {
	a.Readiness.Update(func(s *readiness.Status) {
		if results != nil {
			s.Smoke = results
		}
		s.LastError = err.Error()
		s.LastErrorAt = a.now()
		if p != nil && p.Topology != nil {
			s.SeenSerial = max(s.SeenSerial, p.Topology.Serial)
		}
		if !s.LastApplyOK {
			// Nothing good was ever applied: the node is not ready.
			s.LastApplyOK = false
			s.ApplyError = err.Error()
		}
	})
}

// step runs one apply step and logs it with its duration.
func step[T any](ctx context.Context, log *slog.Logger, name string, f func(context.Context) (T, error)) (T, error) {
	start := time.Now()
	v, err := f(ctx)
	attrs := []any{LogKeyStep, name, LogKeyDuration, float64(time.Since(start).Microseconds()) / 1000}
	if err != nil {
		log.Error("step failed", append(attrs, nodeagent.LogKeyError, err.Error())...)
	} else {
		log.Info("step done", attrs...)
	}
	return v, err
}

func smokeSummary(rs []smoke.Result) string {
	s := ""
	for _, r := range rs {
		if r.OK {
			continue
		}
		if s != "" {
			s += "; "
		}
		s += r.Name + ": " + r.Err
	}
	return s
}

func newID() string {
	var b [6]byte
	_, _ = io.ReadFull(rand.Reader, b[:])
	return hex.EncodeToString(b[:])
}

// hasApplied says whether the state dir holds a last-good copy, without
// reading it: one that exists may still be unreadable (LastApplied reads
// and decodes it).
func (a *Agent) hasApplied() bool { return a.lastGood().Exists() }

// LastApplied returns the last-good document from the state dir.
func (a *Agent) LastApplied() (Document, error) {
	body, etag, format, err := a.lastGood().Load()
	if errors.Is(err, os.ErrNotExist) {
		return Document{}, fmt.Errorf("no applied topology in %s: run nodeagent apply first", a.statePath(state.LastGoodFile))
	}
	if err != nil {
		return Document{}, fmt.Errorf("read last-good topology: %w", err)
	}
	return NewDocument(body, etag, "last-good copy "+a.statePath(state.LastGoodFile), format, false), nil
}

// formatOrJSON is format, with "" (a source that did not say) as JSON, the
// way the last-good copy records it.
func formatOrJSON(format nodeagent.Format) nodeagent.Format {
	if format == "" {
		return nodeagent.FormatJSON
	}
	return format
}
