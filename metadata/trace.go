package metadata

import (
	"context"
	"net/http"
	"sync"
)

// callTrace records what IMDS answered during one metadata call, across the
// token request and all retries. The SDK wraps token failures in an error
// type that does not unwrap, so the trace is how an Error learns the last
// HTTP status and the number of attempts.
type callTrace struct {
	mu       sync.Mutex
	attempts int
	status   int    // last HTTP status; 0 when the last attempt got no answer
	last     string // "PUT /latest/api/token"
}

type traceKey struct{}

func withTrace(ctx context.Context) (context.Context, *callTrace) {
	t := &callTrace{}
	return context.WithValue(ctx, traceKey{}, t), t
}

func (t *callTrace) snapshot() (attempts, status int, last string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.attempts, t.status, t.last
}

// tracingTransport records every round trip in the request's callTrace.
type tracingTransport struct{ next http.RoundTripper }

func (tt tracingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := tt.next.RoundTrip(req)
	if t, ok := req.Context().Value(traceKey{}).(*callTrace); ok {
		t.mu.Lock()
		t.attempts++
		t.last = req.Method + " " + req.URL.Path
		t.status = 0
		if err == nil {
			t.status = resp.StatusCode
		}
		t.mu.Unlock()
	}
	return resp, err
}
