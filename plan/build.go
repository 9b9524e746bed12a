package plan

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/hostfs"
	"github.com/nodeagent/nodeagent/hostsfile"
)

// HostsPath is the hosts file whose managed block Build merges.
const HostsPath = "/etc/hosts"

// hostsSources are the topology paths the managed /etc/hosts block is
// derived from.
var hostsSources = []string{"aliases", "domain", "nodes"}

// defaultMode is the mode of a file whose desired mode is unset, and of a
// new /etc/hosts.
const defaultMode fs.FileMode = 0o644

// modeBits are the mode bits Build compares and Apply sets.
const modeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// Input is what Build plans from.
type Input struct {
	Desired  *nodeagent.Desired
	Instance nodeagent.Instance
	FS       hostfs.FS
	// Services answers which services run (only Active is called).
	Services nodeagent.ServiceManager
	// Changes are the topology paths changed since the last applied document
	// (topology.Changes); nil on the first apply.
	Changes []string
	// Serial is the document being applied, PreviousSerial the last applied
	// one (0: none, this is the node's first apply).
	Serial, PreviousSerial int64
}

// Build compares the desired state with the host and returns the plan. It
// reads only.
//
// A file is in the plan when its bytes, mode or owner differ from the
// desired file; its reason is "new file", the changed topology paths that
// feed it ("aliases.dbserver changed"), "differs from desired" on a first
// apply, or "differs from desired (edited on the host?)" when nothing it is
// derived from changed; a mode or owner difference adds "mode 0644 -> 0640"
// or "owner root:root -> root:www-data". A desired mode of 0 means 0644; an
// empty owner or group means root.
//
// /etc/hosts is merged (hostsfile.Merge with Desired.Hosts) and planned only
// when the merge changes it, keeping its current mode and owner. Desired
// files must not name /etc/hosts.
//
// A desired service that is not active gets a start ("should run, is
// stopped"), whether or not its files change; an active one whose files
// change gets its reload kind. Files are sorted by path, services with
// starts first, then by name.
func Build(ctx context.Context, in Input) (*nodeagent.Plan, error) {
	if in.Desired == nil {
		return nil, errors.New("plan: no desired state")
	}
	if in.Services == nil {
		return nil, errors.New("plan: no service manager")
	}
	p := &nodeagent.Plan{
		Instance:       in.Instance,
		Identity:       in.Desired.Identity,
		Serial:         in.Serial,
		PreviousSerial: in.PreviousSerial,
	}
	// One reader for the whole plan: every directory is checked against
	// the root once, not once per file (Build writes nothing meanwhile).
	host := in.FS.Reader()
	// Merging the hosts block is CPU work (a line per node) that needs
	// none of the other files: it runs while they are read, and its
	// outcome is looked at after theirs, as before.
	var hosts *nodeagent.FileChange
	var hostsErr error
	var merging sync.WaitGroup
	merging.Go(func() { hosts, hostsErr = in.hostsChange(host) })
	changes := in.fileChanges(host)
	merging.Wait()
	seen := map[string]bool{}
	for i, f := range in.Desired.Files {
		if f.Path == HostsPath {
			return nil, fmt.Errorf("plan: %s: the hosts file is managed through its block (Desired.Hosts), not as a whole file", f.Path)
		}
		if seen[f.Path] {
			return nil, fmt.Errorf("plan: %s: desired twice", f.Path)
		}
		seen[f.Path] = true
		if err := changes[i].err; err != nil {
			return nil, err
		}
		if fc := changes[i].fc; fc != nil {
			p.Files = append(p.Files, *fc)
		}
	}
	if hostsErr != nil {
		return nil, hostsErr
	}
	if hosts != nil {
		p.Files = append(p.Files, *hosts)
	}
	slices.SortFunc(p.Files, func(a, b nodeagent.FileChange) int { return cmp.Compare(a.Path, b.Path) })

	var err error
	p.Services, err = in.serviceActions(ctx, p.Files)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// readers is how many desired files fileChanges reads at once. Reading a
// file is a handful of system calls and little else: two readers, with the
// hosts merge beside them, keep both cores of a small instance busy. Four
// were no faster on two cores and took more CPU.
const readers = 2

// change is what fileChange returned for one desired file.
type change struct {
	fc  *nodeagent.FileChange
	err error
}

// fileChanges runs fileChange on every desired file, readers at a time,
// and returns the outcomes in the order of the files. It goes on past a
// failure, so that the caller, looking through them in order, reports the
// first failure in file order, as Build did when it read one file at a
// time.
func (in Input) fileChanges(host *hostfs.Reader) []change {
	files := in.Desired.Files
	out := make([]change, len(files))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(readers, len(files)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(files) {
					return
				}
				out[i].fc, out[i].err = in.fileChange(host, files[i])
			}
		})
	}
	wg.Wait()
	return out
}

// current is what the host has at a path.
type current struct {
	exists       bool
	data         []byte
	mode         fs.FileMode
	owner, group string
}

// readCurrent reads path under the root: content, mode and owner.
func readCurrent(host *hostfs.Reader, path string) (current, error) {
	// Lstat first: a dangling symlink must not read as "missing", and a
	// link is never silently replaced by a file.
	fi, err := host.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return current{}, nil
	}
	if err != nil {
		return current{}, err // hostfs names the operation and the path
	}
	if !fi.Mode().IsRegular() {
		return current{}, fmt.Errorf("%s: %w", path, &NotRegularError{Path: path, Mode: fi.Mode()})
	}
	data, err := host.ReadFile(path)
	if err != nil {
		return current{}, err
	}
	owner, group, err := host.Owner(path)
	if err != nil {
		return current{}, fmt.Errorf("owner of %s: %w", path, err)
	}
	return current{exists: true, data: data, mode: fi.Mode() & modeBits, owner: owner, group: group}, nil
}

// NotRegularError is a planned path that holds something other than a
// regular file (a symlink, a directory); the agent does not replace it.
type NotRegularError struct {
	Path string
	Mode fs.FileMode
}

func (e *NotRegularError) Error() string {
	return fmt.Sprintf("is a %s, not a regular file; the agent will not replace it (remove it, or point the link elsewhere)", kindOf(e.Mode))
}

func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsDir():
		return "directory"
	default:
		return "special file"
	}
}

func (in Input) fileChange(host *hostfs.Reader, f nodeagent.File) (*nodeagent.FileChange, error) {
	if f.Mode&modeBits == 0 {
		f.Mode = defaultMode
	}
	f.Mode &= modeBits
	f.Owner, f.Group = orRoot(f.Owner), orRoot(f.Group)
	cur, err := readCurrent(host, f.Path)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	if !cur.exists {
		return &nodeagent.FileChange{File: f, Reason: "new file"}, nil
	}
	var reasons []string
	if !bytes.Equal(cur.data, f.Content) {
		reasons = append(reasons, in.contentReason(f.Sources, "differs from desired"))
	}
	if cur.mode != f.Mode {
		reasons = append(reasons, fmt.Sprintf("mode %s -> %s", octal(cur.mode), octal(f.Mode)))
	}
	if cur.owner != f.Owner || cur.group != f.Group {
		reasons = append(reasons, fmt.Sprintf("owner %s:%s -> %s:%s", cur.owner, cur.group, f.Owner, f.Group))
	}
	if len(reasons) == 0 {
		return nil, nil
	}
	return &nodeagent.FileChange{File: f, Old: cur.data, Existed: true, Reason: strings.Join(reasons, "; ")}, nil
}

// contentReason explains a content difference: the changed topology paths
// that feed the file, else what (differs) says, marked as a possible hand
// edit when a previous document was applied and nothing feeding the file
// changed.
func (in Input) contentReason(sources []string, differs string) string {
	if matched := intersect(sources, in.Changes); len(matched) > 0 {
		return strings.Join(matched, ", ") + " changed"
	}
	if in.PreviousSerial == 0 && in.Changes == nil {
		return differs
	}
	return differs + " (edited on the host?)"
}

// intersect returns the changes that fall under or above a source, on path
// segment boundaries: source "products.shop" matches change
// "products.shop.database.master", source "nodes.db-a.ip" matches change
// "nodes.db-a" (an entry added or removed), and "products.shop" does not
// match "products.shopping".
func intersect(sources, changes []string) []string {
	var out []string
	for _, c := range changes {
		for _, s := range sources {
			if within(c, s) || within(s, c) {
				out = append(out, c)
				break
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// within reports whether document path p is root or below it.
func within(p, root string) bool {
	if p == root {
		return true
	}
	rest, ok := strings.CutPrefix(p, root)
	return ok && root != "" && (rest[0] == '.' || rest[0] == '[')
}

func (in Input) hostsChange(host *hostfs.Reader) (*nodeagent.FileChange, error) {
	cur, err := readCurrent(host, HostsPath)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	merged, changed := hostsfile.Merge(cur.data, in.Desired.Hosts)
	if !changed {
		return nil, nil
	}
	f := nodeagent.File{
		Path: HostsPath, Content: merged, Mode: defaultMode,
		Owner: "root", Group: "root", Sources: hostsSources,
	}
	if !cur.exists {
		return &nodeagent.FileChange{File: f, Reason: "new file"}, nil
	}
	f.Mode, f.Owner, f.Group = cur.mode, cur.owner, cur.group
	differs := "managed block differs from desired"
	if !bytes.Contains(cur.data, []byte(hostsfile.BeginMarker)) {
		differs = "managed block missing"
	}
	return &nodeagent.FileChange{File: f, Old: cur.data, Existed: true, Reason: in.contentReason(hostsSources, differs)}, nil
}

func (in Input) serviceActions(ctx context.Context, files []nodeagent.FileChange) ([]nodeagent.ServiceAction, error) {
	changedBy := map[string][]string{}
	for _, f := range files {
		for _, s := range f.Services {
			changedBy[s] = append(changedBy[s], f.Path)
		}
	}
	var actions []nodeagent.ServiceAction
	for _, s := range in.Desired.Services {
		active, err := in.Services.Active(ctx, s.Unit)
		if err != nil {
			return nil, fmt.Errorf("plan: is %s (%s) running: %w", s.Name, s.Unit, err)
		}
		a := nodeagent.ServiceAction{Service: s.Name, Unit: s.Unit}
		switch paths := changedBy[s.Name]; {
		case !active:
			a.Kind, a.Reason = nodeagent.ActionStart, "should run, is stopped"
		case len(paths) > 0:
			a.Kind = cmp.Or(s.Reload, nodeagent.ActionReload)
			a.Reason = strings.Join(paths, ", ") + " changed"
		default:
			continue
		}
		actions = append(actions, a)
	}
	SortActions(actions)
	return actions, nil
}

// SortActions orders service actions the way Apply runs them: starts first,
// then reloads and restarts, each by service name.
func SortActions(actions []nodeagent.ServiceAction) {
	slices.SortStableFunc(actions, func(a, b nodeagent.ServiceAction) int {
		return cmp.Or(cmp.Compare(rank(a.Kind), rank(b.Kind)), cmp.Compare(a.Service, b.Service), cmp.Compare(a.Unit, b.Unit))
	})
}

func rank(k nodeagent.ActionKind) int {
	if k == nodeagent.ActionStart {
		return 0
	}
	return 1
}

func orRoot(name string) string { return cmp.Or(name, "root") }

// octal prints a mode the way chmod takes it: "0644", "2755".
func octal(m fs.FileMode) string {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return fmt.Sprintf("%04o", v)
}
