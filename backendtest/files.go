package backendtest

import (
	"bytes"
	"errors"
	"io/fs"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	ab "github.com/agentbackend/agentbackend"
)

// escapes are paths that leave the root under every spelling.
var escapes = []string{"../x", "../../..", "a/b/../../../etc", "..", "./../x"}

func (s suite) testPaths(t *testing.T) {
	b := s.fresh(t)
	c := ctx(t)
	root := b.RootDir()
	if !strings.HasPrefix(root, "/") {
		t.Fatalf("RootDir() = %q, want an absolute path", root)
	}

	// The three cases of spec/paths.md all name the same file.
	write(t, b, "dir/file.txt", "one")
	wantRead(t, b, "/dir/file.txt", "one")
	wantRead(t, b, path.Join(root, "dir/file.txt"), "one")
	wantRead(t, b, "./dir//file.txt", "one")
	wantRead(t, b, "dir/sub/../file.txt", "one")

	// An absolute path outside the root is taken as relative to it.
	write(t, b, "/etc/passwd", "not the host's")
	wantRead(t, b, "etc/passwd", "not the host's")

	// Every operation refuses every escape, naming the path.
	// root + "/../outside" (not path.Join, which would clean it to an
	// absolute path outside the root: rule 3, not an escape).
	for _, p := range append(escapes, root+"/../outside") {
		ops := map[string]error{}
		_, ops["Read"] = b.Read(c, p)
		ops["Write"] = b.Write(c, p, []byte("x"))
		_, ops["ReadDir"] = b.ReadDir(c, p)
		ops["Mkdir"] = b.Mkdir(c, p)
		_, ops["Exists"] = b.Exists(c, p)
		_, ops["Stat"] = b.Stat(c, p)
		ops["Remove"] = b.Remove(c, p, ab.RemoveOptions{Recursive: true, Force: true})
		ops["Rename from"] = b.Rename(c, p, "in.txt")
		ops["Rename to"] = b.Rename(c, "dir/file.txt", p)
		ops["Touch"] = b.Touch(c, p)
		_, ops["Scope"] = b.Scope(p, nil)
		for op, err := range ops {
			if e := wantCode(t, err, ab.CodePathEscape, op+"("+p+")"); e != nil && e.Path != p {
				t.Errorf("%s(%q): error names path %q", op, p, e.Path)
			}
		}
	}
	// The rename that was refused did not move anything.
	wantRead(t, b, "dir/file.txt", "one")
}

func (s suite) testReadWrite(t *testing.T) {
	b := s.fresh(t)
	c := ctx(t)

	write(t, b, "hello.txt", "hello, world\n")
	wantRead(t, b, "hello.txt", "hello, world\n")

	binary := make([]byte, 256*4)
	for i := range binary {
		binary[i] = byte(i)
	}
	must(t, b.Write(c, "bin/all-bytes", binary), "Write binary")
	if got, err := b.Read(c, "bin/all-bytes"); err != nil || !bytes.Equal(got, binary) {
		t.Errorf("binary round trip: %d bytes, %v", len(got), err)
	}

	write(t, b, "empty", "")
	wantRead(t, b, "empty", "")

	write(t, b, "hello.txt", "short")
	wantRead(t, b, "hello.txt", "short") // overwrite truncates

	write(t, b, "deep/er/and/deeper/f.txt", "nested")
	wantRead(t, b, "deep/er/and/deeper/f.txt", "nested")

	write(t, b, "ünïcødé/名前.txt", "utf-8 names")
	wantRead(t, b, "ünïcødé/名前.txt", "utf-8 names")
	write(t, b, "spaces and 'quotes'/$x;y.txt", "shell characters")
	wantRead(t, b, "spaces and 'quotes'/$x;y.txt", "shell characters")

	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	must(t, b.Write(c, "big.bin", big), "Write 1 MiB")
	if got, err := b.Read(c, "big.bin"); err != nil || !bytes.Equal(got, big) {
		t.Errorf("1 MiB round trip: %d bytes, %v", len(got), err)
	}

	// The caller's slice is not retained.
	buf := []byte("original")
	must(t, b.Write(c, "alias", buf), "Write alias")
	buf[0] = 'X'
	wantRead(t, b, "alias", "original")

	_, err := b.Read(c, "missing.txt")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read(missing): %v, want errors.Is(err, fs.ErrNotExist)", err)
	}
	if e := wantErr(t, err, "Read(missing)"); e != nil && e.Path != "missing.txt" {
		t.Errorf("Read(missing) error names %q", e.Path)
	}
	_, err = b.Read(c, "deep")
	wantErr(t, err, "Read(directory)")

	// A write whose parent is a file fails and changes nothing.
	err = b.Write(c, "hello.txt/child", []byte("x"))
	wantErr(t, err, "Write under a file")
	wantRead(t, b, "hello.txt", "short")
	// A write over a directory fails and keeps the directory.
	err = b.Write(c, "deep", []byte("x"))
	wantErr(t, err, "Write over a directory")
	wantRead(t, b, "deep/er/and/deeper/f.txt", "nested")
}

func (s suite) testReadDir(t *testing.T) {
	b := s.fresh(t)
	c := ctx(t)
	for _, p := range []string{"d/b.txt", "d/a.txt", "d/sub/x", "d/sub/y/z", "d/c", "other/o"} {
		write(t, b, p, p)
	}
	names, err := b.ReadDir(c, "d")
	must(t, err, "ReadDir d")
	if want := []string{"a.txt", "b.txt", "c", "sub"}; !slices.Equal(names, want) {
		t.Errorf("ReadDir(d) = %q, want %q (sorted, immediate children only)", names, want)
	}
	root, err := b.ReadDir(c, ".")
	must(t, err, "ReadDir .")
	want := append([]string{"d", "other"}, s.opts.RootEntries...)
	slices.Sort(want)
	if !slices.Equal(root, want) {
		t.Errorf("ReadDir(.) = %q, want %q", root, want)
	}
	if again, err := b.ReadDir(c, "/"); err != nil || !slices.Equal(again, root) {
		t.Errorf("ReadDir(/) = %q, %v; want the root", again, err)
	}
	must(t, b.Mkdir(c, "emptydir"), "Mkdir")
	if names, err := b.ReadDir(c, "emptydir"); err != nil || len(names) != 0 {
		t.Errorf("ReadDir(empty) = %q, %v", names, err)
	}
	_, err = b.ReadDir(c, "nope")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadDir(missing) = %v, want fs.ErrNotExist", err)
	}
	wantErr(t, err, "ReadDir(missing)")
	_, err = b.ReadDir(c, "d/a.txt")
	wantErr(t, err, "ReadDir(file)")
}

func (s suite) testMkdir(t *testing.T) {
	b := s.fresh(t)
	c := ctx(t)
	must(t, b.Mkdir(c, "a/b/c"), "Mkdir a/b/c")
	must(t, b.Mkdir(c, "a/b/c"), "Mkdir existing")
	must(t, b.Mkdir(c, "."), "Mkdir root")
	for _, p := range []string{"a", "a/b", "a/b/c"} {
		fi, err := b.Stat(c, p)
		must(t, err, "Stat "+p)
		if !fi.IsDir {
			t.Errorf("Stat(%q).IsDir = false after Mkdir", p)
		}
	}
	write(t, b, "file", "x")
	wantErr(t, b.Mkdir(c, "file"), "Mkdir over a file")
	wantErr(t, b.Mkdir(c, "file/sub"), "Mkdir under a file")
	wantRead(t, b, "file", "x")
}

func (s suite) testExistsStat(t *testing.T) {
	b := s.fresh(t)
	c := ctx(t)
	before := time.Now().Add(-time.Minute)
	write(t, b, "dir/file.txt", "12345")
	wantExists(t, b, "dir/file.txt", true)
	wantExists(t, b, "dir", true)
	wantExists(t, b, ".", true)
	wantExists(t, b, "missing", false)
	wantExists(t, b, "dir/file.txt/below", false)

	fi, err := b.Stat(c, "dir/file.txt")
	must(t, err, "Stat file")
	if fi.Name != "file.txt" || fi.Size != 5 || fi.IsDir || fi.Mode.IsDir() {
		t.Errorf("Stat(file) = %+v", fi)
	}
	if fi.ModTime.Before(before) || fi.ModTime.After(time.Now().Add(time.Minute)) {
		t.Errorf("Stat(file).ModTime = %v, want about now", fi.ModTime)
	}
	di, err := b.Stat(c, "dir")
	must(t, err, "Stat dir")
	if di.Name != "dir" || !di.IsDir || !di.Mode.IsDir() {
		t.Errorf("Stat(dir) = %+v, want a directory", di)
	}
	ri, err := b.Stat(c, ".")
	must(t, err, "Stat root")
	if !ri.IsDir {
		t.Errorf("Stat(.) = %+v, want a directory", ri)
	}
	_, err = b.Stat(c, "missing")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(missing) = %v, want fs.ErrNotExist", err)
	}
	wantErr(t, err, "Stat(missing)")
}

func (s suite) testRemove(t *testing.T) {
	b := s.fresh(t)
	c := ctx(t)
	write(t, b, "f", "x")
	must(t, b.Remove(c, "f", ab.RemoveOptions{}), "Remove file")
	wantExists(t, b, "f", false)

	err := b.Remove(c, "f", ab.RemoveOptions{})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Remove(missing) = %v, want fs.ErrNotExist", err)
	}
	wantErr(t, err, "Remove(missing)")
	must(t, b.Remove(c, "f", ab.RemoveOptions{Force: true}), "Remove(missing, Force)")

	write(t, b, "tree/a", "a")
	write(t, b, "tree/sub/b", "b")
	write(t, b, "tree-sibling", "keep")
	write(t, b, "treehouse/c", "keep")
	wantErr(t, b.Remove(c, "tree", ab.RemoveOptions{}), "Remove(non-empty dir) without Recursive")
	wantRead(t, b, "tree/sub/b", "b")
	must(t, b.Remove(c, "tree", ab.RemoveOptions{Recursive: true}), "Remove recursive")
	wantExists(t, b, "tree", false)
	wantExists(t, b, "tree/sub/b", false)
	// Only the directory's own subtree went, not keys sharing its prefix.
	wantRead(t, b, "tree-sibling", "keep")
	wantRead(t, b, "treehouse/c", "keep")

	must(t, b.Mkdir(c, "empty"), "Mkdir")
	must(t, b.Remove(c, "empty", ab.RemoveOptions{Recursive: true}), "Remove empty dir")
	wantExists(t, b, "empty", false)
}

func (s suite) testRename(t *testing.T) {
	b := s.fresh(t)
	c := ctx(t)
	write(t, b, "a.txt", "A")
	must(t, b.Rename(c, "a.txt", "moved/deeper/b.txt"), "Rename into new parents")
	wantExists(t, b, "a.txt", false)
	wantRead(t, b, "moved/deeper/b.txt", "A")

	write(t, b, "c.txt", "C")
	must(t, b.Rename(c, "c.txt", "moved/deeper/b.txt"), "Rename over a file")
	wantRead(t, b, "moved/deeper/b.txt", "C")

	write(t, b, "dir/x", "x")
	write(t, b, "dir/sub/y", "y")
	must(t, b.Rename(c, "dir", "dir2"), "Rename directory")
	wantExists(t, b, "dir", false)
	wantRead(t, b, "dir2/x", "x")
	wantRead(t, b, "dir2/sub/y", "y")

	err := b.Rename(c, "missing", "elsewhere")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Rename(missing) = %v, want fs.ErrNotExist", err)
	}
	wantErr(t, err, "Rename(missing)")
	wantExists(t, b, "elsewhere", false)

	must(t, b.Rename(c, "/dir2/x", b.RootDir()+"/x-abs"), "Rename with absolute paths")
	wantRead(t, b, "x-abs", "x")
}

func (s suite) testTouch(t *testing.T) {
	b := s.fresh(t)
	c := ctx(t)
	must(t, b.Touch(c, "new/file"), "Touch new")
	wantRead(t, b, "new/file", "")
	write(t, b, "kept", "content")
	must(t, b.Touch(c, "kept"), "Touch existing")
	wantRead(t, b, "kept", "content")
	must(t, b.Mkdir(c, "adir"), "Mkdir")
	if err := b.Touch(c, "adir"); err == nil {
		if fi, err := b.Stat(c, "adir"); err != nil || !fi.IsDir {
			t.Errorf("Touch(dir) replaced the directory: %+v %v", fi, err)
		}
	}
}
