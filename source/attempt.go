package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/nodeagent/nodeagent/backoff"
)

// attemptTimeoutError is an attempt that ran out of its own time. It reports
// itself as a connection error and a timeout, so both the SDK's retryer and
// go-retryablehttp retry it.
type attemptTimeoutError struct {
	after time.Duration
	err   error
}

func (e *attemptTimeoutError) Error() string {
	return fmt.Sprintf("no answer within %v: %v", e.after, e.err)
}
func (e *attemptTimeoutError) Unwrap() error         { return e.err }
func (e *attemptTimeoutError) Timeout() bool         { return true }
func (e *attemptTimeoutError) Temporary() bool       { return true }
func (e *attemptTimeoutError) ConnectionError() bool { return true }

var errAttemptTimeout = errors.New("attempt timed out")

// timedAttempt sends one request with its own deadline d. With whole, the
// deadline also covers reading the body; otherwise it ends at the response
// headers and the body streams under the caller's context only.
func timedAttempt(req *http.Request, d time.Duration, whole bool, send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(d, func() { cancel(errAttemptTimeout) })
	stop := func() { timer.Stop(); cancel(nil) }

	resp, err := send(req.WithContext(ctx))
	if err != nil {
		stop()
		if errors.Is(context.Cause(ctx), errAttemptTimeout) && req.Context().Err() == nil {
			return nil, &attemptTimeoutError{after: d, err: err}
		}
		return nil, err
	}
	if !whole && !timer.Stop() {
		// The deadline passed just as the headers arrived: treat as a timeout.
		resp.Body.Close()
		cancel(nil)
		return nil, &attemptTimeoutError{after: d, err: errAttemptTimeout}
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, ctx: ctx, parent: req.Context(), d: d, stop: stop}
	return resp, nil
}

// cancelOnClose releases the attempt's context when the body is closed and
// names a body read cut short by the attempt deadline.
type cancelOnClose struct {
	io.ReadCloser
	ctx, parent context.Context
	d           time.Duration
	stop        func()
	once        sync.Once
}

func (b *cancelOnClose) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && errors.Is(context.Cause(b.ctx), errAttemptTimeout) && b.parent.Err() == nil {
		err = &attemptTimeoutError{after: b.d, err: err}
	}
	return n, err
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.stop)
	return err
}

// timedDoer gives every request sent through an aws.HTTPClient (s3api's) its own
// deadline.
type timedDoer struct {
	next interface {
		Do(*http.Request) (*http.Response, error)
	}
	d     time.Duration
	whole bool
}

func (t timedDoer) Do(req *http.Request) (*http.Response, error) {
	return timedAttempt(req, t.d, t.whole, t.next.Do)
}

// timedTransport does the same for an http.Client.
type timedTransport struct {
	next  http.RoundTripper
	d     time.Duration
	whole bool
}

func (t timedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return timedAttempt(req, t.d, t.whole, t.next.RoundTrip)
}

// The retry schedule of every source request (package backoff): 200 ms
// doubling, capped at 5 s.
const (
	backoffBase = 200 * time.Millisecond
	backoffMax  = 5 * time.Second
)

var retryBackoff = backoff.Policy{Base: backoffBase, Max: backoffMax}
