package topology_test

import (
	"strings"
	"testing"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/topology"
)

// TestDecodeErrorsEchoNoContent: a topology URL may name any file
// (file:///etc/shadow); a syntax error says where, never what.
func TestDecodeErrorsEchoNoContent(t *testing.T) {
	for _, doc := range []string{
		"root:$6$saltsalt$hash:19000:0:99999:7:::\n",
		`{"schema": 1, "serial": 1 root}`,
		"\x00secret",
	} {
		_, err := topology.Decode([]byte(doc), "file:///etc/shadow", nodeagent.FormatOf("file:///etc/shadow"))
		if err == nil {
			t.Fatalf("Decode(%q) accepted", doc)
		}
		msg := strings.TrimPrefix(err.Error(), "topology file:///etc/shadow")
		for _, leak := range []string{"'r'", "'\\x00'", "root", "secret"} {
			if strings.Contains(msg, leak) {
				t.Errorf("Decode(%q): message %q holds %q from the document", doc, err, leak)
			}
		}
	}
}
