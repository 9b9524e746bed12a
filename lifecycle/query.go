package lifecycle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/awsenv"
)

// The Auto Scaling Query API: form-encoded POSTs, version 2011-01-01,
// signed with SigV4 for service "autoscaling".
const (
	apiVersion     = "2011-01-01"
	signingService = "autoscaling"
	formType       = "application/x-www-form-urlencoded"
	userAgent      = "nodeagent (lifecycle; Auto Scaling Query API)"

	actionComplete  = "CompleteLifecycleAction"
	actionHeartbeat = "RecordLifecycleActionHeartbeat"
)

// DefaultCallTimeout bounds one Auto Scaling request, from dial to the end
// of the answer's body. Client retries a request that timed out.
const DefaultCallTimeout = 10 * time.Second

// maxBody bounds how much of an answer is read: Auto Scaling's answers to
// the two lifecycle actions are a few hundred bytes.
const maxBody = 64 << 10

// AutoScaling makes the two Auto Scaling calls the agent needs,
// CompleteLifecycleAction and RecordLifecycleActionHeartbeat, over the
// Query protocol, signed with the SDK's SigV4 signer. It stands in for the
// SDK's service/autoscaling client, whose endpoint tables and types cost
// every process of the agent about 1.5 ms at start although a node makes
// these calls a few times in its life; lifecycle's differential test holds
// the two to the same requests and the same error classification.
type AutoScaling struct {
	endpoint    string // base URL, e.g. https://autoscaling.us-east-1.amazonaws.com
	url         string // where requests are posted: endpoint, with "/" for no path
	region      string
	credentials aws.CredentialsProvider // nil: requests go unsigned
	http        aws.HTTPClient
	signer      *v4.Signer
}

var _ API = (*AutoScaling)(nil)

// NewAutoScaling returns a client for the region and credentials of cfg.
// endpoint "" means AWS's regional endpoint (RegionalEndpoint); hc nil
// means the SDK's default HTTP client (HTTP_PROXY and HTTPS_PROXY honoured,
// as the SDK's autoscaling client did) with DefaultCallTimeout.
func NewAutoScaling(cfg aws.Config, endpoint string, hc aws.HTTPClient) (*AutoScaling, error) {
	if endpoint == "" {
		ep, err := RegionalEndpoint(cfg.Region)
		if err != nil {
			return nil, err
		}
		endpoint = ep
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("auto scaling endpoint %q is not an http(s) URL: set AWS_ENDPOINT_URL_AUTO_SCALING to one, or unset it for AWS's own", endpoint)
	}
	// The SDK posts to the endpoint's path, "/" when it has none.
	if u.Path == "" {
		u.Path = "/"
	}
	u.RawPath = ""
	if hc == nil {
		hc = awshttp.NewBuildableClient().WithTimeout(DefaultCallTimeout)
	}
	return &AutoScaling{
		endpoint:    endpoint,
		url:         u.String(),
		region:      cfg.Region,
		credentials: cfg.Credentials,
		http:        hc,
		signer:      v4.NewSigner(),
	}, nil
}

// RegionalEndpoint returns AWS's Auto Scaling endpoint for region, as the
// SDK's endpoint rules resolve it with FIPS and dual-stack off (their
// default): https://autoscaling.<region>.<partition's DNS suffix>.
func RegionalEndpoint(region string) (string, error) {
	if !awsenv.ValidRegion(region) {
		return "", fmt.Errorf("auto scaling endpoint: region %q is not a valid AWS region name: set AWS_REGION", region)
	}
	return "https://autoscaling." + region + "." + awsenv.DNSSuffix(region), nil
}

// CompleteLifecycleAction completes h's lifecycle action with result.
func (a *AutoScaling) CompleteLifecycleAction(ctx context.Context, h nodeagent.LifecycleHook, result string) error {
	return a.call(ctx, actionComplete, h, result)
}

// RecordLifecycleActionHeartbeat extends h's lifecycle action's timeout.
func (a *AutoScaling) RecordLifecycleActionHeartbeat(ctx context.Context, h nodeagent.LifecycleHook) error {
	return a.call(ctx, actionHeartbeat, h, "")
}

// form is the request body: url.Values.Encode sorts the keys and
// query-escapes the values, exactly as the SDK's query encoder.
func form(action string, h nodeagent.LifecycleHook, result string) string {
	v := url.Values{
		"Action":               {action},
		"Version":              {apiVersion},
		"AutoScalingGroupName": {h.Group},
		"LifecycleHookName":    {h.Hook},
		"InstanceId":           {h.InstanceID},
	}
	if result != "" {
		v.Set("LifecycleActionResult", result)
	}
	return v.Encode()
}

func (a *AutoScaling) call(ctx context.Context, action string, h nodeagent.LifecycleHook, result string) error {
	// As the SDK: a context that has already ended is its own error, not
	// a canceled request (callers stop on ctx.Err() before classifying).
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("auto scaling %s at %s: %w", action, a.endpoint, err)
	}
	body := form(action, h, result)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("auto scaling %s at %s: %w", action, a.endpoint, err)
	}
	req.Header.Set("Content-Type", formType)
	// Names the agent in CloudTrail's userAgent (not signed).
	req.Header.Set("User-Agent", userAgent)
	if err := a.sign(ctx, req, body); err != nil {
		return fmt.Errorf("auto scaling %s at %s: %w", action, a.endpoint, err)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		// As the SDK: a request ended by its context is canceled (never
		// retried), any other failure to get an answer a connection error
		// (retried).
		if ctx.Err() != nil {
			return fmt.Errorf("auto scaling %s at %s: %w", action, a.endpoint, &smithy.CanceledError{Err: ctx.Err()})
		}
		return &SendError{Action: action, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return a.responseError(action, resp, fmt.Errorf("read the answer: %w", err))
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return a.responseError(action, resp, decodeError(b))
	}
	if err := checkAnswer(b); err != nil {
		return a.responseError(action, resp, err)
	}
	return nil
}

// sign signs req for Auto Scaling with the credentials, if any: an Env
// without credentials sends requests unsigned, as the SDK did, and AWS
// answers them with an error naming the missing signature.
func (a *AutoScaling) sign(ctx context.Context, req *http.Request, body string) error {
	if a.credentials == nil {
		return nil
	}
	creds, err := a.credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("retrieve credentials: %w", err)
	}
	sum := sha256.Sum256([]byte(body))
	return a.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), signingService, a.region, time.Now().UTC())
}

// responseError wraps err with the answer's status and request id: the
// error document's, else the x-amzn-RequestId header's, as the SDK takes it.
func (a *AutoScaling) responseError(action string, resp *http.Response, err error) error {
	id := resp.Header.Get("X-Amzn-Requestid")
	var ae *APIError
	if errors.As(err, &ae) && ae.RequestID != "" {
		id = ae.RequestID
	}
	return &ResponseError{Action: action, Endpoint: a.endpoint, StatusCode: resp.StatusCode, RequestID: id, Err: err}
}

// checkAnswer accepts a success answer: empty, or a well-formed XML
// document whose root is an <…Response>. (The SDK's decoder, too, refuses
// a body that is not XML and does not check which action's answer it is.)
func checkAnswer(b []byte) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	root := ""
	for {
		tok, err := d.Token()
		if err == io.EOF && root != "" {
			return nil
		}
		if err != nil {
			return fmt.Errorf("decode the answer: %w (answer starts %q)", err, snippet(b))
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
			if !strings.HasSuffix(root, "Response") {
				return fmt.Errorf("decode the answer: root element <%s>, want <…Response> (answer starts %q)", root, snippet(b))
			}
		}
	}
}

func snippet(b []byte) string {
	return string(b[:min(len(b), 120)])
}

// errorResponse is a Query protocol error document.
type errorResponse struct {
	Type      string `xml:"Error>Type"`
	Code      string `xml:"Error>Code"`
	Message   string `xml:"Error>Message"`
	RequestID string `xml:"RequestId"`
}

// decodeError reads an error answer's body. As the SDK's: a body that is
// not XML is an error of its own, not an API error (the status still
// classifies it); a missing code or message is "UnknownError".
func decodeError(b []byte) error {
	var er errorResponse
	if err := xml.NewDecoder(bytes.NewReader(b)).Decode(&er); err != nil && err != io.EOF {
		return fmt.Errorf("decode the error answer: %w (answer starts %q)", err, snippet(b))
	}
	e := &APIError{Code: er.Code, Message: er.Message, RequestID: er.RequestID, Fault: smithy.FaultUnknown}
	if e.Code == "" {
		e.Code = "UnknownError"
	}
	if e.Message == "" {
		e.Message = "UnknownError"
	}
	// The SDK models ResourceContention as a server fault and leaves the
	// fault of every other code unknown; the Type element is not read.
	if strings.EqualFold(e.Code, "ResourceContention") {
		e.Code, e.Fault = "ResourceContention", smithy.FaultServer
	}
	return e
}

// APIError is an error Auto Scaling answered with; it implements
// smithy.APIError.
type APIError struct {
	Code, Message, RequestID string
	Fault                    smithy.ErrorFault
}

var _ smithy.APIError = (*APIError)(nil)

func (e *APIError) Error() string                 { return "api error " + e.Code + ": " + e.Message }
func (e *APIError) ErrorCode() string             { return e.Code }
func (e *APIError) ErrorMessage() string          { return e.Message }
func (e *APIError) ErrorFault() smithy.ErrorFault { return e.Fault }

// ResponseError is an answer other than success: its status, and Err, the
// APIError it carried or why its body could not be read.
type ResponseError struct {
	Action     string
	Endpoint   string
	StatusCode int
	RequestID  string
	Err        error
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("auto scaling %s at %s: StatusCode: %d, RequestID: %s, %v", e.Action, e.Endpoint, e.StatusCode, e.RequestID, e.Err)
}

func (e *ResponseError) Unwrap() error { return e.Err }

// HTTPStatusCode is the answer's status, for the SDK's retry classification.
func (e *ResponseError) HTTPStatusCode() int { return e.StatusCode }

// SendError is a request that got no answer: refused, reset or timed-out
// connections. It is a connection error to the SDK's retry classification,
// as the SDK's own (smithyhttp.RequestSendError) is.
type SendError struct {
	Action string
	Err    error // from the HTTP client; it names the URL
}

func (e *SendError) Error() string         { return "auto scaling " + e.Action + ": " + e.Err.Error() }
func (e *SendError) Unwrap() error         { return e.Err }
func (e *SendError) ConnectionError() bool { return true }
