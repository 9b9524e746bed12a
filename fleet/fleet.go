// Package fleet joins the topology with every node's report into one
// Snapshot: one row per node with its flags (missing, stale, behind,
// failing, terminated, unknown), the roles × AZs matrix with imbalance
// called out, ready counts, and the share of live nodes on the current
// serial. `nodeagent fleet status` prints a Snapshot, `--json` encodes it,
// and `fleet serve` answers its JSON endpoint with the same encoding, so the
// table, the pipeline gate and the web page never disagree.
//
// Build is pure (topology, report entries, clock in; Snapshot out); Load
// does the I/O (one topology fetch, one ListObjectsV2 walk, bounded
// parallel GETs) and calls Build.
package fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/report"
	"github.com/nodeagent/nodeagent/rollout"
	"github.com/nodeagent/nodeagent/topology"
)

// SnapshotSchema is the version of the Snapshot's JSON encoding.
const SnapshotSchema = 1

// StaleIntervals is how many report intervals without a report make a
// node stale.
const StaleIntervals = 3

// DefaultReportInterval is the agents' default --report-interval.
const DefaultReportInterval = 5 * time.Minute

// Node states (Node.State), one per node, most telling first.
const (
	StateOK         = "ok"         // reporting, on the current serial, ready
	StateMissing    = "missing"    // listed in the topology, no report
	StateTerminated = "terminated" // its last report said its instance is terminating
	StateDraining   = "draining"   // its last report said it is draining
	StateStale      = "stale"      // no report for StaleIntervals intervals
	StateFailing    = "failing"    // its last apply failed or was refused
	StateBehind     = "behind"     // its applied serial is below the current one
	StateUnready    = "unready"    // reporting and current, but not ready
)

// Snapshot is the fleet at one moment, as `fleet status --json` prints it
// and `fleet serve` answers /api/fleet.
type Snapshot struct {
	Schema      int       `json:"schema"`
	GeneratedAt time.Time `json:"generated_at"`
	Topology    string    `json:"topology"` // where the document came from
	Serial      int64     `json:"serial"`   // the current document's serial
	Reports     string    `json:"reports"`  // the reports prefix
	// ReportInterval is the agents' --report-interval the staleness is
	// judged by; StaleAfter is StaleIntervals of it.
	ReportIntervalSeconds float64 `json:"report_interval_seconds"`
	StaleAfterSeconds     float64 `json:"stale_after_seconds"`

	Nodes []Node `json:"nodes"`
	// BadReports are objects under the prefix that are not usable
	// reports: corrupt, another schema, foreign, unreadable.
	BadReports []BadReport `json:"bad_reports,omitempty"`
	Summary    Summary     `json:"summary"`
	// Rollout is the staged rollout of the current serial; nil when it
	// was published all at once. RolloutError says why its rollout
	// object could not be read.
	Rollout      *Rollout `json:"rollout,omitempty"`
	RolloutError string   `json:"rollout_error,omitempty"`
}

// Node is one row: a node of the topology, a node that reported, or both.
type Node struct {
	// ID identifies the row: the instance id, else the node name.
	ID         string   `json:"id"`
	Name       string   `json:"name,omitempty"`        // name in the topology's nodes
	InstanceID string   `json:"instance_id,omitempty"` // from the report or the topology
	Role       string   `json:"role,omitempty"`
	Products   []string `json:"products,omitempty"`
	AZ         string   `json:"az,omitempty"`
	IP         string   `json:"ip,omitempty"`
	Group      string   `json:"group,omitempty"`

	State string `json:"state"` // State*
	// Flags are every mark that applies (a node can be stale and behind):
	// missing, unknown, terminated, draining, stale, behind, failing,
	// unready.
	Flags []string `json:"flags,omitempty"`
	// Live: a fresh report from a node that is not draining or
	// terminated. Only live nodes count towards convergence and the AZ
	// matrix.
	Live bool `json:"live"`
	// Converged: live, current serial applied, ready.
	Converged bool `json:"converged"`
	// Listed: the node is in the topology's nodes; Unknown: it reported
	// but is neither listed nor in a group of the topology.
	Listed  bool `json:"listed"`
	Unknown bool `json:"unknown,omitempty"`

	// AgeSeconds is the time since the report was written (S3's
	// LastModified), -1 when there is none.
	AgeSeconds float64        `json:"age_seconds"`
	Report     *report.Report `json:"report,omitempty"`
}

// BadReport is an object under the prefix that is not a usable report.
type BadReport struct {
	Key        string `json:"key"`
	InstanceID string `json:"instance_id,omitempty"`
	Kind       string `json:"kind"` // corrupt, schema, foreign, unreadable
	Error      string `json:"error"`
}

// Summary is the fleet at a glance.
type Summary struct {
	Nodes      int `json:"nodes"` // rows
	Live       int `json:"live"`
	Ready      int `json:"ready"` // live and ready
	Missing    int `json:"missing"`
	Stale      int `json:"stale"`
	Behind     int `json:"behind"`
	Failing    int `json:"failing"`
	Terminated int `json:"terminated"`
	Unknown    int `json:"unknown"`
	BadReports int `json:"bad_reports"`
	// OnCurrent counts live nodes with the current serial applied;
	// CurrentShare is OnCurrent / Live (0 when nothing is live).
	OnCurrent    int     `json:"on_current"`
	CurrentShare float64 `json:"current_share"`
	// Converged: at least one live node, and every live node converged.
	Converged bool `json:"converged"`
	// Laggards are the IDs of live nodes that are not converged.
	Laggards []string `json:"laggards,omitempty"`

	AZs   []string  `json:"azs"`   // every AZ of a live node, sorted
	Roles []RoleAZs `json:"roles"` // roles × AZs, live nodes only
	// Imbalanced lists the roles whose live nodes are unevenly spread.
	Imbalanced []string `json:"imbalanced,omitempty"`
}

// RoleAZs is one row of the roles × AZs matrix.
type RoleAZs struct {
	Role  string         `json:"role"`
	PerAZ map[string]int `json:"per_az"` // every AZ of Summary.AZs, zeros included
	Ready map[string]int `json:"ready"`  // of those, ready
	Total int            `json:"total"`
	// Imbalanced: the busiest and the emptiest AZ differ by more than one
	// node. Note says so in words.
	Imbalanced bool   `json:"imbalanced"`
	Note       string `json:"note,omitempty"`
}

// Input is what Build joins.
type Input struct {
	Topology     *nodeagent.Topology
	TopologyFrom string
	Entries      []report.Entry
	Now          time.Time
	// ReportInterval is the agents' --report-interval; default
	// DefaultReportInterval.
	ReportInterval time.Duration
	// Rollout is the rollout object of the current serial (RolloutURL
	// where it lives); nil when there is none.
	Rollout    *rollout.Rollout
	RolloutURL string
}

// Build joins the topology and the report entries into a Snapshot. Every
// listed node is a row (missing when it has no report), every usable
// report is a row (unknown when its node is neither listed nor in one of
// the topology's groups), every unusable object a BadReport.
func Build(in Input) *Snapshot {
	iv := in.ReportInterval
	if iv <= 0 {
		iv = DefaultReportInterval
	}
	staleAfter := StaleIntervals * iv
	t := in.Topology
	s := &Snapshot{
		Schema:                SnapshotSchema,
		GeneratedAt:           in.Now.UTC(),
		Topology:              in.TopologyFrom,
		Serial:                t.Serial,
		ReportIntervalSeconds: iv.Seconds(),
		StaleAfterSeconds:     staleAfter.Seconds(),
		Nodes:                 []Node{},
	}
	if t.Fleet != nil {
		s.Reports = t.Fleet.Reports
	}

	// Listed nodes by instance id, to join their reports.
	byInstance := map[string]string{}
	for name, n := range t.Nodes {
		if n.InstanceID != "" {
			byInstance[n.InstanceID] = name
		}
	}
	reported := map[string]bool{} // node names that reported
	for _, e := range in.Entries {
		if e.Err != nil || e.Report == nil {
			s.BadReports = append(s.BadReports, BadReport{Key: e.Key, InstanceID: e.InstanceID, Kind: report.Kind(e.Err), Error: errText(e.Err)})
			continue
		}
		r := e.Report
		n := Node{ID: r.InstanceID, InstanceID: r.InstanceID, Name: r.Name, Role: r.Role, Products: r.Products,
			AZ: r.AZ, IP: r.PrivateIP, Group: r.Group, Report: r}
		if name, ok := byInstance[r.InstanceID]; ok {
			n.Name = name
		}
		if tn, ok := t.Nodes[n.Name]; ok && n.Name != "" && (tn.InstanceID == "" || tn.InstanceID == r.InstanceID) {
			n.Listed = true
			reported[n.Name] = true
			n.AZ = cmp.Or(n.AZ, tn.AZ)
			n.IP = cmp.Or(n.IP, tn.IP)
		} else {
			n.Name = ""
			if _, ok := t.Groups[r.Group]; !ok || r.Group == "" {
				n.Unknown = true
			}
		}
		n.AgeSeconds = max(0, in.Now.Sub(cmp.Or(e.LastModified, r.ReportedAt)).Seconds())
		judge(&n, t.Serial, staleAfter)
		s.Nodes = append(s.Nodes, n)
	}
	for _, name := range slices.Sorted(maps.Keys(t.Nodes)) {
		if reported[name] {
			continue
		}
		tn := t.Nodes[name]
		n := Node{ID: cmp.Or(tn.InstanceID, name), Name: name, InstanceID: tn.InstanceID, Role: tn.Role,
			Products: rolesProducts(t, tn.Role), AZ: tn.AZ, IP: tn.IP, Listed: true, AgeSeconds: -1}
		judge(&n, t.Serial, staleAfter)
		s.Nodes = append(s.Nodes, n)
	}
	slices.SortFunc(s.Nodes, func(a, b Node) int {
		return cmp.Or(cmp.Compare(a.Role, b.Role), cmp.Compare(a.AZ, b.AZ), cmp.Compare(unnamed(a), unnamed(b)),
			cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	s.Summary = summarize(s)
	if in.Rollout != nil {
		s.Rollout = rolloutView(s, in.Rollout, in.RolloutURL, in.Now)
	}
	return s
}

// unnamed sorts listed nodes before those found through a group.
func unnamed(n Node) int {
	if n.Name == "" {
		return 1
	}
	return 0
}

func rolesProducts(t *nodeagent.Topology, role string) []string {
	if r, ok := t.Roles[role]; ok {
		return r.Products
	}
	return nil
}

func errText(err error) string {
	if err == nil {
		return "no report"
	}
	return err.Error()
}

// judge sets a row's flags, state, liveness and convergence.
func judge(n *Node, serial int64, staleAfter time.Duration) {
	r := n.Report
	flag := func(f string) { n.Flags = append(n.Flags, f) }
	if r == nil {
		flag(StateMissing)
		n.State = StateMissing
		return
	}
	if n.Unknown {
		flag("unknown")
	}
	if r.Terminated {
		// Its instance is gone or going: nothing else about it matters.
		flag(StateTerminated)
		n.State = StateTerminated
		return
	}
	stale := n.AgeSeconds > staleAfter.Seconds()
	if r.Draining {
		flag(StateDraining)
	}
	if stale {
		flag(StateStale)
	}
	behind := r.SerialApplied < serial
	if behind {
		flag(StateBehind)
	}
	failing := r.LastApply != nil && r.LastApply.Result != report.ResultOK
	if failing {
		flag(StateFailing)
	}
	if !r.Ready && !r.Draining {
		flag(StateUnready)
	}
	n.Live = !stale && !r.Draining
	n.Converged = n.Live && !behind && r.Ready
	n.State = StateOK
	for _, st := range []string{StateTerminated, StateDraining, StateStale, StateFailing, StateBehind, StateUnready} {
		if slices.Contains(n.Flags, st) {
			n.State = st
			break
		}
	}
}

func summarize(s *Snapshot) Summary {
	sum := Summary{Nodes: len(s.Nodes), BadReports: len(s.BadReports), AZs: []string{}, Roles: []RoleAZs{}}
	roles := map[string]*RoleAZs{}
	azs := map[string]bool{}
	for _, n := range s.Nodes {
		for _, f := range n.Flags {
			switch f {
			case StateMissing:
				sum.Missing++
			case StateStale:
				sum.Stale++
			case StateBehind:
				sum.Behind++
			case StateFailing:
				sum.Failing++
			case StateTerminated:
				sum.Terminated++
			case "unknown":
				sum.Unknown++
			}
		}
		if !n.Live {
			continue
		}
		sum.Live++
		if n.Report.Ready {
			sum.Ready++
		}
		if n.Report.SerialApplied >= s.Serial {
			sum.OnCurrent++
		}
		if !n.Converged {
			sum.Laggards = append(sum.Laggards, n.ID)
		}
		az := cmp.Or(n.AZ, "?")
		azs[az] = true
		r := roles[n.Role]
		if r == nil {
			r = &RoleAZs{Role: n.Role, PerAZ: map[string]int{}, Ready: map[string]int{}}
			roles[n.Role] = r
		}
		r.PerAZ[az]++
		r.Total++
		if n.Report.Ready {
			r.Ready[az]++
		}
	}
	if sum.Live > 0 {
		sum.CurrentShare = float64(sum.OnCurrent) / float64(sum.Live)
	}
	sum.Converged = sum.Live > 0 && len(sum.Laggards) == 0
	sum.AZs = slices.Sorted(maps.Keys(azs))
	for _, name := range slices.Sorted(maps.Keys(roles)) {
		r := roles[name]
		lo, hi, loAZ, hiAZ := -1, -1, "", ""
		for _, az := range sum.AZs {
			c := r.PerAZ[az]
			r.PerAZ[az] = c // zeros included
			r.Ready[az] += 0
			if lo < 0 || c < lo {
				lo, loAZ = c, az
			}
			if c > hi {
				hi, hiAZ = c, az
			}
		}
		if hi-lo > 1 {
			r.Imbalanced = true
			r.Note = fmt.Sprintf("%d in %s, %d in %s", hi, hiAZ, lo, loAZ)
			sum.Imbalanced = append(sum.Imbalanced, name)
		}
		sum.Roles = append(sum.Roles, *r)
	}
	return sum
}

// Reader fetches the current topology document; a source.New source
// is one.
type Reader interface {
	Fetch(ctx context.Context, etag string) (nodeagent.Fetched, error)
	String() string
}

// LoadInput is what Load reads.
type LoadInput struct {
	Topology Reader
	Reports  *report.Client
	// ReportInterval is the agents' --report-interval.
	ReportInterval time.Duration
	Now            func() time.Time
}

// ErrNoReports means the topology names no reports prefix.
var ErrNoReports = errors.New(`the topology has no fleet.reports: add "fleet": {"reports": "s3://bucket/prefix/"} and publish it`)

// Load fetches the topology, validates it as an apply would, reads every
// report under its fleet.reports prefix, and builds the Snapshot.
func Load(ctx context.Context, in LoadInput) (*Snapshot, error) {
	return NewLoader(in).Load(ctx)
}

// Loader loads snapshots again and again at little cost: the topology
// with a conditional GET, the reports with one LIST and a GET only for
// the reports that changed (report.Client.ReadCached). It is safe for
// concurrent use; loads run one at a time.
type Loader struct {
	in LoadInput

	mu      sync.Mutex
	etag    string
	digest  string // of the topology document, to match its rollout object
	rr      rolloutReader
	top     *nodeagent.Topology
	entries []report.Entry
	loc     report.Location
}

// NewLoader returns a Loader reading what in names.
func NewLoader(in LoadInput) *Loader { return &Loader{in: in} }

// Load builds a Snapshot of the fleet now.
func (l *Loader) Load(ctx context.Context) (*Snapshot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	name := l.in.Topology.String()
	f, err := l.in.Topology.Fetch(ctx, l.etag)
	if err != nil {
		return nil, fmt.Errorf("fetch topology: %w", err)
	}
	if !f.NotModified || l.top == nil {
		t, err := topology.Load(f.Body, name, f.Format)
		if err != nil {
			return nil, err
		}
		if t.Fleet == nil || t.Fleet.Reports == "" {
			return nil, fmt.Errorf("topology %s: %w", name, ErrNoReports)
		}
		loc, err := report.ParseLocation(t.Fleet.Reports)
		if err != nil {
			return nil, err
		}
		if loc != l.loc {
			l.entries = nil
		}
		l.top, l.etag, l.loc, l.digest = t, f.ETag, loc, rollout.Digest(f.Body)
	}
	ro, roURL, roErr := l.rr.read(ctx, l.in.Topology, l.top.Serial, l.digest)
	entries, err := l.in.Reports.ReadCached(ctx, l.loc, l.entries)
	if err != nil {
		return nil, err
	}
	l.entries = entries
	now := time.Now
	if l.in.Now != nil {
		now = l.in.Now
	}
	s := Build(Input{Topology: l.top, TopologyFrom: name, Entries: entries, Now: now(), ReportInterval: l.in.ReportInterval,
		Rollout: ro, RolloutURL: roURL})
	if roErr != nil {
		s.RolloutError = roErr.Error()
	}
	return s, nil
}
