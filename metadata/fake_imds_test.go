package metadata_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent/metadata"
)

const (
	tokenPath   = "/latest/api/token"
	ttlHeader   = "X-aws-ec2-metadata-token-ttl-seconds"
	tokenHeader = "X-aws-ec2-metadata-token"
	metaPrefix  = "/latest/meta-data/"
	docPath     = "/latest/" + metadata.PathIdentityDocument
	// elsewherePrefix is where fakeIMDS's redirects point.
	elsewherePrefix = "/elsewhere"
)

// fakeIMDS is an IMDSv2-only metadata service: a token comes from PUT
// /latest/api/token with a TTL header, and every GET must carry a live token.
type fakeIMDS struct {
	URL string

	mu sync.Mutex
	// values maps a path under /latest/meta-data/ to its value. The
	// identity document is made of the values it carries (an absent one is
	// left out), unless values holds metadata.PathIdentityDocument: then
	// that is the document, and "" means it is not served.
	values   map[string]string
	tokens   map[string]bool // live tokens
	issued   int
	fail503  int  // answer the next N requests with 503
	hang     bool // never answer
	putsDown bool // refuse PUT with 403, as an IMDSv1-only service would
	// tokens404 answers PUT /latest/api/token 404, as an IMDS emulator or
	// a proxy that does not serve IMDSv2 tokens does.
	tokens404 bool
	// onDocument, when set, is called (with mu held) once the identity
	// document has been served.
	onDocument func(f *fakeIMDS)
	// redirects answers a request for a path (tokenPath, or a full path
	// under /latest/) with that 3xx status and a Location on this server
	// under elsewherePrefix, which serves a token-like answer to anything
	// and logs "reached" with the token it was sent.
	redirects map[string]int
	log       []string
	at        []time.Time // when each log entry happened
	stop      chan struct{}
}

func newFakeIMDS(t testing.TB, values map[string]string) *fakeIMDS {
	t.Helper()
	f := &fakeIMDS{values: values, tokens: map[string]bool{}, stop: make(chan struct{})}
	srv := httptest.NewServer(f)
	t.Cleanup(func() {
		close(f.stop) // release hung handlers first, or Close waits for them
		srv.Close()
	})
	f.URL = srv.URL
	return f
}

func (f *fakeIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	hang := f.hang
	f.mu.Unlock()
	if hang {
		f.record("%s %s hang", r.Method, r.URL.Path)
		select {
		case <-r.Context().Done():
		case <-f.stop:
		}
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail503 > 0 {
		f.fail503--
		f.logf("%s %s 503", r.Method, r.URL.Path)
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	if code, ok := f.redirects[r.URL.Path]; ok {
		f.logf("%s %s %d", r.Method, r.URL.Path, code)
		w.Header().Set("Location", f.URL+elsewherePrefix+r.URL.Path)
		w.WriteHeader(code)
		return
	}
	switch {
	case strings.HasPrefix(r.URL.Path, elsewherePrefix):
		// What a redirect points at: were a client to follow it, this is
		// where its token would go, and what it would take for a token or
		// a value.
		f.logf("%s %s reached token=%q", r.Method, r.URL.Path, r.Header.Get(tokenHeader))
		w.Header().Set(ttlHeader, "21600")
		fmt.Fprint(w, "from-elsewhere")
	case r.URL.Path == tokenPath:
		f.serveToken(w, r)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, metaPrefix):
		f.serveMeta(w, r)
	case r.Method == http.MethodGet && r.URL.Path == docPath:
		f.serveDocument(w, r)
	default:
		f.logf("%s %s 404", r.Method, r.URL.Path)
		http.NotFound(w, r)
	}
}

func (f *fakeIMDS) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		f.logf("%s %s 405", r.Method, r.URL.Path)
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if f.putsDown {
		f.logf("PUT %s 403", r.URL.Path)
		w.WriteHeader(http.StatusForbidden)
		return
	}
	if f.tokens404 {
		f.logf("PUT %s 404", r.URL.Path)
		http.NotFound(w, r)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get(ttlHeader))
	if err != nil || ttl < 1 || ttl > 21600 {
		f.logf("PUT %s 400", r.URL.Path)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	f.issued++
	tok := fmt.Sprintf("token-%d", f.issued)
	f.tokens[tok] = true
	f.logf("PUT %s 200 %s", r.URL.Path, tok)
	w.Header().Set(ttlHeader, strconv.Itoa(ttl))
	fmt.Fprint(w, tok)
}

func (f *fakeIMDS) serveMeta(w http.ResponseWriter, r *http.Request) {
	tok := r.Header.Get(tokenHeader)
	if !f.tokens[tok] {
		f.logf("GET %s 401 token=%q", r.URL.Path, tok)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	v, ok := f.values[strings.TrimPrefix(r.URL.Path, metaPrefix)]
	if !ok {
		f.logf("GET %s 404", r.URL.Path)
		http.NotFound(w, r)
		return
	}
	f.logf("GET %s 200", r.URL.Path)
	fmt.Fprint(w, v)
}

func (f *fakeIMDS) serveDocument(w http.ResponseWriter, r *http.Request) {
	if tok := r.Header.Get(tokenHeader); !f.tokens[tok] {
		f.logf("GET %s 401 token=%q", r.URL.Path, tok)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	doc, ok := f.values[metadata.PathIdentityDocument]
	if !ok {
		fields := map[string]string{"accountId": "123456789012", "architecture": "arm64", "version": "2017-09-30"}
		for path, key := range map[string]string{metadata.PathInstanceID: "instanceId", metadata.PathLocalIPv4: "privateIp",
			metadata.PathAZ: "availabilityZone", metadata.PathRegion: "region", metadata.PathInstanceType: "instanceType"} {
			if v, ok := f.values[path]; ok {
				fields[key] = v
			}
		}
		b, _ := json.MarshalIndent(fields, "", "  ")
		doc = string(b)
	} else if doc == "" {
		f.logf("GET %s 404", r.URL.Path)
		http.NotFound(w, r)
		return
	}
	f.logf("GET %s 200", r.URL.Path)
	fmt.Fprint(w, doc)
	if f.onDocument != nil {
		f.onDocument(f)
	}
}

// expireTokens makes every issued token invalid, as IMDS does at TTL end.
func (f *fakeIMDS) expireTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.tokens)
}

func (f *fakeIMDS) set(fn func(f *fakeIMDS)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeIMDS) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logf(format, args...)
}

func (f *fakeIMDS) logf(format string, args ...any) {
	f.log = append(f.log, fmt.Sprintf(format, args...))
	f.at = append(f.at, time.Now())
}

// requests returns the request log and empties it.
func (f *fakeIMDS) requests() []string {
	l, _ := f.requestsAt()
	return l
}

// requestsAt returns the request log with the time of each entry, and
// empties it.
func (f *fakeIMDS) requestsAt() ([]string, []time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, at := f.log, f.at
	f.log, f.at = nil, nil
	return l, at
}
