package topology

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nodeagent/nodeagent"
)

// FuzzChangesMatchesGoCmp checks Changes against the go-cmp Reporter it
// replaced (kept here as the oracle): for any two documents, the same
// paths. The documents are decoded leniently (no validation), so the
// fuzzer reaches every shape the types allow.
func FuzzChangesMatchesGoCmp(f *testing.F) {
	example, err := os.ReadFile("testdata/example.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example, example)
	for _, edit := range [][2]string{
		{`"serial": 42`, `"serial": 43`},
		{`"dbserver": "db-a"`, `"dbserver": "db-b"`},
		{`"ip": "10.0.1.10"`, `"ip": "10.0.1.11"`},
		{`"products": ["shop"]`, `"products": ["shop", "blog"]`},
		{`"nodes": {`, `"nodes": {"extra-1": {"ip": "10.9.9.9", "role": "web"},`},
	} {
		f.Add(example, []byte(strings.Replace(string(example), edit[0], edit[1], 1)))
	}
	f.Add([]byte(`{"aliases": {}}`), []byte(`{}`))
	f.Add([]byte(`{"roles": {"web": {"memcached": null}}}`), []byte(`{"roles": {"web": {"memcached": {}}}}`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var prev, next nodeagent.Topology
		if json.Unmarshal(a, &prev) != nil || json.Unmarshal(b, &next) != nil {
			return
		}
		got := Changes(&prev, &next)
		// go-cmp reports a map that is nil on one side as a whole; Changes
		// names the entries added or removed. Give the oracle empty maps.
		emptyMaps(reflect.ValueOf(&prev).Elem())
		emptyMaps(reflect.ValueOf(&next).Elem())
		if want := goCmpChanges(&prev, &next); !slices.Equal(got, want) {
			t.Errorf("Changes = %q\ngo-cmp  = %q\nprev: %s\nnext: %s", got, want, a, b)
		}
	})
}

// emptyMaps replaces every nil map in v with an empty one.
func emptyMaps(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			emptyMaps(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			emptyMaps(v.Field(i))
		}
	case reflect.Slice:
		for i := range v.Len() {
			emptyMaps(v.Index(i))
		}
	case reflect.Map:
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			emptyMaps(e)
			v.SetMapIndex(k, e)
		}
	}
}

func TestChangesMatchesGoCmpOnTheExample(t *testing.T) {
	example, err := os.ReadFile("testdata/example.json")
	if err != nil {
		t.Fatal(err)
	}
	load := func() *nodeagent.Topology {
		top, err := Load(example, "example.json", nodeagent.FormatJSON)
		if err != nil {
			t.Fatal(err)
		}
		return top
	}
	top, edited := load(), load()
	edited.Serial++
	edited.Aliases["dbserver"], edited.Aliases["replserver"] = edited.Aliases["replserver"], edited.Aliases["dbserver"]
	delete(edited.Nodes, "cache-2")
	edited.Nodes["cache-3"] = edited.Nodes["cache-1"]
	got, want := Changes(top, edited), goCmpChanges(top, edited)
	if !slices.Equal(got, want) || !slices.Equal(got, []string{"aliases.dbserver", "aliases.replserver", "nodes.cache-2", "nodes.cache-3", "serial"}) {
		t.Errorf("Changes = %q, go-cmp = %q", got, want)
	}
}

// goCmpChanges is the implementation Changes replaced.
func goCmpChanges(prev, next *nodeagent.Topology) []string {
	r := &pathReporter{seen: map[string]bool{}}
	cmp.Equal(prev, next, cmpopts.EquateEmpty(), cmp.Reporter(r))
	slices.Sort(r.paths)
	return r.paths
}

type pathReporter struct {
	steps cmp.Path
	paths []string
	seen  map[string]bool
}

func (r *pathReporter) PushStep(s cmp.PathStep) { r.steps = append(r.steps, s) }

func (r *pathReporter) PopStep() { r.steps = r.steps[:len(r.steps)-1] }

func (r *pathReporter) Report(res cmp.Result) {
	if res.Equal() {
		return
	}
	var p string
steps:
	for i, s := range r.steps {
		switch s := s.(type) {
		case cmp.StructField:
			t := r.steps[i-1].Type()
			if t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			name := s.Name()
			if f, ok := t.FieldByName(name); ok {
				if n, _, _ := strings.Cut(f.Tag.Get("json"), ","); n != "" && n != "-" {
					name = n
				}
			}
			p = join(p, name)
		case cmp.MapIndex:
			if k := s.Key(); k.Kind() == reflect.String {
				p = join(p, k.String())
			}
		case cmp.SliceIndex:
			break steps
		}
	}
	if p == "" {
		p = rootPath
	}
	if !r.seen[p] {
		r.seen[p] = true
		r.paths = append(r.paths, p)
	}
}
