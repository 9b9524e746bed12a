package s3api_test

// The differential test: Client, the package's own S3 client, is held to
// the SDK's service/s3 client (a test-only dependency). For the same call
// both must send the same request (method, path and its escaping, query,
// conditional headers, content type and length, body, payload hash, a
// valid SigV4 signature for service s3 in the same region) and classify
// every answer the same way (status, code, message, fault, request and host
// ids, retryable or not by retry.NewStandard, canceled or not). The SDK's
// own headers (amz-sdk-invocation-id, amz-sdk-request, its User-Agent) are
// not compared: they name the SDK.

import (
	"bytes"
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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent/internal/sigv4test"
	"github.com/nodeagent/nodeagent/s3api"
)

const (
	diffRegion = "eu-west-1"
	diffKeyID  = "AKIDDIFFERENTIAL"
	diffSecret = "differential-secret"
	diffToken  = "differential-session-token"
)

var diffCreds = credentials.NewStaticCredentialsProvider(diffKeyID, diffSecret, diffToken)

// keys exercise the escaping of the path: spaces, '+', unicode, '//', '~',
// '%', '?', '#', '=' and ';'.
var keys = []string{
	"fleet/topology.json",
	"with space/and+plus.json",
	"unicodé/ключ/日本.json",
	"double//slash/",
	"tilde~and%percent%20.json",
	"what?#hash=1;a&b=c",
	"/leading-slash",
	"*'()!$@:,[]",
}

// newSDK is the SDK's client as the agent configured it before Client
// replaced it: a custom endpoint with path-style addressing.
func newSDK(endpoint string, hc aws.HTTPClient, r aws.Retryer) *s3.Client {
	return s3.New(s3.Options{
		Region:       diffRegion,
		Credentials:  diffCreds,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		HTTPClient:   hc,
		Retryer:      r,
	})
}

func newOurs(t testing.TB, endpoint string, hc aws.HTTPClient, r aws.Retryer) *s3api.Client {
	t.Helper()
	c, err := s3api.New(aws.Config{Region: diffRegion, Credentials: diffCreds}, s3api.Options{Endpoint: endpoint, HTTPClient: hc, Retryer: r})
	if err != nil {
		t.Fatalf("s3api.New(%s): %v", endpoint, err)
	}
	return c
}

// outcome is what a successful call returned, in a form both clients give.
type outcome struct {
	Body          string
	ETag          string
	ContentLength int64
	LastModified  time.Time
	Objects       []s3api.Object
	NextToken     string
}

// op is one call made through either client.
type op struct {
	name string
	sdk  func(ctx context.Context, c *s3.Client) (outcome, error)
	ours func(ctx context.Context, c *s3api.Client) (outcome, error)
}

func getOp(bucket, key, ifNoneMatch string) op {
	return op{
		name: "get",
		sdk: func(ctx context.Context, c *s3.Client) (outcome, error) {
			in := &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
			if ifNoneMatch != "" {
				in.IfNoneMatch = aws.String(ifNoneMatch)
			}
			out, err := c.GetObject(ctx, in)
			if err != nil {
				return outcome{}, err
			}
			defer out.Body.Close()
			b, err := io.ReadAll(out.Body)
			if err != nil {
				return outcome{}, err
			}
			return outcome{Body: string(b), ETag: aws.ToString(out.ETag), ContentLength: aws.ToInt64(out.ContentLength), LastModified: aws.ToTime(out.LastModified)}, nil
		},
		ours: func(ctx context.Context, c *s3api.Client) (outcome, error) {
			out, err := c.Get(ctx, s3api.GetInput{Bucket: bucket, Key: key, IfNoneMatch: ifNoneMatch})
			if err != nil {
				return outcome{}, err
			}
			defer out.Body.Close()
			b, err := io.ReadAll(out.Body)
			if err != nil {
				return outcome{}, err
			}
			return outcome{Body: string(b), ETag: out.ETag, ContentLength: out.ContentLength, LastModified: out.LastModified}, nil
		},
	}
}

func putOp(bucket, key string, body []byte, contentType, ifMatch, ifNoneMatch string) op {
	return op{
		name: "put",
		sdk: func(ctx context.Context, c *s3.Client) (outcome, error) {
			in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body),
				ContentLength: aws.Int64(int64(len(body))), ContentType: aws.String(contentType)}
			if ifMatch != "" {
				in.IfMatch = aws.String(ifMatch)
			}
			if ifNoneMatch != "" {
				in.IfNoneMatch = aws.String(ifNoneMatch)
			}
			out, err := c.PutObject(ctx, in)
			if err != nil {
				return outcome{}, err
			}
			return outcome{ETag: aws.ToString(out.ETag)}, nil
		},
		ours: func(ctx context.Context, c *s3api.Client) (outcome, error) {
			etag, err := c.Put(ctx, s3api.PutInput{Bucket: bucket, Key: key, Body: body, ContentType: contentType, IfMatch: ifMatch, IfNoneMatch: ifNoneMatch})
			return outcome{ETag: etag}, err
		},
	}
}

func listOp(bucket, prefix, delimiter, token string, maxKeys int) op {
	return op{
		name: "list",
		sdk: func(ctx context.Context, c *s3.Client) (outcome, error) {
			in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)}
			if delimiter != "" {
				in.Delimiter = aws.String(delimiter)
			}
			if token != "" {
				in.ContinuationToken = aws.String(token)
			}
			if maxKeys > 0 {
				in.MaxKeys = aws.Int32(int32(maxKeys))
			}
			out, err := c.ListObjectsV2(ctx, in)
			if err != nil {
				return outcome{}, err
			}
			o := outcome{Objects: []s3api.Object{}}
			for _, obj := range out.Contents {
				o.Objects = append(o.Objects, s3api.Object{Key: aws.ToString(obj.Key), Size: aws.ToInt64(obj.Size), ETag: aws.ToString(obj.ETag), LastModified: aws.ToTime(obj.LastModified)})
			}
			// As the SDK's paginator decides whether there is a next page.
			if aws.ToBool(out.IsTruncated) {
				o.NextToken = aws.ToString(out.NextContinuationToken)
			}
			return o, nil
		},
		ours: func(ctx context.Context, c *s3api.Client) (outcome, error) {
			out, err := c.List(ctx, s3api.ListInput{Bucket: bucket, Prefix: prefix, Delimiter: delimiter, ContinuationToken: token, MaxKeys: maxKeys})
			if err != nil {
				return outcome{}, err
			}
			return outcome{Objects: out.Objects, NextToken: out.NextToken}, nil
		},
	}
}

// rawRequest is a request as the endpoint received it.
type rawRequest struct {
	Method     string
	RequestURI string // escaped path and query, as sent
	Header     http.Header
	Host       string
	Body       []byte
}

// answer is what the recording endpoint replies; hang holds the answer
// until the request ends (a client timeout).
type answer struct {
	status int
	header map[string]string
	body   string
	hang   bool
}

// recorder is an endpoint that records raw requests and replies with the
// current answer.
type recorder struct {
	mu   sync.Mutex
	reqs []rawRequest
	ans  []answer // answered in turn; the last one repeats
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.reqs = append(r.reqs, rawRequest{Method: req.Method, RequestURI: req.RequestURI, Header: req.Header.Clone(), Host: req.Host, Body: body})
	a := r.ans[min(len(r.reqs), len(r.ans))-1]
	r.mu.Unlock()
	if a.hang {
		select {
		case <-req.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return
	}
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

func (r *recorder) set(a ...answer) {
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

// verdict is how a caller sees a call's outcome; the two clients must
// agree on every field.
type verdict struct {
	OK        bool
	Outcome   outcome
	Status    int // errors.As HTTPStatusCode(), 0 without
	Code, Msg string
	Fault     smithy.ErrorFault
	RequestID string
	HostID    string
	Retryable bool // retry.NewStandard().IsErrorRetryable
	Canceled  bool
}

func classify(o outcome, err error) verdict {
	if err == nil {
		return verdict{OK: true, Outcome: o}
	}
	v := verdict{Retryable: retry.NewStandard().IsErrorRetryable(err)}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		v.Code, v.Msg, v.Fault = ae.ErrorCode(), ae.ErrorMessage(), ae.ErrorFault()
	}
	var sc interface{ HTTPStatusCode() int }
	if errors.As(err, &sc) {
		v.Status = sc.HTTPStatusCode()
	}
	var rid interface{ ServiceRequestID() string }
	if errors.As(err, &rid) {
		v.RequestID = rid.ServiceRequestID()
	}
	var hid interface{ ServiceHostID() string }
	if errors.As(err, &hid) {
		v.HostID = hid.ServiceHostID()
	}
	var ce interface{ CanceledError() bool }
	v.Canceled = errors.As(err, &ce) && ce.CanceledError()
	return v
}

// checkSignature recomputes the signature of the request as received (its
// path as sent, not re-escaped, as S3 does), over the headers it says it
// signed, with the scope's region and service, and the hash of the body
// that arrived, and compares.
func checkSignature(t *testing.T, who string, r rawRequest) sigv4test.Authorization {
	t.Helper()
	a := sigv4test.ParseAuthorization(t, r.Header.Get("Authorization"))
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		t.Fatalf("%s: X-Amz-Date %q: %v", who, r.Header.Get("X-Amz-Date"), err)
	}
	u, err := url.ParseRequestURI(r.RequestURI)
	if err != nil {
		t.Fatalf("%s: request URI %q: %v", who, r.RequestURI, err)
	}
	u.Scheme, u.Host = "http", r.Host
	req := &http.Request{Method: r.Method, URL: u, Host: r.Host, Header: http.Header{}, Body: http.NoBody}
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
	hash := hex.EncodeToString(sum[:])
	if got := r.Header.Get("X-Amz-Content-Sha256"); got != hash {
		t.Errorf("%s: X-Amz-Content-Sha256 %s, want %s, the hash of the %d bytes sent", who, got, hash, len(r.Body))
	}
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	if err := signer.SignHTTP(context.Background(), aws.Credentials{AccessKeyID: diffKeyID, SecretAccessKey: diffSecret, SessionToken: diffToken},
		req, hash, a.Service, a.Region, at); err != nil {
		t.Fatal(err)
	}
	if want := sigv4test.ParseAuthorization(t, req.Header.Get("Authorization")); want.Signature != a.Signature {
		t.Errorf("%s: signature %s, want %s recomputed over %s %s and %v: the request was changed after signing, or signed over another path or body",
			who, a.Signature, want.Signature, r.Method, r.RequestURI, a.SignedHeaders)
	}
	return a
}

// compareRequests holds our request to the SDK's.
func compareRequests(t *testing.T, sdk, ours rawRequest) {
	t.Helper()
	sp, sq, _ := strings.Cut(sdk.RequestURI, "?")
	op, oq, _ := strings.Cut(ours.RequestURI, "?")
	if sdk.Method != ours.Method || sp != op {
		t.Errorf("request line %s %s, SDK's %s %s", ours.Method, op, sdk.Method, sp)
	}
	svals, err := url.ParseQuery(sq)
	if err != nil {
		t.Fatalf("SDK's query %q: %v", sq, err)
	}
	ovals, err := url.ParseQuery(oq)
	if err != nil {
		t.Fatalf("our query %q: %v", oq, err)
	}
	if diff := cmp.Diff(svals, ovals); diff != "" {
		t.Errorf("query (-SDK's +ours):\n%s", diff)
	}
	if sdk.Host != ours.Host {
		t.Errorf("Host %s, SDK's %s", ours.Host, sdk.Host)
	}
	for _, h := range []string{"If-Match", "If-None-Match", "Content-Type", "Content-Length", "X-Amz-Content-Sha256", "X-Amz-Security-Token", "Accept-Encoding"} {
		if s, o := sdk.Header.Values(h), ours.Header.Values(h); !slices.Equal(s, o) {
			t.Errorf("%s %q, SDK's %q", h, o, s)
		}
	}
	if !bytes.Equal(sdk.Body, ours.Body) {
		t.Errorf("body %q, SDK's %q", ours.Body, sdk.Body)
	}
	sa := checkSignature(t, "SDK", sdk)
	oa := checkSignature(t, "ours", ours)
	scope := func(a sigv4test.Authorization) string {
		return strings.Join([]string{a.KeyID, a.Region, a.Service, a.Terminal}, "/")
	}
	if scope(sa) != scope(oa) {
		t.Errorf("credential scope %s, SDK's %s", scope(oa), scope(sa))
	}
	if want := diffKeyID + "/" + diffRegion + "/s3/aws4_request"; scope(sa) != want {
		t.Errorf("SDK's credential scope %s, want %s: the reference itself changed", scope(sa), want)
	}
	for _, h := range []string{"host", "x-amz-content-sha256", "x-amz-date", "x-amz-security-token"} {
		if !slices.Contains(oa.SignedHeaders, h) {
			t.Errorf("our signed headers %v lack %s", oa.SignedHeaders, h)
		}
	}
	for _, h := range []string{"if-match", "if-none-match", "content-type"} {
		if slices.Contains(sa.SignedHeaders, h) != slices.Contains(oa.SignedHeaders, h) {
			t.Errorf("our signed headers %v and the SDK's %v differ in %s", oa.SignedHeaders, sa.SignedHeaders, h)
		}
	}
}

func s3Error(code, msg string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>` + code + `</Code><Message>` + msg + `</Message><Key>k</Key><RequestId>DOCREQ0001</RequestId><HostId>doc-host-id==</HostId></Error>`
}

var (
	xmlHeader = map[string]string{"Content-Type": "application/xml"}
	idHeader  = map[string]string{"Content-Type": "application/xml", "X-Amz-Request-Id": "HDRREQ0001", "X-Amz-Id-2": "hdr-host-id=="}
)

// errorAnswers are the refusals and failures both clients must classify
// alike, for every operation.
var errorAnswers = []struct {
	name string
	ans  answer
	want verdict // of a GET (a modeled NoSuchKey differs by operation)
}{
	{"404 NoSuchKey", answer{status: 404, header: idHeader, body: s3Error("NoSuchKey", "The specified key does not exist.")},
		verdict{Status: 404, Code: "NoSuchKey", Msg: "The specified key does not exist.", Fault: smithy.FaultClient, RequestID: "HDRREQ0001", HostID: "hdr-host-id=="}},
	{"404 NoSuchBucket", answer{status: 404, header: xmlHeader, body: s3Error("NoSuchBucket", "The specified bucket does not exist")},
		verdict{Status: 404, Code: "NoSuchBucket", Msg: "The specified bucket does not exist", RequestID: "DOCREQ0001", HostID: "doc-host-id=="}},
	{"403 AccessDenied", answer{status: 403, header: idHeader, body: s3Error("AccessDenied", "Access Denied")},
		verdict{Status: 403, Code: "AccessDenied", Msg: "Access Denied", RequestID: "HDRREQ0001", HostID: "hdr-host-id=="}},
	{"301 PermanentRedirect", answer{status: 301, header: xmlHeader, body: s3Error("PermanentRedirect", "The bucket you are attempting to access must be addressed using the specified endpoint.")},
		verdict{Status: 301, Code: "PermanentRedirect", Msg: "The bucket you are attempting to access must be addressed using the specified endpoint.", RequestID: "DOCREQ0001", HostID: "doc-host-id=="}},
	{"400 AuthorizationHeaderMalformed", answer{status: 400, header: xmlHeader, body: s3Error("AuthorizationHeaderMalformed", "the region 'eu-west-1' is wrong; expecting 'us-east-1'")},
		verdict{Status: 400, Code: "AuthorizationHeaderMalformed", Msg: "the region 'eu-west-1' is wrong; expecting 'us-east-1'", RequestID: "DOCREQ0001", HostID: "doc-host-id=="}},
	{"412 PreconditionFailed", answer{status: 412, header: xmlHeader, body: s3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold")},
		verdict{Status: 412, Code: "PreconditionFailed", Msg: "At least one of the pre-conditions you specified did not hold", RequestID: "DOCREQ0001", HostID: "doc-host-id=="}},
	{"409 ConditionalRequestConflict", answer{status: 409, header: xmlHeader, body: s3Error("ConditionalRequestConflict", "A conflicting conditional action is currently in progress against this resource.")},
		verdict{Status: 409, Code: "ConditionalRequestConflict", Msg: "A conflicting conditional action is currently in progress against this resource.", RequestID: "DOCREQ0001", HostID: "doc-host-id=="}},
	{"304 Not Modified", answer{status: 304, header: map[string]string{"ETag": `"e1"`, "X-Amz-Request-Id": "HDRREQ0001"}},
		verdict{Status: 304, Code: "NotModified", Msg: "Not Modified", RequestID: "HDRREQ0001"}},
	{"500 InternalError", answer{status: 500, header: xmlHeader, body: s3Error("InternalError", "We encountered an internal error. Please try again.")},
		verdict{Status: 500, Code: "InternalError", Msg: "We encountered an internal error. Please try again.", RequestID: "DOCREQ0001", HostID: "doc-host-id==", Retryable: true}},
	{"503 SlowDown", answer{status: 503, header: xmlHeader, body: s3Error("SlowDown", "Please reduce your request rate.")},
		verdict{Status: 503, Code: "SlowDown", Msg: "Please reduce your request rate.", RequestID: "DOCREQ0001", HostID: "doc-host-id==", Retryable: true}},
	{"400 RequestTimeout", answer{status: 400, header: xmlHeader, body: s3Error("RequestTimeout", "Your socket connection to the server was not read from or written to within the timeout period.")},
		verdict{Status: 400, Code: "RequestTimeout", Msg: "Your socket connection to the server was not read from or written to within the timeout period.", RequestID: "DOCREQ0001", HostID: "doc-host-id==", Retryable: true}},
	{"502 HTML that is not XML", answer{status: 502, header: map[string]string{"Content-Type": "text/html"}, body: "<!DOCTYPE html>\n<html><head><title>502</title></head><body>Bad Gateway<br></body></html>"},
		verdict{Status: 502, Retryable: true}},
	{"502 well-formed HTML", answer{status: 502, header: map[string]string{"Content-Type": "text/html"}, body: "<html><body><h1>502 Bad Gateway</h1></body></html>"},
		verdict{Status: 502, Code: "BadGateway", Msg: "Bad Gateway", Retryable: true}},
	{"503 empty", answer{status: 503},
		verdict{Status: 503, Code: "ServiceUnavailable", Msg: "Service Unavailable", Retryable: true}},
	{"404 empty", answer{status: 404},
		verdict{Status: 404, Code: "NotFound", Msg: "Not Found"}},
	{"400 error without a message", answer{status: 400, header: xmlHeader, body: `<Error><Code>InvalidArgument</Code></Error>`},
		verdict{Status: 400, Code: "InvalidArgument", Msg: "UnknownError"}},
}

func successAnswer(name string) answer {
	lm := "Wed, 02 Dec 2026 10:11:12 GMT"
	switch name {
	case "get":
		return answer{status: 200, header: map[string]string{"ETag": `"0123abcd"`, "Last-Modified": lm, "Content-Type": "application/json", "Content-Length": "17"}, body: `{"schema":1,"x":1}`[:17]}
	case "put":
		return answer{status: 200, header: map[string]string{"ETag": `"9876fedc"`}}
	}
	return answer{status: 200, header: xmlHeader, body: `<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>fleet</Name><Prefix>reports/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>
<Contents><Key>reports/i-0a1b2c3d4e5f60001.json</Key><LastModified>2026-12-02T10:11:12.000Z</LastModified><ETag>&quot;5d41402abc4b2a76b9719d911017c592&quot;</ETag><Size>1234</Size><StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key>reports/with space &amp; amp.json</Key><LastModified>2026-12-02T10:11:13.5Z</LastModified><ETag>"7d793037a0760186574b0282f2f435e7-2"</ETag><Size>0</Size><StorageClass>STANDARD</StorageClass></Contents>
<CommonPrefixes><Prefix>reports/old/</Prefix></CommonPrefixes>
<ContinuationToken>tok</ContinuationToken><NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken></ListBucketResult>`}
}

// ops are the calls of the test, for one bucket and key.
func ops(bucket, key string) []op {
	return []op{
		getOp(bucket, key, ""),
		getOp(bucket, key, `"0123abcd"`),
		putOp(bucket, key, []byte(`{"schema":1,"serial":42}`), "application/json", `"0123abcd"`, ""),
		putOp(bucket, key, []byte("serial: 42\n"), "application/yaml", "", "*"),
		putOp(bucket, key, nil, "application/octet-stream", "", ""),
		listOp(bucket, key, "/", "", 0),
		listOp(bucket, "r/ a+b=&", "/", "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=", 5),
	}
}

func TestDifferentialAgainstSDK(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	hc := awshttp.NewBuildableClient().WithTimeout(10 * time.Second)
	for _, endpoint := range []string{srv.URL, srv.URL + "/s3/"} {
		sdk, ours := newSDK(endpoint, hc, aws.NopRetryer{}), newOurs(t, endpoint, hc, aws.NopRetryer{})
		for _, key := range keys {
			for i, o := range ops("fleet-config", key) {
				answers := append([]struct {
					name string
					ans  answer
					want verdict
				}{{"success", successAnswer(o.name), verdict{OK: true}}}, errorAnswers...)
				for _, a := range answers {
					if key != keys[0] && a.name != "success" && a.name != "404 NoSuchKey" {
						continue // the key changes only the request: one refusal is enough
					}
					t.Run(fmt.Sprintf("%s/%q/%d-%s/%s", strings.TrimPrefix(endpoint, srv.URL), key, i, o.name, a.name), func(t *testing.T) {
						rec.set(a.ans)
						sv := classify(o.sdk(t.Context(), sdk))
						sreqs := rec.take()
						ov := classify(o.ours(t.Context(), ours))
						oreqs := rec.take()
						if diff := cmp.Diff(sv, ov); diff != "" {
							t.Errorf("verdict (-SDK's +ours):\n%s", diff)
						}
						want := a.want
						if want.OK {
							want = sv // the SDK's decoding of the canned answer is the reference
						} else if o.name != "get" && want.Code == "NoSuchKey" {
							want.Fault = smithy.FaultUnknown // modeled for GetObject only
						} else if o.name == "list" && want.Code == "NoSuchBucket" {
							want.Fault = smithy.FaultClient // modeled for ListObjectsV2
						}
						if diff := cmp.Diff(want, ov); diff != "" {
							t.Errorf("verdict (-want +got):\n%s", diff)
						}
						if a.name == "success" && len(ov.Outcome.Objects)+len(ov.Outcome.ETag) == 0 {
							t.Errorf("success decoded to nothing: %+v", ov.Outcome)
						}
						if len(sreqs) != 1 || len(oreqs) != 1 {
							t.Fatalf("%d requests from the SDK, %d from ours; want 1 each", len(sreqs), len(oreqs))
						}
						compareRequests(t, sreqs[0], oreqs[0])
					})
				}
			}
		}
	}
}

// TestDifferentialErrorText: our errors name the operation, the endpoint,
// the status, the code, the message and the request id, as the SDK's do.
func TestDifferentialErrorText(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	ours := newOurs(t, srv.URL, nil, aws.NopRetryer{})
	rec.set(answer{status: 404, header: idHeader, body: s3Error("NoSuchKey", "The specified key does not exist.")})
	_, err := ours.Get(t.Context(), s3api.GetInput{Bucket: "fleet", Key: "topology.json"})
	for _, want := range []string{"GetObject", srv.URL, "StatusCode: 404", "NoSuchKey", "The specified key does not exist.", "HDRREQ0001", "hdr-host-id=="} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %q", err, want)
		}
	}
}

// TestDifferentialRetries: with the SDK's standard retryer (no waits), both
// clients send the same requests, the body again on every retry, and stop
// at the same answer.
func TestDifferentialRetries(t *testing.T) {
	slowDown := answer{status: 503, header: xmlHeader, body: s3Error("SlowDown", "Please reduce your request rate.")}
	denied := answer{status: 403, header: xmlHeader, body: s3Error("AccessDenied", "Access Denied")}
	tests := []struct {
		name     string
		ans      []answer
		wantReqs int
		wantOK   bool
	}{
		{"two SlowDowns then success", []answer{slowDown, slowDown, {}}, 3, true},
		{"SlowDown to the last attempt", []answer{slowDown}, 3, false},
		{"500 then AccessDenied", []answer{{status: 500}, denied}, 2, false},
		{"AccessDenied at once", []answer{denied}, 1, false},
		{"a timeout then success", []answer{{hang: true}, {}}, 2, true},
	}
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	hc := awshttp.NewBuildableClient().WithTimeout(300 * time.Millisecond)
	retryer := func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		})
	}
	for _, tt := range tests {
		for _, o := range ops("fleet-config", keys[1]) {
			t.Run(tt.name+"/"+o.name, func(t *testing.T) {
				ans := slices.Clone(tt.ans)
				for i := range ans {
					if ans[i].status == 0 && !ans[i].hang {
						ans[i] = successAnswer(o.name)
					}
				}
				sdk, ours := newSDK(srv.URL, hc, retryer()), newOurs(t, srv.URL, hc, retryer())
				rec.set(ans...)
				sv := classify(o.sdk(t.Context(), sdk))
				sreqs := rec.take()
				rec.set(ans...)
				oo, oerr := o.ours(t.Context(), ours)
				ov := classify(oo, oerr)
				oreqs := rec.take()
				if oerr != nil && len(oreqs) > 1 && !strings.Contains(oerr.Error(), fmt.Sprintf("gave up after %d attempts", len(oreqs))) && ov.Retryable {
					t.Errorf("error %q does not say the retries ran out after %d attempts", oerr, len(oreqs))
				}
				if diff := cmp.Diff(sv, ov); diff != "" {
					t.Errorf("verdict (-SDK's +ours):\n%s", diff)
				}
				if ov.OK != tt.wantOK || len(oreqs) != tt.wantReqs || len(sreqs) != tt.wantReqs {
					t.Fatalf("ours: ok %v after %d requests, the SDK's after %d; want ok %v after %d", ov.OK, len(oreqs), len(sreqs), tt.wantOK, tt.wantReqs)
				}
				for i := range oreqs {
					compareRequests(t, sreqs[i], oreqs[i])
				}
			})
		}
	}
}

// TestDifferentialRetryQuota: each client keeps ONE retryer across a
// sequence of calls, as `run` and the operator commands do, with a retry
// quota of 15 tokens (5 a retry, 1 back for every successful attempt):
// failures drain it, successes refill it, and both clients send the same
// number of requests for every call. A client that never returned its
// attempt tokens would, after the drain, send one request per failing call
// for the life of the process.
func TestDifferentialRetryQuota(t *testing.T) {
	slowDown := answer{status: 503, header: xmlHeader, body: s3Error("SlowDown", "Please reduce your request rate.")}
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	hc := awshttp.NewBuildableClient().WithTimeout(10 * time.Second)
	retryer := func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.RateLimiter = ratelimit.NewTokenRateLimit(15)
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		})
	}
	// The calls in turn, and how many requests each sends: 15 tokens pay
	// two retries (3 requests, 5 left), one more (2 requests, 0 left, the
	// quota exceeded), none (1 request); ten successes put 10 back, two
	// retries' worth.
	type call struct {
		fail     bool
		wantReqs int
	}
	calls := []call{{true, 3}, {true, 2}, {true, 1}}
	for range 10 {
		calls = append(calls, call{false, 1})
	}
	calls = append(calls, call{true, 3}, call{true, 1})
	all := ops("fleet-config", keys[0])
	for _, o := range []op{all[0], all[2], all[5]} { // a GET, a PUT, a listing
		t.Run(o.name, func(t *testing.T) {
			sdk, ours := newSDK(srv.URL, hc, retryer()), newOurs(t, srv.URL, hc, retryer())
			for i, c := range calls {
				ans := successAnswer(o.name)
				if c.fail {
					ans = slowDown
				}
				rec.set(ans)
				sv := classify(o.sdk(t.Context(), sdk))
				sreqs := rec.take()
				rec.set(ans)
				oo, oerr := o.ours(t.Context(), ours)
				ov := classify(oo, oerr)
				oreqs := rec.take()
				if len(sreqs) != c.wantReqs || len(oreqs) != c.wantReqs {
					t.Fatalf("call %d (fail %v): the SDK sent %d requests, ours %d; want %d", i, c.fail, len(sreqs), len(oreqs), c.wantReqs)
				}
				if diff := cmp.Diff(sv, ov); diff != "" {
					t.Errorf("call %d: verdict (-SDK's +ours):\n%s", i, diff)
				}
				if c.fail && c.wantReqs < 3 && (oerr == nil || !strings.Contains(oerr.Error(), "retry quota exceeded")) {
					t.Errorf("call %d: error %v does not say the retry quota is exceeded", i, oerr)
				}
			}
		})
	}
}

// skewedS3 is an endpoint whose clock is ahead of ours (behind when
// negative) and that, as S3, refuses a request whose X-Amz-Date is more
// than 15 minutes from its clock with 403 RequestTimeTooSkewed; it sends
// its time in the Date header unless noDate.
type skewedS3 struct {
	ahead  time.Duration
	noDate bool
	ok     answer // the answer to a request on time
	mu     sync.Mutex
	dates  []string // X-Amz-Date of every request
}

func (s *skewedS3) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	io.Copy(io.Discard, req.Body)
	now := time.Now().Add(s.ahead)
	xd := req.Header.Get("X-Amz-Date")
	s.mu.Lock()
	s.dates = append(s.dates, xd)
	s.mu.Unlock()
	if s.noDate {
		w.Header()["Date"] = nil // net/http sends none
	} else {
		w.Header().Set("Date", now.UTC().Format(http.TimeFormat))
	}
	signed, err := time.Parse("20060102T150405Z", xd)
	if err != nil || now.Sub(signed).Abs() > 15*time.Minute {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, s3Error("RequestTimeTooSkewed", "The difference between the request time and the current time is too large."))
		return
	}
	for k, v := range s.ok.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(s.ok.status)
	io.WriteString(w, s.ok.body)
}

func (s *skewedS3) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dates
	s.dates = nil
	return d
}

// TestDifferentialClockSkew: against a server whose clock is an hour off,
// both clients are refused once (RequestTimeTooSkewed), measure the skew
// from the answer's Date header, retry at the server's time and keep the
// offset: the next call goes through at once. Without a Date header there
// is nothing to correct by, and neither retries.
func TestDifferentialClockSkew(t *testing.T) {
	hc := awshttp.NewBuildableClient().WithTimeout(10 * time.Second)
	retryer := func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		})
	}
	tests := []struct {
		name     string
		ahead    time.Duration
		noDate   bool
		wantReqs []int // per call, the first refused when 2
		wantOK   bool
	}{
		{"server an hour ahead", time.Hour, false, []int{2, 1, 1}, true},
		{"server an hour behind", -time.Hour, false, []int{2, 1, 1}, true},
		{"server 3 minutes ahead", 3 * time.Minute, false, []int{1, 1}, true},
		{"an hour ahead without a Date", time.Hour, true, []int{1, 1}, false},
	}
	all := ops("fleet-config", keys[0])
	for _, tt := range tests {
		for _, o := range []op{all[0], all[2], all[5]} { // a GET, a PUT, a listing
			t.Run(tt.name+"/"+o.name, func(t *testing.T) {
				srv := &skewedS3{ahead: tt.ahead, noDate: tt.noDate, ok: successAnswer(o.name)}
				hs := httptest.NewServer(srv)
				t.Cleanup(hs.Close)
				sdk, ours := newSDK(hs.URL, hc, retryer()), newOurs(t, hs.URL, hc, retryer())
				for i, want := range tt.wantReqs {
					sv := classify(o.sdk(t.Context(), sdk))
					sdates := srv.take()
					oo, oerr := o.ours(t.Context(), ours)
					ov := classify(oo, oerr)
					odates := srv.take()
					if diff := cmp.Diff(sv, ov); diff != "" {
						t.Errorf("call %d: verdict (-SDK's +ours):\n%s", i, diff)
					}
					if len(sdates) != want || len(odates) != want || ov.OK != tt.wantOK {
						t.Fatalf("call %d: the SDK sent %d requests (X-Amz-Date %q), ours %d (%q), ours ok %v (%v); want %d, ok %v",
							i, len(sdates), sdates, len(odates), odates, ov.OK, oerr, want, tt.wantOK)
					}
					if !tt.wantOK {
						if skew, ok := s3api.ClockSkew(oerr); ok {
							t.Errorf("call %d: ClockSkew(%v) = %v, true without a Date header", i, oerr, skew)
						}
					}
				}
			})
		}
	}
}

// TestClockSkewError: a refusal whose Date header shows the node's clock
// off names the skew (ClockSkew), whether the retry at the server's time
// failed again (a wrong secret as well) or not.
func TestClockSkewError(t *testing.T) {
	var dates atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		dates.Add(1)
		w.Header().Set("Date", time.Now().Add(-2*time.Hour).UTC().Format(http.TimeFormat))
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, s3Error("SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided."))
	}))
	t.Cleanup(hs.Close)
	c := newOurs(t, hs.URL, awshttp.NewBuildableClient().WithTimeout(10*time.Second), retry.NewStandard(func(o *retry.StandardOptions) {
		o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
	}))
	_, err := c.Get(t.Context(), s3api.GetInput{Bucket: "fleet-config", Key: "topology.json"})
	if n := dates.Load(); n != 2 {
		t.Errorf("%d requests, want 2: one refused, one retried at the server's time", n)
	}
	skew, ok := s3api.ClockSkew(err)
	if !ok || (skew+2*time.Hour).Abs() > time.Minute {
		t.Errorf("ClockSkew(%v) = %v, %v; want about -2h, true", err, skew, ok)
	}
}

// TestDifferentialNoAnswer: a refused connection, a client timeout and a
// request whose context ends get the same verdicts from both clients.
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

	tests := []struct {
		name     string
		endpoint string
		client   time.Duration // the HTTP client's timeout
		ctx      time.Duration // the call's context's; 0: none
		want     verdict
	}{
		{"connection refused", refused, 5 * time.Second, 0, verdict{Retryable: true}},
		{"client timeout", srv.URL, 200 * time.Millisecond, 0, verdict{Retryable: true}},
		{"context ends", srv.URL, 5 * time.Second, 200 * time.Millisecond, verdict{Canceled: true}},
	}
	for _, tt := range tests {
		for _, o := range ops("fleet-config", keys[0]) {
			t.Run(tt.name+"/"+o.name, func(t *testing.T) {
				hc := awshttp.NewBuildableClient().WithTimeout(tt.client)
				sdk, ours := newSDK(tt.endpoint, hc, aws.NopRetryer{}), newOurs(t, tt.endpoint, hc, aws.NopRetryer{})
				callCtx := func() (context.Context, context.CancelFunc) {
					if tt.ctx > 0 {
						return context.WithTimeout(t.Context(), tt.ctx)
					}
					return context.WithCancel(t.Context())
				}
				ctx, cancel := callCtx()
				so, serr := o.sdk(ctx, sdk)
				cancel()
				ctx, cancel = callCtx()
				oo, oerr := o.ours(ctx, ours)
				cancel()
				sv, ov := classify(so, serr), classify(oo, oerr)
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

// capture answers every request at once and keeps its URL: the addressing
// test needs no server.
type capture struct {
	mu   sync.Mutex
	urls []string
}

func (c *capture) Do(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.urls = append(c.urls, req.URL.Scheme+"://"+req.URL.Host+req.URL.EscapedPath()+"?"+req.URL.RawQuery)
	c.mu.Unlock()
	h := http.Header{"Etag": {`"e"`}, "Content-Length": {"0"}}
	return &http.Response{StatusCode: 200, Header: h, Body: io.NopCloser(strings.NewReader(`<ListBucketResult></ListBucketResult>`)), Request: req, ContentLength: 0}, nil
}

func (c *capture) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.urls
	c.urls = nil
	return u
}

// TestAddressingMatchesSDK: with no custom endpoint, every call goes where
// the SDK's endpoint rules send it, over many regions and bucket names:
// virtual-hosted where the bucket can be a host label under TLS, path
// style where it cannot.
func TestAddressingMatchesSDK(t *testing.T) {
	regions := []string{"us-east-1", "us-east-2", "eu-west-1", "ap-southeast-5", "il-central-1", "mx-central-1",
		"cn-north-1", "cn-northwest-1", "us-gov-west-1", "us-iso-east-1", "us-isob-east-1", "eu-isoe-west-1",
		"us-isof-south-1", "eusc-de-east-1", "xx-unknown-1"}
	buckets := []string{"fleet-config", "fleet.config", "Fleet-Config", "fleet_config", "ab", "abc",
		strings.Repeat("a", 63), strings.Repeat("a", 64), "192.168.1.1", "xn--bcher-kva", "1-numeric-first", "fleet..config", "-ab-",
		"fleet--usw2-az1--x-s3", "fleet--op-s3", "fleet-s3alias"}
	rec := &capture{}
	for _, region := range regions {
		for _, bucket := range buckets {
			sdk := s3.New(s3.Options{Region: region, Credentials: diffCreds, HTTPClient: rec, Retryer: aws.NopRetryer{}})
			ours, err := s3api.New(aws.Config{Region: region, Credentials: diffCreds}, s3api.Options{HTTPClient: rec, Retryer: aws.NopRetryer{}})
			if err != nil {
				t.Fatalf("s3api.New(%s): %v", region, err)
			}
			for _, o := range ops(bucket, keys[2]) {
				_, serr := o.sdk(t.Context(), sdk)
				su := rec.take()
				_, oerr := o.ours(t.Context(), ours)
				ou := rec.take()
				if serr != nil {
					t.Logf("%s %s %s: SDK: %v", region, bucket, o.name, serr)
				}
				if strings.HasSuffix(bucket, "--x-s3") {
					// A directory bucket: the SDK wants session credentials
					// from CreateSession; ours refuses the bucket, naming it.
					if len(ou) != 0 || oerr == nil || !strings.Contains(oerr.Error(), "directory bucket") {
						t.Errorf("%s bucket %q %s: sent to %q, error %v; want no request and an error naming a directory bucket", region, bucket, o.name, ou, oerr)
					}
					continue
				}
				if !slices.Equal(su, ou) {
					t.Errorf("%s bucket %q %s: sent to %q, the SDK to %q (SDK's error %v, ours %v)", region, bucket, o.name, ou, su, serr, oerr)
				}
			}
		}
	}
	for _, region := range []string{"", "us-east-1/x", "-us-east-1", "us east 1"} {
		if _, err := s3api.New(aws.Config{Region: region}, s3api.Options{}); err == nil {
			t.Errorf("s3api.New with region %q: no error", region)
		}
	}
	for _, ep := range []string{"127.0.0.1:9000", "ftp://127.0.0.1", "http://", "http://127.0.0.1:9000/?x=1"} {
		if _, err := s3api.New(aws.Config{Region: diffRegion}, s3api.Options{Endpoint: ep}); err == nil || !strings.Contains(err.Error(), "AWS_ENDPOINT_URL_S3") {
			t.Errorf("s3api.New with endpoint %q: %v, want an error naming AWS_ENDPOINT_URL_S3", ep, err)
		}
	}
}

// TestUnsigned: a client without credentials sends requests unsigned, as
// the SDK's with anonymous credentials.
func TestUnsigned(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	for _, creds := range []aws.CredentialsProvider{nil, aws.AnonymousCredentials{}, aws.NewCredentialsCache(aws.AnonymousCredentials{})} {
		c, err := s3api.New(aws.Config{Region: diffRegion, Credentials: creds}, s3api.Options{Endpoint: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		rec.set(successAnswer("put"))
		if _, err := c.Put(t.Context(), s3api.PutInput{Bucket: "b", Key: "k", Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		reqs := rec.take()
		if len(reqs) != 1 || reqs[0].Header.Get("Authorization") != "" || string(reqs[0].Body) != "x" {
			t.Errorf("credentials %T: %d requests, Authorization %q, body %q; want one unsigned with body x", creds, len(reqs), reqs[0].Header.Get("Authorization"), reqs[0].Body)
		}
		if got := reqs[0].Header.Get("Content-Length"); got != strconv.Itoa(1) {
			t.Errorf("Content-Length %q, want 1", got)
		}
	}
}
