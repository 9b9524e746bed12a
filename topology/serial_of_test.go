package topology_test

import (
	"testing"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/topology"
)

// TestSerialOfRefusedDocuments: a refused document's serial is still known
// (so the node reports it as seen) whenever the document has a readable
// top-level serial, whether it failed decoding or validation.
func TestSerialOfRefusedDocuments(t *testing.T) {
	tests := []struct {
		name   string
		doc    string
		serial int64
		ok     bool
	}{
		{"wrong shape elsewhere", `{"schema": 1, "serial": 7, "nodes": "not a map"}`, 7, true},
		{"unknown field", `{"schema": 1, "serial": 8, "nodez": {}}`, 8, true},
		{"fails validation", `{"schema": 99, "serial": 9}`, 9, true},
		{"broken JSON", `{"schema": 1, "serial": 10,`, 0, false},
		{"serial not a number", `{"schema": 1, "serial": "11", "nodes": []}`, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := topology.Load([]byte(tt.doc), "topology.json", nodeagent.FormatOf("topology.json"))
			if err == nil {
				t.Fatal("Load accepted it")
			}
			serial, ok := topology.SerialOf(err)
			if serial != tt.serial || ok != tt.ok {
				t.Errorf("SerialOf = %d, %v; want %d, %v (error: %v)", serial, ok, tt.serial, tt.ok, err)
			}
		})
	}
}
