package publish

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Failover moves a database master to another node: the seeds' failover
// script. Exactly one of Product and Alias is set.
//
//   - Product: that product's database.master becomes To (the node's name,
//     even if the master was an alias: only this product moves).
//   - Alias: the alias retargets to To, which moves every product whose
//     master is that alias.
//
// To must be a node (not an alias) of the same role as the current master.
// The new master leaves the replica lists of the products that move (a
// replica entry naming it, directly or through an alias). With
// OldMasterAsReplica the old master takes its place there instead: a
// replica alias that pointed at the new master points at the old one (the
// seeds' dbserver/replserver swap), a node entry is replaced, and if no
// replica was the new master the old master is appended.
type Failover struct {
	Product            string
	Alias              string
	To                 string
	OldMasterAsReplica bool
}

// ErrAlreadyMaster is returned when To already is the master: nothing to
// publish.
var ErrAlreadyMaster = errors.New("already the master")

// Moved says what a failover changed, for the operator.
type Moved struct {
	From, To string   // the old and the new master node
	Products []string // the products whose master moved
	Notes    []string // "aliases.replserver: db-b -> db-a", …
}

// Edit returns cur's document with the master moved (the serial is not
// touched: publish it with Input.Serial). The output is JSON with the
// members of the document as they were (keys sorted), YAML input included.
func (f Failover) Edit(cur *Current) ([]byte, Moved, error) {
	var mv Moved
	if (f.Product == "") == (f.Alias == "") {
		return nil, mv, errors.New("failover: name exactly one of a product and an alias")
	}
	if f.To == "" {
		return nil, mv, errors.New("failover: name the node that becomes the master")
	}
	if !cur.Exists {
		return nil, mv, errors.New("failover: nothing is published yet; publish a document first")
	}
	t := cur.Doc
	if t == nil {
		return nil, mv, fmt.Errorf("failover: the current document is not valid; publish a fixed one first: %w", cur.Invalid)
	}
	resolve := func(name string) string {
		if target, ok := t.Aliases[name]; ok {
			return target
		}
		return name
	}
	to, ok := t.Nodes[f.To]
	if !ok {
		if target, isAlias := t.Aliases[f.To]; isAlias {
			return nil, mv, fmt.Errorf("failover: %s is an alias (of %s); name the node", f.To, target)
		}
		return nil, mv, fmt.Errorf("failover: no node %q in the document (nodes: %s)", f.To, strings.Join(slices.Sorted(maps.Keys(t.Nodes)), ", "))
	}
	var master string // the master reference that moves: the alias, or the product's master
	if f.Alias != "" {
		if _, ok := t.Aliases[f.Alias]; !ok {
			return nil, mv, fmt.Errorf("failover: no alias %q in the document (aliases: %s)", f.Alias, strings.Join(slices.Sorted(maps.Keys(t.Aliases)), ", "))
		}
		master = f.Alias
		for _, name := range slices.Sorted(maps.Keys(t.Products)) {
			if t.Products[name].Database.Master == f.Alias {
				mv.Products = append(mv.Products, name)
			}
		}
	} else {
		p, ok := t.Products[f.Product]
		if !ok {
			return nil, mv, fmt.Errorf("failover: no product %q in the document (products: %s)", f.Product, strings.Join(slices.Sorted(maps.Keys(t.Products)), ", "))
		}
		master = p.Database.Master
		mv.Products = []string{f.Product}
	}
	mv.From, mv.To = resolve(master), f.To
	if mv.From == f.To {
		return nil, mv, fmt.Errorf("failover: %s is %w", f.To, ErrAlreadyMaster)
	}
	if from := t.Nodes[mv.From]; from.Role != to.Role {
		return nil, mv, fmt.Errorf("failover: %s has role %q, but the master %s has role %q; name a node of role %q", f.To, to.Role, mv.From, from.Role, from.Role)
	}

	doc, err := generic(cur.Body, cur.Serial)
	if err != nil {
		return nil, mv, err
	}
	aliases := object(doc, "aliases")
	if f.Alias != "" {
		aliases[f.Alias] = f.To
		mv.Notes = append(mv.Notes, fmt.Sprintf("aliases.%s: %s -> %s", f.Alias, mv.From, f.To))
	}
	retargeted := map[string]bool{}
	for _, name := range mv.Products {
		db := object(object(object(doc, "products"), name), "database")
		if f.Product != "" {
			db["master"] = f.To
			mv.Notes = append(mv.Notes, fmt.Sprintf("products.%s.database.master: %s -> %s", name, master, f.To))
		}
		old := t.Products[name].Database.Replicas
		var replicas []any
		replaced := false
		for _, r := range old {
			switch {
			case resolve(r) != f.To:
				replicas = append(replicas, r)
			case !f.OldMasterAsReplica:
				// The new master serves no more reads as a replica.
			case r != f.To && f.Alias != "":
				// A replica alias of the new master now names the old one.
				if !retargeted[r] {
					aliases[r] = mv.From
					retargeted[r] = true
					mv.Notes = append(mv.Notes, fmt.Sprintf("aliases.%s: %s -> %s", r, f.To, mv.From))
				}
				replicas, replaced = append(replicas, r), true
			default:
				replicas, replaced = append(replicas, mv.From), true
			}
		}
		if f.OldMasterAsReplica && !replaced && !slices.ContainsFunc(old, func(r string) bool { return resolve(r) == mv.From }) {
			replicas = append(replicas, mv.From)
		}
		if len(replicas) == 0 {
			delete(db, "replicas")
		} else {
			db["replicas"] = replicas
		}
		if got := fmt.Sprint(replicas); got != fmt.Sprint(old) && !(len(old) == 0 && len(replicas) == 0) {
			mv.Notes = append(mv.Notes, fmt.Sprintf("products.%s.database.replicas: %v -> %v", name, old, replicas))
		}
	}
	if len(aliases) == 0 {
		delete(doc, "aliases")
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, mv, fmt.Errorf("failover: encode the document: %w", err)
	}
	return append(out, '\n'), mv, nil
}

// generic decodes a document as plain JSON values, numbers kept as written.
func generic(body []byte, serial int64) (map[string]any, error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	if !json.Valid(bytes.TrimSpace(body)) {
		j, err := yaml.YAMLToJSON(body)
		if err != nil {
			return nil, fmt.Errorf("failover: read the current document (serial %d): %w", serial, err)
		}
		body = j
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("failover: read the current document (serial %d): %w", serial, err)
	}
	return doc, nil
}

// object returns m[key] as an object, creating it if absent.
func object(m map[string]any, key string) map[string]any {
	if o, ok := m[key].(map[string]any); ok {
		return o
	}
	o := map[string]any{}
	m[key] = o
	return o
}
