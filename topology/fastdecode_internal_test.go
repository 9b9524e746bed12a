package topology

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent"
)

// TestDecodeCleanModelsAllTypes fails when a field type added to the
// document is one decodeClean does not model: every Decode would then take
// the slow path.
func TestDecodeCleanModelsAllTypes(t *testing.T) {
	if _, ok := cleanTypes(); !ok {
		t.Fatal("decodeClean gives up on every document: a type in nodeagent.Topology is not modelled (see collectCleanTypes)")
	}
}

// A clean document decodes in one pass to exactly what the slow path
// (checkShape, json.Unmarshal) makes of it.
func TestDecodeCleanMatchesSlowPath(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("testdata", "example.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		doc  string
	}{
		{"spec example", string(example)},
		{"empty object", `{}`},
		{"empty maps and lists", `{"nodes":{},"aliases":{},"roles":{"r":{"services":[],"products":[]}}}`},
		{"whitespace everywhere", " \t\r\n{ \"schema\" : 1 ,\n\"serial\"\t:\r-0 } \n"},
		{"big and negative numbers", `{"schema":-2147483648,"serial":9223372036854775807,"apache":{"port":-1}}`},
		{"escapes", `{"domain":"a\"b\\c\/d\u00e9\ud83d\ude00\n\t","aliases":{"k\u0041":"v"}}`},
		{"utf-8", `{"domain":"café ✓","nodes":{"nœud":{"ip":"x","role":"é"}}}`},
		{"fleet", `{"fleet":{"reports":"s3://fleet-config/reports/"}}`},
		{"empty fleet", `{"fleet":{}}`},
		{"pointers", `{"roles":{"r":{"memcached":{"memory_mb":64}}},"products":{"p":{"release":{"id":"1"},"cache":{"nodes":["a","b"],"port":1}}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fast nodeagent.Topology
			if !decodeClean([]byte(tt.doc), &fast) {
				t.Fatal("decodeClean gave up on a clean document")
			}
			if err := checkShape([]byte(tt.doc)); err != nil {
				t.Fatalf("checkShape refuses it: %v", err)
			}
			var slow nodeagent.Topology
			if err := json.Unmarshal([]byte(tt.doc), &slow); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(slow, fast); diff != "" {
				t.Errorf("decodeClean differs from json.Unmarshal (-slow +fast):\n%s", diff)
			}
		})
	}
}

// Whatever checkShape or json.Unmarshal would complain about, and null,
// makes decodeClean give up, so that Decode's messages come from the slow
// path.
func TestDecodeCleanGivesUp(t *testing.T) {
	tests := []struct {
		name string
		doc  string
	}{
		{"unknown field", `{"schema":1,"serail":2}`},
		{"field in another case", `{"Schema":1}`},
		{"duplicate field", `{"schema":1,"schema":1}`},
		{"duplicate map key", `{"aliases":{"a":"x","a":"x"}}`},
		{"duplicate map key by escape", `{"aliases":{"a":"x","\u0061":"x"}}`},
		{"null value", `{"domain":null}`},
		{"lone surrogate escape", `{"domain":"a\ud800b"}`},
		{"null pointer", `{"roles":{"r":{"memcached":null}}}`},
		{"null map value", `{"nodes":{"a":null}}`},
		{"null list element", `{"roles":{"r":{"services":[null]}}}`},
		{"string for a number", `{"schema":"1"}`},
		{"number for a string", `{"domain":1}`},
		{"list for an object", `{"nodes":[]}`},
		{"object for a list", `{"roles":{"r":{"services":{}}}}`},
		{"fraction", `{"schema":1.0}`},
		{"exponent", `{"schema":1e2}`},
		{"leading zero", `{"schema":01}`},
		{"minus alone", `{"schema":-}`},
		{"out of range", `{"schema":9223372036854775808}`},
		{"out of range for int64", `{"serial":-9223372036854775809}`},
		{"trailing comma in object", `{"schema":1,}`},
		{"trailing comma in list", `{"roles":{"r":{"services":["a",]}}}`},
		{"missing comma", `{"schema":1 "serial":2}`},
		{"unterminated", `{"schema":1`},
		{"unterminated string", `{"domain":"abc`},
		{"control character in a string", "{\"domain\":\"a\nb\"}"},
		{"bad escape", `{"domain":"\x"}`},
		{"trailing data", `{} {}`},
		{"trailing garbage", `{}x`},
		{"a list at the top", `[]`},
		{"single quotes", `{'schema':1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var top nodeagent.Topology
			if decodeClean([]byte(tt.doc), &top) {
				t.Errorf("decodeClean accepted %s", tt.doc)
			}
		})
	}
}

// FuzzDecodeClean checks the promise Decode relies on: a document
// decodeClean accepts is one the slow path accepts, with the same result.
func FuzzDecodeClean(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds in testdata: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"schema":1,"aliases":{"a\u0000":"\ud800"},"roles":{"r":{"services":["x"]}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast nodeagent.Topology
		if !decodeClean(data, &fast) {
			return
		}
		if err := checkShape(data); err != nil {
			t.Fatalf("decodeClean accepted what checkShape refuses: %v", err)
		}
		var slow nodeagent.Topology
		if err := json.Unmarshal(data, &slow); err != nil {
			t.Fatalf("decodeClean accepted what json.Unmarshal refuses: %v", err)
		}
		if diff := cmp.Diff(slow, fast); diff != "" {
			t.Fatalf("decodeClean differs from json.Unmarshal (-slow +fast):\n%s", diff)
		}
	})
}
