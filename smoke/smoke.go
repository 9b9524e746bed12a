// Package smoke checks a node against its real local services: every
// product's HTTP checks through the local Apache with the product's Host
// header, the PHP probe (PHP actually executes in the product's pool), and
// memcached answering "version". Run retries each check with backoff within a
// deadline, because the services may still be starting, and reports every
// check's result, attempts and duration.
package smoke

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// The PHP probe every product vhost serves from its own PHP-FPM pool.
const (
	ProbePath   = "/.nodeagent/php-probe.php"
	ProbeMarker = "nodeagent-php-ok"
)

// Defaults for checks whose fields are zero.
const (
	DefaultStatus           = http.StatusOK
	DefaultMemcachedTimeout = 2 * time.Second
	// bodyExcerpt is how much of a response body an error quotes.
	bodyExcerpt = 200
	// maxBody is how much of a response body a check reads.
	maxBody = 1 << 20
)

// Check is one smoke check. Run returns nil when the check passes and an
// error saying what was expected and what was found when it does not.
type Check interface {
	Name() string
	Run(ctx context.Context) error
}

// HTTPCheck requests BaseURL+Path with the Host header set to Host and
// asserts the status code (0 means DefaultStatus), that the body contains
// Contains (when set), that a redirect points at Location (when set), and
// that the answer took at most MaxLatency (when set). Redirects are never
// followed, whatever Client says, so a check sees exactly what Apache
// answers (a check may expect a 301) and never passes against the host a
// redirect names. A nil Client means NewHTTPClient(DefaultAttemptTimeout);
// the caller's context bounds the request too.
type HTTPCheck struct {
	CheckName  string
	BaseURL    string // http://127.0.0.1:80
	Host       string // www.shop.example
	Path       string // /
	Status     int
	Contains   string
	Location   string
	MaxLatency time.Duration
	Client     *http.Client
}

var _ Check = (*HTTPCheck)(nil)

// Name returns the check's name.
func (c *HTTPCheck) Name() string { return c.CheckName }

// Run performs one request.
func (c *HTTPCheck) Run(ctx context.Context) error {
	if c.BaseURL == "" {
		return fmt.Errorf("smoke: %s: no base URL (Desired.Local.HTTP is empty: does this role run a web server?)", c.CheckName)
	}
	url := strings.TrimRight(c.BaseURL, "/") + "/" + strings.TrimLeft(c.Path, "/")
	where := "GET " + url
	if c.Host != "" {
		where += " (Host " + c.Host + ")"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("smoke: %s: %s: %w", c.CheckName, where, err)
	}
	if c.Host != "" {
		req.Host = c.Host
	}
	client := c.Client
	if client == nil {
		client = defaultClient
	} else if client.CheckRedirect == nil {
		cc := *client
		cc.CheckRedirect = noFollow
		client = &cc
	}

	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("smoke: %s: %s: %w", c.CheckName, where, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	latency := time.Since(start)
	if err != nil {
		return fmt.Errorf("smoke: %s: %s: read body: %w", c.CheckName, where, err)
	}

	want := c.Status
	if want == 0 {
		want = DefaultStatus
	}
	var problems []string
	if resp.StatusCode != want {
		problems = append(problems, fmt.Sprintf("want status %d, got %d", want, resp.StatusCode))
	}
	if c.Location != "" && resp.Header.Get("Location") != c.Location {
		problems = append(problems, fmt.Sprintf("want Location %q, got %q", c.Location, resp.Header.Get("Location")))
	}
	if c.Contains != "" && !bytes.Contains(body, []byte(c.Contains)) {
		problems = append(problems, fmt.Sprintf("want body containing %q, not found", c.Contains))
	}
	if c.MaxLatency > 0 && latency > c.MaxLatency {
		problems = append(problems, fmt.Sprintf("want latency at most %s, took %s",
			c.MaxLatency, latency.Round(time.Millisecond)))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("smoke: %s: %s: %s (status %d, latency %s, body %q)", c.CheckName, where,
		strings.Join(problems, "; "), resp.StatusCode, latency.Round(time.Millisecond), excerpt(body))
}

// excerpt returns the first bodyExcerpt bytes of b, marking a cut.
func excerpt(b []byte) string {
	if len(b) <= bodyExcerpt {
		return string(b)
	}
	return string(b[:bodyExcerpt]) + "…"
}

// NewHTTPClient is the client smoke checks use. It follows no redirects
// (a check sees Apache's own answer; a redirect to the public name must not
// make a check pass against another host), uses no proxy (the checks are of
// this node's services, which HTTP_PROXY or HTTPS_PROXY would route
// elsewhere), asks for the body as it is (no gzip: Apache has nothing to
// compress and the check nothing to inflate, a 64 KB window per answer), and
// bounds each request, dial and headers included, with timeout.
func NewHTTPClient(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: timeout}
	return &http.Client{
		Timeout:       timeout,
		CheckRedirect: noFollow,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			ResponseHeaderTimeout: timeout,
			DisableCompression:    true,
			MaxIdleConns:          8,
			IdleConnTimeout:       30 * time.Second,
		},
	}
}

func noFollow(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

var defaultClient = NewHTTPClient(DefaultAttemptTimeout)

// PHPProbe is the check that PHP executes for a product: the probe page,
// served through the product's vhost and pool, must answer 200 with
// ProbeMarker.
func PHPProbe(name, baseURL, host string, c *http.Client) *HTTPCheck {
	return &HTTPCheck{
		CheckName: name,
		BaseURL:   baseURL,
		Host:      host,
		Path:      ProbePath,
		Status:    http.StatusOK,
		Contains:  ProbeMarker,
		Client:    c,
	}
}

// MemcachedCheck sends "version" to memcached at Addr (host:port) and expects
// "VERSION x". Timeout bounds one attempt (0 means DefaultMemcachedTimeout);
// the caller's context bounds it too.
type MemcachedCheck struct {
	CheckName string
	Addr      string
	Timeout   time.Duration
}

var _ Check = (*MemcachedCheck)(nil)

// Name returns the check's name.
func (c *MemcachedCheck) Name() string { return c.CheckName }

// Run performs one version exchange.
func (c *MemcachedCheck) Run(ctx context.Context) error {
	if c.Addr == "" {
		return fmt.Errorf("smoke: %s: no memcached address", c.CheckName)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultMemcachedTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("smoke: %s: memcached %s: %w", c.CheckName, c.Addr, err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(deadline); err != nil {
			return fmt.Errorf("smoke: %s: memcached %s: %w", c.CheckName, c.Addr, err)
		}
	}
	// Close the connection when the context ends first, so a canceled run
	// does not wait for the deadline.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	if _, err := io.WriteString(conn, "version\r\n"); err != nil {
		return fmt.Errorf("smoke: %s: memcached %s: send version: %w", c.CheckName, c.Addr, err)
	}
	line, err := bufio.NewReaderSize(conn, 256).ReadSlice('\n')
	if err != nil && !(errors.Is(err, bufio.ErrBufferFull) || (errors.Is(err, io.EOF) && len(line) > 0)) {
		return fmt.Errorf("smoke: %s: memcached %s: read answer to version: %w", c.CheckName, c.Addr, err)
	}
	got := strings.TrimRight(string(line), "\r\n")
	if v, ok := strings.CutPrefix(got, "VERSION "); !ok || strings.TrimSpace(v) == "" {
		return fmt.Errorf("smoke: %s: memcached %s: want answer \"VERSION x\" to version, got %q",
			c.CheckName, c.Addr, excerpt([]byte(got)))
	}
	return nil
}
