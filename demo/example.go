package main

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/topology"
)

// example holds the demo's topology and the shop application its release
// is built from.
//
//go:embed example/topology.json example/app
var example embed.FS

// Where the demo publishes in its S3.
const (
	topologyBucket = "demo-topology"
	topologyKey    = "shop/topology.json"
	releaseBucket  = "releases"
	releaseKey     = "shop/demo-1.tar.gz"
)

// node is one simulated instance: what its metadata says, and where its
// agent listens.
type node struct {
	Name       string
	InstanceID string
	IP         string
	AZ         string
	Group      string // the aws:autoscaling:groupName tag, "" for none
	Role       string // as the topology resolves it; for the messages only
}

// listen is the agent's health, readiness and status address.
func (n node) listen() string { return n.IP + ":9107" }

// The demo's instances, in boot order: the cache node first, so the web
// node's sessions have somewhere to go when its smoke checks run.
var nodes = []node{
	{Name: "cache-1", InstanceID: "i-0de000000000c0001", IP: "127.77.0.21", AZ: "us-east-1a", Role: "cache"},
	{Name: "web-1", InstanceID: "i-0de000000000a0001", IP: "127.77.0.11", AZ: "us-east-1b", Group: "shop-web", Role: "web"},
}

// The site as the web node serves it.
const (
	siteHost = "www.shop.example"
	sitePort = 8080
	product  = "shop"
)

// The live change: the database master moves from db-a to db-b.
const (
	masterBefore = "db-a"
	masterAfter  = "db-b"
)

// exampleTopology returns the embedded topology with the release's
// checksum filled in, at the given serial, with the database master alias
// pointing at master and the replica alias at the other database. It is
// checked with topology.Load, the agent's own validation, before it is
// published.
func exampleTopology(serial int64, releaseSHA, master string) ([]byte, error) {
	raw, err := fs.ReadFile(example, "example/topology.json")
	if err != nil {
		return nil, fmt.Errorf("example topology: %w", err)
	}
	t, err := topology.Decode(raw, "example/topology.json", nodeagent.FormatJSON)
	if err != nil {
		return nil, fmt.Errorf("example topology: %w", err)
	}
	t.Serial = serial
	t.Aliases["dbserver"] = master
	t.Aliases["replserver"] = masterBefore
	if master == masterBefore {
		t.Aliases["replserver"] = masterAfter
	}
	p := t.Products[product]
	if p.Release == nil || p.Release.URL != "s3://"+releaseBucket+"/"+releaseKey {
		return nil, fmt.Errorf("example topology: products.%s.release.url must be s3://%s/%s, where the demo publishes it", product, releaseBucket, releaseKey)
	}
	r := *p.Release
	r.SHA256 = releaseSHA
	p.Release = &r
	t.Products[product] = p
	body, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("example topology: %w", err)
	}
	if _, err := topology.Load(body, topologyKey, nodeagent.FormatJSON); err != nil {
		return nil, fmt.Errorf("example topology: %w", err)
	}
	return body, nil
}
