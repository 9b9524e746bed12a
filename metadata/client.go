package metadata

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/backoff"
)

// The IMDSv2 protocol: a session token from PUT /latest/api/token, asked for
// with a TTL header and answered with the TTL granted; every GET carries the
// token.
const (
	tokenPath   = "/latest/api/token"
	tokenHeader = "X-Aws-Ec2-Metadata-Token"
	ttlHeader   = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	userAgent   = "nodeagent (metadata; IMDSv2)"
)

// tokenTTL is the lifetime asked for a session token: 300 seconds, what the
// SDK's imds client asks for (its defaultTokenTTL), so IMDS sees the same
// requests from this client as it saw from the SDK's. An apply lives far
// less; a longer process (run) takes a new token, one PUT, on its first
// read after 270 s (renewBefore).
const tokenTTL = 300 * time.Second

// maxTokenTTL is the longest TTL IMDS grants, in seconds.
const maxTokenTTL = 21600

// renewBefore is how long before its expiry a token is renewed: a token
// sent in the last moments of its life can reach IMDS after it, which costs
// a 401 and a round trip more. A tenth of the TTL, at most a minute.
func renewBefore(ttl time.Duration) time.Duration {
	return min(ttl/10, time.Minute)
}

// Client is an IMDSv2 client: one session token, cached and renewed before
// it expires, sent with every read; never a tokenless (IMDSv1) request. Each
// read is retried on 500, 502, 503, 504 and 429 answers and on requests that
// got no answer, with package backoff's schedule and a deadline per attempt;
// a 401 drops the token, and the retry takes a new one. Requests never go
// through HTTP_PROXY (IMDS is link-local), and a redirect is never followed
// (IMDS never redirects): a 3xx answer fails the read, untried again, with
// its Location in the message. A Client is safe for concurrent
// use, and discovery, the region and the instance profile's credentials
// share one (Source.Client, awsenv.Env.UseIMDS).
//
// It stands in for the SDK's feature/ec2/imds client: through its
// middleware stack an apply's three reads took about 0.8 ms more than plain
// requests in a fresh process, besides the package's init. The metadata
// package's differential tests hold the two to the same requests, the same
// answers and the same error classification.
type Client struct {
	endpoint string // as configured, for messages
	base     string // scheme://host[:port]: the endpoint's path is not used, as the SDK's
	http     *http.Client
	attempts int
	policy   backoff.Policy
	log      *slog.Logger

	// fetching is held by the one caller that fetches a token; the others
	// wait for it, or for their context to end (why it is a channel and not
	// a mutex).
	fetching chan struct{}

	mu      sync.Mutex
	token   string
	renewAt time.Time // wall clock (Round(0)): IMDS ends a token in real time, across a hibernation too
}

// NewClient returns an IMDSv2 client as a Source uses: its own transport
// with no proxy, a deadline per attempt, bounded retries. Options.Root and
// Options.Proc are not used.
func NewClient(o Options) (*Client, error) {
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.Attempts <= 0 {
		o.Attempts = DefaultAttempts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	endpoint := o.Endpoint
	if endpoint == "" {
		endpoint = os.Getenv(EndpointEnv)
	}
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	u, err := checkEndpoint(endpoint)
	if err != nil {
		return nil, fmt.Errorf("metadata: IMDS endpoint %q (from the agent config or %s): %w", endpoint, EndpointEnv, err)
	}
	return &Client{
		endpoint: endpoint,
		base:     u.Scheme + "://" + u.Host,
		http:     newHTTPClient(o.CallTimeout, o.DialContext),
		attempts: o.Attempts,
		policy:   retryPolicy,
		log:      o.Logger.With(nodeagent.LogKeyComponent, "imds", nodeagent.LogKeyEndpoint, endpoint),
		fetching: make(chan struct{}, 1),
	}, nil
}

func checkEndpoint(endpoint string) (*url.URL, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme %q: %w", u.Scheme, errBadEndpoint)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("no host: %w", errBadEndpoint)
	}
	return u, nil
}

var errBadEndpoint = errors.New("want http://host[:port]")

// Endpoint is the IMDS endpoint the client asks.
func (c *Client) Endpoint() string { return c.endpoint }

// Metadata reads /latest/meta-data/<p> ("instance-id"). A failed read is
// an *Error whose Path is p.
func (c *Client) Metadata(ctx context.Context, p string) ([]byte, error) {
	return c.get(ctx, p, joinPath("/latest/meta-data", p))
}

// Dynamic reads /latest/dynamic/<p> ("instance-identity/document"). A
// failed read is an *Error whose Path is "dynamic/<p>" (for the identity
// document, PathIdentityDocument).
func (c *Client) Dynamic(ctx context.Context, p string) ([]byte, error) {
	return c.get(ctx, "dynamic/"+p, joinPath("/latest/dynamic", p))
}

// joinPath joins a path under base as the SDK does: cleaned, and a trailing
// slash kept (a listing such as iam/security-credentials/).
func joinPath(base, p string) string {
	j := path.Join(base, p)
	if strings.HasSuffix(p, "/") {
		j += "/"
	}
	return j
}

// get makes one read: a token (cached, or fetched with its own retries),
// then the GET, retried on transient failures and on a rejected token.
func (c *Client) get(ctx context.Context, name, urlPath string) ([]byte, error) {
	e := &Error{Path: name, Endpoint: c.endpoint}
	var body []byte
	err := c.retry(ctx, e, http.MethodGet+" "+urlPath, func() error {
		tok, err := c.sessionToken(ctx, e)
		if err != nil {
			return err
		}
		b, _, err := c.send(ctx, e, http.MethodGet, urlPath, tok)
		if code := statusCode(err); code == http.StatusUnauthorized {
			// IMDS no longer knows the token (expired early, IMDS
			// restarted): drop it, so the retry takes a new one.
			c.dropToken(tok)
		}
		body = b
		return err
	}, retryableGet)
	if err != nil {
		return nil, e.fail(ctx, err)
	}
	return body, nil
}

// tokenError is a failed session token request, after its own retries: the
// read that needed it fails with it, untried.
type tokenError struct{ err error }

func (e *tokenError) Error() string {
	return "get an IMDSv2 session token (PUT " + tokenPath + "): " + e.err.Error()
}
func (e *tokenError) Unwrap() error { return e.err }

// sessionToken returns the cached token, or fetches one. Its requests count
// in e.
func (c *Client) sessionToken(ctx context.Context, e *Error) (string, error) {
	if tok := c.cached(); tok != "" {
		return tok, nil
	}
	select {
	case c.fetching <- struct{}{}:
	case <-ctx.Done():
		return "", &tokenError{ctx.Err()}
	}
	defer func() { <-c.fetching }()
	if tok := c.cached(); tok != "" { // fetched while this caller waited
		return tok, nil
	}
	var tok string
	var ttl time.Duration
	err := c.retry(ctx, e, http.MethodPut+" "+tokenPath, func() error {
		b, h, err := c.send(ctx, e, http.MethodPut, tokenPath, "")
		if err != nil {
			return err
		}
		secs, perr := strconv.ParseInt(h.Get(ttlHeader), 10, 64)
		if perr != nil || secs <= 0 {
			return fmt.Errorf("the token answer's %s header %q is not a number of seconds", ttlHeader, h.Get(ttlHeader))
		}
		secs = min(secs, maxTokenTTL) // IMDS grants at most six hours
		if len(b) == 0 {
			return errors.New("the token answer is empty")
		}
		tok, ttl = string(b), time.Duration(secs)*time.Second
		return nil
	}, retryable)
	if err != nil {
		return "", &tokenError{err}
	}
	c.mu.Lock()
	c.token, c.renewAt = tok, time.Now().Round(0).Add(ttl-renewBefore(ttl))
	c.mu.Unlock()
	return tok, nil
}

func (c *Client) cached() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == "" || !time.Now().Round(0).Before(c.renewAt) {
		return ""
	}
	return c.token
}

// dropToken forgets tok, unless a newer token has replaced it already.
func (c *Client) dropToken(tok string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == tok {
		c.token = ""
	}
}

// statusError is an IMDS answer other than 2xx. (The *Error it ends up in
// names the path, and the last request when there were several.)
type statusError struct {
	code     int
	location string // a redirect's Location, resolved against the request; "" for other answers
}

func (e *statusError) Error() string {
	msg := fmt.Sprintf("IMDS answered %d %s", e.code, http.StatusText(e.code))
	if e.location != "" {
		msg += fmt.Sprintf(", a redirect to %s, which the agent does not follow", e.location)
	}
	return msg
}

// HTTPStatusCode is the answer's status.
func (e *statusError) HTTPStatusCode() int { return e.code }

// sendError is a request that got no (whole) answer: refused, reset or
// timed out. It does not unwrap: an attempt cut by its own timeout would
// otherwise read as context.DeadlineExceeded, which an *Error reports only
// when the caller's context ended the read (as with the SDK's client).
type sendError struct{ err error }

func (e *sendError) Error() string { return e.err.Error() }

// send makes one request and reads its answer, bounded by maxValue. It
// counts the request in e and records its status there.
func (c *Client) send(ctx context.Context, e *Error, method, urlPath, token string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+urlPath, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("User-Agent", userAgent)
	if method == http.MethodPut {
		req.Header.Set(ttlHeader, strconv.Itoa(int(tokenTTL/time.Second)))
	} else {
		req.Header.Set(tokenHeader, token)
	}
	e.Attempts++
	e.Last, e.Status = method+" "+urlPath, 0
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, &sendError{err}
	}
	defer resp.Body.Close()
	e.Status = resp.StatusCode
	b, rerr := readSmall(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		se := &statusError{code: resp.StatusCode}
		if loc, lerr := resp.Location(); lerr == nil && resp.StatusCode >= 300 && resp.StatusCode <= 399 {
			se.location = loc.Redacted()
		}
		return nil, nil, se
	}
	if errors.Is(rerr, errTooLarge) {
		return nil, nil, rerr
	}
	if rerr != nil {
		return nil, nil, &sendError{fmt.Errorf("read the answer to %s %s: %w", method, urlPath, rerr)}
	}
	return b, resp.Header, nil
}

// retryable says whether a failed request may succeed if sent again: no
// answer, or 500, 502, 503, 504 or 429 (the SDK's standard retryer's
// codes, with 429 added, as the SDK client was configured).
func retryable(err error) bool {
	var se *sendError
	if errors.As(err, &se) {
		return true
	}
	switch statusCode(err) {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable,
		http.StatusGatewayTimeout, http.StatusTooManyRequests:
		return true
	}
	return false
}

// retryableGet is retryable, and a 401 too (the token was dropped), but
// never a failed token: its own request was retried already.
func retryableGet(err error) bool {
	var te *tokenError
	if errors.As(err, &te) {
		return false
	}
	return retryable(err) || statusCode(err) == http.StatusUnauthorized
}

// retry calls once until it succeeds, fails in a way ok does not retry,
// the caller's context ends, or c.attempts calls were made, with package
// backoff's Retry; each retry is logged with its wait.
func (c *Client) retry(ctx context.Context, e *Error, op string, once func() error, ok func(error) bool) error {
	calls := 0
	_, err := backoff.RetryNotify(ctx, c.policy,
		func(err error) bool { calls++; return ok(err) && calls < c.attempts },
		func(context.Context) error { return once() },
		func(n int, wait time.Duration, err error) {
			c.log.Debug("retrying", nodeagent.LogKeyOp, op, nodeagent.LogKeyAttempt, n+2,
				nodeagent.LogKeyAttempts, c.attempts, nodeagent.LogKeyWait, wait, nodeagent.LogKeyError, err.Error())
		})
	return err
}

// fail completes e with the read's last error and, when the caller's
// context ended it, the context's error.
func (e *Error) fail(ctx context.Context, err error) *Error {
	e.Err, e.ctxErr = err, ctx.Err()
	return e
}
