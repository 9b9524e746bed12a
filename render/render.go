package render

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/nodeagent/nodeagent"
)

// platform refuses an unknown OS family.
func (c *checker) platform(p string) {
	c.require(p == nodeagent.OSDebian || p == nodeagent.OSRHEL, "Platform",
		"unknown platform %q (want %s or %s): %w", p, nodeagent.OSDebian, nodeagent.OSRHEL, ErrUnsafe)
}

func (c *checker) port(field string, port int) {
	c.require(port >= 1 && port <= 65535, field, "port %d is not in 1-65535: %w", port, ErrUnsafe)
}

// ip checks an optional IP address ("" is allowed when optional).
func (c *checker) ip(field, ip string, optional bool) {
	if optional && ip == "" {
		return
	}
	_, err := netip.ParseAddr(ip)
	c.require(err == nil, field, "%q is not an IP address: %w", ip, ErrUnsafe)
}

// hostPort formats an address for Listen and <VirtualHost>: "*:80",
// "10.0.0.5:80", "[fd00::5]:80". ip "" means every address.
func hostPort(ip string, port int, wildcard string) string {
	if ip == "" {
		if wildcard == "" {
			return strconv.Itoa(port)
		}
		return wildcard + ":" + strconv.Itoa(port)
	}
	return netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(port)).String()
}

// ListenData is the input of ApacheListen: where Apache listens.
type ListenData struct {
	Platform string // nodeagent.OSDebian or nodeagent.OSRHEL
	Port     int
	IP       string // "" listens on every address; else only on this one
}

// ApacheListen renders the Listen directive: Debian's /etc/apache2/ports.conf
// or RHEL's /etc/httpd/conf.d/nodeagent-listen.conf. On RHEL, conf/httpd.conf
// already says "Listen 80", so port 80 on every address renders a comment
// only (the file is still managed, so a later port change never leaves a
// stale Listen behind).
func ApacheListen(d ListenData) ([]byte, error) {
	c := checker{file: "apache listen"}
	c.platform(d.Platform)
	c.port("Port", d.Port)
	c.ip("IP", d.IP, true)
	if c.err != nil {
		return nil, c.err
	}
	return []byte(textApacheListen(listenView{d, hostPort(d.IP, d.Port, ""), d.Platform == nodeagent.OSRHEL && d.IP == "" && d.Port == 80})), nil
}

// ApacheGlobalData is the input of ApacheGlobal: worker sizing.
type ApacheGlobalData struct {
	Platform          string
	MaxRequestWorkers int // a multiple of ThreadsPerChild
	ThreadsPerChild   int
}

// ApacheGlobal renders nodeagent.conf (Debian conf-enabled/, RHEL conf.d/):
// the modules the virtual hosts need, each loaded only when the platform
// does not load it already, and the MPM sizing for event and worker
// (ServerLimit = MaxRequestWorkers / ThreadsPerChild) and prefork.
func ApacheGlobal(d ApacheGlobalData) ([]byte, error) {
	c := checker{file: "apache global"}
	c.platform(d.Platform)
	c.require(d.ThreadsPerChild >= 1 && d.ThreadsPerChild <= 64, "ThreadsPerChild",
		"%d is not in 1-64 (the default ThreadLimit): %w", d.ThreadsPerChild, ErrUnsafe)
	c.require(d.MaxRequestWorkers >= 1 && d.ThreadsPerChild > 0 && d.MaxRequestWorkers%max(d.ThreadsPerChild, 1) == 0,
		"MaxRequestWorkers", "%d is not a positive multiple of ThreadsPerChild %d: %w", d.MaxRequestWorkers, d.ThreadsPerChild, ErrUnsafe)
	if c.err != nil {
		return nil, c.err
	}
	var mods []module
	for _, m := range []string{"alias", "authz_core", "authz_host", "dir", "proxy", "proxy_fcgi", "rewrite", "setenvif"} {
		p := "modules/mod_" + m + ".so"
		if d.Platform == nodeagent.OSDebian {
			p = "/usr/lib/apache2/modules/mod_" + m + ".so"
		}
		mods = append(mods, module{m + "_module", p})
	}
	return []byte(textApacheGlobal(globalView{d, d.MaxRequestWorkers / d.ThreadsPerChild, mods})), nil
}

// Health is the load balancer health check every virtual host answers:
// Path answers 503 while ReadyFile does not exist, else serves ReadyFile.
type Health struct {
	Path      string // "/nodeagent-health"
	ReadyFile string // "<service root><state dir>/health/ready"
}

func (c *checker) health(h Health) {
	c.check("Health.Path", h.Path, ApacheToken)
	c.require(len(h.Path) > 1 && h.Path[0] == '/', "Health.Path", "%q must start with / and name a path: %w", h.Path, ErrUnsafe)
	c.check("Health.ReadyFile", h.ReadyFile, ApacheToken)
}

// logs returns the error and access log paths of a virtual host.
func logs(platform, name string) (string, string) {
	dir := "logs"
	if platform == nodeagent.OSDebian {
		dir = "${APACHE_LOG_DIR}"
	}
	return dir + "/nodeagent-" + name + "-error.log", dir + "/nodeagent-" + name + "-access.log"
}

// DefaultVhostData is the input of DefaultVhost.
type DefaultVhostData struct {
	Platform string
	IP       string // "" for every address (*)
	Port     int
	Health   Health
}

// DefaultVhost renders the catch-all virtual host, first by file name so
// that it answers requests by IP (the load balancer's health check): the
// health path, and 404 for everything else.
func DefaultVhost(d DefaultVhostData) ([]byte, error) {
	c := checker{file: "apache default vhost"}
	c.platform(d.Platform)
	c.ip("IP", d.IP, true)
	c.port("Port", d.Port)
	c.health(d.Health)
	if c.err != nil {
		return nil, c.err
	}
	errLog, accessLog := logs(d.Platform, "default")
	return []byte(textDefaultVhost(defaultVhostView{d, hostPort(d.IP, d.Port, "*"), errLog, accessLog})), nil
}

// VhostData is the input of ProductVhost.
type VhostData struct {
	Platform      string
	Product       string
	IP            string // "" for every address (*)
	Port          int
	ServerName    string
	ServerAliases []string
	DocumentRoot  string // <service root>/var/www/<p>/current[/<docroot>]
	Socket        string // the product's PHP-FPM socket
	ProbeFile     string // <service root><state dir>/probe/php-probe.php
	Health        Health
}

// ProbePath is the URL path of the PHP probe in every product vhost,
// answered for local clients only.
const ProbePath = "/.nodeagent/php-probe.php"

// ProductVhost renders one product's virtual host: its names, document
// root, PHP through the product's PHP-FPM pool, the health check and the
// PHP probe.
func ProductVhost(d VhostData) ([]byte, error) {
	c := checker{file: "apache vhost " + d.Product}
	c.platform(d.Platform)
	c.check("Product", d.Product, ApacheToken)
	c.ip("IP", d.IP, true)
	c.port("Port", d.Port)
	c.check("ServerName", d.ServerName, ApacheToken)
	c.each("ServerAliases", d.ServerAliases, ApacheToken)
	c.check("DocumentRoot", d.DocumentRoot, ApacheToken)
	c.check("Socket", d.Socket, ApacheToken)
	c.check("Socket", d.Socket, func(s string) error {
		if strings.ContainsRune(s, '|') {
			return fmt.Errorf("%q: contains '|': %w", s, ErrUnsafe)
		}
		return nil
	})
	c.check("ProbeFile", d.ProbeFile, ApacheToken)
	c.health(d.Health)
	if c.err != nil {
		return nil, c.err
	}
	errLog, accessLog := logs(d.Platform, d.Product)
	return []byte(textProductVhost(vhostView{d, hostPort(d.IP, d.Port, "*"), errLog, accessLog, ProbePath})), nil
}

// EnvVar is one environment variable of a pool or an app config.
type EnvVar struct {
	Name  string
	Value string
}

// PoolData is the input of FPMPool.
type PoolData struct {
	Product     string
	User, Group string // the pool's and the socket's owner (the web server's user)
	Listen      string // socket path
	// Process manager (pm = dynamic); FPM's own rules apply:
	// MinSpare <= StartServers <= MaxSpare <= MaxChildren.
	MaxChildren, StartServers, MinSpare, MaxSpare, MaxRequests int
	MemoryLimit                                                string
	Env                                                        []EnvVar // in file order; no empty values
	// SessionSavePath, when set, stores sessions in memcached
	// ("cache-1:11211,cache-2:11211"); empty keeps PHP's file sessions.
	SessionSavePath string
}

// FPMPool renders one product's PHP-FPM pool.
func FPMPool(d PoolData) ([]byte, error) {
	c := checker{file: "php-fpm pool " + d.Product}
	c.check("Product", d.Product, FPMKey)
	c.check("User", d.User, FPMKey)
	c.check("Group", d.Group, FPMKey)
	c.check("Listen", d.Listen, FPMValue)
	c.require(d.MaxChildren >= 1, "MaxChildren", "%d must be at least 1: %w", d.MaxChildren, ErrUnsafe)
	c.require(d.MinSpare >= 1 && d.MinSpare <= d.MaxSpare && d.MaxSpare <= d.MaxChildren, "MaxSpare",
		"spare servers %d-%d must satisfy 1 <= min <= max <= max_children %d: %w", d.MinSpare, d.MaxSpare, d.MaxChildren, ErrUnsafe)
	c.require(d.StartServers >= d.MinSpare && d.StartServers <= d.MaxSpare, "StartServers",
		"%d must be between the spare servers %d and %d: %w", d.StartServers, d.MinSpare, d.MaxSpare, ErrUnsafe)
	c.require(d.MaxRequests >= 0, "MaxRequests", "%d must not be negative: %w", d.MaxRequests, ErrUnsafe)
	c.check("MemoryLimit", d.MemoryLimit, FPMValue)
	for i, e := range d.Env {
		c.check(fmt.Sprintf("Env[%d].Name", i), e.Name, FPMKey)
		c.check(fmt.Sprintf("Env[%s]", e.Name), e.Value, FPMValue)
	}
	if d.SessionSavePath != "" {
		c.check("SessionSavePath", d.SessionSavePath, FPMValue)
	}
	if c.err != nil {
		return nil, c.err
	}
	return []byte(textFPMPool(d)), nil
}

// Server is a database or memcached server as the app config lists it: the
// name as the document wrote it, the node it resolved to, and its address.
type Server struct {
	Host string // name as written: "dbserver"
	Node string // node it resolved to: "db-a"
	IP   string
	Port int
}

// AppConfigData is the input of AppConfig.
type AppConfigData struct {
	Product        string
	DatabaseMaster Server
	Replicas       []Server
	DatabaseName   string
	CacheServers   []Server
	Sessions       string
	Env            []EnvVar
}

// AppConfig renders /etc/nodeagent/products/<p>.php, a PHP file returning
// the product's settings as an array, every string single-quoted.
func AppConfig(d AppConfigData) ([]byte, error) {
	c := checker{file: "app config " + d.Product}
	c.check("Product", d.Product, PHPString)
	server := func(field string, s Server) {
		c.check(field+".Host", s.Host, PHPString)
		c.check(field+".Node", s.Node, PHPString)
		c.ip(field+".IP", s.IP, false)
		c.port(field+".Port", s.Port)
	}
	server("DatabaseMaster", d.DatabaseMaster)
	for i, s := range d.Replicas {
		server(fmt.Sprintf("Replicas[%d]", i), s)
	}
	c.check("DatabaseName", d.DatabaseName, PHPString)
	for i, s := range d.CacheServers {
		server(fmt.Sprintf("CacheServers[%d]", i), s)
	}
	c.check("Sessions", d.Sessions, PHPString)
	for i, e := range d.Env {
		c.check(fmt.Sprintf("Env[%d].Name", i), e.Name, PHPString)
		c.check(fmt.Sprintf("Env[%s]", e.Name), e.Value, PHPString)
	}
	if c.err != nil {
		return nil, c.err
	}
	return []byte(textAppConfig(d)), nil
}

// ProbeOutput is what the PHP probe prints first; the smoke check expects it.
const ProbeOutput = "nodeagent-php-ok"

// FPMGlobal renders the global PHP-FPM settings nodeagent relies on (a
// graceful reload), as a file included from the pool directory.
func FPMGlobal() ([]byte, error) {
	return []byte(textFPMGlobal("10s")), nil
}

// PHPProbe renders the PHP probe file: it prints ProbeOutput and the PHP
// version.
func PHPProbe() ([]byte, error) {
	return []byte(textPHPProbe(ProbeOutput)), nil
}

// MemcachedData is the input of Memcached.
type MemcachedData struct {
	Platform       string
	MemoryMB       int
	Port           int
	MaxConnections int
	User           string
	ListenIP       string
	PIDFile        string // Debian only: memcached's -P
}

// Memcached renders Debian's /etc/memcached.conf (one option per line, read
// by systemd-memcached-wrapper) or RHEL's /etc/sysconfig/memcached (the
// unit's environment file). UDP is off (-U 0): it only serves amplification
// attacks.
func Memcached(d MemcachedData) ([]byte, error) {
	c := checker{file: "memcached"}
	c.platform(d.Platform)
	c.require(d.MemoryMB >= 1, "MemoryMB", "%d must be at least 1: %w", d.MemoryMB, ErrUnsafe)
	c.port("Port", d.Port)
	c.require(d.MaxConnections >= 1, "MaxConnections", "%d must be at least 1: %w", d.MaxConnections, ErrUnsafe)
	c.check("User", d.User, MemcachedArg)
	c.check("ListenIP", d.ListenIP, MemcachedArg)
	c.ip("ListenIP", d.ListenIP, false)
	if d.Platform == nodeagent.OSDebian {
		c.check("PIDFile", d.PIDFile, MemcachedArg)
	}
	if c.err != nil {
		return nil, c.err
	}
	if d.Platform == nodeagent.OSRHEL {
		return []byte(textMemcachedRHEL(d)), nil
	}
	return []byte(textMemcachedDebian(d)), nil
}
