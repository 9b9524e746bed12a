// Package memnet is a net.Listener of in-memory connections, for tests
// that run in a testing/synctest bubble. The bubble's clock moves only when
// every goroutine in it is durably blocked; a goroutine blocked on a real
// socket (a listener's Accept, a keep-alive connection's read loop) never
// is, one blocked on a net.Pipe is. A server serves the Listener, and the
// client side connects with its Dial (as http.Transport.DialContext).
package memnet

import (
	"context"
	"net"
	"sync"
)

// Listener accepts the server ends of the pipes Dial makes. Create it, and
// serve it, inside the bubble.
type Listener struct {
	addr   string
	conns  chan net.Conn
	once   sync.Once
	closed chan struct{}
}

// Listen returns a Listener whose Addr is addr (any name: nothing resolves
// it, Dial ignores the address it is given).
func Listen(addr string) *Listener {
	return &Listener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

// Accept waits for a Dial or Close.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close makes Accept and Dial fail from now on.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr is the address given to Listen.
func (l *Listener) Addr() net.Addr { return addr(l.addr) }

// Dial connects to the listener, whatever the address; it has
// http.Transport.DialContext's signature.
func (l *Listener) Dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type addr string

func (addr) Network() string  { return "memnet" }
func (a addr) String() string { return string(a) }
