// Package fleet runs whole fleets of nodeagent processes against real
// components (build tag integration): every agent is a separate `nodeagent
// run` process simulating one instance, with its own
// amazon-ec2-metadata-mock, its own 127.0.0.x private address and its own
// node root, and they all share one MinIO. Web nodes run real Apache and
// PHP-FPM, cache nodes real memcached, each reloaded through the agent's
// exec driver.
//
// TestFleet checks the watch contract end to end: a database failover
// reaches every node within the poll interval plus the splay, each node
// reloads once and none leaves the load balancer; a broken push changes
// nothing and is reported everywhere; a fixed push converges; requests
// through Apache during a reload never fail; a node told to terminate
// drains before it exits and completes its terminate hook.
//
// BenchmarkPropagation and BenchmarkIdle (bench.sh) measure propagation
// times over 10 and 50 agents and the idle cost of one agent: RSS, CPU
// and conditional GETs per interval counted at MinIO.
package fleet
