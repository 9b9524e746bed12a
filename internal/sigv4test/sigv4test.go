// Package sigv4test reads SigV4 Authorization headers for the differential
// tests that hold nodeagent's hand-written AWS clients (lifecycle, s3api)
// to the SDK's. Only tests import it.
package sigv4test

import (
	"strings"
	"testing"
)

// Authorization is a parsed SigV4 Authorization header.
type Authorization struct {
	KeyID, Date, Region, Service, Terminal string
	SignedHeaders                          []string
	Signature                              string
}

// ParseAuthorization parses h, an AWS4-HMAC-SHA256 Authorization header,
// failing t when it is not one or lacks a credential, signed headers or a
// signature.
func ParseAuthorization(t testing.TB, h string) Authorization {
	t.Helper()
	rest, ok := strings.CutPrefix(h, "AWS4-HMAC-SHA256 ")
	if !ok {
		t.Fatalf("Authorization %q is not AWS4-HMAC-SHA256", h)
	}
	var a Authorization
	for part := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			f := strings.Split(v, "/")
			if len(f) != 5 {
				t.Fatalf("Authorization %q: credential %q is not key/date/region/service/aws4_request", h, v)
			}
			a.KeyID, a.Date, a.Region, a.Service, a.Terminal = f[0], f[1], f[2], f[3], f[4]
		case "SignedHeaders":
			a.SignedHeaders = strings.Split(v, ";")
		case "Signature":
			a.Signature = v
		}
	}
	if a.KeyID == "" || a.Signature == "" || len(a.SignedHeaders) == 0 {
		t.Fatalf("Authorization %q lacks a credential, signed headers or signature", h)
	}
	return a
}
