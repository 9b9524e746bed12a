package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// visitor is a browser of the shop: one cookie jar, so one session.
type visitor struct {
	url    string // http://IP:PORT/
	client *http.Client
}

func newVisitor(web node) (*visitor, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, fmt.Errorf("visitor: %w", err)
	}
	return &visitor{
		url:    fmt.Sprintf("http://%s:%d/", web.IP, sitePort),
		client: &http.Client{Jar: jar, Timeout: 10 * time.Second},
	}, nil
}

// page is one answer of the shop.
type page struct {
	Server string // the Server header
	Body   string
}

var (
	visitRe  = regexp.MustCompile(`(?m)^session:\s+visit (\d+) `)
	masterRe = regexp.MustCompile(`(?m)^database:\s+master (\S+) `)
)

// Visit is the session counter the page shows, 0 when it shows none.
func (p page) Visit() int {
	m := visitRe.FindStringSubmatch(p.Body)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// Master is the database master node the page shows.
func (p page) Master() string {
	if m := masterRe.FindStringSubmatch(p.Body); m != nil {
		return m[1]
	}
	return ""
}

// get fetches the shop's home page with its Host header; any status but
// 200 is an error.
func (v *visitor) get(ctx context.Context) (page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.url, nil)
	if err != nil {
		return page{}, fmt.Errorf("get %s: %w", v.url, err)
	}
	req.Host = siteHost
	resp, err := v.client.Do(req)
	if err != nil {
		return page{}, fmt.Errorf("get %s (Host %s): %w", v.url, siteHost, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return page{}, fmt.Errorf("get %s (Host %s): %w", v.url, siteHost, err)
	}
	p := page{Server: resp.Header.Get("Server"), Body: string(b)}
	if resp.StatusCode != http.StatusOK {
		return p, fmt.Errorf("get %s (Host %s): status %d: %s", v.url, siteHost, resp.StatusCode, strings.TrimSpace(p.Body))
	}
	return p, nil
}

// checkSite visits the shop twice in one session and checks that Apache
// served it, PHP ran it, and the session counter kept in memcached grew.
// It returns both pages.
func checkSite(ctx context.Context, web node) (first, second page, err error) {
	v, err := newVisitor(web)
	if err != nil {
		return first, second, err
	}
	if first, err = v.get(ctx); err != nil {
		return first, second, err
	}
	if second, err = v.get(ctx); err != nil {
		return first, second, err
	}
	switch {
	case !strings.Contains(first.Body, "Welcome to the shop"):
		err = fmt.Errorf("site: the page does not say %q:\n%s", "Welcome to the shop", indent(first.Body))
	case !strings.HasPrefix(first.Server, "Apache"):
		err = fmt.Errorf("site: served by %q, not Apache", first.Server)
	case !strings.Contains(first.Body, "(fpm-fcgi)"):
		err = fmt.Errorf("site: PHP did not run under PHP-FPM:\n%s", indent(first.Body))
	case first.Visit() != 1 || second.Visit() != 2:
		err = fmt.Errorf("site: the session counter went %d, %d (want 1, 2: sessions are kept in memcached)", first.Visit(), second.Visit())
	}
	return first, second, err
}

// memcachedVersion asks the memcached at addr for its version.
func memcachedVersion(ctx context.Context, addr string) (string, error) {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("memcached %s: %w", addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, "version\r\n"); err != nil {
		return "", fmt.Errorf("memcached %s: %w", addr, err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("memcached %s: %w", addr, err)
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(line), "VERSION ")
	if !ok {
		return "", fmt.Errorf("memcached %s: unexpected answer %q", addr, line)
	}
	return v, nil
}
