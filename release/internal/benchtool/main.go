// Command benchtool supports release/bench_compare.sh:
//
//	benchtool gen -o FILE [-size BYTES]             write the benchmark archive
//	benchtool install -url URL -sha SUM -root DIR   install it once over HTTP, print seconds
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/release"
	"github.com/nodeagent/nodeagent/release/internal/benchdata"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: benchtool gen|install [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	switch args[0] {
	case "gen":
		out := fs.String("o", "", "output file")
		size := fs.Int64("size", 50<<20, "compressed size to reach")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
			return err
		}
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		if err := benchdata.Generate(f, *size); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	case "install":
		url := fs.String("url", "", "archive URL (http)")
		sum := fs.String("sha", "", "archive sha256")
		root := fs.String("root", "", "root to install under")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		m := &release.Manager{Root: *root, Store: httpStore{}}
		start := time.Now()
		if err := m.Install(context.Background(), "bench", nodeagent.Release{ID: "r1", URL: *url, SHA256: *sum}); err != nil {
			return err
		}
		fmt.Printf("%.3f\n", time.Since(start).Seconds())
		return nil
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// httpStore opens http:// URLs.
type httpStore struct{}

var _ nodeagent.ReleaseStore = httpStore{}

func (httpStore) Open(ctx context.Context, url string) (io.ReadCloser, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("get %s: %s", url, resp.Status)
	}
	return resp.Body, resp.ContentLength, nil
}
