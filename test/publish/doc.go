// Package publish tests the operator's topology commands (`nodeagent
// topology publish`, `failover`, `rollback`) as a whole binary against a real
// MinIO (build tag integration): conditional writes, kept history, races
// between operators and the refusals, asserted on what MinIO then holds.
// A proxy in front of MinIO orders the requests of two publishers so that
// a race happens every run, not only when the scheduler allows.
//
//	go test -tags integration ./test/publish/
package publish
