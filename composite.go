package agentbackend

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"golang.org/x/sync/errgroup"

	"github.com/agentbackend/agentbackend/internal/pathjail"
)

// CompositeBackend routes paths to backends by prefix: "/tmp/" to a memory
// backend and "/project/" to a local one, say, with everything else going to
// the default backend. Its namespace is virtual, rooted at "/": a path is
// resolved against "/" with the usual rule, the longest matching route
// prefix wins, and the path reaches that backend with the prefix removed
// ("/project/a.go" is "a.go" to the project backend).
//
// Mount points appear in listings of their parent directory and can be
// stat'ed; removing or renaming a mount point itself is refused. A rename
// within one backend is that backend's rename; across backends it copies
// and then removes the source, and a failed copy leaves the source as it
// was. Glob, Grep and Ls fan out to the routes concurrently (each route
// using its own fast path) and return paths in the composite's namespace;
// entries of a backend hidden under another route's prefix are left out.
//
// Exec runs on the backend its working directory routes to: the default
// backend unless ExecOptions.Cwd lies under a route.
//
// Close closes the default backend and every routed backend, each once.
type CompositeBackend struct {
	lifecycle
	def    FileBackend
	routes []route // longest prefix first
	view   bool    // a scope's view of another composite (see jail): its backends are not its own
}

// route is one mounted backend.
type route struct {
	prefix string // clean, root-relative, never "."
	b      FileBackend
}

// NewComposite returns a composite of def and the routed backends. Route
// prefixes are paths ("/tmp/", "project", "data/raw"); they are cleaned,
// must not contain "..", must not be the root and must be distinct.
func NewComposite(def FileBackend, routes map[string]FileBackend) (*CompositeBackend, error) {
	if def == nil {
		return nil, errConfig("composite: a default backend is required")
	}
	c := &CompositeBackend{def: def}
	c.init(TypeComposite, StatusConnected)
	seen := map[string]string{}
	for prefix, b := range routes {
		rel, ok := pathjail.ValidScope(prefix)
		if !ok || rel == "." {
			return nil, errConfig("composite: invalid route prefix %q: it must name a directory below the root, without ..", prefix)
		}
		if b == nil {
			return nil, errConfig("composite: route %q has no backend", prefix)
		}
		if other, dup := seen[rel]; dup {
			return nil, errConfig("composite: routes %q and %q are the same path", other, prefix)
		}
		seen[rel] = prefix
		c.routes = append(c.routes, route{rel, b})
	}
	slices.SortFunc(c.routes, func(a, b route) int { return len(b.prefix) - len(a.prefix) })
	return c, nil
}

// RootDir returns "/": the composite's namespace is virtual.
func (c *CompositeBackend) RootDir() string { return "/" }

// Default returns the default backend.
func (c *CompositeBackend) Default() FileBackend { return c.def }

// Scope returns a scope of the composite, jailed by the backends it
// routes to; see ScopedBackend.
func (c *CompositeBackend) Scope(path string, cfg *ScopeConfig) (*ScopedBackend, error) {
	return NewScope(c, path, cfg)
}

// Close closes the default backend and every routed backend, each once,
// and moves the composite to destroyed. Idempotent.
func (c *CompositeBackend) Close() error {
	if c.view {
		return nil // a scope's view is released by its scope, never closed
	}
	first, err := c.destroy()
	if !first {
		return nil
	}
	errs := []error{err}
	closed := map[FileBackend]bool{}
	for _, b := range append([]FileBackend{c.def}, c.backends()...) {
		if !closed[b] {
			closed[b] = true
			errs = append(errs, b.Close())
		}
	}
	return errors.Join(errs...)
}

func (c *CompositeBackend) backends() []FileBackend {
	out := make([]FileBackend, len(c.routes))
	for i, r := range c.routes {
		out[i] = r.b
	}
	return out
}

// target is where a composite path goes.
type target struct {
	b      FileBackend
	prefix string // the route prefix; "" for the default backend
	inner  string // the path inside b
}

// mountPoint reports whether the path is a route's prefix itself.
func (t target) mountPoint() bool { return t.prefix != "" && t.inner == "." }

// resolve checks the composite is open, resolves p and finds its route.
func (c *CompositeBackend) resolve(op, p string) (target, string, error) {
	if err := c.checkOpen(op); err != nil {
		return target{}, "", err
	}
	rel, err := resolve("/", op, p)
	if err != nil {
		return target{}, "", err
	}
	return c.route(rel), rel, nil
}

// route finds the backend for a resolved path: the longest matching prefix.
func (c *CompositeBackend) route(rel string) target {
	for _, r := range c.routes {
		if below, ok := belowOrSame(r.prefix, rel); ok {
			return target{r.b, r.prefix, below}
		}
	}
	return target{c.def, "", rel}
}

// belowOrSame returns rel relative to dir when rel is dir or inside it.
func belowOrSame(dir, rel string) (string, bool) {
	if rel == dir {
		return ".", true
	}
	return belowDir(dir, rel)
}

// mountsIn returns the names of mount points (or directories leading to
// them) directly inside the directory rel.
func (c *CompositeBackend) mountsIn(rel string) []string {
	var names []string
	for _, r := range c.routes {
		below, ok := belowDir(rel, r.prefix)
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(below, "/")
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

// hasMountsBelow reports whether a route lies strictly inside rel.
func (c *CompositeBackend) hasMountsBelow(rel string) bool { return len(c.mountsIn(rel)) > 0 }

// shadowed reports whether the default-or-route path rel (composite
// namespace) belongs to a different route than t: such entries of t's
// backend are hidden behind the other mount.
func (c *CompositeBackend) shadowed(t target, rel string) bool {
	return c.route(rel).prefix != t.prefix
}

// Read reads a file from the backend its path routes to.
func (c *CompositeBackend) Read(ctx context.Context, p string) ([]byte, error) {
	t, _, err := c.resolve("read", p)
	if err != nil {
		return nil, err
	}
	data, err := t.b.Read(ctx, t.inner)
	return data, withPath(err, t.inner, p)
}

// Write writes a file to the backend its path routes to.
func (c *CompositeBackend) Write(ctx context.Context, p string, data []byte) error {
	t, _, err := c.resolve("write", p)
	if err != nil {
		return err
	}
	if t.mountPoint() {
		return errFileOp(CodeWriteFailed, "write", p, errIsMount)
	}
	return withPath(t.b.Write(ctx, t.inner, data), t.inner, p)
}

var errIsMount = errors.New("is a mount point of the composite backend")

// ReadDir lists a directory, with the mount points inside it.
func (c *CompositeBackend) ReadDir(ctx context.Context, p string) ([]string, error) {
	infos, err := c.ReadDirInfo(ctx, p)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(infos))
	for i, fi := range infos {
		names[i] = fi.Name
	}
	return names, nil
}

// ReadDirInfo lists a directory with metadata, with the mount points
// inside it as directories.
func (c *CompositeBackend) ReadDirInfo(ctx context.Context, p string) ([]FileInfo, error) {
	return c.readDir(ctx, p, readDirInfo)
}

// readDir lists p with list (readDirInfo, or listTypes) on the backend
// it routes to, with the mount points inside it.
func (c *CompositeBackend) readDir(ctx context.Context, p string, list dirLister) ([]FileInfo, error) {
	t, rel, err := c.resolve("readdir", p)
	if err != nil {
		return nil, err
	}
	mounts := c.mountsIn(rel)
	infos, err := list(ctx, t.b, t.inner)
	if err != nil {
		if len(mounts) == 0 || !errors.Is(err, fs.ErrNotExist) {
			return nil, withPath(err, t.inner, p)
		}
		infos = nil // a directory that exists only to hold mount points
	}
	infos = slices.DeleteFunc(infos, func(fi FileInfo) bool { return slices.Contains(mounts, fi.Name) })
	for _, name := range mounts {
		fi, err := c.stat(ctx, pathjail.JoinRel(rel, name))
		if err != nil {
			fi = FileInfo{IsDir: true, Mode: fs.ModeDir | 0o755}
		}
		fi.Name = name
		infos = append(infos, fi)
	}
	slices.SortFunc(infos, func(a, b FileInfo) int { return strings.Compare(a.Name, b.Name) })
	return infos, nil
}

// Mkdir creates a directory in the backend its path routes to.
func (c *CompositeBackend) Mkdir(ctx context.Context, p string) error {
	t, _, err := c.resolve("mkdir", p)
	if err != nil {
		return err
	}
	return withPath(t.b.Mkdir(ctx, t.inner), t.inner, p)
}

// Exists reports whether a path exists; mount points and the directories
// leading to them always do.
func (c *CompositeBackend) Exists(ctx context.Context, p string) (bool, error) {
	t, rel, err := c.resolve("exists", p)
	if err != nil {
		return false, err
	}
	if c.hasMountsBelow(rel) {
		return true, nil
	}
	ok, err := t.b.Exists(ctx, t.inner)
	return ok, withPath(err, t.inner, p)
}

// Stat describes a path; a mount point is its backend's root, and a
// directory that exists only to lead to mount points is a directory.
func (c *CompositeBackend) Stat(ctx context.Context, p string) (FileInfo, error) {
	_, rel, err := c.resolve("stat", p)
	if err != nil {
		return FileInfo{}, err
	}
	fi, err := c.stat(ctx, rel)
	return fi, withPath(err, rel, p)
}

func (c *CompositeBackend) stat(ctx context.Context, rel string) (FileInfo, error) {
	t := c.route(rel)
	fi, err := t.b.Stat(ctx, t.inner)
	if err != nil && c.hasMountsBelow(rel) && errors.Is(err, fs.ErrNotExist) {
		fi, err = FileInfo{IsDir: true, Mode: fs.ModeDir | 0o755}, nil
	}
	if err != nil {
		return FileInfo{}, withPath(err, t.inner, rel)
	}
	fi.Name = pathBase(rel)
	return fi, nil
}

func pathBase(rel string) string {
	if rel == "." {
		return "."
	}
	return rel[strings.LastIndexByte(rel, '/')+1:]
}

// Remove deletes a path in the backend it routes to. Mount points, and
// directories holding them, are refused.
func (c *CompositeBackend) Remove(ctx context.Context, p string, opts RemoveOptions) error {
	t, rel, err := c.resolve("rm", p)
	if err != nil {
		return err
	}
	if t.mountPoint() || c.hasMountsBelow(rel) {
		return errFileOp(CodeWriteFailed, "rm", p, errors.New("is or contains a mount point of the composite backend"))
	}
	return withPath(t.b.Remove(ctx, t.inner, opts), t.inner, p)
}

// Touch creates an empty file in the backend its path routes to.
func (c *CompositeBackend) Touch(ctx context.Context, p string) error {
	t, _, err := c.resolve("touch", p)
	if err != nil {
		return err
	}
	if t.mountPoint() {
		return errFileOp(CodeWriteFailed, "touch", p, errIsMount)
	}
	return withPath(t.b.Touch(ctx, t.inner), t.inner, p)
}

// Rename moves a path: the backend's own rename when both paths route to
// one backend, else a copy followed by removing the source. A failed copy
// removes what it copied and leaves the source untouched.
func (c *CompositeBackend) Rename(ctx context.Context, from, to string) error {
	src, srcRel, err := c.resolve("rename", from)
	if err != nil {
		return err
	}
	dst, _, err := c.resolve("rename", to)
	if err != nil {
		return err
	}
	if src.mountPoint() || dst.mountPoint() || c.hasMountsBelow(srcRel) {
		return errFileOp(CodeWriteFailed, "rename", from, errors.New("is, contains or targets a mount point of the composite backend"))
	}
	if src.b == dst.b && src.prefix == dst.prefix {
		err := src.b.Rename(ctx, src.inner, dst.inner)
		return withPath(withPath(err, src.inner, from), dst.inner, to)
	}
	if err := copyTree(ctx, src.b, src.inner, dst.b, dst.inner); err != nil {
		_ = dst.b.Remove(context.WithoutCancel(ctx), dst.inner, RemoveOptions{Recursive: true, Force: true})
		return withPath(withPath(err, src.inner, from), dst.inner, to)
	}
	return withPath(src.b.Remove(ctx, src.inner, RemoveOptions{Recursive: true}), src.inner, from)
}

// copyTree copies a file or a directory tree between backends.
func copyTree(ctx context.Context, from FileBackend, src string, to FileBackend, dst string) error {
	fi, err := from.Stat(ctx, src)
	if err != nil {
		return err
	}
	if !fi.IsDir {
		data, err := from.Read(ctx, src)
		if err != nil {
			return err
		}
		return to.Write(ctx, dst, data)
	}
	if err := to.Mkdir(ctx, dst); err != nil {
		return err
	}
	names, err := from.ReadDir(ctx, src)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := copyTree(ctx, from, pathjail.JoinRel(src, name), to, pathjail.JoinRel(dst, name)); err != nil {
			return err
		}
	}
	return nil
}

// Exec runs a command on the backend its working directory routes to: the
// default backend when opts.Cwd is empty, the routed backend (with the
// prefix removed from the Cwd) when it lies under a route.
func (c *CompositeBackend) Exec(ctx context.Context, command string, opts *ExecOptions) (*ExecResult, error) {
	if err := c.checkOpen("exec"); err != nil {
		return nil, err
	}
	if opts == nil || opts.Cwd == "" {
		return c.def.Exec(ctx, command, opts)
	}
	t, _, err := c.resolve("exec", opts.Cwd)
	if err != nil {
		return nil, err
	}
	o := *opts
	o.Cwd = t.inner
	res, err := t.b.Exec(ctx, command, &o)
	return res, withPath(err, t.inner, opts.Cwd)
}

// Glob matches a pattern across the default backend and every route that
// can hold matches, concurrently; paths are relative to dir.
func (c *CompositeBackend) Glob(ctx context.Context, pattern, dir string) ([]string, error) {
	t, rel, err := c.resolve("glob", dir)
	if err != nil {
		return nil, err
	}
	var found resultSet[string]
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		names, err := Glob(gctx, t.b, pattern, t.inner)
		if err != nil && !(errors.Is(err, fs.ErrNotExist) && c.hasMountsBelow(rel)) {
			return withPath(err, t.inner, dir)
		}
		for _, n := range names {
			if !c.shadowed(t, pathjail.JoinRel(rel, n)) {
				found.add(n)
			}
		}
		return nil
	})
	for _, r := range c.routesBelow(rel) {
		q, _ := belowDir(rel, r.prefix)
		g.Go(func() error {
			names, err := globRoute(gctx, r.b, pattern, q)
			if err != nil {
				return err
			}
			for _, n := range names {
				if c.route(pathjail.JoinRel(rel, n)).prefix == r.prefix {
					found.add(n)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	slices.Sort(found.items)
	return slices.Compact(found.items), nil
}

// routesBelow returns the routes strictly inside rel.
func (c *CompositeBackend) routesBelow(rel string) []route {
	var out []route
	for _, r := range c.routes {
		if _, ok := belowDir(rel, r.prefix); ok {
			out = append(out, r)
		}
	}
	return out
}

// globRoute returns the paths (relative to the glob's directory) that match
// pattern inside a backend mounted at q (relative to that directory).
func globRoute(ctx context.Context, b FileBackend, pattern, q string) ([]string, error) {
	var out []string
	if ok, _ := doublestar.Match(pattern, q); ok {
		out = append(out, q)
	}
	psegs := strings.Split(pattern, "/")
	qsegs := strings.Split(q, "/")
	filterAll := braceHoldsSlash(pattern)
	for i, qs := range qsegs {
		if filterAll || i >= len(psegs) {
			break
		}
		if psegs[i] == "**" {
			filterAll = true
			break
		}
		if ok, _ := doublestar.Match(psegs[i], qs); !ok {
			return out, nil
		}
	}
	if !filterAll {
		if len(psegs) <= len(qsegs) {
			return out, nil // the pattern ends at or above the mount point
		}
		names, err := Glob(ctx, b, strings.Join(psegs[len(qsegs):], "/"), ".")
		for _, n := range names {
			out = append(out, q+"/"+n)
		}
		return out, err
	}
	// The pattern can reach the mount at any depth: list everything in it
	// and keep what matches the whole pattern.
	names, err := Glob(ctx, b, "**", ".")
	for _, n := range names {
		if ok, _ := doublestar.Match(pattern, q+"/"+n); ok {
			out = append(out, q+"/"+n)
		}
	}
	return out, err
}

// Grep searches the default backend and every route under opts.Path
// concurrently and merges the results in the composite's namespace.
func (c *CompositeBackend) Grep(ctx context.Context, opts GrepOptions) (*GrepResult, error) {
	t, rel, err := c.resolve("grep", opts.Path)
	if err != nil {
		return nil, err
	}
	if err := opts.check(); err != nil {
		return nil, err
	}
	if _, err := newLineMatcher(opts); err != nil {
		return nil, err
	}
	filter, err := newFileFilter(opts)
	if err != nil {
		return nil, err
	}
	// Each part searches without the head limit (applied after merging) and
	// without a path-based glob (relative to opts.Path, applied here).
	part := opts
	part.HeadLimit = 0
	if !filter.byName {
		part.Glob = ""
	}
	if part.Mode == "" {
		part.Mode = GrepFilesWithMatches
	}
	parts := []target{t}
	for _, r := range c.routesBelow(rel) {
		parts = append(parts, target{r.b, r.prefix, "."})
	}
	results := make([]*GrepResult, len(parts))
	g, gctx := errgroup.WithContext(ctx)
	for i, pt := range parts {
		g.Go(func() error {
			o := part
			o.Path = pt.inner
			res, err := Grep(gctx, pt.b, o)
			if err != nil && i == 0 && errors.Is(err, fs.ErrNotExist) && len(parts) > 1 {
				return nil // the path exists only as a parent of mount points
			}
			results[i] = res
			return withPath(err, pt.inner, opts.Path)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var sink mergedGrep
	for i, res := range results {
		if res == nil {
			continue
		}
		pt := parts[i]
		outer := func(p string) (string, bool) {
			full := p
			if pt.prefix != "" {
				full = pathjail.JoinRel(pt.prefix, p)
			}
			below, _ := belowOrSame(rel, full)
			return full, !c.shadowed(pt, full) && filter.keep(below)
		}
		sink.add(res, outer)
	}
	return sink.result(part.Mode, opts.HeadLimit), nil
}

// mergedGrep merges per-backend grep results.
type mergedGrep struct{ GrepResult }

func (m *mergedGrep) add(r *GrepResult, outer func(string) (string, bool)) {
	for _, f := range r.Files {
		if p, ok := outer(f); ok {
			m.Files = append(m.Files, p)
		}
	}
	for _, cnt := range r.Counts {
		if p, ok := outer(cnt.Path); ok {
			m.Counts = append(m.Counts, GrepFileCount{p, cnt.Count})
		}
	}
	for _, l := range r.Lines {
		if p, ok := outer(l.Path); ok {
			l.Path = p
			m.Lines = append(m.Lines, l)
		}
	}
}

func (m *mergedGrep) result(mode GrepMode, headLimit int) *GrepResult {
	r := &m.GrepResult
	r.Mode = mode
	slices.Sort(r.Files)
	slices.SortFunc(r.Counts, func(a, b GrepFileCount) int { return strings.Compare(a.Path, b.Path) })
	slices.SortStableFunc(r.Lines, func(a, b GrepLine) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return a.Line - b.Line
	})
	r.limit(headLimit)
	return r
}
