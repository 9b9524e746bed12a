// Package source fetches the topology document and opens release archives
// from s3://bucket/key (package s3api, conditional GET), file:///abs/path and
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
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/awsenv"
	"github.com/nodeagent/nodeagent/redact"
	"github.com/nodeagent/nodeagent/s3api"
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
	S3 *s3api.Client
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

// scheme is one kind of source URL, litestream's replica-client factories
// in small: how to check a URL of it, how to fetch a topology document from
// it, and how to open a release archive from it. A new kind of source is a
// file of its own and one case in schemeOf; neither agent nor cmd changes.
type scheme struct {
	// parse checks u and fills in loc's scheme-specific fields; a
	// non-empty answer is why u is unusable.
	parse func(u *url.URL, loc *location) string
	// topology returns the topology source at loc.
	topology func(ctx context.Context, loc location, o Options) (nodeagent.TopologySource, error)
	// open streams the release archive at loc.
	open func(ctx context.Context, op *Opener, loc location) (io.ReadCloser, int64, error)
}

// schemeOf is the registry of URL schemes. (A function rather than a map
// variable: the http client's redirect check parses URLs, so a variable
// would depend on itself.)
func schemeOf(name string) (scheme, bool) {
	switch name {
	case schemeS3:
		return s3Scheme(), true
	case schemeFile:
		return fileScheme(), true
	case schemeHTTPS:
		return httpsScheme(), true
	case schemeHTTP:
		return httpScheme(), true
	}
	return scheme{}, false
}

// location is a parsed source URL.
type location struct {
	raw    string // as given, for messages: redact.URL (no userinfo, query or fragment)
	scheme string
	bucket string // s3
	key    string // s3
	path   string // file
	url    *url.URL
}

func parseLocation(raw string) (location, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error quotes the URL whole: name it redacted.
		return location{}, fmt.Errorf("source: %q: %w", redact.URL(raw), errors.Join(redact.Error(err), ErrUnsupportedURL))
	}
	loc := location{raw: redact.URL(raw), scheme: u.Scheme, url: u}
	sch, ok := schemeOf(u.Scheme)
	if !ok {
		return location{}, fmt.Errorf("source: %q: scheme %q: %w", loc.raw, u.Scheme, ErrUnsupportedURL)
	}
	if why := sch.parse(u, &loc); why != "" {
		return location{}, fmt.Errorf("source: %q: %s: %w", loc.raw, why, ErrUnsupportedURL)
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
	sch, _ := schemeOf(loc.scheme)
	return sch.topology(ctx, loc, o.withDefaults())
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
	// The cause may quote the URL whole (net/http's url.Error, a refused
	// redirect's target): it is redacted like the URL itself.
	msg := fmt.Sprintf("source: get %s: %s", e.URL, redact.Text(e.Err.Error()))
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Transient reports whether the request may succeed if sent again later:
// the server answered 5xx or 429 (S3's SlowDown is a 503), or there was no
// answer at all because the connection was refused, reset or timed out.
// 403, 404, a document too large, a missing file and a cancelled request
// are permanent.
func (e *Error) Transient() bool {
	switch {
	case e.Status >= 500 || e.Status == http.StatusTooManyRequests:
		return true
	case e.Status != 0 || !ctxAlive(e.Err):
		return false
	}
	var ne net.Error
	return errors.Is(e.Err, syscall.ECONNREFUSED) || errors.Is(e.Err, syscall.ECONNRESET) ||
		errors.Is(e.Err, io.ErrUnexpectedEOF) || (errors.As(e.Err, &ne) && ne.Timeout()) ||
		errors.As(e.Err, new(*net.OpError))
}

// IsNotFound reports whether err says the object or file does not exist.
func IsNotFound(err error) bool {
	var e *Error
	return errors.Is(err, fs.ErrNotExist) || (errors.As(err, &e) && e.Status == http.StatusNotFound)
}
