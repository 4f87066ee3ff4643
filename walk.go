package agentbackend

import (
	"context"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/agentbackend/agentbackend/internal/pathjail"
)

// This file is the tree walk under Glob and Grep: one engine, parallel,
// skipping version-control directories and (for Grep) hidden and ignored
// entries. It walks a tree, which any FileBackend provides through its
// ordinary methods (backendTree) and a backend with faster access provides
// itself (LocalBackend walks its os.Root directory by directory).

// tree is a directory tree the search tools walk.
type tree interface {
	// root is the absolute root that user paths resolve against.
	root() string
	// openDir opens the directory at rel (clean, root-relative).
	openDir(ctx context.Context, rel string) (treeDir, error)
	// stat describes the entry at rel.
	stat(ctx context.Context, rel string) (FileInfo, error)
	// readFile reads the file at rel.
	readFile(ctx context.Context, rel string) ([]byte, error)
}

// treeDir is one open directory of a tree.
type treeDir interface {
	// list returns the directory's entries sorted by name.
	list(ctx context.Context) ([]FileInfo, error)
	// read reads the file name in this directory, into buf when it is
	// large enough (the caller may pass buf[:0] of a recycled buffer).
	read(ctx context.Context, name string, buf []byte) ([]byte, error)
	// sub opens the subdirectory name.
	sub(ctx context.Context, name string) (treeDir, error)
	// close releases the directory; sub-directories opened from it stay
	// usable.
	close()
}

// backendTree walks any FileBackend through readDirInfo and Read.
func backendTree(b FileBackend) tree { return genericTree{b} }

type genericTree struct{ b FileBackend }

func (t genericTree) root() string { return cleanRoot(t.b.RootDir()) }
func (t genericTree) openDir(_ context.Context, rel string) (treeDir, error) {
	return dirAt{t.b, rel}, nil
}
func (t genericTree) stat(ctx context.Context, rel string) (FileInfo, error) {
	return t.b.Stat(ctx, rel)
}
func (t genericTree) readFile(ctx context.Context, rel string) ([]byte, error) {
	return t.b.Read(ctx, rel)
}

// dirAt is a directory of a genericTree.
type dirAt struct {
	b   FileBackend
	rel string
}

func (d dirAt) list(ctx context.Context) ([]FileInfo, error) { return readDirInfo(ctx, d.b, d.rel) }
func (d dirAt) read(ctx context.Context, name string, _ []byte) ([]byte, error) {
	return d.b.Read(ctx, pathjail.JoinRel(d.rel, name))
}
func (d dirAt) sub(_ context.Context, name string) (treeDir, error) {
	return dirAt{d.b, pathjail.JoinRel(d.rel, name)}, nil
}
func (d dirAt) close() {}

// vcsDirs are version-control directories the walk never enters.
var vcsDirs = map[string]bool{".git": true, ".hg": true, ".svn": true, ".bzr": true, "_darcs": true, ".jj": true, "CVS": true}

// walkOptions shapes a walk.
type walkOptions struct {
	hidden   bool // visit entries whose names start with "."
	noIgnore bool // do not honour .gitignore and .ignore files
	// descend, if set, reports whether a directory (root-relative) may
	// contain anything of interest; returning false prunes it.
	descend func(rel string) bool
	// file is called for every file, from many goroutines at once.
	file func(ctx context.Context, d treeDir, rel string, fi FileInfo) error
	// dir, if set, is called for every directory below the start, from many
	// goroutines at once.
	dir func(rel string, fi FileInfo) error
}

// maxWalkDepth bounds how deep a walk goes, so a backend whose listings
// follow a symbolic-link cycle cannot make it run forever.
const maxWalkDepth = 256

// walkParallelism bounds the goroutines of one walk: the work is reading
// and matching files, so a few more than the CPUs keeps them busy while
// some wait on the disk.
func walkParallelism() int { return runtime.GOMAXPROCS(0) + 2 }

// walk visits the tree below the directory start (root-relative).
// Directories that cannot be listed below the start are skipped, as ripgrep
// does; the start itself must be listable.
func walk(ctx context.Context, t tree, start string, o walkOptions) error {
	d, err := t.openDir(ctx, start)
	if err != nil {
		return err
	}
	entries, err := d.list(ctx)
	if err != nil {
		d.close()
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(walkParallelism())
	w := &walker{opts: o, g: g}
	var ign *ignoreRules
	if !o.noIgnore && start != "." {
		ign = w.ancestorIgnores(gctx, t, start)
	}
	if err := w.visitListed(gctx, d, start, entries, ign); err != nil {
		_ = g.Wait()
		return err
	}
	return g.Wait()
}

type walker struct {
	opts walkOptions
	g    *errgroup.Group
}

// visitDir lists and visits one directory, closing it afterwards.
func (w *walker) visitDir(ctx context.Context, d treeDir, rel string, ign *ignoreRules) error {
	entries, err := d.list(ctx)
	if err != nil {
		d.close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return nil // unreadable directories are skipped
	}
	return w.visitListed(ctx, d, rel, entries, ign)
}

func (w *walker) visitListed(ctx context.Context, d treeDir, rel string, entries []FileInfo, ign *ignoreRules) error {
	defer d.close()
	if !w.opts.noIgnore {
		ign = loadIgnores(ctx, d, rel, entries, ign)
	}
	var subdirs []FileInfo
	for _, fi := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := fi.Name
		if fi.IsDir && fi.Symlink {
			continue // not followed, as ripgrep does: a link may lead back up and loop
		}
		if (!w.opts.hidden && strings.HasPrefix(name, ".")) || (fi.IsDir && vcsDirs[name]) {
			continue
		}
		child := pathjail.JoinRel(rel, name)
		if ign.ignored(child, fi.IsDir) {
			continue
		}
		if fi.IsDir {
			subdirs = append(subdirs, fi)
			continue
		}
		if err := w.opts.file(ctx, d, child, fi); err != nil {
			return err
		}
	}
	for _, fi := range subdirs {
		child := pathjail.JoinRel(rel, fi.Name)
		if w.opts.dir != nil {
			if err := w.opts.dir(child, fi); err != nil {
				return err
			}
		}
		if (w.opts.descend != nil && !w.opts.descend(child)) || strings.Count(child, "/") >= maxWalkDepth {
			continue
		}
		sd, err := d.sub(ctx, fi.Name)
		if err != nil {
			continue // vanished or unreadable: skip like ripgrep
		}
		visit := func() error { return w.visitDir(ctx, sd, child, ign) }
		if !w.g.TryGo(visit) {
			if err := visit(); err != nil {
				return err
			}
		}
	}
	return nil
}

// ancestorIgnores loads the ignore files of the directories above start,
// so a search that starts in a subdirectory honours the rules its parents
// set, as git does.
func (w *walker) ancestorIgnores(ctx context.Context, t tree, start string) *ignoreRules {
	var ign *ignoreRules
	dirs := []string{"."}
	for i := range len(start) {
		if start[i] == '/' {
			dirs = append(dirs, start[:i])
		}
	}
	for _, rel := range dirs {
		d, err := t.openDir(ctx, rel)
		if err != nil {
			return ign
		}
		entries, err := d.list(ctx)
		if err == nil {
			ign = loadIgnores(ctx, d, rel, entries, ign)
		}
		d.close()
	}
	return ign
}

// startDir resolves a user's path for a walk and reports whether it names a
// directory (else a file).
func startDir(ctx context.Context, t tree, op, p string) (rel string, fi FileInfo, err error) {
	rel, err = resolve(t.root(), op, p)
	if err != nil {
		return "", FileInfo{}, err
	}
	fi, err = t.stat(ctx, rel)
	if err != nil {
		if _, ok := err.(*Error); !ok {
			err = errFileOp(CodeReadFailed, op, rel, err)
		}
		return "", FileInfo{}, withPath(err, rel, p)
	}
	return rel, fi, nil
}

// resultSet collects results from a parallel walk.
type resultSet[T any] struct {
	mu    sync.Mutex
	items []T
}

func (r *resultSet[T]) add(items ...T) {
	r.mu.Lock()
	r.items = append(r.items, items...)
	r.mu.Unlock()
}
