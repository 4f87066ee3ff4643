package agentbackend

import (
	"strings"
	"syscall"

	"github.com/google/btree"
)

// This file is the index behind MemoryBackend. It knows nothing about
// locking, errors of the package or contexts; MemoryBackend supplies those.
// Failures are reported as the syscall errno a POSIX file system would give,
// so callers can test them with errors.Is (syscall.ENOENT is
// fs.ErrNotExist).
//
// Layout, chosen by measurement (BenchmarkMemory*):
//   - ids, a Go map from key (a clean root-relative path) to a slot number,
//     answers the point operations (Read, Write, Stat, Exists) in O(1);
//   - chunks, a slab of 32-byte entries (contents, modification time,
//     kind) in fixed chunks of 1024, holds what the map points to, so
//     updates change a slot in place and never assign to an existing map
//     key (which would replace the map's key string and keep a second copy
//     of its bytes alive). Fixed chunks never move: a growing slice would
//     copy every entry about five times over as the store grows (a fifth
//     of the cost of creating files, measured), and briefly hold two
//     copies;
//   - order, a B-tree of the same key strings, gives listings, subtrees
//     and prefixes in O(log n + k).
//
// A lookup in a B-tree costs ten times a map lookup, every binary-search
// step missing the cache to reach another key's bytes, and a tree of whole
// entries twice a tree of bare 16-byte strings; so the tree holds only keys
// and serves only ordered work. A new key is copied once (strings.Clone)
// and that one string is shared by the map and the tree, so the store holds
// exactly the bytes of each key, whatever buffer the caller's path lived in.
//
// Invariant: every ancestor directory of every key is itself an entry (a
// directory entry), except the root, which is never stored. Because of it:
//   - a new key never has descendants, and a new file's parent chain is
//     checked by looking ancestors up only until the first that exists;
//   - in key order a directory comes before everything under it, so a
//     listing never has to infer a child from a deeper key;
//   - directories outlive their last file, as on a real file system.
//
// The children of directory "a" are the keys in ["a/", "a0") ('0' is
// '/'+1). A listing that meets a deeper key "a/b/x" seeks straight to
// "a/b0", past the whole subtree of "a/b", so listing costs O(k log n) in
// the number k of immediate children, however many keys lie below them.

// memDegree is the B-tree's minimum degree: nodes hold up to 2*memDegree-1
// keys (2 KiB of string headers). Measured with BenchmarkMemoryReadDir and
// BenchmarkMemoryWriteNew at 1M keys: 64 seeks and inserts about a third
// faster than 16 or 32 (fewer levels, so fewer cache misses) and as fast as
// 128, whose inserts shift twice the bytes.
const memDegree = 64

// entry is one file or directory. The modification time is Unix
// nanoseconds rather than a time.Time, whose 24 bytes include a location
// pointer.
type entry struct {
	val string // file contents, immutable once stored; "" for directories
	mod int64  // modification time, Unix nanoseconds
	dir bool
}

// chunkBits sizes the slab's chunks: 1024 entries, 32 KiB.
const (
	chunkBits = 10
	chunkSize = 1 << chunkBits
	chunkMask = chunkSize - 1
)

// memIndex is the set of entries by key and in key order, plus the root's
// modification time. Slot numbers are uint32: four billion entries is more
// than process memory holds.
type memIndex struct {
	ids     map[string]uint32
	chunks  []*[chunkSize]entry // slot id is chunks[id>>chunkBits][id&chunkMask]
	used    uint32              // slots handed out, free ones included
	free    []uint32            // slots of removed entries, reused first
	order   *btree.BTreeG[string]
	rootMod int64
	peak    int // the map's largest size since it was last rebuilt
}

func newMemIndex(now int64) *memIndex {
	return &memIndex{
		ids:     make(map[string]uint32),
		order:   btree.NewOrderedG[string](memDegree),
		rootMod: now,
	}
}

// get returns the entry for key; the root is a synthetic directory.
func (x *memIndex) get(key string) (entry, bool) {
	if key == "." {
		return entry{mod: x.rootMod, dir: true}, true
	}
	id, ok := x.ids[key]
	if !ok {
		return entry{}, false
	}
	return *x.at(id), true
}

// at returns slot id.
func (x *memIndex) at(id uint32) *entry { return &x.chunks[id>>chunkBits][id&chunkMask] }

// slot returns the stored entry for key, to update in place; nil when key
// is missing or the root. The pointer is valid until the next shrink.
func (x *memIndex) slot(key string) *entry {
	if id, ok := x.ids[key]; ok {
		return x.at(id)
	}
	return nil
}

// add stores a new entry under a copy of key.
func (x *memIndex) add(key string, e entry) {
	key = strings.Clone(key)
	id := x.newSlot()
	*x.at(id) = e
	x.ids[key] = id
	x.order.ReplaceOrInsert(key)
	x.peak = max(x.peak, len(x.ids))
}

// newSlot returns an unused slot: a freed one, or the next of the slab.
func (x *memIndex) newSlot() uint32 {
	if n := len(x.free); n > 0 {
		id := x.free[n-1]
		x.free = x.free[:n-1]
		return id
	}
	id := x.used
	if id&chunkMask == 0 {
		x.chunks = append(x.chunks, new([chunkSize]entry))
	}
	x.used++
	return id
}

// del removes key.
func (x *memIndex) del(key string) {
	id := x.ids[key]
	*x.at(id) = entry{} // let the contents go
	x.free = append(x.free, id)
	delete(x.ids, key)
	x.order.Delete(key)
}

// rekey moves the entry of key from to key to without copying it; to is
// stored as given.
func (x *memIndex) rekey(from, to string) {
	id := x.ids[from]
	delete(x.ids, from)
	x.order.Delete(from)
	x.ids[to] = id
	x.order.ReplaceOrInsert(to)
}

// shrink compacts the map and the slab once they hold under a quarter of
// their peak, since a Go map never gives back the space of deleted entries.
// The O(n) copy is paid for by the 3n deletions before it.
func (x *memIndex) shrink() {
	if x.peak < 4096 || len(x.ids) >= x.peak/4 {
		return
	}
	old := *x
	x.ids, x.chunks, x.used, x.free = make(map[string]uint32, len(old.ids)), nil, 0, nil
	for k, id := range old.ids {
		nid := x.newSlot()
		*x.at(nid) = *old.at(id)
		x.ids[k] = nid
	}
	x.peak = len(x.ids)
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
	if dir == "." {
		return len(x.ids) > 0
	}
	lo := dir + "/"
	found := false
	x.order.AscendGreaterOrEqual(lo, func(k string) bool {
		found = strings.HasPrefix(k, lo)
		return false
	})
	return found
}

// writeFile stores a file, creating missing parent directories. It fails
// with EISDIR over a directory and ENOTDIR below a file, changing nothing.
// Overwriting a file is one map lookup.
func (x *memIndex) writeFile(key, val string, now int64) error {
	if key == "." {
		return syscall.EISDIR
	}
	if e := x.slot(key); e != nil {
		if e.dir {
			return syscall.EISDIR
		}
		e.val, e.mod = val, now
		return nil
	}
	if err := x.makeParents(key, now); err != nil {
		return err
	}
	x.add(key, entry{val: val, mod: now})
	return nil
}

// makeParents prepares the creation of key, which does not exist: it
// creates the missing ancestor directories and sets the modification time
// of the nearest existing one, which gains an entry, to now. When that
// ancestor is a file it changes nothing and returns ENOTDIR.
func (x *memIndex) makeParents(key string, now int64) error {
	p := parent(key)
	for ; p != "."; p = parent(p) {
		if e := x.slot(p); e != nil {
			if !e.dir {
				return syscall.ENOTDIR
			}
			e.mod = now
			break
		}
	}
	if p == "." {
		x.rootMod = now
	}
	for q := parent(key); q != p; q = parent(q) {
		x.add(q, entry{mod: now, dir: true})
	}
	return nil
}

// mkdirAll creates directory key and its missing parents. An existing
// directory is left as it is. A file at key is EEXIST, a file above it
// ENOTDIR, as mkdir(2) and os.Root.MkdirAll report them.
func (x *memIndex) mkdirAll(key string, now int64) error {
	if e, ok := x.get(key); ok {
		if e.dir {
			return nil
		}
		return syscall.EEXIST
	}
	if err := x.makeParents(key, now); err != nil {
		return err
	}
	x.add(key, entry{mod: now, dir: true})
	return nil
}

// touch sets the modification time of key if it exists, or creates an
// empty file.
func (x *memIndex) touch(key string, now int64) error {
	if e, ok := x.get(key); ok && e.dir {
		return syscall.EISDIR // as open(2) of a directory for writing
	}
	if !x.setMod(key, now) {
		return x.writeFile(key, "", now)
	}
	return nil
}

// setMod sets the modification time of key and reports whether it exists.
func (x *memIndex) setMod(key string, now int64) bool {
	if key == "." {
		x.rootMod = now
		return true
	}
	if e := x.slot(key); e != nil {
		e.mod = now
		return true
	}
	return false
}

// children calls fn with the name and key of each immediate child of
// directory dir in name order, until fn returns false.
func (x *memIndex) children(dir string, fn func(name, key string) bool) {
	lo := childPrefix(dir)
	pivot, stop := lo, false
	for !stop {
		next := ""
		x.order.AscendGreaterOrEqual(pivot, func(k string) bool {
			if !strings.HasPrefix(k, lo) {
				return false // past the directory
			}
			name := k[len(lo):]
			if i := strings.IndexByte(name, '/'); i >= 0 {
				// Below child name[:i], which was already visited: skip
				// its subtree in one seek.
				next = k[:len(lo)+i] + "0"
				return false
			}
			stop = !fn(name, k)
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
func (x *memIndex) files(key string, fn func(key string) bool) {
	if key != "." {
		e := x.slot(key)
		if e == nil {
			return
		}
		if !e.dir {
			fn(key)
			return
		}
	}
	x.withPrefix(childPrefix(key), fn)
}

// withPrefix calls fn for each file whose key starts with prefix, in key
// order, until fn returns false.
func (x *memIndex) withPrefix(prefix string, fn func(key string) bool) {
	x.order.AscendGreaterOrEqual(prefix, func(k string) bool {
		if !strings.HasPrefix(k, prefix) {
			return false
		}
		return x.slot(k).dir || fn(k)
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
		x.ids, x.chunks, x.used, x.free, x.peak = make(map[string]uint32), nil, 0, nil, 0
		x.order.Clear(false)
		return nil
	}
	lo, hi := dir+"/", dir+"0"
	batch := make([]string, 0, removeBatch)
	for {
		batch = batch[:0]
		x.order.DescendLessOrEqual(hi, func(k string) bool {
			if k == hi {
				return true // a sibling ("a0"), not below dir
			}
			if !strings.HasPrefix(k, lo) {
				return false
			}
			batch = append(batch, k)
			return len(batch) < removeBatch
		})
		for _, k := range batch {
			x.del(k)
		}
		if len(batch) < removeBatch {
			return nil
		}
		if err := check(); err != nil {
			return err
		}
	}
}

// remove deletes key: a file or, with recursive, a directory and
// everything in it (without, a directory fails with EISDIR even when
// empty, as rm without -r). The parent's modification time becomes now.
// Removing the root empties the store and keeps the root.
func (x *memIndex) remove(key string, recursive bool, now int64, check func() error) error {
	defer x.shrink()
	e, ok := x.get(key)
	if !ok {
		return syscall.ENOENT
	}
	if e.dir && !recursive {
		return errIsDirectory
	}
	if e.dir && x.hasChildren(key) {
		if err := x.removeAll(key, check); err != nil {
			return err
		}
	}
	if key == "." {
		x.rootMod = now
		return nil
	}
	x.del(key)
	x.setMod(parent(key), now)
	return nil
}

// renameCheckEvery is how many entries a subtree rename gathers between two
// checks of its caller's context.
const renameCheckEvery = 1024

// rename moves the entry at from, and everything below it, to to, with the
// rules of os.Rename (and so of LocalBackend): a file replaces a file, a
// directory is never replaced (EEXIST), a directory does not replace a file
// (ENOTDIR) nor move into its own subtree (EINVAL). It is atomic: check is
// consulted only while the moved keys are gathered, before anything
// changes. onDst reports whether a failure concerns to rather than from.
func (x *memIndex) rename(from, to string, now int64, check func() error) (onDst bool, err error) {
	if from == "." {
		return false, syscall.EBUSY // the root cannot move
	}
	src, ok := x.get(from)
	switch {
	case !ok:
		return false, syscall.ENOENT
	case to == from:
		return false, nil
	case src.dir && strings.HasPrefix(to, from+"/"):
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

	// Gather the moved keys and make their new names; nothing has changed
	// yet, so a cancelled context leaves the store as it was.
	moved := []string{from}
	if src.dir {
		lo := from + "/"
		x.order.AscendGreaterOrEqual(lo, func(k string) bool {
			if !strings.HasPrefix(k, lo) {
				return false
			}
			if len(moved)%renameCheckEvery == 0 {
				if err = check(); err != nil {
					return false
				}
			}
			moved = append(moved, k)
			return true
		})
		if err != nil {
			return false, err
		}
	}
	to = strings.Clone(to)
	renamed := make([]string, len(moved))
	renamed[0] = to
	for i := 1; i < len(moved); i++ {
		renamed[i] = to + moved[i][len(from):]
	}

	if exists {
		x.del(to)
	}
	_ = x.makeParents(to, now) // cannot fail: checkParents passed
	for i, k := range moved {
		x.rekey(k, renamed[i])
	}
	x.setMod(parent(from), now)
	return false, nil
}

// checkParents reports ENOTDIR when an ancestor of key is a file.
func (x *memIndex) checkParents(key string) error {
	for p := parent(key); p != "."; p = parent(p) {
		if e := x.slot(p); e != nil {
			if e.dir {
				return nil
			}
			return syscall.ENOTDIR
		}
	}
	return nil
}
