package render

import (
	"regexp"
	"strconv"
	"strings"
)

// The files are written by the functions below, not by text/template: the
// template engine's reflective method calls (reflect.Value.MethodByName)
// make the linker keep every exported method of every type in the binary,
// the S3 and Auto Scaling clients' unused operations among them, about 9 MB
// of a 21 MB binary. The templates in templates/ stay as the readable form
// and the test oracle: TestTextMatchesTemplates renders both for the same
// data and wants the same bytes.

// regex is an anchored regular expression matching exactly s.
func regex(s string) string { return "^" + regexp.QuoteMeta(s) + "$" }

func itoa(n int) string { return strconv.Itoa(n) }

type listenView struct {
	ListenData
	Address  string
	Implicit bool
}

func textApacheListen(d listenView) string {
	var b strings.Builder
	b.WriteString("# Managed by nodeagent: do not edit, changes are overwritten (from apache.port, apache.bind).")
	if d.Implicit {
		b.WriteString("\n# Apache listens on port 80 through the Listen directive of conf/httpd.conf.")
	} else {
		b.WriteString("\nListen " + d.Address)
	}
	b.WriteString("\n")
	return b.String()
}

type module struct{ Name, Path string }

type globalView struct {
	ApacheGlobalData
	ServerLimit int
	Modules     []module
}

func textApacheGlobal(d globalView) string {
	var b strings.Builder
	b.WriteString("# Managed by nodeagent: do not edit, changes are overwritten.\n\n" +
		"# Modules the nodeagent virtual hosts use, loaded here unless the platform\n" +
		"# loads them already.")
	for _, m := range d.Modules {
		b.WriteString("\n<IfModule !" + m.Name + ">\n    LoadModule " + m.Name + " " + m.Path + "\n</IfModule>")
	}
	sl, tpc, mrw := itoa(d.ServerLimit), itoa(d.ThreadsPerChild), itoa(d.MaxRequestWorkers)
	b.WriteString("\n\n# Worker sizing (apache.max_request_workers, or derived from the machine's memory).\n" +
		"<IfModule mpm_event_module>\n" +
		"    ServerLimit " + sl + "\n" +
		"    ThreadsPerChild " + tpc + "\n" +
		"    MaxRequestWorkers " + mrw + "\n" +
		"</IfModule>\n" +
		"<IfModule mpm_worker_module>\n" +
		"    ServerLimit " + sl + "\n" +
		"    ThreadsPerChild " + tpc + "\n" +
		"    MaxRequestWorkers " + mrw + "\n" +
		"</IfModule>\n" +
		"<IfModule mpm_prefork_module>\n" +
		"    ServerLimit " + mrw + "\n" +
		"    MaxRequestWorkers " + mrw + "\n" +
		"</IfModule>\n")
	return b.String()
}

// textHealth is the health check block of every virtual host.
func textHealth(h Health) string {
	re := regex(h.Path)
	return "    # Load balancer health check: 503 until " + h.ReadyFile + " exists, then 200.\n" +
		"    RewriteEngine On\n" +
		"    RewriteCond \"" + h.ReadyFile + "\" !-f\n" +
		"    RewriteRule \"" + re + "\" - [R=503,L]\n" +
		"    Alias \"" + h.Path + "\" \"" + h.ReadyFile + "\"\n" +
		"    # Granted for exactly this path (a <Location> would also grant\n" +
		"    # everything under it, and could override another module's Require).\n" +
		"    <LocationMatch \"" + re + "\">\n" +
		"        Require all granted\n" +
		"        ForceType text/plain\n" +
		"    </LocationMatch>\n" +
		"    SetEnvIf Request_URI \"" + re + "\" nodeagent_health"
}

type defaultVhostView struct {
	DefaultVhostData
	Address, ErrorLog, AccessLog string
}

func textDefaultVhost(d defaultVhostView) string {
	return "# Managed by nodeagent: do not edit, changes are overwritten (from health, apache.port, apache.bind).\n" +
		"# Catch-all virtual host, first by file name: it answers requests by IP,\n" +
		"# such as the load balancer's health check, and 404 for everything else.\n" +
		"<VirtualHost " + d.Address + ">\n" +
		"    ServerName nodeagent-default.invalid\n\n" +
		textHealth(d.Health) + "\n" +
		"    # Everything else: 404.\n" +
		"    RewriteRule \"!" + regex(d.Health.Path) + "\" - [R=404,L]\n\n" +
		"    ErrorLog " + d.ErrorLog + "\n" +
		"    CustomLog " + d.AccessLog + " combined env=!nodeagent_health\n" +
		"</VirtualHost>\n"
}

type vhostView struct {
	VhostData
	Address, ErrorLog, AccessLog, ProbePath string
}

func textProductVhost(d vhostView) string {
	var b strings.Builder
	b.WriteString("# Managed by nodeagent: do not edit, changes are overwritten (from products." + d.Product + ", health, apache).\n" +
		"<VirtualHost " + d.Address + ">\n" +
		"    ServerName " + d.ServerName)
	for _, a := range d.ServerAliases {
		b.WriteString("\n    ServerAlias " + a)
	}
	b.WriteString("\n    DocumentRoot \"" + d.DocumentRoot + "\"\n\n" +
		"    <Directory \"" + d.DocumentRoot + "\">\n" +
		"        Require all granted\n" +
		"        AllowOverride None\n" +
		"        Options FollowSymLinks\n" +
		"        DirectoryIndex index.php index.html\n" +
		"    </Directory>\n\n" +
		"    # PHP runs in the product's PHP-FPM pool.\n" +
		"    <FilesMatch \"\\.php$\">\n" +
		"        SetEnvIfNoCase ^Authorization$ \"(.+)\" HTTP_AUTHORIZATION=$1\n" +
		"        SetHandler \"proxy:unix:" + d.Socket + "|fcgi://localhost\"\n" +
		"    </FilesMatch>\n\n" +
		textHealth(d.Health) + "\n\n" +
		"    # PHP probe for the agent's smoke check: local clients only, run by this pool.\n" +
		"    Alias \"" + d.ProbePath + "\" \"" + d.ProbeFile + "\"\n" +
		"    <Location \"" + d.ProbePath + "\">\n" +
		"        Require local\n" +
		"    </Location>\n\n" +
		"    ErrorLog " + d.ErrorLog + "\n" +
		"    CustomLog " + d.AccessLog + " combined env=!nodeagent_health\n" +
		"</VirtualHost>\n")
	return b.String()
}

func textFPMPool(d PoolData) string {
	var b strings.Builder
	b.WriteString("; Managed by nodeagent: do not edit, changes are overwritten (from products." + d.Product + ").\n" +
		"[" + d.Product + "]\n" +
		"user = " + d.User + "\n" +
		"group = " + d.Group + "\n\n" +
		"listen = \"" + d.Listen + "\"\n" +
		"listen.owner = " + d.User + "\n" +
		"listen.group = " + d.Group + "\n" +
		"listen.mode = 0660\n\n" +
		"pm = dynamic\n" +
		"pm.max_children = " + itoa(d.MaxChildren) + "\n" +
		"pm.start_servers = " + itoa(d.StartServers) + "\n" +
		"pm.min_spare_servers = " + itoa(d.MinSpare) + "\n" +
		"pm.max_spare_servers = " + itoa(d.MaxSpare) + "\n" +
		"pm.max_requests = " + itoa(d.MaxRequests) + "\n\n" +
		"php_admin_value[memory_limit] = \"" + d.MemoryLimit + "\"\n" +
		"catch_workers_output = yes\n\n" +
		"; Environment of the workers (it carries secrets: this file is not world-readable).\n" +
		"clear_env = yes")
	for _, e := range d.Env {
		b.WriteString("\nenv[" + e.Name + "] = \"" + e.Value + "\"")
	}
	if d.SessionSavePath != "" {
		b.WriteString("\n\nphp_value[session.save_handler] = memcached\n" +
			"php_value[session.save_path] = \"" + d.SessionSavePath + "\"")
	}
	b.WriteString("\n")
	return b.String()
}

func textServer(s Server) string {
	return "['host' => " + PHPQuote(s.Host) + ", 'node' => " + PHPQuote(s.Node) + ", 'ip' => " + PHPQuote(s.IP) + ", 'port' => " + itoa(s.Port) + "]"
}

func textAppConfig(d AppConfigData) string {
	var b strings.Builder
	b.WriteString("<?php\n" +
		"// Managed by nodeagent: do not edit, changes are overwritten (from the product's database, cache, sessions and php.env, resolved to nodes and IPs).\n" +
		"return [\n" +
		"    'product' => " + PHPQuote(d.Product) + ",\n" +
		"    'database' => [\n" +
		"        'master' => " + textServer(d.DatabaseMaster) + ",\n" +
		"        'replicas' => [")
	if len(d.Replicas) > 0 {
		for _, s := range d.Replicas {
			b.WriteString("\n            " + textServer(s) + ",")
		}
		b.WriteString("\n        ")
	}
	b.WriteString("],\n" +
		"        'name' => " + PHPQuote(d.DatabaseName) + ",\n" +
		"    ],\n" +
		"    'cache' => [\n" +
		"        'servers' => [")
	if len(d.CacheServers) > 0 {
		for _, s := range d.CacheServers {
			b.WriteString("\n            " + textServer(s) + ",")
		}
		b.WriteString("\n        ")
	}
	b.WriteString("],\n" +
		"    ],\n" +
		"    'sessions' => " + PHPQuote(d.Sessions) + ",\n" +
		"    'env' => [")
	if len(d.Env) > 0 {
		for _, e := range d.Env {
			b.WriteString("\n        " + PHPQuote(e.Name) + " => " + PHPQuote(e.Value) + ",")
		}
		b.WriteString("\n    ")
	}
	b.WriteString("],\n];\n")
	return b.String()
}

func textFPMGlobal(processControlTimeout string) string {
	return "; Managed by nodeagent: do not edit, changes are overwritten.\n" +
		"; Global PHP-FPM settings nodeagent needs, included with the pools.\n" +
		"[global]\n" +
		"; A reload (SIGUSR2) lets running requests finish for up to this long\n" +
		"; instead of killing them, so a config change or a release switch drops\n" +
		"; no request.\n" +
		"process_control_timeout = " + processControlTimeout + "\n"
}

func textPHPProbe(output string) string {
	return "<?php\n" +
		"// Managed by nodeagent: do not edit, changes are overwritten. The agent's PHP smoke check.\n" +
		"echo '" + output + " ', PHP_VERSION;\n"
}

func textMemcachedDebian(d MemcachedData) string {
	return "# Managed by nodeagent: do not edit, changes are overwritten (from the role's memcached settings).\n" +
		"# memcached options, one per line, read by systemd-memcached-wrapper.\n" +
		"-m " + itoa(d.MemoryMB) + "\n" +
		"-p " + itoa(d.Port) + "\n" +
		"-u " + d.User + "\n" +
		"-l " + d.ListenIP + "\n" +
		"-c " + itoa(d.MaxConnections) + "\n" +
		"-U 0\n" +
		"-P " + d.PIDFile + "\n"
}

func textMemcachedRHEL(d MemcachedData) string {
	return "# Managed by nodeagent: do not edit, changes are overwritten (from the role's memcached settings).\n" +
		"PORT=\"" + itoa(d.Port) + "\"\n" +
		"USER=\"" + d.User + "\"\n" +
		"MAXCONN=\"" + itoa(d.MaxConnections) + "\"\n" +
		"CACHESIZE=\"" + itoa(d.MemoryMB) + "\"\n" +
		"OPTIONS=\"-l " + d.ListenIP + " -U 0\"\n"
}
