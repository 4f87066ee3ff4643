package backendtest

import (
	"errors"
	"io"
	"io/fs"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	ab "github.com/agentbackend/agentbackend"
)

func (s suite) testScopes(t *testing.T) {
	b := s.fresh(t)
	c := ctx(t)

	u1, err := b.Scope("users/user1", &ab.ScopeConfig{Env: map[string]string{"TENANT": "one", "LEVEL": "outer"}})
	must(t, err, "Scope users/user1")
	u2, err := b.Scope("/users/user2/", nil)
	must(t, err, "Scope /users/user2/")
	if got := b.ActiveScopes(); !slices.Equal(got, []string{"users/user1", "users/user2"}) {
		t.Errorf("ActiveScopes() = %q", got)
	}
	if u1.RootDir() != joinRoot(b.RootDir(), "users/user1") {
		t.Errorf("scope RootDir() = %q", u1.RootDir())
	}
	if u1.Type() != b.Type() || u1.Status() != b.Status() {
		t.Errorf("scope type/status %s/%s differ from parent %s/%s", u1.Type(), u1.Status(), b.Type(), b.Status())
	}

	// Writes land in the parent under the scope path; the scope root is
	// created on the first write.
	write(t, u1, "notes.txt", "u1 notes")
	wantRead(t, b, "users/user1/notes.txt", "u1 notes")
	wantRead(t, u1, "/notes.txt", "u1 notes")
	wantRead(t, u1, u1.RootDir()+"/notes.txt", "u1 notes")
	write(t, u2, "secret", "u2 secret")

	// A sibling scope is out of reach, however it is spelled.
	for _, p := range []string{"../user2/secret", "../../users/user2/secret", "a/../../user2/secret"} {
		_, err := u1.Read(c, p)
		wantCode(t, err, ab.CodePathEscape, "scope Read("+p+")")
	}
	// The parent's absolute path of the sibling means a path inside u1.
	_, err = u1.Read(c, b.RootDir()+"/users/user2/secret")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("absolute sibling path from a scope: %v, want not-exist inside the scope", err)
	}
	for _, p := range []string{"../x", "a/..", "a/../b", ".."} {
		_, err := u1.Scope(p, nil)
		wantCode(t, err, ab.CodePathEscape, "Scope("+p+")")
	}

	// Listing, stat, rename and remove stay inside.
	names, err := u1.ReadDir(c, ".")
	must(t, err, "scope ReadDir")
	if !slices.Equal(names, []string{"notes.txt"}) {
		t.Errorf("scope ReadDir(.) = %q", names)
	}
	must(t, u1.Rename(c, "notes.txt", "archive/notes.txt"), "scope Rename")
	wantRead(t, b, "users/user1/archive/notes.txt", "u1 notes")
	must(t, u1.Remove(c, "archive", ab.RemoveOptions{Recursive: true}), "scope Remove")
	wantExists(t, b, "users/user1/archive", false)
	wantExists(t, b, "users/user2/secret", true)

	// Errors name the path the caller gave, not the parent's.
	_, err = u1.Read(c, "missing")
	if e := wantErr(t, err, "scope Read(missing)"); e != nil && e.Path != "missing" {
		t.Errorf("scope error names %q, want %q", e.Path, "missing")
	}

	// Nesting: paths join, environments merge with the deeper one winning.
	inner, err := u1.Scope("projects/p1", &ab.ScopeConfig{Env: map[string]string{"LEVEL": "inner"}})
	must(t, err, "nested Scope")
	write(t, inner, "main.go", "package main")
	wantRead(t, b, "users/user1/projects/p1/main.go", "package main")
	if env := inner.Env(); env["TENANT"] != "one" || env["LEVEL"] != "inner" {
		t.Errorf("nested env = %v", env)
	}
	if got := u1.ActiveScopes(); !slices.Equal(got, []string{"projects/p1"}) {
		t.Errorf("u1.ActiveScopes() = %q", got)
	}
	_, err = inner.Read(c, "../../user2/secret")
	wantCode(t, err, ab.CodePathEscape, "nested scope escape")

	// Bad environments are refused when the scope is made.
	_, err = b.Scope("x", &ab.ScopeConfig{Env: map[string]string{"LD_PRELOAD": "/evil.so"}})
	wantCode(t, err, ab.CodeInvalidConfiguration, "Scope with LD_PRELOAD")

	// TrackCloser on a scope goes to the root backend.
	var closed atomic.Int32
	inner.TrackCloser(closerFunc(func() error { closed.Add(1); return nil }))

	// Closing a scope unregisters it and fails its own operations, but
	// leaves the parent and its siblings running.
	must(t, u2.Close(), "scope Close")
	must(t, u2.Close(), "scope Close again")
	if got := b.ActiveScopes(); !slices.Equal(got, []string{"users/user1"}) {
		t.Errorf("ActiveScopes() after Close = %q", got)
	}
	_, err = u2.Read(c, "secret")
	wantCode(t, err, ab.CodeDestroyed, "Read on a closed scope")
	if u2.Status() != ab.StatusDestroyed || b.Status() == ab.StatusDestroyed {
		t.Errorf("statuses after scope Close: scope %s, parent %s", u2.Status(), b.Status())
	}
	wantRead(t, b, "users/user2/secret", "u2 secret")
	if closed.Load() != 0 {
		t.Error("a scope's Close closed a tracked closer")
	}

	// Closing the parent leaves scopes orphaned: they fail, they are not
	// closed, and their tracked closers run once.
	must(t, b.Close(), "parent Close")
	if closed.Load() != 1 {
		t.Errorf("tracked closer ran %d times, want 1", closed.Load())
	}
	if u1.Status() != ab.StatusDestroyed || inner.Status() != ab.StatusDestroyed {
		t.Errorf("scope statuses after parent Close: %s, %s", u1.Status(), inner.Status())
	}
	_, err = inner.Read(c, "main.go")
	wantCode(t, err, ab.CodeDestroyed, "Read through an orphaned scope")
	_, err = b.Scope("late", nil)
	wantCode(t, err, ab.CodeDestroyed, "Scope on a closed backend")

	t.Run("ConcurrentFirstWrites", func(t *testing.T) {
		b := s.fresh(t)
		sc, err := b.Scope("fresh/scope", nil)
		must(t, err, "Scope")
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for i := range 32 {
			wg.Go(func() {
				errs <- sc.Write(ctx(t), "f"+string(rune('a'+i)), []byte{byte(i)})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			must(t, err, "concurrent first write")
		}
		names, err := b.ReadDir(ctx(t), "fresh/scope")
		must(t, err, "ReadDir")
		if len(names) != 32 {
			t.Errorf("%d files after 32 concurrent writes", len(names))
		}
	})

	t.Run("Logger", func(t *testing.T) {
		b := s.fresh(t)
		logger := ab.NewArrayLogger(ab.LogStandard)
		sc, err := b.Scope("logged", &ab.ScopeConfig{Logger: logger, User: "alice"})
		must(t, err, "Scope")
		write(t, sc, "a.txt", "x")
		read(t, sc, "a.txt")
		_, _ = sc.Read(ctx(t), "missing")
		nested, err := sc.Scope("n", nil)
		must(t, err, "nested Scope")
		must(t, nested.Mkdir(ctx(t), "d"), "nested Mkdir")
		entries := logger.Entries()
		if len(entries) != 2 {
			t.Fatalf("standard mode logged %d entries, want 2 (write, mkdir): %+v", len(entries), entries)
		}
		w, m := entries[0], entries[1]
		if w.Operation != ab.OpWrite || w.Path != "a.txt" || !w.Success || w.User != "alice" || w.Workspace != sc.RootDir() || w.Time.IsZero() {
			t.Errorf("write entry = %+v", w)
		}
		if m.Operation != ab.OpMkdir || m.Workspace != nested.RootDir() || m.User != "alice" {
			t.Errorf("nested mkdir entry = %+v (logger and user are inherited)", m)
		}
		verbose := ab.NewArrayLogger(ab.LogVerbose)
		sv, err := b.Scope("logged", &ab.ScopeConfig{Logger: verbose})
		must(t, err, "Scope")
		_, err = sv.Read(ctx(t), "missing")
		entries = verbose.Entries()
		if len(entries) != 1 || entries[0].Success || entries[0].Err == nil || !errors.Is(entries[0].Err, err) {
			t.Errorf("verbose failed read entry = %+v", entries)
		}
	})
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

var _ io.Closer = closerFunc(nil)

// joinRoot joins an absolute root and a relative path the way the SDK does.
func joinRoot(root, rel string) string {
	if root == "/" {
		return "/" + rel
	}
	return root + "/" + rel
}
