package metadata_test

import (
	"context"
	"net"
	"net/http"
	"testing"

	"github.com/nodeagent/nodeagent/test/memnet"
)

// newMemIMDS serves a fakeIMDS over in-memory connections (test/memnet),
// for tests that run in a testing/synctest bubble. Call it inside the
// bubble; pass dial as Options.DialContext. f.URL names the usual IMDS
// address, which only dial reaches.
func newMemIMDS(t *testing.T, values map[string]string) (f *fakeIMDS, dial func(ctx context.Context, network, addr string) (net.Conn, error)) {
	t.Helper()
	f = &fakeIMDS{values: values, tokens: map[string]bool{}, stop: make(chan struct{}), URL: "http://169.254.169.254"}
	ln := memnet.Listen("169.254.169.254:80")
	srv := &http.Server{Handler: f}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		close(f.stop) // release hung handlers first, or Close waits for them
		_ = srv.Close()
		<-served
	})
	return f, ln.Dial
}
