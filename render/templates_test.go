package render

import (
	"io/fs"
	"path"
	"testing"
)

// The templates are parsed on first use, not at start-up: every file must
// parse and be defined, or the first apply that needs it would panic.
func TestEveryTemplateParses(t *testing.T) {
	files, err := fs.Glob(templateFS, "templates/*.tmpl")
	if err != nil || len(files) < 10 {
		t.Fatalf("templates: %v, %v", files, err)
	}
	for _, f := range files {
		if templates().Lookup(path.Base(f)) == nil {
			t.Errorf("%s is not defined after parsing", f)
		}
	}
}
