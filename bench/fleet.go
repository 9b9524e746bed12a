package bench

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nodeagent/nodeagent"
)

// FleetSpec sizes a generated fleet.
type FleetSpec struct {
	// Nodes is the number of nodes in the document: database masters and
	// replicas, memcached nodes and listed web servers.
	Nodes int
	// Products is the number of products.
	Products int
	// ProductsPerRole is how many products each of the partial web roles
	// (web-g00, web-g01, …) serves; role RoleAllProducts serves them all.
	ProductsPerRole int
}

// DefaultFleet is the fleet of the plan target: 5,000 nodes, 200 products.
var DefaultFleet = FleetSpec{Nodes: 5000, Products: 200, ProductsPerRole: 10}

// RoleAllProducts is the web role that serves every product: the largest
// plan a node of the fleet can have.
const RoleAllProducts = "web-all"

// Per-product fleet shape: a database master and a replica per
// dbProductsPerPair products, cacheNodesPerProduct memcached nodes per
// product out of cacheNodes.
const (
	dbProductsPerPair    = 4
	cacheNodes           = 100
	cacheNodesPerProduct = 3
)

// Fleet returns a topology document (JSON) for s that topology.Load
// accepts: database pairs with aliases, memcached nodes, web roles and
// their Auto Scaling groups, and products with releases, database, cache,
// memcached sessions, PHP settings and smoke checks. The document is
// deterministic. Web nodes are named web-00000, web-00001, …; WebNode
// gives one of them with its role.
func Fleet(s FleetSpec) ([]byte, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	t := nodeagent.Topology{
		Schema:   1,
		Serial:   1000,
		Domain:   "internal",
		Nodes:    map[string]nodeagent.Node{},
		Aliases:  map[string]string{},
		Groups:   map[string]nodeagent.Group{},
		Roles:    map[string]nodeagent.Role{},
		Products: map[string]nodeagent.Product{},
		Health:   nodeagent.Health{Path: "/nodeagent-health"},
		Apache:   nodeagent.ApacheSettings{Port: 80},
	}
	t.Roles["db"] = nodeagent.Role{Services: []string{}}
	t.Roles["cache"] = nodeagent.Role{Services: []string{nodeagent.ServiceMemcached},
		Memcached: &nodeagent.MemcachedSettings{Port: 11211}}
	web := []string{nodeagent.ServiceApache, nodeagent.ServicePHPFPM}
	all := make([]string, 0, s.Products)
	for i := range s.Products {
		all = append(all, productName(i))
	}
	t.Roles[RoleAllProducts] = nodeagent.Role{Services: web, Products: all}
	t.Groups["fleet-"+RoleAllProducts] = nodeagent.Group{Role: RoleAllProducts, LaunchHook: "nodeagent-launch", TerminateHook: "nodeagent-terminate"}
	webRoles := []string{RoleAllProducts}
	for g := 0; g*s.ProductsPerRole < s.Products; g++ {
		name := fmt.Sprintf("web-g%02d", g)
		end := min((g+1)*s.ProductsPerRole, s.Products)
		t.Roles[name] = nodeagent.Role{Services: web, Products: all[g*s.ProductsPerRole : end]}
		t.Groups["fleet-"+name] = nodeagent.Group{Role: name, LaunchHook: "nodeagent-launch", TerminateHook: "nodeagent-terminate"}
		webRoles = append(webRoles, name)
	}

	n := 0
	addNode := func(name, role string) {
		t.Nodes[name] = nodeagent.Node{IP: nodeIP(n), Role: role, AZ: azOf(n), InstanceID: instanceID(n)}
		n++
	}
	pairs := (s.Products + dbProductsPerPair - 1) / dbProductsPerPair
	for i := range pairs {
		addNode(fmt.Sprintf("db-%03d-a", i), "db")
		addNode(fmt.Sprintf("db-%03d-b", i), "db")
	}
	for i := range cacheNodes {
		addNode(cacheName(i), "cache")
	}
	for i := 0; n < s.Nodes; i++ {
		addNode(webName(i), webRoles[i%len(webRoles)])
	}

	for i, name := range all {
		pair := i / dbProductsPerPair
		t.Aliases["db-"+name] = fmt.Sprintf("db-%03d-a", pair)
		t.Aliases["repl-"+name] = fmt.Sprintf("db-%03d-b", pair)
		caches := make([]string, 0, cacheNodesPerProduct)
		for k := range cacheNodesPerProduct {
			caches = append(caches, cacheName((i*cacheNodesPerProduct+k)%cacheNodes))
		}
		id := fmt.Sprintf("2026.11.%02d-%d", i%28+1, i)
		sum := sha256.Sum256([]byte(name + id))
		t.Products[name] = nodeagent.Product{
			ServerName:    "www." + name + ".example",
			ServerAliases: []string{name + ".example", "static." + name + ".example"},
			Docroot:       "public",
			Release: &nodeagent.Release{
				ID:     id,
				URL:    "s3://fleet-releases/" + name + "/" + id + ".tar.gz",
				SHA256: hex.EncodeToString(sum[:]),
			},
			Database: nodeagent.Database{Master: "db-" + name, Replicas: []string{"repl-" + name},
				Name: fmt.Sprintf("prod_%03d", i), Port: 3306},
			Cache:    &nodeagent.Cache{Nodes: caches, Port: 11211},
			Sessions: nodeagent.SessionsMemcached,
			PHP: nodeagent.PHPSettings{MemoryLimit: "256M", Env: map[string]string{
				"APP_ENV": "production", "APP_NAME": name, "APP_REGION": "us-east-1",
			}},
			Smoke: []nodeagent.SmokeCheck{
				{Name: "home", Path: "/", Status: 200, Contains: "Welcome"},
				{Name: "health", Path: "/health", Status: 200, MaxLatencyMS: 500},
			},
		}
	}
	return json.MarshalIndent(t, "", "  ")
}

func (s FleetSpec) validate() error {
	switch {
	case s.Products < 1 || s.ProductsPerRole < 1:
		return errors.New("bench: fleet needs at least one product and one product per role")
	case s.Nodes < s.minNodes():
		return fmt.Errorf("bench: fleet of %d products needs at least %d nodes, got %d", s.Products, s.minNodes(), s.Nodes)
	}
	return nil
}

// minNodes is the database pairs, the cache nodes and one web node.
func (s FleetSpec) minNodes() int {
	return 2*((s.Products+dbProductsPerPair-1)/dbProductsPerPair) + cacheNodes + 1
}

// WebNode returns the first web node of the fleet whose role is role, as
// an Instance (Debian, PHP 8.2, 8 GiB) that finds itself by its instance
// id, and its node name.
func WebNode(s FleetSpec, role string) (nodeagent.Instance, string, error) {
	if err := s.validate(); err != nil {
		return nodeagent.Instance{}, "", err
	}
	roles := 1 + (s.Products+s.ProductsPerRole-1)/s.ProductsPerRole
	first := s.minNodes() - 1 // index of web-00000
	for i := 0; first+i < s.Nodes; i++ {
		r := RoleAllProducts
		if k := i % roles; k > 0 {
			r = fmt.Sprintf("web-g%02d", k-1)
		}
		if r != role {
			continue
		}
		n := first + i
		return nodeagent.Instance{
			ID: instanceID(n), PrivateIP: nodeIP(n), AZ: azOf(n), Region: "us-east-1", Type: "m5.large",
			MemoryBytes: 8 << 30, OSFamily: nodeagent.OSDebian, OSID: "debian", PHPVersion: "8.2",
		}, webName(i), nil
	}
	return nodeagent.Instance{}, "", fmt.Errorf("bench: no web node with role %s in a fleet of %d nodes", role, s.Nodes)
}

func productName(i int) string { return fmt.Sprintf("prod-%03d", i) }
func cacheName(i int) string   { return fmt.Sprintf("cache-%03d", i) }
func webName(i int) string     { return fmt.Sprintf("web-%05d", i) }
func instanceID(n int) string  { return fmt.Sprintf("i-%017x", 0xb000000+n) }
func azOf(n int) string        { return "us-east-1" + string(rune('a'+n%3)) }

// nodeIP spreads nodes over 10.<az>.0.0/16 subnets.
func nodeIP(n int) string {
	return fmt.Sprintf("10.%d.%d.%d", 1+n%3, (n/3)/250, (n/3)%250+2)
}
