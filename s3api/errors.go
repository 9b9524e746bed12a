package s3api

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/smithy-go"
)

// ResponseError is an answer other than success (a 304 Not Modified
// included, as the SDK's): its status and what S3's error document said.
// It implements smithy.APIError and HTTPStatusCode, so the SDK's retry
// classification (aws/retry) and callers that ask for the code work as
// with the SDK's errors.
type ResponseError struct {
	Op          string // GetObject, PutObject, ListObjectsV2
	Bucket, Key string
	Endpoint    string // scheme and host the request went to
	StatusCode  int
	// Code and Message are the error document's; from the status ("NotFound",
	// "Not Found") when the answer had none, as the SDK takes them. Both are
	// "" when the body was not XML (Err says why): the SDK's error then is
	// no API error either, and the status alone classifies it.
	Code, Message string
	RequestID     string // x-amz-request-id, else the document's RequestId
	HostID        string // x-amz-id-2, else the document's HostId
	Fault         smithy.ErrorFault
	Err           error // why the error answer could not be read; nil if it could
	// skew is how far the server's clock (the answer's Date header) was
	// ahead of the node's; skewOK says whether the answer showed it.
	skew   time.Duration
	skewOK bool
}

var _ smithy.APIError = (*ResponseError)(nil)

func (e *ResponseError) Error() string {
	what := "api error " + e.Code + ": " + e.Message
	if e.Err != nil {
		what = e.Err.Error()
	}
	return fmt.Sprintf("s3 %s at %s: StatusCode: %d, RequestID: %s, HostID: %s, %s", e.Op, e.Endpoint, e.StatusCode, e.RequestID, e.HostID, what)
}

func (e *ResponseError) Unwrap() error                 { return e.Err }
func (e *ResponseError) ErrorCode() string             { return e.Code }
func (e *ResponseError) ErrorMessage() string          { return e.Message }
func (e *ResponseError) ErrorFault() smithy.ErrorFault { return e.Fault }

// HTTPStatusCode is the answer's status, for the SDK's retry classification.
func (e *ResponseError) HTTPStatusCode() int { return e.StatusCode }

// ServiceRequestID and ServiceHostID name the request to AWS support, as
// the SDK's S3 errors' methods of those names do.
func (e *ResponseError) ServiceRequestID() string { return e.RequestID }
func (e *ResponseError) ServiceHostID() string    { return e.HostID }

// NotModified reports whether err is S3's 304 answer to a GET whose
// If-None-Match still matched.
func NotModified(err error) bool {
	var re *ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotModified
}

// Status is the HTTP status of the answer err carries, 0 when there was
// none.
func Status(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// SendError is a request that got no answer, or whose answer was cut
// short: refused, reset or timed-out connections. It is a connection
// error to the SDK's retry classification, as the SDK's own
// (smithyhttp.RequestSendError) is.
type SendError struct {
	Op          string
	Bucket, Key string
	Err         error // from the HTTP client; it names the URL
}

func (e *SendError) Error() string         { return "s3 " + e.Op + ": " + e.Err.Error() }
func (e *SendError) Unwrap() error         { return e.Err }
func (e *SendError) ConnectionError() bool { return true }

// ClockSkewError is a refusal that a skewed clock causes
// (RequestTimeTooSkewed, SignatureDoesNotMatch and the other codes of the
// SDK's clockSkewCodes) from a server whose clock, by its answer's Date
// header, was more than 4 minutes from the time the request was signed
// at. It is retryable, as the SDK's retryableClockSkewError: the retry is
// signed at the server's time.
type ClockSkewError struct {
	Skew time.Duration // the server's clock minus the node's
	Err  error
}

func (e *ClockSkewError) Error() string {
	return fmt.Sprintf("probable clock skew (the node's clock is %s off from the server's): %v", absDuration(e.Skew).Round(time.Second), e.Err)
}

func (e *ClockSkewError) Unwrap() error { return e.Err }

// RetryableError makes the error retryable to the SDK's retryer.
func (e *ClockSkewError) RetryableError() bool { return true }

// ClockSkew is how far the server's clock was ahead of the node's (behind
// when negative) by the Date header of the answer err reports, and
// whether that answer had a Date to tell.
func ClockSkew(err error) (time.Duration, bool) {
	var ce *ClockSkewError
	if errors.As(err, &ce) {
		return ce.Skew, true
	}
	var re *ResponseError
	if errors.As(err, &re) && re.skewOK {
		return re.skew, true
	}
	return 0, false
}

// clockSkewCodes are the error codes a skewed clock may cause, as the
// SDK's (aws/retry clockSkewCodes).
var clockSkewCodes = map[string]bool{
	"InvalidSignatureException": true,
	"SignatureDoesNotMatch":     true,
	"AuthFailure":               true,
	"RequestTimeTooSkewed":      true,
	"AccessDeniedException":     true,
}

// skewThreshold is how far apart the signing time and the server's clock
// must be for a refusal to be taken for clock skew, as the SDK's.
const skewThreshold = 4 * time.Minute

// asClockSkew makes err a ClockSkewError when its code is one a skewed
// clock causes and the answer's Date was more than skewThreshold from the
// time the request was signed at (now+signed), as the SDK's
// wrapAsClockSkew.
func asClockSkew(err error, signed time.Duration, m clockSkew) error {
	var re *ResponseError
	if errors.As(err, &re) {
		re.skew, re.skewOK = m.skew, m.ok
	}
	var ae smithy.APIError
	if !m.ok || !errors.As(err, &ae) || !clockSkewCodes[ae.ErrorCode()] {
		return err
	}
	if absDuration(signed-m.skew) <= skewThreshold {
		return err
	}
	return &ClockSkewError{Skew: m.skew, Err: err}
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// errorDocument is S3's error answer, <Error><Code>…</Code>…</Error>.
type errorDocument struct {
	Code      string `xml:"Code"`
	Message   string `xml:"Message"`
	RequestID string `xml:"RequestId"`
	HostID    string `xml:"HostId"`
}

// responseError reads the error answer to req, whose body is b (readErr:
// why reading it stopped short), as the SDK's S3 deserializers do.
func (c *Client) responseError(r *request, req *http.Request, resp *http.Response, b []byte, readErr error) error {
	// The request as sent names the endpoint: resp.Request is whatever the
	// HTTP client put there (nil from some transports).
	e := &ResponseError{Op: r.op, Bucket: r.bucket, Key: r.key, Endpoint: req.URL.Scheme + "://" + req.URL.Host,
		StatusCode: resp.StatusCode, RequestID: resp.Header.Get("X-Amz-Request-Id"), HostID: resp.Header.Get("X-Amz-Id-2"),
		Fault: smithy.FaultUnknown}
	if readErr != nil {
		e.Err = fmt.Errorf("read the error answer: %w", readErr)
		return e
	}
	var doc errorDocument
	if err := xml.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil && err != io.EOF {
		e.Err = fmt.Errorf("decode the error answer: %w (answer starts %q)", err, b[:min(len(b), 120)])
		return e
	}
	if doc.Code == "" && doc.Message == "" {
		// As the SDK for S3: no code and no message (an empty body, a 304,
		// HTML that happens to be well-formed) take both from the status.
		text := http.StatusText(resp.StatusCode)
		doc.Code, doc.Message = strings.ReplaceAll(text, " ", ""), text
	}
	e.Code, e.Message = doc.Code, doc.Message
	if e.Code == "" {
		e.Code = "UnknownError"
	}
	if e.Message == "" {
		e.Message = "UnknownError"
	}
	// The SDK models NoSuchKey (GetObject) and NoSuchBucket
	// (ListObjectsV2) as client faults with fixed codes; every other code
	// is generic, its fault unknown.
	for _, modeled := range modeledErrors[r.op] {
		if strings.EqualFold(e.Code, modeled) {
			e.Message = doc.Message // the modeled error's message: "" when none
			e.Code, e.Fault = modeled, smithy.FaultClient
		}
	}
	if e.RequestID == "" {
		e.RequestID = doc.RequestID
	}
	if e.HostID == "" {
		e.HostID = doc.HostID
	}
	return e
}

// modeledErrors are the error codes the SDK's S3 client decodes into types
// of their own, per operation.
var modeledErrors = map[string][]string{
	opGet:  {"InvalidObjectState", "NoSuchKey"},
	opPut:  {"EncryptionTypeMismatch", "InvalidRequest", "InvalidWriteOffset", "TooManyParts"},
	opList: {"NoSuchBucket"},
}

// SigningHint says what to check for a refusal of the request's signature
// or time, "" for any other error: a clock more than 4 minutes from S3's
// (RequestTimeTooSkewed, or a signature refusal whose answer's Date
// showed the skew) is named as such, with the skew when the answer told
// it; any other signature refusal (SignatureDoesNotMatch) names the secret.
func SigningHint(err error) string {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return ""
	}
	code := ae.ErrorCode()
	skew, measured := ClockSkew(err)
	switch {
	case measured && clockSkewCodes[code] && absDuration(skew) > skewThreshold:
		return fmt.Sprintf("the node's clock is %s off from S3's: check chrony/NTP (chronyc tracking, timedatectl)", absDuration(skew).Round(time.Minute))
	case code == "RequestTimeTooSkewed":
		return "the node's clock is more than 15 minutes off from S3's: check chrony/NTP (chronyc tracking, timedatectl)"
	case code == "SignatureDoesNotMatch" || code == "InvalidSignatureException":
		return "S3 computed another signature for the request: check that AWS_SECRET_ACCESS_KEY is the secret of AWS_ACCESS_KEY_ID (or the instance profile's credentials), and that no proxy rewrites the request"
	}
	return ""
}
