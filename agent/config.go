package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/nodeagent/nodeagent/service"
)

// Config is the agent's configuration: the config file
// (/etc/nodeagent/config.json), overridden by NODEAGENT_* environment
// variables, overridden by flags. cmd/nodeagent does the layering; this type
// only holds, parses and validates it.
type Config struct {
	Topology    string `json:"topology,omitempty"`     // s3://bucket/key, file:///path, https://…
	Root        string `json:"root,omitempty"`         // prefix for every host path read or written
	ServiceRoot string `json:"service_root,omitempty"` // prefix for paths inside rendered files
	StateDir    string `json:"state_dir,omitempty"`    // host path, joined onto Root
	// Proc is where the running host's procfs is mounted: memory and the
	// kernel boot id are read there, never under Root (an image mounted
	// at /mnt/image has no /proc, and its boot is not the running one).
	Proc      string   `json:"proc,omitempty"`
	Role      string   `json:"role,omitempty"`
	Products  []string `json:"products,omitempty"`
	Group     string   `json:"group,omitempty"`
	Listen    string   `json:"listen,omitempty"`
	Services  string   `json:"services,omitempty"` // auto, systemd, exec, none
	LogFormat string   `json:"log_format,omitempty"`

	// Deadline bounds one apply, including release download and smoke
	// checks, so cloud-init never hangs.
	Deadline Duration `json:"deadline,omitempty"`
	// SmokeDeadline bounds the smoke checks of one apply.
	SmokeDeadline Duration `json:"smoke_deadline,omitempty"`
	// LaunchAttempts is how many applies a booting node tries before it
	// completes its launch hook with ABANDON.
	LaunchAttempts int `json:"launch_attempts,omitempty"`
	// HeartbeatInterval spaces lifecycle heartbeats during long work.
	HeartbeatInterval Duration `json:"heartbeat_interval,omitempty"`

	PollInterval Duration `json:"poll_interval,omitempty"` // S3/https polling in run
	Settle       Duration `json:"settle,omitempty"`        // fold a burst of changes into one apply
	Splay        Duration `json:"splay,omitempty"`         // random delay before a re-apply, per node
	DrainTime    Duration `json:"drain_time,omitempty"`    // wait after going unready before completing the terminate hook
	// ReportInterval is the heartbeat of the node report (fleet.reports).
	ReportInterval Duration `json:"report_interval,omitempty"`

	KeepReleases int `json:"keep_releases,omitempty"`

	AllowLowerSerial bool `json:"allow_lower_serial,omitempty"`
	AllowNodeDrop    bool `json:"allow_node_drop,omitempty"`
	// StatusPublic lets non-loopback clients read /status.
	StatusPublic bool `json:"status_public,omitempty"`

	// Exec configures the exec service driver per unit.
	Exec service.ExecConfig `json:"exec,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("30s").
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// DefaultConfig returns the configuration used where nothing overrides it.
func DefaultConfig() Config {
	return Config{
		Root:              "/",
		ServiceRoot:       "/",
		StateDir:          "/var/lib/nodeagent",
		Proc:              "/proc",
		Listen:            ":9107",
		Services:          "auto",
		LogFormat:         "auto",
		Deadline:          Duration(15 * time.Minute),
		SmokeDeadline:     Duration(60 * time.Second),
		LaunchAttempts:    3,
		HeartbeatInterval: Duration(60 * time.Second),
		PollInterval:      Duration(30 * time.Second),
		Settle:            Duration(2 * time.Second),
		Splay:             Duration(5 * time.Second),
		DrainTime:         Duration(30 * time.Second),
		ReportInterval:    Duration(DefaultReportInterval),
		KeepReleases:      3,
	}
}

// ParseConfig reads a JSON config over the defaults. Unknown fields are
// errors, so a typo in the config never passes silently.
func ParseConfig(r io.Reader) (Config, error) {
	c := DefaultConfig()
	data, err := io.ReadAll(r)
	if err != nil {
		return c, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, nameKey(data, err)
	}
	if dec.More() {
		return c, errors.New("trailing data after the JSON object")
	}
	return c, nil
}

// nameKey finds the top-level key whose value failed to decode, so that the
// message names the setting ("splay: time: invalid duration"). When several
// fail, it is the one whose own error is err (the decoder stops at the
// first in the document), else the first in key order: the same one every
// time.
func nameKey(data []byte, err error) error {
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil {
		return err
	}
	first := ""
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		one, _ := json.Marshal(map[string]json.RawMessage{k: fields[k]})
		var c Config
		oneErr := json.Unmarshal(one, &c)
		if oneErr == nil {
			continue
		}
		if oneErr.Error() == err.Error() {
			return fmt.Errorf("%s: %w", k, err)
		}
		if first == "" {
			first = k
		}
	}
	if first != "" {
		return fmt.Errorf("%s: %w", first, err)
	}
	return err
}

// Validate checks the config; each error names the setting as the operator
// types it on the command line.
func (c Config) Validate() error {
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	// Settings are checked in a fixed order (slices, not maps), so the
	// problems are listed the same way every time.
	type setting[T any] struct {
		flag string
		v    T
	}
	for _, p := range []setting[string]{{"root", c.Root}, {"service-root", c.ServiceRoot}, {"state-dir", c.StateDir}, {"proc", c.Proc}} {
		if !path.IsAbs(p.v) {
			bad(p.flag, "must be an absolute path, got %q", p.v)
		}
	}
	switch c.Services {
	case "auto", "systemd", "exec", "none":
	default:
		bad("services", "must be auto, systemd, exec or none, got %q", c.Services)
	}
	switch c.LogFormat {
	case "auto", "json", "text":
	default:
		bad("log-format", "must be auto, json or text, got %q", c.LogFormat)
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			bad("listen", "must be host:port or :port, got %q", c.Listen)
		}
	}
	for _, d := range []setting[Duration]{{"deadline", c.Deadline}, {"smoke-deadline", c.SmokeDeadline},
		{"poll-interval", c.PollInterval}, {"heartbeat-interval", c.HeartbeatInterval}, {"report-interval", c.ReportInterval}} {
		if d.v <= 0 {
			bad(d.flag, "must be positive, got %s", d.v.D())
		}
	}
	for _, d := range []setting[Duration]{{"settle", c.Settle}, {"splay", c.Splay}, {"drain-time", c.DrainTime}} {
		if d.v < 0 {
			bad(d.flag, "must not be negative, got %s", d.v.D())
		}
	}
	if c.LaunchAttempts < 1 {
		bad("launch-attempts", "must be at least 1, got %d", c.LaunchAttempts)
	}
	if c.KeepReleases < 1 {
		bad("keep-releases", "must be at least 1, got %d", c.KeepReleases)
	}
	for _, p := range c.Products {
		if strings.TrimSpace(p) == "" {
			bad("products", "has an empty product name")
		}
	}
	if err := c.Exec.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("config: %w", err))
	}
	return errors.Join(errs...)
}

// BootDeadline bounds a whole boot: one Deadline of retrying transient
// failures of IMDS and the source, every attempt with its own Deadline,
// plus the waits between attempts. cloud-init never waits longer.
func (c Config) BootDeadline() time.Duration {
	n := time.Duration(max(c.LaunchAttempts, 1))
	return (n+1)*c.Deadline.D() + n*15*time.Second
}

// RequireTopology reports the missing topology URL the way an operator can
// fix it.
func (c Config) RequireTopology() error {
	if c.Topology == "" {
		return errors.New("no topology URL: pass --topology s3://bucket/key (or file:///path), set NODEAGENT_TOPOLOGY, or put \"topology\" in the config file")
	}
	return nil
}
