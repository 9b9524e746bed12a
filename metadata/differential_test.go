package metadata_test

// The differential test: Client, the package's own IMDSv2 client, and
// RoleCredentials are held to the SDK's feature/ec2/imds client and
// credentials/ec2rolecreds provider (test-only dependencies), configured as
// the package configured them before Client replaced them. Against the same
// answers both must send the same requests (method, path, TTL header, token)
// and come to the same verdict (value; status, requests sent, last request,
// transient or not, not found); both providers must give the same
// credentials. differential_integration_test.go does the same against
// AWS's amazon-ec2-metadata-mock.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/backoff"
	"github.com/nodeagent/nodeagent/metadata"
	"github.com/nodeagent/nodeagent/test/memnet"
)

// reader is one IMDS client under test.
type reader interface {
	meta(ctx context.Context, path string) ([]byte, error)
	dynamic(ctx context.Context, path string) ([]byte, error)
}

// sdkReader is the SDK's imds client as metadata.NewClient built it before
// Client replaced it: its own transport (no proxy, a deadline per attempt),
// the standard retryer with our attempts and backoff, 429 added and no retry
// quota, IMDSv2 only. Like Source.read did, it records the attempts, the
// last request and its status with a tracing transport, makes a
// *metadata.Error of a failure, and bounds the answer. (Source.read named
// only the path when an answer was too long; here the trace fills that
// error's requests too, as Client's own error does.)
type sdkReader struct {
	c        *imds.Client
	endpoint string
	trace    *sdkTrace
}

type sdkTrace struct {
	next http.RoundTripper

	mu       sync.Mutex
	attempts int
	status   int
	last     string
}

func (t *sdkTrace) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.attempts++
	t.last, t.status = req.Method+" "+req.URL.Path, 0
	if err == nil {
		t.status = resp.StatusCode
	}
	return resp, err
}

func (t *sdkTrace) take() (attempts, status int, last string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a, s, l := t.attempts, t.status, t.last
	t.attempts, t.status, t.last = 0, 0, ""
	return a, s, l
}

func newSDKReader(endpoint string, o metadata.Options) *sdkReader {
	dial := o.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: o.CallTimeout}).DialContext
	}
	tr := &sdkTrace{next: &http.Transport{Proxy: nil, DialContext: dial, ResponseHeaderTimeout: o.CallTimeout, MaxIdleConns: 2, IdleConnTimeout: 30 * time.Second}}
	c := imds.New(imds.Options{
		Endpoint:   endpoint,
		HTTPClient: &http.Client{Timeout: o.CallTimeout, Transport: tr},
		Retryer: retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = o.Attempts
			so.MaxBackoff = time.Second
			so.Backoff = backoff.Policy{Base: 100 * time.Millisecond, Max: time.Second}
			so.RateLimiter = ratelimit.None
			so.Retryables = append(so.Retryables, retry.RetryableHTTPStatusCode{Codes: map[int]struct{}{http.StatusTooManyRequests: {}}})
		}),
		EnableFallback:           aws.FalseTernary,
		DisableDefaultTimeout:    true,
		DisableDefaultMaxBackoff: true,
	})
	return &sdkReader{c: c, endpoint: endpoint, trace: tr}
}

// maxValue is the package's bound on an answer (errors.go).
const maxValue = 64 << 10

func (r *sdkReader) finish(path string, out io.ReadCloser, err error) ([]byte, error) {
	attempts, status, last := r.trace.take()
	if err != nil {
		return nil, &metadata.Error{Path: path, Endpoint: r.endpoint, Attempts: attempts, Status: status, Last: last, Err: err}
	}
	defer out.Close()
	b, err := io.ReadAll(io.LimitReader(out, maxValue+1))
	if err == nil && len(b) > maxValue {
		err = fmt.Errorf("value longer than %d bytes", maxValue)
	}
	if err != nil {
		return nil, &metadata.Error{Path: path, Endpoint: r.endpoint, Attempts: attempts, Status: status, Last: last, Err: err}
	}
	return b, nil
}

func (r *sdkReader) meta(ctx context.Context, path string) ([]byte, error) {
	out, err := r.c.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	var body io.ReadCloser
	if err == nil {
		body = out.Content
	}
	return r.finish(path, body, err)
}

func (r *sdkReader) dynamic(ctx context.Context, path string) ([]byte, error) {
	out, err := r.c.GetDynamicData(ctx, &imds.GetDynamicDataInput{Path: path})
	var body io.ReadCloser
	if err == nil {
		body = out.Content
	}
	return r.finish("dynamic/"+path, body, err)
}

// ourReader is metadata.Client.
type ourReader struct{ c *metadata.Client }

func newOurReader(t *testing.T, o metadata.Options) ourReader {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	c, err := metadata.NewClient(o)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return ourReader{c}
}

func (r ourReader) meta(ctx context.Context, path string) ([]byte, error) {
	return r.c.Metadata(ctx, path)
}

func (r ourReader) dynamic(ctx context.Context, path string) ([]byte, error) {
	return r.c.Dynamic(ctx, path)
}

// verdict is how the agent sees one read; the two clients must agree on
// every field.
type verdict struct {
	Value     string
	Err       bool
	Path      string // metadata.Error.Path
	Status    int    // metadata.Error.StatusCode()
	Attempts  int    // requests sent, token requests included
	Last      string // last request sent
	Transient bool
	NotFound  bool
	TooLarge  bool
	Deadline  bool // errors.Is context.DeadlineExceeded
}

func judge(b []byte, err error) verdict {
	if err == nil {
		return verdict{Value: string(b)}
	}
	v := verdict{Err: true, NotFound: metadata.IsNotFound(err), TooLarge: strings.Contains(err.Error(), "value longer than"),
		Deadline: errors.Is(err, context.DeadlineExceeded)}
	var me *metadata.Error
	if errors.As(err, &me) {
		v.Path, v.Status, v.Attempts, v.Last, v.Transient = me.Path, me.StatusCode(), me.Attempts, me.Last, me.Transient()
	}
	return v
}

// answer is one canned answer.
type answer struct {
	status   int
	body     string
	ttl      string // the token answer's TTL header; "" means "300"
	hang     bool   // never answer (the client's per-attempt timeout ends it)
	revoke   bool   // forget every token first (IMDS restarted)
	location string // the Location header (a redirect's)
}

// cannedIMDS answers token PUTs and GETs from scripts and records every
// request as "METHOD path [ttl=N] [token=T] -> status". A GET without a
// live token is answered 401, as IMDSv2 does. A request for a path under
// elsewherePrefix (where the redirects in a script point) is answered 200
// "from-elsewhere" with a TTL header, whatever its method and token.
type cannedIMDS struct {
	mu     sync.Mutex
	puts   []answer // the n-th PUT's answer; past the end, a token
	gets   []answer // the n-th GET's answer; past the end, the last
	nPut   int
	nGet   int
	issued int
	live   map[string]bool
	log    []string
	stop   chan struct{}
}

func (f *cannedIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	entry := r.Method + " " + r.URL.Path
	if v := r.Header.Values("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"); len(v) > 0 {
		entry += " ttl=" + strings.Join(v, ",")
	}
	if v := r.Header.Values("X-Aws-Ec2-Metadata-Token"); len(v) > 0 {
		entry += " token=" + strings.Join(v, ",")
	}
	var a answer
	elsewhere := strings.HasPrefix(r.URL.Path, elsewherePrefix)
	switch {
	case elsewhere:
		// A redirect's target: it answers anything with a token-like
		// answer, so a client that follows a redirect takes it for a
		// token or a value.
		a = answer{status: 200, body: "from-elsewhere", ttl: "300"}
	case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
		if f.nPut < len(f.puts) {
			a = f.puts[f.nPut]
		} else {
			a = answer{status: 200}
		}
		f.nPut++
		if a.status == 200 && a.body == "" && !a.hang {
			f.issued++
			a.body = "token-" + strconv.Itoa(f.issued)
			f.live[a.body] = true
		}
		if a.ttl == "" {
			a.ttl = "300"
		}
	case r.Method == http.MethodGet && !f.live[r.Header.Get("X-Aws-Ec2-Metadata-Token")]:
		a = answer{status: http.StatusUnauthorized}
	case r.Method == http.MethodGet:
		a = f.gets[min(f.nGet, len(f.gets)-1)]
		f.nGet++
		if a.revoke {
			clear(f.live)
		}
	default:
		a = answer{status: http.StatusMethodNotAllowed}
	}
	if a.hang {
		f.log = append(f.log, entry+" -> hang")
		f.mu.Unlock()
		select {
		case <-r.Context().Done():
		case <-f.stop:
		}
		return
	}
	f.log = append(f.log, entry+" -> "+strconv.Itoa(a.status))
	f.mu.Unlock()
	if a.ttl != "-" && (r.Method == http.MethodPut || elsewhere) {
		w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", a.ttl)
	}
	if a.location != "" {
		w.Header().Set("Location", a.location)
	}
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

func (f *cannedIMDS) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.log
	f.log = nil
	return l
}

// serveCanned serves a fresh cannedIMDS in memory (call it inside a
// synctest bubble) and returns it with its dial.
func serveCanned(t *testing.T, puts, gets []answer) (*cannedIMDS, func(ctx context.Context, network, addr string) (net.Conn, error)) {
	t.Helper()
	f := &cannedIMDS{puts: puts, gets: gets, live: map[string]bool{}, stop: make(chan struct{})}
	ln := memnet.Listen("169.254.169.254:80")
	srv := &http.Server{Handler: f}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		close(f.stop)
		_ = srv.Close()
		<-served
	})
	return f, ln.Dial
}

const (
	getID  = "GET /latest/meta-data/instance-id"
	getDoc = "GET /latest/dynamic/instance-identity/document"
	putTok = "PUT /latest/api/token ttl=300"
)

func TestDifferentialCanned(t *testing.T) {
	big := strings.Repeat("x", maxValue+1)
	tests := []struct {
		name     string
		dynamic  bool
		puts     []answer
		gets     []answer
		want     verdict
		wantReqs []string
	}{
		{name: "200", gets: []answer{{status: 200, body: "i-0a1b2c3d4e5f60010"}},
			want:     verdict{Value: "i-0a1b2c3d4e5f60010"},
			wantReqs: []string{putTok + " -> 200", getID + " token=token-1 -> 200"}},
		{name: "200 dynamic", dynamic: true, gets: []answer{{status: 200, body: `{"instanceId":"i-0a"}`}},
			want:     verdict{Value: `{"instanceId":"i-0a"}`},
			wantReqs: []string{putTok + " -> 200", getDoc + " token=token-1 -> 200"}},
		{name: "404", gets: []answer{{status: 404, body: "not found"}},
			want:     verdict{Err: true, Path: "instance-id", Status: 404, Attempts: 2, Last: "GET /latest/meta-data/instance-id", NotFound: true},
			wantReqs: []string{putTok + " -> 200", getID + " token=token-1 -> 404"}},
		{name: "401 once then 200: the token is renewed", gets: []answer{{status: 401, revoke: true}, {status: 200, body: "i-0b"}},
			want: verdict{Value: "i-0b"},
			wantReqs: []string{putTok + " -> 200", getID + " token=token-1 -> 401",
				putTok + " -> 200", getID + " token=token-2 -> 200"}},
		{name: "403 on the token", puts: []answer{{status: 403}}, gets: []answer{{status: 200, body: "i-0c"}},
			want:     verdict{Err: true, Path: "instance-id", Status: 403, Attempts: 1, Last: "PUT /latest/api/token"},
			wantReqs: []string{putTok + " -> 403"}},
		{name: "404 on the token: not a path not found", puts: []answer{{status: 404}}, gets: []answer{{status: 200, body: "i-0c"}},
			want:     verdict{Err: true, Path: "instance-id", Status: 404, Attempts: 1, Last: "PUT /latest/api/token"},
			wantReqs: []string{putTok + " -> 404"}},
		{name: "503 twice then 200", gets: []answer{{status: 503}, {status: 503}, {status: 200, body: "i-0d"}},
			want:     verdict{Value: "i-0d"},
			wantReqs: []string{putTok + " -> 200", getID + " token=token-1 -> 503", getID + " token=token-1 -> 503", getID + " token=token-1 -> 200"}},
		{name: "503 twice on the token then 200", puts: []answer{{status: 503}, {status: 503}}, gets: []answer{{status: 200, body: "i-0e"}},
			want:     verdict{Value: "i-0e"},
			wantReqs: []string{putTok + " -> 503", putTok + " -> 503", putTok + " -> 200", getID + " token=token-1 -> 200"}},
		{name: "429 on every attempt", gets: []answer{{status: 429}},
			want:     verdict{Err: true, Path: "instance-id", Status: 429, Attempts: 4, Last: "GET /latest/meta-data/instance-id", Transient: true},
			wantReqs: []string{putTok + " -> 200", getID + " token=token-1 -> 429", getID + " token=token-1 -> 429", getID + " token=token-1 -> 429"}},
		{name: "500 on every attempt", gets: []answer{{status: 500}},
			want:     verdict{Err: true, Path: "instance-id", Status: 500, Attempts: 4, Last: "GET /latest/meta-data/instance-id", Transient: true},
			wantReqs: []string{putTok + " -> 200", getID + " token=token-1 -> 500", getID + " token=token-1 -> 500", getID + " token=token-1 -> 500"}},
		{name: "501 is not retried", gets: []answer{{status: 501}},
			want:     verdict{Err: true, Path: "instance-id", Status: 501, Attempts: 2, Last: "GET /latest/meta-data/instance-id", Transient: true},
			wantReqs: []string{putTok + " -> 200", getID + " token=token-1 -> 501"}},
		{name: "empty body", gets: []answer{{status: 200}},
			want:     verdict{},
			wantReqs: []string{putTok + " -> 200", getID + " token=token-1 -> 200"}},
		{name: "oversized body", gets: []answer{{status: 200, body: big}},
			want:     verdict{Err: true, Path: "instance-id", Status: 200, Attempts: 2, Last: "GET /latest/meta-data/instance-id", TooLarge: true},
			wantReqs: []string{putTok + " -> 200", getID + " token=token-1 -> 200"}},
		{name: "no answer to the GET", gets: []answer{{hang: true}},
			want:     verdict{Err: true, Path: "instance-id", Attempts: 4, Last: "GET /latest/meta-data/instance-id", Transient: true},
			wantReqs: []string{putTok + " -> 200", getID + " token=token-1 -> hang", getID + " token=token-1 -> hang", getID + " token=token-1 -> hang"}},
		{name: "no answer to the token", puts: []answer{{hang: true}, {hang: true}, {hang: true}}, gets: []answer{{status: 200, body: "i-0f"}},
			want:     verdict{Err: true, Path: "instance-id", Attempts: 3, Last: "PUT /latest/api/token", Transient: true},
			wantReqs: []string{putTok + " -> hang", putTok + " -> hang", putTok + " -> hang"}},
		{name: "token answer without a TTL", puts: []answer{{status: 200, body: "t", ttl: "-"}}, gets: []answer{{status: 200, body: "i-0g"}},
			want:     verdict{Err: true, Path: "instance-id", Status: 200, Attempts: 1, Last: "PUT /latest/api/token"},
			wantReqs: []string{putTok + " -> 200"}},
	}
	const attempts = 3
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				run := func(who string, newReader func(metadata.Options) reader) (verdict, []string, error) {
					f, dial := serveCanned(t, tt.puts, tt.gets)
					r := newReader(metadata.Options{Endpoint: "http://169.254.169.254", Attempts: attempts, CallTimeout: time.Second, DialContext: dial})
					read := r.meta
					path := "instance-id"
					if tt.dynamic {
						read, path = r.dynamic, "instance-identity/document"
					}
					b, err := read(context.Background(), path)
					if err != nil {
						t.Logf("%s: %v", who, err)
					}
					return judge(b, err), f.take(), err
				}
				sv, sreqs, serr := run("SDK", func(o metadata.Options) reader { return newSDKReader(o.Endpoint, o) })
				ov, oreqs, oerr := run("ours", func(o metadata.Options) reader { return newOurReader(t, o) })
				if sv.Attempts > 0 && sv.Status == 0 {
					// An attempt cut by its own timeout: whether the SDK's
					// error is context.DeadlineExceeded depends on which of
					// its two equal timers (the client's, the transport's
					// header timeout) fired first, and is never so for a
					// token request. Ours is DeadlineExceeded only when the
					// caller's context ended the read (want says so).
					sv.Deadline = ov.Deadline
				}
				if diff := cmp.Diff(sv, ov); diff != "" {
					t.Errorf("verdict (-SDK's +ours):\n%s\nSDK's error: %v\nour error: %v", diff, serr, oerr)
				}
				if diff := cmp.Diff(sreqs, oreqs); diff != "" {
					t.Errorf("requests IMDS saw (-SDK's +ours):\n%s", diff)
				}
				if diff := cmp.Diff(tt.want, ov); diff != "" {
					t.Errorf("verdict (-want +got):\n%s\nerror: %v", diff, oerr)
				}
				if diff := cmp.Diff(tt.wantReqs, oreqs); diff != "" {
					t.Errorf("requests (-want +got):\n%s", diff)
				}
				if oerr != nil && !strings.Contains(oerr.Error(), "http://169.254.169.254") {
					t.Errorf("error %q does not name the endpoint", oerr)
				}
			})
		})
	}
}

// TestDifferentialRedirect: a deliberate difference. IMDS never redirects;
// the SDK's imds client, on the plain http.Client the package gave it,
// follows a redirect to another host, sending the session token along and
// taking what answers there for a token or a value. (On the SDK's own
// default client it would follow 307 and 308 only.) Ours never follows
// one: the read fails at once with the 3xx, and the target is never asked.
func TestDifferentialRedirect(t *testing.T) {
	const target = "http://elsewhere.example" + elsewherePrefix + "/x" // memnet's dial reaches the canned server whatever the host
	tests := []struct {
		name       string
		puts, gets []answer
		want       verdict // ours
		wantReqs   []string
		sdkTarget  string // the request the target saw from the SDK's client
	}{
		{name: "302 to the token PUT", puts: []answer{{status: 302, location: target}}, gets: []answer{{status: 200, body: "i-0r"}},
			want:      verdict{Err: true, Path: "instance-id", Status: 302, Attempts: 1, Last: "PUT /latest/api/token"},
			wantReqs:  []string{putTok + " -> 302"},
			sdkTarget: "GET " + elsewherePrefix + "/x ttl=300 -> 200"}, // a GET, whose answer it took for a token
		{name: "307 to the token PUT", puts: []answer{{status: 307, location: target}}, gets: []answer{{status: 200, body: "i-0r"}},
			want:      verdict{Err: true, Path: "instance-id", Status: 307, Attempts: 1, Last: "PUT /latest/api/token"},
			wantReqs:  []string{putTok + " -> 307"},
			sdkTarget: "PUT " + elsewherePrefix + "/x ttl=300 -> 200"},
		{name: "302 to the GET", gets: []answer{{status: 302, location: target}},
			want:      verdict{Err: true, Path: "instance-id", Status: 302, Attempts: 2, Last: getID},
			wantReqs:  []string{putTok + " -> 200", getID + " token=token-1 -> 302"},
			sdkTarget: "GET " + elsewherePrefix + "/x token=token-1 -> 200"}, // the session token, sent to another host
		{name: "307 to the GET", gets: []answer{{status: 307, location: target}},
			want:      verdict{Err: true, Path: "instance-id", Status: 307, Attempts: 2, Last: getID},
			wantReqs:  []string{putTok + " -> 200", getID + " token=token-1 -> 307"},
			sdkTarget: "GET " + elsewherePrefix + "/x token=token-1 -> 200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				run := func(who string, newReader func(metadata.Options) reader) (verdict, []string, error) {
					f, dial := serveCanned(t, tt.puts, tt.gets)
					r := newReader(metadata.Options{Endpoint: "http://169.254.169.254", Attempts: 3, CallTimeout: time.Second, DialContext: dial})
					b, err := r.meta(context.Background(), "instance-id")
					t.Logf("%s: %q, %v", who, b, err)
					return judge(b, err), f.take(), err
				}
				_, sreqs, _ := run("SDK", func(o metadata.Options) reader { return newSDKReader(o.Endpoint, o) })
				ov, oreqs, oerr := run("ours", func(o metadata.Options) reader { return newOurReader(t, o) })
				reached := func(reqs []string) bool {
					return slices.ContainsFunc(reqs, func(r string) bool { return strings.Contains(r, elsewherePrefix) })
				}
				// The difference, asserted: the SDK's client went to the
				// target (so this test notices should it stop), ours did not.
				if !slices.Contains(sreqs, tt.sdkTarget) {
					t.Errorf("the SDK's client did not send %q (requests %q): update this test, the two may agree now", tt.sdkTarget, sreqs)
				}
				if reached(oreqs) {
					t.Errorf("our client followed the redirect: %q", oreqs)
				}
				if diff := cmp.Diff(tt.wantReqs, oreqs); diff != "" {
					t.Errorf("requests (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(tt.want, ov); diff != "" {
					t.Errorf("verdict (-want +got):\n%s\nerror: %v", diff, oerr)
				}
				for _, s := range []string{"redirect to " + target, "does not follow", metadata.EndpointEnv} {
					if oerr != nil && !strings.Contains(oerr.Error(), s) {
						t.Errorf("error %q does not contain %q", oerr, s)
					}
				}
			})
		})
	}
}

// TestDifferentialRefused: a refused connection (a real closed port) is a
// transient failure after every attempt, for both.
func TestDifferentialRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + l.Addr().String()
	l.Close()
	o := metadata.Options{Endpoint: endpoint, Attempts: 2, CallTimeout: 2 * time.Second}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	sb, serr := newSDKReader(endpoint, o).meta(ctx, "instance-id")
	ob, oerr := newOurReader(t, o).meta(ctx, "instance-id")
	sv, ov := judge(sb, serr), judge(ob, oerr)
	if diff := cmp.Diff(sv, ov); diff != "" {
		t.Errorf("verdict (-SDK's +ours):\n%s\nSDK's error: %v\nour error: %v", diff, serr, oerr)
	}
	want := verdict{Err: true, Path: "instance-id", Attempts: 2, Last: "PUT /latest/api/token", Transient: true}
	if diff := cmp.Diff(want, ov); diff != "" {
		t.Errorf("verdict (-want +got):\n%s\nerror: %v", diff, oerr)
	}
	for _, s := range []string{endpoint, "instance-id", "IMDS did not answer", "hop limit"} {
		if !strings.Contains(oerr.Error(), s) {
			t.Errorf("error %q does not contain %q", oerr, s)
		}
	}
}

// TestDifferentialDeadline: a caller's deadline that ends a read, for both:
// not transient (the caller gave up), DeadlineExceeded.
func TestDifferentialDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var sv, ov verdict
		for i, newReader := range []func(metadata.Options) reader{
			func(o metadata.Options) reader { return newSDKReader(o.Endpoint, o) },
			func(o metadata.Options) reader { return newOurReader(t, o) },
		} {
			_, dial := serveCanned(t, nil, []answer{{hang: true}})
			r := newReader(metadata.Options{Endpoint: "http://169.254.169.254", Attempts: 5, CallTimeout: 5 * time.Second, DialContext: dial})
			ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
			b, err := r.meta(ctx, "instance-id")
			cancel()
			*[]*verdict{&sv, &ov}[i] = judge(b, err)
		}
		// Source.read told Error the caller's context had ended, which
		// makes the read not transient; this adapter cannot (an unexported
		// field), so Transient is checked on ours alone.
		if ov.Transient {
			t.Errorf("a read the caller's deadline ended is transient: %+v", ov)
		}
		sv.Transient, ov.Transient = false, false
		if diff := cmp.Diff(sv, ov); diff != "" {
			t.Errorf("verdict (-SDK's +ours):\n%s", diff)
		}
		if !ov.Err || !ov.Deadline || ov.Attempts != 2 {
			t.Errorf("verdict %+v, want an error that is DeadlineExceeded after the token and one GET", ov)
		}
	})
}

// TestTokenRenewedBeforeExpiry: the token is renewed a tenth of its TTL
// before it expires, not after a 401 (the SDK renews only once it has
// expired, so this is ours alone).
func TestTokenRenewedBeforeExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, dial := serveCanned(t, []answer{{status: 200, ttl: "60"}, {status: 200, ttl: "60"}}, []answer{{status: 200, body: "i-0h"}})
		r := newOurReader(t, metadata.Options{Endpoint: "http://169.254.169.254", DialContext: dial})
		read := func() {
			t.Helper()
			if b, err := r.meta(context.Background(), "instance-id"); err != nil || string(b) != "i-0h" {
				t.Fatalf("read: %q, %v", b, err)
			}
		}
		read()
		time.Sleep(53 * time.Second) // 1 s before the renewal (60 s - 6 s)
		read()
		time.Sleep(2 * time.Second)
		read()
		want := []string{putTok + " -> 200", getID + " token=token-1 -> 200", getID + " token=token-1 -> 200",
			putTok + " -> 200", getID + " token=token-2 -> 200"}
		if diff := cmp.Diff(want, f.take()); diff != "" {
			t.Errorf("requests (-want +got):\n%s", diff)
		}
	})
}

// TestOneTokenForConcurrentReads: reads that start together wait for one
// token request.
func TestOneTokenForConcurrentReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, dial := serveCanned(t, nil, []answer{{status: 200, body: "v"}})
		r := newOurReader(t, metadata.Options{Endpoint: "http://169.254.169.254", DialContext: dial})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if _, err := r.meta(context.Background(), "instance-id"); err != nil {
					t.Errorf("read: %v", err)
				}
			})
		}
		wg.Wait()
		puts := 0
		for _, l := range f.take() {
			if strings.HasPrefix(l, "PUT ") {
				puts++
			}
		}
		if puts != 1 {
			t.Errorf("%d token requests for 4 concurrent reads, want 1", puts)
		}
	})
}

// credsIMDS serves the instance profile: role lists the role (404 when
// ""), doc is the role's document.
func credsIMDS(role, doc string) []answer {
	if role == "" {
		return []answer{{status: 404}}
	}
	return []answer{{status: 200, body: role + "\n"}, {status: 200, body: doc}}
}

func TestDifferentialCredentials(t *testing.T) {
	doc := func(code string, expires time.Duration) string {
		return `{"Code":"` + code + `","LastUpdated":"2026-12-04T12:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAROLE",` +
			`"SecretAccessKey":"role-secret","Token":"role-session-token","Expiration":"` +
			time.Now().Add(expires).UTC().Format(time.RFC3339) + `"}`
	}
	tests := []struct {
		name    string
		role    string
		doc     func() string
		wantErr bool
	}{
		{name: "30 minutes left", role: "web-node", doc: func() string { return doc("Success", 30*time.Minute) }},
		{name: "6 hours left: capped at an hour", role: "web-node", doc: func() string { return doc("Success", 6*time.Hour) }},
		{name: "code other than Success", role: "web-node", doc: func() string { return doc("AssumeRoleUnauthorizedAccess", time.Hour) }, wantErr: true},
		{name: "no instance profile", doc: func() string { return "" }, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				o := metadata.Options{Endpoint: "http://169.254.169.254", Attempts: 2}
				type result struct {
					raw, cached aws.Credentials
					err         error
					reqs        []string
				}
				get := func(newProvider func(o metadata.Options) aws.CredentialsProvider) result {
					f, dial := serveCanned(t, nil, credsIMDS(tt.role, tt.doc()))
					o.DialContext = dial
					p := newProvider(o)
					var r result
					r.raw, r.err = p.Retrieve(context.Background())
					r.reqs = f.take()
					if r.err == nil {
						// Through the cache awsenv wraps it in (expiry
						// window 5 minutes), from a fresh server.
						f, dial := serveCanned(t, nil, credsIMDS(tt.role, tt.doc()))
						o.DialContext = dial
						c := aws.NewCredentialsCache(newProvider(o), func(co *aws.CredentialsCacheOptions) { co.ExpiryWindow = 5 * time.Minute })
						var err error
						if r.cached, err = c.Retrieve(context.Background()); err != nil {
							t.Fatalf("through the cache: %v", err)
						}
						f.take()
					}
					return r
				}
				s := get(func(o metadata.Options) aws.CredentialsProvider {
					sr := newSDKReader(o.Endpoint, o)
					return ec2rolecreds.New(func(eo *ec2rolecreds.Options) { eo.Client = sr.c })
				})
				ours := get(func(o metadata.Options) aws.CredentialsProvider {
					return metadata.NewRoleCredentials(newOurReader(t, o).c)
				})
				if diff := cmp.Diff(s.raw, ours.raw); diff != "" {
					t.Errorf("credentials (-SDK's +ours):\n%s", diff)
				}
				if diff := cmp.Diff(s.cached, ours.cached); diff != "" {
					t.Errorf("cached credentials (-SDK's +ours):\n%s", diff)
				}
				if diff := cmp.Diff(s.reqs, ours.reqs); diff != "" {
					t.Errorf("requests (-SDK's +ours):\n%s", diff)
				}
				if (s.err != nil) != tt.wantErr || (ours.err != nil) != tt.wantErr {
					t.Fatalf("errors: SDK's %v, ours %v; want an error: %v", s.err, ours.err, tt.wantErr)
				}
				if tt.wantErr {
					t.Logf("our error: %v", ours.err)
					if !errors.Is(ours.err, metadata.ErrNoInstanceProfile) || !strings.Contains(ours.err.Error(), "attach an IAM instance profile") {
						t.Errorf("error %q does not say to attach an instance profile", ours.err)
					}
					return
				}
				if ours.raw.AccessKeyID != "ASIAROLE" || ours.raw.SessionToken != "role-session-token" || !ours.raw.CanExpire {
					t.Errorf("credentials %+v, not the role's", ours.raw)
				}
				if limit := time.Now().Add(time.Hour); ours.raw.Expires.After(limit) {
					t.Errorf("expires %s, after an hour from now (%s)", ours.raw.Expires, limit)
				}
			})
		})
	}
}

// TestCredentialsKeptWhenIMDSFails: credentials IMDS cannot refresh are
// used a while longer, as the SDK's provider does (static stability).
func TestCredentialsKeptWhenIMDSFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, dial := serveCanned(t, nil, []answer{{status: 500}})
		o := metadata.Options{Endpoint: "http://169.254.169.254", Attempts: 1, DialContext: dial}
		sr := newSDKReader(o.Endpoint, o)
		providers := map[string]aws.HandleFailRefreshCredentialsCacheStrategy{
			"SDK":  ec2rolecreds.New(func(eo *ec2rolecreds.Options) { eo.Client = sr.c }),
			"ours": metadata.NewRoleCredentials(newOurReader(t, o).c),
		}
		now := time.Now()
		for who, p := range providers {
			fail := errors.New("IMDS down")
			prev := aws.Credentials{AccessKeyID: "A", CanExpire: true, Expires: now.Add(10 * time.Minute)}
			if got, err := p.HandleFailToRefresh(t.Context(), prev, fail); err != nil || !got.Expires.Equal(prev.Expires) {
				t.Errorf("%s: 10 minutes left: %+v, %v; want them unchanged", who, got, err)
			}
			prev.Expires = now.Add(time.Minute)
			got, err := p.HandleFailToRefresh(t.Context(), prev, fail)
			if err != nil || got.Expires.Before(now.Add(5*time.Minute)) || !got.Expires.Before(now.Add(15*time.Minute)) {
				t.Errorf("%s: a minute left: expires %s from now, %v; want [5m, 15m)", who, got.Expires.Sub(now), err)
			}
			if _, err := p.HandleFailToRefresh(t.Context(), aws.Credentials{AccessKeyID: "A"}, fail); !errors.Is(err, fail) {
				t.Errorf("%s: credentials that cannot expire: %v, want the refresh error", who, err)
			}
		}
	})
}

// recordSink keeps the records logged through a recordHandler and the
// handlers derived from it (With), each with the attributes it was given.
type recordSink struct {
	mu      sync.Mutex
	records []slog.Record
}

type recordHandler struct {
	sink  *recordSink
	attrs []slog.Attr
}

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	h.sink.mu.Lock()
	defer h.sink.mu.Unlock()
	h.sink.records = append(h.sink.records, r)
	return nil
}

func (h recordHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return recordHandler{sink: h.sink, attrs: append(slices.Clone(h.attrs), as...)}
}

func (h recordHandler) WithGroup(string) slog.Handler { return h }

// TestRetryIsLogged: each retry is a debug record "retrying" with the
// request, the attempt about to be made, the attempts in all, the wait and
// the error, under the root package's log keys (the SDK client logged its
// retries at debug level too).
func TestRetryIsLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, dial := serveCanned(t, nil, []answer{{status: 503}, {status: 200, body: "i-0r"}})
		sink := &recordSink{}
		c, err := metadata.NewClient(metadata.Options{Endpoint: "http://169.254.169.254", Attempts: 3, DialContext: dial, Logger: slog.New(recordHandler{sink: sink})})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Metadata(context.Background(), "instance-id"); err != nil {
			t.Fatal(err)
		}
		var got []map[string]string
		for _, r := range sink.records {
			if r.Message != "retrying" {
				continue
			}
			m := map[string]string{"level": r.Level.String()}
			r.Attrs(func(a slog.Attr) bool {
				m[a.Key] = a.Value.String()
				return true
			})
			got = append(got, m)
		}
		if len(got) != 1 {
			t.Fatalf("%d retrying records, want 1: %v", len(got), got)
		}
		r := got[0]
		want := map[string]string{
			"level":                   "DEBUG",
			nodeagent.LogKeyComponent: "imds",
			nodeagent.LogKeyEndpoint:  "http://169.254.169.254",
			nodeagent.LogKeyOp:        "GET /latest/meta-data/instance-id",
			nodeagent.LogKeyAttempt:   "2",
			nodeagent.LogKeyAttempts:  "3",
			nodeagent.LogKeyError:     "IMDS answered 503 Service Unavailable",
			nodeagent.LogKeyWait:      r[nodeagent.LogKeyWait],
		}
		if diff := cmp.Diff(want, r); diff != "" {
			t.Errorf("retrying record (-want +got):\n%s", diff)
		}
		if w, err := time.ParseDuration(r[nodeagent.LogKeyWait]); err != nil || w < imdsBackoff.Step(1)/2 || w >= imdsBackoff.Step(1) {
			t.Errorf("wait %q, want in [%s, %s)", r[nodeagent.LogKeyWait], imdsBackoff.Step(1)/2, imdsBackoff.Step(1))
		}
	})
}

// fuzzAnswer turns one byte into an answer: a status (or no answer) from
// the low bits, a variant of the body or the TTL header from the high ones.
func fuzzAnswer(b byte, put bool) answer {
	codes := []int{200, 200, 200, 401, 403, 404, 429, 500, 501, 502, 503, 504, 0}
	code := codes[int(b&0x0f)%len(codes)]
	if code == 0 {
		return answer{hang: true}
	}
	a := answer{status: code}
	variant := b >> 4
	switch {
	case put && code == 200:
		// A token: with the usual TTL, none, or one that is no number.
		a.ttl = [...]string{"300", "300", "-", "x"}[variant%4]
	case code == 200 && variant == 15:
		a.body = "" // an empty value
	default:
		a.body = "v" + strconv.Itoa(int(b))
	}
	return a
}

// FuzzDifferentialAnswers: for any script of token and metadata answers,
// both clients send the same requests and reach the same verdict.
func FuzzDifferentialAnswers(f *testing.F) {
	f.Add([]byte{}, []byte{0x00}, uint8(3))
	f.Add([]byte{}, []byte{0x05}, uint8(3))                 // 404
	f.Add([]byte{0x04}, []byte{0x00}, uint8(3))             // 403 on the token
	f.Add([]byte{0x0a, 0x0a}, []byte{0x00}, uint8(3))       // 503 twice on the token
	f.Add([]byte{}, []byte{0x0a, 0x0a, 0x00}, uint8(3))     // 503 twice on the GET
	f.Add([]byte{}, []byte{0x03, 0x00}, uint8(3))           // 401 then 200
	f.Add([]byte{0x20, 0x30}, []byte{0x0c, 0x06}, uint8(2)) // no TTL; no answer, 429
	f.Add([]byte{0x0c, 0x00}, []byte{0xf0, 0x08}, uint8(4)) // no answer to the token; empty value
	f.Fuzz(func(t *testing.T, puts, gets []byte, attempts uint8) {
		if len(puts) > 8 || len(gets) > 8 {
			return // longer scripts say nothing more, and take longer
		}
		var putAnswers, getAnswers []answer
		for _, b := range puts {
			putAnswers = append(putAnswers, fuzzAnswer(b, true))
		}
		for _, b := range gets {
			getAnswers = append(getAnswers, fuzzAnswer(b, false))
		}
		if len(getAnswers) == 0 {
			getAnswers = []answer{{status: 200, body: "v"}}
		}
		o := metadata.Options{Endpoint: "http://169.254.169.254", Attempts: int(attempts%5) + 1, CallTimeout: time.Second}
		synctest.Test(t, func(t *testing.T) {
			run := func(newReader func(metadata.Options) reader) (verdict, []string, error) {
				f, dial := serveCanned(t, putAnswers, getAnswers)
				o := o
				o.DialContext = dial
				b, err := newReader(o).meta(context.Background(), "instance-id")
				return judge(b, err), f.take(), err
			}
			sv, sreqs, serr := run(func(o metadata.Options) reader { return newSDKReader(o.Endpoint, o) })
			ov, oreqs, oerr := run(func(o metadata.Options) reader { return newOurReader(t, o) })
			if sv.Attempts > 0 && sv.Status == 0 {
				sv.Deadline = ov.Deadline // see TestDifferentialCanned
			}
			if diff := cmp.Diff(sv, ov); diff != "" {
				t.Errorf("verdict (-SDK's +ours):\n%s\nSDK's error: %v\nour error: %v", diff, serr, oerr)
			}
			if diff := cmp.Diff(sreqs, oreqs); diff != "" {
				t.Errorf("requests IMDS saw (-SDK's +ours):\n%s", diff)
			}
		})
	})
}
