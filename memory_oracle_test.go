package agentbackend

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestMemoryAgainstOS applies random sequences of operations to a
// MemoryBackend and to a real directory (through os.Root) and requires the
// same outcome from both: success, or failure with the same errno, and the
// same tree afterwards. This is what "behaves like a file system" means.
//
// One difference is allowed: looking a path up through a file
// ("f/x" where f is a file) is ENOTDIR on disk and plain missing (ENOENT,
// KEY_NOT_FOUND) in memory, for operations that only look paths up.
func TestMemoryAgainstOS(t *testing.T) {
	seeds := uint64(24)
	if testing.Short() {
		seeds = 4
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			runAgainstOS(t, seed, 300)
		})
	}
}

// FuzzMemoryAgainstOS explores more operation sequences than the fixed
// seeds: go test -run '^$' -fuzz FuzzMemoryAgainstOS.
func FuzzMemoryAgainstOS(f *testing.F) {
	f.Add(uint64(1000), uint64(0))
	f.Fuzz(func(t *testing.T, seed, stream uint64) { runAgainstOS(t, seed^stream<<32, 150) })
}

// oracleNames are path elements chosen to sort awkwardly: "a.b" and "a-"
// come between "a" and "a/...", so subtree seeks and prefix ranges are
// exercised.
var oracleNames = []string{"a", "b", "a.b", "a-"}

func randomPath(r *rand.Rand) string {
	elems := make([]string, 1+r.IntN(3))
	for i := range elems {
		elems[i] = oracleNames[r.IntN(len(oracleNames))]
	}
	return strings.Join(elems, "/")
}

func runAgainstOS(t *testing.T, seed uint64, steps int) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	mem := newMem(t, MemoryConfig{})
	root, err := os.OpenRoot(t.TempDir())
	mustDo(t, err, "OpenRoot")
	t.Cleanup(func() { _ = root.Close() })
	ctx := t.Context()

	for step := range steps {
		p, q := randomPath(r), randomPath(r)
		data := []byte(fmt.Sprint(step))
		var what string
		var memErr, osErr error
		op := r.IntN(10)
		lookupOnly, changes := false, op < 7 // ops 0-6 change the tree
		switch op {
		case 0, 1:
			what = "write " + p
			memErr = mem.Write(ctx, p, data)
			osErr = osWrite(root, p, data)
		case 2:
			what = "mkdir " + p
			memErr = mem.Mkdir(ctx, p)
			osErr = root.MkdirAll(p, 0o755)
		case 3:
			opts := RemoveOptions{Recursive: r.IntN(2) == 0, Force: r.IntN(3) == 0}
			what = fmt.Sprintf("remove %s %+v", p, opts)
			memErr = mem.Remove(ctx, p, opts)
			osErr = osRemove(root, p, opts)
			lookupOnly = true
		case 4, 5:
			what = "rename " + p + " " + q
			memErr = mem.Rename(ctx, p, q)
			osErr = osRename(root, p, q)
			lookupOnly = errors.Is(memErr, fs.ErrNotExist)
		case 6:
			what = "touch " + p
			memErr = mem.Touch(ctx, p)
			osErr = osTouch(root, p)
		case 7:
			what = "read " + p
			got, err := mem.Read(ctx, p)
			want, werr := root.ReadFile(p)
			memErr, osErr, lookupOnly = err, werr, true
			if err == nil && werr == nil && string(got) != string(want) {
				t.Fatalf("step %d %s: read %q, disk has %q", step, what, got, want)
			}
		case 8:
			what = "readdir " + p
			got, err := mem.ReadDir(ctx, p)
			entries, werr := fs.ReadDir(root.FS(), p)
			memErr, osErr, lookupOnly = err, werr, true
			var want []string
			for _, e := range entries {
				want = append(want, e.Name())
			}
			if err == nil && werr == nil && !slices.Equal(got, want) && len(got)+len(want) > 0 {
				t.Fatalf("step %d %s: %q, disk has %q", step, what, got, want)
			}
		case 9:
			what = "stat " + p
			fi, err := mem.Stat(ctx, p)
			want, werr := root.Stat(p)
			memErr, osErr, lookupOnly = err, werr, true
			if err == nil && werr == nil && (fi.IsDir != want.IsDir() || !fi.IsDir && fi.Size != want.Size()) {
				t.Fatalf("step %d %s: %+v, disk has dir=%v size=%d", step, what, fi, want.IsDir(), want.Size())
			}
			ok, _ := mem.Exists(ctx, p)
			if ok != (werr == nil) {
				t.Fatalf("step %d exists %s = %v, disk: %v", step, p, ok, werr)
			}
		}
		me, oe := errnoOf(t, memErr), errnoOf(t, osErr)
		if lookupOnly && me == syscall.ENOENT && oe == syscall.ENOTDIR {
			oe = me
		}
		if me != oe {
			t.Fatalf("step %d %s: memory %v, disk %v", step, what, memErr, osErr)
		}
		if !changes {
			continue
		}
		if got, want := memTree(t, mem), diskTree(t, root); !slices.Equal(got, want) {
			t.Fatalf("step %d %s: trees differ\nmemory: %q\ndisk:   %q", step, what, got, want)
		}
	}
	checkIndex(t, mem.idx)
}

// errnoOf returns the errno an error carries, 0 for nil.
func errnoOf(t *testing.T, err error) syscall.Errno {
	t.Helper()
	if err == nil {
		return 0
	}
	var en syscall.Errno
	if !errors.As(err, &en) {
		t.Fatalf("error without an errno: %v (%T)", err, err)
	}
	return en
}

// osParent creates p's parent directories, as the backend's Write, Touch
// and Rename do. A file in the way is ENOTDIR, as open(2) would say, though
// os.Root.MkdirAll says EEXIST when the file is the parent itself.
func osParent(root *os.Root, p string) error {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return nil
	}
	err := root.MkdirAll(p[:i], 0o755)
	if errors.Is(err, syscall.EEXIST) {
		return syscall.ENOTDIR
	}
	return err
}

func osWrite(root *os.Root, p string, data []byte) error {
	if err := osParent(root, p); err != nil {
		return err
	}
	return root.WriteFile(p, data, 0o644)
}

func osTouch(root *os.Root, p string) error {
	if fi, err := root.Lstat(p); err == nil {
		if fi.IsDir() {
			return syscall.EISDIR // LocalBackend opens it to write
		}
		return nil // only the time would change
	}
	if err := osParent(root, p); err != nil {
		return err
	}
	f, err := root.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

func osRemove(root *os.Root, p string, opts RemoveOptions) error {
	fi, err := root.Lstat(p)
	if err != nil {
		if opts.Force && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) {
			return nil
		}
		return err
	}
	if fi.IsDir() && !opts.Recursive {
		return syscall.EISDIR // LocalBackend's rule, like rm without -r
	}
	if opts.Recursive {
		return root.RemoveAll(p)
	}
	return root.Remove(p)
}

// osRename is rename(2) plus the backend's creation of missing parents of
// the target.
func osRename(root *os.Root, from, to string) error {
	fi, err := root.Lstat(from)
	if err != nil || from == to {
		return err
	}
	if fi.IsDir() && strings.HasPrefix(to, from+"/") {
		return syscall.EINVAL
	}
	if err := osParent(root, to); err != nil {
		return err
	}
	return root.Rename(from, to)
}

// memTree and diskTree describe a whole tree as "path/" for directories and
// "path=contents" for files, in walk order.
func memTree(t *testing.T, b *MemoryBackend) []string {
	return walkTree(t, FS(t.Context(), b))
}

func diskTree(t *testing.T, root *os.Root) []string { return walkTree(t, root.FS()) }

func walkTree(t *testing.T, fsys fs.FS) []string {
	t.Helper()
	var tree []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			tree = append(tree, p+"/")
		default:
			data, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			tree = append(tree, p+"="+string(data))
		}
		return nil
	})
	mustDo(t, err, "WalkDir")
	return tree
}
