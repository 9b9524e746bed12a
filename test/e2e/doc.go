// Package e2e holds nodeagent's whole-binary end-to-end tests: the built
// nodeagent binary converges node roots against real components (AWS's
// IMDS mock, MinIO, a fake Auto Scaling endpoint, and this machine's real
// Apache, PHP-FPM and memcached), and the tests assert on what really runs
// and answers. The tests are behind the `integration` build tag:
//
//	go test -tags integration ./test/e2e/
//
// testdata/ holds the PHP applications packed into release archives.
package e2e
