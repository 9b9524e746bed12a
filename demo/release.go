package main

import (
	"io/fs"
	"time"

	"github.com/nodeagent/nodeagent/test/harness"
)

// releaseTime is every archive entry's mtime, so the same app always
// gives the same archive and checksum.
var releaseTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// releaseArchive packs the tree under app as a release (see
// harness.ReleaseArchive) and returns the archive and its sha256.
func releaseArchive(app fs.FS) ([]byte, string, error) {
	return harness.ReleaseArchive(app, releaseTime)
}
