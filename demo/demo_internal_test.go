package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/topology"
)

func TestExampleTopology(t *testing.T) {
	const sha = "438a805f218faaa560cfe0752454ff645e990315c14c860de5fb23345eb8998f"
	tests := []struct {
		name        string
		serial      int64
		master      string
		wantReplica string
	}{
		{name: "before the change", serial: 1, master: masterBefore, wantReplica: masterAfter},
		{name: "after the change", serial: 2, master: masterAfter, wantReplica: masterBefore},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, err := exampleTopology(tc.serial, sha, tc.master)
			if err != nil {
				t.Fatalf("exampleTopology: %v", err)
			}
			top, err := topology.Load(body, "demo.json", nodeagent.FormatOf("demo.json"))
			if err != nil {
				t.Fatalf("the published document does not load: %v", err)
			}
			if top.Serial != tc.serial || top.Aliases["dbserver"] != tc.master || top.Aliases["replserver"] != tc.wantReplica {
				t.Errorf("serial %d, dbserver %s, replserver %s; want %d, %s, %s",
					top.Serial, top.Aliases["dbserver"], top.Aliases["replserver"], tc.serial, tc.master, tc.wantReplica)
			}
			if got := top.Products[product].Release.SHA256; got != sha {
				t.Errorf("release sha256 %q, want %q", got, sha)
			}
			for _, n := range nodes {
				if n.Group != "" {
					if _, ok := top.Groups[n.Group]; !ok {
						t.Errorf("node %s's group %s is not in the topology's groups", n.Name, n.Group)
					}
					continue
				}
				listed, ok := top.Nodes[n.Name]
				if !ok || listed.InstanceID != n.InstanceID || listed.IP != n.IP || listed.Role != n.Role {
					t.Errorf("node %s: topology has %+v, the demo boots %+v", n.Name, listed, n)
				}
			}
		})
	}
}

func TestReleaseArchive(t *testing.T) {
	app, err := fs.Sub(example, "example/app")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		app       fs.FS
		wantFiles []string
	}{
		{name: "the shop", app: app, wantFiles: []string{"public/", "public/index.php"}},
		{name: "nested tree", app: fstest.MapFS{"a/b/c.txt": {Data: []byte("x")}},
			wantFiles: []string{"a/", "a/b/", "a/b/c.txt"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			first, sum1, err := releaseArchive(tc.app)
			if err != nil {
				t.Fatal(err)
			}
			_, sum2, err := releaseArchive(tc.app)
			if err != nil {
				t.Fatal(err)
			}
			if sum1 != sum2 {
				t.Errorf("two archives of the same tree differ: %s, %s", sum1, sum2)
			}
			gz, err := gzip.NewReader(bytes.NewReader(first))
			if err != nil {
				t.Fatal(err)
			}
			tr := tar.NewReader(gz)
			var names []string
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if h.Uid != 0 || h.Gid != 0 || h.Mode&^0o777 != 0 {
					t.Errorf("%s: uid %d gid %d mode %o", h.Name, h.Uid, h.Gid, h.Mode)
				}
				names = append(names, h.Name)
			}
			if !slices.Equal(names, tc.wantFiles) {
				t.Errorf("entries %q, want %q", names, tc.wantFiles)
			}
		})
	}
}

func TestCheckOwned(t *testing.T) {
	tests := []struct {
		name    string
		entries []string
		wantErr string
	}{
		{name: "missing dir"},
		{name: "empty dir", entries: []string{}},
		{name: "a demo's leftovers", entries: []string{stateFile, logsDir, "agents", "tmp", "web-1", "cache-1"}},
		{name: "someone else's dir", entries: []string{logsDir, "go.mod"}, wantErr: "go.mod"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "demo-root")
			if tc.entries != nil {
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, e := range tc.entries {
				if err := os.WriteFile(filepath.Join(dir, e), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := checkOwned(dir)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("checkOwned: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("checkOwned: %v, want an error naming %q", err, tc.wantErr)
			}
		})
	}
}

func TestAgentEnv(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{name: "keeps the rest", env: []string{"PATH=/bin", "HOME=/root"}, want: []string{"PATH=/bin", "HOME=/root"}},
		{name: "drops agent settings and AWS settings",
			env:  []string{"NODEAGENT_ROOT=/", "PATH=/bin", "AWS_PROFILE=prod", "AWS_REGION=eu-west-1", "LANG=C"},
			want: []string{"PATH=/bin", "LANG=C"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := agentEnv(tc.env); !slices.Equal(got, tc.want) {
				t.Errorf("agentEnv = %q, want %q", got, tc.want)
			}
		})
	}
}
