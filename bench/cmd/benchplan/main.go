// Command benchplan measures the planning pipeline of nodeagent in a
// process of its own, so that its peak RSS (VmHWM) is the pipeline's and
// nothing else's:
//
//	benchplan gen -o FILE                       write the 5,000-node, 200-product fleet
//	benchplan converge -topology FILE -root DIR -role ROLE
//	                                            seed DIR and write every planned file
//	benchplan plan -topology FILE -root DIR -role ROLE
//	                                            read FILE, plan once, print one JSON line
//
// The JSON line of plan holds the wall time of reading the document and
// planning (ms), the number of files planned, and VmHWM from
// /proc/self/status (kB) at the end.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nodeagent/nodeagent/bench"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchplan:", err)
		os.Exit(1)
	}
}

// Figure is what one plan run reports.
type Figure struct {
	Role      string  `json:"role"`
	Root      string  `json:"root"` // "fresh" or "converged"
	WallMS    float64 `json:"wall_ms"`
	Files     int     `json:"files"`
	PeakRSSKB int64   `json:"peak_rss_kb"`
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: benchplan gen|converge|plan [flags]")
	}
	fs := flag.NewFlagSet("benchplan "+args[0], flag.ContinueOnError)
	out := fs.String("o", "", "gen: file to write")
	topo := fs.String("topology", "", "topology document")
	root := fs.String("root", "", "host root to plan against")
	role := fs.String("role", bench.RoleAllProducts, "role of the planned web node")
	state := fs.String("state", "", "plan: label of the root (fresh, converged)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "gen":
		body, err := bench.Fleet(bench.DefaultFleet)
		if err != nil {
			return err
		}
		return os.WriteFile(*out, body, 0o644)
	case "converge":
		if err := bench.SeedRoot(*root); err != nil {
			return err
		}
		r, err := planOnce(ctx, *topo, *root, *role)
		if err != nil {
			return err
		}
		return bench.WriteFiles(*root, r.Plan)
	case "plan":
		start := time.Now()
		r, err := planOnce(ctx, *topo, *root, *role)
		if err != nil {
			return err
		}
		wall := time.Since(start)
		hwm, err := vmHWM()
		if err != nil {
			return err
		}
		return json.NewEncoder(stdout).Encode(Figure{Role: *role, Root: *state,
			WallMS: float64(wall.Microseconds()) / 1000, Files: len(r.Plan.Files), PeakRSSKB: hwm})
	}
	return fmt.Errorf("unknown command %q (want gen, converge or plan)", args[0])
}

func planOnce(ctx context.Context, topo, root, role string) (bench.PlanResult, error) {
	body, err := os.ReadFile(topo)
	if err != nil {
		return bench.PlanResult{}, err
	}
	inst, _, err := bench.WebNode(bench.DefaultFleet, role)
	if err != nil {
		return bench.PlanResult{}, err
	}
	return bench.Plan(ctx, bench.PlanInput{Body: body, Name: topo, Instance: inst, Root: root})
}

// vmHWM is the process's peak resident set size in kB.
func vmHWM() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}
