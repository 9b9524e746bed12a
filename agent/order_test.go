package agent_test

import (
	"strings"
	"testing"

	"github.com/nodeagent/nodeagent/agent"
)

// Messages that list problems list them in the same order every time: an
// operator compares two runs, and tests compare text.

// TestValidateListsProblemsInOrder runs Validate on a config with several
// bad settings of each kind and expects the same message every time.
func TestValidateListsProblemsInOrder(t *testing.T) {
	c := agent.DefaultConfig()
	c.Root, c.ServiceRoot, c.StateDir, c.Proc = "a", "b", "c", "d"
	c.Deadline, c.SmokeDeadline, c.PollInterval, c.HeartbeatInterval, c.ReportInterval = -1, -1, -1, -1, -1
	c.Settle, c.Splay, c.DrainTime = -1, -1, -1
	first := c.Validate()
	if first == nil {
		t.Fatal("Validate of a config with 12 bad settings: no error")
	}
	for _, flag := range []string{"--root", "--service-root", "--state-dir", "--proc", "--deadline", "--smoke-deadline",
		"--poll-interval", "--heartbeat-interval", "--report-interval", "--settle", "--splay", "--drain-time"} {
		if !strings.Contains(first.Error(), flag+":") {
			t.Errorf("Validate does not name %s: %v", flag, first)
		}
	}
	for range 30 {
		if err := c.Validate(); err.Error() != first.Error() {
			t.Fatalf("Validate listed the problems in another order:\n%v\nthen\n%v", first, err)
		}
	}
}

// TestParseConfigNamesTheSameSetting parses a config with two settings that
// fail to decode and expects the same setting named every time.
func TestParseConfigNamesTheSameSetting(t *testing.T) {
	const cfg = `{"splay": "soon", "settle": "later", "deadline": "never", "drain_time": "eventually"}`
	_, first := agent.ParseConfig(strings.NewReader(cfg))
	if first == nil {
		t.Fatal("ParseConfig of bad durations: no error")
	}
	// The decoder stops at the first bad value in the document; the
	// message names its setting.
	if !strings.HasPrefix(first.Error(), "splay: ") || !strings.Contains(first.Error(), "soon") {
		t.Errorf("ParseConfig error %q, want it to name splay and its value", first)
	}
	for range 30 {
		if _, err := agent.ParseConfig(strings.NewReader(cfg)); err.Error() != first.Error() {
			t.Fatalf("ParseConfig named another setting:\n%v\nthen\n%v", first, err)
		}
	}
}
