package hostsfile_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/hostsfile"
)

const (
	begin = hostsfile.BeginMarker
	end   = hostsfile.EndMarker
)

var (
	twoNodes = []nodeagent.HostEntry{
		{IP: "10.0.1.10", Names: []string{"web-1", "web-1.shop.internal"}},
		{IP: "10.0.1.20", Names: []string{"db-1", "db-1.shop.internal", "db"}},
	}
	twoNodesBlock = begin + "\n" +
		"10.0.1.10\tweb-1 web-1.shop.internal\n" +
		"10.0.1.20\tdb-1 db-1.shop.internal db\n" +
		end + "\n"
)

// lf joins lines with "\n" and ends the last one too.
func lf(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

// crlf joins lines with "\r\n" and ends the last one too.
func crlf(lines ...string) string { return strings.Join(lines, "\r\n") + "\r\n" }

func TestMerge(t *testing.T) {
	debian, err := os.ReadFile("testdata/debian_hosts")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		current     string
		entries     []nodeagent.HostEntry
		want        string
		wantChanged bool
	}{
		{
			name:        "stock Debian hosts gets the block appended",
			current:     string(debian),
			entries:     twoNodes,
			want:        string(debian) + twoNodesBlock,
			wantChanged: true,
		},
		{
			name:        "block already current",
			current:     string(debian) + twoNodesBlock,
			entries:     twoNodes,
			want:        string(debian) + twoNodesBlock,
			wantChanged: false,
		},
		{
			name:        "empty current",
			current:     "",
			entries:     twoNodes,
			want:        twoNodesBlock,
			wantChanged: true,
		},
		{
			name:        "empty entries on empty current keeps the markers",
			current:     "",
			entries:     nil,
			want:        lf(begin, end),
			wantChanged: true,
		},
		{
			name:        "empty entries empty the block",
			current:     lf("127.0.0.1 localhost") + twoNodesBlock + lf("# after"),
			entries:     []nodeagent.HostEntry{},
			want:        lf("127.0.0.1 localhost", begin, end, "# after"),
			wantChanged: true,
		},
		{
			name: "foreign lines before and after stay byte for byte",
			current: "127.0.0.1   localhost  \t# spaces kept\n\n   \n" +
				lf(begin, "10.9.9.9\told", end) +
				"#after\twith tab\n10.0.0.5 operator-added   \n\n\n",
			entries: twoNodes,
			want: "127.0.0.1   localhost  \t# spaces kept\n\n   \n" +
				twoNodesBlock +
				"#after\twith tab\n10.0.0.5 operator-added   \n\n\n",
			wantChanged: true,
		},
		{
			name:        "CRLF file gets CRLF block lines",
			current:     crlf("127.0.0.1 localhost", "::1 localhost"),
			entries:     twoNodes,
			want:        crlf("127.0.0.1 localhost", "::1 localhost", begin, "10.0.1.10\tweb-1 web-1.shop.internal", "10.0.1.20\tdb-1 db-1.shop.internal db", end),
			wantChanged: true,
		},
		{
			name:        "CRLF file with a CRLF block is unchanged",
			current:     crlf("127.0.0.1 localhost", begin, "10.0.1.10\tweb-1", end, "# tail"),
			entries:     []nodeagent.HostEntry{{IP: "10.0.1.10", Names: []string{"web-1"}}},
			want:        crlf("127.0.0.1 localhost", begin, "10.0.1.10\tweb-1", end, "# tail"),
			wantChanged: false,
		},
		{
			name:        "CRLF file without trailing line break",
			current:     "127.0.0.1 localhost\r\n::1 localhost",
			entries:     nil,
			want:        crlf("127.0.0.1 localhost", "::1 localhost", begin, end),
			wantChanged: true,
		},
		{
			name:        "no trailing newline gets one before the block",
			current:     "127.0.0.1 localhost\n::1 localhost",
			entries:     twoNodes[:1],
			want:        lf("127.0.0.1 localhost", "::1 localhost", begin, "10.0.1.10\tweb-1 web-1.shop.internal", end),
			wantChanged: true,
		},
		{
			name:        "unterminated last line after the block stays unterminated",
			current:     lf("a", begin, "10.0.0.1\told", end) + "# last",
			entries:     nil,
			want:        lf("a", begin, end) + "# last",
			wantChanged: true,
		},
		{
			name:        "duplicate blocks: first replaced, later removed",
			current:     lf("# head", begin, "10.0.0.1\ta", end, "# middle", begin, "10.0.0.2\tb", end, "# tail", begin, end),
			entries:     twoNodes,
			want:        lf("# head") + twoNodesBlock + lf("# middle", "# tail"),
			wantChanged: true,
		},
		{
			name:    "BEGIN without END keeps every line after it",
			current: lf("127.0.0.1 localhost", begin, "10.0.0.1\tstale", "10.0.0.7 operator-line"),
			entries: twoNodes,
			// The stray BEGIN becomes the block; the lines after it are not
			// provably ours, so they stay, after the fresh entries.
			want:        lf("127.0.0.1 localhost") + twoNodesBlock + lf("10.0.0.1\tstale", "10.0.0.7 operator-line"),
			wantChanged: true,
		},
		{
			name:        "BEGIN, BEGIN, END: the first BEGIN is stray and the lines after it stay",
			current:     lf("# head", begin, "10.0.0.7 operator-line", begin, "10.0.0.1\tours", end),
			entries:     twoNodes,
			want:        lf("# head", "10.0.0.7 operator-line") + twoNodesBlock,
			wantChanged: true,
		},
		{
			name:        "stray END is removed, the lines around it stay",
			current:     lf("# head", end, "10.0.0.7 operator-line"),
			entries:     nil,
			want:        lf("# head", "10.0.0.7 operator-line", begin, end),
			wantChanged: true,
		},
		{
			name:        "markers with blanks around them are still markers",
			current:     lf("# head", "  "+begin+" \t", "10.0.0.1\tstale", "\t"+end, "# tail"),
			entries:     nil,
			want:        lf("# head", begin, end, "# tail"),
			wantChanged: true,
		},
		{
			name:        "marker text inside a longer line is foreign",
			current:     lf("# head "+begin, "x "+end),
			entries:     nil,
			want:        lf("# head "+begin, "x "+end, begin, end),
			wantChanged: true,
		},
		{
			name:    "entries reordered and removed",
			current: string(debian) + twoNodesBlock,
			entries: []nodeagent.HostEntry{
				{IP: "10.0.1.20", Names: []string{"db-1"}},
			},
			want:        string(debian) + lf(begin, "10.0.1.20\tdb-1", end),
			wantChanged: true,
		},
		{
			name:        "entries reordered",
			current:     twoNodesBlock,
			entries:     []nodeagent.HostEntry{twoNodes[1], twoNodes[0]},
			want:        lf(begin, "10.0.1.20\tdb-1 db-1.shop.internal db", "10.0.1.10\tweb-1 web-1.shop.internal", end),
			wantChanged: true,
		},
		{
			name:    "unsafe IPs and names are dropped",
			current: "",
			entries: []nodeagent.HostEntry{
				{IP: "10.0.0.1", Names: []string{"ok", "bad\nname", "bad name", "", "tab\tname", "nul\x00", "nel\u0085x", "hash#x", "\xff", "ok2"}},
				{IP: "10.0.0.2\n10.0.0.3", Names: []string{"injected"}},
				{IP: "", Names: []string{"noip"}},
				{IP: "10.0.0.4", Names: []string{"\r"}},
				{IP: "10.0.0.5", Names: nil},
			},
			want:        lf(begin, "10.0.0.1\tok ok2", end),
			wantChanged: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			current := []byte(tt.current)
			out, changed := hostsfile.Merge(current, tt.entries)
			if diff := cmp.Diff(tt.want, string(out)); diff != "" {
				t.Errorf("Merge() output mismatch (-want +got):\n%s", diff)
			}
			if changed != tt.wantChanged {
				t.Errorf("Merge() changed = %v, want %v", changed, tt.wantChanged)
			}
			if string(current) != tt.current {
				t.Errorf("Merge() modified its input: %q", current)
			}
			again, changedAgain := hostsfile.Merge(out, tt.entries)
			if changedAgain || !bytes.Equal(again, out) {
				t.Errorf("Merge(Merge()) changed = %v, output:\n%q\nwant:\n%q", changedAgain, again, out)
			}
		})
	}
}

func TestMergeUnchangedReturnsCurrent(t *testing.T) {
	current := []byte("127.0.0.1 localhost\n" + twoNodesBlock)
	out, changed := hostsfile.Merge(current, twoNodes)
	if changed {
		t.Fatalf("Merge() changed = true, want false")
	}
	if &out[0] != &current[0] || len(out) != len(current) {
		t.Errorf("Merge() returned a copy, want current itself")
	}
}

func TestEntries(t *testing.T) {
	tests := []struct {
		name    string
		current string
		want    []nodeagent.HostEntry
	}{
		{name: "no block", current: lf("127.0.0.1 localhost"), want: nil},
		{name: "empty input", current: "", want: nil},
		{name: "empty block", current: lf(begin, end), want: []nodeagent.HostEntry{}},
		{name: "two entries", current: lf("127.0.0.1 localhost") + twoNodesBlock, want: twoNodes},
		{
			name:    "CRLF, comments and blanks in the block",
			current: crlf(begin, "# note", "", "10.0.0.1   a  b # c", "10.0.0.2", end),
			want:    []nodeagent.HostEntry{{IP: "10.0.0.1", Names: []string{"a", "b"}}},
		},
		{
			name:    "first block of two",
			current: lf(begin, "10.0.0.1\ta", end, begin, "10.0.0.2\tb", end),
			want:    []nodeagent.HostEntry{{IP: "10.0.0.1", Names: []string{"a"}}},
		},
		{name: "BEGIN without END", current: lf(begin, "10.0.0.1\ta"), want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := hostsfile.Entries([]byte(tt.current))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Entries() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEntriesRoundTrip(t *testing.T) {
	out, _ := hostsfile.Merge([]byte("127.0.0.1 localhost\r\n"), twoNodes)
	if diff := cmp.Diff(twoNodes, hostsfile.Entries(out)); diff != "" {
		t.Errorf("Entries(Merge()) mismatch (-want +got):\n%s", diff)
	}
}
