package nodeagent_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLogKeysAreConstants: the product's code logs with the LogKey
// constants, never with a string literal that spells one of them ("error"
// where LogKeyError is meant), so one concept keeps one name. It reads
// every non-test Go file of the product (not test/, bench/ or the demo's
// scripts) and looks at the arguments of slog calls after the message.
func TestLogKeysAreConstants(t *testing.T) {
	fset := token.NewFileSet()
	keys := map[string]string{} // value -> constant name
	root, err := parser.ParseFile(fset, "log.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range root.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			v := s.(*ast.ValueSpec)
			for i, n := range v.Names {
				if i >= len(v.Values) {
					break // an iota group: no LogKey there
				}
				if lit, ok := v.Values[i].(*ast.BasicLit); ok && strings.HasPrefix(n.Name, "LogKey") {
					s, _ := strconv.Unquote(lit.Value)
					keys[s] = n.Name
				}
			}
		}
	}
	if len(keys) < 20 {
		t.Fatalf("found %d LogKey constants in log.go; the test no longer reads them", len(keys))
	}
	// How many leading arguments of each slog method are not attributes.
	logCalls := map[string]int{"Debug": 1, "Info": 1, "Warn": 1, "Error": 1, "With": 0, "Log": 3, "DebugContext": 2, "InfoContext": 2, "WarnContext": 2, "ErrorContext": 2}
	// slog's attribute constructors: their first argument is a key.
	attrFuncs := map[string]bool{"String": true, "Int": true, "Int64": true, "Uint64": true, "Float64": true, "Bool": true, "Time": true, "Duration": true, "Any": true, "Group": true}
	files := 0
	err = filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (p == "test" || p == "bench" || strings.HasPrefix(d.Name(), ".")) && p != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		files++
		ast.Inspect(f, func(n ast.Node) bool {
			var args []ast.Expr
			switch n := n.(type) {
			case *ast.CompositeLit: // attrs := []any{key, value, …}
				if at, ok := n.Type.(*ast.ArrayType); ok {
					if id, ok := at.Elt.(*ast.Ident); ok && id.Name == "any" {
						args = n.Elts
					}
				}
			case *ast.CallExpr:
				switch fun := n.Fun.(type) {
				case *ast.Ident: // attrs = append(attrs, key, value, …)
					if fun.Name == "append" && len(n.Args) > 1 {
						if id, ok := n.Args[0].(*ast.Ident); ok && (strings.HasPrefix(id.Name, "attr") || id.Name == "args") {
							args = n.Args[1:]
						}
					}
				case *ast.SelectorExpr: // log.Info(msg, key, value, …), log.With(key, value, …)
					skip, ok := logCalls[fun.Sel.Name]
					if pkg, isPkg := fun.X.(*ast.Ident); isPkg && pkg.Name == "slog" && attrFuncs[fun.Sel.Name] && len(n.Args) > 0 {
						args = n.Args[:1] // slog.String(key, value)
						break
					}
					switch {
					case !ok:
					case fun.Sel.Name == "With":
						if len(n.Args) >= 2 { // not a metric's With(label)
							args = n.Args
						}
					case len(n.Args) > skip:
						args = n.Args[skip:] // after the context, level and message
					}
				}
			}
			// Key-value pairs, or slog.Attr values that take one place.
			for i := 0; i < len(args); i++ {
				switch a := args[i].(type) {
				case *ast.BasicLit:
					if s, _ := strconv.Unquote(a.Value); a.Kind == token.STRING && keys[s] != "" {
						t.Errorf("%s: log key %s: use nodeagent.%s", fset.Position(a.Pos()), a.Value, keys[s])
					}
					i++ // its value
				case *ast.SelectorExpr:
					if strings.HasPrefix(a.Sel.Name, "LogKey") {
						i++
					}
				case *ast.Ident:
					if strings.HasPrefix(a.Name, "LogKey") {
						i++
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("read %d Go files; the walk no longer sees the product", files)
	}
}
