package bench

import (
	"context"
	"fmt"
	"os"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/hostfs"
	"github.com/nodeagent/nodeagent/plan"
	"github.com/nodeagent/nodeagent/roles"
	"github.com/nodeagent/nodeagent/topology"
)

// PlanInput is one run of the planning pipeline.
type PlanInput struct {
	Body     []byte             // the topology document
	Name     string             // its name, for messages ("fleet.json")
	Instance nodeagent.Instance // the node being planned
	Root     string             // the host root plan.Build reads
	// Services answers plan.Build's "is it running"; nil means every
	// service runs (AllActive).
	Services nodeagent.ServiceManager
}

// PlanResult is what the pipeline produced.
type PlanResult struct {
	Desired *nodeagent.Desired
	Plan    *nodeagent.Plan
}

// Plan runs what an apply does before it changes anything, as the agent
// does it: topology.Load (decode strictly, validate, defaults),
// topology.Resolve, roles.Desire (render every file) and plan.Build (read
// the root, diff, reasons).
func Plan(ctx context.Context, in PlanInput) (PlanResult, error) {
	t, err := topology.Load(in.Body, in.Name, nodeagent.FormatOf(in.Name))
	if err != nil {
		return PlanResult{}, fmt.Errorf("bench: load %s: %w", in.Name, err)
	}
	id, err := topology.Resolve(t, in.Instance, nodeagent.Overrides{})
	if err != nil {
		return PlanResult{}, fmt.Errorf("bench: resolve %s: %w", in.Instance.ID, err)
	}
	d, err := roles.Desire(roles.Input{
		Instance: in.Instance, Topology: t, Identity: id,
		ServiceRoot: "/", StateDir: hostfs.DefaultStateDir,
	})
	if err != nil {
		return PlanResult{}, fmt.Errorf("bench: desire for role %s: %w", id.Role, err)
	}
	svc := in.Services
	if svc == nil {
		svc = AllActive{}
	}
	p, err := plan.Build(ctx, plan.Input{
		Desired: d, Instance: in.Instance, FS: hostfs.FS{Root: in.Root},
		Services: svc, Serial: t.Serial,
	})
	if err != nil {
		return PlanResult{}, fmt.Errorf("bench: build plan for %s: %w", in.Instance.ID, err)
	}
	return PlanResult{Desired: d, Plan: p}, nil
}

// WriteFiles writes every file of p under root (atomically, with its mode
// and owner), so that the next Plan of the same document finds the root
// converged. Services are not touched.
func WriteFiles(root string, p *nodeagent.Plan) error {
	fsys := hostfs.FS{Root: root}
	for _, f := range p.Files {
		if err := fsys.WriteFile(f.Path, f.Content, hostfs.WriteOptions{Mode: f.Mode, Owner: f.Owner, Group: f.Group}); err != nil {
			return fmt.Errorf("bench: write %s: %w", f.Path, err)
		}
	}
	return nil
}

// AllActive is a service manager for planning only: every service runs,
// and it refuses to change anything.
type AllActive struct{}

var _ nodeagent.ServiceManager = AllActive{}

// Active reports every unit as running.
func (AllActive) Active(context.Context, string) (bool, error) { return true, nil }

// Start refuses: planning never starts a service.
func (AllActive) Start(_ context.Context, unit string) error { return errRefused("start", unit) }

// Reload refuses: planning never reloads a service.
func (AllActive) Reload(_ context.Context, unit string) error { return errRefused("reload", unit) }

// Restart refuses: planning never restarts a service.
func (AllActive) Restart(_ context.Context, unit string) error { return errRefused("restart", unit) }

func errRefused(action, unit string) error {
	return fmt.Errorf("bench: %s %s: the planning benchmark changes no service", action, unit)
}

// seedFiles are the host files a planning root starts with: the user
// databases owners are resolved in, and /etc/hosts to merge into.
var seedFiles = []string{"/etc/passwd", "/etc/group", "/etc/hosts"}

// SeedRoot copies this machine's /etc/passwd, /etc/group and /etc/hosts
// into dir, so that Plan and WriteFiles under dir resolve owners (www-data)
// and merge a real hosts file.
func SeedRoot(dir string) error {
	fsys := hostfs.FS{Root: dir}
	for _, p := range seedFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("bench: seed root: %w", err)
		}
		if err := fsys.WriteFile(p, b, hostfs.WriteOptions{Mode: 0o644}); err != nil {
			return fmt.Errorf("bench: seed root %s: %w", p, err)
		}
	}
	return nil
}
