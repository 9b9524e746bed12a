// Package lifecycle completes Auto Scaling lifecycle actions and sends their
// heartbeats over Auto Scaling's Query API (AutoScaling: the two calls,
// signed with the AWS SDK's SigV4 signer). Client implements
// nodeagent.LifecycleHooks: the agent completes the launch hook with CONTINUE
// once the node is ready (ABANDON when it gives up), sends heartbeats while a
// long apply runs, and completes the terminate hook after draining.
//
// Client retries throttling, 5xx and connection errors itself (classified
// by the SDK's retry rules), a bounded number of times with backoff and jitter.
// An action that no longer exists ("No active Lifecycle Action found": it
// timed out or was completed already) is not retried and is reported as
// ErrNoActiveAction.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/awsenv"
	"github.com/nodeagent/nodeagent/backoff"
)

// Defaults for a Client's retries.
const (
	DefaultAttempts   = 5
	DefaultBackoff    = 200 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
)

// ErrNoActiveAction means the lifecycle action is gone: its heartbeat
// timeout passed (the group then applied the hook's default result) or it
// was completed already. Retrying cannot help.
var ErrNoActiveAction = errors.New("no active lifecycle action: the hook already timed out or was completed")

// API is the part of the Auto Scaling API the Client uses, one try per
// call; *AutoScaling implements it.
type API interface {
	CompleteLifecycleAction(ctx context.Context, h nodeagent.LifecycleHook, result string) error
	RecordLifecycleActionHeartbeat(ctx context.Context, h nodeagent.LifecycleHook) error
}

// Client sends lifecycle actions. Its retry fields may be changed before
// first use.
type Client struct {
	log *slog.Logger

	mu     sync.Mutex
	api    API
	newAPI func(context.Context) (API, error) // builds api on first use

	// Attempts bounds the tries of one call (at least 1).
	Attempts int
	// Backoff is the first delay between tries; it doubles, with jitter, up
	// to MaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
}

var _ nodeagent.LifecycleHooks = (*Client)(nil)

// New returns a Client for the Auto Scaling API configured by env (nil
// means awsenv.New(os.Getenv)): region, credentials, and
// AWS_ENDPOINT_URL_AUTO_SCALING for a local endpoint. The API client is
// built on the first call, so a node that never completes a hook never
// resolves a region or credentials for it.
func New(env *awsenv.Env, log *slog.Logger) *Client {
	if env == nil {
		env = awsenv.New(nil)
	}
	c := NewWith(nil, log)
	c.newAPI = func(ctx context.Context) (API, error) {
		cfg, err := env.Config(ctx)
		if err != nil {
			return nil, fmt.Errorf("lifecycle: AWS config: %w", err)
		}
		api, err := NewAutoScaling(cfg, env.Endpoint("AUTO_SCALING"), nil)
		if err != nil {
			return nil, fmt.Errorf("lifecycle: %w", err)
		}
		return api, nil
	}
	return c
}

// client returns the Auto Scaling API, building it on first use.
func (c *Client) client(ctx context.Context) (API, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.api == nil {
		api, err := c.newAPI(ctx)
		if err != nil {
			return nil, err
		}
		c.api = api
	}
	return c.api, nil
}

// NewWith returns a Client using api; a nil log discards.
func NewWith(api API, log *slog.Logger) *Client {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{api: api, log: log, Attempts: DefaultAttempts, Backoff: DefaultBackoff, MaxBackoff: DefaultMaxBackoff}
}

// Heartbeat records a heartbeat for the action, extending its timeout.
func (c *Client) Heartbeat(ctx context.Context, h nodeagent.LifecycleHook) error {
	api, err := c.client(ctx)
	if err != nil {
		return fmt.Errorf("lifecycle: heartbeat %s: %w", describe(h), err)
	}
	err = c.retry(ctx, "heartbeat", h, func(ctx context.Context) error {
		return api.RecordLifecycleActionHeartbeat(ctx, h)
	})
	if err != nil {
		return fmt.Errorf("lifecycle: heartbeat %s: %w", describe(h), err)
	}
	return nil
}

// Complete completes the action with result (nodeagent.LifecycleContinue or
// nodeagent.LifecycleAbandon).
func (c *Client) Complete(ctx context.Context, h nodeagent.LifecycleHook, result string) error {
	if result != nodeagent.LifecycleContinue && result != nodeagent.LifecycleAbandon {
		return fmt.Errorf("lifecycle: complete %s: result %q is neither %s nor %s",
			describe(h), result, nodeagent.LifecycleContinue, nodeagent.LifecycleAbandon)
	}
	api, err := c.client(ctx)
	if err != nil {
		return fmt.Errorf("lifecycle: complete %s with %s: %w", describe(h), result, err)
	}
	err = c.retry(ctx, "complete", h, func(ctx context.Context) error {
		return api.CompleteLifecycleAction(ctx, h, result)
	})
	if err != nil {
		return fmt.Errorf("lifecycle: complete %s with %s: %w", describe(h), result, err)
	}
	c.log.Info("lifecycle action completed", nodeagent.LogKeyGroup, h.Group, nodeagent.LogKeyHook, h.Hook, nodeagent.LogKeyInstance, h.InstanceID, nodeagent.LogKeyResult, result)
	return nil
}

func describe(h nodeagent.LifecycleHook) string {
	return fmt.Sprintf("hook %s of group %s for %s", h.Hook, h.Group, h.InstanceID)
}

// retryables are the errors worth another try: the SDK's own list (5xx,
// throttling codes, connection errors) plus Auto Scaling's ResourceContention.
var retryables = retry.IsErrorRetryables(append([]retry.IsErrorRetryable{
	retry.RetryableErrorCode{Codes: map[string]struct{}{"ResourceContention": {}}},
}, retry.DefaultRetryables...))

// retry calls call until it succeeds, fails for good, runs out of attempts
// or ctx ends.
func (c *Client) retry(ctx context.Context, op string, h nodeagent.LifecycleHook, call func(context.Context) error) error {
	attempts := max(c.Attempts, 1)
	policy := backoff.Policy{Base: c.Backoff, Max: c.MaxBackoff}
	for attempt := 1; ; attempt++ {
		err := call(ctx)
		if err == nil {
			return nil
		}
		if noActiveAction(err) {
			return fmt.Errorf("%w: %w", ErrNoActiveAction, err)
		}
		if ctx.Err() != nil || retryables.IsErrorRetryable(err) != aws.TrueTernary {
			return err
		}
		if attempt == attempts {
			return fmt.Errorf("gave up after %d attempts: %w", attempts, err)
		}
		wait := policy.Delay(attempt - 1)
		c.log.Warn("lifecycle call failed, retrying", nodeagent.LogKeyOp, op, nodeagent.LogKeyGroup, h.Group, nodeagent.LogKeyHook, h.Hook,
			nodeagent.LogKeyInstance, h.InstanceID, nodeagent.LogKeyAttempt, attempt, nodeagent.LogKeyAttempts, attempts, nodeagent.LogKeyWait, wait, nodeagent.LogKeyError, err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// noActiveAction reports whether err is Auto Scaling's ValidationError for
// an action that does not exist (any more).
func noActiveAction(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ValidationError" &&
		strings.Contains(ae.ErrorMessage(), "No active Lifecycle Action found")
}

// Heartbeats records a heartbeat for h every interval until ctx ends, for
// work that may outlast the hook's heartbeat timeout. Failures are logged,
// not fatal; once the action is gone (ErrNoActiveAction) it stops.
func Heartbeats(ctx context.Context, hooks nodeagent.LifecycleHooks, h nodeagent.LifecycleHook, interval time.Duration, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := hooks.Heartbeat(ctx, h)
		switch {
		case err == nil:
			log.Debug("lifecycle heartbeat sent", nodeagent.LogKeyGroup, h.Group, nodeagent.LogKeyHook, h.Hook, nodeagent.LogKeyInstance, h.InstanceID)
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrNoActiveAction):
			log.Warn("lifecycle heartbeats stop: the action is gone", nodeagent.LogKeyError, err)
			return
		default:
			log.Warn("lifecycle heartbeat failed", nodeagent.LogKeyError, err)
		}
	}
}

// Transient reports whether a failed Auto Scaling call may succeed if made
// again later: 5xx, throttling, ResourceContention, connection errors (the
// calls Client retries itself, a bounded number of times).
func Transient(err error) bool {
	return err != nil && !errors.Is(err, ErrNoActiveAction) && retryables.IsErrorRetryable(err) == aws.TrueTernary
}
