package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent/hostfs"
)

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	valid, err := os.ReadFile("../../topology/testdata/example.json")
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, valid, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	smuggled := strings.Replace(string(valid), `"www.shop.example"`, `"www.shop.example\nInclude /etc/shadow"`, 1)
	if err := os.WriteFile(bad, []byte(smuggled), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		want       int
		wantOut    string
		wantStderr string
	}{
		{"no command", nil, ExitUsage, "Usage: nodeagent COMMAND", ""},
		{"help", []string{"--help"}, ExitOK, "Commands:", ""},
		{"unknown command", []string{"frobnicate"}, ExitUsage, "", `unknown command "frobnicate"`},
		{"version", []string{"version"}, ExitOK, "nodeagent dev", ""},
		{"bad flag", []string{"apply", "--no-such-flag"}, ExitUsage, "", "flag provided but not defined"},
		{"validate no args", []string{"validate"}, ExitUsage, "", "want exactly one FILE or URL"},
		{"validate valid", []string{"validate", good}, ExitOK, "valid (serial 42", ""},
		{"validate smuggled newline", []string{"validate", bad}, ExitFailed, "products.shop.server_name", "is invalid"},
		{"validate missing file", []string{"validate", filepath.Join(dir, "nope.json")}, ExitFailed, "", "no such file"},
		{"missing explicit config", []string{"apply", "--config", filepath.Join(dir, "none.json")}, ExitUsage, "", "config file"},
		{"bad services flag", []string{"apply", "--services", "magic", "--topology", "file://" + good}, ExitUsage, "", "--services"},
		{"bad duration", []string{"apply", "--deadline", "soon"}, ExitUsage, "", `--deadline="soon"`},
		{"fleet without subcommand", []string{"fleet"}, ExitUsage, "", "want a subcommand"},
		{"fleet unknown subcommand", []string{"fleet", "list"}, ExitUsage, "", `unknown subcommand "list"`},
		{"fleet status without topology", []string{"fleet", "status"}, ExitUsage, "", "--topology is required"},
		{"fleet status bad interval", []string{"fleet", "status", "--topology", "file://" + good, "--report-interval", "0s"}, ExitUsage, "", "--report-interval must be positive"},
		{"fleet status without fleet.reports", []string{"fleet", "status", "--topology", "file://" + good}, ExitFailed, "", "the topology has no fleet.reports"},
		{"fleet serve without topology", []string{"fleet", "serve"}, ExitUsage, "", "--topology is required"},
		{"fleet help", []string{"fleet", "--help"}, ExitOK, "Usage: nodeagent fleet status|serve", ""},
		{"topology without subcommand", []string{"topology"}, ExitUsage, "", "want a subcommand: publish, failover, rollback"},
		{"topology unknown subcommand", []string{"topology", "push"}, ExitUsage, "", `unknown subcommand "push"`},
		{"topology help", []string{"topology", "help"}, ExitOK, "AWS_ENDPOINT_URL_S3", ""},
		{"rollout without subcommand", []string{"rollout"}, ExitUsage, "", "want a subcommand: resume, status"},
		{"rollout unknown subcommand", []string{"rollout", "start"}, ExitUsage, "", `unknown subcommand "start"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			got := newCLI(&out, &errb, func(string) string { return "" }).Run(context.Background(), tt.args)
			if got != tt.want {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", got, tt.want, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("stdout %q does not contain %q", out.String(), tt.wantOut)
			}
			if !strings.Contains(errb.String(), tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", errb.String(), tt.wantStderr)
			}
		})
	}
}

// TestSettingsLayering checks flag beats env beats file beats default.
func TestSettingsLayering(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.json")
	if err := os.WriteFile(file, []byte(`{"topology": "s3://file/topology.json", "splay": "9s", "role": "cache", "listen": "127.0.0.1:1"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"NODEAGENT_TOPOLOGY": "s3://env/topology.json",
		"NODEAGENT_ROLE":     "web",
		"NODEAGENT_PRODUCTS": "shop, blog",
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cf := registerCommon(fs)
	if err := fs.Parse([]string{"--config", file, "--role", "db", "--allow-node-drop"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := cf.load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"topology from env over file", cfg.Topology, "s3://env/topology.json"},
		{"role from flag over env and file", cfg.Role, "db"},
		{"products from env, trimmed", strings.Join(cfg.Products, "|"), "shop|blog"},
		{"listen from file", cfg.Listen, "127.0.0.1:1"},
		{"state dir default", cfg.StateDir, "/var/lib/nodeagent"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if cfg.Splay.D() != 9*time.Second {
		t.Errorf("splay from file: got %s, want 9s", cfg.Splay.D())
	}
	if !cfg.AllowNodeDrop {
		t.Error("--allow-node-drop as a bare boolean flag was not taken")
	}
}

func TestConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ name, body, want string }{
		{"unknown key", `{"topologie": "s3://b/k"}`, `unknown field "topologie"`},
		{"bad duration", `{"splay": "soon"}`, "splay"},
		{"bad driver", `{"services": "magic"}`, "--services"},
		{"relative root", `{"root": "tmp/x"}`, "--root: must be an absolute path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".json")
			if err := os.WriteFile(file, []byte(tt.body), 0o644); err != nil {
				t.Fatal(err)
			}
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			cf := registerCommon(fs)
			if err := fs.Parse([]string{"--config", file}); err != nil {
				t.Fatal(err)
			}
			_, err := cf.load(func(string) string { return "" })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// A one-shot apply on a node that `nodeagent run` manages is refused before
// it touches anything, and says how to get what the operator wanted.
func TestApplyRefusedWhileRunManagesTheNode(t *testing.T) {
	root := t.TempDir()
	doc, err := os.ReadFile("../../topology/testdata/example.json")
	if err != nil {
		t.Fatal(err)
	}
	topo := filepath.Join(t.TempDir(), "topology.json")
	if err := os.WriteFile(topo, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	daemon, err := hostfs.FS{Root: root}.LockRun(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer daemon()

	var out, errb bytes.Buffer
	args := []string{"apply", "--root", root, "--services", "none", "--topology", "file://" + topo, "--deadline", "20s"}
	got := newCLI(&out, &errb, func(string) string { return "" }).Run(context.Background(), args)
	if got != ExitFailed {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", got, ExitFailed, out.String(), errb.String())
	}
	for _, want := range []string{"nodeagent run (pid " + strconv.Itoa(os.Getpid()) + ") manages this node", "systemctl reload nodeagent", "systemctl stop nodeagent"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr %q does not contain %q", errb.String(), want)
		}
	}
	// Nothing was written: the state dir holds only the run lock.
	entries, err := os.ReadDir(filepath.Join(root, "var/lib/nodeagent"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "run.lock" {
			t.Errorf("apply wrote %s beside a running daemon", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(root, "etc/hosts")); !os.IsNotExist(err) {
		t.Errorf("apply touched etc/hosts beside a running daemon (stat: %v)", err)
	}
}
