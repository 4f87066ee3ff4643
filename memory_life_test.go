package agentbackend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"go.uber.org/goleak"
)

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
	wantExist(t, b, "s", false) // the scope's Exec created nothing on its way to failing
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
	wantError(t, err, CodeReadFailed, "/ws/users/user2/secret", fs.ErrNotExist, "scope Read(sibling absolute)")
	_, err = u1.Read(ctx, "missing")
	wantError(t, err, CodeReadFailed, "missing", fs.ErrNotExist, "scope Read(missing)")

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

// flipCtx is a context whose Err is nil for its first n calls and
// context.Canceled after: it ends in the middle of an operation.
type flipCtx struct {
	context.Context
	n atomic.Int32
}

func endsAfter(n int32) *flipCtx {
	c := &flipCtx{Context: context.Background()}
	c.n.Store(n)
	return c
}

func (c *flipCtx) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

func TestMemoryContextEndsMidway(t *testing.T) {
	b := newMem(t, MemoryConfig{})
	ctx := t.Context()
	const n = 3*removeBatch + 10
	for i := range n {
		mustWrite(t, b, fmt.Sprintf("big/%c/f%05d", 'a'+i%3, i), "x")
	}
	mustWrite(t, b, "big0", "sibling")

	// A listing checks its context as it goes.
	for i := range listCheckEvery + 1 {
		mustWrite(t, b, fmt.Sprintf("wide/f%05d", i), "")
	}
	_, err := b.ReadDir(endsAfter(1), "wide")
	wantError(t, err, CodeLsFailed, "wide", context.Canceled, "ReadDir ended midway")
	_, err = b.ReadDirInfo(endsAfter(1), "wide")
	wantError(t, err, CodeLsFailed, "wide", context.Canceled, "ReadDirInfo ended midway")
	mustDo(t, b.Remove(ctx, "wide", RemoveOptions{Recursive: true}), "Remove wide")

	// A rename ended while gathering changes nothing.
	err = b.Rename(endsAfter(1), "big", "moved")
	wantError(t, err, CodeWriteFailed, "big", context.Canceled, "Rename ended midway")
	wantExist(t, b, "moved", false)
	if got := len(b.ListKeys("big")); got != n {
		t.Errorf("after a stopped Rename, big has %d files, want %d", got, n)
	}

	// A recursive remove ended midway leaves a consistent, smaller tree.
	err = b.Remove(endsAfter(2), "big", RemoveOptions{Recursive: true})
	wantError(t, err, CodeWriteFailed, "big", context.Canceled, "Remove ended midway")
	if got := len(b.ListKeys("big")); got == 0 || got >= n {
		t.Errorf("after a stopped Remove, big has %d files, want some of %d", got, n)
	}
	checkIndex(t, b.idx)
	mustDo(t, b.Remove(ctx, "big", RemoveOptions{Recursive: true}), "Remove")
	wantNames(t, b, ".", "big0")
}

func TestMemoryFreedUnderLock(t *testing.T) {
	// An operation that passed checkOpen just before Close freed the store
	// finds the index gone under the lock and reports BACKEND_DESTROYED,
	// never a nil dereference. Simulate that window directly.
	b := newMem(t, MemoryConfig{})
	ctx := t.Context()
	mustWrite(t, b, "f", "x")
	b.mu.Lock()
	b.idx = nil
	b.mu.Unlock()
	ops := map[string]error{}
	_, ops["Read"] = b.Read(ctx, "f")
	ops["Write"] = b.Write(ctx, "f", nil)
	_, ops["ReadDir"] = b.ReadDir(ctx, ".")
	ops["Mkdir"] = b.Mkdir(ctx, "d")
	_, ops["Exists"] = b.Exists(ctx, "f")
	_, ops["Stat"] = b.Stat(ctx, "f")
	ops["Remove"] = b.Remove(ctx, "f", RemoveOptions{})
	ops["Rename"] = b.Rename(ctx, "f", "g")
	ops["Touch"] = b.Touch(ctx, "t")
	for op, err := range ops {
		if !errors.Is(err, ErrDestroyed) {
			t.Errorf("%s on a freed store = %v, want BACKEND_DESTROYED", op, err)
		}
	}
}
