package topology_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nodeagent/nodeagent/topology"
)

// readTestdata returns a file under testdata.
func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// doc is a topology document as generic JSON, for building variants.
type doc map[string]any

// exampleDoc returns the SPEC example as a generic document.
func exampleDoc(t testing.TB) doc {
	t.Helper()
	var d doc
	if err := json.Unmarshal(readTestdata(t, "example.json"), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// parent walks to the object holding the last key of keys.
func (d doc) parent(t testing.TB, keys []string) map[string]any {
	t.Helper()
	m := map[string]any(d)
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	return m
}

// set puts v at keys, creating objects on the way.
func (d doc) set(t testing.TB, v any, keys ...string) doc {
	t.Helper()
	d.parent(t, keys)[keys[len(keys)-1]] = v
	return d
}

// del removes the member at keys.
func (d doc) del(t testing.TB, keys ...string) doc {
	t.Helper()
	delete(d.parent(t, keys), keys[len(keys)-1])
	return d
}

func (d doc) bytes(t testing.TB) []byte {
	t.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func asErrors(err error, target *topology.Errors) bool { return errors.As(err, target) }
