package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/smithy-go"

	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/lifecycle"
)

const asNamespace = "http://autoscaling.amazonaws.com/doc/2011-01-01/"

// fakeAutoScaling speaks the Auto Scaling Query protocol for the two
// lifecycle actions: form-encoded POSTs signed with SigV4, XML answers in the
// 2011-01-01 namespace, ErrorResponse documents for errors. It records every
// call; answer decides each reply (nil: success).
type fakeAutoScaling struct {
	t      *testing.T
	mu     sync.Mutex
	calls  []url.Values
	answer func(n int, form url.Values) (status int, code, message string)
}

func (f *fakeAutoScaling) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		f.fail(w, http.StatusBadRequest, "InvalidAction", "want POST /, got "+r.Method+" "+r.URL.Path)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		f.fail(w, http.StatusBadRequest, "MalformedInput", "content type "+ct)
		return
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDNODEAGENT/") || !strings.Contains(auth, "/us-east-1/autoscaling/aws4_request") {
		f.fail(w, http.StatusForbidden, "IncompleteSignature", "authorization "+auth)
		return
	}
	if err := r.ParseForm(); err != nil {
		f.fail(w, http.StatusBadRequest, "MalformedInput", err.Error())
		return
	}
	form := r.PostForm
	f.mu.Lock()
	f.calls = append(f.calls, form)
	n := len(f.calls)
	f.mu.Unlock()

	action := form.Get("Action")
	if form.Get("Version") != "2011-01-01" || (action != "CompleteLifecycleAction" && action != "RecordLifecycleActionHeartbeat") {
		f.fail(w, http.StatusBadRequest, "InvalidAction", "unknown action "+action+" version "+form.Get("Version"))
		return
	}
	if f.answer != nil {
		if status, code, msg := f.answer(n, form); status != 0 {
			f.fail(w, status, code, msg)
			return
		}
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<%sResponse xmlns="%s">
  <%sResult/>
  <ResponseMetadata><RequestId>req-%d</RequestId></ResponseMetadata>
</%sResponse>
`, action, asNamespace, action, n, action)
}

func (f *fakeAutoScaling) fail(w http.ResponseWriter, status int, code, msg string) {
	typ := "Sender"
	if status >= 500 {
		typ = "Receiver"
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<ErrorResponse xmlns="%s">
  <Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error>
  <RequestId>req-err</RequestId>
</ErrorResponse>
`, asNamespace, typ, code, msg)
}

func (f *fakeAutoScaling) recorded() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.calls...)
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newClient starts the fake and returns a Client built by lifecycle.New from
// the SDK's environment, pointed at the fake.
func newClient(t *testing.T, answer func(int, url.Values) (int, string, string)) (*lifecycle.Client, *fakeAutoScaling) {
	t.Helper()
	fake := &fakeAutoScaling{t: t, answer: answer}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	t.Setenv("AWS_ENDPOINT_URL_AUTO_SCALING", srv.URL)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDNODEAGENT")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	c := lifecycle.New(nil, testLogger(t))
	c.Backoff, c.MaxBackoff = 5*time.Millisecond, 20*time.Millisecond
	return c, fake
}

var hook = nodeagent.LifecycleHook{Group: "shop-web", Hook: "nodeagent-launch", InstanceID: "i-0a1b2c3d4e5f60009"}

func TestCompleteSendsTheRealForm(t *testing.T) {
	for _, result := range []string{nodeagent.LifecycleContinue, nodeagent.LifecycleAbandon} {
		t.Run(result, func(t *testing.T) {
			c, fake := newClient(t, nil)
			if err := c.Complete(t.Context(), hook, result); err != nil {
				t.Fatalf("Complete: %v", err)
			}
			want := []url.Values{{
				"Action":                {"CompleteLifecycleAction"},
				"Version":               {"2011-01-01"},
				"AutoScalingGroupName":  {"shop-web"},
				"LifecycleHookName":     {"nodeagent-launch"},
				"InstanceId":            {"i-0a1b2c3d4e5f60009"},
				"LifecycleActionResult": {result},
			}}
			if diff := cmp.Diff(want, fake.recorded()); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHeartbeatSendsTheRealForm(t *testing.T) {
	c, fake := newClient(t, nil)
	if err := c.Heartbeat(t.Context(), hook); err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	want := []url.Values{{
		"Action":               {"RecordLifecycleActionHeartbeat"},
		"Version":              {"2011-01-01"},
		"AutoScalingGroupName": {"shop-web"},
		"LifecycleHookName":    {"nodeagent-launch"},
		"InstanceId":           {"i-0a1b2c3d4e5f60009"},
	}}
	if diff := cmp.Diff(want, fake.recorded()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestRetries(t *testing.T) {
	const noActive = "No active Lifecycle Action found with instance ID i-0a1b2c3d4e5f60009"
	tests := []struct {
		name         string
		answer       func(n int, form url.Values) (int, string, string)
		heartbeat    bool
		wantCalls    int
		wantErr      []string // substrings; nil means success
		wantNoActive bool
	}{
		{
			name: "503 twice then success",
			answer: func(n int, _ url.Values) (int, string, string) {
				if n <= 2 {
					return 503, "ServiceUnavailable", "Service is unavailable"
				}
				return 0, "", ""
			},
			wantCalls: 3,
		},
		{
			name: "503 forever is bounded",
			answer: func(int, url.Values) (int, string, string) {
				return 503, "ServiceUnavailable", "Service is unavailable"
			},
			wantCalls: 4,
			wantErr:   []string{"lifecycle: complete hook nodeagent-launch of group shop-web for i-0a1b2c3d4e5f60009 with CONTINUE: gave up after 4 attempts", "StatusCode: 503", "ServiceUnavailable"},
		},
		{
			name: "throttling is retried",
			answer: func(n int, _ url.Values) (int, string, string) {
				if n == 1 {
					return 400, "Throttling", "Rate exceeded"
				}
				return 0, "", ""
			},
			wantCalls: 2,
		},
		{
			name: "resource contention is retried",
			answer: func(n int, _ url.Values) (int, string, string) {
				if n == 1 {
					return 500, "ResourceContention", "You already have a pending update to an Auto Scaling resource"
				}
				return 0, "", ""
			},
			wantCalls: 2,
		},
		{
			name:         "no active action is not retried",
			answer:       func(int, url.Values) (int, string, string) { return 400, "ValidationError", noActive },
			wantCalls:    1,
			wantErr:      []string{"lifecycle: complete hook nodeagent-launch of group shop-web for i-0a1b2c3d4e5f60009 with CONTINUE: no active lifecycle action: the hook already timed out or was completed", noActive},
			wantNoActive: true,
		},
		{
			name:         "heartbeat for a gone action",
			heartbeat:    true,
			answer:       func(int, url.Values) (int, string, string) { return 400, "ValidationError", noActive },
			wantCalls:    1,
			wantErr:      []string{"lifecycle: heartbeat hook nodeagent-launch of group shop-web for i-0a1b2c3d4e5f60009: no active lifecycle action"},
			wantNoActive: true,
		},
		{
			name: "other validation errors are not retried",
			answer: func(int, url.Values) (int, string, string) {
				return 400, "ValidationError", "1 validation error detected"
			},
			wantCalls: 1,
			wantErr:   []string{"ValidationError", "1 validation error detected"},
		},
		{
			name: "access denied is not retried",
			answer: func(int, url.Values) (int, string, string) {
				return 403, "AccessDenied", "not authorized to perform autoscaling:CompleteLifecycleAction"
			},
			wantCalls: 1,
			wantErr:   []string{"AccessDenied"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, fake := newClient(t, tt.answer)
			c.Attempts = 4
			var err error
			if tt.heartbeat {
				err = c.Heartbeat(t.Context(), hook)
			} else {
				err = c.Complete(t.Context(), hook, nodeagent.LifecycleContinue)
			}
			if got := len(fake.recorded()); got != tt.wantCalls {
				t.Errorf("%d calls, want %d", got, tt.wantCalls)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("error %v, want success", err)
				}
				return
			}
			if err == nil {
				t.Fatal("success, want an error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if got := errors.Is(err, lifecycle.ErrNoActiveAction); got != tt.wantNoActive {
				t.Errorf("errors.Is(err, ErrNoActiveAction) = %v, want %v", got, tt.wantNoActive)
			}
		})
	}
}

func TestCompleteRefusesUnknownResult(t *testing.T) {
	c, fake := newClient(t, nil)
	err := c.Complete(t.Context(), hook, "MAYBE")
	if err == nil || !strings.Contains(err.Error(), `result "MAYBE" is neither CONTINUE nor ABANDON`) {
		t.Errorf("error %v", err)
	}
	if n := len(fake.recorded()); n != 0 {
		t.Errorf("%d calls for an invalid result", n)
	}
}

func TestCompleteStopsWhenContextEnds(t *testing.T) {
	c, fake := newClient(t, func(int, url.Values) (int, string, string) { return 503, "ServiceUnavailable", "down" })
	c.Attempts, c.Backoff, c.MaxBackoff = 100, time.Second, time.Second
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Complete(ctx, hook, nodeagent.LifecycleContinue)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want the context's deadline", err)
	}
	if err == nil || !strings.Contains(err.Error(), "StatusCode: 503") {
		t.Errorf("error %v does not carry the last API error", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Complete took %s after its context ended", elapsed)
	}
	if n := len(fake.recorded()); n < 1 || n > 2 {
		t.Errorf("%d calls within a 100ms context and 1s backoff", n)
	}
}

// heartbeatAPI is the Auto Scaling API in memory, for the heartbeat tests
// that run on a synctest bubble's clock (the Query protocol itself is
// TestHeartbeatSendsTheRealForm's): it records when each heartbeat came and
// answers with err(n) for the n-th (from 1).
type heartbeatAPI struct {
	err func(n int) error

	mu    sync.Mutex
	times []time.Time
}

func (f *heartbeatAPI) CompleteLifecycleAction(context.Context, nodeagent.LifecycleHook, string) error {
	return errors.New("heartbeatAPI: CompleteLifecycleAction called by a heartbeat test")
}

func (f *heartbeatAPI) RecordLifecycleActionHeartbeat(_ context.Context, in nodeagent.LifecycleHook) error {
	f.mu.Lock()
	f.times = append(f.times, time.Now())
	n := len(f.times)
	f.mu.Unlock()
	if in != hook {
		return fmt.Errorf("heartbeatAPI: heartbeat for %+v, want %+v", in, hook)
	}
	if f.err != nil {
		return f.err(n)
	}
	return nil
}

func (f *heartbeatAPI) recorded() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.times...)
}

func TestHeartbeats(t *testing.T) {
	t.Run("every interval until the context ends", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			const every = 25 * time.Millisecond
			api := &heartbeatAPI{}
			c := lifecycle.NewWith(api, testLogger(t))
			start := time.Now()
			// Ends between the 11th and the 12th tick.
			ctx, cancel := context.WithTimeout(t.Context(), 11*every+every/2)
			defer cancel()
			lifecycle.Heartbeats(ctx, c, hook, every, testLogger(t))
			if took := time.Since(start); took != 11*every+every/2 {
				t.Errorf("Heartbeats returned %s after the start, want when its context ended", took)
			}
			times := api.recorded()
			if len(times) != 11 {
				t.Errorf("%d heartbeats in %s at %s, want 11", len(times), 11*every+every/2, every)
			}
			for i, at := range times {
				if got := at.Sub(start); got != time.Duration(i+1)*every {
					t.Errorf("heartbeat %d at %s, want %s", i+1, got, time.Duration(i+1)*every)
				}
			}
		})
	})
	t.Run("failures are not fatal", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			const every = 20 * time.Millisecond
			api := &heartbeatAPI{err: func(n int) error {
				if n == 1 {
					return &smithy.GenericAPIError{Code: "AccessDenied", Message: "no", Fault: smithy.FaultClient}
				}
				return nil
			}}
			c := lifecycle.NewWith(api, testLogger(t))
			ctx, cancel := context.WithTimeout(t.Context(), 10*every+every/2)
			defer cancel()
			lifecycle.Heartbeats(ctx, c, hook, every, testLogger(t))
			if n := len(api.recorded()); n != 10 {
				t.Errorf("%d heartbeats in %s at %s with the first refused, want 10: the first failure stopped them", n, 10*every+every/2, every)
			}
		})
	})
	t.Run("stops once the action is gone", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			const every = 20 * time.Millisecond
			api := &heartbeatAPI{err: func(int) error {
				return &smithy.GenericAPIError{Code: "ValidationError", Message: "No active Lifecycle Action found with instance ID " + hook.InstanceID, Fault: smithy.FaultClient}
			}}
			c := lifecycle.NewWith(api, testLogger(t))
			start := time.Now()
			ctx, cancel := context.WithTimeout(t.Context(), 10*every)
			defer cancel()
			lifecycle.Heartbeats(ctx, c, hook, every, testLogger(t))
			if n := len(api.recorded()); n != 1 {
				t.Errorf("%d heartbeats, want 1 then stop", n)
			}
			if took := time.Since(start); took != every || ctx.Err() != nil {
				t.Errorf("Heartbeats returned %s after the start (context: %v), want at the first heartbeat, %s", took, ctx.Err(), every)
			}
		})
	})
}
