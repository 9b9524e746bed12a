// Package s3api makes the S3 calls nodeagent needs: GetObject (conditional
// and streamed), PutObject (conditional) and ListObjectsV2, over S3's REST
// API, signed with aws-sdk-go-v2's SigV4 signer and retried by the SDK's
// retryer (aws/retry).
//
// It stands in for the SDK's service/s3 client, whose endpoint rules,
// v4a, eventstream, checksum and XML packages cost every process of the
// agent about 1.2 ms of init and page faults at start, and whose
// middleware stack costs every call about 1 ms more than a signed GET; the
// differential test holds this client to the SDK's (a test-only
// dependency): the same requests (method, path and its escaping, query,
// headers that matter, a valid signature) and the same classification of
// every answer (status, code, retryable or not).
//
// Addressing is the SDK's with its defaults (no FIPS, no dual-stack, no
// accelerate): a custom endpoint (AWS_ENDPOINT_URL_S3, MinIO) means path
// style, http(s)://endpoint/<bucket>/<key>; AWS's own is virtual-hosted,
// https://<bucket>.s3.<region>.<dnsSuffix>/<key>, except for a bucket name
// that cannot be one DNS label (dots, capitals, underscores, fewer than 3
// characters), which goes path style to https://s3.<region>.<dnsSuffix>.
// S3 Express One Zone directory buckets (…--x-s3), which need the SDK's
// session authentication, are refused with an error saying so.
package s3api

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
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/encoding/httpbinding"

	"github.com/nodeagent/nodeagent/awsenv"
	"github.com/nodeagent/nodeagent/redact"
)

const (
	signingService = "s3"
	userAgent      = "nodeagent (s3api; S3 REST API)"
	// emptySHA256 is the hex SHA-256 of an empty payload, the
	// X-Amz-Content-Sha256 of every GET.
	emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// directoryBucketSuffix ends the name of every S3 Express One Zone
// directory bucket (name--azid--x-s3): the SDK sends those to a zonal
// endpoint with session credentials; this client refuses them.
const directoryBucketSuffix = "--x-s3"

// maxErrorBody bounds how much of an error answer is read: S3's error
// documents are a few hundred bytes.
const maxErrorBody = 64 << 10

// Options configures a Client beyond the region and credentials of its
// aws.Config.
type Options struct {
	// Endpoint is a custom S3 endpoint (AWS_ENDPOINT_URL_S3: MinIO, another
	// S3 server), addressed path style; "" means AWS's own.
	Endpoint string
	// HTTPClient sends the requests; nil means the aws.Config's, else the
	// SDK's default client (HTTP_PROXY and HTTPS_PROXY honoured).
	HTTPClient aws.HTTPClient
	// Retryer decides which failures are tried again, how often and after
	// how long; nil means the aws.Config's, else retry.NewStandard(), as
	// the SDK's client would.
	Retryer aws.Retryer
}

// Client is an S3 client. It is safe for concurrent use.
type Client struct {
	region      string
	credentials aws.CredentialsProvider // nil: requests go unsigned
	endpoint    *url.URL                // custom endpoint; nil: AWS's own
	http        aws.HTTPClient
	retryer     aws.Retryer
	signer      *v4.Signer
	// skew is how far S3's clock (an answer's Date header) is ahead of
	// ours, in nanoseconds, as last measured: requests are signed at
	// now+skew, as the SDK's clients sign (its ClientSkew). Shared by the
	// copies With makes.
	skew *atomic.Int64
}

// New returns a client for the region and credentials of cfg (nil
// credentials: unsigned requests).
func New(cfg aws.Config, o Options) (*Client, error) {
	c := &Client{region: cfg.Region, credentials: cfg.Credentials, http: o.HTTPClient, retryer: o.Retryer, skew: new(atomic.Int64),
		// S3's canonical URI is the path as sent, escaped once (by us).
		signer: v4.NewSigner(func(so *v4.SignerOptions) { so.DisableURIPathEscaping = true })}
	if c.credentials != nil && aws.IsCredentialsProvider(c.credentials, aws.AnonymousCredentials{}) {
		c.credentials = nil // anonymous, perhaps behind a CredentialsCache: unsigned
	}
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("s3 endpoint %q is not an http(s) URL: set AWS_ENDPOINT_URL_S3 to one (e.g. http://127.0.0.1:9000), or unset it for AWS's own", redact.URL(o.Endpoint))
		}
		if u.User != nil {
			// Requests are signed with the credentials, never sent with
			// userinfo; and a password in the URL would reach messages.
			return nil, fmt.Errorf("s3 endpoint %q carries a user name and password: remove user:password@ from AWS_ENDPOINT_URL_S3 and put the credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", redact.URL(o.Endpoint))
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		u.RawPath = ""
		c.endpoint = u
	} else if !awsenv.ValidRegion(cfg.Region) {
		return nil, fmt.Errorf("s3 endpoint: region %q is not a valid AWS region name: set AWS_REGION", cfg.Region)
	}
	if c.http == nil {
		c.http = cfg.HTTPClient
	}
	if c.http == nil {
		c.http = awshttp.NewBuildableClient()
	}
	if c.retryer == nil && cfg.Retryer != nil {
		c.retryer = cfg.Retryer()
	}
	if c.retryer == nil {
		c.retryer = retry.NewStandard()
	}
	return c, nil
}

// With returns a copy of c whose HTTP client and retryer fn may change
// (Options.Endpoint is ignored: the copy keeps c's endpoint).
func (c *Client) With(fn func(*Options)) *Client {
	o := Options{HTTPClient: c.http, Retryer: c.retryer}
	fn(&o)
	cc := *c
	if o.HTTPClient != nil {
		cc.http = o.HTTPClient
	}
	if o.Retryer != nil {
		cc.retryer = o.Retryer
	}
	return &cc
}

// Endpoint is the custom endpoint, "" for AWS's own: for messages.
func (c *Client) Endpoint() string {
	if c.endpoint == nil {
		return ""
	}
	return c.endpoint.String()
}

// objectURL is where a request about bucket (and key, "" for the bucket
// itself) goes, with its path escaped as S3 signs it (RawPath).
func (c *Client) objectURL(bucket, key string) *url.URL {
	var u url.URL
	var path string
	switch {
	case c.endpoint != nil:
		u = *c.endpoint
		path = u.Path + "/" + escape(bucket)
	case virtualHostable(bucket):
		u = url.URL{Scheme: "https", Host: bucket + ".s3." + c.region + "." + awsenv.DNSSuffix(c.region)}
	default:
		u = url.URL{Scheme: "https", Host: "s3." + c.region + "." + awsenv.DNSSuffix(c.region)}
		path = "/" + escape(bucket)
	}
	if key != "" || path == "" {
		path += "/" + escape(key)
	}
	u.RawPath = path
	u.Path, _ = url.PathUnescape(path) // cannot fail: escape's output
	return &u
}

// virtualHostable reports whether bucket can be the first label of a
// virtual-hosted host name over TLS, as the SDK's rules decide
// (awsrulesfn.IsVirtualHostableS3Bucket without subdomains): 3 to 63
// lower-case letters, digits and hyphens, not an IP address.
func virtualHostable(bucket string) bool {
	if len(bucket) < 3 || len(bucket) > 63 || net.ParseIP(bucket) != nil {
		return false
	}
	for _, c := range []byte(bucket) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// escape percent-encodes every byte of s but the unreserved ones
// (A-Z a-z 0-9 - . _ ~) and '/', as S3's canonical URI wants it: the SDK's
// own escaping of an S3 key (smithy-go's httpbinding, which the signer uses
// too).
func escape(s string) string { return httpbinding.EscapePath(s, false) }

// encodeQuery is url.Values.Encode with spaces as %20, as the SDK sends
// them (the signature is the same either way: the signer re-encodes).
func encodeQuery(q url.Values) string {
	return strings.ReplaceAll(q.Encode(), "+", "%20")
}

// request is one S3 operation, sent as many times as the retryer allows.
type request struct {
	op          string // the API name: GetObject, PutObject, ListObjectsV2
	method      string
	bucket, key string
	query       url.Values
	header      http.Header // conditional headers, content type
	body        []byte
	// readAll: the answer's body is read whole (up to limit) within the
	// attempt, so a body cut short is retried like a failed send.
	readAll bool
	limit   int64
}

// response is a success answer; body is set when request.readAll was.
type response struct {
	*http.Response
	body []byte
}

// send runs r with the retryer as the SDK's retry middleware
// (aws/retry.Attempt) does: every attempt holds an attempt token
// (RetryerV2.GetAttemptToken, else GetInitialToken) released with its
// outcome, so successes refill the retry quota; an attempt that failed is
// tried again while the retryer says the failure is retryable and grants
// a retry token from that quota, after its delay; a request whose context
// ended is never retried.
func (c *Client) send(ctx context.Context, r *request) (*response, error) {
	// As the SDK: a context that has already ended is its own error.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("s3 %s %s: %w", r.op, r.object(), err)
	}
	if c.endpoint == nil && strings.HasSuffix(r.bucket, directoryBucketSuffix) {
		return nil, fmt.Errorf("s3 %s %s: bucket %q is an S3 Express One Zone directory bucket, whose session authentication (CreateSession) this client does not make: use a general purpose bucket", r.op, r.object(), r.bucket)
	}
	maxAttempts := c.retryer.MaxAttempts()
	releaseRetry := func(error) error { return nil }
	// As the SDK's retry middleware: the first attempt is signed with the
	// skew last measured, each later one with its predecessor's; the
	// operation's last measurement is kept for the next operation.
	skew := time.Duration(c.skew.Load())
	var measured clockSkew
	defer func() {
		if measured.ok {
			c.skew.Store(int64(measured.skew))
		}
	}()
	for attempt := 1; ; attempt++ {
		releaseAttempt, err := c.attemptToken(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3 %s %s: get an attempt token from the retryer: %w", r.op, r.object(), err)
		}
		measured = clockSkew{}
		resp, err := c.attempt(ctx, r, skew, &measured)
		// As the SDK: the retry token goes back to the quota if this
		// attempt succeeded, and the attempt token adds the retryer's
		// NoRetryIncrement on success.
		_ = releaseRetry(err)
		_ = releaseAttempt(err)
		if err == nil {
			return resp, nil
		}
		err = asClockSkew(err, skew, measured)
		skew = measured.skew // 0 when not measured, as the SDK's
		if ctx.Err() != nil || !c.retryer.IsErrorRetryable(err) {
			return nil, err
		}
		if maxAttempts > 0 && attempt >= maxAttempts {
			if attempt > 1 {
				// As the SDK's MaxAttemptsError: say the retries ran out.
				err = fmt.Errorf("gave up after %d attempts: %w", attempt, err)
			}
			return nil, err
		}
		rel, terr := c.retryer.GetRetryToken(ctx, err)
		if terr != nil {
			// As the SDK: the last error and why it was not retried ("retry
			// quota exceeded": too many failures of late).
			return nil, errors.Join(err, fmt.Errorf("s3 %s %s: not retried: %w", r.op, r.object(), terr))
		}
		delay, derr := c.retryer.RetryDelay(attempt, err)
		if derr != nil {
			return nil, err
		}
		releaseRetry = rel
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("s3 %s %s: %w (while waiting to retry after: %w)", r.op, r.object(), &smithy.CanceledError{Err: ctx.Err()}, err)
			case <-t.C:
			}
		}
	}
}

// attemptToken takes the token an attempt holds, as the SDK's retry
// middleware does: RetryerV2's GetAttemptToken, else GetInitialToken.
func (c *Client) attemptToken(ctx context.Context) (func(error) error, error) {
	if r2, ok := c.retryer.(aws.RetryerV2); ok {
		return r2.GetAttemptToken(ctx)
	}
	return c.retryer.GetInitialToken(), nil
}

func (r *request) object() string {
	if r.key == "" {
		return "s3://" + r.bucket + "/"
	}
	return "s3://" + r.bucket + "/" + r.key
}

// clockSkew is how far S3's clock was ahead of ours when an answer came,
// measured from its Date header (ok false: no such measure).
type clockSkew struct {
	skew time.Duration
	ok   bool
}

// maxTrustedRoundTrip bounds the round trip whose answer's Date header is
// believed, as the SDK's (aws/middleware computeClockSkew).
const maxTrustedRoundTrip = 15 * time.Minute

// measureSkew reads the Date header of an answer requested at sent and
// received at got, as the SDK does: no measure without a parsable Date,
// from a cache (an Age header), or after too long a round trip.
func measureSkew(resp *http.Response, sent, got time.Time) clockSkew {
	date := resp.Header.Get("Date")
	if date == "" || resp.Header.Get("Age") != "" || got.Sub(sent) > maxTrustedRoundTrip {
		return clockSkew{}
	}
	server, err := http.ParseTime(date)
	if err != nil {
		return clockSkew{}
	}
	return clockSkew{skew: server.Sub(got), ok: true}
}

// attempt sends r once, signed at now+skew, and reads its answer: a
// success, or the error that classifies it; *measured is set to the skew
// the answer showed.
func (c *Client) attempt(ctx context.Context, r *request, skew time.Duration, measured *clockSkew) (*response, error) {
	u := c.objectURL(r.bucket, r.key)
	u.RawQuery = encodeQuery(r.query)
	var body io.Reader = http.NoBody
	if len(r.body) > 0 {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("s3 %s %s: %w", r.op, r.object(), err)
	}
	// NewRequest parses the URL again: keep our escaping of the path.
	req.URL = u
	req.ContentLength = int64(len(r.body))
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	// The body as stored, not decompressed by the transport: ETag and
	// Content-Length are the object's own.
	req.Header.Set("Accept-Encoding", "identity")
	req.Header.Set("User-Agent", userAgent)
	hash := emptySHA256
	if len(r.body) > 0 {
		sum := sha256.Sum256(r.body)
		hash = hex.EncodeToString(sum[:])
	}
	req.Header.Set("X-Amz-Content-Sha256", hash)
	if err := c.sign(ctx, req, hash, time.Now().Add(skew)); err != nil {
		return nil, fmt.Errorf("s3 %s %s: %w", r.op, r.object(), err)
	}
	sent := time.Now()
	resp, err := c.http.Do(req)
	if err == nil {
		*measured = measureSkew(resp, sent, time.Now())
	}
	if err != nil {
		// As the SDK: a request ended by its context is canceled (never
		// retried), any other failure to get an answer a connection error
		// (retried).
		if ctx.Err() != nil {
			return nil, fmt.Errorf("s3 %s %s: %w", r.op, r.object(), &smithy.CanceledError{Err: ctx.Err()})
		}
		return nil, &SendError{Op: r.op, Bucket: r.bucket, Key: r.key, Err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if err != nil && ctx.Err() != nil {
			return nil, fmt.Errorf("s3 %s %s: %w", r.op, r.object(), &smithy.CanceledError{Err: ctx.Err()})
		}
		return nil, c.responseError(r, req, resp, b, err)
	}
	if !r.readAll {
		return &response{Response: resp}, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, r.limit+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("s3 %s %s: %w", r.op, r.object(), &smithy.CanceledError{Err: ctx.Err()})
		}
		return nil, &SendError{Op: r.op, Bucket: r.bucket, Key: r.key, Err: fmt.Errorf("read the answer: %w", err)}
	}
	if int64(len(b)) > r.limit {
		return nil, fmt.Errorf("s3 %s %s: the answer is larger than %d bytes", r.op, r.object(), r.limit)
	}
	return &response{Response: resp, body: b}, nil
}

// sign signs req for S3 with the credentials, if any: without credentials
// requests go unsigned, as the SDK's do with anonymous credentials.
func (c *Client) sign(ctx context.Context, req *http.Request, payloadHash string, at time.Time) error {
	if c.credentials == nil {
		return nil
	}
	creds, err := c.credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("retrieve credentials: %w", err)
	}
	return c.signer.SignHTTP(ctx, creds, req, payloadHash, signingService, c.region, at.UTC())
}
