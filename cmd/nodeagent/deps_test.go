package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestBinaryLeavesOutReplacedSDKPackages: the packages the agent replaced
// with its own code stay out of the shipped binary (they stay in go.mod for
// the differential tests that hold the replacements to them). Each cost
// every process its init and its pages: the SDK's config chain (awsenv),
// service/autoscaling (package lifecycle), feature/ec2/imds and
// credentials/ec2rolecreds (package metadata's Client and RoleCredentials),
// service/s3 (package s3api).
func TestBinaryLeavesOutReplacedSDKPackages(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 || !slices.Contains(deps, "github.com/nodeagent/nodeagent/metadata") {
		t.Fatalf("go list -deps listed %d packages without package metadata: not the binary's dependencies\n%s", len(deps), out)
	}
	for _, pkg := range []string{
		"github.com/aws/aws-sdk-go-v2/config",
		"github.com/aws/aws-sdk-go-v2/service/autoscaling",
		"github.com/aws/aws-sdk-go-v2/feature/ec2/imds",
		"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds",
		"github.com/aws/aws-sdk-go-v2/service/s3",
	} {
		if slices.Contains(deps, pkg) {
			t.Errorf("the binary links %s again: see README, Dependencies, for what replaced it", pkg)
		}
	}
}
