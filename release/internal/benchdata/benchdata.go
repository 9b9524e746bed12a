// Package benchdata generates a deterministic release archive that looks
// like a PHP application (source files, vendor tree, assets, images) for the
// release benchmarks.
package benchdata

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"
)

// Version changes whenever Generate's output changes (cached copies are
// keyed by it).
const Version = 2

// counter counts bytes written through it.
type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Generate writes a tar.gz of about target compressed bytes to w: roughly
// two thirds of the compressed size is text (PHP, JS, CSS, JSON) and one
// third incompressible media, in a tree of a few thousand files.
func Generate(w io.Writer, target int64) error {
	rnd := rand.New(rand.NewPCG(2026, 11))
	words := vocabulary(rnd)
	// Directory names come from small pools, so that a directory holds a
	// handful of files as in a real application.
	modules, vendors := words[20:80], words[80:120]
	cw := &counter{w: w}
	gz := gzip.NewWriter(cw)
	tw := tar.NewWriter(gz)
	mtime := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	dirs := map[string]bool{}
	add := func(name string, body []byte, mode int64) error {
		for i := range name {
			if name[i] == '/' && !dirs[name[:i]] {
				dirs[name[:i]] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name[:i] + "/", Mode: 0o755, ModTime: mtime}); err != nil {
					return err
				}
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: mtime}); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "storage", Linkname: "../../shared/storage", ModTime: mtime}); err != nil {
		return err
	}
	top := []string{"app", "src", "vendor", "resources", "config", "public/assets", "public/images"}
	for i := 0; cw.n < target; i++ {
		var name string
		var body []byte
		switch k := rnd.IntN(40); {
		case k == 0: // an image or font: incompressible
			body = make([]byte, 10<<10+rnd.IntN(190<<10))
			for j := range body {
				body[j] = byte(rnd.Uint32())
			}
			name = fmt.Sprintf("public/images/%s/%s-%d.jpg", pick(rnd, modules[:10]), pick(rnd, words), i)
		default:
			dir := top[rnd.IntN(len(top)-1)]
			if dir == "vendor" {
				v := rnd.IntN(len(vendors))
				dir = fmt.Sprintf("vendor/%s/%s/src", vendors[v], modules[(v*7+rnd.IntN(3))%len(modules)])
			}
			ext := []string{".php", ".php", ".php", ".js", ".css", ".json"}[rnd.IntN(6)]
			name = fmt.Sprintf("%s/%s/%s%d%s", dir, pick(rnd, modules), strings.ToUpper(pick(rnd, words)[:1])+pick(rnd, words), i, ext)
			body = source(rnd, words, 512+rnd.IntN(16<<10))
		}
		if err := add(name, body, 0o644); err != nil {
			return err
		}
	}
	if err := add("public/index.php", []byte("<?php require __DIR__.'/../app/bootstrap.php';\n"), 0o644); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func pick(rnd *rand.Rand, words []string) string { return words[rnd.IntN(len(words))] }

func vocabulary(rnd *rand.Rand) []string {
	words := []string{"function", "return", "public", "private", "static", "class", "array", "string", "int", "null",
		"if", "else", "foreach", "new", "this", "self", "use", "namespace", "throw", "catch"}
	for range 1500 {
		n := 3 + rnd.IntN(9)
		var b strings.Builder
		for range n {
			b.WriteByte("abcdefghijklmnopqrstuvwxyz"[rnd.IntN(26)])
		}
		words = append(words, b.String())
	}
	return words
}

// source is text of about n bytes shaped like code.
func source(rnd *rand.Rand, words []string, n int) []byte {
	var b strings.Builder
	b.WriteString("<?php\n\nnamespace App;\n\n")
	depth := 0
	for b.Len() < n {
		b.WriteString(strings.Repeat("    ", depth))
		for k := 2 + rnd.IntN(8); k > 0; k-- {
			b.WriteString(pick(rnd, words))
			b.WriteString([]string{" ", " ", "(", "->", ", ", " = "}[rnd.IntN(6)])
		}
		switch rnd.IntN(6) {
		case 0:
			b.WriteString("{\n")
			depth = min(depth+1, 5)
		case 1:
			if depth > 0 {
				depth--
			}
			b.WriteString("}\n")
		default:
			b.WriteString(";\n")
		}
	}
	return []byte(b.String())
}
