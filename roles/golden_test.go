package roles_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/roles"
	"github.com/nodeagent/nodeagent/topology"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/<case>/")

// goldenCase is testdata/<case>/case.json: what a case sets beyond the
// topology and the instance.
type goldenCase struct {
	ServiceRoot string              `json:"service_root"`
	StateDir    string              `json:"state_dir"`
	Overrides   nodeagent.Overrides `json:"overrides"`
}

// goldenFile is one file's metadata in expected.json.
type goldenFile struct {
	Path     string   `json:"path"`
	Mode     string   `json:"mode"`
	Owner    string   `json:"owner"`
	Group    string   `json:"group"`
	Services []string `json:"services,omitempty"`
	Sources  []string `json:"sources,omitempty"`
}

// golden is testdata/<case>/expected.json: everything Desire returns but
// the file contents, which are under expected/<host path>.
type golden struct {
	Identity nodeagent.Identity         `json:"identity"`
	Hosts    []string                   `json:"hosts"`
	Services []nodeagent.Service        `json:"services"`
	Products []nodeagent.DesiredProduct `json:"products"`
	Local    nodeagent.LocalEndpoints   `json:"local"`
	WebUser  string                     `json:"web_user,omitempty"`
	WebGroup string                     `json:"web_group,omitempty"`
	Files    []goldenFile               `json:"files"`
}

// loadInput builds the Input of a case directory through the real
// pipeline: topology.Load (strict decode, validation, defaults) and
// topology.Resolve.
func loadInput(t *testing.T, dir string) roles.Input {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(dir, "topology.json"))
	if err != nil {
		t.Fatal(err)
	}
	topo, err := topology.Load(doc, "topology.json", nodeagent.FormatOf("topology.json"))
	if err != nil {
		t.Fatal(err)
	}
	var inst nodeagent.Instance
	readJSON(t, filepath.Join(dir, "instance.json"), &inst, false)
	c := goldenCase{ServiceRoot: "/", StateDir: "/var/lib/nodeagent"}
	readJSON(t, filepath.Join(dir, "case.json"), &c, true)
	id, err := topology.Resolve(topo, inst, c.Overrides)
	if err != nil {
		t.Fatal(err)
	}
	return roles.Input{Instance: inst, Topology: topo, Identity: id, ServiceRoot: c.ServiceRoot, StateDir: c.StateDir}
}

func readJSON(t *testing.T, file string, v any, optional bool) {
	t.Helper()
	b, err := os.ReadFile(file)
	if optional && os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func summarize(d *nodeagent.Desired) golden {
	g := golden{Identity: d.Identity, Services: d.Services, Products: d.Products, Local: d.Local, WebUser: d.WebUser, WebGroup: d.WebGroup}
	for _, h := range d.Hosts {
		g.Hosts = append(g.Hosts, h.IP+" "+strings.Join(h.Names, " "))
	}
	for _, f := range d.Files {
		g.Files = append(g.Files, goldenFile{
			Path: f.Path, Mode: fmt.Sprintf("%04o", f.Mode.Perm()), Owner: orRoot(f.Owner), Group: orRoot(f.Group),
			Services: f.Services, Sources: f.Sources,
		})
	}
	return g
}

func orRoot(s string) string {
	if s == "" {
		return "root"
	}
	return s
}

func TestGolden(t *testing.T) {
	cases, err := filepath.Glob("testdata/*/topology.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 7 {
		t.Fatalf("found %d golden cases, want at least 7", len(cases))
	}
	for _, c := range cases {
		dir := filepath.Dir(c)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			d, err := roles.Desire(loadInput(t, dir))
			if err != nil {
				t.Fatal(err)
			}
			got := summarize(d)
			expectedDir := filepath.Join(dir, "expected")
			if *update {
				writeGolden(t, dir, got, d.Files)
			}

			var want golden
			readJSON(t, filepath.Join(dir, "expected.json"), &want, false)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("expected.json mismatch (-want +got):\n%s", diff)
			}
			produced := map[string]bool{}
			for _, f := range d.Files {
				produced[f.Path] = true
				wantContent, err := os.ReadFile(filepath.Join(expectedDir, filepath.FromSlash(f.Path)))
				if err != nil {
					t.Errorf("%s: no golden content (run go test -update): %v", f.Path, err)
					continue
				}
				if diff := cmp.Diff(string(wantContent), string(f.Content)); diff != "" {
					t.Errorf("%s content mismatch (-want +got):\n%s", f.Path, diff)
				}
			}
			err = filepath.WalkDir(expectedDir, func(p string, e fs.DirEntry, err error) error {
				if err != nil || e.IsDir() {
					return err
				}
				rel, _ := filepath.Rel(expectedDir, p)
				if host := "/" + filepath.ToSlash(rel); !produced[host] {
					t.Errorf("golden file %s is no longer produced", host)
				}
				return nil
			})
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
		})
	}
}

func writeGolden(t *testing.T, dir string, g golden, files []nodeagent.File) {
	t.Helper()
	expectedDir := filepath.Join(dir, "expected")
	if err := os.RemoveAll(expectedDir); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		p := filepath.Join(expectedDir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "expected.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDeterministic derives every golden case twice and wants identical
// bytes, in the same order.
func TestDeterministic(t *testing.T) {
	cases, _ := filepath.Glob("testdata/*/topology.json")
	for _, c := range cases {
		dir := filepath.Dir(c)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			first, err := roles.Desire(loadInput(t, dir))
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				again, err := roles.Desire(loadInput(t, dir))
				if err != nil {
					t.Fatal(err)
				}
				if !slices.EqualFunc(first.Files, again.Files, func(a, b nodeagent.File) bool {
					return a.Path == b.Path && bytes.Equal(a.Content, b.Content)
				}) {
					t.Fatal("two derivations of the same input differ")
				}
			}
		})
	}
}
