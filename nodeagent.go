// Package nodeagent holds the vocabulary of the agent that turns a generic
// EC2 instance into a working member of a PHP web fleet: who the instance is
// (Instance), what the fleet looks like (Topology), what this node should be
// (Identity, Desired), and what must change to get there (Plan).
//
// The core depends only on the small interfaces declared here
// (MetadataSource, TopologySource, ServiceManager, LifecycleHooks,
// ReleaseStore). Adapters for AWS and the host implement them in their own
// packages; only cmd/nodeagent wires them together.
package nodeagent

import (
	"context"
	"io"
	"strings"
)

// OS families: which file layout a node uses.
const (
	OSDebian = "debian" // Debian, Ubuntu: /etc/apache2, /etc/php/X.Y/fpm, /etc/memcached.conf
	OSRHEL   = "rhel"   // RHEL, Amazon Linux 2023: /etc/httpd, /etc/php-fpm.d, /etc/sysconfig/memcached
)

// Instance is what discovery found out about this machine: instance metadata
// (IMDSv2) plus facts read from the host under the agent's root.
type Instance struct {
	ID             string `json:"instance_id"`
	PrivateIP      string `json:"private_ip"`
	AZ             string `json:"az"`
	Region         string `json:"region"`
	Type           string `json:"instance_type"`
	Group          string `json:"group,omitempty"`           // aws:autoscaling:groupName tag
	LifecycleState string `json:"lifecycle_state,omitempty"` // autoscaling/target-lifecycle-state

	MemoryBytes int64  `json:"memory_bytes"` // MemTotal from the running host's /proc/meminfo (never under --root)
	OSFamily    string `json:"os_family"`    // OSDebian or OSRHEL, from /etc/os-release
	OSID        string `json:"os_id"`        // ID= from /etc/os-release
	PHPVersion  string `json:"php_version,omitempty"`
}

// Identity is the answer to "what is this node in the topology".
type Identity struct {
	Node          string   `json:"node,omitempty"` // name in Topology.Nodes, if listed
	Role          string   `json:"role"`
	Products      []string `json:"products,omitempty"`
	Group         string   `json:"group,omitempty"`
	LaunchHook    string   `json:"launch_hook,omitempty"`
	TerminateHook string   `json:"terminate_hook,omitempty"`
	// Why says how the identity was found ("instance id i-… in nodes",
	// "group shop-web", "--role override").
	Why string `json:"why"`
}

// Overrides are the operator's identity overrides (--role, --products,
// --group); empty fields mean "from metadata".
type Overrides struct {
	Role     string
	Products []string
	Group    string
}

// MetadataSource discovers the instance (IMDSv2 plus host facts).
type MetadataSource interface {
	Instance(ctx context.Context) (Instance, error)
	// LifecycleState returns autoscaling/target-lifecycle-state
	// ("InService", "Terminated", …), or "" where the instance has none.
	LifecycleState(ctx context.Context) (string, error)
}

// Fetched is one answer of a TopologySource.
type Fetched struct {
	Body        []byte
	ETag        string // opaque version tag for the next conditional fetch
	NotModified bool   // the document is unchanged since the ETag passed in
	Source      string // where it came from, for messages ("s3://b/k", "last-good copy")
	// Format is how Body is written, as the source knows it (the key's
	// or path's suffix, an HTTP Content-Type). "" is JSON.
	Format Format
}

// Format is the syntax of a topology document.
type Format string

// The topology document formats. A YAML document is converted to JSON and
// then held to the same strict rules.
const (
	FormatJSON Format = "json"
	FormatYAML Format = "yaml"
)

// FormatOf is the format a file name or URL suggests: YAML for a name
// ending in .yaml or .yml (before a URL's query), JSON otherwise. It is for
// callers that have only a name (validate FILE, publish); what a source
// fetched carries its Format.
func FormatOf(name string) Format {
	n := strings.ToLower(name)
	if i := strings.IndexAny(n, "?#"); i >= 0 && strings.Contains(n, "://") {
		n = n[:i] // https://host/topology.yaml?versionId=…
	}
	if strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml") {
		return FormatYAML
	}
	return FormatJSON
}

// TopologySource fetches the topology document. A non-empty etag makes the
// fetch conditional.
type TopologySource interface {
	Fetch(ctx context.Context, etag string) (Fetched, error)
	String() string
}

// Watcher is a TopologySource that learns of changes without being polled
// (a file watched with fsnotify). Watch calls changed, from another
// goroutine, each time the document may have changed, until ctx ends; it
// returns once watching has started, or the reason it cannot start. The
// run loop polls the sources that do not implement it.
type Watcher interface {
	Watch(ctx context.Context, changed func(why string)) error
}

// ServiceManager controls system services by unit name.
type ServiceManager interface {
	Active(ctx context.Context, unit string) (bool, error)
	Start(ctx context.Context, unit string) error
	Reload(ctx context.Context, unit string) error
	Restart(ctx context.Context, unit string) error
}

// ConfigChecker validates a service's whole configuration tree as it is on
// disk now (apache2ctl -t, php-fpm -t). It returns the checker's output in
// the error when the configuration is refused. Checks of different
// services may run at the same time.
type ConfigChecker interface {
	Check(ctx context.Context, service string) error
}

// LifecycleHook identifies one Auto Scaling lifecycle action.
type LifecycleHook struct {
	Group      string
	Hook       string
	InstanceID string
}

// Lifecycle results.
const (
	LifecycleContinue = "CONTINUE"
	LifecycleAbandon  = "ABANDON"
)

// LifecycleHooks talks to the Auto Scaling API about lifecycle actions. Its
// errors name the hook, its group and instance (and the result), so callers
// do not repeat them.
type LifecycleHooks interface {
	Heartbeat(ctx context.Context, h LifecycleHook) error
	Complete(ctx context.Context, h LifecycleHook, result string) error
}

// ReleaseStore opens a release archive by URL (s3://, https://, file://).
// Its errors name the URL (without userinfo or query string), so callers
// do not repeat it.
type ReleaseStore interface {
	Open(ctx context.Context, url string) (io.ReadCloser, int64, error)
}
