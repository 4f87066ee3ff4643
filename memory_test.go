package agentbackend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"go.uber.org/goleak"
)

// newMem returns an empty memory backend closed when the test ends.
func newMem(t *testing.T, cfg MemoryConfig) *MemoryBackend {
	t.Helper()
	b, err := NewMemory(cfg)
	if err != nil {
		t.Fatalf("NewMemory(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func mustDo(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func mustWrite(t *testing.T, b FileBackend, p, content string) {
	t.Helper()
	mustDo(t, b.Write(t.Context(), p, []byte(content)), "Write "+p)
}

func wantContent(t *testing.T, b FileBackend, p, want string) {
	t.Helper()
	got, err := b.Read(t.Context(), p)
	if err != nil || string(got) != want {
		t.Errorf("Read(%q) = %q, %v; want %q", p, got, err, want)
	}
}

func wantExist(t *testing.T, b FileBackend, p string, want bool) {
	t.Helper()
	got, err := b.Exists(t.Context(), p)
	if err != nil || got != want {
		t.Errorf("Exists(%q) = %v, %v; want %v", p, got, err, want)
	}
}

func wantNames(t *testing.T, b FileBackend, dir string, want ...string) {
	t.Helper()
	got, err := b.ReadDir(t.Context(), dir)
	if err != nil || !slices.Equal(got, want) || got == nil {
		t.Errorf("ReadDir(%q) = %q, %v; want %q", dir, got, err, want)
	}
}

// wantError checks err's code, the path it names, and, when cause is not
// nil, that errors.Is(err, cause).
func wantError(t *testing.T, err error, code Code, path string, cause error, what string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Errorf("%s: got %v (%T), want *Error %s", what, err, err, code)
		return
	}
	if e.Code != code || e.Path != path {
		t.Errorf("%s: got code %s path %q (%v), want %s %q", what, e.Code, e.Path, err, code, path)
	}
	if cause != nil && !errors.Is(err, cause) {
		t.Errorf("%s: %v is not %v", what, err, cause)
	}
}

func TestMemoryNew(t *testing.T) {
	b := newMem(t, MemoryConfig{})
	if b.Type() != TypeMemory || b.Status() != StatusConnected || b.RootDir() != "/" {
		t.Errorf("zero config: type %s status %s root %q", b.Type(), b.Status(), b.RootDir())
	}
	if b := newMem(t, MemoryConfig{RootDir: "/var//ws/./x/.."}); b.RootDir() != "/var/ws" {
		t.Errorf("RootDir() = %q, want cleaned /var/ws", b.RootDir())
	}
	_, err := NewMemory(MemoryConfig{RootDir: "relative/dir"})
	if !errors.Is(err, ErrInvalidConfiguration) {
		t.Errorf("relative RootDir: %v, want INVALID_CONFIGURATION", err)
	}
	wantNames(t, b, ".")
	wantExist(t, b, ".", true)
}

func TestMemoryInitialData(t *testing.T) {
	seed := map[string][]byte{
		"a.txt":           []byte("A"),
		"/dir/b.txt":      []byte("B"), // absolute outside the root: relative
		"/ws/dir/c.txt":   []byte("C"), // absolute inside the root
		"./deep//x/y/z":   []byte("Z"),
		"dir/sub/../e.md": {},
	}
	b := newMem(t, MemoryConfig{RootDir: "/ws", InitialData: seed})
	for p, want := range map[string]string{"a.txt": "A", "dir/b.txt": "B", "dir/c.txt": "C", "deep/x/y/z": "Z", "dir/e.md": ""} {
		wantContent(t, b, p, want)
	}
	seed["a.txt"][0] = 'X' // the store holds a copy
	wantContent(t, b, "a.txt", "A")
	wantNames(t, b, ".", "a.txt", "deep", "dir")
	wantNames(t, b, "deep/x", "y")

	for name, data := range map[string]map[string][]byte{
		"escape":        {"../x": nil},
		"nested escape": {"a/../../x": nil},
		"root":          {".": nil},
		"duplicate":     {"a": nil, "/a": nil},
		"file parent":   {"a": nil, "a/b": nil},
		"dir then file": {"a/b/c": nil, "a/b": nil},
	} {
		_, err := NewMemory(MemoryConfig{RootDir: "/ws", InitialData: data})
		if !errors.Is(err, ErrInvalidConfiguration) {
			t.Errorf("%s: NewMemory = %v, want INVALID_CONFIGURATION", name, err)
		}
	}
}

func TestMemoryReadWrite(t *testing.T) {
	b := newMem(t, MemoryConfig{})
	ctx := t.Context()
	mustWrite(t, b, "hello.txt", "hello")
	wantContent(t, b, "hello.txt", "hello")
	mustWrite(t, b, "hello.txt", "hi") // overwrite replaces
	wantContent(t, b, "hello.txt", "hi")
	mustDo(t, b.Write(ctx, "empty", nil), "Write nil")
	wantContent(t, b, "empty", "")
	if got, _ := b.Read(ctx, "empty"); got == nil {
		t.Error("Read of an empty file returned nil, want an empty slice")
	}

	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	mustDo(t, b.Write(ctx, "bin", all), "Write binary")
	if got, err := b.Read(ctx, "bin"); err != nil || !bytes.Equal(got, all) {
		t.Errorf("binary round trip: %v %v", got, err)
	}

	// Copy in: the caller's slice is not retained.
	buf := []byte("original")
	mustDo(t, b.Write(ctx, "alias", buf), "Write")
	buf[0] = 'X'
	wantContent(t, b, "alias", "original")
	// Copy out: mutating what Read returned changes nothing stored.
	got, _ := b.Read(ctx, "alias")
	got[0] = 'Y'
	wantContent(t, b, "alias", "original")

	// Parents are created and are directories.
	mustWrite(t, b, "a/b/c/d.txt", "deep")
	for _, dir := range []string{"a", "a/b", "a/b/c"} {
		if fi, err := b.Stat(ctx, dir); err != nil || !fi.IsDir {
			t.Errorf("Stat(%q) = %+v, %v; want a directory", dir, fi, err)
		}
	}

	_, err := b.Read(ctx, "missing.txt")
	wantError(t, err, CodeKeyNotFound, "missing.txt", fs.ErrNotExist, "Read(missing)")
	_, err = b.Read(ctx, "hello.txt/below")
	wantError(t, err, CodeKeyNotFound, "hello.txt/below", fs.ErrNotExist, "Read(below a file)")
	_, err = b.Read(ctx, "a/b")
	wantError(t, err, CodeReadFailed, "a/b", syscall.EISDIR, "Read(directory)")
	_, err = b.Read(ctx, ".")
	wantError(t, err, CodeReadFailed, ".", syscall.EISDIR, "Read(root)")

	err = b.Write(ctx, "a/b", []byte("x"))
	wantError(t, err, CodeWriteFailed, "a/b", syscall.EISDIR, "Write over a directory")
	wantContent(t, b, "a/b/c/d.txt", "deep")
	err = b.Write(ctx, "/", []byte("x"))
	wantError(t, err, CodeWriteFailed, "/", syscall.EISDIR, "Write over the root")

	// Below a file: fails, and creates none of the missing directories.
	err = b.Write(ctx, "hello.txt/x/y", []byte("x"))
	wantError(t, err, CodeWriteFailed, "hello.txt/x/y", syscall.ENOTDIR, "Write below a file")
	wantContent(t, b, "hello.txt", "hi")
	err = b.Write(ctx, "a/b/c/d.txt/new/deeper", []byte("x"))
	wantError(t, err, CodeWriteFailed, "a/b/c/d.txt/new/deeper", syscall.ENOTDIR, "Write below a deep file")
	wantNames(t, b, "a/b/c", "d.txt")
	if keys := b.ListKeys(""); !slices.Equal(keys, []string{"a/b/c/d.txt", "alias", "bin", "empty", "hello.txt"}) {
		t.Errorf("after failed writes, ListKeys = %q", keys)
	}
}

func TestMemoryPaths(t *testing.T) {
	b := newMem(t, MemoryConfig{RootDir: "/var/ws"})
	ctx := t.Context()
	mustWrite(t, b, "dir/file.txt", "one")
	// The three cases of spec/paths.md.
	for _, p := range []string{"dir/file.txt", "./dir//file.txt", "dir/x/../file.txt", "/var/ws/dir/file.txt", "/dir/file.txt"} {
		wantContent(t, b, p, "one")
	}
	mustWrite(t, b, "/etc/passwd", "mine") // absolute outside: relative
	wantContent(t, b, "etc/passwd", "mine")
	mustWrite(t, b, "/var/wsx/a", "prefix is not the root")
	wantContent(t, b, "var/wsx/a", "prefix is not the root")
	wantNames(t, b, "/var/ws", "dir", "etc", "var")

	for _, p := range []string{"../x", "a/../../x", "..", "/var/ws/../x", "../../..", "./../x"} {
		ops := map[string]error{}
		_, ops["Read"] = b.Read(ctx, p)
		ops["Write"] = b.Write(ctx, p, []byte("x"))
		_, ops["ReadDir"] = b.ReadDir(ctx, p)
		_, ops["ReadDirInfo"] = b.ReadDirInfo(ctx, p)
		ops["Mkdir"] = b.Mkdir(ctx, p)
		_, ops["Exists"] = b.Exists(ctx, p)
		_, ops["Stat"] = b.Stat(ctx, p)
		ops["Remove"] = b.Remove(ctx, p, RemoveOptions{Recursive: true, Force: true})
		ops["Rename from"] = b.Rename(ctx, p, "in.txt")
		ops["Rename to"] = b.Rename(ctx, "dir/file.txt", p)
		ops["Touch"] = b.Touch(ctx, p)
		_, ops["Scope"] = b.Scope(p, nil)
		for op, err := range ops {
			wantError(t, err, CodePathEscape, p, ErrPathEscape, op+"("+p+")")
		}
		if b.ListKeys(p) != nil {
			t.Errorf("ListKeys(%q) listed keys outside the root", p)
		}
	}
	wantContent(t, b, "dir/file.txt", "one")
}

func TestMemoryReadDir(t *testing.T) {
	b := newMem(t, MemoryConfig{})
	ctx := t.Context()
	// Keys that sort between a child and its subtree ("b!", "b.txt" and
	// "b0" come between "b" and "b/...") must not be swallowed by the seek
	// past "b"'s subtree, nor the subtree leak into the listing.
	for _, p := range []string{"a/b/x", "a/b/y/z", "a/b.txt", "a/b0", "a/c", "a/b!", "a/b/c/d/e", "a0", "a.txt", "z"} {
		mustWrite(t, b, p, p)
	}
	wantNames(t, b, "a", "b", "b!", "b.txt", "b0", "c")
	wantNames(t, b, "a/b", "c", "x", "y")
	wantNames(t, b, ".", "a", "a.txt", "a0", "z")
	wantNames(t, b, "/", "a", "a.txt", "a0", "z")
	wantNames(t, b, "a/b/c/d", "e")

	infos, err := b.ReadDirInfo(ctx, "a")
	mustDo(t, err, "ReadDirInfo")
	var got []string
	for _, fi := range infos {
		got = append(got, fmt.Sprintf("%s:%v:%d:%v", fi.Name, fi.IsDir, fi.Size, fi.Mode))
		if fi.ModTime.IsZero() {
			t.Errorf("ReadDirInfo %s: zero ModTime", fi.Name)
		}
		st, _ := b.Stat(ctx, "a/"+fi.Name)
		if st != fi {
			t.Errorf("ReadDirInfo entry %+v differs from Stat %+v", fi, st)
		}
	}
	want := []string{"b:true:0:drwxr-xr-x", "b!:false:4:-rw-r--r--", "b.txt:false:7:-rw-r--r--", "b0:false:4:-rw-r--r--", "c:false:3:-rw-r--r--"}
	if !slices.Equal(got, want) {
		t.Errorf("ReadDirInfo(a) = %q, want %q", got, want)
	}

	mustDo(t, b.Mkdir(ctx, "empty"), "Mkdir")
	wantNames(t, b, "empty")
	if infos, err := b.ReadDirInfo(ctx, "empty"); err != nil || infos == nil || len(infos) != 0 {
		t.Errorf("ReadDirInfo(empty) = %v, %v", infos, err)
	}

	_, err = b.ReadDir(ctx, "nope")
	wantError(t, err, CodeLsFailed, "nope", fs.ErrNotExist, "ReadDir(missing)")
	_, err = b.ReadDir(ctx, "a/c")
	wantError(t, err, CodeLsFailed, "a/c", syscall.ENOTDIR, "ReadDir(file)")
	_, err = b.ReadDirInfo(ctx, "a/c")
	wantError(t, err, CodeLsFailed, "a/c", syscall.ENOTDIR, "ReadDirInfo(file)")
}

func TestMemoryReadDirWide(t *testing.T) {
	// Thousands of children with subtrees: every child listed once, in
	// order, with the context checked along the way.
	b := newMem(t, MemoryConfig{})
	var want []string
	for i := range 5000 {
		name := fmt.Sprintf("d%05d", i)
		want = append(want, name)
		mustWrite(t, b, "top/"+name+"/f", "x")
		mustWrite(t, b, "top/"+name+"/sub/g", "y")
	}
	wantNames(t, b, "top", want...)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := b.ReadDir(ctx, "top")
	wantError(t, err, CodeLsFailed, "top", context.Canceled, "ReadDir with a cancelled context")
}

func TestMemoryMkdir(t *testing.T) {
	b := newMem(t, MemoryConfig{})
	ctx := t.Context()
	mustDo(t, b.Mkdir(ctx, "x"), "Mkdir x")
	wantExist(t, b, "x", true) // explicit, unlike the reference's no-op
	wantNames(t, b, "x")
	wantNames(t, b, ".", "x")
	mustDo(t, b.Mkdir(ctx, "a/b/c"), "Mkdir a/b/c")
	mustDo(t, b.Mkdir(ctx, "a/b/c"), "Mkdir existing")
	mustDo(t, b.Mkdir(ctx, "."), "Mkdir root")
	wantNames(t, b, "a", "b")
	wantNames(t, b, "a/b/c")

	mustWrite(t, b, "a/f", "file")
	err := b.Mkdir(ctx, "a/f")
	wantError(t, err, CodeWriteFailed, "a/f", fs.ErrExist, "Mkdir over a file")
	err = b.Mkdir(ctx, "a/f/g/h")
	wantError(t, err, CodeWriteFailed, "a/f/g/h", syscall.ENOTDIR, "Mkdir below a file")
	wantContent(t, b, "a/f", "file")
	wantExist(t, b, "a/f/g", false)

	// Directories outlive their last file, as on disk.
	mustWrite(t, b, "keep/only.txt", "x")
	mustDo(t, b.Remove(ctx, "keep/only.txt", RemoveOptions{}), "Remove")
	wantExist(t, b, "keep", true)
	wantNames(t, b, "keep")
	if keys := b.ListKeys(""); !slices.Equal(keys, []string{"a/f"}) {
		t.Errorf("ListKeys lists directories: %q", keys)
	}
}

func TestMemoryStat(t *testing.T) {
	b := newMem(t, MemoryConfig{RootDir: "/ws"})
	ctx := t.Context()
	tick := func() time.Time { time.Sleep(2 * time.Millisecond); return time.Now() }
	stat := func(p string) FileInfo {
		t.Helper()
		fi, err := b.Stat(ctx, p)
		mustDo(t, err, "Stat "+p)
		return fi
	}

	t0 := tick()
	mustWrite(t, b, "dir/file.txt", "12345")
	fi := stat("/ws/dir/file.txt")
	if fi.Name != "file.txt" || fi.Size != 5 || fi.IsDir || fi.Mode != 0o644 || fi.ModTime.Before(t0) {
		t.Errorf("Stat(file) = %+v", fi)
	}
	di := stat("dir")
	if di.Name != "dir" || !di.IsDir || di.Mode != fs.ModeDir|0o755 || di.Size != 0 || di.ModTime.Before(t0) {
		t.Errorf("Stat(dir) = %+v", di)
	}
	if ri := stat("."); ri.Name != "." || !ri.IsDir {
		t.Errorf("Stat(.) = %+v", ri)
	}

	// A directory's ModTime follows its entries, not their contents.
	tick()
	mustWrite(t, b, "dir/file.txt", "rewritten")
	if stat("dir").ModTime != di.ModTime {
		t.Error("overwriting a file changed its directory's ModTime")
	}
	if !stat("dir/file.txt").ModTime.After(fi.ModTime) {
		t.Error("overwriting a file did not advance its ModTime")
	}
	for _, step := range []struct {
		what string
		do   func() error
	}{
		{"create", func() error { return b.Write(ctx, "dir/new", nil) }},
		{"remove", func() error { return b.Remove(ctx, "dir/new", RemoveOptions{}) }},
		{"rename in", func() error { return b.Rename(ctx, "elsewhere", "dir/moved") }},
		{"mkdir", func() error { return b.Mkdir(ctx, "dir/sub") }},
	} {
		if step.what == "rename in" {
			mustWrite(t, b, "elsewhere", "x")
		}
		before := stat("dir").ModTime
		tick()
		mustDo(t, step.do(), step.what)
		if !stat("dir").ModTime.After(before) {
			t.Errorf("%s in dir did not advance its ModTime", step.what)
		}
	}
	before := stat(".").ModTime
	tick()
	mustDo(t, b.Rename(ctx, "dir/moved", "top"), "Rename to the root")
	if !stat(".").ModTime.After(before) {
		t.Error("a new entry in the root did not advance its ModTime")
	}

	_, err := b.Stat(ctx, "missing")
	wantError(t, err, CodeKeyNotFound, "missing", fs.ErrNotExist, "Stat(missing)")
}

func TestMemoryExists(t *testing.T) {
	b := newMem(t, MemoryConfig{})
	mustWrite(t, b, "dir/file.txt", "x")
	for p, want := range map[string]bool{
		"dir/file.txt": true, "dir": true, ".": true, "": true, "/": true,
		"missing": false, "dir/file.txt/below": false, "di": false, "dir/file": false,
	} {
		wantExist(t, b, p, want)
	}
}

func TestMemoryRemove(t *testing.T) {
	b := newMem(t, MemoryConfig{})
	ctx := t.Context()
	mustWrite(t, b, "f", "x")
	mustDo(t, b.Remove(ctx, "f", RemoveOptions{}), "Remove file")
	wantExist(t, b, "f", false)
	err := b.Remove(ctx, "f", RemoveOptions{})
	wantError(t, err, CodeKeyNotFound, "f", fs.ErrNotExist, "Remove(missing)")
	err = b.Remove(ctx, "f", RemoveOptions{Recursive: true})
	wantError(t, err, CodeKeyNotFound, "f", fs.ErrNotExist, "Remove(missing, Recursive)")
	mustDo(t, b.Remove(ctx, "f", RemoveOptions{Force: true}), "Remove(missing, Force)")
	mustDo(t, b.Remove(ctx, "f/below", RemoveOptions{Force: true, Recursive: true}), "Remove(missing, Force, Recursive)")

	for _, p := range []string{"tree/a", "tree/sub/b", "tree/sub/deep/c", "tree-sibling", "tree0", "treehouse/c", "tree.txt"} {
		mustWrite(t, b, p, "v")
	}
	err = b.Remove(ctx, "tree", RemoveOptions{})
	wantError(t, err, CodeWriteFailed, "tree", syscall.ENOTEMPTY, "Remove(non-empty dir)")
	wantContent(t, b, "tree/sub/b", "v")
	mustDo(t, b.Remove(ctx, "tree", RemoveOptions{Recursive: true}), "Remove recursive")
	wantExist(t, b, "tree", false)
	wantExist(t, b, "tree/sub/deep/c", false)
	// Only the directory's own subtree went, not keys sharing its prefix.
	if keys := b.ListKeys(""); !slices.Equal(keys, []string{"tree-sibling", "tree.txt", "tree0", "treehouse/c"}) {
		t.Errorf("after Remove(tree): %q", keys)
	}

	mustDo(t, b.Mkdir(ctx, "empty/inner"), "Mkdir")
	mustDo(t, b.Remove(ctx, "empty/inner", RemoveOptions{}), "Remove empty dir")
	wantExist(t, b, "empty/inner", false)
	wantExist(t, b, "empty", true) // the parent stays

	// The root: non-recursive only when empty; recursive empties it.
	err = b.Remove(ctx, ".", RemoveOptions{})
	wantError(t, err, CodeWriteFailed, ".", syscall.ENOTEMPTY, "Remove(root)")
	mustDo(t, b.Remove(ctx, "/", RemoveOptions{Recursive: true}), "Remove(root, Recursive)")
	wantNames(t, b, ".")
	wantExist(t, b, ".", true)
	mustDo(t, b.Remove(ctx, ".", RemoveOptions{}), "Remove(empty root)")
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
	if err != stop || x.tree.Len() == 0 || x.tree.Len() > 4*removeBatch {
		t.Fatalf("removeAll = %v with %d entries left", err, x.tree.Len())
	}
	checkIndex(t, x)
}

// checkIndex verifies the index invariant: every key's parent is a
// directory entry (or the root).
func checkIndex(t *testing.T, x *memIndex) {
	t.Helper()
	x.tree.Ascend(func(e entry) bool {
		if p := parent(e.key); p != "." {
			if d, ok := x.tree.Get(entry{key: p}); !ok || !d.dir {
				t.Errorf("%q has no parent directory (%+v, %v)", e.key, d, ok)
				return false
			}
		}
		if e.dir && e.val != "" {
			t.Errorf("directory %q holds contents", e.key)
		}
		return true
	})
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
	wantError(t, err, CodeKeyNotFound, "missing", fs.ErrNotExist, "Rename(missing)")
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
	before := x.tree.Len()
	stop := errors.New("stop")
	onDst, err := x.rename("src", "dst", 2, func() error { return stop })
	if err != stop || onDst {
		t.Fatalf("rename = %v, %v; want the check's error", onDst, err)
	}
	if _, ok := x.get("dst"); ok || x.tree.Len() != before {
		t.Errorf("a stopped rename changed the index: %d entries, was %d", x.tree.Len(), before)
	}
	if _, err := x.rename("src", "dst", 2, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if x.tree.Len() != before {
		t.Errorf("rename changed the entry count: %d, was %d", x.tree.Len(), before)
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
	mustDo(t, b.Touch(ctx, "adir"), "Touch dir")
	if fi, err := b.Stat(ctx, "adir"); err != nil || !fi.IsDir {
		t.Errorf("Touch(dir) replaced the directory: %+v %v", fi, err)
	}
	mustDo(t, b.Touch(ctx, "."), "Touch root")
	err := b.Touch(ctx, "kept/below")
	wantError(t, err, CodeWriteFailed, "kept/below", syscall.ENOTDIR, "Touch below a file")
}

func TestMemoryListKeys(t *testing.T) {
	b := newMem(t, MemoryConfig{RootDir: "/ws"})
	for _, p := range []string{"a", "ab", "a.txt", "b/x", "b/y/z", "bc/q", "b0"} {
		mustWrite(t, b, p, "v")
	}
	mustDo(t, b.Mkdir(t.Context(), "b/emptydir"), "Mkdir")
	for prefix, want := range map[string][]string{
		"":      {"a", "a.txt", "ab", "b/x", "b/y/z", "b0", "bc/q"},
		".":     {"a", "a.txt", "ab", "b/x", "b/y/z", "b0", "bc/q"},
		"/ws":   {"a", "a.txt", "ab", "b/x", "b/y/z", "b0", "bc/q"},
		"a":     {"a"}, // path elements: not "ab" nor "a.txt"
		"b":     {"b/x", "b/y/z"},
		"/ws/b": {"b/x", "b/y/z"},
		"b/":    {"b/x", "b/y/z"},
		"b/y":   {"b/y/z"},
		"nope":  nil,
		"a/x":   nil,
	} {
		if got := b.ListKeys(prefix); !slices.Equal(got, want) {
			t.Errorf("ListKeys(%q) = %q, want %q", prefix, got, want)
		}
	}
	for prefix, want := range map[string][]string{
		"":   {"a", "a.txt", "ab", "b/x", "b/y/z", "b0", "bc/q"},
		"a":  {"a", "a.txt", "ab"}, // plain strings, like the reference
		"b":  {"b/x", "b/y/z", "b0", "bc/q"},
		"b/": {"b/x", "b/y/z"},
		"z":  nil,
	} {
		if got := b.ListKeysWithPrefix(prefix); !slices.Equal(got, want) {
			t.Errorf("ListKeysWithPrefix(%q) = %q, want %q", prefix, got, want)
		}
	}
}

func TestMemoryExec(t *testing.T) {
	b := newMem(t, MemoryConfig{})
	sc, err := b.Scope("s", nil)
	mustDo(t, err, "Scope")
	for name, target := range map[string]FileBackend{"backend": b, "scope": sc} {
		res, err := target.Exec(t.Context(), "echo hi", nil)
		var e *Error
		if res != nil || !errors.As(err, &e) || e.Code != CodeNotImplemented || e.Op != "exec" || e.Backend != TypeMemory {
			t.Errorf("%s Exec = %v, %v; want NOT_IMPLEMENTED for exec on memory", name, res, err)
		}
	}
	_ = b.Close()
	_, err = b.Exec(t.Context(), "echo hi", nil)
	if !errors.Is(err, ErrDestroyed) {
		t.Errorf("Exec after Close = %v, want BACKEND_DESTROYED", err)
	}
}

type closeFunc func() error

func (f closeFunc) Close() error { return f() }

func TestMemoryClose(t *testing.T) {
	b := newMem(t, MemoryConfig{})
	ctx := t.Context()
	mustWrite(t, b, "f", "x")
	var changes []StatusChange
	b.OnStatusChange(func(c StatusChange) { changes = append(changes, c) })
	var closed atomic.Int32
	b.TrackCloser(closeFunc(func() error { closed.Add(1); return nil }))
	mustDo(t, b.Close(), "Close")
	mustDo(t, b.Close(), "Close again")
	if b.Status() != StatusDestroyed || closed.Load() != 1 || len(changes) != 1 || changes[0].To != StatusDestroyed {
		t.Errorf("after Close: status %s, closer ran %d times, changes %+v", b.Status(), closed.Load(), changes)
	}
	if b.idx != nil {
		t.Error("Close kept the contents")
	}

	ops := map[string]error{}
	_, ops["Read"] = b.Read(ctx, "f")
	ops["Write"] = b.Write(ctx, "f", nil)
	_, ops["ReadDir"] = b.ReadDir(ctx, ".")
	_, ops["ReadDirInfo"] = b.ReadDirInfo(ctx, ".")
	ops["Mkdir"] = b.Mkdir(ctx, "d")
	_, ops["Exists"] = b.Exists(ctx, "f")
	_, ops["Stat"] = b.Stat(ctx, "f")
	ops["Remove"] = b.Remove(ctx, "f", RemoveOptions{Force: true})
	ops["Rename"] = b.Rename(ctx, "f", "g")
	ops["Touch"] = b.Touch(ctx, "t")
	_, ops["Scope"] = b.Scope("s", nil)
	for op, err := range ops {
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeDestroyed || e.Backend != TypeMemory || !errors.Is(err, fs.ErrClosed) {
			t.Errorf("%s after Close = %v, want BACKEND_DESTROYED", op, err)
		}
	}
	if b.ListKeys("") != nil || b.ListKeysWithPrefix("") != nil {
		t.Error("ListKeys after Close listed keys")
	}
}

func TestMemoryCloseRacesOperations(t *testing.T) {
	// Operations racing Close either complete or fail with
	// BACKEND_DESTROYED; none sees freed state.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	b := newMem(t, MemoryConfig{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				p := fmt.Sprintf("w%d/f%d", w, i%10)
				err := b.Write(context.Background(), p, []byte("x"))
				if err == nil {
					_, err = b.ReadDir(context.Background(), fmt.Sprintf("w%d", w))
				}
				if err != nil {
					if !errors.Is(err, ErrDestroyed) {
						t.Errorf("racing Close: %v", err)
					}
					return
				}
			}
		})
	}
	time.Sleep(5 * time.Millisecond)
	mustDo(t, b.Close(), "Close")
	wg.Wait()
}

func TestMemoryConcurrent(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	b := newMem(t, MemoryConfig{})
	const workers, rounds = 16, 100
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			ctx := context.Background()
			dir := fmt.Sprintf("w%02d", w)
			for r := range rounds {
				p := fmt.Sprintf("%s/sub%d/f%d", dir, r%4, r)
				want := fmt.Sprintf("%d-%d", w, r)
				steps := []func() error{
					func() error { return b.Write(ctx, p, []byte(want)) },
					func() error {
						got, err := b.Read(ctx, p)
						if err == nil && string(got) != want {
							err = fmt.Errorf("read %q, want %q", got, want)
						}
						return err
					},
					func() error { _, err := b.Stat(ctx, p); return err },
					func() error { _, err := b.ReadDirInfo(ctx, dir); return err },
					func() error { return b.Rename(ctx, p, p+".moved") },
					func() error { return b.Remove(ctx, p+".moved", RemoveOptions{}) },
					func() error { return b.Touch(ctx, fmt.Sprintf("shared/%d-%d", w, r)) },
					func() error { _, err := b.ReadDir(ctx, "shared"); return err },
					func() error { _ = b.ListKeys("shared"); return nil },
				}
				if r%50 == 49 { // whole subtrees move and go while others work
					steps = append(steps,
						func() error { return b.Rename(ctx, dir, dir+"-tmp") },
						func() error { return b.Rename(ctx, dir+"-tmp", dir) },
						func() error { return b.Remove(ctx, dir+"/sub0", RemoveOptions{Recursive: true}) })
				}
				for i, step := range steps {
					if err := step(); err != nil {
						t.Errorf("worker %d round %d step %d: %v", w, r, i, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	names, err := b.ReadDir(t.Context(), "shared")
	if err != nil || len(names) != workers*rounds {
		t.Errorf("shared has %d entries (%v), want %d", len(names), err, workers*rounds)
	}
	b.mu.RLock()
	checkIndex(t, b.idx)
	b.mu.RUnlock()
}

func TestMemoryScope(t *testing.T) {
	b := newMem(t, MemoryConfig{RootDir: "/ws"})
	ctx := t.Context()
	mustWrite(t, b, "users/user2/secret", "u2")
	u1, err := b.Scope("users/user1", nil)
	mustDo(t, err, "Scope")
	if u1.RootDir() != "/ws/users/user1" || u1.Type() != TypeMemory {
		t.Errorf("scope RootDir %q type %s", u1.RootDir(), u1.Type())
	}
	mustWrite(t, u1, "notes/a.txt", "u1")
	wantContent(t, b, "users/user1/notes/a.txt", "u1")
	wantContent(t, u1, "/ws/users/user1/notes/a.txt", "u1") // absolute inside the scope
	wantContent(t, u1, "/notes/a.txt", "u1")                // absolute outside: relative
	wantNames(t, u1, ".", "notes")
	if fi, err := u1.Stat(ctx, "."); err != nil || fi.Name != "." || !fi.IsDir {
		t.Errorf("scope Stat(.) = %+v, %v", fi, err)
	}

	for _, p := range []string{"../user2/secret", "../../users/user2/secret", "notes/../../user2/secret"} {
		_, err := u1.Read(ctx, p)
		wantError(t, err, CodePathEscape, p, ErrPathEscape, "scope Read("+p+")")
		err = u1.Rename(ctx, "notes/a.txt", p)
		wantError(t, err, CodePathEscape, p, ErrPathEscape, "scope Rename to "+p)
	}
	// The parent's absolute path of the sibling names a path inside u1.
	_, err = u1.Read(ctx, "/ws/users/user2/secret")
	wantError(t, err, CodeKeyNotFound, "/ws/users/user2/secret", fs.ErrNotExist, "scope Read(sibling absolute)")
	_, err = u1.Read(ctx, "missing")
	wantError(t, err, CodeKeyNotFound, "missing", fs.ErrNotExist, "scope Read(missing)")

	mustDo(t, u1.Rename(ctx, "notes", "archive/notes"), "scope Rename")
	wantContent(t, b, "users/user1/archive/notes/a.txt", "u1")
	if keys := b.ListKeys("users/user1"); !slices.Equal(keys, []string{"users/user1/archive/notes/a.txt"}) {
		t.Errorf("ListKeys(users/user1) = %q", keys)
	}
	// Removing the scope's root recursively removes only the scope.
	mustDo(t, u1.Remove(ctx, ".", RemoveOptions{Recursive: true}), "scope Remove(.)")
	wantExist(t, b, "users/user1", false)
	wantContent(t, b, "users/user2/secret", "u2")
	mustWrite(t, u1, "again", "x") // and the scope still works
	wantContent(t, b, "users/user1/again", "x")

	inner, err := u1.Scope("p/q", nil)
	mustDo(t, err, "nested Scope")
	mustWrite(t, inner, "main.go", "package main")
	wantContent(t, b, "users/user1/p/q/main.go", "package main")
	_, err = inner.Read(ctx, "../../../user2/secret")
	wantError(t, err, CodePathEscape, "../../../user2/secret", ErrPathEscape, "nested scope escape")
	if got := b.ActiveScopes(); !slices.Equal(got, []string{"users/user1"}) {
		t.Errorf("ActiveScopes() = %q", got)
	}
}

func TestMemoryFS(t *testing.T) {
	b := newMem(t, MemoryConfig{RootDir: "/data"})
	for p, content := range map[string]string{"a.txt": "A", "dir/b.txt": "B", "dir/sub/c.txt": "C", "dir/sub/d.bin": "\x00\x01", "dir/b0": "after", "dir.x": "!"} {
		mustWrite(t, b, p, content)
	}
	mustDo(t, b.Mkdir(t.Context(), "emptydir"), "Mkdir")
	fsys := FS(t.Context(), b)
	if err := fstest.TestFS(fsys, "a.txt", "dir/b.txt", "dir/sub/c.txt", "dir/sub/d.bin", "dir/b0", "dir.x", "emptydir"); err != nil {
		t.Error(err)
	}
	sc, err := b.Scope("dir", nil)
	mustDo(t, err, "Scope")
	if err := fstest.TestFS(FS(t.Context(), sc), "b.txt", "sub/c.txt", "b0"); err != nil {
		t.Errorf("FS of a scope: %v", err)
	}
	data, err := fs.ReadFile(fsys, "dir/sub/d.bin")
	if err != nil || string(data) != "\x00\x01" {
		t.Errorf("fs.ReadFile = %q, %v", data, err)
	}
	f, err := fsys.Open("dir/b.txt")
	mustDo(t, err, "Open")
	if got, _ := io.ReadAll(f); string(got) != "B" {
		t.Errorf("read through FS: %q", got)
	}
	_ = f.Close()
}

func TestMemoryContext(t *testing.T) {
	b := newMem(t, MemoryConfig{})
	mustWrite(t, b, "f", "x")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ops := map[Code]map[string]error{CodeReadFailed: {}, CodeWriteFailed: {}, CodeLsFailed: {}}
	_, ops[CodeReadFailed]["Read"] = b.Read(ctx, "f")
	_, ops[CodeReadFailed]["Stat"] = b.Stat(ctx, "f")
	_, ops[CodeReadFailed]["Exists"] = b.Exists(ctx, "f")
	_, ops[CodeLsFailed]["ReadDir"] = b.ReadDir(ctx, ".")
	ops[CodeWriteFailed]["Write"] = b.Write(ctx, "f", nil)
	ops[CodeWriteFailed]["Mkdir"] = b.Mkdir(ctx, "d")
	ops[CodeWriteFailed]["Remove"] = b.Remove(ctx, "f", RemoveOptions{})
	ops[CodeWriteFailed]["Rename"] = b.Rename(ctx, "f", "g")
	ops[CodeWriteFailed]["Touch"] = b.Touch(ctx, "t")
	for code, m := range ops {
		for op, err := range m {
			if ErrorCode(err) != code || !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a cancelled context = %v, want %s wrapping context.Canceled", op, err, code)
			}
		}
	}
	wantContent(t, b, "f", "x")
	wantExist(t, b, "g", false)
}
