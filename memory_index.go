package agentbackend

import (
	"strings"
	"syscall"

	"github.com/google/btree"
)

// This file is the ordered index behind MemoryBackend: a B-tree of entries
// keyed by clean root-relative paths. It knows nothing about locking, errors
// of the package or contexts; MemoryBackend supplies those. Failures are
// reported as the syscall errno a POSIX file system would give, so callers
// can test them with errors.Is (syscall.ENOENT is fs.ErrNotExist).
//
// Invariant: every ancestor directory of every key is itself an entry (a
// directory entry), except the root, which is never stored. Because of it:
//   - a new key never has descendants, and a key's parent chain never holds
//     a file, once its parent is known to be a directory;
//   - in key order a directory comes before everything under it, so listing
//     a directory never has to infer a child from a deeper key;
//   - directories outlive their last file, as on a real file system.
//
// The children of directory "a" are the keys in ["a/", "a0") ('0' is
// '/'+1). A listing that meets a deeper key "a/b/x" seeks straight to
// "a/b0", past the whole subtree of "a/b", so listing costs O(k log n) in
// the number k of immediate children, however many keys lie below them.

// memDegree is the B-tree's minimum degree: nodes hold up to 2*memDegree-1
// entries. Measured (BenchmarkMemory*) at 1M keys: 32 balances lookup depth
// against the cost of shifting entries inside a node on insert.
const memDegree = 32

// entry is one file or directory. Entries are stored by value in the
// B-tree's node arrays, so a key costs no allocation beyond its key string
// and its contents (48 bytes on 64-bit platforms; no time.Time, whose 24
// bytes include a pointer the garbage collector would have to scan).
type entry struct {
	key string // clean root-relative path; never "."
	val string // file contents, immutable once stored; "" for directories
	mod int64  // modification time, Unix nanoseconds
	dir bool
}

func lessEntry(a, b entry) bool { return a.key < b.key }

// memIndex is the ordered set of entries plus the root's modification time.
type memIndex struct {
	tree    *btree.BTreeG[entry]
	rootMod int64
}

func newMemIndex(now int64) *memIndex {
	return &memIndex{tree: btree.NewG(memDegree, lessEntry), rootMod: now}
}

// get returns the entry for key; the root is a synthetic directory.
func (x *memIndex) get(key string) (entry, bool) {
	if key == "." {
		return entry{key: ".", mod: x.rootMod, dir: true}, true
	}
	return x.tree.Get(entry{key: key})
}

// parent returns the directory holding key ("." for top-level keys).
func parent(key string) string {
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		return key[:i]
	}
	return "."
}

// base returns the last element of key.
func base(key string) string { return key[strings.LastIndexByte(key, '/')+1:] }

// childPrefix returns the prefix all keys below dir share ("" for the root).
func childPrefix(dir string) string {
	if dir == "." {
		return ""
	}
	return dir + "/"
}

// hasChildren reports whether directory dir has any entry below it.
func (x *memIndex) hasChildren(dir string) bool {
	lo := childPrefix(dir)
	found := false
	x.tree.AscendGreaterOrEqual(entry{key: lo}, func(e entry) bool {
		found = strings.HasPrefix(e.key, lo)
		return false
	})
	return found
}

// writeFile stores a file, creating missing parent directories. It fails
// with EISDIR over a directory and ENOTDIR below a file, changing nothing.
// Overwriting an existing file is one tree operation; a new file one more
// for its parent, whose modification time it sets.
func (x *memIndex) writeFile(key, val string, now int64) error {
	if key == "." {
		return syscall.EISDIR
	}
	old, had := x.tree.ReplaceOrInsert(entry{key: key, val: val, mod: now})
	if had {
		if old.dir {
			x.tree.ReplaceOrInsert(old)
			return syscall.EISDIR
		}
		return nil
	}
	if err := x.linkParents(key, now); err != nil {
		x.tree.Delete(entry{key: key})
		return err
	}
	return nil
}

// mkdirAll creates directory key and its missing parents. An existing
// directory is left as it is. A file at key is EEXIST, a file above it
// ENOTDIR, as mkdir(2) and os.Root.MkdirAll report them.
func (x *memIndex) mkdirAll(key string, now int64) error {
	if key == "." {
		return nil
	}
	old, had := x.tree.Get(entry{key: key})
	if had {
		if old.dir {
			return nil
		}
		return syscall.EEXIST
	}
	x.tree.ReplaceOrInsert(entry{key: key, mod: now, dir: true})
	if err := x.linkParents(key, now); err != nil {
		x.tree.Delete(entry{key: key})
		return err
	}
	return nil
}

// linkParents records that key was just created: missing ancestors are
// created and the directory that gained an entry gets modification time
// now. When an ancestor is a file it undoes the directories it created and
// returns ENOTDIR; key itself is the caller's to undo.
//
// Updating a directory stores it under a substring of key rather than
// looking its own key string up first, to save a tree operation on every
// new file; the cost is that a directory may keep one removed key's bytes
// alive (at most one string per directory).
func (x *memIndex) linkParents(key string, now int64) error {
	for p := key; ; {
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			x.rootMod = now
			return nil
		}
		p = p[:i]
		old, had := x.tree.ReplaceOrInsert(entry{key: p, mod: now, dir: true})
		if !had {
			continue // p is new: its parent gained an entry too
		}
		if old.dir {
			return nil
		}
		x.tree.ReplaceOrInsert(old) // a file: put it back and undo
		for q := parent(key); len(q) > len(p); q = parent(q) {
			x.tree.Delete(entry{key: q})
		}
		return syscall.ENOTDIR
	}
}

// touchDir sets the modification time of directory dir, which exists.
func (x *memIndex) touchDir(dir string, now int64) {
	if dir == "." {
		x.rootMod = now
		return
	}
	if e, ok := x.tree.Get(entry{key: dir}); ok {
		e.mod = now
		x.tree.ReplaceOrInsert(e)
	}
}

// touch sets the modification time of an existing entry, or creates an
// empty file.
func (x *memIndex) touch(key string, now int64) error {
	e, ok := x.get(key)
	if !ok {
		return x.writeFile(key, "", now)
	}
	if key == "." {
		x.rootMod = now
		return nil
	}
	e.mod = now
	x.tree.ReplaceOrInsert(e)
	return nil
}

// children calls fn for each immediate child of directory dir in name
// order, until fn returns false. name is the child's last element.
func (x *memIndex) children(dir string, fn func(name string, e entry) bool) {
	lo := childPrefix(dir)
	pivot, stop := lo, false
	for !stop {
		next := ""
		x.tree.AscendGreaterOrEqual(entry{key: pivot}, func(e entry) bool {
			if !strings.HasPrefix(e.key, lo) {
				return false // past the directory
			}
			name := e.key[len(lo):]
			if i := strings.IndexByte(name, '/'); i >= 0 {
				// Below child name[:i], which was already visited: skip
				// its subtree in one seek.
				next = e.key[:len(lo)+i] + "0"
				return false
			}
			stop = !fn(name, e)
			return !stop
		})
		if next == "" {
			return
		}
		pivot = next
	}
}

// files calls fn for each file at or below key (key itself if it is a
// file), in key order, until fn returns false.
func (x *memIndex) files(key string, fn func(e entry) bool) {
	if key != "." {
		e, ok := x.tree.Get(entry{key: key})
		if !ok {
			return
		}
		if !e.dir {
			fn(e)
			return
		}
	}
	x.withPrefix(childPrefix(key), fn)
}

// withPrefix calls fn for each file whose key starts with prefix, in key
// order, until fn returns false.
func (x *memIndex) withPrefix(prefix string, fn func(e entry) bool) {
	x.tree.AscendGreaterOrEqual(entry{key: prefix}, func(e entry) bool {
		if !strings.HasPrefix(e.key, prefix) {
			return false
		}
		return e.dir || fn(e)
	})
}

// removeBatch is how many entries a recursive remove deletes between two
// checks of its caller's context.
const removeBatch = 1024

// removeAll deletes everything below directory dir (not dir itself), in
// batches in descending key order, calling check between batches. Deleting
// from the end keeps the invariant at every step: what remains is a prefix
// of the subtree in key order, and ancestors come before descendants. So
// when check fails the removal stops with a consistent, partly emptied
// subtree.
func (x *memIndex) removeAll(dir string, check func() error) error {
	if dir == "." {
		x.tree.Clear(false)
		return nil
	}
	lo, hi := dir+"/", dir+"0"
	batch := make([]string, 0, removeBatch)
	for {
		batch = batch[:0]
		x.tree.DescendLessOrEqual(entry{key: hi}, func(e entry) bool {
			if e.key == hi {
				return true // a sibling ("a0"), not below dir
			}
			if !strings.HasPrefix(e.key, lo) {
				return false
			}
			batch = append(batch, e.key)
			return len(batch) < removeBatch
		})
		for _, k := range batch {
			x.tree.Delete(entry{key: k})
		}
		if len(batch) < removeBatch {
			return nil
		}
		if err := check(); err != nil {
			return err
		}
	}
}

// remove deletes key: a file, or a directory that is empty or, with
// recursive, everything in it. The parent's modification time becomes now.
// Removing the root empties the store and keeps the root.
func (x *memIndex) remove(key string, recursive bool, now int64, check func() error) error {
	e, ok := x.get(key)
	if !ok {
		return syscall.ENOENT
	}
	if e.dir && x.hasChildren(key) {
		if !recursive {
			return syscall.ENOTEMPTY
		}
		if err := x.removeAll(key, check); err != nil {
			return err
		}
	}
	if key == "." {
		x.rootMod = now
		return nil
	}
	x.tree.Delete(entry{key: key})
	x.touchDir(parent(key), now)
	return nil
}

// renameCheckEvery is how many entries a subtree rename prepares between two
// checks of its caller's context.
const renameCheckEvery = 1024

// rename moves the entry at from, and everything below it, to to, with the
// rules of os.Rename (and so of LocalBackend): a file replaces a file, a
// directory is never replaced (EEXIST), a directory does not replace a file
// (ENOTDIR) nor move into its own subtree (EINVAL). It is atomic: check is
// consulted only while the moved entries are prepared, before anything
// changes. onDst reports whether a failure concerns to rather than from.
func (x *memIndex) rename(from, to string, now int64, check func() error) (onDst bool, err error) {
	if from == "." {
		return false, syscall.EBUSY // the root cannot move
	}
	src, ok := x.tree.Get(entry{key: from})
	if !ok {
		return false, syscall.ENOENT
	}
	if to == from {
		return false, nil
	}
	if src.dir && strings.HasPrefix(to, from+"/") {
		return true, syscall.EINVAL
	}
	dst, exists := x.get(to)
	switch {
	case exists && dst.dir:
		return true, syscall.EEXIST
	case exists && src.dir:
		return true, syscall.ENOTDIR
	case !exists:
		if err := x.checkParents(to); err != nil {
			return true, err
		}
	}

	// Prepare the moved entries under their new keys; nothing has changed
	// yet, so a cancelled context leaves the store as it was.
	moved := []entry{src}
	if src.dir {
		n := 0
		x.tree.AscendGreaterOrEqual(entry{key: from + "/"}, func(e entry) bool {
			if !strings.HasPrefix(e.key, from+"/") {
				return false
			}
			if n++; n%renameCheckEvery == 0 {
				if err = check(); err != nil {
					return false
				}
			}
			moved = append(moved, e)
			return true
		})
		if err != nil {
			return false, err
		}
	}

	if exists {
		x.tree.Delete(entry{key: to})
	}
	for _, e := range moved {
		x.tree.Delete(e)
	}
	moved[0].key = to
	for i := 1; i < len(moved); i++ {
		moved[i].key = to + moved[i].key[len(from):]
	}
	for _, e := range moved {
		x.tree.ReplaceOrInsert(e)
	}
	_ = x.linkParents(to, now) // cannot fail: checkParents passed
	x.touchDir(parent(from), now)
	return false, nil
}

// checkParents reports ENOTDIR when an ancestor of key is a file.
func (x *memIndex) checkParents(key string) error {
	for p := parent(key); p != "."; p = parent(p) {
		if e, ok := x.tree.Get(entry{key: p}); ok {
			if e.dir {
				return nil
			}
			return syscall.ENOTDIR
		}
	}
	return nil
}
