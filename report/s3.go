package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/nodeagent/nodeagent/awsenv"
	"github.com/nodeagent/nodeagent/s3api"
	"github.com/nodeagent/nodeagent/topology"
)

// Defaults for Client.
const (
	DefaultTimeout  = 10 * time.Second // one request, retries included
	DefaultParallel = 32               // GETs in flight while reading a prefix
	// MaxReports bounds how many objects Read lists under one prefix.
	MaxReports = 100_000
)

// Location is a reports prefix: the topology's fleet.reports.
type Location struct {
	URL    string // s3://bucket/prefix/
	Bucket string
	Prefix string // key prefix, "" or ending in "/"
}

// ParseLocation checks a reports URL as topology validation does and
// splits it.
func ParseLocation(url string) (Location, error) {
	b, p, err := topology.ParseReportsURL(url)
	if err != nil {
		return Location{}, fmt.Errorf("reports prefix %q: %w", url, err)
	}
	return Location{URL: url, Bucket: b, Prefix: p}, nil
}

// URLOf is the s3:// URL of an instance's report.
func (l Location) URLOf(instanceID string) string {
	return "s3://" + l.Bucket + "/" + Key(l.Prefix, instanceID)
}

// Client reads and writes reports in S3. It is safe for concurrent use.
type Client struct {
	env *awsenv.Env

	mu  sync.Mutex
	api *s3api.Client
	// Timeout bounds each request, retries included; default
	// DefaultTimeout.
	Timeout time.Duration
	// Parallel bounds the GETs in flight in Read; default DefaultParallel.
	Parallel int
}

// NewClient returns a client configured from the shared AWS configuration
// (awsenv: region, credentials, AWS_ENDPOINT_URL_S3; a custom endpoint
// means path-style addressing, as for MinIO) on first use, so a node
// whose region lookup fails now still reports later. env nil means the
// process environment.
func NewClient(env *awsenv.Env) *Client {
	if env == nil {
		env = awsenv.New(nil)
	}
	return &Client{env: env}
}

// NewClientFromAPI wraps an S3 client configured elsewhere.
func NewClientFromAPI(api *s3api.Client) *Client {
	return &Client{api: api}
}

// client returns the S3 client, building it on first use.
func (c *Client) client(ctx context.Context) (*s3api.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.api != nil {
		return c.api, nil
	}
	cfg, err := c.env.Config(ctx)
	if err != nil {
		return nil, fmt.Errorf("AWS config: %w", err)
	}
	api, err := s3api.New(cfg, s3api.Options{
		Endpoint: c.env.Endpoint("S3"),
		HTTPClient: awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConnsPerHost = DefaultParallel
		}),
	})
	if err != nil {
		return nil, err
	}
	c.api = api
	return c.api, nil
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// Put writes r as <prefix><instance-id>.json: one PutObject.
func (c *Client) Put(ctx context.Context, loc Location, r *Report) error {
	body, err := Encode(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	api, err := c.client(ctx)
	if err != nil {
		return fmt.Errorf("report: put %s: %w", loc.URLOf(r.InstanceID), err)
	}
	_, err = api.Put(ctx, s3api.PutInput{
		Bucket:      loc.Bucket,
		Key:         Key(loc.Prefix, r.InstanceID),
		Body:        body,
		ContentType: "application/json",
	})
	if err != nil {
		return fmt.Errorf("report: put %s: %w", loc.URLOf(r.InstanceID), c.explain(api, loc, err, "s3:PutObject"))
	}
	return nil
}

// Entry is one object under a reports prefix, read.
type Entry struct {
	Key          string
	InstanceID   string    // from the key; "" when the key names no instance
	LastModified time.Time // S3's time of the last write
	ETag         string    // S3's ETag, to skip unchanged objects (ReadCached)
	Report       *Report   // nil when Err is set
	// Err says why the object is not a usable report: it wraps
	// ErrCorrupt, ErrSchema or ErrForeign (see Kind), or is the failed
	// GET.
	Err error
}

// Read lists every object directly under loc (ListObjectsV2, paged) and
// reads each one that can be a report with at most Parallel GETs at once.
// Only a failed listing is an error; an object that cannot be read or
// decoded is an Entry with Err set. Entries are sorted by key.
func (c *Client) Read(ctx context.Context, loc Location) ([]Entry, error) {
	return c.ReadCached(ctx, loc, nil)
}

// ReadCached is Read that reuses the entries of an earlier Read of the same
// prefix whose key and ETag have not changed: a watcher that re-reads a
// quiet fleet of N nodes pays one LIST per 1,000 objects, not N GETs.
// Entries that failed to GET are read again.
func (c *Client) ReadCached(ctx context.Context, loc Location, prev []Entry) ([]Entry, error) {
	known := make(map[string]Entry, len(prev))
	for _, e := range prev {
		if e.ETag != "" && (e.Report != nil || errors.Is(e.Err, ErrCorrupt) || errors.Is(e.Err, ErrSchema) || errors.Is(e.Err, ErrForeign)) {
			known[e.Key] = e
		}
	}
	api, err := c.client(ctx)
	if err != nil {
		return nil, fmt.Errorf("report: list %s: %w", loc.URL, err)
	}
	var entries []Entry
	in := s3api.ListInput{
		Bucket:    loc.Bucket,
		Prefix:    loc.Prefix,
		Delimiter: "/", // sub-folders are not reports
	}
	for first := true; first || in.ContinuationToken != ""; first = false {
		lctx, cancel := context.WithTimeout(ctx, c.timeout())
		page, err := api.List(lctx, in)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("report: list %s: %w", loc.URL, c.explain(api, loc, err, "s3:ListBucket"))
		}
		in.ContinuationToken = page.NextToken
		for _, o := range page.Objects {
			key := o.Key
			e := Entry{Key: key, LastModified: o.LastModified.UTC(), ETag: o.ETag}
			if k, ok := known[key]; ok && k.ETag == e.ETag {
				e.InstanceID, e.Report, e.Err = k.InstanceID, k.Report, k.Err
				entries = append(entries, e)
				continue
			}
			if id, ok := InstanceOf(loc.Prefix, key); ok {
				e.InstanceID = id
			} else {
				e.Err = fmt.Errorf("%w: key %q is not <prefix><instance-id>.json", ErrForeign, key)
			}
			if o.Size > MaxSize {
				e.Err = fmt.Errorf("%w: %d bytes, more than %d", ErrCorrupt, o.Size, MaxSize)
			}
			entries = append(entries, e)
		}
		if len(entries) > MaxReports {
			return nil, fmt.Errorf("report: list %s: more than %d objects: is this prefix only for reports?", loc.URL, MaxReports)
		}
	}

	// A fixed pool of workers rather than a goroutine per object: a fresh
	// goroutine grows (copies) its stack on every GET.
	par := c.Parallel
	if par <= 0 {
		par = DefaultParallel
	}
	todo := make(chan *Entry)
	var wg sync.WaitGroup
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range todo {
				e.Report, e.Err = c.get(ctx, api, loc, e.Key, e.InstanceID)
			}
		}()
	}
	for i := range entries {
		if entries[i].Err == nil && entries[i].Report == nil {
			todo <- &entries[i]
		}
	}
	close(todo)
	wg.Wait()
	sort.Slice(entries, func(i, j int) bool { return entries[i].Key < entries[j].Key })
	return entries, nil
}

func (c *Client) get(ctx context.Context, api *s3api.Client, loc Location, key, id string) (*Report, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	out, err := api.Get(ctx, s3api.GetInput{Bucket: loc.Bucket, Key: key})
	if err != nil {
		return nil, fmt.Errorf("get: %w", c.explain(api, loc, err, "s3:GetObject"))
	}
	defer out.Body.Close()
	body, err := io.ReadAll(io.LimitReader(out.Body, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("get: read body: %w", err)
	}
	return Decode(id, body)
}

// explain adds what to check to an S3 error: the permission the request
// needs for a 403, the bucket for NoSuchBucket.
func (c *Client) explain(api *s3api.Client, loc Location, err error, action string) error {
	var ae smithy.APIError
	code := ""
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	status := s3api.Status(err)
	where := "AWS S3"
	if ep := api.Endpoint(); ep != "" {
		where = ep
	}
	switch hint := s3api.SigningHint(err); {
	case hint != "":
		return fmt.Errorf("%w (%s)", err, hint)
	case code == "NoSuchBucket":
		return fmt.Errorf("%w (bucket %q does not exist at %s: check fleet.reports, AWS_REGION and AWS_ENDPOINT_URL_S3)", err, loc.Bucket, where)
	case status == http.StatusForbidden:
		res := "arn:aws:s3:::" + loc.Bucket + "/" + loc.Prefix + "*"
		if action == "s3:ListBucket" {
			res = "arn:aws:s3:::" + loc.Bucket + " (with the condition s3:prefix " + loc.Prefix + ")"
		}
		return fmt.Errorf("%w (access denied: allow %s on %s)", err, action, res)
	}
	return err
}
