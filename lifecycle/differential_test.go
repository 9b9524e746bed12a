package lifecycle_test

// The differential test: AutoScaling, the package's own Query client, is
// held to the SDK's service/autoscaling client (a test-only dependency).
// Against the same endpoint both must send the same request (method, path,
// content type, body byte for byte, a valid SigV4 signature for service
// autoscaling in the same region) and classify every answer the same way
// (success; no active action; retryable or not; the same code and message).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/internal/sigv4test"
	"github.com/nodeagent/nodeagent/lifecycle"
	"github.com/nodeagent/nodeagent/test/harness"
)

const (
	diffRegion = "eu-west-1"
	diffKeyID  = "AKIDDIFFERENTIAL"
	diffSecret = "differential-secret"
	diffToken  = "differential-session-token"
)

var diffCreds = credentials.NewStaticCredentialsProvider(diffKeyID, diffSecret, diffToken)

// sdkAPI is the SDK's client behind the lifecycle.API seam, configured as
// lifecycle.New configured it before AutoScaling replaced it: one try per
// call, a custom endpoint as BaseEndpoint.
type sdkAPI struct{ c *autoscaling.Client }

func newSDK(endpoint string, hc aws.HTTPClient) sdkAPI {
	return sdkAPI{autoscaling.New(autoscaling.Options{
		Region:       diffRegion,
		Credentials:  diffCreds,
		BaseEndpoint: aws.String(endpoint),
		HTTPClient:   hc,
		Retryer:      aws.NopRetryer{},
	})}
}

func (s sdkAPI) CompleteLifecycleAction(ctx context.Context, h nodeagent.LifecycleHook, result string) error {
	_, err := s.c.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{
		AutoScalingGroupName:  aws.String(h.Group),
		LifecycleHookName:     aws.String(h.Hook),
		InstanceId:            aws.String(h.InstanceID),
		LifecycleActionResult: aws.String(result),
	})
	return err
}

func (s sdkAPI) RecordLifecycleActionHeartbeat(ctx context.Context, h nodeagent.LifecycleHook) error {
	_, err := s.c.RecordLifecycleActionHeartbeat(ctx, &autoscaling.RecordLifecycleActionHeartbeatInput{
		AutoScalingGroupName: aws.String(h.Group),
		LifecycleHookName:    aws.String(h.Hook),
		InstanceId:           aws.String(h.InstanceID),
	})
	return err
}

func newOurs(t *testing.T, endpoint string, hc aws.HTTPClient) *lifecycle.AutoScaling {
	t.Helper()
	c, err := lifecycle.NewAutoScaling(aws.Config{Region: diffRegion, Credentials: diffCreds}, endpoint, hc)
	if err != nil {
		t.Fatalf("NewAutoScaling(%s): %v", endpoint, err)
	}
	return c
}

// rawRequest is a request as the endpoint received it.
type rawRequest struct {
	Method, Path string
	Header       http.Header
	Host         string
	Body         []byte
}

// answer is what the recording endpoint replies; hang holds the answer
// until the request ends (a client timeout).
type answer struct {
	status      int
	contentType string
	body        string
	hang        bool
}

// recorder is an endpoint that records raw requests and replies with the
// current answer.
type recorder struct {
	mu   sync.Mutex
	reqs []rawRequest
	ans  answer
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.reqs = append(r.reqs, rawRequest{Method: req.Method, Path: req.URL.Path, Header: req.Header.Clone(), Host: req.Host, Body: body})
	a := r.ans
	r.mu.Unlock()
	if a.hang {
		select {
		case <-req.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return
	}
	w.Header().Set("Content-Type", a.contentType)
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

func (r *recorder) set(a answer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ans, r.reqs = a, nil
}

func (r *recorder) take() []rawRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	reqs := r.reqs
	r.reqs = nil
	return reqs
}

func queryError(code, msg string) string {
	return `<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">
  <Error><Type>Sender</Type><Code>` + code + `</Code><Message>` + msg + `</Message></Error>
  <RequestId>5a1e2b3c-diff-4000-8000-000000000001</RequestId>
</ErrorResponse>
`
}

// verdict is how the agent sees a call's outcome; the two clients must
// agree on every field.
type verdict struct {
	OK         bool
	Transient  bool // lifecycle.Transient of the raw error
	NoActive   bool // Client (one attempt) reports ErrNoActiveAction
	ClientTran bool // lifecycle.Transient of Client's error
	APIError   bool // errors.As smithy.APIError
	Code, Msg  string
	Fault      smithy.ErrorFault
	Status     int // errors.As HTTPStatusCode(), 0 without
	Canceled   bool
}

func classify(raw, viaClient error) verdict {
	v := verdict{OK: raw == nil, Transient: lifecycle.Transient(raw),
		NoActive: errors.Is(viaClient, lifecycle.ErrNoActiveAction), ClientTran: lifecycle.Transient(viaClient)}
	var ae smithy.APIError
	if errors.As(raw, &ae) {
		v.APIError, v.Code, v.Msg, v.Fault = true, ae.ErrorCode(), ae.ErrorMessage(), ae.ErrorFault()
	}
	var sc interface{ HTTPStatusCode() int }
	if errors.As(raw, &sc) {
		v.Status = sc.HTTPStatusCode()
	}
	var ce interface{ CanceledError() bool }
	v.Canceled = errors.As(raw, &ce) && ce.CanceledError()
	return v
}

// call makes one call through api, then the same through a Client with one
// attempt, and returns the verdict.
func call(ctx context.Context, t *testing.T, api lifecycle.API, heartbeat bool) (verdict, error) {
	t.Helper()
	c := lifecycle.NewWith(api, testLogger(t))
	c.Attempts = 1
	var raw, via error
	if heartbeat {
		raw = api.RecordLifecycleActionHeartbeat(ctx, hook)
		via = c.Heartbeat(ctx, hook)
	} else {
		raw = api.CompleteLifecycleAction(ctx, hook, nodeagent.LifecycleContinue)
		via = c.Complete(ctx, hook, nodeagent.LifecycleContinue)
	}
	return classify(raw, via), raw
}

// checkSignature recomputes the signature of the request as received, over
// the headers it says it signed, with the scope's region and service and
// the body's hash, and compares.
func checkSignature(t *testing.T, who string, endpoint string, r rawRequest) sigv4test.Authorization {
	t.Helper()
	a := sigv4test.ParseAuthorization(t, r.Header.Get("Authorization"))
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		t.Fatalf("%s: X-Amz-Date %q: %v", who, r.Header.Get("X-Amz-Date"), err)
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = r.Path
	req, err := http.NewRequest(r.Method, u.String(), strings.NewReader(string(r.Body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = r.Host
	for _, name := range a.SignedHeaders {
		switch name {
		case "host":
		case "content-length":
			req.ContentLength = int64(len(r.Body))
		default:
			for _, v := range r.Header.Values(name) {
				req.Header.Add(name, v)
			}
		}
	}
	sum := sha256.Sum256(r.Body)
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: diffKeyID, SecretAccessKey: diffSecret, SessionToken: diffToken},
		req, hex.EncodeToString(sum[:]), a.Service, a.Region, at); err != nil {
		t.Fatal(err)
	}
	if want := sigv4test.ParseAuthorization(t, req.Header.Get("Authorization")); want.Signature != a.Signature {
		t.Errorf("%s: signature %s, want %s recomputed over %v: the request was changed after signing or signed over another body", who, a.Signature, want.Signature, a.SignedHeaders)
	}
	return a
}

// compareRequests holds our request to the SDK's.
func compareRequests(t *testing.T, endpoint string, sdk, ours rawRequest) {
	t.Helper()
	if sdk.Method != ours.Method || sdk.Path != ours.Path {
		t.Errorf("request line %s %s, SDK's %s %s", ours.Method, ours.Path, sdk.Method, sdk.Path)
	}
	if s, o := sdk.Header.Get("Content-Type"), ours.Header.Get("Content-Type"); s != o {
		t.Errorf("Content-Type %q, SDK's %q", o, s)
	}
	if string(sdk.Body) != string(ours.Body) {
		t.Errorf("body\n%s\nSDK's\n%s", ours.Body, sdk.Body)
	}
	sf, err := url.ParseQuery(string(sdk.Body))
	if err != nil {
		t.Fatalf("SDK's body: %v", err)
	}
	of, err := url.ParseQuery(string(ours.Body))
	if err != nil {
		t.Fatalf("our body: %v", err)
	}
	if diff := cmp.Diff(sf, of); diff != "" {
		t.Errorf("form (-SDK's +ours):\n%s", diff)
	}
	if s, o := sdk.Header.Get("X-Amz-Security-Token"), ours.Header.Get("X-Amz-Security-Token"); s != o {
		t.Errorf("X-Amz-Security-Token %q, SDK's %q", o, s)
	}
	sa := checkSignature(t, "SDK", endpoint, sdk)
	oa := checkSignature(t, "ours", endpoint, ours)
	scope := func(a sigv4test.Authorization) string {
		return strings.Join([]string{a.KeyID, a.Region, a.Service, a.Terminal}, "/")
	}
	if scope(sa) != scope(oa) {
		t.Errorf("credential scope %s, SDK's %s", scope(oa), scope(sa))
	}
	if want := diffKeyID + "/" + diffRegion + "/autoscaling/aws4_request"; scope(sa) != want {
		t.Errorf("SDK's credential scope %s, want %s: the reference itself changed", scope(sa), want)
	}
	for _, h := range []string{"content-type", "host", "x-amz-date", "x-amz-security-token"} {
		if !strings.Contains(";"+strings.Join(oa.SignedHeaders, ";")+";", ";"+h+";") {
			t.Errorf("our signed headers %v lack %s", oa.SignedHeaders, h)
		}
	}
}

func TestDifferentialAgainstSDK(t *testing.T) {
	const noActive = "No active Lifecycle Action found with instance ID i-0a1b2c3d4e5f60009"
	tests := []struct {
		name string
		ans  answer
		want verdict // ours and the SDK's must equal this and each other
	}{
		{"success", answer{status: 200, contentType: "text/xml", body: "{{action}}"},
			verdict{OK: true}},
		{"success with an empty body", answer{status: 200, contentType: "text/xml"},
			verdict{OK: true}},
		{"no active action", answer{status: 400, contentType: "text/xml", body: queryError("ValidationError", noActive)},
			verdict{NoActive: true, APIError: true, Code: "ValidationError", Msg: noActive, Status: 400}},
		{"throttling", answer{status: 400, contentType: "text/xml", body: queryError("Throttling", "Rate exceeded")},
			verdict{Transient: true, ClientTran: true, APIError: true, Code: "Throttling", Msg: "Rate exceeded", Status: 400}},
		{"resource contention", answer{status: 400, contentType: "text/xml", body: queryError("ResourceContention", "You already have a pending update to an Auto Scaling resource")},
			verdict{Transient: true, ClientTran: true, APIError: true, Code: "ResourceContention", Msg: "You already have a pending update to an Auto Scaling resource", Fault: smithy.FaultServer, Status: 400}},
		{"internal failure", answer{status: 500, contentType: "text/xml", body: queryError("InternalFailure", "An internal error occurred")},
			verdict{Transient: true, ClientTran: true, APIError: true, Code: "InternalFailure", Msg: "An internal error occurred", Status: 500}},
		{"other validation error", answer{status: 400, contentType: "text/xml", body: queryError("ValidationError", "1 validation error detected")},
			verdict{APIError: true, Code: "ValidationError", Msg: "1 validation error detected", Status: 400}},
		{"access denied", answer{status: 403, contentType: "text/xml", body: queryError("AccessDenied", "not authorized")},
			verdict{APIError: true, Code: "AccessDenied", Msg: "not authorized", Status: 403}},
		{"error document without a message", answer{status: 400, contentType: "text/xml", body: queryError("Throttling", "")},
			verdict{Transient: true, ClientTran: true, APIError: true, Code: "Throttling", Msg: "UnknownError", Status: 400}},
		{"503 with HTML that is not XML", answer{status: 503, contentType: "text/html", body: "<!DOCTYPE html>\n<html><head><meta charset=utf-8><title>503</title></head><body>Service Unavailable<br></body></html>"},
			verdict{Transient: true, ClientTran: true, Status: 503}},
		{"503 with well-formed HTML", answer{status: 503, contentType: "text/html", body: "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"},
			verdict{Transient: true, ClientTran: true, APIError: true, Code: "UnknownError", Msg: "UnknownError", Status: 503}},
		{"502 with an empty body", answer{status: 502, contentType: "text/plain"},
			verdict{Transient: true, ClientTran: true, APIError: true, Code: "UnknownError", Msg: "UnknownError", Status: 502}},
		{"200 with HTML", answer{status: 200, contentType: "text/html", body: "<!DOCTYPE html><html><body>captive portal<br></body></html>"},
			verdict{Status: 200}},
		{"response timeout", answer{hang: true},
			verdict{Transient: true, ClientTran: true}},
	}
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	// The "response timeout" case: a client timeout well below the
	// endpoint's hang. The others answer at once, well within theirs.
	hc := awshttp.NewBuildableClient().WithTimeout(10 * time.Second)
	hcShort := awshttp.NewBuildableClient().WithTimeout(300 * time.Millisecond)
	for _, endpoint := range []string{srv.URL, srv.URL + "/asg", srv.URL + "/asg/"} {
		for _, tt := range tests {
			sdk, ours := newSDK(endpoint, hc), newOurs(t, endpoint, hc)
			if tt.ans.hang {
				sdk, ours = newSDK(endpoint, hcShort), newOurs(t, endpoint, hcShort)
			}
			for _, heartbeat := range []bool{false, true} {
				op := "complete"
				if heartbeat {
					op = "heartbeat"
				}
				if tt.ans.hang && endpoint != srv.URL {
					continue // the endpoint's path changes nothing in a timeout
				}
				t.Run(fmt.Sprintf("%s/%s/%s", strings.TrimPrefix(endpoint, srv.URL), tt.name, op), func(t *testing.T) {
					ans := tt.ans
					if ans.body == "{{action}}" {
						action := map[bool]string{false: "CompleteLifecycleAction", true: "RecordLifecycleActionHeartbeat"}[heartbeat]
						ans.body = `<` + action + `Response xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><` + action +
							`Result/><ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata></` + action + `Response>`
					}
					rec.set(ans)
					sv, serr := call(t.Context(), t, sdk, heartbeat)
					sreqs := rec.take()
					ov, oerr := call(t.Context(), t, ours, heartbeat)
					oreqs := rec.take()
					if diff := cmp.Diff(sv, ov); diff != "" {
						t.Errorf("verdict (-SDK's +ours):\n%s\nSDK's error: %v\nour error: %v", diff, serr, oerr)
					}
					if diff := cmp.Diff(tt.want, ov); diff != "" {
						t.Errorf("verdict (-want +got):\n%s\nerror: %v", diff, oerr)
					}
					if oerr != nil {
						t.Logf("our error: %v", oerr)
						if !strings.Contains(oerr.Error(), endpoint) || !strings.Contains(oerr.Error(), map[bool]string{false: "CompleteLifecycleAction", true: "RecordLifecycleActionHeartbeat"}[heartbeat]) {
							t.Errorf("error %q does not name the endpoint %s and the action", oerr, endpoint)
						}
						if tt.want.APIError && !strings.Contains(oerr.Error(), tt.want.Code) {
							t.Errorf("error %q does not name the code %s", oerr, tt.want.Code)
						}
						if tt.want.APIError && strings.HasPrefix(tt.ans.body, "<ErrorResponse") && !strings.Contains(oerr.Error(), "5a1e2b3c-diff-4000-8000-000000000001") {
							t.Errorf("error %q does not name the request id", oerr)
						}
					}
					// Two calls each (raw, then through Client).
					if len(sreqs) != 2 || len(oreqs) != 2 {
						t.Fatalf("%d requests from the SDK, %d from ours; want 2 each", len(sreqs), len(oreqs))
					}
					for i := range sreqs {
						compareRequests(t, endpoint, sreqs[i], oreqs[i])
					}
				})
			}
		}
	}
}

// TestDifferentialNoAnswer: a refused connection and a request whose
// context ends get the same verdicts from both clients.
func TestDifferentialNoAnswer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + l.Addr().String()
	l.Close()

	rec := &recorder{}
	rec.set(answer{hang: true})
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)

	hc := awshttp.NewBuildableClient().WithTimeout(5 * time.Second)
	tests := []struct {
		name     string
		endpoint string
		timeout  time.Duration // of the call's context; 0: none
		want     verdict
	}{
		{"connection refused", refused, 0, verdict{Transient: true, ClientTran: true}},
		// A request cut by its context is canceled, never retried; a call
		// made with an ended context gets the context's error, which the
		// SDK's rules call a (retryable) timeout: Client and boot stop on
		// ctx.Err() before they ask.
		{"context ends", srv.URL, 200 * time.Millisecond, verdict{Canceled: true, ClientTran: true}},
	}
	for _, tt := range tests {
		for _, heartbeat := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/heartbeat=%v", tt.name, heartbeat), func(t *testing.T) {
				// Each client its own context: the raw call ends with it,
				// and the Client's call after it finds it ended.
				callCtx := func() (context.Context, context.CancelFunc) {
					if tt.timeout > 0 {
						return context.WithTimeout(t.Context(), tt.timeout)
					}
					return context.WithCancel(t.Context())
				}
				sdk, ours := newSDK(tt.endpoint, hc), newOurs(t, tt.endpoint, hc)
				ctx, cancel := callCtx()
				sv, serr := call(ctx, t, sdk, heartbeat)
				cancel()
				ctx, cancel = callCtx()
				ov, oerr := call(ctx, t, ours, heartbeat)
				cancel()
				if diff := cmp.Diff(sv, ov); diff != "" {
					t.Errorf("verdict (-SDK's +ours):\n%s\nSDK's error: %v\nour error: %v", diff, serr, oerr)
				}
				if diff := cmp.Diff(tt.want, ov); diff != "" {
					t.Errorf("verdict (-want +got):\n%s\nerror: %v", diff, oerr)
				}
				t.Logf("our error: %v", oerr)
			})
		}
	}
}

// TestDifferentialHarnessFake runs both clients against the repository's
// Auto Scaling fake, which checks the parameters like the real service and
// answers "No active Lifecycle Action found" once an action is completed.
func TestDifferentialHarnessFake(t *testing.T) {
	for _, sdkFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("sdkFirst=%v", sdkFirst), func(t *testing.T) {
			fake := harness.StartAutoScaling(t)
			first, second := lifecycle.API(newSDK(fake.URL, nil)), lifecycle.API(newOurs(t, fake.URL, nil))
			if !sdkFirst {
				first, second = second, first
			}
			for i, api := range []lifecycle.API{first, second} {
				if err := api.RecordLifecycleActionHeartbeat(t.Context(), hook); err != nil {
					t.Errorf("heartbeat %d: %v", i, err)
				}
			}
			if err := first.CompleteLifecycleAction(t.Context(), hook, nodeagent.LifecycleContinue); err != nil {
				t.Fatalf("first complete: %v", err)
			}
			c := lifecycle.NewWith(second, testLogger(t))
			if err := c.Complete(t.Context(), hook, nodeagent.LifecycleContinue); !errors.Is(err, lifecycle.ErrNoActiveAction) {
				t.Errorf("second complete: %v, want ErrNoActiveAction", err)
			}
			calls := fake.Calls()
			if len(calls) != 4 {
				t.Fatalf("fake saw %d calls, want 4: %+v", len(calls), calls)
			}
			for i, c := range calls {
				if c.Group != hook.Group || c.Hook != hook.Hook || c.InstanceID != hook.InstanceID {
					t.Errorf("call %d: %+v, want for %+v", i, c, hook)
				}
			}
			if got := []string{calls[0].Error, calls[1].Error, calls[2].Error, calls[3].Error}; !cmp.Equal(got, []string{"", "", "", "ValidationError"}) {
				t.Errorf("the fake's answers %q, want three successes then ValidationError", got)
			}
		})
	}
}

// TestRegionalEndpointMatchesSDK: with no custom endpoint, AWS's endpoint
// for the region, as the SDK's rules resolve it (FIPS and dual-stack off).
func TestRegionalEndpointMatchesSDK(t *testing.T) {
	resolver := autoscaling.NewDefaultEndpointResolverV2()
	for _, region := range []string{"us-east-1", "eu-west-1", "ap-southeast-5", "il-central-1", "mx-central-1",
		"cn-north-1", "cn-northwest-1", "us-gov-west-1", "us-iso-east-1", "us-isob-east-1", "eu-isoe-west-1",
		"us-isof-south-1", "eusc-de-east-1", "xx-unknown-1"} {
		ep, err := resolver.ResolveEndpoint(t.Context(), autoscaling.EndpointParameters{Region: aws.String(region)})
		if err != nil {
			t.Fatalf("SDK for %s: %v", region, err)
		}
		got, err := lifecycle.RegionalEndpoint(region)
		if err != nil {
			t.Errorf("RegionalEndpoint(%s): %v", region, err)
		}
		if want := ep.URI.String(); got != want {
			t.Errorf("RegionalEndpoint(%s) = %s, SDK's %s", region, got, want)
		}
	}
	for _, region := range []string{"", "us-east-1/x", "-us-east-1", "us east 1"} {
		if ep, err := lifecycle.RegionalEndpoint(region); err == nil {
			t.Errorf("RegionalEndpoint(%q) = %s, want an error", region, ep)
		}
	}
}
