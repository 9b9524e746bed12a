package topology

import (
	"reflect"
	"slices"
	"strings"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nodeagent/nodeagent"
)

// Changes lists the document paths that differ between prev and next,
// sorted and without repeats, at leaf or map-entry granularity:
// "nodes.db-b.ip", "aliases.dbserver", "products.shop.release.id", and
// "nodes.cache-3" for an entry added or removed. A list is reported as a
// whole ("roles.web.products"), since its positions mean nothing to an
// operator. A nil and an empty map or list are the same. prev nil (nothing
// applied yet) gives nil.
func Changes(prev, next *nodeagent.Topology) []string {
	if prev == nil {
		return nil
	}
	if next == nil {
		next = &nodeagent.Topology{}
	}
	r := &pathReporter{seen: map[string]bool{}}
	cmp.Equal(prev, next, cmpopts.EquateEmpty(), cmp.Reporter(r))
	slices.Sort(r.paths)
	return r.paths
}

// pathReporter turns go-cmp's differences into document paths.
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
	p := docPath(r.steps)
	if p == "" {
		p = rootPath
	}
	if !r.seen[p] {
		r.seen[p] = true
		r.paths = append(r.paths, p)
	}
}

// docPath renders a go-cmp path with the document's names: JSON field
// names, map keys as in error paths, and lists cut at the list itself.
func docPath(steps cmp.Path) string {
	var p string
	for i, s := range steps {
		switch s := s.(type) {
		case cmp.StructField:
			p = join(p, jsonName(steps[i-1].Type(), s.Name()))
		case cmp.MapIndex:
			if k := s.Key(); k.Kind() == reflect.String {
				p = join(p, k.String())
			}
		case cmp.SliceIndex:
			return p
		}
	}
	return p
}

// jsonName is the JSON name of field name in struct type t.
func jsonName(t reflect.Type, name string) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if f, ok := t.FieldByName(name); ok {
		if n, _, _ := strings.Cut(f.Tag.Get("json"), ","); n != "" && n != "-" {
			return n
		}
	}
	return name
}
