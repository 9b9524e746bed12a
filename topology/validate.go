package topology

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/nodeagent/nodeagent"
)

// Upper bounds: beyond them a number is a typo (or an attack) rather than
// a choice, and would render a config that the service refuses or that
// exhausts the machine. README (Security) lists them.
const (
	// MaxSerial is 2^53-1, the largest integer every JSON reader (jq,
	// JavaScript) holds exactly.
	MaxSerial = 1<<53 - 1
	// MaxMemcachedMB is 1 TiB of cache.
	MaxMemcachedMB = 1 << 20
	// MaxMemcachedConnections is memcached's -c; 65,536 is far above what
	// one memcached process serves and keeps its per-connection buffers
	// bounded.
	MaxMemcachedConnections = 65536
	// MaxPHPChildren bounds pm.max_children of one pool: at the smallest
	// PHP worker (about 32 MiB) 4,096 children are 128 GiB.
	MaxPHPChildren = 4096
	// MaxApacheWorkers bounds MaxRequestWorkers: 20,000 threads are 800
	// event-MPM processes of 25 threads (Apache's own ceiling is 20,000
	// processes).
	MaxApacheWorkers = 20000
	// MaxLatencyMS bounds a smoke check's max_latency_ms: 10 minutes.
	MaxLatencyMS = 600000
	// MaxPort is the largest TCP port.
	MaxPort = 65535

	maxShown = 64 // characters of a bad value quoted in a message
)

// Validate checks a decoded document against every rule of SPEC section 3
// and reports all problems at once as *Errors, sorted by path. It does not
// apply defaults: a zero port or status means "default" and is valid.
func Validate(t *nodeagent.Topology) error {
	if t == nil {
		return &Errors{{Reason: "no document"}}
	}
	v := &validator{t: t}
	v.header()
	v.nodes()
	v.aliases()
	v.groups()
	v.roles()
	v.products()
	v.health()
	v.apache()
	v.fleet()
	v.text()
	return v.c.err()
}

// text refuses control characters, bidirectional controls and invalid
// UTF-8 in every string of the document (values and map keys), including
// those no rule above looks at: any of them may reach a rendered file, a log
// line or an operator's terminal. A string already reported is not
// reported twice. The walk builds a path only for a string it reports.
func (v *validator) text() {
	w := textWalker{v: v}
	if len(v.c.errs) > 0 {
		w.reported = make(map[string]bool, len(v.c.errs))
		for _, e := range v.c.errs {
			w.reported[e.Path] = true
		}
	}
	w.walk(reflect.ValueOf(v.t).Elem())
}

// textWalker is one text check: the path to the current value is the
// stack of segments, each a field or key name, or a list index (key "",
// index >= 0).
type textWalker struct {
	v        *validator
	reported map[string]bool
	segs     []textSeg
}

type textSeg struct {
	key   string
	index int
}

func (w *textWalker) path() string {
	p := ""
	for _, s := range w.segs {
		if s.index >= 0 {
			p = index(p, s.index)
		} else {
			p = join(p, s.key)
		}
	}
	return p
}

func (w *textWalker) check(s, what string) {
	if controlFree(s) {
		return
	}
	p := w.path()
	if w.reported[p] {
		return
	}
	if w.reported == nil {
		w.reported = map[string]bool{}
	}
	w.reported[p] = true
	w.v.add(p, "%s must not contain control characters (newline, CR, NUL, DEL), bidirectional controls (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F) or invalid UTF-8, got %s", what, show(s))
}

func (w *textWalker) push(key string, i int) { w.segs = append(w.segs, textSeg{key: key, index: i}) }
func (w *textWalker) pop()                   { w.segs = w.segs[:len(w.segs)-1] }

func (w *textWalker) walk(rv reflect.Value) {
	switch rv.Kind() {
	case reflect.String:
		w.check(rv.String(), "value")
	case reflect.Pointer:
		if !rv.IsNil() {
			w.walk(rv.Elem())
		}
	case reflect.Struct:
		t := rv.Type()
		fields := textFields(t)
		for i, name := range fields {
			if name == "" {
				continue
			}
			w.push(name, -1)
			w.walk(rv.Field(i))
			w.pop()
		}
	case reflect.Slice:
		for i := range rv.Len() {
			w.push("", i)
			w.walk(rv.Index(i))
			w.pop()
		}
	case reflect.Map:
		if rv.Len() == 0 {
			return
		}
		k := reflect.New(rv.Type().Key()).Elem()
		e := reflect.New(rv.Type().Elem()).Elem()
		for it := rv.MapRange(); it.Next(); {
			k.SetIterKey(it)
			e.SetIterValue(it)
			w.push(k.String(), -1)
			w.check(k.String(), "name")
			w.walk(e)
			w.pop()
		}
	}
}

// textFields returns the JSON names of a struct type's fields ("" for a
// field the document does not have), computed once per type.
func textFields(t reflect.Type) []string {
	if f, ok := textFieldCache.Load(t); ok {
		return f.([]string)
	}
	names := make([]string, t.NumField())
	for i := range names {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "-" && t.Field(i).IsExported() {
			names[i] = name
		}
	}
	textFieldCache.Store(t, names)
	return names
}

var textFieldCache sync.Map // reflect.Type -> []string

type validator struct {
	t *nodeagent.Topology
	c collector
}

func (v *validator) add(path, format string, args ...any) {
	v.c.add(path, fmt.Sprintf(format, args...))
}

// show quotes a value for a message, shortened and with every control
// character escaped.
func show(s string) string {
	if len(s) > maxShown {
		s = s[:maxShown] + "…"
	}
	return strconv.Quote(s)
}

// names lists a map's keys for "unknown role "x" (known: a, b)".
func names[V any](m map[string]V) string {
	if len(m) == 0 {
		return "none defined"
	}
	return "known: " + strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}

func (v *validator) header() {
	t := v.t
	if t.Schema != 1 {
		v.add("schema", "must be 1, got %d", t.Schema)
	}
	switch {
	case t.Serial == 0:
		v.add("serial", "missing or 0; must be a positive number that grows with every change")
	case t.Serial < 0 || t.Serial > MaxSerial:
		v.add("serial", "must be from 1 to %d, got %d", int64(MaxSerial), t.Serial)
	}
	switch {
	case t.Domain == "":
	case !isDNSName(t.Domain):
		v.add("domain", "%s, got %s", reasonDNSName, show(t.Domain))
	case len(t.Domain) > maxDomain:
		v.add("domain", "must be %d characters at most, so that every host name plus the domain (an instance id is up to %d) fits in 253, got %d", maxDomain, maxInstanceID, len(t.Domain))
	case t.Domain == "localhost" || strings.HasSuffix(t.Domain, ".localhost"):
		v.add("domain", "%s is reserved for loopback names (RFC 6761); every name under it would mean this machine", show(t.Domain))
	}
}

// Host name lengths in /etc/hosts: a name plus "." plus the domain is 253
// characters at most, and a node that is not listed is named by its
// instance id (i- and up to 17 hex digits).
const (
	maxInstanceID = 19
	maxDomain     = 253 - 1 - maxInstanceID
)

// reservedHosts are the names a stock /etc/hosts (Debian, RHEL, macOS) gives
// to loopback and IPv6 multicast addresses; a node or alias with one of
// these names would send traffic for it elsewhere (or this machine's own
// traffic to another node).
var reservedHosts = []string{
	"localhost", "localhost.localdomain", "localhost4", "localhost6", "localdomain",
	"broadcasthost", "ip6-localhost", "ip6-loopback", "ip6-localnet", "ip6-mcastprefix",
	"ip6-allnodes", "ip6-allrouters", "ip6-allhosts",
}

// hostName checks a node or alias name as it appears in /etc/hosts: not a
// reserved name, and with the domain still a valid host name.
func (v *validator) hostName(p, name, what string) {
	if slices.Contains(reservedHosts, name) {
		v.add(p, "%s name %s is reserved for this machine's own addresses in /etc/hosts (%s); choose another name", what, name, strings.Join(reservedHosts, ", "))
		return
	}
	if d := v.t.Domain; d != "" && isLabel(name) && len(name)+1+len(d) > 253 {
		v.add(p, "%s.%s is %d characters; a host name is 253 at most: shorten the name or the domain", name, d, len(name)+1+len(d))
	}
}

func (v *validator) nodes() {
	owner := map[string]string{} // instance id -> node path
	for _, name := range slices.Sorted(maps.Keys(v.t.Nodes)) {
		n := v.t.Nodes[name]
		p := join("nodes", name)
		if !isLabel(name) {
			v.add(p, "node name %s", reasonLabel)
		}
		v.hostName(p, name, "node")
		v.ip(join(p, "ip"), n.IP)
		v.roleRef(join(p, "role"), n.Role)
		if n.InstanceID != "" {
			switch {
			case !isInstanceID(n.InstanceID):
				v.add(join(p, "instance_id"), "must look like i-0123456789abcdef0 (i- and 8-17 lowercase hex digits), got %s", show(n.InstanceID))
			case owner[n.InstanceID] != "":
				v.add(join(p, "instance_id"), "%s is also the instance id of %s", n.InstanceID, owner[n.InstanceID])
			default:
				owner[n.InstanceID] = p
			}
		}
		if n.AZ != "" && !isAZ(n.AZ) {
			v.add(join(p, "az"), "must be an availability zone such as us-east-1a, got %s", show(n.AZ))
		}
	}
}

func (v *validator) ip(p, ip string) {
	if ip == "" {
		v.add(p, "missing; must be an IPv4 or IPv6 address")
		return
	}
	a, err := netip.ParseAddr(ip)
	switch {
	case err != nil || a.Zone() != "":
		v.add(p, "must be an IPv4 or IPv6 address without a zone, got %s", show(ip))
	case a.IsUnspecified() || a.IsMulticast():
		v.add(p, "must be a unicast address, got %s", ip)
	}
}

func (v *validator) roleRef(p, role string) {
	if role == "" {
		v.add(p, "missing; must name a role (%s)", names(v.t.Roles))
		return
	}
	if _, ok := v.t.Roles[role]; !ok {
		v.add(p, "unknown role %s (%s)", show(role), names(v.t.Roles))
	}
}

func (v *validator) aliases() {
	for _, name := range slices.Sorted(maps.Keys(v.t.Aliases)) {
		target := v.t.Aliases[name]
		p := join("aliases", name)
		if !isLabel(name) {
			v.add(p, "alias name %s", reasonLabel)
		}
		v.hostName(p, name, "alias")
		if _, ok := v.t.Nodes[name]; ok {
			v.add(p, "%s is both a node and an alias; rename one", name)
		}
		_, isNode := v.t.Nodes[target]
		_, isAlias := v.t.Aliases[target]
		switch {
		case target == "":
			v.add(p, "must name a node")
		case isNode:
		case isAlias:
			v.add(p, "points at alias %s; an alias must point at a node", show(target))
		default:
			v.add(p, "points at unknown node %s (%s)", show(target), names(v.t.Nodes))
		}
	}
}

func (v *validator) groups() {
	for _, name := range slices.Sorted(maps.Keys(v.t.Groups)) {
		g := v.t.Groups[name]
		p := join("groups", name)
		if !isAWSName(name) {
			v.add(p, "Auto Scaling group name %s", reasonAWSName)
		}
		v.roleRef(join(p, "role"), g.Role)
		if g.LaunchHook != "" && !isAWSName(g.LaunchHook) {
			v.add(join(p, "launch_hook"), "lifecycle hook name %s, got %s", reasonAWSName, show(g.LaunchHook))
		}
		if g.TerminateHook != "" && !isAWSName(g.TerminateHook) {
			v.add(join(p, "terminate_hook"), "lifecycle hook name %s, got %s", reasonAWSName, show(g.TerminateHook))
		}
	}
}

var knownServices = []string{nodeagent.ServiceApache, nodeagent.ServicePHPFPM, nodeagent.ServiceMemcached}

func (v *validator) roles() {
	for _, name := range slices.Sorted(maps.Keys(v.t.Roles)) {
		r := v.t.Roles[name]
		p := join("roles", name)
		if !isLabel(name) {
			v.add(p, "role name %s", reasonLabel)
		}
		seen := map[string]bool{}
		for i, s := range r.Services {
			sp := index(join(p, "services"), i)
			switch {
			case !slices.Contains(knownServices, s):
				v.add(sp, "unknown service %s (known: %s)", show(s), strings.Join(knownServices, ", "))
			case seen[s]:
				v.add(sp, "%s is listed twice", s)
			}
			seen[s] = true
		}
		if len(r.Products) > 0 && !(seen[nodeagent.ServiceApache] && seen[nodeagent.ServicePHPFPM]) {
			v.add(join(p, "products"), "a role that serves products must run apache and php-fpm")
		}
		listed := map[string]bool{}
		for i, prod := range r.Products {
			pp := index(join(p, "products"), i)
			if _, ok := v.t.Products[prod]; !ok {
				v.add(pp, "unknown product %s (%s)", show(prod), names(v.t.Products))
			} else if listed[prod] {
				v.add(pp, "%s is listed twice", prod)
			}
			listed[prod] = true
		}
		if m := r.Memcached; m != nil {
			mp := join(p, "memcached")
			if !seen[nodeagent.ServiceMemcached] {
				v.add(mp, "memcached settings on a role that does not run memcached; add memcached to services or remove them")
			}
			if m.MemoryMB < 0 || m.MemoryMB > MaxMemcachedMB {
				v.add(join(mp, "memory_mb"), "must be 0 (size from the machine's memory) up to %d, got %d", MaxMemcachedMB, m.MemoryMB)
			}
			v.port(join(mp, "port"), m.Port)
			if m.MaxConnections < 0 || m.MaxConnections > MaxMemcachedConnections {
				v.add(join(mp, "max_connections"), "must be 0 (default 1024) up to %d, got %d", MaxMemcachedConnections, m.MaxConnections)
			}
		}
	}
}

// port checks a port number where 0 means "the default".
func (v *validator) port(p string, port int) {
	if port < 0 || port > MaxPort {
		v.add(p, "must be a port from 1 to %d (or absent for the default), got %d", MaxPort, port)
	}
}

// runs reports whether role runs service.
func (v *validator) runs(role, service string) bool {
	return slices.Contains(v.t.Roles[role].Services, service)
}

// ref is how a node-or-alias reference resolves.
type ref int

const (
	refNode    ref = iota // a node, or an alias of one
	refUnknown            // neither a node nor an alias
	refBroken             // an alias that is itself wrong (reported at aliases.<name>)
)

// node resolves a node or alias name to a node name.
func (v *validator) node(name string) (string, ref) {
	if _, ok := v.t.Nodes[name]; ok {
		return name, refNode
	}
	target, ok := v.t.Aliases[name]
	if !ok {
		return "", refUnknown
	}
	if _, ok := v.t.Nodes[target]; !ok {
		return "", refBroken
	}
	return target, refNode
}

func (v *validator) products() {
	claimed := map[string]string{} // host name -> path that claimed it first
	claim := func(p, host string) {
		if first, ok := claimed[host]; ok {
			v.add(p, "%s is already claimed by %s; two virtual hosts cannot share a name", host, first)
			return
		}
		claimed[host] = p
	}
	for _, name := range slices.Sorted(maps.Keys(v.t.Products)) {
		pr := v.t.Products[name]
		p := join("products", name)
		if !isLabel(name) {
			v.add(p, "product name %s", reasonLabel)
		}
		switch sp := join(p, "server_name"); {
		case pr.ServerName == "":
			v.add(sp, "missing; every product needs the host name its virtual host answers to")
		case !isDNSName(pr.ServerName):
			v.add(sp, "%s, got %s", reasonDNSName, show(pr.ServerName))
		default:
			claim(sp, pr.ServerName)
		}
		for i, a := range pr.ServerAliases {
			ap := index(join(p, "server_aliases"), i)
			if !isDNSName(a) {
				v.add(ap, "%s, got %s", reasonDNSName, show(a))
				continue
			}
			claim(ap, a)
		}
		v.docroot(join(p, "docroot"), pr.Docroot)
		if pr.Release != nil {
			v.release(join(p, "release"), pr.Release)
		}
		v.database(join(p, "database"), pr.Database)
		if pr.Cache != nil {
			v.cache(join(p, "cache"), pr.Cache)
		}
		switch sp := join(p, "sessions"); pr.Sessions {
		case "", nodeagent.SessionsFiles:
		case nodeagent.SessionsMemcached:
			if pr.Cache == nil || len(pr.Cache.Nodes) == 0 {
				v.add(sp, "memcached sessions need cache nodes; list them in %s or use files", join(p, "cache.nodes"))
			}
		default:
			v.add(sp, "must be %q or %q, got %s", nodeagent.SessionsFiles, nodeagent.SessionsMemcached, show(pr.Sessions))
		}
		v.php(join(p, "php"), pr.PHP)
		v.smoke(join(p, "smoke"), pr.Smoke)
	}
}

func (v *validator) docroot(p, d string) {
	if d == "" {
		return // the release root
	}
	if !isPathChars(d) || strings.HasPrefix(d, "/") || strings.Contains(d, "..") || path.Clean(d) != d {
		v.add(p, "must be a clean path relative to the release root (letters, digits, '.', '_', '-', '/'; no leading '/', no '..'), got %s", show(d))
	}
}

func (v *validator) release(p string, r *nodeagent.Release) {
	switch ip := join(p, "id"); {
	case r.ID == "":
		v.add(ip, "missing; a release needs an id")
	case !isReleaseID(r.ID) || r.ID == "." || r.ID == "..":
		v.add(ip, "must be 1-128 letters, digits, '.', '_' or '-' (not . or ..), got %s", show(r.ID))
	}
	if reason := checkReleaseURL(r.URL); reason != "" {
		v.add(join(p, "url"), "%s", reason)
	}
	if !isSHA256(r.SHA256) {
		v.add(join(p, "sha256"), "must be 64 lowercase hex characters")
	}
}

// checkReleaseURL returns why a release URL is unusable, or "".
func checkReleaseURL(raw string) string {
	const want = "must be s3://bucket/key, https://host/path or file:///absolute/path"
	if raw == "" {
		return "missing; " + want
	}
	if !controlFree(raw) || strings.ContainsAny(raw, " \t\"'\\<>`") {
		return "must not contain spaces, quotes, backslashes or control characters"
	}
	u, err := url.Parse(raw)
	if err != nil || !strings.HasPrefix(raw, u.Scheme+"://") {
		return want + ", got " + show(raw)
	}
	switch u.Scheme {
	case "s3":
		switch {
		case !isS3Bucket(u.Host) || u.User != nil:
			return "s3 bucket must be 3-63 lowercase letters, digits, '.' or '-', got " + show(u.Host)
		case strings.TrimPrefix(u.Path, "/") == "" || u.RawQuery != "" || u.Fragment != "":
			return "s3 URL must name an object key (s3://bucket/key, no query), got " + show(raw)
		}
	case "https":
		switch {
		case u.User != nil:
			return "must not carry credentials; the agent uses its own"
		case u.Hostname() == "":
			return "https URL must name a host, got " + show(raw)
		}
	case "file":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") || u.RawQuery != "" || u.Fragment != "" {
			return "file URL must be file:///absolute/path, got " + show(raw)
		}
	default:
		return want + ", got " + show(raw)
	}
	return ""
}

func (v *validator) database(p string, d nodeagent.Database) {
	mp := join(p, "master")
	switch _, r := v.node(d.Master); {
	case d.Master == "":
		v.add(mp, "missing; every product needs a database master (a node or alias name)")
	case r == refUnknown:
		v.add(mp, "%s is neither a node nor an alias", show(d.Master))
	}
	seen := map[string]bool{}
	for i, name := range d.Replicas {
		rp := index(join(p, "replicas"), i)
		switch _, r := v.node(name); {
		case r == refUnknown:
			v.add(rp, "%s is neither a node nor an alias", show(name))
		case seen[name]:
			v.add(rp, "%s is listed twice", name)
		}
		seen[name] = true
	}
	if !isDBName(d.Name) {
		if d.Name == "" {
			v.add(join(p, "name"), "missing; must name the product's database")
		} else {
			v.add(join(p, "name"), "must be 1-64 letters, digits or '_', got %s", show(d.Name))
		}
	}
	v.port(join(p, "port"), d.Port)
}

func (v *validator) cache(p string, c *nodeagent.Cache) {
	np := join(p, "nodes")
	if len(c.Nodes) == 0 {
		v.add(np, "must list at least one memcached node")
	}
	seen := map[string]bool{}
	for i, n := range c.Nodes {
		ip := index(np, i)
		node, r := v.node(n)
		switch {
		case r == refUnknown:
			v.add(ip, "%s is neither a node nor an alias", show(n))
		case r == refBroken:
		case seen[node]:
			v.add(ip, "%s is listed twice (as itself or through an alias)", node)
		case !v.runs(v.t.Nodes[node].Role, nodeagent.ServiceMemcached):
			v.add(ip, "node %s has role %s, which does not run memcached", node, show(v.t.Nodes[node].Role))
		}
		seen[node] = true
	}
	v.port(join(p, "port"), c.Port)
}

func (v *validator) php(p string, php nodeagent.PHPSettings) {
	if php.MemoryLimit != "" && !isMemoryLimit(php.MemoryLimit) {
		v.add(join(p, "memory_limit"), "must be -1 or a number with an optional K, M or G suffix (256M), got %s", show(php.MemoryLimit))
	}
	if php.MaxChildren < 0 || php.MaxChildren > MaxPHPChildren {
		v.add(join(p, "max_children"), "must be 0 (size from the machine's memory) up to %d, got %d", MaxPHPChildren, php.MaxChildren)
	}
	for _, k := range slices.Sorted(maps.Keys(php.Env)) {
		ep := join(join(p, "env"), k)
		switch {
		case !isEnvKey(k):
			v.add(ep, "environment variable name must be letters, digits and '_', not starting with a digit")
		case slices.Contains(ReservedEnv, k):
			v.add(ep, "reserved: nodeagent sets %s itself from the document (reserved: %s)", k, strings.Join(ReservedEnv, ", "))
		}
		val := php.Env[k]
		if !controlFree(val) || strings.ContainsAny(val, "\"\\") || strings.Contains(val, "${") {
			v.add(ep, "value must not contain control characters (newline, CR, NUL, bidirectional controls), double quotes, backslashes or ${ (they would break the PHP-FPM pool file)")
		}
	}
}

func (v *validator) smoke(p string, checks []nodeagent.SmokeCheck) {
	seen := map[string]bool{}
	for i, c := range checks {
		cp := index(p, i)
		switch np := join(cp, "name"); {
		case !isLabel(c.Name):
			v.add(np, "check name %s, got %s", reasonLabel, show(c.Name))
		case seen[c.Name]:
			v.add(np, "%s is used by another check of this product", c.Name)
		}
		seen[c.Name] = true
		if !strings.HasPrefix(c.Path, "/") || !controlFree(c.Path) || strings.ContainsAny(c.Path, " \t\"'`\\") || strings.ContainsFunc(c.Path, unicode.IsSpace) {
			v.add(join(cp, "path"), "must start with / and contain no whitespace, quotes or control characters, got %s", show(c.Path))
		}
		if c.Status != 0 && (c.Status < 100 || c.Status > 599) {
			v.add(join(cp, "status"), "must be an HTTP status from 100 to 599 (or absent for 200), got %d", c.Status)
		}
		if !controlFree(c.Contains) {
			v.add(join(cp, "contains"), "must not contain control characters")
		}
		if c.Location != "" {
			switch {
			case c.Status < 300 || c.Status > 399:
				v.add(join(cp, "location"), "is the Location header of a redirect: set status to a 3xx code such as 301 (status is %d)", cmp.Or(c.Status, 200))
			case !controlFree(c.Location) || strings.ContainsFunc(c.Location, unicode.IsSpace):
				v.add(join(cp, "location"), "must contain no whitespace or control characters, got %s", show(c.Location))
			}
		}
		if c.MaxLatencyMS < 0 || c.MaxLatencyMS > MaxLatencyMS {
			v.add(join(cp, "max_latency_ms"), "must be 0 (no limit) up to %d, got %d", MaxLatencyMS, c.MaxLatencyMS)
		}
	}
}

// ReservedEnv are the pool variables nodeagent sets itself; a product's
// php.env may not override them.
var ReservedEnv = []string{"DB_MASTER_HOST", "DB_REPLICA_HOSTS", "DB_NAME", "DB_PORT", "MEMCACHED_SERVERS", "NODEAGENT_CONFIG"}

// ProbePrefix is where every product vhost serves the agent's PHP probe
// (/.nodeagent/php-probe.php, local clients only).
const ProbePrefix = "/.nodeagent"

// reservedHealth are URL paths the health check must not take over: Apache's
// own status pages (mod_status, mod_info: local clients only) and the agent's
// PHP probe. The path and everything under it are refused.
var reservedHealth = []string{"/server-status", "/server-info", ProbePrefix}

// directoryIndex are the files a product's docroot answers "/" with: a
// health path there would shadow the application's front page.
var directoryIndex = []string{"/index.php", "/index.html"}

func (v *validator) health() {
	p := v.t.Health.Path
	if p == "" {
		return
	}
	if !strings.HasPrefix(p, "/") || !isPathChars(p) {
		v.add("health.path", "must start with / and contain only letters, digits, '.', '_', '-' and '/', got %s", show(p))
		return
	}
	if reason := reservedHealthPath(p); reason != "" {
		v.add("health.path", "%s is reserved: %s; use a path of its own such as %s", show(p), reason, DefaultHealthPath)
		return
	}
	// Every product vhost answers the health path itself, so a smoke
	// check there would test the health file, not the application.
	for _, name := range slices.Sorted(maps.Keys(v.t.Products)) {
		for i, c := range v.t.Products[name].Smoke {
			cp, _, _ := strings.Cut(c.Path, "?")
			if cp == p || strings.HasPrefix(cp, p+"/") {
				v.add("health.path", "%s shadows the application's %s (products.%s.smoke[%d].path): the health check answers it instead", show(p), show(c.Path), name, i)
			}
		}
	}
}

// reservedHealthPath returns why p cannot be the health path, or "".
func reservedHealthPath(p string) string {
	lower := strings.ToLower(p)
	switch {
	case p == "/":
		return "it would answer every request of the site"
	case path.Clean(p) != p:
		return "it must be a clean path (no trailing '/', '//', '.' or '..' segments)"
	case strings.Contains(lower, "/.ht"):
		return "Apache denies .ht* files (.htaccess, .htpasswd) to every client"
	case slices.Contains(directoryIndex, lower):
		return "it is the application's directory index"
	}
	for _, r := range reservedHealth {
		if lower == r || strings.HasPrefix(lower, r+"/") {
			if r == ProbePrefix {
				return "the agent serves its PHP probe under " + ProbePrefix + "/ to local clients only"
			}
			return "Apache serves " + r + " to local clients only (Require local); the health check's grant would open it to everyone"
		}
	}
	return ""
}

func (v *validator) apache() {
	a := v.t.Apache
	v.port("apache.port", a.Port)
	switch a.Bind {
	case "", nodeagent.BindAll, nodeagent.BindPrivate:
	default:
		v.add("apache.bind", "must be %q or %q, got %s", nodeagent.BindAll, nodeagent.BindPrivate, show(a.Bind))
	}
	if a.MaxRequestWorkers < 0 || a.MaxRequestWorkers > MaxApacheWorkers {
		v.add("apache.max_request_workers", "must be 0 (size from the machine's memory) up to %d, got %d", MaxApacheWorkers, a.MaxRequestWorkers)
	}
}

func (v *validator) fleet() {
	f := v.t.Fleet
	if f == nil || f.Reports == "" {
		return
	}
	if _, _, err := ParseReportsURL(f.Reports); err != nil {
		v.add("fleet.reports", "%s, got %s", err.Error(), show(f.Reports))
	}
}

// ParseReportsURL splits a reports prefix "s3://bucket/prefix/" into its
// bucket and key prefix ("prefix/"; "" for the bucket's top). It is the
// rule Validate applies to fleet.reports.
func ParseReportsURL(s string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return "", "", fmt.Errorf("must be an s3://bucket/prefix/ URL")
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	switch {
	case !isBucketName(bucket):
		return "", "", fmt.Errorf("bucket must be 3 to 63 lower-case letters, digits, '.' and '-'")
	case prefix != "" && !strings.HasSuffix(prefix, "/"):
		return "", "", fmt.Errorf("prefix must end in / (reports are <prefix><instance-id>.json)")
	case !controlFree(prefix) || strings.ContainsAny(prefix, "?#\\") || strings.Contains(prefix, "//") || strings.HasPrefix(prefix, "/"):
		return "", "", fmt.Errorf("prefix must not contain control characters, '?', '#', backslashes or empty segments")
	}
	return bucket, prefix, nil
}

func isBucketName(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
