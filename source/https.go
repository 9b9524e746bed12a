package source

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/redact"
)

// httpsScheme is https://host/path, through go-retryablehttp.
func httpsScheme() scheme {
	return scheme{
		parse: func(u *url.URL, _ *location) string {
			if u.Host == "" {
				return "no host"
			}
			return ""
		},
		topology: func(_ context.Context, loc location, o Options) (nodeagent.TopologySource, error) {
			return &httpSource{loc: loc, c: newHTTPClient(o, true)}, nil
		},
		open: openHTTP,
	}
}

// httpScheme is plain http, for local mirrors and tests only.
func httpScheme() scheme {
	return scheme{
		parse: func(u *url.URL, _ *location) string {
			if !isLoopback(u.Hostname()) {
				return "plain http to a host other than localhost or 127.0.0.0/8"
			}
			return ""
		},
		topology: httpsScheme().topology,
		open:     openHTTP,
	}
}

// openHTTP streams a release archive over http(s).
func openHTTP(ctx context.Context, op *Opener, loc location) (io.ReadCloser, int64, error) {
	resp, err := httpGet(ctx, op.http(), loc, "")
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode == http.StatusNotModified {
		resp.Body.Close()
		return nil, 0, &Error{URL: loc.raw, Status: resp.StatusCode, Err: fmt.Errorf("%w: %s", errHTTPStatus, resp.Status)}
	}
	return resp.Body, resp.ContentLength, nil
}

// newHTTPClient is a retrying client: o.Attempts tries in all, each with its
// own deadline (whole: the deadline covers the body too), jittered backoff
// that honours Retry-After, and redirects only to URLs this package accepts.
func newHTTPClient(o Options, whole bool) *retryablehttp.Client {
	base := &http.Client{}
	if o.HTTPClient != nil {
		c := *o.HTTPClient
		base = &c
	}
	next := base.Transport
	if next == nil {
		next = http.DefaultTransport.(*http.Transport).Clone()
	}
	base.Transport = timedTransport{next: next, d: o.Timeout, whole: whole}
	base.CheckRedirect = checkRedirect
	return &retryablehttp.Client{
		HTTPClient:   base,
		Logger:       o.Logger.With(nodeagent.LogKeyComponent, "source"),
		RetryWaitMin: backoffBase,
		RetryWaitMax: backoffMax,
		RetryMax:     o.Attempts - 1,
		CheckRetry:   retryablehttp.ErrorPropagatedRetryPolicy,
		Backoff: func(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
			if resp != nil && resp.Header.Get("Retry-After") != "" {
				return retryablehttp.DefaultBackoff(min, max, attempt, resp)
			}
			return retryBackoff.Delay(attempt + 1)
		},
		// Hand back the last answer, so the error can name its status.
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
}

// checkRedirect follows a redirect only to https (plain http only from a
// plain-http loopback URL, to loopback), and to a loopback or link-local
// address (127.0.0.0/8, ::1, localhost, 169.254.0.0/16 where instance
// metadata lives, fe80::/10) only when the original URL was one too: a
// compromised or misconfigured server cannot send the agent's request to
// a local service or to IMDS.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errTooManyRedirects
	}
	orig, to := via[0].URL, req.URL
	if _, err := parseLocation(to.String()); err != nil {
		return fmt.Errorf("redirect to %s: %w", redact.URL(to.String()), err)
	}
	if to.Scheme != schemeHTTPS && orig.Scheme != schemeHTTP {
		return fmt.Errorf("redirect from https to %s: %w", redact.URL(to.String()), errRedirect)
	}
	if local(to.Hostname()) && !local(orig.Hostname()) {
		return fmt.Errorf("redirect to %s, a loopback or link-local address: %w", redact.URL(to.String()), errRedirect)
	}
	return nil
}

// local reports whether host names this machine or its link: localhost,
// a loopback or link-local (or unspecified) address.
func local(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	if err != nil {
		return false
	}
	a = a.Unmap()
	return a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsUnspecified()
}

// httpGet sends one GET (with retries) and returns a 2xx or 304 response.
func httpGet(ctx context.Context, c *retryablehttp.Client, loc location, etag string) (*http.Response, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, loc.url.String(), nil)
	if err != nil {
		return nil, &Error{URL: loc.raw, Err: err}
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := c.Do(req)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		e := &Error{URL: loc.raw, Err: err}
		if ctxAlive(err) {
			e.Hint = fmt.Sprintf("no answer after %d attempts: check the network and proxy settings", c.RetryMax+1)
		}
		return nil, e
	}
	if resp.StatusCode == http.StatusNotModified || (resp.StatusCode >= 200 && resp.StatusCode < 300) {
		return resp, nil
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	e := &Error{URL: loc.raw, Status: resp.StatusCode, Err: fmt.Errorf("%w: %s", errHTTPStatus, resp.Status)}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		e.Hint = "the server has no such document: check the URL"
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		e.Hint = "the server refused access: check the URL's credentials or signature (a presigned URL may have expired)"
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		e.Hint = fmt.Sprintf("still failing after %d attempts", c.RetryMax+1)
	}
	return nil, e
}

// httpSource is a topology document behind https://, fetched with
// If-None-Match.
type httpSource struct {
	loc location
	c   *retryablehttp.Client
}

var _ nodeagent.TopologySource = (*httpSource)(nil)

func (s *httpSource) String() string { return s.loc.raw }

func (s *httpSource) Fetch(ctx context.Context, etag string) (nodeagent.Fetched, error) {
	resp, err := httpGet(ctx, s.c, s.loc, etag)
	if err != nil {
		return nodeagent.Fetched{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return nodeagent.Fetched{ETag: etag, NotModified: true, Source: s.loc.raw}, nil
	}
	body, err := readDocument(resp.Body)
	if err != nil {
		return nodeagent.Fetched{}, &Error{URL: s.loc.raw, Err: err}
	}
	return nodeagent.Fetched{Body: body, ETag: resp.Header.Get("ETag"), Source: s.loc.raw, Format: httpFormat(resp.Header.Get("Content-Type"), s.loc.raw)}, nil
}

// httpFormat is the document's format by its Content-Type: a YAML media
// type (application/yaml, application/x-yaml, text/yaml, text/x-yaml) or a
// JSON one (application/json, anything ending +json). A server that says
// neither (text/plain, application/octet-stream, none: a bucket's static
// website or a file server) leaves it to the URL's suffix.
func httpFormat(contentType, url string) nodeagent.Format {
	mt, _, err := mime.ParseMediaType(contentType)
	if err == nil {
		switch {
		case mt == "application/yaml", mt == "application/x-yaml", mt == "text/yaml", mt == "text/x-yaml", strings.HasSuffix(mt, "+yaml"):
			return nodeagent.FormatYAML
		case mt == "application/json", mt == "text/json", strings.HasSuffix(mt, "+json"):
			return nodeagent.FormatJSON
		}
	}
	return nodeagent.FormatOf(url)
}
