package source_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent/source"
)

func newOpener(t *testing.T, o source.Options) *source.Opener {
	t.Helper()
	o.Logger = testLogger(t)
	op, err := source.NewOpener(context.Background(), o)
	if err != nil {
		t.Fatalf("NewOpener: %v", err)
	}
	return op
}

func readAll(t *testing.T, rc io.ReadCloser) string {
	t.Helper()
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func TestOpenerS3(t *testing.T) {
	archive := strings.Repeat("release bytes ", 100_000)
	f := newFakeS3(t, "releases")
	f.put(t, "releases", "shop/2026.11.20-1.tar.gz", archive)
	op := newOpener(t, source.Options{S3: s3ClientFor(t, f.URL)})
	ctx := ctxFor(t, 20*time.Second)

	rc, size, err := op.Open(ctx, "s3://releases/shop/2026.11.20-1.tar.gz")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if got := readAll(t, rc); got != archive || size != int64(len(archive)) {
		t.Errorf("read %d bytes, size %d; want %d", len(got), size, len(archive))
	}

	_, _, err = op.Open(ctx, "s3://releases/shop/missing.tar.gz")
	wantErrContains(t, err, "s3://releases/shop/missing.tar.gz", "no object")
	if !source.IsNotFound(err) {
		t.Errorf("IsNotFound(%v) = false", err)
	}
}

func TestOpenerFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.tar.gz")
	if err := os.WriteFile(path, []byte("archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	op := newOpener(t, source.Options{})
	rc, size, err := op.Open(ctxFor(t, 5*time.Second), "file://"+path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if got := readAll(t, rc); got != "archive" || size != 7 {
		t.Errorf("got %q size %d", got, size)
	}
	_, _, err = op.Open(ctxFor(t, 5*time.Second), "file://"+path+".missing")
	wantErrContains(t, err, "file://"+path+".missing", "no such file")
	_, _, err = op.Open(ctxFor(t, 5*time.Second), "gopher://x/y")
	wantErrContains(t, err, `"gopher://x/y"`, "s3://bucket/key")
}

// TestOpenerHTTPStreams proves Open returns while the server is still
// sending, and that a body streaming longer than the per-attempt timeout is
// not cut (the timeout covers only the wait for the headers).
func TestOpenerHTTPStreams(t *testing.T) {
	const part = "0123456789"
	const parts = 6
	firstRead := make(chan struct{})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(part)*parts))
		w.Write([]byte(part))
		w.(http.Flusher).Flush()
		select { // hold the rest until the client has read the first part
		case <-firstRead:
		case <-release:
			return
		}
		for range parts - 1 {
			time.Sleep(100 * time.Millisecond)
			w.Write([]byte(part))
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })

	op := newOpener(t, source.Options{Timeout: 200 * time.Millisecond})
	rc, size, err := op.Open(ctxFor(t, 10*time.Second), srv.URL+"/r.tar.gz")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer rc.Close()
	if size != int64(len(part)*parts) {
		t.Errorf("size %d, want %d", size, len(part)*parts)
	}
	buf := make([]byte, len(part))
	if _, err := io.ReadFull(rc, buf); err != nil || string(buf) != part {
		t.Fatalf("first part %q, %v", buf, err)
	}
	close(firstRead) // only now does the server send the rest, over 500ms
	rest, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading a body that streams past the attempt timeout: %v", err)
	}
	if len(rest) != len(part)*(parts-1) {
		t.Errorf("rest is %d bytes, want %d", len(rest), len(part)*(parts-1))
	}
}

func TestOpenerHTTPStatus(t *testing.T) {
	d := newDocServer(t, "archive")
	d.status.Store(http.StatusForbidden)
	op := newOpener(t, source.Options{Attempts: 3})
	_, _, err := op.Open(ctxFor(t, 10*time.Second), d.URL)
	wantErrContains(t, err, d.URL, "403 Forbidden", "presigned URL")
	if n := d.requests.Load(); n != 1 {
		t.Errorf("%d requests for a 403, want 1", n)
	}
}
