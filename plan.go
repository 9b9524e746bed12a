package nodeagent

import "io/fs"

// File is one file the node should have, as the roles package derives it.
// Path is the host path (absolute, without the agent's --root).
type File struct {
	Path    string      `json:"path"`
	Content []byte      `json:"-"`
	Mode    fs.FileMode `json:"mode"`
	Owner   string      `json:"owner,omitempty"` // user name; "" means root
	Group   string      `json:"group,omitempty"` // group name; "" means root
	// Services are the logical services that must reload (or restart) when
	// this file changes.
	Services []string `json:"services,omitempty"`
	// Sources are the topology paths this file is derived from ("nodes",
	// "aliases", "products.shop.database"); a plan explains a change by the
	// sources that changed.
	Sources []string `json:"sources,omitempty"`
}

// HostEntry is one line of the managed /etc/hosts block.
type HostEntry struct {
	IP    string
	Names []string
}

// Service is a service the node's role runs.
type Service struct {
	Name string `json:"name"` // logical: ServiceApache, ServicePHPFPM, ServiceMemcached
	Unit string `json:"unit"` // platform unit: apache2, httpd, php8.2-fpm, memcached
	// Reload says how a config change takes effect: ActionReload, or
	// ActionRestart for services without a reload (memcached).
	Reload ActionKind `json:"reload"`
	// Checked says the service's config tree can be validated before it
	// takes effect (apache2ctl -t, php-fpm -t).
	Checked bool `json:"checked"`
	// OnRelease says the service runs product code, so it is reloaded
	// after a release switch (php-fpm: its workers hold the old files).
	OnRelease bool `json:"on_release,omitempty"`
}

// Desired is everything a node should be, derived from (Instance, Topology,
// Identity) by the roles package without any I/O.
type Desired struct {
	Identity Identity    `json:"identity"`
	Files    []File      `json:"files"`
	Hosts    []HostEntry `json:"-"` // the managed /etc/hosts block
	Services []Service   `json:"services"`
	// Products are the products this node serves, with their releases and
	// smoke checks.
	Products []DesiredProduct `json:"products,omitempty"`
	// Local is where this node's own services answer, for its smoke
	// checks.
	Local LocalEndpoints `json:"local"`
	// WebUser and WebGroup are the web server's account, which owns each
	// product's shared/ directory ("" on a node that serves no product).
	WebUser  string `json:"web_user,omitempty"`
	WebGroup string `json:"web_group,omitempty"`
}

// LocalEndpoints are the addresses a node's smoke checks reach its own
// services at.
type LocalEndpoints struct {
	// HTTP is the base URL of the local web server (http://host:port); ""
	// when the node runs none.
	HTTP string `json:"http,omitempty"`
	// Memcached is host:port of the local memcached; "" when it runs none.
	Memcached string `json:"memcached,omitempty"`
}

// DesiredProduct is a product served by this node.
type DesiredProduct struct {
	Name       string       `json:"name"`
	ServerName string       `json:"server_name"`
	Release    *Release     `json:"release,omitempty"`
	Root       string       `json:"root"` // /var/www/<product>
	Smoke      []SmokeCheck `json:"smoke,omitempty"`
}

// ActionKind is what happens to a service.
type ActionKind string

// Service actions.
const (
	ActionStart   ActionKind = "start"
	ActionReload  ActionKind = "reload"
	ActionRestart ActionKind = "restart"
)

// FileChange is a file the apply will write, with its current content for
// the diff and the reason it changes.
type FileChange struct {
	File
	Old     []byte `json:"-"`
	Existed bool   `json:"existed"`
	Reason  string `json:"reason"`
}

// ServiceAction is one service action the apply will take, and why.
type ServiceAction struct {
	Service string     `json:"service"`
	Unit    string     `json:"unit"`
	Kind    ActionKind `json:"action"`
	Reason  string     `json:"reason"`
}

// ReleaseAction is a release the apply will download and/or activate.
type ReleaseAction struct {
	Product  string `json:"product"`
	From     string `json:"from,omitempty"` // release id now active, "" for none
	To       string `json:"to"`
	Download bool   `json:"download"` // false when already unpacked and verified
	Reason   string `json:"reason"`
}

// LifecycleAction is the lifecycle hook the apply will complete.
type LifecycleAction struct {
	Hook   LifecycleHook `json:"hook"`
	Result string        `json:"result"`
	Reason string        `json:"reason"`
}

// Plan is what an apply would do. Planning reads only; a Plan with no
// actions means the node is converged. No-op actions are never in a Plan.
type Plan struct {
	Instance       Instance         `json:"instance"`
	Identity       Identity         `json:"identity"`
	Serial         int64            `json:"serial"`
	PreviousSerial int64            `json:"previous_serial"`
	Files          []FileChange     `json:"files,omitempty"`
	Services       []ServiceAction  `json:"services,omitempty"`
	Releases       []ReleaseAction  `json:"releases,omitempty"`
	Lifecycle      *LifecycleAction `json:"lifecycle,omitempty"`
}

// Empty reports whether the plan changes nothing.
func (p *Plan) Empty() bool {
	return len(p.Files) == 0 && len(p.Services) == 0 && len(p.Releases) == 0 && p.Lifecycle == nil
}
