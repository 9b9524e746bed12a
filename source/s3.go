package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/awsenv"
	"github.com/nodeagent/nodeagent/s3api"
)

// s3Client is an S3 client with our retry and per-attempt settings: fetch
// for topology documents (the attempt deadline covers the body too),
// stream for release archives (it ends at the answer's headers).
type s3Client struct {
	fetch, stream *s3api.Client
	endpoint      string // custom endpoint, for messages; "" = AWS
}

// newS3Client uses o.S3, or builds a client from o.AWS (awsenv: region,
// credentials from the environment or the instance profile, endpoint from
// AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL). A custom endpoint means
// path-style addressing (MinIO and other S3 servers).
func newS3Client(ctx context.Context, o Options) (*s3Client, error) {
	api := o.S3
	if api == nil {
		var err error
		if api, err = newS3API(ctx, o); err != nil {
			return nil, err
		}
	}
	retryer := retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = o.Attempts
		so.MaxBackoff = backoffMax
		so.Backoff = retryBackoff
		so.RateLimiter = ratelimit.None
	})
	timed := func(whole bool) *s3api.Client {
		return api.With(func(so *s3api.Options) {
			so.Retryer = retryer
			so.HTTPClient = timedDoer{next: so.HTTPClient, d: o.Timeout, whole: whole}
		})
	}
	return &s3Client{fetch: timed(true), stream: timed(false), endpoint: api.Endpoint()}, nil
}

// newS3API builds the S3 client from o.AWS, o.HTTPClient and o.Timeout
// (the dial timeout).
func newS3API(ctx context.Context, o Options) (*s3api.Client, error) {
	env := o.AWS
	if env == nil {
		env = awsenv.New(nil)
	}
	cfg, err := env.Config(ctx)
	if err != nil {
		return nil, fmt.Errorf("AWS config: %w", err)
	}
	so := s3api.Options{Endpoint: env.Endpoint("S3")}
	if o.HTTPClient != nil {
		so.HTTPClient = o.HTTPClient
	} else {
		so.HTTPClient = awshttp.NewBuildableClient().WithDialerOptions(func(d *net.Dialer) {
			d.Timeout = o.Timeout
		})
	}
	return s3api.New(cfg, so)
}

// NewS3Client returns the S3 client that s3:// sources use, built the same
// way (o.AWS: region, credentials, AWS_ENDPOINT_URL_S3 with path-style
// addressing; o.HTTPClient; o.Timeout as the dial timeout), for callers that
// make other S3 calls, such as the operator's topology publish. Its retries
// are the SDK's standard ones.
func NewS3Client(ctx context.Context, o Options) (*s3api.Client, error) {
	o = o.withDefaults()
	if o.S3 != nil {
		return o.S3, nil
	}
	return newS3API(ctx, o)
}

// explain turns an S3 error into an *Error naming the URL and what to check.
func (c *s3Client) explain(loc location, err error) error {
	e := &Error{URL: loc.raw, Status: s3api.Status(err), Err: err}
	code := ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	where := "AWS S3"
	if c.endpoint != "" {
		where = c.endpoint
	}
	switch hint := s3api.SigningHint(err); {
	case hint != "":
		e.Hint = hint
	case code == "NoSuchBucket":
		e.Hint = fmt.Sprintf("bucket %q does not exist at %s: check the bucket name, AWS_REGION and AWS_ENDPOINT_URL_S3", loc.bucket, where)
	case e.Status == http.StatusNotFound:
		e.Hint = fmt.Sprintf("no object %q in bucket %q: check the key, or upload the object", loc.key, loc.bucket)
	case e.Status == http.StatusForbidden:
		e.Hint = fmt.Sprintf("access denied: check that the instance profile allows s3:GetObject on arn:aws:s3:::%s/%s"+
			" (and s3:ListBucket on the bucket, or S3 answers 403 for a missing key), the bucket policy, and kms:Decrypt for a KMS-encrypted object",
			loc.bucket, loc.key)
	case e.Status == http.StatusMovedPermanently || code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed":
		e.Hint = fmt.Sprintf("bucket %q is in another region: set AWS_REGION to the bucket's region", loc.bucket)
	case e.Status == 0 && ctxAlive(err):
		e.Hint = fmt.Sprintf("could not reach %s: check the network, proxy settings and AWS_ENDPOINT_URL_S3", where)
	}
	return e
}

func ctxAlive(err error) bool {
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// s3Scheme is s3://bucket/key: conditional GET for the topology, a
// streamed GetObject for releases.
func s3Scheme() scheme {
	return scheme{
		parse: func(u *url.URL, loc *location) string {
			loc.bucket, loc.key = u.Host, strings.TrimPrefix(u.Path, "/")
			if loc.bucket == "" || loc.key == "" || strings.HasSuffix(loc.key, "/") {
				return "no bucket or no object key"
			}
			if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
				return "query, fragment or user in an s3 URL"
			}
			return ""
		},
		topology: func(ctx context.Context, loc location, o Options) (nodeagent.TopologySource, error) {
			c, err := newS3Client(ctx, o)
			if err != nil {
				return nil, fmt.Errorf("source: %s: %w", loc.raw, err)
			}
			return &s3Source{loc: loc, c: c}, nil
		},
		open: func(ctx context.Context, op *Opener, loc location) (io.ReadCloser, int64, error) {
			c, err := op.s3Client(ctx)
			if err != nil {
				return nil, 0, &Error{URL: loc.raw, Err: err}
			}
			return c.open(ctx, loc)
		},
	}
}

// s3Source is a topology document in S3, fetched with If-None-Match.
type s3Source struct {
	loc location
	c   *s3Client
}

var _ nodeagent.TopologySource = (*s3Source)(nil)

func (s *s3Source) String() string { return s.loc.raw }

func (s *s3Source) Fetch(ctx context.Context, etag string) (nodeagent.Fetched, error) {
	out, err := s.c.fetch.Get(ctx, s3api.GetInput{Bucket: s.loc.bucket, Key: s.loc.key, IfNoneMatch: etag})
	if err != nil {
		if s3api.NotModified(err) {
			return nodeagent.Fetched{ETag: etag, NotModified: true, Source: s.loc.raw}, nil
		}
		return nodeagent.Fetched{}, s.c.explain(s.loc, err)
	}
	defer out.Body.Close()
	body, err := readDocument(out.Body)
	if err != nil {
		return nodeagent.Fetched{}, &Error{URL: s.loc.raw, Err: err}
	}
	return nodeagent.Fetched{Body: body, ETag: out.ETag, Source: s.loc.raw, Format: nodeagent.FormatOf(s.loc.key)}, nil
}

// open streams an object.
func (c *s3Client) open(ctx context.Context, loc location) (io.ReadCloser, int64, error) {
	out, err := c.stream.Get(ctx, s3api.GetInput{Bucket: loc.bucket, Key: loc.key})
	if err != nil {
		return nil, 0, c.explain(loc, err)
	}
	return out.Body, out.ContentLength, nil
}

var errTooLarge = fmt.Errorf("document larger than %d bytes", MaxDocument)

func readDocument(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxDocument+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if len(b) > MaxDocument {
		return nil, errTooLarge
	}
	return b, nil
}
