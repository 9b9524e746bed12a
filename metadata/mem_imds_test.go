package metadata_test

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
)

// newMemIMDS serves a fakeIMDS over in-memory connections (net.Pipe), for
// tests that run in a testing/synctest bubble: a goroutine blocked on a
// real socket keeps the bubble's clock from moving, one blocked on a pipe
// does not. Call it inside the bubble; pass dial as Options.DialContext.
// f.URL names an address no one listens on: only dial reaches it.
func newMemIMDS(t *testing.T, values map[string]string) (f *fakeIMDS, dial func(ctx context.Context, network, addr string) (net.Conn, error)) {
	t.Helper()
	f = &fakeIMDS{values: values, tokens: map[string]bool{}, stop: make(chan struct{}), URL: "http://169.254.169.254"}
	ln := &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
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
	dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
		client, server := net.Pipe()
		select {
		case ln.conns <- server:
			return client, nil
		case <-ln.closed:
			return nil, net.ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return f, dial
}

// pipeListener accepts the server ends of the pipes dial makes.
type pipeListener struct {
	conns  chan net.Conn
	once   sync.Once
	closed chan struct{}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "169.254.169.254:80" }
