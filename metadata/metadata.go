// Package metadata discovers who this machine is: instance metadata read over
// IMDSv2 (never IMDSv1) with the package's own client (Client), host facts
// read from files under the agent's root (/etc/os-release, /etc/php), and
// the memory and kernel boot id of the running host from its procfs (never
// under the root). Source implements nodeagent.MetadataSource;
// RoleCredentials gives the instance profile's credentials through a
// Client.
package metadata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/backoff"
)

// Defaults for Options.
const (
	DefaultCallTimeout = 2 * time.Second
	DefaultAttempts    = 5
	// DefaultEndpoint is the IMDS endpoint used when neither Options.Endpoint
	// nor AWS_EC2_METADATA_SERVICE_ENDPOINT says otherwise.
	DefaultEndpoint = "http://169.254.169.254"
	// EndpointEnv is the SDK's environment variable for the IMDS endpoint.
	EndpointEnv = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
)

// Metadata paths, relative to /latest/meta-data/.
const (
	PathInstanceID     = "instance-id"
	PathLocalIPv4      = "local-ipv4"
	PathAZ             = "placement/availability-zone"
	PathRegion         = "placement/region"
	PathInstanceType   = "instance-type"
	PathGroupTag       = "tags/instance/aws:autoscaling:groupName"
	PathLifecycleState = "autoscaling/target-lifecycle-state"
)

// PathIdentityDocument is the instance identity document, relative to
// /latest/ (it is dynamic data, not meta-data).
const PathIdentityDocument = "dynamic/instance-identity/document"

// The IMDS retry schedule (package backoff): 100 ms doubling, capped at
// 1 s, retry n (from 1) waiting Delay(n) as when the SDK's retryer counted.
const (
	backoffBase = 100 * time.Millisecond
	maxBackoff  = time.Second
)

// retryPolicy is that schedule for backoff.Retry, which numbers retries
// from 0: its Delay(n) is the schedule's Delay(n+1).
var retryPolicy = backoff.Policy{Base: 2 * backoffBase, Max: maxBackoff}

// Options configures a Source.
type Options struct {
	// Endpoint is the IMDS endpoint; "" means AWS_EC2_METADATA_SERVICE_ENDPOINT,
	// else DefaultEndpoint.
	Endpoint string
	// Root is the host root under which /etc/os-release and /etc/php are
	// read; "" means "/".
	Root string
	// Proc is where the running host's procfs is mounted (memory is read
	// there, never under Root); "" means DefaultProc.
	Proc string
	// CallTimeout bounds each HTTP attempt against IMDS (token or metadata);
	// default DefaultCallTimeout.
	CallTimeout time.Duration
	// Attempts is how many times one request is tried on 500, 502, 503,
	// 504, 429, no answer, and (a metadata GET) a rejected (401) token, with
	// exponential backoff and jitter between attempts; the token request
	// has attempts of its own. Default DefaultAttempts.
	Attempts int
	// Logger receives retry and discovery messages; nil discards them.
	Logger *slog.Logger
	// DialContext connects to IMDS; nil means a net.Dialer bounded by
	// CallTimeout. Tests that run on a testing/synctest clock dial an
	// in-memory IMDS with it.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Source reads instance metadata over IMDSv2 and host facts under Root.
type Source struct {
	client   *Client
	endpoint string
	root     string
	proc     string
	log      *slog.Logger
}

var _ nodeagent.MetadataSource = (*Source)(nil)

// New returns a Source. It does not contact IMDS; the first call does.
func New(ctx context.Context, o Options) (*Source, error) {
	_ = ctx // reserved: construction does no I/O
	client, err := NewClient(o)
	if err != nil {
		return nil, err
	}
	if o.Root == "" {
		o.Root = "/"
	}
	return &Source{client: client, endpoint: client.endpoint, root: o.Root, proc: o.Proc, log: client.log}, nil
}

// Client returns the Source's IMDS client, to share with the AWS
// configuration (awsenv): one client, one session token, and one
// transport that never goes through HTTP_PROXY.
func (s *Source) Client() *Client { return s.client }

// newHTTPClient bounds every attempt, never uses a proxy (IMDS is
// link-local and must not be sent through HTTP_PROXY) and never follows a
// redirect: IMDS never answers one, and following it would send the
// session token to wherever it points (Go keeps X-Aws-Ec2-Metadata-Token
// across hosts), turn a redirected token PUT into a GET whose body would be
// taken for a token, and trust a document or credentials served elsewhere.
// A 3xx is an answer like any other than 2xx (send).
func newHTTPClient(timeout time.Duration, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
	if dial == nil {
		dial = (&net.Dialer{Timeout: timeout}).DialContext
	}
	return &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dial,
			ResponseHeaderTimeout: timeout,
			MaxIdleConns:          2,
			IdleConnTimeout:       30 * time.Second,
		},
	}
}

// Instance reads the instance metadata and the host facts.
func (s *Source) Instance(ctx context.Context) (nodeagent.Instance, error) {
	facts, err := ReadHostFacts(s.root, s.proc)
	if err != nil {
		return nodeagent.Instance{}, err
	}
	inst := nodeagent.Instance{
		MemoryBytes: facts.MemoryBytes,
		OSFamily:    facts.OSFamily,
		OSID:        facts.OSID,
		PHPVersion:  facts.PHPVersion,
	}
	s.log.Info("host memory", nodeagent.LogKeyMemoryMB, facts.MemoryBytes>>20, nodeagent.LogKeyFrom, facts.MemorySource)
	// Three reads: the instance identity document (id, private IP, zone,
	// region and type in one answer) first, which takes the session token,
	// then the two values it does not carry, at the same time. (The three
	// at once, or one after another, measured slower: a connection each, or
	// a round trip more.)
	doc, err := s.identity(ctx)
	if err != nil {
		return nodeagent.Instance{}, err
	}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	wg.Go(func() { inst.Group, errs[0] = s.group(ctx) })
	wg.Go(func() { inst.LifecycleState, errs[1] = s.LifecycleState(ctx) })
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nodeagent.Instance{}, err
	}
	inst.ID, inst.PrivateIP, inst.AZ, inst.Region, inst.Type = doc.InstanceID, doc.PrivateIP, doc.AZ, doc.Region, doc.Type
	if inst.Region == "" {
		r, ok := RegionFromAZ(inst.AZ)
		if !ok {
			return nodeagent.Instance{}, s.wrap(PathIdentityDocument, fmt.Errorf("names no region, and availability zone %q: %w", inst.AZ, errNoRegion))
		}
		inst.Region = r
	}
	return inst, nil
}

// LifecycleState returns autoscaling/target-lifecycle-state, or "" when IMDS
// has none (404: the instance is not in an Auto Scaling group).
func (s *Source) LifecycleState(ctx context.Context) (string, error) {
	v, err := s.get(ctx, PathLifecycleState)
	if IsNotFound(err) {
		return "", nil
	}
	return v, err
}

func (s *Source) group(ctx context.Context) (string, error) {
	v, err := s.get(ctx, PathGroupTag)
	if IsNotFound(err) {
		s.log.Info("no Auto Scaling group in instance metadata: " + PathGroupTag +
			" is not served; the instance is not in a group, or instance tags in metadata are off" +
			" (aws ec2 modify-instance-metadata-options --instance-metadata-tags enabled); use --group to set it")
		return "", nil
	}
	return v, err
}

// regionPrefix is compiled on first use: IMDS serves the region, so most
// processes never need it.
var regionPrefix = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+`) })

// RegionFromAZ derives the region from an availability zone name: us-east-1a
// gives us-east-1; a Local Zone such as us-west-2-lax-1a gives us-west-2.
func RegionFromAZ(az string) (string, bool) {
	r := regionPrefix().FindString(az)
	return r, r != "" && r != az
}

// identityDocument is what discovery takes from the instance identity
// document.
type identityDocument struct {
	InstanceID string `json:"instanceId"`
	PrivateIP  string `json:"privateIp"`
	AZ         string `json:"availabilityZone"`
	Region     string `json:"region"`
	Type       string `json:"instanceType"`
}

// identity reads and checks the instance identity document.
func (s *Source) identity(ctx context.Context) (identityDocument, error) {
	b, err := s.client.Dynamic(ctx, strings.TrimPrefix(PathIdentityDocument, "dynamic/"))
	if err != nil {
		return identityDocument{}, err
	}
	var doc identityDocument
	if err := json.Unmarshal(b, &doc); err != nil {
		return identityDocument{}, s.wrap(PathIdentityDocument, fmt.Errorf("not a JSON object: %w", err))
	}
	switch {
	case doc.InstanceID == "":
		return identityDocument{}, s.wrap(PathIdentityDocument, errors.New("no instanceId"))
	case doc.AZ == "":
		return identityDocument{}, s.wrap(PathIdentityDocument, errors.New("no availabilityZone"))
	}
	if _, perr := netip.ParseAddr(doc.PrivateIP); perr != nil {
		return identityDocument{}, s.wrap(PathIdentityDocument, fmt.Errorf("privateIp: %w", perr))
	}
	return doc, nil
}

// get reads one metadata path (relative to /latest/meta-data/). A failed
// read's *Error names path and carries what the read saw (requests, last
// status, last request).
func (s *Source) get(ctx context.Context, path string) (string, error) {
	b, err := s.client.Metadata(ctx, path)
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", s.wrap(path, errEmpty)
	}
	return v, nil
}

var (
	errEmpty    = errors.New("empty value")
	errNoRegion = errors.New("names no region")
)

func (s *Source) wrap(path string, err error) error {
	return &Error{Path: path, Endpoint: s.endpoint, Err: err}
}
