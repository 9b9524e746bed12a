package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nodeagent/nodeagent/agent"
)

// setting is one agent setting that can come from the config file, an
// environment variable NODEAGENT_<NAME_IN_UPPER_SNAKE> or a flag; the flag
// beats the environment, which beats the file.
type setting struct {
	name  string
	usage string
	get   func(*agent.Config) string
	set   func(*agent.Config, string) error
}

func (s setting) env() string {
	return "NODEAGENT_" + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

func strSetting(name, usage string, p func(*agent.Config) *string) setting {
	return setting{name: name, usage: usage,
		get: func(c *agent.Config) string { return *p(c) },
		set: func(c *agent.Config, v string) error { *p(c) = v; return nil }}
}

func durSetting(name, usage string, p func(*agent.Config) *agent.Duration) setting {
	return setting{name: name, usage: usage,
		get: func(c *agent.Config) string { return p(c).D().String() },
		set: func(c *agent.Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("want a duration such as 30s or 5m: %w", err)
			}
			*p(c) = agent.Duration(d)
			return nil
		}}
}

func intSetting(name, usage string, p func(*agent.Config) *int) setting {
	return setting{name: name, usage: usage,
		get: func(c *agent.Config) string { return strconv.Itoa(*p(c)) },
		set: func(c *agent.Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("want a whole number: %w", err)
			}
			*p(c) = n
			return nil
		}}
}

func boolSetting(name, usage string, p func(*agent.Config) *bool) setting {
	return setting{name: name, usage: usage,
		get: func(c *agent.Config) string { return strconv.FormatBool(*p(c)) },
		set: func(c *agent.Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("want true or false: %w", err)
			}
			*p(c) = b
			return nil
		}}
}

type cfg = agent.Config

// settings lists every agent setting, in the order help shows them.
var settings = []setting{
	strSetting("topology", "topology document URL: s3://bucket/key, file:///path or https://…", func(c *cfg) *string { return &c.Topology }),
	strSetting("root", "prefix for every host path the agent reads or writes", func(c *cfg) *string { return &c.Root }),
	strSetting("service-root", "prefix for paths written inside rendered configs (set it equal to --root when services run against a rooted tree)", func(c *cfg) *string { return &c.ServiceRoot }),
	strSetting("state-dir", "last-good topology, status, lock and journal (under --root)", func(c *cfg) *string { return &c.StateDir }),
	strSetting("proc", "where the running host's procfs is mounted: memory and the boot id are read there, not under --root", func(c *cfg) *string { return &c.Proc }),
	strSetting("role", "override the role found in the topology", func(c *cfg) *string { return &c.Role }),
	{name: "products", usage: "override the role's products (comma-separated)",
		get: func(c *cfg) string { return strings.Join(c.Products, ",") },
		set: func(c *cfg, v string) error {
			c.Products = nil
			for _, p := range strings.Split(v, ",") {
				if p = strings.TrimSpace(p); p != "" {
					c.Products = append(c.Products, p)
				}
			}
			return nil
		}},
	strSetting("group", "override the Auto Scaling group from instance metadata", func(c *cfg) *string { return &c.Group }),
	strSetting("listen", "health, readiness, status and metrics HTTP address (run)", func(c *cfg) *string { return &c.Listen }),
	strSetting("services", "service driver: auto, systemd, exec or none", func(c *cfg) *string { return &c.Services }),
	strSetting("log-format", "log format: auto (JSON when not on a terminal), json or text", func(c *cfg) *string { return &c.LogFormat }),
	durSetting("deadline", "overall deadline of one apply", func(c *cfg) *agent.Duration { return &c.Deadline }),
	durSetting("smoke-deadline", "deadline of the smoke checks", func(c *cfg) *agent.Duration { return &c.SmokeDeadline }),
	intSetting("launch-attempts", "applies tried at boot before the launch hook is completed with ABANDON", func(c *cfg) *int { return &c.LaunchAttempts }),
	durSetting("heartbeat-interval", "lifecycle hook heartbeat interval during long work", func(c *cfg) *agent.Duration { return &c.HeartbeatInterval }),
	durSetting("poll-interval", "how often run polls an s3:// or https:// topology", func(c *cfg) *agent.Duration { return &c.PollInterval }),
	durSetting("settle", "quiet time that folds a burst of topology changes into one apply", func(c *cfg) *agent.Duration { return &c.Settle }),
	durSetting("splay", "maximum random delay before a re-apply, so a fleet does not reload at once", func(c *cfg) *agent.Duration { return &c.Splay }),
	durSetting("report-interval", "heartbeat of the node report under the topology's fleet.reports (one PUT per interval, plus one per change)", func(c *cfg) *agent.Duration { return &c.ReportInterval }),
	durSetting("drain-time", "time between going unready and completing the terminate hook", func(c *cfg) *agent.Duration { return &c.DrainTime }),
	intSetting("keep-releases", "releases kept per product (the active one is never removed)", func(c *cfg) *int { return &c.KeepReleases }),
	boolSetting("allow-lower-serial", "accept a topology whose serial is lower than the last applied (a deliberate rollback)", func(c *cfg) *bool { return &c.AllowLowerSerial }),
	boolSetting("allow-node-drop", "accept a topology that drops more than half of the previous nodes", func(c *cfg) *bool { return &c.AllowNodeDrop }),
	boolSetting("status-public", "serve /status to non-loopback clients too", func(c *cfg) *bool { return &c.StatusPublic }),
}

const defaultConfigFile = "/etc/nodeagent/config.json"

// flagValue records a flag's raw value; layering happens after parsing.
type flagValue struct {
	set   bool
	value string
	def   string
	bool  bool
}

func (f *flagValue) String() string {
	if f == nil {
		return ""
	}
	return f.def
}
func (f *flagValue) Set(v string) error { f.set, f.value = true, v; return nil }
func (f *flagValue) IsBoolFlag() bool   { return f.bool }

// commonFlags registers --config and every setting on fs. load then builds
// the layered config.
type commonFlags struct {
	config *string
	values map[string]*flagValue
}

func registerCommon(fs *flag.FlagSet) *commonFlags {
	cf := &commonFlags{values: map[string]*flagValue{}}
	cf.config = fs.String("config", "", "agent config file (default "+defaultConfigFile+"; a missing default file is fine)")
	def := agent.DefaultConfig()
	for _, s := range settings {
		v := &flagValue{def: s.get(&def)}
		v.bool = v.def == "true" || v.def == "false"
		cf.values[s.name] = v
		fs.Var(v, s.name, s.usage+" (env "+s.env()+")")
	}
	return cf
}

// load layers defaults, the config file, the environment and the flags.
func (cf *commonFlags) load(getenv func(string) string) (agent.Config, error) {
	file, explicit := *cf.config, true
	if file == "" {
		file = getenv("NODEAGENT_CONFIG")
	}
	if file == "" {
		file, explicit = defaultConfigFile, false
	}
	cfg := agent.DefaultConfig()
	f, err := os.Open(file)
	switch {
	case err == nil:
		cfg, err = agent.ParseConfig(f)
		f.Close()
		if err != nil {
			return cfg, fmt.Errorf("config file %s: %w", file, err)
		}
	case errors.Is(err, os.ErrNotExist) && !explicit:
	default:
		return cfg, fmt.Errorf("config file: %w", err)
	}
	for _, s := range settings {
		if v := getenv(s.env()); v != "" {
			if err := s.set(&cfg, v); err != nil {
				return cfg, fmt.Errorf("%s=%q: %w", s.env(), v, err)
			}
		}
	}
	for _, s := range settings {
		if v := cf.values[s.name]; v.set {
			if err := s.set(&cfg, v.value); err != nil {
				return cfg, fmt.Errorf("--%s=%q: %w", s.name, v.value, err)
			}
		}
	}
	return cfg, cfg.Validate()
}
