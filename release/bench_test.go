package release_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/release"
	"github.com/nodeagent/nodeagent/release/internal/benchdata"
)

// httpStore opens http:// URLs with the default client.
type httpStore struct{ client *http.Client }

var _ nodeagent.ReleaseStore = httpStore{}

func (s httpStore) Open(ctx context.Context, url string) (io.ReadCloser, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("get %s: %s", url, resp.Status)
	}
	return resp.Body, resp.ContentLength, nil
}

// BenchmarkInstall50MB measures download + sha256 + extraction of a ~50 MB
// tar.gz of a PHP application served over loopback HTTP. Compare with
// release/bench_compare.sh (curl | tee >(sha256sum) | tar xz).
func BenchmarkInstall50MB(b *testing.B) {
	dir := b.TempDir()
	archive := filepath.Join(dir, "release.tar.gz")
	f, err := os.Create(archive)
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	if err := benchdata.Generate(io.MultiWriter(f, h), 50<<20); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(archive)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, archive)
	}))
	defer srv.Close()
	r := nodeagent.Release{ID: "r1", URL: srv.URL + "/release.tar.gz", SHA256: hex.EncodeToString(h.Sum(nil))}
	store := httpStore{client: srv.Client()}

	b.SetBytes(fi.Size())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		root := filepath.Join(dir, fmt.Sprintf("root%d", i))
		m := &release.Manager{Root: root, Store: store}
		if err := m.Install(context.Background(), "shop", r); err != nil {
			b.Fatal(err)
		}
		// Each root is kept until b.TempDir's cleanup. On an ext4 without a
		// journal (the benchmark VM's), the inode allocator skips inodes
		// freed in the last 60 s (360 s until written back) one by one
		// (fs/ext4/ialloc.c recently_deleted), so creating files right
		// after deleting thousands costs ~250 µs more per file: removing
		// the previous root here would charge it to the next iteration.
	}
}
