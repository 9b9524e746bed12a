package topology_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/roles"
	"github.com/nodeagent/nodeagent/topology"
)

// FuzzLoad checks that Load never panics, that whatever it accepts survives
// a JSON round trip unchanged, that no accepted string can break a line
// of a rendered file, and that apply derives and renders every role of an
// accepted document (validate and apply agree: what Load accepts, roles
// and render never refuse).
func FuzzLoad(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.*"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds in testdata: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, strings.HasSuffix(file, ".yaml"))
	}
	f.Add([]byte(`{"schema":1,"serial":1,"nodes":{"a":{"ip":"::1","role":"r"}},"roles":{"r":{"services":[]}}}`), false)
	f.Add([]byte(`{"schema":1,"serial":1,"nodes":{"a\n":{"ip":"10.0.0.1\u0000","role":"r"}},"roles":{"r":{}}}`), false)
	f.Add([]byte(`{"schema":1,"serial":1,"nodes":{"a":{"ip":"::1","role":"r"}},"roles":{"r":{"services":[]}},"fleet":{"reports":"s3://fleet-config/reports/"}}`), false)

	f.Fuzz(func(t *testing.T, data []byte, isYAML bool) {
		name := "fuzz.json"
		if isYAML {
			name = "fuzz.yaml"
		}
		top, err := topology.Load(data, name, nodeagent.FormatOf(name))
		if err != nil {
			return
		}
		if bad := badStrings(reflect.ValueOf(top), "topology"); len(bad) > 0 {
			t.Fatalf("accepted document holds strings with newline, CR or NUL: %v", bad)
		}
		again, err := json.Marshal(top)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		top2, err := topology.Load(again, "again.json", nodeagent.FormatOf("again.json"))
		if err != nil {
			t.Fatalf("accepted document re-encoded is refused: %v\n%s", err, again)
		}
		if diff := cmp.Diff(top, top2, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip changed the document (-first +second):\n%s", diff)
		}
		for name, r := range top.Roles {
			id := nodeagent.Identity{Role: name, Products: r.Products}
			if _, err := roles.Desire(roles.Input{Instance: fuzzInstance, Topology: top, Identity: id, ServiceRoot: "/", StateDir: "/var/lib/nodeagent"}); err != nil {
				t.Fatalf("Load accepted it, apply refuses role %s: %v\n%s", name, err, data)
			}
		}
	})
}

// fuzzInstance is a Debian node not listed in nodes, with the longest
// instance id (its own /etc/hosts name is as long as one can be).
var fuzzInstance = nodeagent.Instance{
	ID: "i-0fedcba9876543210", PrivateIP: "10.0.1.50", AZ: "us-east-1a", Region: "us-east-1",
	MemoryBytes: 8 << 30, OSFamily: nodeagent.OSDebian, OSID: "debian", PHPVersion: "8.2",
}

// badStrings returns the paths of every string (values and map keys) that
// holds a newline, carriage return or NUL.
func badStrings(v reflect.Value, path string) []string {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return badStrings(v.Elem(), path)
	case reflect.String:
		if strings.ContainsAny(v.String(), "\n\r\x00") {
			return []string{path}
		}
	case reflect.Struct:
		var bad []string
		for i := 0; i < v.NumField(); i++ {
			bad = append(bad, badStrings(v.Field(i), path+"."+v.Type().Field(i).Name)...)
		}
		return bad
	case reflect.Slice:
		var bad []string
		for i := 0; i < v.Len(); i++ {
			bad = append(bad, badStrings(v.Index(i), path+"[]")...)
		}
		return bad
	case reflect.Map:
		var bad []string
		it := v.MapRange()
		for it.Next() {
			bad = append(bad, badStrings(it.Key(), path+"{key}")...)
			bad = append(bad, badStrings(it.Value(), path+"["+it.Key().String()+"]")...)
		}
		return bad
	}
	return nil
}

func TestBadStringsFindsThem(t *testing.T) {
	top := &nodeagent.Topology{
		Nodes:    map[string]nodeagent.Node{"a\n": {IP: "x"}},
		Products: map[string]nodeagent.Product{"p": {PHP: nodeagent.PHPSettings{Env: map[string]string{"K": "v\x00"}}}},
	}
	if got := badStrings(reflect.ValueOf(top), "topology"); len(got) != 2 {
		t.Errorf("badStrings = %v, want the node key and the env value", got)
	}
}
