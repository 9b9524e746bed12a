package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// EndToEnd is what the end-to-end runs (e2e_bench_test.go) record for
// cmd/benchreport.
type EndToEnd struct {
	Date     time.Time  `json:"date"`
	NoChange []NoChange `json:"no_change"`
	Boots    []Boot     `json:"boots"`
	// Cold is the cold-apply series on the converged web node; nil in
	// figures recorded before it existed.
	Cold *Cold `json:"cold_apply,omitempty"`
	// TransferMS is the median time to GET the release archive from MinIO
	// with the S3 SDK and discard it: the transfer share of a boot.
	TransferMS float64 `json:"transfer_ms"`
	ReleaseMB  float64 `json:"release_mb"`
	// Floor is `nodeagent version` run as many times as a no-change
	// series: the cost of starting the process at all.
	Floor    Summary `json:"floor_wall_ms"`
	FloorCPU Summary `json:"floor_cpu_ms"`
	// Settle is how long the no-change series waited for the services to
	// finish their own start-up ("20s").
	Settle string `json:"settle,omitempty"`
	// LoadBefore and LoadAfter are /proc/loadavg around the runs: the
	// machine is shared, and its load is part of every figure.
	LoadBefore string `json:"load_before"`
	LoadAfter  string `json:"load_after"`
}

// NoChange is a series of applies on a node that is already converged.
type NoChange struct {
	Node    string  `json:"node"`    // "db", "cache", "web"
	Source  string  `json:"source"`  // "file://" or "s3://"
	Command string  `json:"command"` // the exact command line, less the node's paths
	Runs    int     `json:"runs"`
	Wall    Summary `json:"wall_ms"`
	// CPU is the agent process's user+system time (its children included).
	CPU Summary `json:"cpu_ms"`
	// Floor is `nodeagent version`, run once after each apply of the
	// series: the process floor in the same minutes as the series.
	Floor Summary `json:"floor_wall_ms,omitzero"`
	// Steps are the medians of the phases of each run (see Boot.Phases), in
	// the order the agent logged them.
	Steps []Phase `json:"steps_ms,omitempty"`
	// ServiceCommands and ConfigChecks count the start, stop, reload and
	// restart commands and the apache2ctl -t / php-fpm -t runs during the
	// series (each one is a line its wrapper appended).
	ServiceCommands int `json:"service_commands"`
	ConfigChecks    int `json:"config_checks"`
	// HostWrites are the paths under the node root, outside the agent's
	// state dir and the services' own run and log dirs, whose inode, mtime
	// or size changed over the series, or that appeared or vanished.
	HostWrites []string `json:"host_writes"`
	// StateWrites are such paths in the agent's state dir.
	StateWrites []string `json:"state_writes"`
	// ServiceWrites are such paths in the services' run and log dirs
	// (pid files, access logs written while smoke checks ran).
	ServiceWrites []string `json:"service_writes"`
	// Traced are the paths one traced apply opened for writing, created,
	// renamed or removed (strace -f), when strace is installed.
	Traced []string `json:"traced,omitempty"`
}

// Boot is one boot to ready of a fresh web node.
type Boot struct {
	WallMS float64 `json:"wall_ms"`
	CPUMS  float64 `json:"cpu_ms"` // the agent's user+system time, children included
	// Phases are measured from the agent's JSON log: "discover" (process
	// start to "discovered instance"), "fetch+plan" (to the start of the
	// first step), then every "step done" duration in the order logged
	// ("files", "download shop", "activate shop", "smoke", "record"), and
	// "exit" (after the last step to process exit, the launch hook
	// included).
	Phases []Phase `json:"phases_ms"`
	// ServiceMS is the time spent in service start/reload commands,
	// ChecksMS in apache2ctl -t / php-fpm -t.
	ServiceMS float64 `json:"service_ms"`
	ChecksMS  float64 `json:"checks_ms"`
	Services  int     `json:"service_commands"`
	Checks    int     `json:"config_checks"`
	// Ready says the apply ended with the node ready.
	Ready bool `json:"ready"`
	// Hook is the launch hook result the Auto Scaling endpoint recorded.
	Hook string `json:"hook"`
}

// Cold is a series of cold applies of the converged web node: before each
// run the harness removes the config files the agent created when it
// booted the node (every rendered file under /etc that its boot logged as
// "new file"), so the apply renders and writes each of them again, checks
// the Apache and PHP-FPM trees, reloads both services and runs the smoke
// checks. Beside it, the two config checks run by the harness alone.
// During the series the counting wrappers only count (no timing processes
// of their own to charge to the agent).
type Cold struct {
	Command string `json:"command"` // the exact command line, less the node's paths
	Runs    int    `json:"runs"`
	// Removed are the files removed before each run (host paths); the
	// agent wrote exactly these again in every run.
	Removed []string `json:"removed"`
	// ThroughChecks is process start (the harness's exec) to the last
	// "config check passed" record: the moment the agent may touch the
	// services. Issue 12's cold-apply target is judged on it.
	ThroughChecks Summary `json:"through_checks_ms"`
	// Wall is the whole apply, process start to exit; CPU its user+system
	// time, the checks, wrappers and reload commands it waited for
	// included.
	Wall Summary `json:"wall_ms"`
	CPU  Summary `json:"cpu_ms"`
	// Phases split each run by the agent's JSON log (see ColdMarks).
	Phases []PhaseSummary `json:"phases_ms"`
	// Counted over the whole series, from the wrappers' log: config checks,
	// reloads, starts, and any other service command (stop, restart).
	Checks        int `json:"config_checks"`
	Reloads       int `json:"reloads"`
	Starts        int `json:"starts"`
	OtherCommands int `json:"other_service_commands"`
	// SmokePassed counts the runs whose smoke checks all passed and that
	// ended with the node ready; SmokeAttempts is, per run, the most
	// attempts a smoke check took (retried with backoff while the reloaded
	// services come back).
	SmokePassed   int     `json:"smoke_passed"`
	SmokeAttempts Summary `json:"smoke_attempts"`
	// ChecksAlone are the two config checks run by the harness with the
	// agent's own Checker (same argv and extra environment, on the same
	// node root, right after each apply): each alone, both one after the
	// other, both at once, and both at once through the counting wrappers
	// (count only) as the agent's runs go.
	ChecksAlone []CheckTiming `json:"checks_alone"`
}

// CheckTiming is a config check (or a pair of them) run by the harness.
type CheckTiming struct {
	Name    string  `json:"name"`
	Command string  `json:"command"`
	Wall    Summary `json:"wall_ms"`
	// CPU is the user+system time of the programs (their children
	// included), summed over both for a pair.
	CPU Summary `json:"cpu_ms"`
}

// PhaseSummary is the distribution of one phase over a series. Part marks
// a part of the phase listed before it (not counted again in a total).
type PhaseSummary struct {
	Name string `json:"name"`
	Part bool   `json:"part,omitempty"`
	Summary
}

// ColdMarks are the moments of one cold apply: Start and End are the
// harness's exec and wait, the rest come from the agent's JSON log.
type ColdMarks struct {
	Start        time.Time
	Discovered   time.Time // "discovered instance"
	FilesStart   time.Time // start of the "files" step ("step done" less its duration)
	FirstWrite   time.Time // first "wrote file"
	LastWrite    time.Time // last "wrote file"
	ChecksPassed time.Time // last "config check passed"
	FilesDone    time.Time // "step done" of "files": the reloads are done
	SmokeDone    time.Time // "step done" of "smoke"
	ApplyDone    time.Time // "apply done"
	End          time.Time
}

// Phase names of a cold apply, in order; the three parts of the first
// follow it.
const (
	ColdUpToFirstWrite = "agent up to the first file written"
	ColdDiscover       = "discover"
	ColdFetchPlan      = "fetch+plan"
	ColdJournal        = "journal and the first write"
	ColdWrite          = "writing the other files"
	ColdChecks         = "config checks (both at once)"
	ColdReloads        = "service reloads"
	ColdSmoke          = "smoke checks"
	ColdRecord         = "record"
	ColdExit           = "exit"
)

// Check returns an error naming the first mark missing or out of order.
func (m ColdMarks) Check() error {
	marks := []struct {
		name string
		t    time.Time
	}{
		{"process start", m.Start}, {`"discovered instance"`, m.Discovered}, {`start of step "files"`, m.FilesStart},
		{`first "wrote file"`, m.FirstWrite}, {`last "wrote file"`, m.LastWrite}, {`"config check passed"`, m.ChecksPassed},
		{`step "files" done`, m.FilesDone}, {`step "smoke" done`, m.SmokeDone}, {`"apply done"`, m.ApplyDone}, {"process exit", m.End},
	}
	for i, k := range marks {
		if k.t.IsZero() {
			return fmt.Errorf("cold apply: no %s in the agent's log", k.name)
		}
		if i > 0 && k.t.Before(marks[i-1].t) {
			return fmt.Errorf("cold apply: %s (%s) before %s (%s)", k.name, k.t.Format(time.RFC3339Nano), marks[i-1].name, marks[i-1].t.Format(time.RFC3339Nano))
		}
	}
	return nil
}

// ThroughChecksMS is process start to the last "config check passed".
func (m ColdMarks) ThroughChecksMS() float64 { return msBetween(m.Start, m.ChecksPassed) }

// Phases splits the run between consecutive marks: the phases that are
// not parts (ColdPart) add up to the wall time.
func (m ColdMarks) Phases() []Phase {
	p := func(name string, from, to time.Time) Phase { return Phase{Name: name, MS: msBetween(from, to)} }
	return []Phase{
		p(ColdUpToFirstWrite, m.Start, m.FirstWrite),
		p(ColdDiscover, m.Start, m.Discovered),
		p(ColdFetchPlan, m.Discovered, m.FilesStart),
		p(ColdJournal, m.FilesStart, m.FirstWrite),
		p(ColdWrite, m.FirstWrite, m.LastWrite),
		p(ColdChecks, m.LastWrite, m.ChecksPassed),
		p(ColdReloads, m.ChecksPassed, m.FilesDone),
		p(ColdSmoke, m.FilesDone, m.SmokeDone),
		p(ColdRecord, m.SmokeDone, m.ApplyDone),
		p(ColdExit, m.ApplyDone, m.End),
	}
}

// ColdPart says whether a cold-apply phase is a part of
// ColdUpToFirstWrite rather than a phase of its own.
func ColdPart(name string) bool {
	return name == ColdDiscover || name == ColdFetchPlan || name == ColdJournal
}

func msBetween(from, to time.Time) float64 { return float64(to.Sub(from).Microseconds()) / 1000 }

// SummarizeColdPhases returns, per phase name, the distribution over runs,
// in the order the names first appear, with ColdPart's parts marked.
func SummarizeColdPhases(runs [][]Phase) []PhaseSummary {
	order, byName := phaseDurations(runs)
	out := make([]PhaseSummary, 0, len(order))
	for _, n := range order {
		out = append(out, PhaseSummary{Name: n, Part: ColdPart(n), Summary: Summarize(byName[n])})
	}
	return out
}

// Phase is one named part of an apply and its duration.
type Phase struct {
	Name string  `json:"name"`
	MS   float64 `json:"ms"`
}

// AgentMS is the agent's own share of a boot: the wall time less service
// commands, config checks and the archive transfer.
func (b Boot) AgentMS(transferMS float64) float64 {
	return b.WallMS - b.ServiceMS - b.ChecksMS - transferMS
}

// ReleaseMS is the time of the release steps ("download <product>",
// "release <product>"): transfer, sha256 and extraction together.
func (b Boot) ReleaseMS() float64 {
	var ms float64
	for _, p := range b.Phases {
		if strings.HasPrefix(p.Name, "download ") || strings.HasPrefix(p.Name, "release ") {
			ms += p.MS
		}
	}
	return ms
}

// MedianPhases returns, per phase name, the median duration over runs, in
// the order the names first appear.
func MedianPhases(runs [][]Phase) []Phase {
	order, byName := phaseDurations(runs)
	out := make([]Phase, 0, len(order))
	for _, n := range order {
		out = append(out, Phase{Name: n, MS: Median(byName[n])})
	}
	return out
}

// Summary is the distribution of a series of timings, in milliseconds.
type Summary struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	P90    float64 `json:"p90"`
}

// Summarize returns the median, minimum, maximum and 90th percentile of
// xs (nearest rank); the zero Summary for none.
func Summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return Summary{Median: Median(s), Min: s[0], Max: s[len(s)-1], P90: s[(len(s)*9+9)/10-1]}
}

// Median is the median of xs (the mean of the middle two for an even
// count); 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// WriteJSON writes v to path, indented.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: encode %s: %w", path, err)
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadJSON reads path into v.
func ReadJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("bench: decode %s: %w", path, err)
	}
	return nil
}

// phaseDurations gathers each phase's durations over runs, and the phase
// names in the order they first appear.
func phaseDurations(runs [][]Phase) (order []string, byName map[string][]float64) {
	byName = map[string][]float64{}
	for _, run := range runs {
		for _, p := range run {
			if _, ok := byName[p.Name]; !ok {
				order = append(order, p.Name)
			}
			byName[p.Name] = append(byName[p.Name], p.MS)
		}
	}
	return order, byName
}
