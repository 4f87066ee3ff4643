package agentbackend

import (
	"context"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/agentbackend/agentbackend/internal/pathjail"
	"github.com/agentbackend/agentbackend/internal/shellfs"
)

// ContainerBackend searches next to the data: Glob and Grep list the whole
// tree below their directory with one find in the container (instead of a
// listing per directory), and Grep asks grep in the container for the
// files that contain the pattern's required literal, so only those are
// read out. The matching itself is this package's (the same engine as every
// backend), so results are exactly those of the generic implementation.

// Glob matches a doublestar pattern below dir (see the package-level Glob).
func (b *ContainerBackend) Glob(ctx context.Context, pattern, dir string) ([]string, error) {
	if err := b.check("glob"); err != nil {
		return nil, err
	}
	return globTree(ctx, &containerTree{b: b}, pattern, dir)
}

// Grep searches file contents (see the package-level Grep).
func (b *ContainerBackend) Grep(ctx context.Context, opts GrepOptions) (*GrepResult, error) {
	if err := b.check("grep"); err != nil {
		return nil, err
	}
	return grepTree(ctx, &containerTree{b: b}, opts)
}

// RealPath follows the symbolic links in a workspace path inside the
// container (see LinkResolver), with one call to an op shell. A link that
// leads out of the workspace directory is PATH_ESCAPE_ATTEMPT.
func (b *ContainerBackend) RealPath(ctx context.Context, p string) (string, error) {
	rel, abs, err := b.locate("realpath", p)
	if err != nil {
		return "", err
	}
	if rel == "." {
		return rel, nil
	}
	reply, err := b.shellRunIn(ctx, nil, nil, "ab_real", nil, b.root, abs)
	if err != nil || reply.Code != 0 {
		return "", b.fileErr(CodeReadFailed, "realpath", p, reply, err)
	}
	root, real, ok := strings.Cut(strings.TrimSuffix(string(reply.Text), "\n"), "\n")
	if !ok {
		return "", errFileOp(CodeReadFailed, "realpath", p, shellfs.ErrProtocol)
	}
	r, inside := pathjail.Resolve(root, real)
	if !inside || !strings.HasPrefix(real, "/") || (real != root && !strings.HasPrefix(real, strings.TrimSuffix(root, "/")+"/")) {
		return "", errPathEscape("realpath", p)
	}
	return r, nil
}

// containerTree is a search tree over a container: the listing below the
// first directory opened comes from one snapshot; other directories (the
// ancestors whose ignore files apply) are listed one by one.
type containerTree struct {
	b     *ContainerBackend
	once  sync.Once
	dirs  map[string][]FileInfo // root-relative directory -> entries, sorted
	snErr error
}

func (t *containerTree) root() string { return t.b.root }

func (t *containerTree) stat(ctx context.Context, rel string) (FileInfo, error) {
	return t.b.Stat(ctx, rel)
}

func (t *containerTree) readFile(ctx context.Context, rel string) ([]byte, error) {
	return t.b.Read(ctx, rel)
}

func (t *containerTree) openDir(ctx context.Context, rel string) (treeDir, error) {
	t.once.Do(func() { t.snErr = t.snapshot(ctx, rel) })
	if t.snErr != nil {
		return nil, t.snErr
	}
	if _, ok := t.dirs[rel]; ok {
		return containerSnapDir{t, rel}, nil
	}
	return dirAt{t.b, rel}, nil
}

// snapshot lists everything below rel in one call.
func (t *containerTree) snapshot(ctx context.Context, rel string) error {
	abs := joinRoot(t.b.root, rel)
	reply, err := t.b.shellRunIn(ctx, []string{abs}, nil, "ab_tree", nil, abs)
	if err != nil || reply.Code != 0 {
		return t.b.fileErr(CodeLsFailed, "readdir", rel, reply, err)
	}
	t.dirs = map[string][]FileInfo{rel: {}}
	prefix := dirPrefix(abs)
	for _, rec := range splitStatRecords(string(reply.Text), prefix) {
		fi, name, ok := parseStatRecord(rec)
		below, inside := strings.CutPrefix(name, prefix)
		if !ok || !inside || below == "" {
			continue
		}
		full := pathjail.JoinRel(rel, below)
		fi.Name = path.Base(full)
		parent := path.Dir(full)
		t.dirs[parent] = append(t.dirs[parent], fi)
		if fi.IsDir {
			if _, seen := t.dirs[full]; !seen {
				t.dirs[full] = []FileInfo{}
			}
		}
	}
	for dir, entries := range t.dirs {
		slices.SortFunc(entries, func(a, b FileInfo) int { return strings.Compare(a.Name, b.Name) })
		t.dirs[dir] = entries
	}
	return nil
}

// candidates implements candidateFinder with grep -rlF in the container.
func (t *containerTree) candidates(ctx context.Context, start string, literal []byte) (map[string]bool, error) {
	abs := joinRoot(t.b.root, start)
	reply, err := t.b.shellRunIn(ctx, []string{abs}, nil, "ab_grepl", nil, abs, string(literal))
	if err != nil || reply.Code != 0 {
		return nil, t.b.fileErr(CodeReadFailed, "grep", start, reply, err)
	}
	found := map[string]bool{}
	prefix := dirPrefix(abs)
	for line := range strings.SplitSeq(strings.TrimSuffix(string(reply.Text), "\n"), "\n") {
		// grep prints the path as given ("dir//name" when dir ends in /).
		below, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		found[pathjail.JoinRel(start, strings.TrimLeft(below, "/"))] = true
	}
	return found, nil
}

// containerSnapDir is a directory of the snapshot; files are read on
// demand.
type containerSnapDir struct {
	t   *containerTree
	rel string
}

func (d containerSnapDir) list(context.Context) ([]FileInfo, error) { return d.t.dirs[d.rel], nil }

func (d containerSnapDir) read(ctx context.Context, name string, _ []byte) ([]byte, error) {
	return d.t.b.Read(ctx, pathjail.JoinRel(d.rel, name))
}

func (d containerSnapDir) sub(_ context.Context, name string) (treeDir, error) {
	return containerSnapDir{d.t, pathjail.JoinRel(d.rel, name)}, nil
}

func (d containerSnapDir) close() {}
