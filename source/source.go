// Package source fetches the topology document and opens release archives
// from s3://bucket/key (aws-sdk-go-v2, conditional GET), file:///abs/path and
// https:// (go-retryablehttp), and keeps the last good topology document in
// the state directory.
//
// Every error names the URL. Retries are bounded (Options.Attempts) with
// jittered exponential backoff, and every attempt has its own deadline
// (Options.Timeout), so a silent endpoint fails the call instead of hanging
// it; the caller's context bounds the whole call.
package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/awsenv"
)

// Defaults for Options.
const (
	DefaultAttempts = 4
	DefaultTimeout  = 10 * time.Second
	// MaxDocument bounds a topology document.
	MaxDocument = 16 << 20
)

// Options configures sources and openers.
type Options struct {
	Logger *slog.Logger
	// Attempts is how many times one request is tried on transport errors,
	// timeouts, throttling and 5xx; default DefaultAttempts.
	Attempts int
	// Timeout bounds each attempt: for a topology fetch the whole exchange,
	// for a release open the wait for the response headers (the body then
	// streams for as long as the caller's context allows). Default
	// DefaultTimeout.
	Timeout time.Duration
	// S3 is the S3 client to use; nil means one configured from AWS.
	S3 *s3.Client
	// AWS gives the region, credentials and endpoint of an S3 client built
	// here; nil means awsenv.New(os.Getenv).
	AWS *awsenv.Env
	// HTTPClient is the base client for https:// (and for S3 when S3 is
	// nil); nil means a fresh client that honours HTTPS_PROXY.
	HTTPClient *http.Client
}

func (o Options) withDefaults() Options {
	if o.Attempts <= 0 {
		o.Attempts = DefaultAttempts
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// ErrUnsupportedURL is wrapped by errors about URLs this package cannot use.
var ErrUnsupportedURL = errors.New("want s3://bucket/key, file:///absolute/path or https://host/path" +
	" (http:// only to localhost or 127.0.0.0/8)")

// Schemes.
const (
	schemeS3    = "s3"
	schemeFile  = "file"
	schemeHTTPS = "https"
	schemeHTTP  = "http"
)

// location is a parsed source URL.
type location struct {
	raw    string // as given, for messages (credentials redacted)
	scheme string
	bucket string // s3
	key    string // s3
	path   string // file
	url    *url.URL
}

func parseLocation(raw string) (location, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return location{}, fmt.Errorf("source: %q: %w", raw, errors.Join(err, ErrUnsupportedURL))
	}
	loc := location{raw: u.Redacted(), scheme: u.Scheme, url: u}
	bad := func(why string) (location, error) {
		return location{}, fmt.Errorf("source: %q: %s: %w", loc.raw, why, ErrUnsupportedURL)
	}
	switch u.Scheme {
	case schemeS3:
		loc.bucket, loc.key = u.Host, strings.TrimPrefix(u.Path, "/")
		if loc.bucket == "" || loc.key == "" || strings.HasSuffix(loc.key, "/") {
			return bad("no bucket or no object key")
		}
		if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return bad("query, fragment or user in an s3 URL")
		}
	case schemeFile:
		if u.Host != "" && u.Host != "localhost" {
			return bad("file URL with a host (want file:///absolute/path)")
		}
		if u.Path == "" || !filepath.IsAbs(u.Path) {
			return bad("file path is not absolute")
		}
		loc.path = filepath.Clean(u.Path)
	case schemeHTTPS:
		if u.Host == "" {
			return bad("no host")
		}
	case schemeHTTP:
		if !isLoopback(u.Hostname()) {
			return bad("plain http to a host other than localhost or 127.0.0.0/8")
		}
	default:
		return bad(fmt.Sprintf("scheme %q", u.Scheme))
	}
	return loc, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// New returns the topology source for rawURL.
func New(ctx context.Context, rawURL string, o Options) (nodeagent.TopologySource, error) {
	loc, err := parseLocation(rawURL)
	if err != nil {
		return nil, err
	}
	o = o.withDefaults()
	switch loc.scheme {
	case schemeS3:
		c, err := newS3Client(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("source: %s: %w", loc.raw, err)
		}
		return &s3Source{loc: loc, c: c}, nil
	case schemeFile:
		return &fileSource{loc: loc}, nil
	default:
		return &httpSource{loc: loc, c: newHTTPClient(o, true)}, nil
	}
}

// Error is a failed fetch or open. It names the URL, the HTTP status when
// there was one, and what to check.
type Error struct {
	URL    string
	Status int // HTTP status of the final answer; 0 when there was none
	Hint   string
	Err    error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("source: get %s: %v", e.URL, e.Err)
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// IsNotFound reports whether err says the object or file does not exist.
func IsNotFound(err error) bool {
	var e *Error
	return errors.Is(err, fs.ErrNotExist) || (errors.As(err, &e) && e.Status == http.StatusNotFound)
}
