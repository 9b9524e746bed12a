package source

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/hostfs/beneath"
)

// LastGood keeps the last good topology document at Path (for example
// /var/lib/nodeagent/topology.json, a host path under Root), its ETag
// beside it, at Path+".etag", and, for a YAML document, its format at
// Path+".format" (the bytes are kept as fetched, so that a re-check can
// compare them; the name does not say how to read them). All are written atomically (temporary file,
// fsync, rename, fsync of the directory) and read and written without
// following a symlink anywhere under Root (package beneath).
//
// Save drops the old ETag and format before it replaces the document and
// writes the new ones after it, so a crash at any point never pairs a new
// ETag with an old document (at worst the next fetch is unconditional) nor
// an old document with a new format (at worst a YAML copy cut off from its
// format fails to decode, and is treated like no copy).
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

// Save stores body, its etag and its format ("" is JSON).
func (l LastGood) Save(body []byte, etag string, format nodeagent.Format) error {
	d, err := beneath.MkdirAll(l.Root, filepath.Dir(l.Path), stateDirMode)
	if err != nil {
		return fmt.Errorf("source: save last-good copy: %w", err)
	}
	defer d.Close()
	for _, p := range []string{l.etagPath(), l.formatPath()} {
		if err := d.Remove(filepath.Base(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("source: save last-good copy: %w", err)
		}
	}
	if err := d.Sync(); err != nil {
		return fmt.Errorf("source: save last-good copy %s: %w", l.Path, err)
	}
	if err := d.WriteFile(filepath.Base(l.Path), body, lastGoodMode, true); err != nil {
		return fmt.Errorf("source: save last-good copy: %w", err)
	}
	if format == nodeagent.FormatYAML {
		if err := d.WriteFile(filepath.Base(l.formatPath()), []byte(format), lastGoodMode, true); err != nil {
			return fmt.Errorf("source: save last-good copy: %w", err)
		}
	}
	if etag == "" {
		return nil
	}
	if err := d.WriteFile(filepath.Base(l.etagPath()), []byte(etag), lastGoodMode, true); err != nil {
		return fmt.Errorf("source: save last-good copy: %w", err)
	}
	return nil
}

// Exists says whether a document is saved: a regular file at Path. It
// reads nothing (Load does).
func (l LastGood) Exists() bool {
	fi, err := beneath.Lstat(l.Root, l.Path)
	return err == nil && fi.Mode().IsRegular()
}

// Load returns the saved document, its etag ("" when none was saved) and
// its format (JSON when none was saved). Without a saved document the
// error wraps os.ErrNotExist.
func (l LastGood) Load() (body []byte, etag string, format nodeagent.Format, err error) {
	body, err = beneath.ReadFile(l.Root, l.Path)
	if err != nil {
		return nil, "", "", fmt.Errorf("source: load last-good copy: %w", err)
	}
	tag, err := beneath.ReadFile(l.Root, l.etagPath())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, "", "", fmt.Errorf("source: load last-good copy: %w", err)
	}
	f, err := beneath.ReadFile(l.Root, l.formatPath())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		format = nodeagent.FormatJSON
	case err != nil:
		return nil, "", "", fmt.Errorf("source: load last-good copy: %w", err)
	case nodeagent.Format(f) == nodeagent.FormatYAML:
		format = nodeagent.FormatYAML
	default:
		return nil, "", "", fmt.Errorf("source: load last-good copy: %s holds %q, not %q: delete it and the copy beside it, and apply from the source", l.formatPath(), f, nodeagent.FormatYAML)
	}
	return body, string(tag), format, nil
}

func (l LastGood) etagPath() string   { return l.Path + ".etag" }
func (l LastGood) formatPath() string { return l.Path + ".format" }
