package awsenv

import "strings"

// DNSSuffix is the DNS suffix of region's partition, after the SDK's
// partitions table (internal/endpoints/awsrulesfn); a region no partition
// claims is in "aws", as there. The S3 and Auto Scaling clients build AWS's
// endpoints with it (lifecycle and s3api hold it to the SDK's endpoint
// rules in their differential tests).
func DNSSuffix(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "amazonaws.com.cn"
	case strings.HasPrefix(region, "eusc-de-"):
		return "amazonaws.eu"
	case strings.HasPrefix(region, "us-iso-"):
		return "c2s.ic.gov"
	case strings.HasPrefix(region, "us-isob-"):
		return "sc2s.sgov.gov"
	case strings.HasPrefix(region, "eu-isoe-"):
		return "cloud.adc-e.uk"
	case strings.HasPrefix(region, "us-isof-"):
		return "csp.hci.ic.gov"
	}
	return "amazonaws.com" // aws and aws-us-gov
}

// ValidRegion reports whether region can stand in a host name, as the
// SDK's endpoint rules require of a region: one DNS label of letters,
// digits and hyphens, not starting or ending with a hyphen.
func ValidRegion(region string) bool {
	if region == "" || len(region) > 63 || region[0] == '-' || region[len(region)-1] == '-' {
		return false
	}
	for _, c := range []byte(region) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
