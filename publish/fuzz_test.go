package publish_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/nodeagent/nodeagent/publish"
)

// FuzzSetSerial: whatever the document, SetSerial either refuses it or
// returns JSON that decodes to the same value with only the top-level
// serial replaced.
func FuzzSetSerial(f *testing.F) {
	f.Add([]byte(`{"schema": 1, "serial": 42, "nodes": {"serial": {"ip": "1"}}}`), int64(43))
	f.Add([]byte("{\"serial\"\t:\n-7 }"), int64(1))
	f.Add([]byte(`{"a": "\"serial\": 1", "serial": 1}`), int64(2))
	f.Fuzz(func(t *testing.T, body []byte, serial int64) {
		out, err := publish.SetSerial(body, "t.json", serial)
		if err != nil {
			return
		}
		var before, after map[string]any
		if json.Unmarshal(body, &before) != nil {
			return // SetSerial only promises to keep bytes; garbage in, garbage out
		}
		dec := json.NewDecoder(bytes.NewReader(out))
		dec.UseNumber()
		if err := dec.Decode(&after); err != nil {
			t.Fatalf("SetSerial(%q) = %q: not JSON: %v", body, out, err)
		}
		if got, _ := after["serial"].(json.Number).Int64(); got != serial {
			t.Fatalf("SetSerial(%q, %d) = %q: serial %v", body, serial, out, after["serial"])
		}
		delete(before, "serial")
		delete(after, "serial")
		b1, _ := json.Marshal(before)
		b2, _ := json.Marshal(after)
		if !bytes.Equal(b1, b2) {
			t.Fatalf("SetSerial(%q) = %q: more than the serial changed", body, out)
		}
	})
}
