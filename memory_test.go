package agentbackend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"syscall"
	"testing"
	"time"
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
	wantError(t, err, CodeReadFailed, "missing.txt", fs.ErrNotExist, "Read(missing)")
	_, err = b.Read(ctx, "hello.txt/below")
	wantError(t, err, CodeReadFailed, "hello.txt/below", fs.ErrNotExist, "Read(below a file)")
	_, err = b.Read(ctx, "a/b")
	wantError(t, err, CodeReadFailed, "a/b", syscall.EISDIR, "Read(directory)")
	_, err = b.Read(ctx, ".")
	wantError(t, err, CodeReadFailed, ".", syscall.EISDIR, "Read(root)")

	err = b.Write(ctx, "a/b", []byte("x"))
	wantError(t, err, CodeWriteFailed, "a/b", syscall.EISDIR, "Write over a directory")
	wantContent(t, b, "a/b/c/d.txt", "deep")
	err = b.Write(ctx, "/", []byte("x"))
	wantError(t, err, CodeInvalidArgument, "/", nil, "Write over the root (a path ending in /)")
	err = b.Write(ctx, ".", []byte("x"))
	wantError(t, err, CodeWriteFailed, ".", syscall.EISDIR, "Write over the root")

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
	wantError(t, err, CodeReadFailed, "missing", fs.ErrNotExist, "Stat(missing)")
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
