package redact_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/nodeagent/nodeagent/redact"
)

const presigned = "https://releases.s3.amazonaws.com/shop/r1.tar.gz?X-Amz-Algorithm=AWS4-HMAC-SHA256" +
	"&X-Amz-Credential=AKIASECRETCRED%2F20261204%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261204T120000Z" +
	"&X-Amz-Expires=900&X-Amz-Security-Token=SECRETTOK&X-Amz-SignedHeaders=host&X-Amz-Signature=SECRETSIG"

var secrets = []string{"SECRETSIG", "SECRETTOK", "AKIASECRETCRED", "hunter2", "ghp_token"}

func noSecrets(t *testing.T, s string) {
	t.Helper()
	for _, sec := range secrets {
		if strings.Contains(s, sec) {
			t.Errorf("%q still holds %s", s, sec)
		}
	}
}

func TestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{presigned, "https://releases.s3.amazonaws.com/shop/r1.tar.gz?REDACTED"},
		{"https://user:hunter2@host/p", "https://REDACTED@host/p"},
		{"https://ghp_token@host:8443/a/b?c=d#frag", "https://REDACTED@host:8443/a/b?REDACTED"},
		{"https://host/p#X-Amz-Signature=SECRETSIG", "https://host/p#REDACTED"},
		{"https://host?SECRETSIG", "https://host?REDACTED"},
		{"s3://bucket/key.json", "s3://bucket/key.json"},
		{"file:///etc/nodeagent/topology.json", "file:///etc/nodeagent/topology.json"},
		{"https://host/path", "https://host/path"},
		{"not a url", "not a url"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := redact.URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestText(t *testing.T) {
	// How URLs show up in the messages of net/http, retryablehttp and
	// the agent's own errors.
	uerr := &url.Error{Op: "Get", URL: presigned, Err: errors.New("dial tcp: connection refused")}
	for _, s := range []string{
		uerr.Error(),
		"GET " + presigned + " giving up after 4 attempt(s)",
		"download " + presigned + ": sha256 mismatch",
		`{"url":"` + presigned + `"}`,
		"two: https://a:hunter2@x/1 and '" + presigned + "'",
		"source: get https://ghp_token@host/topology.json: 403",
	} {
		got := redact.Text(s)
		noSecrets(t, got)
		if !strings.Contains(got, redact.Marker) {
			t.Errorf("Text(%q) = %q: nothing marked", s, got)
		}
	}
	if got := redact.Text(uerr.Error()); !strings.HasPrefix(got, `Get "https://releases.s3.amazonaws.com/shop/r1.tar.gz?REDACTED": dial tcp`) {
		t.Errorf("Text(url.Error) = %q", got)
	}
	plain := "apply failed: smoke checks failed: home: status 500"
	if got := redact.Text(plain); got != plain {
		t.Errorf("Text changed text without URLs: %q", got)
	}
}

func TestErrorKeepsChain(t *testing.T) {
	base := fmt.Errorf("open %s: %w", presigned, fs.ErrNotExist)
	err := redact.Error(base)
	noSecrets(t, err.Error())
	if !errors.Is(err, fs.ErrNotExist) {
		t.Error("errors.Is lost the wrapped error")
	}
	if redact.Error(nil) != nil {
		t.Error("Error(nil) is not nil")
	}
}

type stringer struct{}

func (stringer) String() string { return presigned }

func TestHandler(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			var h slog.Handler = slog.NewJSONHandler(&buf, nil)
			if format == "text" {
				h = slog.NewTextHandler(&buf, nil)
			}
			log := slog.New(redact.Handler(h)).With("source", presigned)
			log.Info("downloading "+presigned, "url", presigned, "error", errors.New("get "+presigned),
				"stringer", stringer{}, "list", []string{presigned},
				slog.Group("g", "url", presigned), "n", 3)
			log.WithGroup("grp").Warn("x", "url", "https://u:hunter2@h/p")
			out := buf.String()
			noSecrets(t, out)
			if n := strings.Count(out, redact.Marker); n < 8 {
				t.Errorf("%d markers, want every value marked:\n%s", n, out)
			}
			if !strings.Contains(out, "n=3") && !strings.Contains(out, `"n":3`) {
				t.Errorf("other attributes lost:\n%s", out)
			}
		})
	}
}

// FuzzText: whatever surrounds a URL, its query string and userinfo never
// survive redact.Text, and text without "://" is left alone.
func FuzzText(f *testing.F) {
	f.Add("download ", "https", "user:pw", "host/p", "X-Amz-Signature=", `": 403`)
	f.Add(`Get "`, "s3", "", "b/k", "a=1&b=2", `"`)
	f.Add("", "file", "", "/etc/x", "", "")
	f.Fuzz(func(t *testing.T, before, scheme, user, hostPath, query, after string) {
		if strings.Contains(before+after, "://") || scheme == "" || !isScheme(scheme) {
			t.Skip()
		}
		// Only inputs the URL grammar allows in each part.
		for _, part := range []string{user, hostPath, query} {
			if strings.ContainsAny(part, " \t\n\r\"'<>`\\") {
				t.Skip()
			}
		}
		if strings.ContainsAny(user, "/?#@") || strings.ContainsAny(hostPath, "?#@") || strings.HasPrefix(hostPath, "/") && user != "" {
			t.Skip()
		}
		const secret = "S3CR3T"
		u := scheme + "://"
		if user != "" {
			u += user + secret + "@"
		}
		u += hostPath + "?" + query + secret
		got := redact.Text(before + u + after)
		if strings.Contains(got, secret) && !strings.Contains(before+after+hostPath, secret) {
			t.Fatalf("Text(%q) = %q keeps the secret", before+u+after, got)
		}
		plain := before + after
		if !strings.Contains(plain, "://") && redact.Text(plain) != plain {
			t.Fatalf("Text changed %q", plain)
		}
	})
}

func isScheme(s string) bool {
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}
