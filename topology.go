package nodeagent

// Topology is the topology document, schema 1 (SPEC section 3). It says which
// server does what across the fleet. The topology package decodes it strictly
// and validates it; these types only carry it.
type Topology struct {
	Schema   int                `json:"schema"`
	Serial   int64              `json:"serial"`
	Domain   string             `json:"domain,omitempty"`
	Nodes    map[string]Node    `json:"nodes"`
	Aliases  map[string]string  `json:"aliases,omitempty"`
	Groups   map[string]Group   `json:"groups,omitempty"`
	Roles    map[string]Role    `json:"roles"`
	Products map[string]Product `json:"products,omitempty"`
	Health   Health             `json:"health"`
	Apache   ApacheSettings     `json:"apache"`
	// Fleet is where the fleet's operator side lives; nil means no node
	// reports.
	Fleet *Fleet `json:"fleet,omitempty"`
}

// Fleet configures the fleet's operator side (SPEC section 11).
type Fleet struct {
	// Reports is the S3 prefix every agent writes its report under, as
	// "s3://bucket/prefix/" (ending in "/"): <prefix><instance-id>.json.
	Reports string `json:"reports,omitempty"`
}

// Node is one named server of the fleet (a database, a cache node, a pinned
// web server). Auto Scaling web servers are usually not listed: they find
// their role through their group.
type Node struct {
	IP         string `json:"ip"`
	Role       string `json:"role"`
	AZ         string `json:"az,omitempty"`
	InstanceID string `json:"instance_id,omitempty"`
}

// Group maps an Auto Scaling group to a role and its lifecycle hooks.
type Group struct {
	Role          string `json:"role"`
	LaunchHook    string `json:"launch_hook,omitempty"`
	TerminateHook string `json:"terminate_hook,omitempty"`
}

// Role says what a node of that role runs.
type Role struct {
	// Services are logical service names: ServiceApache, ServicePHPFPM,
	// ServiceMemcached.
	Services  []string           `json:"services"`
	Products  []string           `json:"products,omitempty"`
	Memcached *MemcachedSettings `json:"memcached,omitempty"`
}

// MemcachedSettings configure the memcached service of a role. Zero values
// mean "derive": MemoryMB from the machine's memory, Port 11211,
// MaxConnections 1024.
type MemcachedSettings struct {
	MemoryMB       int `json:"memory_mb"`
	Port           int `json:"port,omitempty"`
	MaxConnections int `json:"max_connections,omitempty"`
}

// Product is one PHP web application served by web nodes.
type Product struct {
	ServerName    string       `json:"server_name"`
	ServerAliases []string     `json:"server_aliases,omitempty"`
	Docroot       string       `json:"docroot,omitempty"` // relative to the release root
	Release       *Release     `json:"release,omitempty"`
	Database      Database     `json:"database"`
	Cache         *Cache       `json:"cache,omitempty"`
	Sessions      string       `json:"sessions,omitempty"` // SessionsMemcached or SessionsFiles (default)
	PHP           PHPSettings  `json:"php"`
	Smoke         []SmokeCheck `json:"smoke,omitempty"`
}

// Session handlers a product may ask for.
const (
	SessionsFiles     = "files"
	SessionsMemcached = "memcached"
)

// Release names a code release archive (a .tar.gz) and its checksum.
type Release struct {
	ID     string `json:"id"`
	URL    string `json:"url"`
	SHA256 string `json:"sha256"`
}

// Database names a product's database servers by node or alias name.
type Database struct {
	Master   string   `json:"master"`
	Replicas []string `json:"replicas,omitempty"`
	Name     string   `json:"name"`
	Port     int      `json:"port,omitempty"` // default 3306
}

// Cache names a product's memcached nodes by node or alias name.
type Cache struct {
	Nodes []string `json:"nodes"`
	Port  int      `json:"port,omitempty"` // default 11211
}

// PHPSettings tune a product's PHP-FPM pool. MaxChildren 0 means "size from
// the machine's memory".
type PHPSettings struct {
	MemoryLimit string            `json:"memory_limit,omitempty"` // default "128M"
	MaxChildren int               `json:"max_children,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
}

// SmokeCheck is an HTTP check run through the local Apache with the
// product's Host header.
type SmokeCheck struct {
	Name     string `json:"name"`
	Path     string `json:"path"`
	Status   int    `json:"status,omitempty"` // default 200; a redirect (301, 302, …) is a status like any other: never followed
	Contains string `json:"contains,omitempty"`
	// Location is the Location header a redirect must carry (only with a
	// 3xx status), e.g. "https://www.shop.example/".
	Location     string `json:"location,omitempty"`
	MaxLatencyMS int    `json:"max_latency_ms,omitempty"`
}

// Health configures the load balancer health check path served by Apache.
type Health struct {
	Path string `json:"path,omitempty"` // default "/nodeagent-health"
}

// ApacheSettings configure Apache fleet-wide. MaxRequestWorkers 0 means
// "size from the machine's memory".
type ApacheSettings struct {
	Port              int `json:"port,omitempty"` // default 80
	MaxRequestWorkers int `json:"max_request_workers,omitempty"`
	// Bind is where Apache listens: BindAll (default, every address) or
	// BindPrivate (only the instance's private IP, as when several
	// simulated instances share one host).
	Bind string `json:"bind,omitempty"`
}

// Apache bind modes.
const (
	BindAll     = "all"
	BindPrivate = "private"
)

// Logical service names used in Role.Services.
const (
	ServiceApache    = "apache"
	ServicePHPFPM    = "php-fpm"
	ServiceMemcached = "memcached"
)
