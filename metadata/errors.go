package metadata

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Error is a failed metadata read. It names the metadata path and the IMDS
// endpoint, and when IMDS could not be reached or refused the session token it
// says what to check.
type Error struct {
	Path     string // relative to /latest/meta-data/ ("instance-id"), or PathIdentityDocument
	Endpoint string
	Attempts int    // HTTP requests sent for this call (token requests included)
	Status   int    // last HTTP status IMDS answered; 0 when it did not answer
	Last     string // last request sent, e.g. "PUT /latest/api/token"
	Err      error

	ctxErr error // the caller's context error, when it ended the call
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("metadata: get %s from %s: %v", e.Path, e.Endpoint, e.Err)
	if e.Attempts > 1 && e.Last != "" {
		if e.Status != 0 {
			msg += fmt.Sprintf(" (%d requests, last %s answered %d)", e.Attempts, e.Last, e.Status)
		} else {
			msg += fmt.Sprintf(" (%d requests, last %s got no answer)", e.Attempts, e.Last)
		}
	}
	if hint := e.hint(); hint != "" {
		msg += " (" + hint + ")"
	}
	return msg
}

// Unwrap gives the read's last error and, when the caller's context ended
// the call, the context error too (so errors.Is(err,
// context.DeadlineExceeded) holds whichever request the context cut).
func (e *Error) Unwrap() []error {
	if e.ctxErr != nil {
		return []error{e.Err, e.ctxErr}
	}
	return []error{e.Err}
}

// StatusCode is the last HTTP status IMDS answered with, or 0 when there was
// no answer (timeout, refused connection, canceled).
func (e *Error) StatusCode() int {
	if e.Status != 0 {
		return e.Status
	}
	return statusCode(e.Err)
}

const unreachableHint = "IMDS did not answer: check that the instance metadata service is enabled with" +
	" IMDSv2 tokens (http-endpoint enabled, http-tokens required or optional)," +
	" that the PUT response hop limit is at least 2 when the agent runs in a container," +
	" and that " + EndpointEnv + " points at the right endpoint"

// tokenForbiddenHint explains a 403 to the token request: IMDS answers it
// when the service is turned off for the instance, and to a request that
// came through a proxy. (A PUT response hop limit too low for a container
// drops the answer instead: that is the unreachable hint.)
const tokenForbiddenHint = "IMDS refuses session tokens when the instance metadata service is turned off for the instance" +
	" (aws ec2 modify-instance-metadata-options --http-endpoint enabled) and to a request through a proxy that adds" +
	" X-Forwarded-For; a PUT response hop limit too low for a container shows as no answer instead"

// redirectHint explains a 3xx answer: IMDS never redirects, so whatever
// answered is not IMDS, or something between rewrites its answers.
const redirectHint = "IMDS never redirects: check that " + EndpointEnv + " names the instance metadata service" +
	" or an emulator of it, and that nothing between the agent and it redirects requests"

// tokenNotServedHint explains a 404 to the token request: what answered
// does not serve IMDSv2 (an IMDSv1-only emulator, a proxy or another
// server), and the agent never reads without a token.
const tokenNotServedHint = "the endpoint does not serve IMDSv2 session tokens:" +
	" check that " + EndpointEnv + " names the instance metadata service, or an emulator that serves IMDSv2," +
	" and that IMDSv2 is enabled; the agent never falls back to IMDSv1"

func (e *Error) hint() string {
	switch code := e.StatusCode(); {
	case code == 0 && !errors.Is(e.ctxErr, context.Canceled) && e.Attempts > 0:
		return unreachableHint
	case code >= 300 && code <= 399:
		return redirectHint
	case code == http.StatusNotFound && e.tokenFailed():
		return tokenNotServedHint
	case code == http.StatusNotFound && e.Path == PathGroupTag:
		return "instance tags in metadata must be enabled to read the group"
	case code == http.StatusNotFound:
		return "IMDS does not serve this path on this instance"
	case code == http.StatusForbidden && e.Last == http.MethodPut+" "+tokenPath:
		return tokenForbiddenHint
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return "IMDS refused the IMDSv2 session token; check that IMDS is enabled and no proxy header (X-Forwarded-For) is added"
	}
	return ""
}

// Transient reports whether the read may succeed if tried again later:
// IMDS answered 5xx or 429 (throttled), or did not answer at all (refused,
// reset, timed out) while the caller still waited. 401, 403, 404 and
// malformed values are permanent.
func (e *Error) Transient() bool {
	code := e.StatusCode()
	switch {
	case code >= 500 || code == http.StatusTooManyRequests:
		return true
	case code == 0:
		return e.Attempts > 0 && e.ctxErr == nil
	}
	return false
}

// IsNotFound reports whether err is IMDS answering 404 to the GET of a
// path: the path is not served. A 404 to the session token request is not
// (the endpoint serves no IMDSv2 tokens, whatever the path).
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode() == http.StatusNotFound && !e.tokenFailed()
}

// tokenFailed reports whether the read failed on its session token request
// rather than on the GET of its path: the token request's error is in the
// chain, or (an Error made elsewhere, as the differential test's adapter of
// the SDK's client does) the last request sent was the token PUT.
func (e *Error) tokenFailed() bool {
	var te *tokenError
	return errors.As(e.Err, &te) || e.Last == http.MethodPut+" "+tokenPath
}

func statusCode(err error) int {
	var se interface{ HTTPStatusCode() int }
	if errors.As(err, &se) {
		return se.HTTPStatusCode()
	}
	return 0
}

// maxValue bounds one metadata value; real values are a few bytes.
const maxValue = 64 << 10

func readSmall(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxValue+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxValue {
		return nil, errTooLarge
	}
	return b, nil
}

var errTooLarge = fmt.Errorf("value longer than %d bytes", maxValue)
