package plan_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodeagent/nodeagent/plan"
)

func lines(from, to int, edit map[int]string) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		if s, ok := edit[i]; ok {
			b.WriteString(s)
			continue
		}
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}

var diffCases = []struct {
	name     string
	old, new string
	want     string
}{
	{name: "equal", old: "a\nb\n", new: "a\nb\n", want: ""},
	{name: "both empty", old: "", new: "", want: ""},
	{name: "empty old", old: "", new: "a\nb\n", want: "--- f\n+++ f\n@@ -0,0 +1,2 @@\n+a\n+b\n"},
	{name: "empty new", old: "a\nb\n", new: "", want: "--- f\n+++ f\n@@ -1,2 +0,0 @@\n-a\n-b\n"},
	{name: "no trailing newline on either side", old: "a\nb", new: "a\nc",
		want: "--- f\n+++ f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n"},
	{name: "newline added at end", old: "a", new: "a\n",
		want: "--- f\n+++ f\n@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+a\n"},
	{name: "newline removed at end", old: "x\na\n", new: "x\na",
		want: "--- f\n+++ f\n@@ -1,2 +1,2 @@\n x\n-a\n+a\n\\ No newline at end of file\n"},
	{name: "middle edit", old: lines(1, 9, nil), new: lines(1, 9, map[int]string{5: "five\n"}),
		want: "--- f\n+++ f\n@@ -2,7 +2,7 @@\n line 2\n line 3\n line 4\n-line 5\n+five\n line 6\n line 7\n line 8\n"},
	{name: "insert in the middle", old: "a\nb\nc\nd\ne\nf\ng\nh\n", new: "a\nb\nc\nd\nNEW\ne\nf\ng\nh\n",
		want: "--- f\n+++ f\n@@ -2,6 +2,7 @@\n b\n c\n d\n+NEW\n e\n f\n g\n"},
	{name: "two hunks", old: lines(1, 20, nil), new: lines(1, 20, map[int]string{2: "two\n", 18: "eighteen\n"}),
		want: "--- f\n+++ f\n" +
			"@@ -1,5 +1,5 @@\n line 1\n-line 2\n+two\n line 3\n line 4\n line 5\n" +
			"@@ -15,6 +15,6 @@\n line 15\n line 16\n line 17\n-line 18\n+eighteen\n line 19\n line 20\n"},
	{name: "close changes share a hunk", old: lines(1, 20, nil), new: lines(1, 20, map[int]string{5: "five\n", 11: "eleven\n"}),
		want: "--- f\n+++ f\n@@ -2,13 +2,13 @@\n line 2\n line 3\n line 4\n-line 5\n+five\n line 6\n line 7\n line 8\n line 9\n line 10\n-line 11\n+eleven\n line 12\n line 13\n line 14\n"},
	{name: "replace everything", old: "a\nb\n", new: "c\n", want: "--- f\n+++ f\n@@ -1,2 +1 @@\n-a\n-b\n+c\n"},
}

func TestDiff(t *testing.T) {
	for _, tt := range diffCases {
		t.Run(tt.name, func(t *testing.T) {
			if got := plan.Diff("f", []byte(tt.old), []byte(tt.new)); got != tt.want {
				t.Errorf("Diff =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// randomText makes a file from a small alphabet of lines, so that random
// pairs share many lines, sometimes without a final newline.
func randomText(r *rand.Rand) []byte {
	var b bytes.Buffer
	n := r.IntN(40)
	for range n {
		fmt.Fprintf(&b, "%c\n", 'a'+r.IntN(6))
	}
	if n > 0 && r.IntN(4) == 0 {
		b.Truncate(b.Len() - 1)
	}
	return b.Bytes()
}

// changedLines counts the - and + lines of a unified diff.
func changedLines(d string) int {
	n := 0
	for _, l := range strings.Split(d, "\n") {
		if (strings.HasPrefix(l, "-") && !strings.HasPrefix(l, "--- ")) || (strings.HasPrefix(l, "+") && !strings.HasPrefix(l, "+++ ")) {
			n++
		}
	}
	return n
}

// TestDiffAgainstGNU applies every Diff with GNU patch and checks that it
// turns old into new, and that it is never longer than GNU diff -u's.
func TestDiffAgainstGNU(t *testing.T) {
	patchBin, err := exec.LookPath("patch")
	if err != nil {
		t.Fatalf("GNU patch is needed to cross-check Diff (apt-get install patch): %v", err)
	}
	diffBin, err := exec.LookPath("diff")
	if err != nil {
		t.Fatalf("GNU diff is needed to cross-check Diff (apt-get install diffutils): %v", err)
	}
	type pair struct {
		name     string
		old, new []byte
	}
	var pairs []pair
	for _, c := range diffCases {
		pairs = append(pairs, pair{c.name, []byte(c.old), []byte(c.new)})
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 150 {
		pairs = append(pairs, pair{fmt.Sprintf("random %d", i), randomText(r), randomText(r)})
	}
	dir := t.TempDir()
	oldPath, newPath, outPath := filepath.Join(dir, "old"), filepath.Join(dir, "new"), filepath.Join(dir, "out")
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			if err := errors.Join(os.WriteFile(oldPath, p.old, 0o644), os.WriteFile(newPath, p.new, 0o644)); err != nil {
				t.Fatal(err)
			}
			ours := plan.Diff("/etc/x.conf", p.old, p.new)
			gnu, err := exec.Command(diffBin, "-u", oldPath, newPath).Output()
			var exit *exec.ExitError
			if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
				t.Fatalf("diff -u: %v", err)
			}
			if (ours == "") != (len(gnu) == 0) {
				t.Fatalf("ours empty = %v, GNU empty = %v", ours == "", len(gnu) == 0)
			}
			if ours == "" {
				return
			}
			if o, g := changedLines(ours), changedLines(string(gnu)); o > g {
				t.Errorf("our diff changes %d lines, GNU's %d:\n%s\nGNU:\n%s", o, g, ours, gnu)
			}
			_ = os.Remove(outPath)
			cmd := exec.Command(patchBin, "-s", "-o", outPath, oldPath)
			cmd.Stdin = strings.NewReader(ours)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("patch refused our diff: %v: %s\n%s", err, out, ours)
			}
			got, err := os.ReadFile(outPath)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, p.new) {
				t.Fatalf("patched old = %q, want %q\ndiff:\n%s", got, p.new, ours)
			}
		})
	}
}
