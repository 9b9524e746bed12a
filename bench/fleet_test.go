package bench_test

import (
	"context"
	"testing"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/bench"
	"github.com/nodeagent/nodeagent/topology"
)

func TestFleet(t *testing.T) {
	tests := []struct {
		name                string
		spec                bench.FleetSpec
		role                string
		wantNodes, wantProd int
		wantRoleProducts    int
	}{
		{"default fleet, node serving every product", bench.DefaultFleet, bench.RoleAllProducts, 5000, 200, 200},
		{"default fleet, node of a ten-product role", bench.DefaultFleet, "web-g07", 5000, 200, 10},
		{"small fleet, uneven last role", bench.FleetSpec{Nodes: 120, Products: 7, ProductsPerRole: 3}, "web-g02", 120, 7, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, err := bench.Fleet(tc.spec)
			if err != nil {
				t.Fatalf("Fleet: %v", err)
			}
			top, err := topology.Load(body, "fleet.json", nodeagent.FormatOf("fleet.json"))
			if err != nil {
				t.Fatalf("the generated fleet does not load: %v", err)
			}
			if len(top.Nodes) != tc.wantNodes || len(top.Products) != tc.wantProd {
				t.Errorf("got %d nodes and %d products, want %d and %d", len(top.Nodes), len(top.Products), tc.wantNodes, tc.wantProd)
			}
			inst, node, err := bench.WebNode(tc.spec, tc.role)
			if err != nil {
				t.Fatalf("WebNode: %v", err)
			}
			id, err := topology.Resolve(top, inst, nodeagent.Overrides{})
			if err != nil {
				t.Fatalf("Resolve %s: %v", inst.ID, err)
			}
			if id.Node != node || id.Role != tc.role || len(id.Products) != tc.wantRoleProducts {
				t.Errorf("resolved node %s role %s with %d products, want %s, %s, %d", id.Node, id.Role, len(id.Products), node, tc.role, tc.wantRoleProducts)
			}
		})
	}
}

func TestFleetRefusesImpossibleSpecs(t *testing.T) {
	tests := []struct {
		name string
		spec bench.FleetSpec
	}{
		{"no products", bench.FleetSpec{Nodes: 500, Products: 0, ProductsPerRole: 1}},
		{"too few nodes for the databases and caches", bench.FleetSpec{Nodes: 10, Products: 20, ProductsPerRole: 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := bench.Fleet(tc.spec); err == nil {
				t.Fatalf("Fleet(%+v) succeeded, want an error", tc.spec)
			}
		})
	}
}

// TestPlanConverges checks the pipeline the benchmarks time: a first plan
// on a fresh root writes files, and once they are written the same
// document plans nothing.
func TestPlanConverges(t *testing.T) {
	spec := bench.FleetSpec{Nodes: 300, Products: 12, ProductsPerRole: 4}
	body, err := bench.Fleet(spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{bench.RoleAllProducts, "web-g01"} {
		t.Run(role, func(t *testing.T) {
			inst, _, err := bench.WebNode(spec, role)
			if err != nil {
				t.Fatal(err)
			}
			root := t.TempDir()
			if err := bench.SeedRoot(root); err != nil {
				t.Fatal(err)
			}
			in := bench.PlanInput{Body: body, Name: "fleet.json", Instance: inst, Root: root}
			first, err := bench.Plan(context.Background(), in)
			if err != nil {
				t.Fatalf("first plan: %v", err)
			}
			// Every desired file plus the /etc/hosts block.
			if want := len(first.Desired.Files) + 1; len(first.Plan.Files) != want {
				t.Errorf("first plan has %d files, want %d", len(first.Plan.Files), want)
			}
			if err := bench.WriteFiles(root, first.Plan); err != nil {
				t.Fatal(err)
			}
			again, err := bench.Plan(context.Background(), in)
			if err != nil {
				t.Fatalf("second plan: %v", err)
			}
			if !again.Plan.Empty() {
				t.Errorf("second plan is not empty: %d files, %d services; first file %+v", len(again.Plan.Files), len(again.Plan.Services), again.Plan.Files)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want bench.Summary
	}{
		{"none", nil, bench.Summary{}},
		{"one", []float64{7}, bench.Summary{Median: 7, Min: 7, Max: 7, P90: 7}},
		{"odd count, unsorted", []float64{30, 10, 20}, bench.Summary{Median: 20, Min: 10, Max: 30, P90: 30}},
		{"even count takes the middle mean", []float64{4, 1, 3, 2}, bench.Summary{Median: 2.5, Min: 1, Max: 4, P90: 4}},
		{"ten values, p90 is the ninth", []float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, bench.Summary{Median: 5.5, Min: 1, Max: 10, P90: 9}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := bench.Summarize(tc.in); got != tc.want {
				t.Errorf("Summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}
