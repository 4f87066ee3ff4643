package agentbackend

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/agentbackend/agentbackend/internal/tmpfile"
)

// File operations of LocalBackend. Each one: checkOpen and ctx first, then
// the path rule (rel), then os.Root, whose errors fileErr converts.

// Open flags. O_NONBLOCK matters for FIFOs (opening one must not hang an
// agent until some writer appears) and costs nothing for regular files;
// it also spares os the fcntl calls it makes to try, and fail, to register a
// blocking descriptor with the poller.
const (
	readFlags  = os.O_RDONLY | oNonblock
	dirFlags   = os.O_RDONLY | oDirectory | oNonblock
	touchFlags = os.O_RDONLY | os.O_CREATE | oNonblock
	tempFlags  = os.O_WRONLY | os.O_CREATE | os.O_EXCL | oNonblock
)

// errNotRegular reports a read of something that is neither a file nor a
// directory (a FIFO, a device, a socket).
var errNotRegular = errors.New("not a regular file")

// Read returns a file's contents. Symbolic links are followed while they
// stay inside the workspace. Reading a directory or a non-regular file
// (FIFO, device) fails with READ_FAILED.
func (b *LocalBackend) Read(ctx context.Context, p string) ([]byte, error) {
	return b.readVia(ctx, p, func(d *dirHandle, rel string) (*os.File, error) {
		return d.fsys.OpenFile(rel, readFlags, 0)
	})
}

// readVia is Read with the file opened by open beneath the handle of b's
// directory (with readFlags: without blocking, so that a FIFO planted in the
// workspace cannot hang the caller); errLinkChanged from open is returned
// as it is.
func (b *LocalBackend) readVia(ctx context.Context, p string, open func(d *dirHandle, rel string) (*os.File, error)) ([]byte, error) {
	if err := b.begin(ctx, CodeReadFailed, "read", p); err != nil {
		return nil, err
	}
	rel, err := b.rel("read", p)
	if err != nil {
		return nil, err
	}
	d, err := b.open(false)
	if err != nil {
		return nil, b.fileErr(CodeReadFailed, "read", p, err)
	}
	f, err := open(d, rel)
	b.done(d)
	if err == errLinkChanged {
		return nil, err
	}
	var data []byte
	if err == nil {
		data, err = readOpenFile(f)
	}
	if err != nil {
		return nil, b.fileErr(CodeReadFailed, "read", p, err)
	}
	return data, nil
}

// readOpenFile reads the regular file f to its end, and closes it.
func readOpenFile(f *os.File) ([]byte, error) {
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	switch {
	case fi.IsDir():
		return nil, syscall.EISDIR
	case !fi.Mode().IsRegular():
		return nil, errNotRegular
	}
	// As os.ReadFile: one read for a file whose size is known, growing for
	// files (such as in /proc) that report a size of zero.
	data := make([]byte, 0, max(fi.Size()+1, 512))
	for {
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			return data, nil
		}
		if err != nil {
			return nil, err
		}
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
	}
}

// Write creates or replaces a file atomically: the data goes to a temporary
// file in the same directory, which then takes the target's place, so
// readers see the old contents or the new, never a mix, and a failed write
// leaves the old file as it was and no temporary file. On Linux the
// temporary file has no name while it is written (O_TMPFILE): a process
// killed meanwhile leaves nothing behind; it gets a hidden name
// ".agentbe-<hex>.tmp" only for the instant before the rename. Elsewhere
// it has that hidden name from the start. Listings and searches never show
// such names, and remove the ones a killed writer left (see ReadDir).
// An existing file keeps its permission bits (and, when this process may
// set it, its owner); a new one gets 0644 less the umask. Writing through a
// symbolic link that stays inside the workspace replaces the link's target
// and keeps the link. Missing parent directories are created.
//
// The data is not fsynced: the write is atomic with respect to other
// processes and to this process crashing, not to the machine losing power.
func (b *LocalBackend) Write(ctx context.Context, p string, data []byte) error {
	if err := b.begin(ctx, CodeWriteFailed, "write", p); err != nil {
		return err
	}
	rel, err := b.rel("write", p)
	if err != nil {
		return err
	}
	if err := b.writeFile(rel, data); err != nil {
		return b.fileErr(CodeWriteFailed, "write", p, err)
	}
	return nil
}

func (b *LocalBackend) writeFile(rel string, data []byte) error {
	if rel == "." {
		return syscall.EISDIR
	}
	d, err := b.open(true)
	if err != nil {
		return err
	}
	defer b.done(d)
	for range 40 { // the kernel's limit on links in a path
		if rel == "." {
			return syscall.EISDIR
		}
		next, err := d.writeOnce(rel, data)
		if err != nil || next == "" {
			return err
		}
		rel = next // rel was a symbolic link inside the workspace
	}
	return syscall.ELOOP
}

// writeFault, when a test sets it, is called at each step of an atomic
// write ("write", "rename") and may fail it. It exercises the clean-up that
// no real fault reaches reliably: running as root, permissions do not make
// a write or a rename fail.
var writeFault func(step string) error

// portableWrites makes Write use writeOnceRoot where writeOnceAt exists,
// so that tests cover both.
var portableWrites bool

// writeOnce writes data to rel (below d) atomically, unless rel is a
// symbolic link: then it returns the link's target (relative to d) for the
// caller to write instead.
func (d *dirHandle) writeOnce(rel string, data []byte) (next string, err error) {
	if haveWriteAt && !portableWrites {
		return d.writeOnceAt(rel, data)
	}
	return d.writeOnceRoot(rel, data)
}

// writeOnceRoot is writeOnce with os.Root alone, for systems without *at
// system calls in golang.org/x/sys/unix.
//
// The parent directory is opened once, as a root of its own, and every
// step (lstat, create, rename) is a single-name call on it: one path walk
// instead of four. Single names that are never followed (the temporary file
// is created with O_EXCL, rename and lstat do not follow the last element)
// cannot leave that directory, and the directory itself was reached through
// the workspace's os.Root.
func (d *dirHandle) writeOnceRoot(rel string, data []byte) (next string, err error) {
	dir, name := splitRel(rel)
	parent, err := d.openParent(dir)
	if err != nil {
		return "", err
	}
	if parent != d.fsys {
		defer parent.Close()
	}
	existing, err := parent.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		existing = nil
	case err != nil:
		return "", err
	case existing.Mode()&fs.ModeSymlink != 0:
		return linkTarget(parent, dir, name)
	case existing.IsDir():
		return "", syscall.EISDIR
	}
	perm := fs.FileMode(0o644)
	if existing != nil {
		perm = existing.Mode().Perm()
	}
	f, tmp, err := createTemp(parent, perm)
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil && existing != nil {
		err = keepOwnerAndMode(f, existing) // the umask applied at creation
	}
	if err == nil && writeFault != nil {
		err = writeFault("write")
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && writeFault != nil {
		err = writeFault("rename")
	}
	if err == nil {
		err = parent.Rename(tmp, name)
	}
	if err != nil {
		_ = parent.Remove(tmp)
	}
	return "", err
}

// splitRel splits a workspace path into its directory, without a trailing
// slash ("" for the workspace root: a trailing slash would cost os.Root an
// extra lstat), and its last element.
func splitRel(rel string) (dir, name string) {
	dir, name = path.Split(rel)
	return strings.TrimSuffix(dir, "/"), name
}

// openParent opens the directory dir ("" or "a/b") below d as a root,
// creating it (and its parents) when it is missing: only then, so the
// common case makes no extra call. d itself is d.fsys.
func (d *dirHandle) openParent(dir string) (*os.Root, error) {
	if dir == "" {
		return d.fsys, nil
	}
	parent, err := d.fsys.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err = d.fsys.MkdirAll(dir, 0o755); err == nil {
			parent, err = d.fsys.OpenRoot(dir)
		}
	}
	if err != nil {
		if fi, serr := d.fsys.Stat(dir); serr == nil && !fi.IsDir() {
			return nil, syscall.ENOTDIR // OpenRoot says so only in words
		}
		return nil, err
	}
	return parent, nil
}

// linkTarget returns the workspace path the link dir+name points to.
func linkTarget(parent *os.Root, dir, name string) (string, error) {
	link, err := parent.Readlink(name)
	if err != nil {
		return "", err
	}
	return resolveLink(dir, link)
}

// resolveLink joins a link's target to the link's directory. As with
// os.Root, an absolute target, or one that climbs above the workspace,
// escapes.
func resolveLink(dir, link string) (string, error) {
	next := path.Join(dir, link)
	if path.IsAbs(link) || next == ".." || strings.HasPrefix(next, "../") {
		return "", errLinkEscapes
	}
	return next, nil
}

// createTemp creates the named temporary file of a write in parent.
func createTemp(parent *os.Root, perm fs.FileMode) (*os.File, string, error) {
	for attempt := 0; ; attempt++ {
		tmp := tmpfile.Name()
		f, err := parent.OpenFile(tmp, tempFlags, perm)
		if errors.Is(err, fs.ErrExist) && attempt < 10 {
			continue // another write drew the same name
		}
		return f, tmp, err
	}
}

// ReadDir returns the sorted names of a directory's entries. The
// temporary files of writes in flight are left out (see Write), and one a
// killed writer left behind is removed when it is seen here, once it has
// not changed for a minute.
func (b *LocalBackend) ReadDir(ctx context.Context, p string) ([]string, error) {
	var names []string
	err := b.listDir(ctx, p, func(f *os.File, d *dirHandle, rel string) (err error) {
		if names, err = f.Readdirnames(-1); err == nil {
			names = tmpfile.Hide(names, func(name string) { tmpfile.RemoveStale(d.fsys, path.Join(rel, name)) })
			slices.Sort(names)
		}
		return err
	})
	return names, err
}

// listDir opens the directory p and calls read with it, the handle it was
// opened beneath and its path there; errors are LS_FAILED about p.
func (b *LocalBackend) listDir(ctx context.Context, p string, read func(f *os.File, d *dirHandle, rel string) error) error {
	if err := b.begin(ctx, CodeLsFailed, "readdir", p); err != nil {
		return err
	}
	rel, err := b.rel("readdir", p)
	if err != nil {
		return err
	}
	d, err := b.open(false)
	if err != nil {
		return b.fileErr(CodeLsFailed, "readdir", p, err)
	}
	defer b.done(d)
	f, err := d.fsys.OpenFile(rel, dirFlags, 0)
	if err != nil {
		return b.fileErr(CodeLsFailed, "readdir", p, err)
	}
	err = read(f, d, rel)
	f.Close()
	if err != nil {
		return b.fileErr(CodeLsFailed, "readdir", p, err)
	}
	return nil
}

// ReadDirInfo lists a directory with each entry's metadata, sorted by name
// (see InfoLister). A symbolic link is described by what it points to when
// that is inside the workspace, as Stat does, and as a link otherwise.
func (b *LocalBackend) ReadDirInfo(ctx context.Context, p string) ([]FileInfo, error) {
	if err := b.begin(ctx, CodeLsFailed, "readdir", p); err != nil {
		return nil, err
	}
	rel, err := b.rel("readdir", p)
	if err != nil {
		return nil, err
	}
	infos, err := b.readDirInfo(rel)
	if err != nil {
		return nil, b.fileErr(CodeLsFailed, "readdir", p, err)
	}
	return infos, nil
}

func (b *LocalBackend) readDirInfo(rel string) ([]FileInfo, error) {
	top, err := b.open(false)
	if err != nil {
		return nil, err
	}
	defer b.done(top)
	// The directory is opened as a root of its own, so each entry costs one
	// fstatat on its descriptor and a concurrent rename of a parent into a
	// symbolic link cannot redirect the listing.
	dir, err := top.fsys.OpenRoot(rel)
	if err != nil {
		if fi, serr := top.fsys.Stat(rel); serr == nil && !fi.IsDir() {
			return nil, syscall.ENOTDIR // OpenRoot says so only in words
		}
		return nil, err
	}
	defer dir.Close()
	f, err := dir.OpenFile(".", dirFlags, 0)
	if err != nil {
		return nil, err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, err
	}
	names = tmpfile.Hide(names, func(name string) { tmpfile.RemoveStale(dir, name) })
	slices.Sort(names)
	infos := make([]FileInfo, 0, len(names))
	for _, name := range names {
		fi, err := dir.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the listing
		}
		if err != nil {
			return nil, err
		}
		link := fi.Mode()&fs.ModeSymlink != 0
		if link {
			if target, err := top.fsys.Stat(path.Join(rel, name)); err == nil {
				fi = target
			}
		}
		info := localFileInfo(name, fi)
		info.Symlink = link
		infos = append(infos, info)
	}
	return infos, nil
}

func localFileInfo(name string, fi fs.FileInfo) FileInfo {
	return FileInfo{Name: name, Size: fi.Size(), Mode: fi.Mode(), ModTime: fi.ModTime(), IsDir: fi.IsDir()}
}

// Mkdir creates a directory and any missing parents with mode 0755 (less
// the umask). An existing directory, or a link to one inside the workspace,
// is not an error; an existing file is.
func (b *LocalBackend) Mkdir(ctx context.Context, p string) error {
	if err := b.begin(ctx, CodeWriteFailed, "mkdir", p); err != nil {
		return err
	}
	rel, err := b.rel("mkdir", p)
	if err != nil {
		return err
	}
	d, err := b.open(true)
	if err == nil {
		err = d.fsys.MkdirAll(rel, 0o755)
		b.done(d)
	}
	if err != nil {
		return b.fileErr(CodeWriteFailed, "mkdir", p, err)
	}
	return nil
}

// Exists reports whether a file or directory exists, following symbolic
// links that stay inside the workspace. A missing path, or one under a
// file, is (false, nil); a link leading outside is PATH_ESCAPE_ATTEMPT and
// other failures (permission denied) are READ_FAILED, since "I could not
// tell" is not "no".
func (b *LocalBackend) Exists(ctx context.Context, p string) (bool, error) {
	if err := b.begin(ctx, CodeReadFailed, "exists", p); err != nil {
		return false, err
	}
	rel, err := b.rel("exists", p)
	if err != nil {
		return false, err
	}
	d, err := b.open(false)
	if err == nil {
		_, err = d.fsys.Stat(rel)
		b.done(d)
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return false, nil
	default:
		return false, b.fileErr(CodeReadFailed, "exists", p, err)
	}
}

// Stat describes a file or directory, following symbolic links that stay
// inside the workspace. Name is the base name, "." for the workspace root.
func (b *LocalBackend) Stat(ctx context.Context, p string) (FileInfo, error) {
	if err := b.begin(ctx, CodeReadFailed, "stat", p); err != nil {
		return FileInfo{}, err
	}
	rel, err := b.rel("stat", p)
	if err != nil {
		return FileInfo{}, err
	}
	d, err := b.open(false)
	if err != nil {
		return FileInfo{}, b.fileErr(CodeReadFailed, "stat", p, err)
	}
	fi, err := d.fsys.Stat(rel)
	b.done(d)
	if err != nil {
		return FileInfo{}, b.fileErr(CodeReadFailed, "stat", p, err)
	}
	return localFileInfo(path.Base(rel), fi), nil
}

// errRemoveRoot refuses Remove of the workspace root itself.
var errRemoveRoot = errors.New("refusing to remove the workspace root")

// Remove deletes a file, a symbolic link (not its target) or, with
// opts.Recursive, a directory and everything in it; a directory without
// Recursive fails even when empty, like rm without -r. With opts.Force a
// missing path is not an error. The workspace root itself is never
// removed: Remove(".") fails with WRITE_FAILED (remove its entries
// instead), whatever the options, because deleting the directory would
// break the backend and every scope of it.
func (b *LocalBackend) Remove(ctx context.Context, p string, opts RemoveOptions) error {
	if err := b.begin(ctx, CodeWriteFailed, "rm", p); err != nil {
		return err
	}
	rel, err := b.rel("rm", p)
	if err != nil {
		return err
	}
	if rel == "." {
		if b.view != nil {
			// A scope's directory is its parent's entry.
			err := b.view.parent.Remove(ctx, b.view.name, opts)
			b.view.drop()
			return withPath(err, b.view.name, p)
		}
		return errFileOp(CodeWriteFailed, "rm", p, errRemoveRoot)
	}
	d, err := b.open(false)
	if err != nil {
		if opts.Force && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return b.fileErr(CodeWriteFailed, "rm", p, err)
	}
	defer b.done(d)
	fi, err := d.fsys.Lstat(rel)
	switch {
	case err != nil && opts.Force && errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return b.fileErr(CodeWriteFailed, "rm", p, err)
	case fi.IsDir() && !opts.Recursive:
		return errFileOp(CodeWriteFailed, "rm", p, &fs.PathError{Op: "rm", Path: p, Err: errIsDirectory})
	case fi.IsDir():
		err = d.fsys.RemoveAll(rel)
	default:
		err = d.fsys.Remove(rel)
	}
	if err != nil && !(opts.Force && errors.Is(err, fs.ErrNotExist)) {
		return b.fileErr(CodeWriteFailed, "rm", p, err)
	}
	return nil
}

// errIsDirectory is EISDIR with the way out in its message.
var errIsDirectory = &hintErr{syscall.EISDIR, "is a directory (set RemoveOptions.Recursive to remove it)"}

type hintErr struct {
	errno syscall.Errno
	text  string
}

func (e *hintErr) Error() string { return e.text }
func (e *hintErr) Unwrap() error { return e.errno }

// Rename moves a file or directory. Both paths are checked, and both stay
// inside the workspace even through symbolic links in their parents (the
// last element of each is not followed: a link is moved, not its target).
// Missing parents of the destination are created. An existing destination
// file is replaced; an existing destination directory is not (EEXIST).
func (b *LocalBackend) Rename(ctx context.Context, from, to string) error {
	if err := b.begin(ctx, CodeWriteFailed, "rename", from); err != nil {
		return err
	}
	relFrom, err := b.rel("rename", from)
	if err != nil {
		return err
	}
	relTo, err := b.rel("rename", to)
	if err != nil {
		return err
	}
	d, err := b.open(false)
	if err != nil {
		return b.fileErr(CodeWriteFailed, "rename", from, err)
	}
	defer b.done(d)
	err = d.fsys.Rename(relFrom, relTo)
	if errors.Is(err, fs.ErrNotExist) {
		// Either the source or the destination's parent is missing; only
		// the second is worth a MkdirAll and a second try.
		if _, serr := d.fsys.Lstat(relFrom); serr == nil {
			if dir := path.Dir(relTo); dir != "." {
				if err = d.fsys.MkdirAll(dir, 0o755); err != nil {
					return b.fileErr(CodeWriteFailed, "rename", to, err)
				}
			}
			err = d.fsys.Rename(relFrom, relTo)
		}
	}
	if err != nil {
		if isEscape(rootCause(err)) {
			// os.Root does not say which path escaped; name the one that does.
			if _, lerr := d.fsys.Lstat(relFrom); lerr == nil || !isEscape(rootCause(lerr)) {
				return errPathEscape("rename", to)
			}
		}
		return b.fileErr(CodeWriteFailed, "rename", from, err)
	}
	return nil
}

// Touch creates an empty file (mode 0644 less the umask, with missing
// parents) if nothing exists at the path. It never truncates and changes
// nothing about an existing file, not even its times.
func (b *LocalBackend) Touch(ctx context.Context, p string) error {
	if err := b.begin(ctx, CodeWriteFailed, "touch", p); err != nil {
		return err
	}
	rel, err := b.rel("touch", p)
	if err != nil {
		return err
	}
	d, err := b.open(true)
	if err != nil {
		return b.fileErr(CodeWriteFailed, "touch", p, err)
	}
	defer b.done(d)
	f, err := d.fsys.OpenFile(rel, touchFlags, 0o644)
	if errors.Is(err, fs.ErrNotExist) {
		if dir := path.Dir(rel); dir != "." {
			if err = d.fsys.MkdirAll(dir, 0o755); err == nil {
				f, err = d.fsys.OpenFile(rel, touchFlags, 0o644)
			}
		}
	}
	if err != nil {
		return b.fileErr(CodeWriteFailed, "touch", p, err)
	}
	return f.Close()
}
