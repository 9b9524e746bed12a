package metadata_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/backoff"
	"github.com/nodeagent/nodeagent/metadata"
)

func fullValues() map[string]string {
	return map[string]string{
		metadata.PathInstanceID:     "i-0a1b2c3d4e5f60010",
		metadata.PathLocalIPv4:      "10.0.1.31",
		metadata.PathAZ:             "eu-west-1b",
		metadata.PathRegion:         "eu-west-1",
		metadata.PathInstanceType:   "m7g.large",
		metadata.PathGroupTag:       "shop-web",
		metadata.PathLifecycleState: "InService",
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newSource(t *testing.T, o metadata.Options) *metadata.Source {
	t.Helper()
	if o.Root == "" {
		o.Root = writeRoot(t, map[string]string{"proc/meminfo": meminfo4G, "etc/os-release": osDebian, "etc/php/8.2/fpm/": ""})
	}
	if o.Proc == "" {
		o.Proc = filepath.Join(o.Root, "proc")
	}
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	s, err := metadata.New(context.Background(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestInstance(t *testing.T) {
	hostFacts := nodeagent.Instance{MemoryBytes: 4026532 * 1024, OSFamily: nodeagent.OSDebian, OSID: "debian", PHPVersion: "8.2"}
	withIMDS := func(i nodeagent.Instance) nodeagent.Instance {
		i.MemoryBytes, i.OSFamily, i.OSID, i.PHPVersion = hostFacts.MemoryBytes, hostFacts.OSFamily, hostFacts.OSID, hostFacts.PHPVersion
		return i
	}
	tests := []struct {
		name    string
		edit    func(v map[string]string)
		want    nodeagent.Instance
		wantErr []string
	}{
		{
			name: "everything served",
			want: withIMDS(nodeagent.Instance{ID: "i-0a1b2c3d4e5f60010", PrivateIP: "10.0.1.31", AZ: "eu-west-1b",
				Region: "eu-west-1", Type: "m7g.large", Group: "shop-web", LifecycleState: "InService"}),
		},
		{
			name: "no region path falls back to the AZ",
			edit: func(v map[string]string) { delete(v, metadata.PathRegion) },
			want: withIMDS(nodeagent.Instance{ID: "i-0a1b2c3d4e5f60010", PrivateIP: "10.0.1.31", AZ: "eu-west-1b",
				Region: "eu-west-1", Type: "m7g.large", Group: "shop-web", LifecycleState: "InService"}),
		},
		{
			name: "no group tag and no lifecycle state: not in a group",
			edit: func(v map[string]string) {
				delete(v, metadata.PathGroupTag)
				delete(v, metadata.PathLifecycleState)
			},
			want: withIMDS(nodeagent.Instance{ID: "i-0a1b2c3d4e5f60010", PrivateIP: "10.0.1.31", AZ: "eu-west-1b",
				Region: "eu-west-1", Type: "m7g.large"}),
		},
		{
			name:    "no identity document names the path",
			edit:    func(v map[string]string) { v[metadata.PathIdentityDocument] = "" },
			wantErr: []string{"metadata: get dynamic/instance-identity/document from http://127.0.0.1:", "404", "does not serve"},
		},
		{
			name:    "identity document without an instance id",
			edit:    func(v map[string]string) { delete(v, metadata.PathInstanceID) },
			wantErr: []string{"get dynamic/instance-identity/document", "no instanceId"},
		},
		{
			name:    "identity document that is no JSON object",
			edit:    func(v map[string]string) { v[metadata.PathIdentityDocument] = "i-0a1b2c3d4e5f60010" },
			wantErr: []string{"get dynamic/instance-identity/document", "not a JSON object"},
		},
		{
			name:    "private IP that is no address",
			edit:    func(v map[string]string) { v[metadata.PathLocalIPv4] = "10.0.1.300" },
			wantErr: []string{"get dynamic/instance-identity/document", "privateIp", "10.0.1.300"},
		},
		{
			name: "no region and an AZ without one",
			edit: func(v map[string]string) {
				delete(v, metadata.PathRegion)
				v[metadata.PathAZ] = "nowhere"
			},
			wantErr: []string{"get dynamic/instance-identity/document", `"nowhere"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := fullValues()
			if tt.edit != nil {
				tt.edit(v)
			}
			f := newFakeIMDS(t, v)
			s := newSource(t, metadata.Options{Endpoint: f.URL})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := s.Instance(ctx)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Instance: %v", err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("instance (-want +got):\n%s", diff)
				}
			} else {
				if err == nil {
					t.Fatalf("Instance = %+v, want an error", got)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
			}
			for _, r := range f.requests() {
				if strings.Contains(r, "401") {
					t.Errorf("unexpected tokenless or stale request: %s", r)
				}
			}
		})
	}
}

func TestTokenRejectedIsRenewed(t *testing.T) {
	f := newFakeIMDS(t, fullValues())
	s := newSource(t, metadata.Options{Endpoint: f.URL})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := s.LifecycleState(ctx); err != nil {
		t.Fatalf("first call: %v", err)
	}
	f.requests()
	f.expireTokens()

	got, err := s.LifecycleState(ctx)
	if err != nil {
		t.Fatalf("call after the token expired: %v", err)
	}
	if got != "InService" {
		t.Errorf("LifecycleState = %q, want InService", got)
	}
	want := []string{
		`GET /latest/meta-data/autoscaling/target-lifecycle-state 401 token="token-1"`,
		"PUT /latest/api/token 200 token-2",
		"GET /latest/meta-data/autoscaling/target-lifecycle-state 200",
	}
	if diff := cmp.Diff(want, f.requests()); diff != "" {
		t.Errorf("requests after expiry (-want +got):\n%s", diff)
	}
}

func TestUnavailableIsRetried(t *testing.T) {
	tests := []struct {
		name     string
		fail503  int
		attempts int
		wantErr  bool
	}{
		{name: "three 503s then an answer", fail503: 3, attempts: 5},
		{name: "503 on every attempt", fail503: 100, attempts: 3, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// On a synctest bubble's clock against an in-memory IMDS, so
			// every wait between attempts is checked exactly.
			synctest.Test(t, func(t *testing.T) {
				f, dial := newMemIMDS(t, fullValues())
				s := newSource(t, metadata.Options{Endpoint: f.URL, Attempts: tt.attempts, DialContext: dial})
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				// Get a token first, so the 503s hit the metadata GET itself.
				if _, err := s.LifecycleState(ctx); err != nil {
					t.Fatalf("first call: %v", err)
				}
				f.requests()
				f.set(func(f *fakeIMDS) { f.fail503 = tt.fail503 })

				got, err := s.LifecycleState(ctx)
				reqs, at := f.requestsAt()
				n503 := 0
				for i, r := range reqs {
					if strings.HasSuffix(r, " 503") {
						n503++
					}
					// Retry i (the SDK counts from 1) waits [Step(i)/2, Step(i)).
					if i > 0 {
						lo, hi := imdsBackoff.Step(i)/2, imdsBackoff.Step(i)
						if gap := at[i].Sub(at[i-1]); gap < lo || gap >= hi {
							t.Errorf("request %d (%s) came %v after the previous one, want [%s, %s)", i, r, gap, lo, hi)
						}
					}
				}
				if tt.wantErr {
					var me *metadata.Error
					if !errors.As(err, &me) {
						t.Fatalf("err = %v, want a *metadata.Error", err)
					}
					if me.StatusCode() != http.StatusServiceUnavailable || me.Path != metadata.PathLifecycleState {
						t.Errorf("error status %d path %q, want 503 %q", me.StatusCode(), me.Path, metadata.PathLifecycleState)
					}
					if n503 != tt.attempts {
						t.Errorf("%d attempts answered 503, want %d: %q", n503, tt.attempts, reqs)
					}
					return
				}
				if err != nil {
					t.Fatalf("LifecycleState: %v (requests %q)", err, reqs)
				}
				if got != "InService" || n503 != tt.fail503 {
					t.Errorf("got %q after %d 503s, want InService after %d: %q", got, n503, tt.fail503, reqs)
				}
			})
		})
	}
}

func TestTokenUnavailableIsRetried(t *testing.T) {
	f := newFakeIMDS(t, fullValues())
	f.set(func(f *fakeIMDS) { f.fail503 = 2 })
	s := newSource(t, metadata.Options{Endpoint: f.URL, Attempts: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.LifecycleState(ctx); err != nil {
		t.Fatalf("LifecycleState: %v", err)
	}
	want := []string{
		"PUT /latest/api/token 503",
		"PUT /latest/api/token 503",
		"PUT /latest/api/token 200 token-1",
		"GET /latest/meta-data/autoscaling/target-lifecycle-state 200",
	}
	if diff := cmp.Diff(want, f.requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestNeverFallsBackToIMDSv1(t *testing.T) {
	f := newFakeIMDS(t, fullValues())
	f.set(func(f *fakeIMDS) { f.putsDown = true })
	s := newSource(t, metadata.Options{Endpoint: f.URL, Attempts: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.Instance(ctx)
	if err == nil {
		t.Fatal("Instance succeeded although IMDS refuses tokens")
	}
	if !strings.Contains(err.Error(), "get "+metadata.PathIdentityDocument) || !strings.Contains(err.Error(), "token") {
		t.Errorf("error %q should name the path and the token", err)
	}
	for _, r := range f.requests() {
		if strings.HasPrefix(r, "GET ") {
			t.Errorf("tokenless IMDSv1 request sent: %s", r)
		}
	}
}

// imdsBackoff is the Source's retry schedule (backoffBase, maxBackoff);
// the SDK numbers retries from 1.
var imdsBackoff = backoff.Policy{Base: 100 * time.Millisecond, Max: time.Second}

// TestUnansweredIMDSFailsInTime runs on a synctest bubble's clock against
// an in-memory IMDS that never answers: the call ends exactly at the
// caller's deadline, or after its attempts, each cut at the per-call
// timeout, with the backoff between them.
func TestUnansweredIMDSFailsInTime(t *testing.T) {
	tests := []struct {
		name        string
		deadline    time.Duration // caller's; 0 = none
		callTimeout time.Duration
		attempts    int
		wantIs      error
	}{
		{name: "caller deadline shorter than a call", deadline: 700 * time.Millisecond, callTimeout: 5 * time.Second, attempts: 5, wantIs: context.DeadlineExceeded},
		{name: "per-call timeout and attempts bound it without a deadline", callTimeout: 150 * time.Millisecond, attempts: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, dial := newMemIMDS(t, fullValues())
				f.set(func(f *fakeIMDS) { f.hang = true })
				s := newSource(t, metadata.Options{Endpoint: f.URL, CallTimeout: tt.callTimeout, Attempts: tt.attempts, DialContext: dial})
				ctx := context.Background()
				if tt.deadline > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.deadline)
					defer cancel()
				}
				start := time.Now()
				_, err := s.Instance(ctx)
				elapsed := time.Since(start)
				if err == nil {
					t.Fatal("Instance succeeded against an IMDS that never answers")
				}
				for _, s := range []string{"get " + metadata.PathIdentityDocument, f.URL, "IMDSv2", "hop limit", metadata.EndpointEnv} {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("error %v is not %v", err, tt.wantIs)
				}
				reqs, at := f.requestsAt()
				puts := slices.DeleteFunc(slices.Clone(reqs), func(r string) bool { return !strings.HasPrefix(r, "PUT ") })
				if len(puts) != len(reqs) {
					t.Errorf("requests %q, want only token PUTs", reqs)
				}
				if tt.deadline > 0 {
					if len(puts) != 1 || elapsed != tt.deadline {
						t.Errorf("%d token attempts, failed after %s; want 1, failing at the caller's deadline %s", len(puts), elapsed, tt.deadline)
					}
					return
				}
				if len(puts) != tt.attempts {
					t.Fatalf("%d token attempts, want %d", len(puts), tt.attempts)
				}
				// Each attempt is cut at the call timeout; retry n (from 1)
				// waits [Step(n)/2, Step(n)) first; the call ends with the
				// last attempt's timeout.
				for n := 1; n < len(at); n++ {
					lo, hi := tt.callTimeout+imdsBackoff.Step(n)/2, tt.callTimeout+imdsBackoff.Step(n)
					if gap := at[n].Sub(at[n-1]); gap < lo || gap >= hi {
						t.Errorf("attempt %d came %s after the one before, want [%s, %s): the call timeout, then the backoff", n+1, gap, lo, hi)
					}
				}
				if end := at[len(at)-1].Add(tt.callTimeout); !start.Add(elapsed).Equal(end) {
					t.Errorf("failed %s after the start, want at the last attempt's timeout, %s", elapsed, end.Sub(start))
				}
			})
		})
	}
}

func TestEndpoint(t *testing.T) {
	t.Run("from the environment", func(t *testing.T) {
		f := newFakeIMDS(t, fullValues())
		t.Setenv(metadata.EndpointEnv, f.URL)
		s := newSource(t, metadata.Options{})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		got, err := s.LifecycleState(ctx)
		if err != nil || got != "InService" {
			t.Fatalf("LifecycleState = %q, %v; want InService", got, err)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		_, err := metadata.New(context.Background(), metadata.Options{Endpoint: "169.254.169.254"})
		if err == nil || !strings.Contains(err.Error(), `"169.254.169.254"`) {
			t.Fatalf("New error = %v, want one naming the endpoint", err)
		}
	})
}

func TestRegionFromAZ(t *testing.T) {
	tests := []struct {
		az, want string
		ok       bool
	}{
		{"us-east-1a", "us-east-1", true},
		{"eu-central-2c", "eu-central-2", true},
		{"us-gov-west-1a", "us-gov-west-1", true},
		{"us-west-2-lax-1a", "us-west-2", true},
		{"us-east-1-wl1-bos-wlz-1", "us-east-1", true},
		{"us-east-1", "us-east-1", false},
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.az, func(t *testing.T) {
			got, ok := metadata.RegionFromAZ(tt.az)
			if ok != tt.ok || (ok && got != tt.want) {
				t.Errorf("RegionFromAZ(%q) = %q, %v; want %q, %v", tt.az, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestRedirectIsNotFollowed: IMDS never redirects, so a 3xx to the token
// PUT or to a GET fails the read at once, naming where it pointed, and the
// target is never asked: no session token reaches it, and nothing it
// answers is taken for a token or a value.
func TestRedirectIsNotFollowed(t *testing.T) {
	const getPath = metaPrefix + metadata.PathLifecycleState
	tests := []struct {
		name     string
		path     string // the request redirected
		code     int
		wantReqs []string
	}{
		{name: "302 to the token PUT", path: tokenPath, code: http.StatusFound,
			wantReqs: []string{"PUT " + tokenPath + " 302"}},
		{name: "307 to the token PUT", path: tokenPath, code: http.StatusTemporaryRedirect,
			wantReqs: []string{"PUT " + tokenPath + " 307"}},
		{name: "302 to a GET", path: getPath, code: http.StatusFound,
			wantReqs: []string{"PUT " + tokenPath + " 200 token-1", "GET " + getPath + " 302"}},
		{name: "307 to a GET", path: getPath, code: http.StatusTemporaryRedirect,
			wantReqs: []string{"PUT " + tokenPath + " 200 token-1", "GET " + getPath + " 307"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeIMDS(t, fullValues())
			f.set(func(f *fakeIMDS) { f.redirects = map[string]int{tt.path: tt.code} })
			s := newSource(t, metadata.Options{Endpoint: f.URL, Attempts: 3})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			got, err := s.LifecycleState(ctx)
			reqs := f.requests()
			for _, r := range reqs {
				if strings.Contains(r, elsewherePrefix) {
					t.Errorf("the redirect was followed: %s", r)
				}
			}
			if diff := cmp.Diff(tt.wantReqs, reqs); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			if err == nil {
				t.Fatalf("LifecycleState = %q, want an error for the %d", got, tt.code)
			}
			var me *metadata.Error
			if !errors.As(err, &me) {
				t.Fatalf("err = %v, want a *metadata.Error", err)
			}
			if me.StatusCode() != tt.code || me.Transient() || metadata.IsNotFound(err) {
				t.Errorf("status %d, transient %v, not found %v; want %d, neither", me.StatusCode(), me.Transient(), metadata.IsNotFound(err), tt.code)
			}
			for _, s := range []string{"get " + metadata.PathLifecycleState, "redirect to " + f.URL + elsewherePrefix + tt.path,
				"does not follow", metadata.EndpointEnv} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

// TestTokenNotServed: an endpoint that answers 404 to the session token
// request (an IMDS emulator or a proxy without /latest/api/token) serves no
// path at all. A read fails saying so; none reads as a path IMDS does not
// serve, which would mean no instance profile, no lifecycle state, no
// group.
func TestTokenNotServed(t *testing.T) {
	checkErr := func(t *testing.T, err error, paths ...string) {
		t.Helper()
		if err == nil {
			t.Fatal("no error, although the token request answered 404")
		}
		t.Logf("error: %v", err)
		if metadata.IsNotFound(err) {
			t.Errorf("IsNotFound(%v) = true for a 404 to the token request", err)
		}
		want := []string{"PUT " + tokenPath, "404", "does not serve IMDSv2 session tokens", metadata.EndpointEnv}
		for _, p := range paths {
			want = append(want, "get "+p)
		}
		for _, s := range want {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not contain %q", err, s)
			}
		}
		if strings.Contains(err.Error(), "does not serve this path") {
			t.Errorf("error %q blames the path", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("lifecycle state", func(t *testing.T) {
		f := newFakeIMDS(t, fullValues())
		f.set(func(f *fakeIMDS) { f.tokens404 = true })
		s := newSource(t, metadata.Options{Endpoint: f.URL, Attempts: 3})
		got, err := s.LifecycleState(ctx)
		if got != "" {
			t.Errorf("LifecycleState = %q", got)
		}
		checkErr(t, err, metadata.PathLifecycleState)
		if diff := cmp.Diff([]string{"PUT " + tokenPath + " 404"}, f.requests()); diff != "" {
			t.Errorf("requests (-want +got):\n%s", diff)
		}
	})

	t.Run("group and lifecycle state after the identity document", func(t *testing.T) {
		f := newFakeIMDS(t, fullValues())
		// The document is read with a token; then IMDS forgets it, and
		// the token request the next reads make answers 404.
		f.set(func(f *fakeIMDS) {
			f.onDocument = func(f *fakeIMDS) {
				clear(f.tokens)
				f.tokens404 = true
			}
		})
		s := newSource(t, metadata.Options{Endpoint: f.URL, Attempts: 3})
		inst, err := s.Instance(ctx)
		if err == nil {
			t.Fatalf("Instance = %+v, want an error", inst)
		}
		checkErr(t, err, metadata.PathGroupTag, metadata.PathLifecycleState)
	})

	t.Run("instance profile credentials", func(t *testing.T) {
		tests := []struct {
			name      string
			tokens404 bool
		}{
			{name: "no instance profile: the path is not served"},
			{name: "no token", tokens404: true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				f := newFakeIMDS(t, fullValues()) // serves no iam/security-credentials/
				f.set(func(f *fakeIMDS) { f.tokens404 = tt.tokens404 })
				s := newSource(t, metadata.Options{Endpoint: f.URL, Attempts: 3})
				creds, err := metadata.NewRoleCredentials(s.Client()).Retrieve(ctx)
				if err == nil {
					t.Fatalf("Retrieve = %+v, want an error", creds)
				}
				if got := errors.Is(err, metadata.ErrNoInstanceProfile); got != !tt.tokens404 {
					t.Errorf("errors.Is(%v, ErrNoInstanceProfile) = %v, want %v", err, got, !tt.tokens404)
				}
				if tt.tokens404 {
					checkErr(t, err, metadata.PathSecurityCredentials)
				} else if !metadata.IsNotFound(err) {
					t.Errorf("IsNotFound(%v) = false for a 404 to the GET", err)
				}
			})
		}
	})
}
