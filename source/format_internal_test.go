package source

import (
	"testing"

	"github.com/nodeagent/nodeagent"
)

// An https source's format comes from the Content-Type; a server that
// names neither YAML nor JSON leaves it to the URL's suffix.
func TestHTTPFormat(t *testing.T) {
	tests := []struct {
		contentType, url string
		want             nodeagent.Format
	}{
		{"application/yaml", "https://h/topology", nodeagent.FormatYAML},
		{"application/x-yaml; charset=utf-8", "https://h/topology.json", nodeagent.FormatYAML},
		{"text/yaml", "https://h/t", nodeagent.FormatYAML},
		{"application/json", "https://h/topology.yaml", nodeagent.FormatJSON},
		{"application/vnd.fleet+json", "https://h/t.yml", nodeagent.FormatJSON},
		{"text/plain", "https://h/topology.yaml?versionId=3", nodeagent.FormatYAML},
		{"", "https://h/topology.yml", nodeagent.FormatYAML},
		{"application/octet-stream", "https://h/topology.json", nodeagent.FormatJSON},
		{"not a media type", "https://h/topology", nodeagent.FormatJSON},
	}
	for _, tt := range tests {
		if got := httpFormat(tt.contentType, tt.url); got != tt.want {
			t.Errorf("httpFormat(%q, %q) = %q, want %q", tt.contentType, tt.url, got, tt.want)
		}
	}
}
