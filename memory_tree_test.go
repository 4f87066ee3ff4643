package agentbackend

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

func TestMemoryRemove(t *testing.T) {
	b := newMem(t, MemoryConfig{})
	ctx := t.Context()
	mustWrite(t, b, "f", "x")
	mustDo(t, b.Remove(ctx, "f", RemoveOptions{}), "Remove file")
	wantExist(t, b, "f", false)
	err := b.Remove(ctx, "f", RemoveOptions{})
	wantError(t, err, CodeWriteFailed, "f", fs.ErrNotExist, "Remove(missing)")
	err = b.Remove(ctx, "f", RemoveOptions{Recursive: true})
	wantError(t, err, CodeWriteFailed, "f", fs.ErrNotExist, "Remove(missing, Recursive)")
	mustDo(t, b.Remove(ctx, "f", RemoveOptions{Force: true}), "Remove(missing, Force)")
	mustDo(t, b.Remove(ctx, "f/below", RemoveOptions{Force: true, Recursive: true}), "Remove(missing, Force, Recursive)")

	for _, p := range []string{"tree/a", "tree/sub/b", "tree/sub/deep/c", "tree-sibling", "tree0", "treehouse/c", "tree.txt"} {
		mustWrite(t, b, p, "v")
	}
	err = b.Remove(ctx, "tree", RemoveOptions{})
	wantError(t, err, CodeWriteFailed, "tree", syscall.EISDIR, "Remove(non-empty dir)")
	wantContent(t, b, "tree/sub/b", "v")
	mustDo(t, b.Remove(ctx, "tree", RemoveOptions{Recursive: true}), "Remove recursive")
	wantExist(t, b, "tree", false)
	wantExist(t, b, "tree/sub/deep/c", false)
	// Only the directory's own subtree went, not keys sharing its prefix.
	if keys := b.ListKeys(""); !slices.Equal(keys, []string{"tree-sibling", "tree.txt", "tree0", "treehouse/c"}) {
		t.Errorf("after Remove(tree): %q", keys)
	}

	mustDo(t, b.Mkdir(ctx, "empty/inner"), "Mkdir")
	err = b.Remove(ctx, "empty/inner", RemoveOptions{})
	wantError(t, err, CodeWriteFailed, "empty/inner", syscall.EISDIR, "Remove(empty dir) without Recursive, as on Local")
	mustDo(t, b.Remove(ctx, "empty/inner", RemoveOptions{Recursive: true}), "Remove empty dir")
	wantExist(t, b, "empty/inner", false)
	wantExist(t, b, "empty", true) // the parent stays

	// The root is never removed, as on Local, whatever the options.
	keys := b.ListKeys("")
	for _, p := range []string{".", "/", "", "./"} {
		for _, o := range []RemoveOptions{{}, {Recursive: true}, {Recursive: true, Force: true}} {
			err = b.Remove(ctx, p, o)
			wantError(t, err, CodeWriteFailed, p, nil, "Remove(root)")
			assert.ErrorIs(t, err, errRemoveRoot)
		}
	}
	assert.Equal(t, keys, b.ListKeys(""), "Remove(root) changed the store")
	mustWrite(t, b, "again/x", "works")
	wantContent(t, b, "again/x", "works")
}

func TestMemoryRemoveLarge(t *testing.T) {
	// Recursive removal in several batches, with siblings either side.
	b := newMem(t, MemoryConfig{})
	ctx := t.Context()
	mustWrite(t, b, "big!", "before")
	mustWrite(t, b, "big0", "after")
	for i := range 3*removeBatch + 7 {
		mustWrite(t, b, fmt.Sprintf("big/d%02d/f%05d", i%13, i), "x")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err := b.Remove(cctx, "big", RemoveOptions{Recursive: true})
	wantError(t, err, CodeWriteFailed, "big", context.Canceled, "Remove with a cancelled context")
	wantExist(t, b, "big/d00", true)

	mustDo(t, b.Remove(ctx, "big", RemoveOptions{Recursive: true}), "Remove big")
	wantNames(t, b, ".", "big!", "big0")
}

func TestMemoryRemoveAllStopsConsistent(t *testing.T) {
	// When the context ends between batches, what remains is a consistent
	// tree: every entry's parent directory is still there.
	x := newMemIndex(1)
	for i := range 5 * removeBatch {
		mustDo(t, x.writeFile(fmt.Sprintf("r/%c/%05d", 'a'+i%7, i), "v", 1), "writeFile")
	}
	stop := errors.New("stop")
	calls := 0
	err := x.removeAll("r", func() error {
		if calls++; calls == 2 {
			return stop
		}
		return nil
	})
	if err != stop || x.order.Len() == 0 || x.order.Len() > 4*removeBatch {
		t.Fatalf("removeAll = %v with %d entries left", err, x.order.Len())
	}
	checkIndex(t, x)
}

// checkIndex verifies the index invariants: the map and the tree hold the
// same keys as the same strings, every live slot is used once, and every
// key's parent is a directory entry (or the root).
func checkIndex(t *testing.T, x *memIndex) {
	t.Helper()
	if x.order.Len() != len(x.ids) || len(x.ids)+len(x.free) != int(x.used) || len(x.chunks) != int(x.used+chunkMask)/chunkSize {
		t.Errorf("tree %d keys, map %d, slots %d of which %d free, %d chunks", x.order.Len(), len(x.ids), x.used, len(x.free), len(x.chunks))
	}
	used := make(map[uint32]bool, len(x.ids))
	for k, id := range x.ids {
		tk, ok := x.order.Get(k)
		if !ok || unsafe.StringData(tk) != unsafe.StringData(k) {
			t.Errorf("key %q: tree has %q, %v (not the same string)", k, tk, ok)
		}
		if used[id] {
			t.Errorf("slot %d used twice", id)
		}
		used[id] = true
		e := *x.at(id)
		if p := parent(k); p != "." {
			if d, ok := x.get(p); !ok || !d.dir {
				t.Errorf("%q has no parent directory (%+v, %v)", k, d, ok)
			}
		}
		if e.dir && e.val != "" {
			t.Errorf("directory %q holds contents", k)
		}
	}
	for _, id := range x.free {
		if used[id] || *x.at(id) != (entry{}) {
			t.Errorf("free slot %d is in use or holds %+v", id, *x.at(id))
		}
	}
}

func TestMemoryRename(t *testing.T) {
	b := newMem(t, MemoryConfig{})
	ctx := t.Context()
	mustWrite(t, b, "a.txt", "A")
	old, _ := b.Stat(ctx, "a.txt")
	time.Sleep(2 * time.Millisecond)
	mustDo(t, b.Rename(ctx, "a.txt", "moved/deeper/b.txt"), "Rename into new parents")
	wantExist(t, b, "a.txt", false)
	wantContent(t, b, "moved/deeper/b.txt", "A")
	if fi, _ := b.Stat(ctx, "moved/deeper/b.txt"); !fi.ModTime.Equal(old.ModTime) {
		t.Errorf("Rename changed the file's ModTime: %v -> %v", old.ModTime, fi.ModTime)
	}

	mustWrite(t, b, "c.txt", "C")
	mustDo(t, b.Rename(ctx, "c.txt", "moved/deeper/b.txt"), "Rename over a file")
	wantContent(t, b, "moved/deeper/b.txt", "C")
	mustDo(t, b.Rename(ctx, "moved/deeper/b.txt", "moved/deeper/b.txt"), "Rename to itself")
	wantContent(t, b, "moved/deeper/b.txt", "C")

	// A whole subtree, leaving keys that share its prefix alone.
	for _, p := range []string{"dir/x", "dir/sub/y", "dir/sub/deep/z", "dir!", "dir.txt", "dir0", "dirx/w"} {
		mustWrite(t, b, p, p)
	}
	mustDo(t, b.Mkdir(ctx, "dir/emptydir"), "Mkdir")
	mustDo(t, b.Rename(ctx, "dir", "new/home"), "Rename directory")
	wantExist(t, b, "dir", false)
	wantContent(t, b, "new/home/x", "dir/x")
	wantContent(t, b, "new/home/sub/deep/z", "dir/sub/deep/z")
	wantNames(t, b, "new/home", "emptydir", "sub", "x")
	wantNames(t, b, "new/home/emptydir")
	if keys := b.ListKeys("dir"); keys != nil {
		t.Errorf("keys left under dir: %q", keys)
	}
	for _, p := range []string{"dir!", "dir.txt", "dir0", "dirx/w"} {
		wantContent(t, b, p, p)
	}

	// A directory is never replaced, empty or not, as with os.Rename.
	mustDo(t, b.Mkdir(ctx, "empty"), "Mkdir")
	err := b.Rename(ctx, "new/home", "empty")
	wantError(t, err, CodeWriteFailed, "empty", fs.ErrExist, "Rename onto an empty dir")
	mustDo(t, b.Rename(ctx, "new/home", "target"), "Rename directory again")
	wantContent(t, b, "target/sub/y", "dir/sub/y")
	mustWrite(t, b, "other/keep", "k")
	err = b.Rename(ctx, "target", "other")
	wantError(t, err, CodeWriteFailed, "other", fs.ErrExist, "Rename onto non-empty dir")
	wantContent(t, b, "target/x", "dir/x")
	wantContent(t, b, "other/keep", "k")

	err = b.Rename(ctx, "target", "target/sub/inside")
	wantError(t, err, CodeWriteFailed, "target/sub/inside", syscall.EINVAL, "Rename into own subtree")
	err = b.Rename(ctx, "dir.txt", "target")
	wantError(t, err, CodeWriteFailed, "target", fs.ErrExist, "Rename file onto dir")
	err = b.Rename(ctx, "target", "dir.txt")
	wantError(t, err, CodeWriteFailed, "dir.txt", syscall.ENOTDIR, "Rename dir onto file")
	err = b.Rename(ctx, "dir.txt", "dir.txt/child")
	wantError(t, err, CodeWriteFailed, "dir.txt/child", syscall.ENOTDIR, "Rename file below itself")
	err = b.Rename(ctx, "dir0", "dir.txt/x/y")
	wantError(t, err, CodeWriteFailed, "dir.txt/x/y", syscall.ENOTDIR, "Rename below a file")
	err = b.Rename(ctx, "dir0", ".")
	wantError(t, err, CodeWriteFailed, ".", fs.ErrExist, "Rename file onto the root")
	err = b.Rename(ctx, "target", "/")
	wantError(t, err, CodeWriteFailed, "/", fs.ErrExist, "Rename dir onto the root")
	err = b.Rename(ctx, ".", "elsewhere")
	wantError(t, err, CodeWriteFailed, ".", syscall.EBUSY, "Rename the root")
	err = b.Rename(ctx, "missing", "elsewhere")
	wantError(t, err, CodeWriteFailed, "missing", fs.ErrNotExist, "Rename(missing)")
	wantExist(t, b, "elsewhere", false)
	wantContent(t, b, "dir.txt", "dir.txt")
	wantContent(t, b, "dir0", "dir0")
	checkIndex(t, b.idx)
}

func TestMemoryRenameAtomic(t *testing.T) {
	// A rename stopped while gathering a large subtree changes nothing.
	x := newMemIndex(1)
	for i := range 3 * renameCheckEvery {
		mustDo(t, x.writeFile(fmt.Sprintf("src/%c/%05d", 'a'+i%5, i), "v", 1), "writeFile")
	}
	before := x.order.Len()
	stop := errors.New("stop")
	onDst, err := x.rename("src", "dst", 2, func() error { return stop })
	if err != stop || onDst {
		t.Fatalf("rename = %v, %v; want the check's error", onDst, err)
	}
	if _, ok := x.get("dst"); ok || x.order.Len() != before || len(x.ids) != before {
		t.Errorf("a stopped rename changed the index: %d entries, was %d", x.order.Len(), before)
	}
	if _, err := x.rename("src", "dst", 2, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if x.order.Len() != before {
		t.Errorf("rename changed the entry count: %d, was %d", x.order.Len(), before)
	}
	checkIndex(t, x)
}

func TestMemoryTouch(t *testing.T) {
	b := newMem(t, MemoryConfig{})
	ctx := t.Context()
	mustDo(t, b.Touch(ctx, "new/file"), "Touch new")
	wantContent(t, b, "new/file", "")
	mustWrite(t, b, "kept", "content")
	before, _ := b.Stat(ctx, "kept")
	time.Sleep(2 * time.Millisecond)
	mustDo(t, b.Touch(ctx, "kept"), "Touch existing")
	wantContent(t, b, "kept", "content") // never truncates
	if after, _ := b.Stat(ctx, "kept"); !after.ModTime.After(before.ModTime) {
		t.Error("Touch did not advance the ModTime")
	}
	mustDo(t, b.Mkdir(ctx, "adir"), "Mkdir")
	err := b.Touch(ctx, "adir")
	wantError(t, err, CodeWriteFailed, "adir", syscall.EISDIR, "Touch dir, as on Local")
	if fi, err := b.Stat(ctx, "adir"); err != nil || !fi.IsDir {
		t.Errorf("Touch(dir) replaced the directory: %+v %v", fi, err)
	}
	err = b.Touch(ctx, ".")
	wantError(t, err, CodeWriteFailed, ".", syscall.EISDIR, "Touch root")
	err = b.Touch(ctx, "kept/below")
	wantError(t, err, CodeWriteFailed, "kept/below", syscall.ENOTDIR, "Touch below a file")
}

func TestMemoryKeysAreCopied(t *testing.T) {
	// A path that is a slice of a large buffer must not keep the buffer
	// alive: the store holds its own copy of each key, shared by the map and
	// the tree (checkIndex), and so do the directories it creates.
	b := newMem(t, MemoryConfig{})
	big := strings.Repeat("x", 1<<16) + "/dir/sub/file.txt"
	p := big[1<<16-3:] // "xxx/dir/sub/file.txt"
	mustWrite(t, b, p, "v")
	mustDo(t, b.Rename(t.Context(), "xxx/dir", big[1<<16-3:1<<16+4]+"2"), "Rename")
	lo := uintptr(unsafe.Pointer(unsafe.StringData(big)))
	hi := lo + uintptr(len(big))
	for k := range b.idx.ids {
		if at := uintptr(unsafe.Pointer(unsafe.StringData(k))); at >= lo && at < hi {
			t.Errorf("key %q points into the caller's buffer", k)
		}
	}
	if keys := b.ListKeys(""); !slices.Equal(keys, []string{"xxx/dir2/sub/file.txt"}) {
		t.Errorf("ListKeys = %q", keys)
	}
	checkIndex(t, b.idx)
}

func TestMemorySlotsReusedAndShrunk(t *testing.T) {
	b := newMem(t, MemoryConfig{})
	ctx := t.Context()
	const n = 20_000
	for i := range n {
		mustWrite(t, b, fmt.Sprintf("d%02d/f%05d", i%50, i), "v")
	}
	slots := int(b.idx.used)
	// Removed slots are reused before the slab grows.
	for i := range 100 {
		mustDo(t, b.Remove(ctx, fmt.Sprintf("d%02d/f%05d", i%50, i), RemoveOptions{}), "Remove")
	}
	for i := range 100 {
		mustWrite(t, b, fmt.Sprintf("new/f%03d", i), "w")
	}
	if int(b.idx.used) != slots+1 { // + the directory "new"
		t.Errorf("slab grew from %d to %d slots; freed slots not reused", slots, int(b.idx.used))
	}
	checkIndex(t, b.idx)
	// Emptying most of the store compacts the map and the slab.
	for i := range 45 {
		mustDo(t, b.Remove(ctx, fmt.Sprintf("d%02d", i), RemoveOptions{Recursive: true}), "Remove dir")
	}
	if live := len(b.idx.ids); int(b.idx.used) > 4*live || int(b.idx.used) > n/3 {
		t.Errorf("after removing 90%%: %d slots (%d free) for %d entries", int(b.idx.used), len(b.idx.free), live)
	}
	checkIndex(t, b.idx)
	wantContent(t, b, "d49/f19999", "v")
	wantContent(t, b, "new/f042", "w")
	wantNames(t, b, ".", "d45", "d46", "d47", "d48", "d49", "new")
}

func TestMemoryDeepTree(t *testing.T) {
	b := newMem(t, MemoryConfig{})
	ctx := t.Context()
	const depth = 300
	dir := strings.Repeat("d/", depth-1) + "d"
	mustWrite(t, b, dir+"/leaf.txt", "deep")
	mustWrite(t, b, "d/sibling", "s")
	for p, level := dir, depth; level > 0; p, level = parent(p), level-1 {
		fi, err := b.Stat(ctx, p)
		if err != nil || !fi.IsDir {
			t.Fatalf("Stat(level %d) = %+v, %v", level, fi, err)
		}
	}
	wantNames(t, b, "d", "d", "sibling")
	wantNames(t, b, dir, "leaf.txt")
	err := b.Write(ctx, dir+"/leaf.txt/below", nil)
	wantError(t, err, CodeWriteFailed, dir+"/leaf.txt/below", syscall.ENOTDIR, "Write below a deep file")

	mustDo(t, b.Rename(ctx, "d/d", "moved"), "Rename the deep tree")
	wantExist(t, b, dir+"/leaf.txt", false)
	wantContent(t, b, "moved/"+strings.Repeat("d/", depth-2)+"leaf.txt", "deep")
	wantNames(t, b, "d", "sibling")
	if keys := b.ListKeys("moved"); len(keys) != 1 {
		t.Errorf("ListKeys(moved) = %q", keys)
	}
	mustDo(t, b.Remove(ctx, "moved", RemoveOptions{Recursive: true}), "Remove the deep tree")
	if n := len(b.idx.ids); n != 2 { // d, d/sibling
		t.Errorf("%d entries left, want 2", n)
	}
	checkIndex(t, b.idx)
}
