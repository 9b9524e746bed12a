package topology

import (
	"sort"
	"strconv"
	"strings"
)

// FieldError is one problem in a topology document: where it is (a dotted
// document path such as "products.shop.release.sha256") and why it is wrong.
type FieldError struct {
	Path   string
	Reason string
}

// Error returns "path: reason".
func (e FieldError) Error() string {
	p := e.Path
	if p == "" {
		p = rootPath
	}
	return p + ": " + e.Reason
}

// rootPath names the document itself in messages.
const rootPath = "(document)"

// Errors is every problem found in a document, sorted by path. Decode and
// Validate return it as *Errors; errors.As accepts a target of either
// *Errors or Errors.
type Errors []FieldError

// Error returns one "path: reason" line per problem.
func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, fe := range e {
		lines[i] = fe.Error()
	}
	return strings.Join(lines, "\n")
}

// As lets errors.As fill an Errors target from an *Errors error and the
// other way round.
func (e Errors) As(target any) bool {
	switch t := target.(type) {
	case *Errors:
		*t = e
		return true
	case **Errors:
		c := e
		*t = &c
		return true
	}
	return false
}

// collector gathers field errors while a document is checked.
type collector struct {
	errs Errors
}

func (c *collector) add(path, reason string) {
	c.errs = append(c.errs, FieldError{Path: path, Reason: reason})
}

// err returns the sorted problems as *Errors, or nil when there are none.
func (c *collector) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	errs := append(Errors(nil), c.errs...)
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Path < errs[j].Path })
	return &errs
}

// join appends a map key or field name to a document path. Keys made only
// of letters, digits, '-' and '_' read as "nodes.db-a"; anything else is
// quoted ("nodes[\"bad name\"]") so that a hostile key cannot forge a path or
// break a log line.
func join(path, key string) string {
	if key != "" && plainKey(key) {
		if path == "" {
			return key
		}
		return path + "." + key
	}
	return path + "[" + strconv.Quote(key) + "]"
}

func plainKey(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// index appends a list position to a document path: "roles.web.products[0]".
func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}
