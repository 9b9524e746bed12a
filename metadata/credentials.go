package metadata

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/nodeagent/nodeagent"
)

// PathSecurityCredentials lists the instance profile's role (one name a
// line), relative to /latest/meta-data/; the role's credentials are at
// PathSecurityCredentials + <role>.
const PathSecurityCredentials = "iam/security-credentials/"

// RoleCredentialsSource is aws.Credentials.Source for credentials from
// RoleCredentials: the SDK's ec2rolecreds provider's name, so what the
// SDK's signer and logs say does not change.
const RoleCredentialsSource = "EC2RoleProvider"

// Times RoleCredentials keeps to, as the SDK's ec2rolecreds provider does.
const (
	// maxCredentialLife caps a credential's Expires an hour ahead, so the
	// cache asks IMDS again at least hourly (IMDS rotates the role's
	// credentials well before they expire).
	maxCredentialLife = time.Hour
	// staleGrace: credentials IMDS could not refresh are used for
	// [staleGrace, 3×staleGrace) more when they expire sooner than that.
	staleGrace = 5 * time.Minute
	// noAdjustWithin: credentials expiring sooner are not moved earlier by
	// the cache's expiry window.
	noAdjustWithin = 15 * time.Minute
)

// RoleCredentials is the instance profile's credentials over IMDSv2, an
// aws.CredentialsProvider to wrap in aws.NewCredentialsCache (awsenv does).
// It reads the role's name, then the role's credentials, through a Client
// (sharing its session token with discovery). It stands in for the SDK's
// credentials/ec2rolecreds, which links the SDK's imds client; the metadata
// package's differential test holds the two to the same credentials.
type RoleCredentials struct{ client *Client }

var (
	_ aws.CredentialsProvider                       = (*RoleCredentials)(nil)
	_ aws.HandleFailRefreshCredentialsCacheStrategy = (*RoleCredentials)(nil)
	_ aws.AdjustExpiresByCredentialsCacheStrategy   = (*RoleCredentials)(nil)
)

// NewRoleCredentials returns the instance profile's credentials read
// through c.
func NewRoleCredentials(c *Client) *RoleCredentials {
	return &RoleCredentials{client: c}
}

// ErrNoInstanceProfile means IMDS serves no instance profile credentials.
var ErrNoInstanceProfile = errors.New("no instance profile credentials: attach an IAM instance profile to the instance" +
	" (aws ec2 associate-iam-instance-profile), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")

// roleCredentials is the JSON IMDS serves for a role.
type roleCredentials struct {
	Code            string
	Message         string
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string
	Token           string
	Expiration      time.Time
}

// Retrieve reads the role's name and its credentials. Expires is the
// credentials' expiry, at most an hour ahead.
func (p *RoleCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	fail := aws.Credentials{Source: RoleCredentialsSource}
	b, err := p.client.Metadata(ctx, PathSecurityCredentials)
	if IsNotFound(err) {
		return fail, fmt.Errorf("%w: %w", err, ErrNoInstanceProfile)
	}
	if err != nil {
		return fail, err
	}
	role := firstLine(b)
	if role == "" {
		return fail, fmt.Errorf("metadata: instance profile: %s lists no role: %w", PathSecurityCredentials, ErrNoInstanceProfile)
	}
	b, err = p.client.Metadata(ctx, PathSecurityCredentials+role)
	if err != nil {
		return fail, err
	}
	var rc roleCredentials
	if err := json.Unmarshal(b, &rc); err != nil {
		return fail, fmt.Errorf("metadata: instance profile role %s: %s%s is not a credentials document: %w",
			role, PathSecurityCredentials, role, err)
	}
	if !strings.EqualFold(rc.Code, "Success") {
		msg := ""
		if rc.Message != "" {
			msg = " (" + rc.Message + ")"
		}
		return fail, fmt.Errorf("metadata: instance profile role %s: IMDS answered code %q%s, not Success: %w"+
			" (an attached profile's role must trust ec2.amazonaws.com)", role, rc.Code, msg, ErrNoInstanceProfile)
	}
	creds := aws.Credentials{
		AccessKeyID:     rc.AccessKeyID,
		SecretAccessKey: rc.SecretAccessKey,
		SessionToken:    rc.Token,
		Source:          RoleCredentialsSource,
		CanExpire:       true,
		Expires:         rc.Expiration,
	}
	if limit := time.Now().Add(maxCredentialLife); creds.Expires.After(limit) {
		creds.Expires = limit
	}
	return creds, nil
}

// firstLine is the first non-blank line of b, trimmed.
func firstLine(b []byte) string {
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		if l := strings.TrimSpace(s.Text()); l != "" {
			return l
		}
	}
	return ""
}

// HandleFailToRefresh keeps credentials IMDS could not refresh: as they
// are while they have more than staleGrace left, else for a random
// [staleGrace, 3×staleGrace) more (AWS accepts an instance's credentials for
// a while past their expiry when IMDS could not rotate them). Credentials
// that cannot expire were never these; err is returned for them.
func (p *RoleCredentials) HandleFailToRefresh(ctx context.Context, prev aws.Credentials, err error) (aws.Credentials, error) {
	if !prev.CanExpire {
		return aws.Credentials{}, err
	}
	now := time.Now()
	if prev.Expires.After(now.Add(staleGrace)) {
		return prev, nil
	}
	extend := staleGrace + time.Duration(rand.Int64N(int64(2*staleGrace)))
	prev.Expires = now.Add(extend)
	p.client.log.Warn("instance profile credentials could not be refreshed: using the previous ones a while longer",
		nodeagent.LogKeyWait, extend.Round(time.Second), nodeagent.LogKeyError, err.Error())
	return prev, nil
}

// AdjustExpiresBy moves Expires by dur (the cache's expiry window, which
// is negative) unless the credentials expire within noAdjustWithin.
func (p *RoleCredentials) AdjustExpiresBy(creds aws.Credentials, dur time.Duration) (aws.Credentials, error) {
	if !creds.CanExpire || creds.Expires.Before(time.Now().Add(noAdjustWithin)) {
		return creds, nil
	}
	creds.Expires = creds.Expires.Add(dur)
	return creds, nil
}
