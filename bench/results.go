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
	// TransferMS is the median time to GET the release archive from MinIO
	// with the S3 SDK and discard it: the transfer share of a boot.
	TransferMS float64 `json:"transfer_ms"`
	ReleaseMB  float64 `json:"release_mb"`
	// Floor is `nodeagent version` run as many times as a no-change
	// series: the cost of starting the process at all.
	Floor    Summary `json:"floor_wall_ms"`
	FloorCPU Summary `json:"floor_cpu_ms"`
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
	var order []string
	byName := map[string][]float64{}
	for _, run := range runs {
		for _, p := range run {
			if _, ok := byName[p.Name]; !ok {
				order = append(order, p.Name)
			}
			byName[p.Name] = append(byName[p.Name], p.MS)
		}
	}
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
