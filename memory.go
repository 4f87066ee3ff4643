package agentbackend

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MemoryConfig configures a MemoryBackend. The zero value is a valid, empty
// workspace rooted at "/".
type MemoryConfig struct {
	// RootDir is the workspace root the backend reports and resolves
	// absolute paths against: an absolute POSIX path, cleaned. Empty means
	// "/". Nothing on the host is touched; the root only gives absolute
	// paths their meaning (spec/paths.md).
	RootDir string
	// InitialData pre-populates the store: each key is a file path under
	// the usual path rule, each value its contents (copied). Parent
	// directories are created. A key that escapes the root, names the root,
	// duplicates another key after cleaning ("a" and "/a"), or lies below
	// another key's file ("a" and "a/b") fails with INVALID_CONFIGURATION.
	InitialData map[string][]byte
}

// MemoryBackend is a workspace held in process memory: files and
// directories in an ordered index keyed by path, for an agent's scratch
// state and for tests. It behaves like a small POSIX file system rather
// than the reference's bare key/value map:
//
//   - Directories exist explicitly. Writing "a/b/c" creates "a" and "a/b";
//     Mkdir creates a directory that exists, lists empty, and stays when its
//     last file is removed — as it would on disk, and unlike the reference,
//     whose mkdir is a no-op and whose directories vanish with their last
//     key. The root always exists.
//   - A file and a directory never share a path: writing over a directory
//     or below a file fails (EISDIR, ENOTDIR), as do ReadDir of a file,
//     Read of a directory, Mkdir over a file (EEXIST), Touch of a directory
//     and Remove of a directory, even an empty one, without Recursive
//     (EISDIR), as on LocalBackend. Rename follows
//     os.Rename: it replaces files, never directories. Causes are syscall
//     errnos, so errors.Is works with fs.ErrNotExist, fs.ErrExist and the
//     like. The randomized test TestMemoryAgainstOS holds all of this
//     against a real directory.
//   - A missing path fails with the operation's code, as on LocalBackend
//     (READ_FAILED for Read and Stat, WRITE_FAILED for Remove and Rename,
//     LS_FAILED for ReadDir), wrapping syscall.ENOENT, so
//     errors.Is(err, fs.ErrNotExist) holds.
//   - Stat is synthetic: files are 0644 with Size the content length,
//     directories fs.ModeDir|0755 with Size 0. ModTime is the last write or
//     Touch of a file; for a directory, as in POSIX, the last time an entry
//     was created, removed or renamed in it (its creation time until then).
//     Touch of an existing file sets its ModTime to now.
//   - The root itself is never removed: Remove(".") fails with
//     WRITE_FAILED whatever the options, as on LocalBackend.
//   - Bytes are copied in by Write and out by Read: no caller can alias the
//     stored contents.
//
// Read, Stat, Exists and overwriting Write cost O(1) (a hash lookup) and
// allocate only the copy of the contents: about half a microsecond at 100k
// keys. Creating a file or directory adds an O(log n) insertion into the
// ordered index. ReadDir, ReadDirInfo, ListKeys, recursive Remove and
// directory Rename cost O(k log n) in the k entries they return or touch,
// never a scan of the store: listing ten entries takes the same few
// microseconds among 10k keys as among 1M. The heap holds about 120 bytes
// per key beyond the bytes of keys and contents.
//
// A MemoryBackend is safe for concurrent use; readers run in parallel. Exec
// fails with NOT_IMPLEMENTED. Close frees the contents; every operation
// after it fails with BACKEND_DESTROYED.
type MemoryBackend struct {
	lifecycle
	root string

	mu      sync.RWMutex
	idx     *memIndex   // nil once closed
	watches []*memWatch // running watches (Watch)
}

var (
	_ FileBackend = (*MemoryBackend)(nil)
	_ InfoLister  = (*MemoryBackend)(nil)
)

// NewMemory returns a memory backend holding cfg.InitialData.
//
// Unlike the design sketch's NewMemory(cfg) *MemoryBackend it returns an
// error too: RootDir and the keys of InitialData can be invalid, and a
// constructor that panicked or silently dropped data would be worse. The
// error is INVALID_CONFIGURATION.
func NewMemory(cfg MemoryConfig) (*MemoryBackend, error) {
	root := cfg.RootDir
	if root == "" {
		root = "/"
	}
	if !strings.HasPrefix(root, "/") {
		return nil, errConfig("MemoryConfig.RootDir must be an absolute path, got %q", cfg.RootDir)
	}
	b := &MemoryBackend{root: cleanRoot(root), idx: newMemIndex(time.Now().UnixNano())}
	b.init(TypeMemory, StatusConnected)
	if err := b.load(cfg.InitialData); err != nil {
		return nil, err
	}
	return b, nil
}

// load stores initial data in key order, so that which of two conflicting
// keys is reported does not depend on map iteration order.
func (b *MemoryBackend) load(data map[string][]byte) error {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	now := time.Now().UnixNano()
	seen := make(map[string]string, len(keys))
	for _, k := range keys {
		rel, err := resolve(b.root, "init", k)
		if err != nil {
			return &Error{Code: CodeInvalidConfiguration, Path: k, Err: err,
				Message: "MemoryConfig.InitialData: key escapes the root: " + k}
		}
		if other, dup := seen[rel]; dup {
			return &Error{Code: CodeInvalidConfiguration, Path: k,
				Message: "MemoryConfig.InitialData: keys " + other + " and " + k + " name the same file " + rel}
		}
		seen[rel] = k
		if err := b.idx.writeFile(rel, string(data[k]), now); err != nil {
			return &Error{Code: CodeInvalidConfiguration, Path: k, Err: err,
				Message: "MemoryConfig.InitialData: key " + k + ": " + err.Error()}
		}
	}
	return nil
}

// RootDir returns the workspace root: an absolute, clean POSIX path.
func (b *MemoryBackend) RootDir() string { return b.root }

// Scope returns a view of the subdirectory path; see ScopedBackend.
func (b *MemoryBackend) Scope(path string, cfg *ScopeConfig) (*ScopedBackend, error) {
	return NewScope(b, path, cfg)
}

// Close ("destroy") closes the tracked closers, frees the contents and moves
// the status to destroyed. It is idempotent.
func (b *MemoryBackend) Close() error {
	_, err := b.destroy()
	b.mu.Lock()
	b.idx = nil
	b.mu.Unlock()
	return err
}

// Exec fails with NOT_IMPLEMENTED: a memory backend cannot run commands.
func (b *MemoryBackend) Exec(ctx context.Context, command string, opts *ExecOptions) (*ExecResult, error) {
	if err := b.checkOpen("exec"); err != nil {
		return nil, err
	}
	return nil, errNotImplemented("exec", TypeMemory)
}

// begin checks that an operation on p may run and resolves p. It is the
// common head of every file operation: closed backend, cancelled context,
// then the path rule.
func (b *MemoryBackend) begin(ctx context.Context, code Code, op, p string) (string, error) {
	if err := b.checkOpen(op); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", errFileOp(code, op, p, err)
	}
	return resolve(b.root, op, p)
}

// ctxCheck returns a check of ctx for long operations, reporting an
// error of code for op on p.
func ctxCheck(ctx context.Context, code Code, op, p string) func() error {
	return func() error {
		if err := ctx.Err(); err != nil {
			return errFileOp(code, op, p, err)
		}
		return nil
	}
}

// notFound is the error for a missing path: the operation's code (as on
// LocalBackend) wrapping ENOENT, so that it is fs.ErrNotExist too.
func notFound(code Code, op, p string) error { return errFileOp(code, op, p, syscall.ENOENT) }

// lookup returns the entry at key under the read lock; ok is false when
// there is none. It fails only when the backend is closed.
func (b *MemoryBackend) lookup(op, key string) (e entry, ok bool, err error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.idx == nil {
		return entry{}, false, errDestroyed(op, TypeMemory)
	}
	e, ok = b.idx.get(key)
	return e, ok, nil
}

// mutate runs fn on the index under the write lock, or fails with
// BACKEND_DESTROYED once the backend is closed; fn's own errors come back
// as they are, so an *Error (ErrorCode not "") is never fn's.
func (b *MemoryBackend) mutate(op string, fn func(idx *memIndex) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.idx == nil {
		return errDestroyed(op, TypeMemory)
	}
	return fn(b.idx)
}

// Read returns a copy of a file's contents.
func (b *MemoryBackend) Read(ctx context.Context, p string) ([]byte, error) {
	rel, err := b.begin(ctx, CodeReadFailed, "read", p)
	if err != nil {
		return nil, err
	}
	e, ok, err := b.lookup("read", rel)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, notFound(CodeReadFailed, "read", p)
	case e.dir:
		return nil, errFileOp(CodeReadFailed, "read", p, syscall.EISDIR)
	}
	return []byte(e.val), nil // stored contents are immutable: copy outside the lock
}

// Write stores a copy of data as the file p, creating missing parent
// directories. Over a directory it fails with EISDIR, below a file with
// ENOTDIR; a failed Write changes nothing.
func (b *MemoryBackend) Write(ctx context.Context, p string, data []byte) error {
	rel, err := b.begin(ctx, CodeWriteFailed, "write", p)
	if err != nil {
		return err
	}
	val, now := string(data), time.Now().UnixNano() // outside the lock
	err = b.mutate("write", func(idx *memIndex) error {
		if len(b.watches) == 0 {
			return idx.writeFile(rel, val, now)
		}
		missing := missingDirs(idx, rel, false)
		_, existed := idx.get(rel)
		if err := idx.writeFile(rel, val, now); err != nil {
			return err
		}
		b.created(missing, rel, existed)
		return nil
	})
	if err != nil && ErrorCode(err) == "" { // closed: already an *Error
		return errFileOp(CodeWriteFailed, "write", p, err)
	}
	return err
}

// ReadDir returns the sorted names of a directory's immediate children. The
// cost grows with their number, not with the size of the store.
func (b *MemoryBackend) ReadDir(ctx context.Context, p string) ([]string, error) {
	var names []string
	err := b.list(ctx, p, func(name, _ string) { names = append(names, name) })
	if err != nil {
		return nil, err
	}
	if names == nil {
		names = []string{}
	}
	return names, nil
}

// ReadDirInfo lists a directory with each entry's metadata, sorted by name,
// straight from the index (see InfoLister).
func (b *MemoryBackend) ReadDirInfo(ctx context.Context, p string) ([]FileInfo, error) {
	var infos []FileInfo
	err := b.list(ctx, p, func(name, key string) {
		e, _ := b.idx.get(key) // under list's read lock
		infos = append(infos, fileInfoOf(name, e))
	})
	if err != nil {
		return nil, err
	}
	if infos == nil {
		infos = []FileInfo{}
	}
	return infos, nil
}

// listCheckEvery is how many entries a listing emits between two checks of
// its context.
const listCheckEvery = 4096

// list calls fn with the name and key of each immediate child of directory
// p, under the read lock.
func (b *MemoryBackend) list(ctx context.Context, p string, fn func(name, key string)) error {
	rel, err := b.begin(ctx, CodeLsFailed, "readdir", p)
	if err != nil {
		return err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.idx == nil {
		return errDestroyed("readdir", TypeMemory)
	}
	d, ok := b.idx.get(rel)
	switch {
	case !ok:
		return errFileOp(CodeLsFailed, "readdir", p, syscall.ENOENT)
	case !d.dir:
		return errFileOp(CodeLsFailed, "readdir", p, syscall.ENOTDIR)
	}
	n := 0
	b.idx.children(rel, func(name, key string) bool {
		if n++; n%listCheckEvery == 0 && ctx.Err() != nil {
			err = errFileOp(CodeLsFailed, "readdir", p, ctx.Err())
			return false
		}
		fn(name, key)
		return true
	})
	return err
}

// fileInfoOf describes entry e under name.
func fileInfoOf(name string, e entry) FileInfo {
	fi := FileInfo{Name: name, Size: int64(len(e.val)), Mode: 0o644, ModTime: time.Unix(0, e.mod), IsDir: e.dir}
	if e.dir {
		fi.Mode = fs.ModeDir | 0o755
	}
	return fi
}

// Mkdir creates directory p and its missing parents. An existing directory
// is not an error; a file at p is (EEXIST, as mkdir(2) and os.Root.MkdirAll
// say), and so is one above it (ENOTDIR).
func (b *MemoryBackend) Mkdir(ctx context.Context, p string) error {
	rel, err := b.begin(ctx, CodeWriteFailed, "mkdir", p)
	if err != nil {
		return err
	}
	now := time.Now().UnixNano()
	err = b.mutate("mkdir", func(idx *memIndex) error {
		if len(b.watches) == 0 {
			return idx.mkdirAll(rel, now)
		}
		missing := missingDirs(idx, rel, true)
		if err := idx.mkdirAll(rel, now); err != nil {
			return err
		}
		for _, d := range missing {
			b.publish(WatchCreate, d)
		}
		return nil
	})
	if err != nil && ErrorCode(err) == "" { // closed: already an *Error
		return errFileOp(CodeWriteFailed, "mkdir", p, err)
	}
	return err
}

// Exists reports whether p is a file or directory. A path below a file is
// simply missing.
func (b *MemoryBackend) Exists(ctx context.Context, p string) (bool, error) {
	rel, err := b.begin(ctx, CodeReadFailed, "exists", p)
	if err != nil {
		return false, err
	}
	_, ok, err := b.lookup("exists", rel)
	return ok, err
}

// Stat describes a file or directory; see MemoryBackend for the synthetic
// fields. The root's Name is ".".
func (b *MemoryBackend) Stat(ctx context.Context, p string) (FileInfo, error) {
	rel, err := b.begin(ctx, CodeReadFailed, "stat", p)
	if err != nil {
		return FileInfo{}, err
	}
	e, ok, err := b.lookup("stat", rel)
	if err != nil {
		return FileInfo{}, err
	}
	if !ok {
		return FileInfo{}, notFound(CodeReadFailed, "stat", p)
	}
	return fileInfoOf(base(rel), e), nil
}

// Remove deletes a file or, with opts.Recursive, a directory and
// everything below it. With opts.Force a missing path is not an error.
// As on LocalBackend, a directory without Recursive fails even when empty,
// and the root itself is never removed (WRITE_FAILED).
//
// A recursive remove checks ctx between batches of entries; when ctx ends
// it stops with the subtree partly removed (as rm -r would), never leaving
// an entry without its parent directory.
func (b *MemoryBackend) Remove(ctx context.Context, p string, opts RemoveOptions) error {
	rel, err := b.begin(ctx, CodeWriteFailed, "rm", p)
	if err != nil {
		return err
	}
	if rel == "." {
		return errFileOp(CodeWriteFailed, "rm", p, errRemoveRoot)
	}
	now := time.Now().UnixNano()
	err = b.mutate("rm", func(idx *memIndex) error {
		if err := idx.remove(rel, opts.Recursive, now, ctxCheck(ctx, CodeWriteFailed, "rm", p)); err != nil {
			return err
		}
		b.publish(WatchRemove, rel)
		return nil
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ENOENT):
		if opts.Force {
			return nil
		}
		return notFound(CodeWriteFailed, "rm", p)
	case ErrorCode(err) != "":
		return err // the context ended
	}
	return errFileOp(CodeWriteFailed, "rm", p, err)
}

// Rename moves a file or a directory with everything below it, creating
// missing parents of to. As os.Rename (and so LocalBackend): a file
// replaces an existing file; an existing directory is never replaced
// (EEXIST, so errors.Is(err, fs.ErrExist)); a directory does not replace a
// file (ENOTDIR) nor move into its own subtree (EINVAL). Renaming a path to
// itself does nothing. A missing from is WRITE_FAILED wrapping ENOENT.
//
// Rename is atomic. Moving a directory costs O(k log n) for its k entries;
// ctx is checked while they are gathered, before anything changes.
func (b *MemoryBackend) Rename(ctx context.Context, from, to string) error {
	relFrom, err := b.begin(ctx, CodeWriteFailed, "rename", from)
	if err != nil {
		return err
	}
	relTo, err := resolve(b.root, "rename", to)
	if err != nil {
		return err
	}
	now := time.Now().UnixNano()
	var onDst bool
	err = b.mutate("rename", func(idx *memIndex) (err error) {
		var missing []string
		if len(b.watches) > 0 {
			missing = missingDirs(idx, relTo, false)
		}
		onDst, err = idx.rename(relFrom, relTo, now, ctxCheck(ctx, CodeWriteFailed, "rename", from))
		if err == nil && relFrom != relTo {
			b.publish(WatchRename, relFrom)
			b.created(missing, relTo, false)
		}
		return err
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ENOENT) && !onDst:
		return notFound(CodeWriteFailed, "rename", from)
	case ErrorCode(err) != "":
		return err // the context ended
	case onDst:
		return errFileOp(CodeWriteFailed, "rename", to, err)
	}
	return errFileOp(CodeWriteFailed, "rename", from, err)
}

// Touch creates an empty file, with missing parents, if p does not exist.
// It never truncates: an existing file only gets its ModTime set to now. A
// directory fails with EISDIR, as on LocalBackend.
func (b *MemoryBackend) Touch(ctx context.Context, p string) error {
	rel, err := b.begin(ctx, CodeWriteFailed, "touch", p)
	if err != nil {
		return err
	}
	now := time.Now().UnixNano()
	err = b.mutate("touch", func(idx *memIndex) error {
		if len(b.watches) == 0 {
			return idx.touch(rel, now)
		}
		missing := missingDirs(idx, rel, false)
		_, existed := idx.get(rel)
		if err := idx.touch(rel, now); err != nil {
			return err
		}
		if !existed {
			b.created(missing, rel, false)
		}
		return nil
	})
	if err != nil && ErrorCode(err) == "" { // closed: already an *Error
		return errFileOp(CodeWriteFailed, "touch", p, err)
	}
	return err
}

// ListKeys returns the files at or below the path prefix, sorted, as
// root-relative paths ("dir/file.txt"); directories are not listed. prefix
// is a path under the usual rule and matches whole path elements: "a"
// lists "a" itself if it is a file and everything below "a/", but not
// "ab" (see ListKeysWithPrefix for the reference's raw string matching).
// "" or "." lists every file. An escaping prefix or a closed backend lists
// nothing. The cost is O(log n + k) for k results.
func (b *MemoryBackend) ListKeys(prefix string) []string {
	rel, err := resolve(b.root, "list", prefix)
	if err != nil {
		return nil
	}
	var keys []string
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.idx != nil {
		b.idx.files(rel, func(k string) bool { keys = append(keys, k); return true })
	}
	return keys
}

// ListKeysWithPrefix returns the files whose root-relative path starts with
// prefix as a plain string, sorted: "a" matches "a", "a/x", "ab" and
// "a.txt", like the reference's list(prefix). prefix is not resolved: it is
// compared with the keys as ListKeys returns them (no leading slash). The
// cost is O(log n + k) for k results.
func (b *MemoryBackend) ListKeysWithPrefix(prefix string) []string {
	var keys []string
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.idx != nil {
		b.idx.withPrefix(prefix, func(k string) bool { keys = append(keys, k); return true })
	}
	return keys
}
