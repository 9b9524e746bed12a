// Package awsenv builds the aws.Config that the agent's S3 and Auto Scaling
// clients share, from what an agent on an EC2 instance has: its environment
// and its instance metadata.
//
// It stands in for the SDK's config.LoadDefaultConfig, whose credential
// chain (shared config files, SSO, web identity, credential processes) links
// the SSO, SSO-OIDC, STS and sign-in clients into the binary: about 2 MB of
// code and endpoint tables that every run of every command initialised and
// paged in, for credential sources an instance agent does not use.
//
// Supported, in order:
//   - region: AWS_REGION, AWS_DEFAULT_REGION, then IMDS placement/region;
//   - credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (with
//     AWS_SESSION_TOKEN), then the instance profile over IMDSv2;
//   - endpoints: AWS_ENDPOINT_URL_<SERVICE> (AWS_ENDPOINT_URL_S3,
//     AWS_ENDPOINT_URL_AUTO_SCALING), then AWS_ENDPOINT_URL;
//   - IMDS: AWS_EC2_METADATA_SERVICE_ENDPOINT, and AWS_EC2_METADATA_DISABLED=true
//     to never ask it. IMDSv2 only: a failed token is an error, never a
//     tokenless request. IMDS is asked through the metadata package's
//     client, never through HTTP_PROXY: the agent shares its discovery
//     client (UseIMDS), so one session token serves discovery, the region
//     and the instance profile's credentials.
//
// An operator's Env (NewOperator), for the commands an operator runs from a
// workstation (topology publish, failover, rollback), never asks IMDS: the
// region comes from AWS_REGION or AWS_DEFAULT_REGION and the credentials from
// the environment, and a missing one is an error saying which variable to
// set, instead of a wait for an instance metadata service that is not there.
package awsenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/nodeagent/nodeagent/metadata"
)

// Env resolves the shared AWS configuration once, on first use; it is safe
// for concurrent use.
type Env struct {
	getenv   func(string) string
	imds     *metadata.Client // nil: built on first use
	operator bool             // never ask IMDS; credentials must be in the environment

	mu     sync.Mutex
	cfg    aws.Config
	loaded bool
}

// New returns an Env reading variables with getenv; nil means os.Getenv.
func New(getenv func(string) string) *Env {
	if getenv == nil {
		getenv = os.Getenv
	}
	return &Env{getenv: getenv}
}

// UseIMDS makes e ask instance metadata through c (the discovery client,
// metadata.Source.Client) rather than a client of its own. Call it before
// the first Config; it returns e.
func (e *Env) UseIMDS(c *metadata.Client) *Env {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.imds = c
	return e
}

// NewOperator returns an Env for commands run off EC2: the region and the
// credentials come from the environment only, and IMDS is never asked.
func NewOperator(getenv func(string) string) *Env {
	e := New(getenv)
	e.operator = true
	return e
}

// ErrNoRegion means no region is set and IMDS could not tell one.
var ErrNoRegion = errors.New("no AWS region: set AWS_REGION, or run on EC2 where instance metadata gives it")

// errOperatorNoRegion is ErrNoRegion for an operator's Env, whose advice
// cannot be "run on EC2".
type errOperatorNoRegion struct{}

func (errOperatorNoRegion) Error() string {
	return "no AWS region: set AWS_REGION (commands run off EC2 never ask instance metadata)"
}
func (errOperatorNoRegion) Is(target error) bool { return target == ErrNoRegion }

// ErrNoCredentials means an operator's Env found no credentials in the
// environment.
var ErrNoCredentials = errors.New("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" +
	" (and AWS_SESSION_TOKEN); from a profile or SSO login: eval \"$(aws configure export-credentials --format env)\"")

// Config returns the shared configuration: region and credentials. The
// region may take one IMDS request; credentials are fetched (and cached
// until shortly before they expire) when a client first signs a request.
// A failure is not remembered, so a later call tries again.
func (e *Env) Config(ctx context.Context) (aws.Config, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.loaded {
		return e.cfg, nil
	}
	var md *metadata.Client
	if !e.operator && !strings.EqualFold(e.getenv("AWS_EC2_METADATA_DISABLED"), "true") {
		md = e.imds
		if md == nil {
			endpoint := e.getenv(metadata.EndpointEnv)
			if endpoint == "" {
				endpoint = metadata.DefaultEndpoint
			}
			c, err := metadata.NewClient(metadata.Options{Endpoint: endpoint})
			if err != nil {
				return aws.Config{}, err
			}
			md, e.imds = c, c
		}
	}
	region := firstNonEmpty(e.getenv("AWS_REGION"), e.getenv("AWS_DEFAULT_REGION"))
	if region == "" && md != nil {
		r, err := imdsRegion(ctx, md)
		if err != nil {
			return aws.Config{}, fmt.Errorf("%w: %w", ErrNoRegion, err)
		}
		region = r
	}
	if region == "" && e.operator {
		return aws.Config{}, errOperatorNoRegion{}
	}
	if region == "" {
		return aws.Config{}, ErrNoRegion
	}
	cfg := aws.Config{Region: region}
	if id, secret := e.getenv("AWS_ACCESS_KEY_ID"), e.getenv("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		cfg.Credentials = credentials.NewStaticCredentialsProvider(id, secret, e.getenv("AWS_SESSION_TOKEN"))
	} else if e.operator {
		return aws.Config{}, ErrNoCredentials
	} else if md != nil {
		// Refreshed five minutes before they expire (at most an hour
		// after they were read), as the SDK's default chain sets up its
		// instance profile provider.
		cfg.Credentials = aws.NewCredentialsCache(metadata.NewRoleCredentials(md), func(o *aws.CredentialsCacheOptions) {
			o.ExpiryWindow = credentialsExpiryWindow
		})
	}
	// With neither, requests go unsigned and AWS answers 403: the message
	// the source package gives for that names the instance profile.
	e.cfg, e.loaded = cfg, true
	return cfg, nil
}

// credentialsExpiryWindow is how long before they expire the instance
// profile's credentials are read again.
const credentialsExpiryWindow = 5 * time.Minute

// imdsRegion reads placement/region, which every EC2 instance serves.
func imdsRegion(ctx context.Context, md *metadata.Client) (string, error) {
	b, err := md.Metadata(ctx, metadata.PathRegion)
	if err != nil {
		return "", err
	}
	r := strings.TrimSpace(string(b))
	if len(r) > 64 {
		return "", fmt.Errorf("%s from %s: %q is no region name", metadata.PathRegion, md.Endpoint(), r[:64])
	}
	return r, nil
}

// Endpoint returns the custom endpoint for a service, "" for AWS's own:
// AWS_ENDPOINT_URL_<SERVICE>, where SERVICE is the SDK's service id in
// upper snake case ("S3", "AUTO_SCALING"), then AWS_ENDPOINT_URL.
func (e *Env) Endpoint(service string) string {
	return firstNonEmpty(e.getenv("AWS_ENDPOINT_URL_"+service), e.getenv("AWS_ENDPOINT_URL"))
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
