package agent_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nodeagent/nodeagent"
)

// The pieces a run test needs to run inside a testing/synctest bubble,
// where time only moves when every goroutine of the bubble is durably
// blocked: real sockets (a TCP listener's Accept, a keep-alive
// connection's read loop) never are, so the agent's endpoints listen on a
// memnet.Listener (the test's requests reach them through its Dial), and
// the smoke checks reach a stand-in Apache through apacheTransport, all in
// memory.

// apacheTransport answers every smoke check's request as the stand-in
// Apache on 127.0.0.1 does, without a connection.
type apacheTransport struct{}

func (apacheTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	body := "Welcome to the shop; nodeagent-php-ok\n"
	return &http.Response{
		StatusCode:    http.StatusOK,
		Status:        "200 OK",
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}, nil
}

// watchSource is an objectStore's source that also implements
// nodeagent.Watcher: the test calls changed() as fsnotify would, so that
// settle and splay run on the bubble's clock.
type watchSource struct {
	*fakeSource

	mu   sync.Mutex
	send func(why string)
}

var _ nodeagent.Watcher = (*watchSource)(nil)

func (w *watchSource) Watch(ctx context.Context, changed func(why string)) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.send != nil {
		return errors.New("watchSource: Watch called twice")
	}
	w.send = changed
	return nil
}

// changed reports one raw change event, as one fsnotify event would.
func (w *watchSource) changed() {
	w.mu.Lock()
	send := w.send
	w.mu.Unlock()
	send("write")
}

// fetchTimes returns the times at which the store answered a fetch.
func (o *objectStore) fetchTimes() []time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]time.Time(nil), o.times...)
}
