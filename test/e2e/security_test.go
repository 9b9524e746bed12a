//go:build integration

package e2e_test

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/test/harness"
)

// The secrets a presigned release URL carries in its query string.
var presignSecrets = []string{"SECRETSIG", "SECRETTOK", "AKIASECRETCRED"}

// presignedServer serves release archives over https as S3 does for a
// presigned URL: only with the right signature and token in the query,
// 403 otherwise.
type presignedServer struct {
	srv      *httptest.Server
	certFile string // the server's certificate, for SSL_CERT_FILE

	mu       sync.Mutex
	releases map[string][]byte // path -> archive
}

func startPresigned(t *testing.T) *presignedServer {
	t.Helper()
	p := &presignedServer{releases: map[string][]byte{}}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		p.mu.Lock()
		body, ok := p.releases[r.URL.Path]
		p.mu.Unlock()
		if !ok || q.Get("X-Amz-Signature") != "SECRETSIG" || q.Get("X-Amz-Security-Token") != "SECRETTOK" {
			http.Error(w, "<Error><Code>AccessDenied</Code></Error>", http.StatusForbidden)
			return
		}
		w.Write(body)
	}))
	t.Cleanup(p.srv.Close)
	p.certFile = filepath.Join(t.TempDir(), "cert.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw})
	if err := os.WriteFile(p.certFile, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// url is the presigned URL of the archive at path; serve says whether the
// server has it (else it answers 403 even to a good signature).
func (p *presignedServer) url(path string, body []byte, serve bool) string {
	if serve {
		p.mu.Lock()
		p.releases[path] = body
		p.mu.Unlock()
	}
	q := "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + url.QueryEscape("AKIASECRETCRED/20261204/us-east-1/s3/aws4_request") +
		"&X-Amz-Date=20261204T120000Z&X-Amz-Expires=900&X-Amz-Security-Token=SECRETTOK&X-Amz-SignedHeaders=host&X-Amz-Signature=SECRETSIG"
	return p.srv.URL + path + "?" + q
}

// TestSecretsRedacted applies a release from a presigned https URL, then a
// document whose presigned URL is refused (403), then runs the daemon: no
// log line, no error on stderr, neither status.json, `nodeagent status` nor
// /status, and no file the agent wrote holds the URL's signature, token
// or credential (issue 11). The last-good copy of the document holds the
// URL, so only root reads it.
func TestSecretsRedacted(t *testing.T) {
	r1 := buildRelease(t, "shop", "2026.12.04-1")
	f := newFleet(t, r1)
	ps := startPresigned(t)
	f.setRelease(release{id: r1.id, url: ps.url("/shop/"+r1.id+".tar.gz", r1.body, true), sha256: r1.sha256})
	f.publish(t)

	cache := f.newNode(t, "cache-1", 20, "")
	cache.mustApply(t)
	web := f.newNode(t, "web", 10, webGroup)
	web.env = append(web.env, "SSL_CERT_FILE="+ps.certFile)
	var seen []string // everything the agent printed
	res := web.mustApply(t)
	seen = append(seen, res.stdout, res.stderr)
	if !strings.Contains(res.stderr, "?REDACTED") {
		t.Errorf("the apply's log never names the release URL (redacted), so this test proves nothing:\n%s", res.stderr)
	}

	// A bad push: the presigned URL of the next release is refused.
	f.setRelease(release{id: "2026.12.04-2", url: ps.url("/shop/2026.12.04-2.tar.gz", nil, false), sha256: r1.sha256})
	f.publish(t)
	bad := web.agent(t, "apply")
	if bad.code != 1 || !strings.Contains(bad.stderr, "403") {
		t.Fatalf("apply of a refused presigned URL: exit %d, want 1 naming the 403:\n%s", bad.code, bad)
	}
	seen = append(seen, bad.stdout, bad.stderr)

	st := web.agent(t, "status", "--json")
	seen = append(seen, st.stdout, st.stderr)
	var status struct {
		LastError string `json:"last_error"`
	}
	if err := json.Unmarshal([]byte(st.stdout), &status); err != nil || !strings.Contains(status.LastError, "?REDACTED") {
		t.Errorf("status last_error %q (%v): want the failed URL, redacted", status.LastError, err)
	}

	// The daemon: its log, and /status.
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(nodeagentBin, "run", "--config", web.config, "--drain-time", "1s")
	cmd.Env = web.env
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	body := eventually(t, 60*time.Second, "http://"+web.listen+"/status", web.listen, 200, `"last_error"`)
	seen = append(seen, body)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		stopped = true
	case <-time.After(30 * time.Second):
		t.Fatalf("run did not exit within 30s of SIGTERM\nstderr:\n%s", stderr.String())
	}
	seen = append(seen, stdout.String(), stderr.String())

	for i, s := range seen {
		for _, sec := range presignSecrets {
			if strings.Contains(s, sec) {
				t.Errorf("output %d holds %s:\n%s", i, sec, s)
			}
		}
	}
	// Every file under the node root (status.json, applied.json, the
	// release marker, rendered configs, logs) but the document's own copy.
	lastGood := web.path(stateDir + "/topology.json")
	err := filepath.WalkDir(web.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || p == lastGood {
			return nil // sockets and files that went away are not files the agent wrote
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		for _, sec := range presignSecrets {
			if bytes.Contains(b, []byte(sec)) {
				t.Errorf("%s holds %s", strings.TrimPrefix(p, web.root), sec)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]fs.FileMode{stateDir + "/topology.json": 0o600, stateDir + "/status.json": 0o600, stateDir + "/applied.json": 0o600} {
		fi, err := os.Stat(web.path(rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", rel, fi.Mode().Perm(), want)
		}
	}
}

// recordingProxy is an HTTP proxy that records every request sent through
// it and forwards none (502).
type recordingProxy struct {
	URL  string
	mu   sync.Mutex
	reqs []string
}

func startRecordingProxy(t *testing.T) *recordingProxy {
	t.Helper()
	p := &recordingProxy{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		p.mu.Lock()
		p.reqs = append(p.reqs, r.Method+" "+r.URL.String()+" (Host "+r.Host+")")
		p.mu.Unlock()
		http.Error(w, "recording proxy: not forwarded", http.StatusBadGateway)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *recordingProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.reqs...)
}

// TestIMDSNotThroughProxy: with HTTP_PROXY set, an apply that needs the
// region and the instance profile's credentials (AWS_REGION and AWS keys
// unset: a launch hook to complete) asks the metadata mock directly; the
// proxy sees no request (issue 11: the credential client used the SDK's
// default transport, so the IMDS token and the credentials went through
// the proxy).
//
// Go never proxies a loopback address, so the mock is addressed as
// http://0.0.0.0:PORT, which Linux connects to this machine's loopback
// (where the mock listens) but which is not a loopback address to the
// proxy rules.
func TestIMDSNotThroughProxy(t *testing.T) {
	const group, hook = "db-asg", "db-launch"
	asg := harness.StartAutoScaling(t)
	ip := "127.0.0.1"
	imds := harness.StartIMDS(t, harness.IMDSConfig{InstanceID: instanceID(0xb01), PrivateIP: ip, AZ: "us-east-1a", InstanceType: "t3.small", Group: group})
	proxy := startRecordingProxy(t)

	doc := nodeagent.Topology{
		Schema: 1, Serial: 1,
		Nodes:  map[string]nodeagent.Node{"db-a": {IP: "10.0.1.10", Role: "db"}},
		Groups: map[string]nodeagent.Group{group: {Role: "db", LaunchHook: hook}},
		Roles:  map[string]nodeagent.Role{"db": {Services: []string{}}},
	}
	dir := t.TempDir()
	topo := filepath.Join(dir, "topology.json")
	if err := os.WriteFile(topo, topologyJSON(t, doc), 0o644); err != nil {
		t.Fatal(err)
	}
	root := harness.NodeRoot(t)
	cfg, err := json.Marshal(map[string]any{
		"topology": "file://" + topo, "root": root, "service_root": root, "services": "none",
		"log_format": "text", "deadline": "1m", "launch_attempts": 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "config.json")
	if err := os.WriteFile(config, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	endpoint := strings.Replace(imds.URL, "127.0.0.1", "0.0.0.0", 1)
	env := agentEnv(asg.Env(), []string{
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + endpoint, "AWS_EC2_METADATA_DISABLED=false",
		"HTTP_PROXY=" + proxy.URL, "http_proxy=" + proxy.URL, "HTTPS_PROXY=" + proxy.URL, "https_proxy=" + proxy.URL,
	})
	env = slicesDeleteFunc(env, func(kv string) bool { return strings.HasPrefix(strings.ToUpper(kv), "NO_PROXY=") })

	res := runAgent(t, env, "apply", "--config", config)
	if got := proxy.requests(); len(got) > 0 {
		t.Errorf("the proxy saw %d request(s), want none:\n%s", len(got), strings.Join(got, "\n"))
	}
	if res.code != 0 {
		t.Fatalf("apply: exit %d\n%s", res.code, res)
	}
	var done []harness.ASGCall
	for _, c := range asg.Calls() {
		if c.Action == harness.ActionCompleteLifecycleAction && c.Hook == hook {
			done = append(done, c)
		}
	}
	if len(done) != 1 || done[0].Result != "CONTINUE" || done[0].Error != "" {
		t.Errorf("launch hook completions %+v, want one CONTINUE (signed with the instance profile's credentials from IMDS)", done)
	}
}

func slicesDeleteFunc(s []string, del func(string) bool) []string {
	out := s[:0:0]
	for _, v := range s {
		if !del(v) {
			out = append(out, v)
		}
	}
	return out
}
