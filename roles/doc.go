// Package roles says what each role means on a node: from the instance, the
// validated topology (defaults applied) and the node's identity, Desire
// derives every file the node should have (content, mode, owner, the
// services it feeds and the topology paths it comes from), the managed
// /etc/hosts entries, the services to run and the products to serve. It is
// a pure function: no I/O, and the same input always gives the same bytes.
//
// Sizing that the document leaves at 0 is derived from the machine's
// memory by PHPMaxChildren, ApacheMaxRequestWorkers and MemcachedMemoryMB,
// whose doc comments give the formulas.
package roles
