package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunTimesEveryVariant(t *testing.T) {
	dir := t.TempDir()
	// A variant that proves it got the base environment, its own
	// variables and the arguments: it exits 1 otherwise.
	script := filepath.Join(dir, "check")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ \"$BASE\" = yes ] && [ \"$1 $2\" = \"a b\" ] && [ \"${EXTRA:-unset}\" = \"$WANT\" ]\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := filepath.Join(dir, "env")
	if err := os.WriteFile(env, []byte("BASE=yes\nWANT=unset\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := filepath.Join(dir, "args")
	if err := os.WriteFile(args, []byte("a\nb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := run([]string{"-n", "3", "-env", env, "-args", args, script, "EXTRA=1 WANT=1 " + script}, &out)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("output has %d lines, want one per variant:\n%s", len(lines), out.String())
	}
	for i, prefix := range []string{script, "EXTRA=1 WANT=1 " + script} {
		if !strings.HasPrefix(lines[i], prefix) || !strings.Contains(lines[i], "wall median") || !strings.HasSuffix(lines[i], "(3 runs)") {
			t.Errorf("line %d = %q, want the variant %q with its medians over 3 runs", i, lines[i], prefix)
		}
	}
}

func TestRunStopsAtAFailure(t *testing.T) {
	err := run([]string{"-n", "2", "/bin/true", "/bin/false"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "/bin/false") {
		t.Errorf("run with a failing variant: %v, want an error naming it", err)
	}
}

func TestParseVariant(t *testing.T) {
	v, err := parseVariant("GOMAXPROCS=1 GOGC=off ./nodeagent")
	if err != nil || v.bin != "./nodeagent" || strings.Join(v.env, " ") != "GOMAXPROCS=1 GOGC=off" {
		t.Errorf("parseVariant = %+v, %v", v, err)
	}
	for _, bad := range []string{"", "./nodeagent GOMAXPROCS=1", "x y"} {
		if _, err := parseVariant(bad); err == nil {
			t.Errorf("parseVariant(%q): no error", bad)
		}
	}
}
