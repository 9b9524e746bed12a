// Package plan turns what a node should be (nodeagent.Desired) and what its
// disk holds into a nodeagent.Plan, prints that plan for an operator, and
// applies it.
//
// Build only reads: it compares each desired file's bytes, mode and owner
// with the file under the agent's root, merges the managed /etc/hosts block,
// asks the service manager which services run, and explains every change by
// the topology paths that caused it. Unchanged files and no-op actions are
// left out, so an empty plan means the node is converged. `apply --dry-run`
// is Build followed by Format; nothing in this package checks a dry-run
// flag.
//
// Apply writes the files atomically (hostfs), validates every affected
// service's whole configuration tree (apache2ctl -t, php-fpm -t), puts every
// file of the apply back as it was if a check refuses, and only then starts,
// reloads or restarts services.
package plan
