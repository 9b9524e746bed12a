package source

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/nodeagent/nodeagent/hostfs/beneath"
)

// LastGood keeps the last good topology document at Path (for example
// /var/lib/nodeagent/topology.json, a host path under Root) and its ETag
// beside it, at Path+".etag". Both are written atomically (temporary file,
// fsync, rename, fsync of the directory) and read and written without
// following a symlink anywhere under Root (package beneath).
//
// Save drops the old ETag before it replaces the document and writes the
// new ETag last, so a crash at any point never pairs a new ETag with an old
// document: at worst the next fetch is unconditional.
type LastGood struct {
	Root string // the agent's --root; "" means "/"
	Path string
}

// File modes of the saved copy. The document may carry secrets (a
// presigned release URL's signature and session token), so only root reads
// it. The state dir is 0711: the web server's user must reach the ELB
// health file and the PHP probe inside it by name, but cannot list it.
const (
	lastGoodMode = 0o600
	stateDirMode = 0o711
)

// Save stores body and its etag.
func (l LastGood) Save(body []byte, etag string) error {
	d, err := beneath.MkdirAll(l.Root, filepath.Dir(l.Path), stateDirMode)
	if err != nil {
		return fmt.Errorf("source: save last-good copy: %w", err)
	}
	defer d.Close()
	if err := d.Remove(filepath.Base(l.etagPath())); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("source: save last-good copy: %w", err)
	}
	if err := d.Sync(); err != nil {
		return fmt.Errorf("source: save last-good copy %s: %w", l.Path, err)
	}
	if err := d.WriteFile(filepath.Base(l.Path), body, lastGoodMode, true); err != nil {
		return fmt.Errorf("source: save last-good copy: %w", err)
	}
	if etag == "" {
		return nil
	}
	if err := d.WriteFile(filepath.Base(l.etagPath()), []byte(etag), lastGoodMode, true); err != nil {
		return fmt.Errorf("source: save last-good copy: %w", err)
	}
	return nil
}

// Load returns the saved document and its etag ("" when none was saved).
// Without a saved document the error wraps os.ErrNotExist.
func (l LastGood) Load() (body []byte, etag string, err error) {
	body, err = beneath.ReadFile(l.Root, l.Path)
	if err != nil {
		return nil, "", fmt.Errorf("source: load last-good copy: %w", err)
	}
	tag, err := beneath.ReadFile(l.Root, l.etagPath())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("source: load last-good copy: %w", err)
	}
	return body, string(tag), nil
}

func (l LastGood) etagPath() string { return l.Path + ".etag" }
