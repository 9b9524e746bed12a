package source

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/fsnotify/fsnotify"

	"github.com/nodeagent/nodeagent"
)

var _ nodeagent.Watcher = (*fileSource)(nil)

// Watch watches the file's directory rather than the file, so an editor
// that replaces the file (write a temp, rename it over) is seen, and so is
// a file that appears after the watch started. Chmod-only events are
// ignored. The watch ends with ctx.
func (s *fileSource) Watch(ctx context.Context, changed func(why string)) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("source: watch %s: %w", s.loc.raw, err)
	}
	dir, name := filepath.Dir(s.loc.path), filepath.Base(s.loc.path)
	if err := fw.Add(dir); err != nil {
		fw.Close()
		return fmt.Errorf("source: watch directory %s of %s: %w", dir, s.loc.raw, err)
	}
	go func() {
		defer fw.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-fw.Events:
				if !ok {
					return
				}
				if filepath.Base(ev.Name) == name && !ev.Has(fsnotify.Chmod) {
					changed("file " + ev.Op.String())
				}
			case err, ok := <-fw.Errors:
				if !ok {
					return
				}
				s.log.Error("file watch error", nodeagent.LogKeyPath, s.loc.path, nodeagent.LogKeyError, err.Error())
			}
		}
	}()
	return nil
}
