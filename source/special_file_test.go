package source_test

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent/source"
)

// specialFiles makes a FIFO (no writer: opening it for reading blocks
// unless non-blocking), a socket and names a directory and a device.
func specialFiles(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return map[string]string{"fifo": fifo, "socket": sock, "directory": dir, "character device": "/dev/zero"}
}

// bounded runs f and fails the test if it has not returned within a
// generous bound: the old code blocked in open(2) on a FIFO for ever.
func bounded(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("%s still blocked after 20 s", what)
		return nil
	}
}

func TestFileSourcesOpenOnlyRegularFiles(t *testing.T) {
	for kind, p := range specialFiles(t) {
		t.Run(kind, func(t *testing.T) {
			url := "file://" + p
			src, err := source.New(context.Background(), url, source.Options{Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			err = bounded(t, "topology fetch", func() error {
				_, err := src.Fetch(context.Background(), "")
				return err
			})
			if err == nil || !strings.Contains(err.Error(), "not a regular file") || !strings.Contains(err.Error(), p) {
				t.Errorf("topology fetch of %s: %v; want a refusal naming it as not a regular file", kind, err)
			}
			op := newOpener(t, source.Options{})
			err = bounded(t, "release open", func() error {
				rc, _, err := op.Open(context.Background(), url)
				if err == nil {
					rc.Close()
				}
				return err
			})
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("release open of %s: %v; want a refusal as not a regular file", kind, err)
			}
		})
	}
}
