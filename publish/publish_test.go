package publish_test

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/publish"
	"github.com/nodeagent/nodeagent/topology"
)

const url = "s3://fleet-config/prod/topology.json"

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// current is the document of testdata/topology.json as if read from S3.
func current(t *testing.T) *publish.Current {
	t.Helper()
	body := readFile(t, "testdata/topology.json")
	doc, err := topology.Load(body, url, nodeagent.FormatOf(url))
	if err != nil {
		t.Fatal(err)
	}
	return &publish.Current{Exists: true, Body: body, ETag: `"e1"`, Serial: doc.Serial, Doc: doc}
}

func newPublisher(t *testing.T, rawURL string) *publish.Publisher {
	t.Helper()
	p, err := publish.New(nil, rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSetSerial(t *testing.T) {
	tests := []struct {
		name, file, in, want string
	}{
		{
			name: "json keeps every other byte",
			file: "t.json",
			in:   "{\"schema\":1,  \"nodes\": {\"serial\": {\"ip\": \"1\"}},\n  \"serial\" :\t42 ,\"x\":[1]}\n",
			want: "{\"schema\":1,  \"nodes\": {\"serial\": {\"ip\": \"1\"}},\n  \"serial\" :\t43 ,\"x\":[1]}\n",
		},
		{
			name: "yaml top-level line only",
			file: "t.yaml",
			in:   "schema: 1\nserial:  42 # the serial\nnodes:\n  serial: {ip: 1}\n",
			want: "schema: 1\nserial:  43 # the serial\nnodes:\n  serial: {ip: 1}\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := publish.SetSerial([]byte(tt.in), tt.file, 43)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("SetSerial =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
	if _, err := publish.SetSerial([]byte(`{"schema": 1}`), "t.json", 2); err == nil {
		t.Error("SetSerial of a document without a serial: no error")
	}
}

// withSerial is testdata/topology.json with its serial set.
func withSerial(t *testing.T, serial int64) []byte {
	t.Helper()
	b, err := publish.SetSerial(readFile(t, "testdata/topology.json"), "t.json", serial)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPrepare(t *testing.T) {
	p := newPublisher(t, url)
	dropped := strings.Replace(string(withSerial(t, 43)), `"cache-1": {"ip": "10.0.1.20", "role": "cache", "az": "us-east-1a"},`, "", 1)
	dropped = strings.Replace(dropped, `"db-c":    {"ip": "10.0.3.10", "role": "db",    "az": "us-east-1c"},`, "", 1)
	dropped = strings.Replace(dropped, `"master": "db-c"`, `"master": "db-b"`, 1)
	dropped = strings.Replace(dropped, `"cache-1", "cache-2"`, `"cache-2"`, 1)
	dropped = strings.Replace(dropped, `"aliases": {"dbserver": "db-a", "replserver": "db-b"}`, `"aliases": {"dbserver": "db-b"}`, 1)
	dropped = strings.Replace(dropped, `"replicas": ["replserver"], `, "", 1)
	dropped = strings.Replace(dropped, `"db-a":    {"ip": "10.0.1.10", "role": "db",    "az": "us-east-1a"},`, "", 1)
	dropped = strings.Replace(dropped, `"replicas": ["db-a"], `, "", 1)
	tests := []struct {
		name       string
		cur        *publish.Current
		in         publish.Input
		wantErr    error
		wantErrAs  any
		wantTo     int64
		wantBumped bool
		wantPaths  []string
	}{
		{name: "higher serial", cur: current(t), in: publish.Input{Body: withSerial(t, 50), Name: "new.json"}, wantTo: 50, wantPaths: []string{"serial"}},
		{name: "same serial refused", cur: current(t), in: publish.Input{Body: withSerial(t, 42), Name: "new.json"}, wantErr: publish.ErrSerialNotAbove},
		{name: "lower serial refused", cur: current(t), in: publish.Input{Body: withSerial(t, 7), Name: "new.json"}, wantErr: publish.ErrSerialNotAbove},
		{name: "bump", cur: current(t), in: publish.Input{Body: withSerial(t, 7), Name: "new.json", Bump: true}, wantTo: 43, wantBumped: true, wantPaths: []string{"serial"}},
		{name: "bump leaves a higher serial", cur: current(t), in: publish.Input{Body: withSerial(t, 50), Name: "new.json", Bump: true}, wantTo: 50},
		{name: "forced serial", cur: current(t), in: publish.Input{Body: withSerial(t, 42), Name: "new.json", Serial: 43}, wantTo: 43, wantBumped: true},
		{name: "first publish", cur: &publish.Current{}, in: publish.Input{Body: withSerial(t, 1), Name: "new.json"}, wantTo: 1},
		{name: "invalid", cur: current(t), in: publish.Input{Body: []byte(`{"schema": 1, "serial": 50, "nodez": {}}`), Name: "new.json"}, wantErrAs: new(topology.Errors)},
		{name: "node drop refused", cur: current(t), in: publish.Input{Body: []byte(dropped), Name: "new.json"}, wantErr: topology.ErrNodesDropped},
		{name: "node drop allowed", cur: current(t), in: publish.Input{Body: []byte(dropped), Name: "new.json", AllowNodeDrop: true}, wantTo: 43},
		{name: "yaml for a json key", cur: current(t), in: publish.Input{Body: readFile(t, "testdata/example.yaml"), Name: "new.yaml"}, wantErr: publish.ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, err := p.Prepare(tt.cur, tt.in)
			switch {
			case tt.wantErr != nil || tt.wantErrAs != nil:
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("Prepare error = %v, want %v", err, tt.wantErr)
				}
				if tt.wantErrAs != nil && !errors.As(err, tt.wantErrAs) {
					t.Fatalf("Prepare error = %v, want a %T", err, tt.wantErrAs)
				}
				return
			case err != nil:
				t.Fatalf("Prepare: %v", err)
			}
			if ch.To != tt.wantTo || ch.Doc.Serial != tt.wantTo || ch.Bumped != tt.wantBumped {
				t.Errorf("To %d, document serial %d, bumped %v; want %d, %v", ch.To, ch.Doc.Serial, ch.Bumped, tt.wantTo, tt.wantBumped)
			}
			if tt.wantPaths != nil && !slices.Equal(ch.Paths, tt.wantPaths) {
				t.Errorf("Paths = %q, want %q", ch.Paths, tt.wantPaths)
			}
			if !ch.Bumped && !bytes.Equal(ch.Body, tt.in.Body) {
				t.Error("the document was rewritten without a serial change")
			}
			if want, _ := publish.SetSerial(tt.in.Body, tt.in.Name, ch.To); ch.Bumped && !bytes.Equal(ch.Body, want) {
				t.Errorf("bumped document:\n%s\nwant only the serial changed:\n%s", ch.Body, want)
			}
		})
	}
}

func TestHistoryKey(t *testing.T) {
	for key, want := range map[string]string{
		"prod/topology.json": "prod/history/41.json",
		"topology.json":      "history/41.json",
		"a/b/topology.yaml":  "a/b/history/41.yaml",
	} {
		if got := publish.HistoryKey(key, 41); got != want {
			t.Errorf("HistoryKey(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestFailoverEdit(t *testing.T) {
	tests := []struct {
		name        string
		f           publish.Failover
		wantErr     error
		wantErrText string
		wantFrom    string
		wantAliases map[string]string
		wantMaster  map[string]string   // product -> database.master
		wantReplica map[string][]string // product -> replicas
	}{
		{
			name:        "alias, old master as replica: the seeds' swap",
			f:           publish.Failover{Alias: "dbserver", To: "db-b", OldMasterAsReplica: true},
			wantFrom:    "db-a",
			wantAliases: map[string]string{"dbserver": "db-b", "replserver": "db-a"},
			wantMaster:  map[string]string{"shop": "dbserver", "blog": "db-c"},
			wantReplica: map[string][]string{"shop": {"replserver"}, "blog": {"db-a"}},
		},
		{
			name:        "alias: the new master leaves the replicas",
			f:           publish.Failover{Alias: "dbserver", To: "db-b"},
			wantFrom:    "db-a",
			wantAliases: map[string]string{"dbserver": "db-b", "replserver": "db-b"},
			wantMaster:  map[string]string{"shop": "dbserver"},
			wantReplica: map[string][]string{"shop": nil, "blog": {"db-a"}},
		},
		{
			name:        "alias to a node that was no replica",
			f:           publish.Failover{Alias: "dbserver", To: "db-c", OldMasterAsReplica: true},
			wantFrom:    "db-a",
			wantAliases: map[string]string{"dbserver": "db-c", "replserver": "db-b"},
			wantReplica: map[string][]string{"shop": {"replserver", "db-a"}},
		},
		{
			name:        "product: only that product moves",
			f:           publish.Failover{Product: "blog", To: "db-a"},
			wantFrom:    "db-c",
			wantAliases: map[string]string{"dbserver": "db-a", "replserver": "db-b"},
			wantMaster:  map[string]string{"blog": "db-a", "shop": "dbserver"},
			wantReplica: map[string][]string{"blog": nil, "shop": {"replserver"}},
		},
		{
			name:        "product whose master is an alias, old master as replica",
			f:           publish.Failover{Product: "shop", To: "db-b", OldMasterAsReplica: true},
			wantFrom:    "db-a",
			wantAliases: map[string]string{"dbserver": "db-a", "replserver": "db-b"},
			wantMaster:  map[string]string{"shop": "db-b"},
			wantReplica: map[string][]string{"shop": {"db-a"}},
		},
		{name: "already the master", f: publish.Failover{Alias: "dbserver", To: "db-a"}, wantErr: publish.ErrAlreadyMaster},
		{name: "not a node", f: publish.Failover{Product: "shop", To: "db-z"}, wantErrText: `no node "db-z"`},
		{name: "an alias", f: publish.Failover{Product: "shop", To: "replserver"}, wantErrText: "replserver is an alias"},
		{name: "another role", f: publish.Failover{Product: "shop", To: "cache-1"}, wantErrText: `cache-1 has role "cache", but the master db-a has role "db"`},
		{name: "unknown product", f: publish.Failover{Product: "news", To: "db-b"}, wantErrText: `no product "news"`},
		{name: "unknown alias", f: publish.Failover{Alias: "dbmaster", To: "db-b"}, wantErrText: `no alias "dbmaster"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := current(t)
			body, mv, err := tt.f.Edit(cur)
			if tt.wantErr != nil || tt.wantErrText != "" {
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.wantErrText) {
					t.Fatalf("Edit error = %v, want %v %q", err, tt.wantErr, tt.wantErrText)
				}
				return
			}
			if err != nil {
				t.Fatalf("Edit: %v", err)
			}
			if mv.From != tt.wantFrom || mv.To != tt.f.To {
				t.Errorf("moved %s -> %s, want %s -> %s", mv.From, mv.To, tt.wantFrom, tt.f.To)
			}
			doc, err := topology.Load(body, url, nodeagent.FormatOf(url))
			if err != nil {
				t.Fatalf("the edited document does not load: %v\n%s", err, body)
			}
			if doc.Serial != cur.Serial {
				t.Errorf("serial %d, want it untouched (%d)", doc.Serial, cur.Serial)
			}
			for a, want := range tt.wantAliases {
				if doc.Aliases[a] != want {
					t.Errorf("aliases.%s = %q, want %q", a, doc.Aliases[a], want)
				}
			}
			for p, want := range tt.wantMaster {
				if got := doc.Products[p].Database.Master; got != want {
					t.Errorf("products.%s.database.master = %q, want %q", p, got, want)
				}
			}
			for p, want := range tt.wantReplica {
				if got := doc.Products[p].Database.Replicas; !slices.Equal(got, want) {
					t.Errorf("products.%s.database.replicas = %q, want %q", p, got, want)
				}
			}
			// Nothing else moved.
			for _, path := range topology.Changes(cur.Doc, doc) {
				if !strings.HasPrefix(path, "aliases.") && !strings.HasSuffix(path, ".database.master") && !strings.HasSuffix(path, ".database.replicas") {
					t.Errorf("failover changed %s", path)
				}
			}
		})
	}
}
