package roles

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/render"
	"github.com/nodeagent/nodeagent/topology"
)

// Input is what Desire derives a node from.
type Input struct {
	Instance    nodeagent.Instance
	Topology    *nodeagent.Topology // validated, defaults applied
	Identity    nodeagent.Identity
	ServiceRoot string // "/" in production; prefix for paths inside rendered files
	StateDir    string // host path of the state dir, e.g. "/var/lib/nodeagent"
}

// File modes and the paths nodeagent owns outside the platform layouts.
const (
	ModeConfig = 0o644 // configs without secrets, and the PHP probe
	ModeSecret = 0o640 // pools and app configs: they carry the product's env

	AppConfigDir = "/etc/nodeagent/products" // <dir>/<product>.php
	WebRoot      = "/var/www"                // <root>/<product>/{current,releases,shared}
)

// knownServices are the logical services a role may run.
var knownServices = []string{nodeagent.ServiceApache, nodeagent.ServicePHPFPM, nodeagent.ServiceMemcached}

// Desire derives everything the node should be: the /etc/hosts entries for
// every node, and per role service (apache, php-fpm, memcached) its files,
// the services in start order (memcached, php-fpm, apache: backends
// first) and the products served. Files are sorted by path.
func Desire(in Input) (*nodeagent.Desired, error) {
	t := in.Topology
	if t == nil {
		return nil, errors.New("roles: no topology")
	}
	role, ok := t.Roles[in.Identity.Role]
	if !ok {
		return nil, fmt.Errorf("roles: unknown role %q (roles: %s)", in.Identity.Role, strings.Join(slices.Sorted(maps.Keys(t.Roles)), ", "))
	}
	for _, p := range []struct{ name, value string }{{"service root", in.ServiceRoot}, {"state dir", in.StateDir}} {
		if !path.IsAbs(p.value) || path.Clean(p.value) != p.value {
			return nil, fmt.Errorf("roles: %s %q must be a clean absolute path", p.name, p.value)
		}
	}
	runs := map[string]bool{}
	for _, s := range role.Services {
		if !slices.Contains(knownServices, s) {
			return nil, fmt.Errorf("roles: roles.%s.services: unknown service %q (known: %s)", in.Identity.Role, s, strings.Join(knownServices, ", "))
		}
		runs[s] = true
	}
	web := runs[nodeagent.ServiceApache] && runs[nodeagent.ServicePHPFPM]
	if len(in.Identity.Products) > 0 && !web {
		return nil, fmt.Errorf("roles: role %s serves products but does not run both apache and php-fpm", in.Identity.Role)
	}
	lay, err := layoutFor(in.Instance, runs[nodeagent.ServicePHPFPM])
	if err != nil {
		return nil, err
	}
	hostEntries, err := hosts(t, in.Instance, in.Identity)
	if err != nil {
		return nil, err
	}

	b := &builder{in: in, t: t, role: role, lay: lay, runs: runs}
	b.d = &nodeagent.Desired{Identity: in.Identity, Hosts: hostEntries}
	steps := []struct {
		service string
		build   func() error
	}{
		{nodeagent.ServiceMemcached, b.memcached},
		{nodeagent.ServicePHPFPM, b.phpFPM},
		{nodeagent.ServiceApache, b.apache},
	}
	for _, s := range steps {
		if !runs[s.service] {
			continue
		}
		if err := s.build(); err != nil {
			return nil, err
		}
		unit, err := Unit(in.Instance, s.service)
		if err != nil {
			return nil, err
		}
		svc := nodeagent.Service{Name: s.service, Unit: unit, Reload: nodeagent.ActionReload, Checked: true}
		switch s.service {
		case nodeagent.ServiceMemcached:
			svc.Reload, svc.Checked = nodeagent.ActionRestart, false
		case nodeagent.ServicePHPFPM:
			svc.OnRelease = true
		}
		b.d.Services = append(b.d.Services, svc)
	}
	if web {
		if err := b.probe(); err != nil {
			return nil, err
		}
		b.d.WebUser, b.d.WebGroup = lay.webUser, lay.webUser
	}
	b.d.Local = local(in.Instance, t, role, runs)
	for _, p := range in.Identity.Products {
		pr := t.Products[p]
		b.d.Products = append(b.d.Products, nodeagent.DesiredProduct{
			Name:       p,
			ServerName: pr.ServerName,
			Release:    cloneRelease(pr.Release),
			Root:       path.Join(WebRoot, p),
			Smoke:      slices.Clone(pr.Smoke),
		})
	}
	slices.SortFunc(b.d.Files, func(a, b nodeagent.File) int { return strings.Compare(a.Path, b.Path) })
	return b.d, nil
}

// local is where the node's smoke checks reach its own services: Apache on
// loopback, or on the private IP when it listens only there; memcached on
// the private IP it listens on.
func local(inst nodeagent.Instance, t *nodeagent.Topology, role nodeagent.Role, runs map[string]bool) nodeagent.LocalEndpoints {
	var l nodeagent.LocalEndpoints
	if runs[nodeagent.ServiceApache] {
		host := "127.0.0.1"
		if t.Apache.Bind == nodeagent.BindPrivate && inst.PrivateIP != "" {
			host = inst.PrivateIP
		}
		l.HTTP = "http://" + net.JoinHostPort(host, strconv.Itoa(t.Apache.Port))
	}
	if runs[nodeagent.ServiceMemcached] && role.Memcached != nil { // the port is defaulted on load
		l.Memcached = net.JoinHostPort(inst.PrivateIP, strconv.Itoa(role.Memcached.Port))
	}
	return l
}

func cloneRelease(r *nodeagent.Release) *nodeagent.Release {
	if r == nil {
		return nil
	}
	c := *r
	return &c
}

// builder carries one Desire call.
type builder struct {
	in   Input
	t    *nodeagent.Topology
	role nodeagent.Role
	lay  layout
	runs map[string]bool
	d    *nodeagent.Desired
}

// svc is p as the node's services see it: under the service root.
func (b *builder) svc(p string) string { return path.Join(b.in.ServiceRoot, p) }

func (b *builder) add(f nodeagent.File) {
	slices.Sort(f.Sources)
	f.Sources = slices.Compact(f.Sources)
	b.d.Files = append(b.d.Files, f)
}

func (b *builder) rolePath(field string) string { return "roles." + b.in.Identity.Role + "." + field }

// memcachedMB is memcached's cache size on this node, in MiB (0 when the
// node runs no memcached): the document's memory_mb, else derived.
func (b *builder) memcachedMB() int {
	if !b.runs[nodeagent.ServiceMemcached] || b.role.Memcached == nil {
		return 0
	}
	if mb := b.role.Memcached.MemoryMB; mb > 0 {
		return mb
	}
	return MemcachedMemoryMB(b.in.Instance.MemoryBytes, b.runs[nodeagent.ServiceApache] || b.runs[nodeagent.ServicePHPFPM])
}

func (b *builder) memcached() error {
	m := b.role.Memcached
	if m == nil {
		return fmt.Errorf("roles: %s: missing although the role runs memcached (topology defaults not applied?)", b.rolePath("memcached"))
	}
	if b.in.Instance.PrivateIP == "" {
		return errors.New("roles: memcached: the instance has no private ip to listen on")
	}
	content, err := render.Memcached(render.MemcachedData{
		Platform:       b.in.Instance.OSFamily,
		MemoryMB:       b.memcachedMB(),
		Port:           m.Port,
		MaxConnections: m.MaxConnections,
		User:           b.lay.memcachedUser,
		ListenIP:       b.in.Instance.PrivateIP,
		PIDFile:        b.svc("/run/memcached/memcached.pid"),
	})
	if err != nil {
		return fmt.Errorf("roles: %s: %w", b.lay.memcached, err)
	}
	b.add(nodeagent.File{
		Path: b.lay.memcached, Content: content, Mode: ModeConfig,
		Services: []string{nodeagent.ServiceMemcached},
		Sources:  []string{b.rolePath("memcached")},
	})
	return nil
}

// resolve follows a node or alias name to its node, with the topology
// paths the answer depends on.
func (b *builder) resolve(field, name string, port int) (render.Server, []string, error) {
	node, sources := name, []string{"nodes." + name}
	if target, ok := b.t.Aliases[name]; ok {
		node, sources = target, []string{"aliases." + name, "nodes." + target}
	}
	n, ok := b.t.Nodes[node]
	if !ok {
		return render.Server{}, nil, fmt.Errorf("roles: %s: %q is neither a node nor an alias of one", field, name)
	}
	return render.Server{Host: name, Node: node, IP: n.IP, Port: port}, sources, nil
}

func (b *builder) socket(product string) string {
	return b.svc(path.Join(b.lay.socketDir, "nodeagent-"+product+".sock"))
}

func (b *builder) phpFPM() error {
	global, err := render.FPMGlobal()
	if err != nil {
		return fmt.Errorf("roles: php-fpm global settings: %w", err)
	}
	b.add(nodeagent.File{
		Path: path.Join(b.lay.poolDir, "00-nodeagent-global.conf"), Content: global, Mode: ModeConfig,
		Services: []string{nodeagent.ServicePHPFPM},
	})
	webMem := b.in.Instance.MemoryBytes - int64(b.memcachedMB())*MiB
	for _, p := range b.in.Identity.Products {
		pr, ok := b.t.Products[p]
		if !ok {
			return fmt.Errorf("roles: product %q is not in products", p)
		}
		pp := "products." + p
		for _, k := range topology.ReservedEnv { // refused by validation; kept as a guard
			if _, ok := pr.PHP.Env[k]; ok {
				return fmt.Errorf("roles: %s.php.env.%s: reserved, nodeagent sets it from the document", pp, k)
			}
		}
		// Cache servers are written as IP:port, resolved here from the
		// document: PHP then needs no name lookup per request, and the pool
		// does not depend on /etc/hosts being current in the workers.
		var cacheHosts, cacheSources []string
		if pr.Cache != nil {
			for i, n := range pr.Cache.Nodes {
				srv, srcs, err := b.resolve(fmt.Sprintf("%s.cache.nodes[%d]", pp, i), n, pr.Cache.Port)
				if err != nil {
					return err
				}
				cacheHosts = append(cacheHosts, net.JoinHostPort(srv.IP, strconv.Itoa(srv.Port)))
				cacheSources = append(cacheSources, srcs...)
			}
		}
		appEnv := make([]render.EnvVar, 0, len(pr.PHP.Env))
		for _, k := range slices.Sorted(maps.Keys(pr.PHP.Env)) {
			appEnv = append(appEnv, render.EnvVar{Name: k, Value: pr.PHP.Env[k]})
		}
		// PHP-FPM refuses env[X] = "": a variable whose value is empty (no
		// replicas, no cache, an empty php.env entry) is left unset in the
		// pool; the app config still lists it.
		var env []render.EnvVar
		for _, e := range append([]render.EnvVar{
			{Name: "DB_MASTER_HOST", Value: pr.Database.Master},
			{Name: "DB_REPLICA_HOSTS", Value: strings.Join(pr.Database.Replicas, ",")},
			{Name: "DB_NAME", Value: pr.Database.Name},
			{Name: "DB_PORT", Value: strconv.Itoa(pr.Database.Port)},
			{Name: "MEMCACHED_SERVERS", Value: strings.Join(cacheHosts, ",")},
			{Name: "NODEAGENT_CONFIG", Value: b.svc(path.Join(AppConfigDir, p+".php"))},
		}, appEnv...) {
			if e.Value != "" {
				env = append(env, e)
			}
		}

		poolSources := append([]string{pp + ".cache", pp + ".database", pp + ".php", pp + ".sessions"}, cacheSources...)
		maxChildren := pr.PHP.MaxChildren
		if maxChildren == 0 {
			maxChildren = PHPMaxChildren(webMem, len(b.in.Identity.Products))
			poolSources = append(poolSources, b.rolePath("products"))
			if b.runs[nodeagent.ServiceMemcached] {
				poolSources = append(poolSources, b.rolePath("memcached"))
			}
		}
		start, minSpare, maxSpare := PHPServers(maxChildren)
		pool := render.PoolData{
			Product: p, User: b.lay.webUser, Group: b.lay.webUser,
			Listen:      b.socket(p),
			MaxChildren: maxChildren, StartServers: start, MinSpare: minSpare, MaxSpare: maxSpare,
			MaxRequests: PHPMaxRequests,
			MemoryLimit: pr.PHP.MemoryLimit,
			Env:         env,
		}
		if pr.Sessions == nodeagent.SessionsMemcached {
			if len(cacheHosts) == 0 {
				return fmt.Errorf("roles: %s.sessions: memcached sessions need %s.cache.nodes", pp, pp)
			}
			pool.SessionSavePath = strings.Join(cacheHosts, ",")
		}
		poolPath := path.Join(b.lay.poolDir, "nodeagent-"+p+".conf")
		content, err := render.FPMPool(pool)
		if err != nil {
			return fmt.Errorf("roles: %s: %w", poolPath, err)
		}
		b.add(nodeagent.File{
			Path: poolPath, Content: content, Mode: ModeSecret, Group: b.lay.webUser,
			Services: []string{nodeagent.ServicePHPFPM}, Sources: poolSources,
		})

		if err := b.appConfig(p, pr, appEnv); err != nil {
			return err
		}
	}
	return nil
}

// appConfig renders the product's PHP app config, with every database and
// cache name resolved to its node and IP.
func (b *builder) appConfig(p string, pr nodeagent.Product, env []render.EnvVar) error {
	pp := "products." + p
	sources := []string{pp + ".cache", pp + ".database", pp + ".php.env", pp + ".sessions"}
	master, src, err := b.resolve(pp+".database.master", pr.Database.Master, pr.Database.Port)
	if err != nil {
		return err
	}
	sources = append(sources, src...)
	data := render.AppConfigData{
		Product: p, DatabaseMaster: master, DatabaseName: pr.Database.Name,
		Sessions: pr.Sessions, Env: env,
		Replicas: []render.Server{}, CacheServers: []render.Server{},
	}
	for i, r := range pr.Database.Replicas {
		s, src, err := b.resolve(fmt.Sprintf("%s.database.replicas[%d]", pp, i), r, pr.Database.Port)
		if err != nil {
			return err
		}
		data.Replicas = append(data.Replicas, s)
		sources = append(sources, src...)
	}
	if pr.Cache != nil {
		for i, n := range pr.Cache.Nodes {
			s, src, err := b.resolve(fmt.Sprintf("%s.cache.nodes[%d]", pp, i), n, pr.Cache.Port)
			if err != nil {
				return err
			}
			data.CacheServers = append(data.CacheServers, s)
			sources = append(sources, src...)
		}
	}
	file := path.Join(AppConfigDir, p+".php")
	content, err := render.AppConfig(data)
	if err != nil {
		return fmt.Errorf("roles: %s: %w", file, err)
	}
	b.add(nodeagent.File{
		Path: file, Content: content, Mode: ModeSecret, Group: b.lay.webUser,
		Services: []string{nodeagent.ServicePHPFPM}, Sources: sources,
	})
	return nil
}

func (b *builder) apache() error {
	a := b.t.Apache
	ip := ""
	if a.Bind == nodeagent.BindPrivate {
		ip = b.in.Instance.PrivateIP
		if ip == "" {
			return errors.New("roles: apache.bind: private, but the instance has no private ip")
		}
		if b.in.Instance.OSFamily == nodeagent.OSRHEL && a.Port == 80 {
			return errors.New("roles: apache.bind: private on port 80 clashes with \"Listen 80\" in /etc/httpd/conf/httpd.conf; remove that line from the image or use another apache.port")
		}
	}
	platform := b.in.Instance.OSFamily
	listenSources := []string{"apache.bind", "apache.port"}
	health := render.Health{Path: b.t.Health.Path, ReadyFile: b.svc(path.Join(b.in.StateDir, "health/ready"))}

	content, err := render.ApacheListen(render.ListenData{Platform: platform, Port: a.Port, IP: ip})
	if err != nil {
		return fmt.Errorf("roles: %s: %w", b.lay.apacheListen, err)
	}
	b.addApache(b.lay.apacheListen, content, listenSources)

	mrw := ApacheMaxRequestWorkers(b.in.Instance.MemoryBytes)
	if a.MaxRequestWorkers > 0 {
		mrw = (a.MaxRequestWorkers + ThreadsPerChild - 1) / ThreadsPerChild * ThreadsPerChild
	}
	content, err = render.ApacheGlobal(render.ApacheGlobalData{Platform: platform, MaxRequestWorkers: mrw, ThreadsPerChild: ThreadsPerChild})
	if err != nil {
		return fmt.Errorf("roles: %s: %w", b.lay.apacheGlobal, err)
	}
	b.addApache(b.lay.apacheGlobal, content, []string{"apache.max_request_workers"})

	content, err = render.DefaultVhost(render.DefaultVhostData{Platform: platform, IP: ip, Port: a.Port, Health: health})
	if err != nil {
		return fmt.Errorf("roles: %s: %w", b.lay.defaultVhost, err)
	}
	b.addApache(b.lay.defaultVhost, content, append(listenSources, "health"))

	for _, p := range b.in.Identity.Products {
		pr := b.t.Products[p]
		pp := "products." + p
		docroot := path.Join(WebRoot, p, "current")
		if pr.Docroot != "" {
			if path.IsAbs(pr.Docroot) || strings.HasPrefix(path.Clean(pr.Docroot), "..") {
				return fmt.Errorf("roles: %s.docroot: %q must stay inside the release", pp, pr.Docroot)
			}
			docroot = path.Join(docroot, pr.Docroot)
		}
		file := path.Join(b.lay.vhostDir, "nodeagent-"+p+".conf")
		content, err := render.ProductVhost(render.VhostData{
			Platform: platform, Product: p, IP: ip, Port: a.Port,
			ServerName: pr.ServerName, ServerAliases: pr.ServerAliases,
			DocumentRoot: b.svc(docroot),
			Socket:       b.socket(p),
			ProbeFile:    b.probeFile(),
			Health:       health,
		})
		if err != nil {
			return fmt.Errorf("roles: %s: %w", file, err)
		}
		b.addApache(file, content, append(listenSources, "health", pp+".docroot", pp+".server_aliases", pp+".server_name"))
	}
	return nil
}

func (b *builder) addApache(file string, content []byte, sources []string) {
	b.add(nodeagent.File{
		Path: file, Content: content, Mode: ModeConfig,
		Services: []string{nodeagent.ServiceApache}, Sources: slices.Clone(sources),
	})
}

// ProbeFile is the PHP probe's host path under the state dir.
func ProbeFile(stateDir string) string { return path.Join(stateDir, "probe/php-probe.php") }

func (b *builder) probeFile() string { return b.svc(ProbeFile(b.in.StateDir)) }

// probe adds the PHP probe file: fixed content, read per request, so no
// service needs a reload when it changes.
func (b *builder) probe() error {
	content, err := render.PHPProbe()
	if err != nil {
		return fmt.Errorf("roles: php probe: %w", err)
	}
	b.add(nodeagent.File{Path: ProbeFile(b.in.StateDir), Content: content, Mode: ModeConfig})
	return nil
}
