//go:build unix

package agentbackend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// forWriteImpls runs a test with each implementation of the atomic write:
// *at system calls (where they exist) and os.Root alone.
func forWriteImpls(t *testing.T, test func(t *testing.T)) {
	t.Run("at", func(t *testing.T) {
		if !haveWriteAt {
			t.Skip("no *at system calls here")
		}
		test(t)
	})
	t.Run("root", func(t *testing.T) {
		portableWrites = true
		defer func() { portableWrites = false }()
		test(t)
	})
}

func TestLocalReadWrite(t *testing.T) { forWriteImpls(t, testLocalReadWrite) }

func testLocalReadWrite(t *testing.T) {
	localNoLeaks(t)
	b := newLocal(t, LocalConfig{})
	ctx := context.Background()
	root := b.RootDir()

	localWrite(t, b, "a/b/c.txt", "hello")
	localWantFile(t, filepath.Join(root, "a/b/c.txt"), "hello")
	for _, p := range []string{"a/b/c.txt", "/a/b/c.txt", root + "/a/b/c.txt", "./a//b/../b/c.txt"} {
		if data, err := b.Read(ctx, p); err != nil || string(data) != "hello" {
			t.Errorf("Read(%q) = %q, %v", p, data, err)
		}
	}
	localWrite(t, b, "a/b/c.txt", "bye")
	localWantFile(t, filepath.Join(root, "a/b/c.txt"), "bye")
	localWrite(t, b, "empty", "")
	if data, err := b.Read(ctx, "empty"); err != nil || len(data) != 0 {
		t.Errorf("empty file: %q %v", data, err)
	}
	big := bytes.Repeat([]byte{0, 1, 2, 0xff}, 1<<18)
	if err := b.Write(ctx, "big", big); err != nil {
		t.Fatal(err)
	}
	if data, err := b.Read(ctx, "big"); err != nil || !bytes.Equal(data, big) {
		t.Errorf("1 MiB round trip: %d bytes, %v", len(data), err)
	}
	// A name near NAME_MAX still leaves room for the temporary name.
	long := strings.Repeat("n", 250)
	localWrite(t, b, long, "long")
	localWantFile(t, filepath.Join(root, long), "long")
	// Files that report no size (procfs) are read whole.
	if err := os.Symlink("/proc/self/status", filepath.Join(root, "proc-link")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Read(ctx, "proc-link"); !errors.Is(err, ErrPathEscape) {
		t.Errorf("absolute link to /proc: %v, want PATH_ESCAPE_ATTEMPT", err)
	}
	// No temporary files are left by successful writes.
	if names := localHostNames(t, root); !slices.Equal(names, []string{"a", "big", "empty", long, "proc-link"}) {
		t.Errorf("workspace holds %q", names)
	}

	_, err := b.Read(ctx, "missing/file.txt")
	e := localWantCode(t, err, CodeReadFailed, "Read missing")
	if !errors.Is(err, fs.ErrNotExist) || e == nil || e.Path != "missing/file.txt" || e.Op != "read" {
		t.Errorf("Read missing: %#v", err)
	}
	if strings.Contains(err.Error(), root) {
		t.Errorf("error shows the host path: %v", err)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path != "missing/file.txt" {
		t.Errorf("wrapped PathError carries %q", pe.Path)
	}
	_, err = b.Read(ctx, "a")
	if localWantCode(t, err, CodeReadFailed, "Read dir"); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("Read dir: %v, want EISDIR", err)
	}
	// Reading a FIFO fails at once instead of waiting for a writer.
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = b.Read(ctx, "fifo")
	if localWantCode(t, err, CodeReadFailed, "Read FIFO"); !errors.Is(err, errNotRegular) {
		t.Errorf("Read FIFO: %v", err)
	}
	localWantCode(t, b.Write(ctx, ".", []byte("x")), CodeWriteFailed, "Write root")
}

func TestLocalWriteIsAtomic(t *testing.T) { forWriteImpls(t, testLocalWriteIsAtomic) }

func testLocalWriteIsAtomic(t *testing.T) {
	localNoLeaks(t)
	b := newLocal(t, LocalConfig{})
	ctx := context.Background()
	root := b.RootDir()
	localWrite(t, b, "d/keep.txt", "old")
	localWrite(t, b, "file", "plain")

	// Failures before any temporary file: over a directory, under a file.
	err := b.Write(ctx, "d", []byte("x"))
	if localWantCode(t, err, CodeWriteFailed, "Write over dir"); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("Write over dir: %v", err)
	}
	err = b.Write(ctx, "file/child", []byte("x"))
	if localWantCode(t, err, CodeWriteFailed, "Write under file"); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("Write under file: %v", err)
	}
	localWantFile(t, filepath.Join(root, "file"), "plain")

	// Failures after the temporary file exists: the old file stays, the
	// temporary file goes.
	for _, step := range []string{"write", "rename"} {
		injected := fmt.Errorf("injected %s failure", step)
		writeFault = func(s string) error {
			if s == step {
				return injected
			}
			return nil
		}
		err := b.Write(ctx, "d/keep.txt", []byte("new"))
		writeFault = nil
		if localWantCode(t, err, CodeWriteFailed, step+" failure"); !errors.Is(err, injected) {
			t.Errorf("%s failure: %v", step, err)
		}
		localWantFile(t, filepath.Join(root, "d/keep.txt"), "old")
		if names := localHostNames(t, filepath.Join(root, "d")); !slices.Equal(names, []string{"keep.txt"}) {
			t.Errorf("after a failed %s the directory holds %q", step, names)
		}
	}

	// Readers never see a torn file while writers replace it.
	a, z := bytes.Repeat([]byte("a"), 256<<10), bytes.Repeat([]byte("z"), 256<<10)
	if err := b.Write(ctx, "torn", a); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range 2 {
		wg.Go(func() {
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				data := a
				if (i+j)%2 == 1 {
					data = z
				}
				if err := b.Write(ctx, "torn", data); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 200 {
		data, err := b.Read(ctx, "torn")
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != len(a) || (!bytes.Equal(data, a) && !bytes.Equal(data, z)) {
			t.Fatalf("read a torn file: %d bytes starting %q", len(data), data[:min(8, len(data))])
		}
	}
	close(stop)
	wg.Wait()
}

func TestLocalWriteKeepsModeAndLinks(t *testing.T) { forWriteImpls(t, testLocalWriteKeepsModeAndLinks) }

func testLocalWriteKeepsModeAndLinks(t *testing.T) {
	b := newLocal(t, LocalConfig{})
	ctx := context.Background()
	root := b.RootDir()
	for _, mode := range []fs.FileMode{0o600, 0o755, 0o666, 0o400} {
		name := fmt.Sprintf("mode-%o", mode)
		localWrite(t, b, name, "v1")
		if err := os.Chmod(filepath.Join(root, name), mode); err != nil {
			t.Fatal(err)
		}
		localWrite(t, b, name, "v2")
		fi, err := os.Stat(filepath.Join(root, name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s after Write: %v %v, want %v", name, fi.Mode(), err, mode)
		}
	}
	// Replacing someone else's file keeps its owner when this process may
	// set it (as root): a daemon running as root must not take files over.
	if os.Geteuid() == 0 {
		localWrite(t, b, "owned", "v1")
		if err := os.Chown(filepath.Join(root, "owned"), 1234, 5678); err != nil {
			t.Fatal(err)
		}
		localWrite(t, b, "owned", "v2")
		fi, _ := os.Stat(filepath.Join(root, "owned"))
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1234 || st.Gid != 5678 {
			t.Errorf("owner after Write: %d:%d, want 1234:5678", st.Uid, st.Gid)
		}
	}
	umask := syscall.Umask(0)
	syscall.Umask(umask)
	localWrite(t, b, "fresh", "x")
	if fi, _ := os.Stat(filepath.Join(root, "fresh")); fi.Mode().Perm() != 0o644&^fs.FileMode(umask) {
		t.Errorf("new file mode %v", fi.Mode())
	}

	// Writing through a link inside the workspace replaces the target and
	// keeps the link (CLAUDE.md -> AGENTS.md stays a link).
	localWrite(t, b, "docs/AGENTS.md", "v1")
	if err := os.Symlink("docs/AGENTS.md", filepath.Join(root, "CLAUDE.md")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../CLAUDE.md", filepath.Join(root, "docs/chain.md")); err != nil {
		t.Fatal(err)
	}
	localWrite(t, b, "CLAUDE.md", "v2")
	localWrite(t, b, "docs/chain.md", "v3")
	localWantFile(t, filepath.Join(root, "docs/AGENTS.md"), "v3")
	if fi, err := os.Lstat(filepath.Join(root, "CLAUDE.md")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi.Mode(), err)
	}
	// A dangling link inside: the write creates its target.
	if err := os.Symlink("made/by-write.txt", filepath.Join(root, "dangling")); err != nil {
		t.Fatal(err)
	}
	localWrite(t, b, "dangling", "created")
	localWantFile(t, filepath.Join(root, "made/by-write.txt"), "created")
	// A loop is an error, not a hang.
	if err := os.Symlink("loop2", filepath.Join(root, "loop1")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("loop1", filepath.Join(root, "loop2")); err != nil {
		t.Fatal(err)
	}
	err := b.Write(ctx, "loop1", []byte("x"))
	if localWantCode(t, err, CodeWriteFailed, "Write into a link loop"); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("link loop: %v", err)
	}
}

func TestLocalTouch(t *testing.T) {
	b := newLocal(t, LocalConfig{})
	ctx := context.Background()
	root := b.RootDir()
	if err := b.Touch(ctx, "new/dir/file"); err != nil {
		t.Fatal(err)
	}
	localWantFile(t, filepath.Join(root, "new/dir/file"), "")
	localWrite(t, b, "kept", "content")
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(root, "kept"), old, old); err != nil {
		t.Fatal(err)
	}
	if err := b.Touch(ctx, "kept"); err != nil {
		t.Fatal(err)
	}
	localWantFile(t, filepath.Join(root, "kept"), "content")
	if fi, _ := os.Stat(filepath.Join(root, "kept")); !fi.ModTime().Equal(old) {
		t.Errorf("Touch changed the modification time to %v", fi.ModTime())
	}
	// A read-only file can be touched: Touch never opens for writing.
	if err := os.Chmod(filepath.Join(root, "kept"), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := b.Touch(ctx, "kept"); err != nil {
		t.Errorf("Touch of a read-only file: %v", err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := b.Touch(ctx, "fifo"); err != nil { // must not wait for a writer
		t.Errorf("Touch of a FIFO: %v", err)
	}
	if err := b.Mkdir(ctx, "adir"); err != nil {
		t.Fatal(err)
	}
	localWantCode(t, b.Touch(ctx, "adir"), CodeWriteFailed, "Touch dir")
	localWantCode(t, b.Touch(ctx, "kept/under"), CodeWriteFailed, "Touch under a file")
}

func TestLocalReadDirAndInfo(t *testing.T) {
	b := newLocal(t, LocalConfig{})
	ctx := context.Background()
	root := b.RootDir()
	for _, p := range []string{"d/b.txt", "d/a.txt", "d/sub/x"} {
		localWrite(t, b, p, p)
	}
	if err := os.Symlink("a.txt", filepath.Join(root, "d/link-in")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(root, "d/link-out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", filepath.Join(root, "d/link-dangling")); err != nil {
		t.Fatal(err)
	}
	want := []string{"a.txt", "b.txt", "link-dangling", "link-in", "link-out", "sub"}
	names, err := b.ReadDir(ctx, "d")
	if err != nil || !slices.Equal(names, want) {
		t.Errorf("ReadDir = %q, %v", names, err)
	}
	infos, err := b.ReadDirInfo(ctx, "/d/")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, fi := range infos {
		got = append(got, fmt.Sprintf("%s:%d:%v:%v", fi.Name, fi.Size, fi.IsDir, fi.Mode.Type()))
	}
	wantInfo := []string{
		"a.txt:7:false:----------", "b.txt:7:false:----------",
		"link-dangling:7:false:L---------", // described as the link
		"link-in:7:false:----------",       // followed: the target is inside
		"link-out:4:false:L---------",      // not followed: the target is outside
	}
	if len(got) != 6 || !slices.Equal(got[:5], wantInfo) || !infos[5].IsDir || infos[5].Name != "sub" {
		t.Errorf("ReadDirInfo = %q", got)
	}
	if infos[0].ModTime.IsZero() || infos[0].Mode.Perm() == 0 {
		t.Errorf("ReadDirInfo lacks metadata: %+v", infos[0])
	}
	if infos, err := b.ReadDirInfo(ctx, "."); err != nil || len(infos) != 1 || infos[0].Name != "d" {
		t.Errorf("ReadDirInfo(.) = %+v, %v", infos, err)
	}
	for _, fn := range map[string]func(string) error{
		"ReadDir":     func(p string) error { _, err := b.ReadDir(ctx, p); return err },
		"ReadDirInfo": func(p string) error { _, err := b.ReadDirInfo(ctx, p); return err },
	} {
		err := fn("missing")
		if localWantCode(t, err, CodeLsFailed, "missing"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("missing dir: %v", err)
		}
		err = fn("d/a.txt")
		if localWantCode(t, err, CodeLsFailed, "file"); !errors.Is(err, syscall.ENOTDIR) || strings.Contains(err.Error(), root) {
			t.Errorf("listing a file: %v", err)
		}
	}
}

func TestLocalMkdirExistsStat(t *testing.T) {
	b := newLocal(t, LocalConfig{})
	ctx := context.Background()
	root := b.RootDir()
	for _, p := range []string{"a/b/c", "a/b/c", ".", "/"} {
		if err := b.Mkdir(ctx, p); err != nil {
			t.Errorf("Mkdir(%q): %v", p, err)
		}
	}
	localWrite(t, b, "a/f.txt", "12345")
	localWantCode(t, b.Mkdir(ctx, "a/f.txt"), CodeWriteFailed, "Mkdir over a file")
	localWantCode(t, b.Mkdir(ctx, "a/f.txt/sub"), CodeWriteFailed, "Mkdir under a file")
	if err := os.Symlink("b", filepath.Join(root, "a/link-to-b")); err != nil {
		t.Fatal(err)
	}
	if err := b.Mkdir(ctx, "a/link-to-b"); err != nil {
		t.Errorf("Mkdir of a link to a directory: %v", err)
	}

	for p, want := range map[string]bool{"a": true, "a/f.txt": true, ".": true, "a/link-to-b/c": true,
		"missing": false, "a/f.txt/below": false, "a/missing/x": false} {
		if got, err := b.Exists(ctx, p); err != nil || got != want {
			t.Errorf("Exists(%q) = %v, %v; want %v", p, got, err, want)
		}
	}

	fi, err := b.Stat(ctx, "a/f.txt")
	if err != nil || fi.Name != "f.txt" || fi.Size != 5 || fi.IsDir || fi.Mode.Perm() == 0 || time.Since(fi.ModTime) > time.Hour {
		t.Errorf("Stat(file) = %+v, %v", fi, err)
	}
	for p, name := range map[string]string{".": ".", "/": ".", root: ".", "a/link-to-b": "link-to-b", "a/b/": "b"} {
		fi, err := b.Stat(ctx, p)
		if err != nil || !fi.IsDir || !fi.Mode.IsDir() || fi.Name != name {
			t.Errorf("Stat(%q) = %+v, %v; want directory %q", p, fi, err, name)
		}
	}
	_, err = b.Stat(ctx, "nope")
	if localWantCode(t, err, CodeReadFailed, "Stat missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat missing: %v", err)
	}
}

func TestLocalRemove(t *testing.T) {
	b := newLocal(t, LocalConfig{})
	ctx := context.Background()
	root := b.RootDir()
	localWrite(t, b, "f", "x")
	if err := b.Remove(ctx, "f", RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	err := b.Remove(ctx, "f", RemoveOptions{})
	if localWantCode(t, err, CodeWriteFailed, "Remove missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Remove missing: %v", err)
	}
	for _, opts := range []RemoveOptions{{Force: true}, {Force: true, Recursive: true}} {
		if err := b.Remove(ctx, "f", opts); err != nil {
			t.Errorf("Remove missing %+v: %v", opts, err)
		}
	}
	err = b.Remove(ctx, "gone", RemoveOptions{Recursive: true})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Remove missing, Recursive without Force: %v", err)
	}

	// Directories need Recursive, even empty ones.
	if err := b.Mkdir(ctx, "empty"); err != nil {
		t.Fatal(err)
	}
	err = b.Remove(ctx, "empty", RemoveOptions{Force: true})
	if localWantCode(t, err, CodeWriteFailed, "Remove dir"); !errors.Is(err, syscall.EISDIR) || !strings.Contains(err.Error(), "Recursive") {
		t.Errorf("Remove dir without Recursive: %v", err)
	}
	localWrite(t, b, "tree/a/b/c", "c")
	localWrite(t, b, "tree-sibling", "keep")
	if err := b.Remove(ctx, "tree", RemoveOptions{Recursive: true}); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(ctx, "empty", RemoveOptions{Recursive: true}); err != nil {
		t.Fatal(err)
	}
	if names := localHostNames(t, root); !slices.Equal(names, []string{"tree-sibling"}) {
		t.Errorf("after removals: %q", names)
	}

	// A link is removed, never its target.
	localWrite(t, b, "target/keep", "k")
	if err := os.Symlink("target", filepath.Join(root, "dirlink")); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(ctx, "dirlink", RemoveOptions{Recursive: true}); err != nil {
		t.Fatal(err)
	}
	localWantFile(t, filepath.Join(root, "target/keep"), "k")

	// The workspace root is never removed, whatever the options.
	for _, p := range []string{".", "/", root, "a/.."} {
		for _, opts := range []RemoveOptions{{}, {Recursive: true}, {Recursive: true, Force: true}} {
			err := b.Remove(ctx, p, opts)
			if e := localWantCode(t, err, CodeWriteFailed, "Remove root"); e != nil && (!errors.Is(err, errRemoveRoot) || e.Path != p) {
				t.Errorf("Remove(%q, %+v): %v", p, opts, err)
			}
		}
	}
	localWantFile(t, filepath.Join(root, "tree-sibling"), "keep")
}

func TestLocalRename(t *testing.T) {
	b := newLocal(t, LocalConfig{})
	ctx := context.Background()
	root := b.RootDir()
	localWrite(t, b, "a.txt", "A")
	if err := b.Rename(ctx, "a.txt", "new/parents/b.txt"); err != nil {
		t.Fatal(err)
	}
	localWantFile(t, filepath.Join(root, "new/parents/b.txt"), "A")
	localWrite(t, b, "c.txt", "C")
	if err := b.Rename(ctx, "/c.txt", root+"/new/parents/b.txt"); err != nil {
		t.Fatal(err)
	}
	localWantFile(t, filepath.Join(root, "new/parents/b.txt"), "C")

	// A missing source fails without creating the destination's parents.
	err := b.Rename(ctx, "missing", "made/up/x")
	if e := localWantCode(t, err, CodeWriteFailed, "Rename missing"); !errors.Is(err, fs.ErrNotExist) || e == nil || e.Path != "missing" {
		t.Errorf("Rename missing: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "made")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a failed Rename created the destination's parents")
	}
	// A directory is not replaced.
	localWrite(t, b, "dir/x", "x")
	localWrite(t, b, "file", "f")
	localWantCode(t, b.Rename(ctx, "file", "dir"), CodeWriteFailed, "Rename over a directory")
	localWantFile(t, filepath.Join(root, "dir/x"), "x")
	// Both paths are checked: nothing moves when either escapes.
	for _, pair := range [][2]string{{"../x", "file"}, {"file", "../x"}, {"file", "a/../../x"}, {root + "/../x", "y"}} {
		err := b.Rename(ctx, pair[0], pair[1])
		if e := localWantCode(t, err, CodePathEscape, fmt.Sprint("Rename", pair)); e != nil && e.Path != pair[0] && e.Path != pair[1] {
			t.Errorf("Rename%q names %q", pair, e.Path)
		}
	}
	localWantFile(t, filepath.Join(root, "file"), "f")
}

func TestLocalContextCancelledBeforeWork(t *testing.T) {
	b := newLocal(t, LocalConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	errs := map[string]error{}
	errs["Write"] = b.Write(ctx, "w", []byte("x"))
	errs["Touch"] = b.Touch(ctx, "t")
	errs["Mkdir"] = b.Mkdir(ctx, "m")
	_, errs["Read"] = b.Read(ctx, "r")
	_, errs["Stat"] = b.Stat(ctx, ".")
	_, errs["Exists"] = b.Exists(ctx, ".")
	_, errs["ReadDir"] = b.ReadDir(ctx, ".")
	errs["Remove"] = b.Remove(ctx, "x", RemoveOptions{Force: true})
	errs["Rename"] = b.Rename(ctx, "x", "y")
	_, errs["Exec"] = b.Exec(ctx, "touch ran", nil)
	for op, err := range errs {
		if !errors.Is(err, context.Canceled) || ErrorCode(err) == "" {
			t.Errorf("%s with a cancelled ctx: %v", op, err)
		}
	}
	if names := localHostNames(t, b.RootDir()); len(names) != 0 {
		t.Errorf("work was done under a cancelled ctx: %q", names)
	}
}
