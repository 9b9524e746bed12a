// Package topology reads the fleet's topology document (SPEC section 3):
// strict decoding of JSON or YAML (unknown fields, duplicate keys, wrong
// types and trailing data are errors with their document paths), validation
// that reports every problem at once, the documented defaults, this node's
// identity, the guards a new document must pass to follow the last applied
// one (serial, dropped nodes), and the document paths that changed between
// two documents. It does no I/O.
package topology
