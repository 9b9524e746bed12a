package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/agent"
	"github.com/nodeagent/nodeagent/hostfs"
	"github.com/nodeagent/nodeagent/readiness"
	"github.com/nodeagent/nodeagent/release"
	"github.com/nodeagent/nodeagent/service"
	"github.com/nodeagent/nodeagent/topology"
)

// corpusDoc is one topology document of the test corpus.
type corpusDoc struct {
	name string // where it came from, with the extension Decode reads by
	body []byte
}

// corpus gathers every topology document the tests hold: the topology
// package's testdata, the roles golden cases, the demo, this package's
// agreement cases (the documents validate and apply used to disagree on,
// and hostile ones), and the seeds of every fuzz corpus under testdata/fuzz.
func corpus(t *testing.T) []corpusDoc {
	t.Helper()
	repo := filepath.Join("..", "..")
	var docs []corpusDoc
	for _, pattern := range []string{
		"topology/testdata/*.json", "topology/testdata/*.yaml",
		"roles/testdata/*/topology.json",
		"demo/example/topology.json",
		"cmd/nodeagent/testdata/agreement/*.json",
	} {
		files, err := filepath.Glob(filepath.Join(repo, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			docs = append(docs, corpusDoc{name: f, body: b})
		}
	}
	err := filepath.WalkDir(repo, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.Contains(filepath.ToSlash(p), "/testdata/fuzz/") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for i, v := range fuzzBytes(b) {
			docs = append(docs, corpusDoc{name: p + "#" + strconv.Itoa(i) + ".json", body: v})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// fuzzBytes returns the []byte values of a "go test fuzz v1" corpus file.
func fuzzBytes(file []byte) [][]byte {
	var out [][]byte
	for _, line := range strings.Split(string(file), "\n") {
		q, ok := strings.CutPrefix(line, "[]byte(")
		if !ok || !strings.HasSuffix(q, ")") {
			continue
		}
		if s, err := strconv.Unquote(strings.TrimSuffix(q, ")")); err == nil {
			out = append(out, []byte(s))
		}
	}
	return out
}

// TestValidateAgreesWithApply feeds every document of the test corpus to
// `nodeagent validate` and to apply's own checks before planning
// (agent.Prepare, which loads the document, resolves the node and derives
// and renders every file), as a node of every role of the document and
// as a web node serving every product: validate must call valid exactly
// what apply does not refuse (issue 11: they disagreed on health.path "/",
// the reserved env key DB_NAME and a name plus domain over 253 characters).
//
// The instance is a Debian node in an Auto Scaling group, not listed in
// nodes, with the longest instance id, so its own /etc/hosts name is as
// long as one can be. (On RHEL, apply also refuses apache.bind private on
// port 80, a fact of the node's image that a document cannot know.)
func TestValidateAgreesWithApply(t *testing.T) {
	docs := corpus(t)
	var valid, invalid int
	for _, d := range docs {
		t.Run(filepath.Base(d.name), func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "topology"+filepath.Ext(d.name))
			if err := os.WriteFile(file, d.body, 0o644); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			code := newCLI(&out, &errb, func(string) string { return "" }).Run(context.Background(), []string{"validate", file})
			if code != ExitOK && code != ExitFailed {
				t.Fatalf("validate exit %d\n%s%s", code, out.String(), errb.String())
			}
			validateOK := code == ExitOK
			applyErr := prePlan(t, d.body, file)
			switch {
			case validateOK && applyErr != nil:
				t.Errorf("validate says valid, apply refuses: %v", applyErr)
			case !validateOK && applyErr == nil:
				t.Errorf("validate says invalid, apply accepts:\n%s%s", out.String(), errb.String())
			case validateOK:
				valid++
			default:
				invalid++
			}
		})
	}
	// A corpus of only valid or only invalid documents proves nothing.
	if valid < 10 || invalid < 10 {
		t.Errorf("corpus of %d documents: %d valid, %d invalid; want at least 10 of each", len(docs), valid, invalid)
	}
}

// prePlan runs apply's checks before planning on body (agent.Prepare on an
// empty root) for every role of the document, and returns the first
// refusal.
func prePlan(t *testing.T, body []byte, name string) error {
	t.Helper()
	roles := []nodeagent.Overrides{{Role: "any"}}
	if top, err := topology.Load(body, name, nodeagent.FormatOf(name)); err == nil {
		roles = nil
		var all []string
		if len(top.Products) > 0 {
			all = slices.Sorted(maps.Keys(top.Products))
		}
		for _, r := range slices.Sorted(maps.Keys(top.Roles)) {
			roles = append(roles, nodeagent.Overrides{Role: r})
			svc := top.Roles[r].Services
			if len(all) > 0 && slices.Contains(svc, nodeagent.ServiceApache) && slices.Contains(svc, nodeagent.ServicePHPFPM) {
				roles = append(roles, nodeagent.Overrides{Role: r, Products: all})
			}
		}
	}
	inst := nodeagent.Instance{
		ID: "i-0fedcba9876543210", PrivateIP: "10.0.1.50", AZ: "us-east-1a", Region: "us-east-1",
		Type: "m6i.large", Group: "shop-web", MemoryBytes: 8 << 30,
		OSFamily: nodeagent.OSDebian, OSID: "debian", PHPVersion: "8.2",
	}
	for _, o := range roles {
		root := t.TempDir()
		cfg := agent.Config{Root: root, ServiceRoot: "/", StateDir: "/var/lib/nodeagent", Role: o.Role, Products: o.Products}
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		a := &agent.Agent{
			Config:    cfg,
			FS:        hostfs.FS{Root: root, StateDir: cfg.StateDir},
			Services:  service.None{},
			Releases:  &release.Manager{Root: root, Logger: log},
			Readiness: readiness.New(readiness.Options{}),
			Logger:    log,
		}
		_, err := a.Prepare(context.Background(), inst, agent.Document{Body: body, From: name, Format: nodeagent.FormatOf(name)})
		if err != nil {
			var refused *agent.RefusedError
			if !errors.As(err, &refused) {
				t.Fatalf("apply failed, not refused the document (role %s): %v", o.Role, err)
			}
			return err
		}
	}
	return nil
}

// TestValidateSizeLimit: validate refuses a document over
// source.MaxDocument (16 MiB) as apply does, from its size, without
// reading it (a sparse 1 GiB file).
func TestValidateSizeLimit(t *testing.T) {
	file := filepath.Join(t.TempDir(), "huge.json")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var out, errb bytes.Buffer
	code := newCLI(&out, &errb, func(string) string { return "" }).Run(context.Background(), []string{"validate", file})
	if code != ExitFailed {
		t.Fatalf("exit %d, want %d\n%s%s", code, ExitFailed, out.String(), errb.String())
	}
	if want := "larger than 16777216 bytes"; !strings.Contains(errb.String(), want) {
		t.Errorf("stderr %q does not say %q", errb.String(), want)
	}
}
