//go:build linux

package agentbackend_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/internal/jailtest"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// Attacks on the scope users/alice of a ab.LocalBackend, aimed at
// users/bob/secret (jailtest.Workspace), beyond what backendtest's
// ScopeJail section does on every backend: links planted on the host
// while the scope runs, links swapped in during operations, the scope's
// and a child scope's directory moved or replaced, and commands under
// bubblewrap.

// jailFixture is a jailtest.Workspace with a backend on it and Alice's scope.
type jailFixture struct {
	*jailtest.Workspace
	b     *ab.LocalBackend
	alice *ab.ScopedBackend
}

func newJailFixture(t *testing.T, cfg ab.LocalConfig) *jailFixture {
	t.Helper()
	b := newLocal(t, cfg)
	f := &jailFixture{Workspace: jailtest.NewWorkspace(t, b.RootDir()), b: b}
	var err error
	f.alice, err = b.Scope("users/alice", nil)
	require.NoError(t, err)
	t.Cleanup(func() { f.alice.Close() })
	return f
}

// host returns the host path of a workspace path.
func (f *jailFixture) host(rel string) string { return filepath.Join(f.Root, rel) }

// refused asserts a refusal that does not carry the secret.
func (f *jailFixture) refused(t *testing.T, err error, what string) {
	t.Helper()
	jailtest.Refused(t, err, f, what)
}

// failed asserts a failure with an *ab.Error (under a race, a refusal may be
// the kernel's ELOOP or ENOTDIR rather than an escape) that does not carry
// the secret.
func (f *jailFixture) failed(t *testing.T, err error, what string) {
	t.Helper()
	var e *ab.Error
	if assert.True(t, errors.As(err, &e), "%s: %v, want an *ab.Error", what, err) {
		assert.NotContains(t, err.Error(), f.Secret(), what)
	}
}

// noLeaks checks, when the test ends, that it left no goroutine behind.
func noLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// forIsolations runs fn under each isolation.
func forIsolations(t *testing.T, fn func(t *testing.T, iso ab.Isolation)) {
	for _, iso := range []ab.Isolation{ab.IsolationNone, ab.IsolationSoftware, ab.IsolationBwrap} {
		t.Run(string(iso), func(t *testing.T) {
			if iso == ab.IsolationBwrap {
				testenv.NeedBwrap(t)
			}
			noLeaks(t)
			fn(t, iso)
		})
	}
}

// TestScopeJailCommands: under bubblewrap a scope's command sees its scope
// as the whole workspace (no sibling exists in its mount namespace), and
// inherits no descriptor of the host's directories; in every isolation the
// working directory is checked beneath the scope.
func TestScopeJailCommands(t *testing.T) {
	forIsolations(t, func(t *testing.T, iso ab.Isolation) {
		f := newJailFixture(t, ab.LocalConfig{Isolation: iso})
		ctx := context.Background()
		for _, cwd := range []string{"../bob", "up", "up/bob", "bob", "/../bob", "up/alice/../bob"} {
			_, err := f.alice.Exec(ctx, "cat secret", &ab.ExecOptions{Cwd: cwd})
			f.refused(t, err, "Exec with Cwd "+cwd)
			_, err = f.alice.Start(ctx, "cat secret", &ab.ExecOptions{Cwd: cwd})
			f.refused(t, err, "Start with Cwd "+cwd)
		}
		// A link the scope's own command makes, as an agent would, leads
		// nowhere outside the scope for the file operations.
		_, err := f.alice.Exec(ctx, "s=-s; ln $s -f .. selfmade", nil)
		require.NoError(t, err)
		jailtest.Attack(t, ctx, f.alice, "selfmade/bob", f)
		if iso != ab.IsolationBwrap {
			return // on the host a command is not contained: nothing more to attack
		}
		// A variable gets past the dangerous-command check (a speed bump).
		for _, cmd := range []string{
			"cat ../bob/secret", "ls -a ..; ls -a ../..", "cat up/bob/secret", "cat bob/secret",
			"s=-s; ln $s -f .. made && cat made/bob/secret", "cat " + f.host("users/bob/secret"),
			"ls -la /proc/self/fd/ && for d in /proc/self/fd/*; do ls \"$d\"/ 2>/dev/null; ls \"$d\"/../bob 2>/dev/null; done",
			"find / -xdev -name secret 2>/dev/null; true", "cat /proc/self/mountinfo",
		} {
			res, _ := f.alice.Exec(ctx, cmd, nil)
			out := ""
			if res != nil {
				out = string(res.Stdout) + string(res.Stderr)
			}
			assert.NotContains(t, out, f.Secret(), "%q read Bob's secret", cmd)
			for line := range strings.Lines(out) {
				assert.NotContains(t, []string{"bob\n", "alice\n", "users\n", "secret\n"}, line, "%q saw the workspace around the scope", cmd)
			}
		}
		// A background process is contained the same way.
		p, err := f.alice.Start(ctx, "ls -a ..; cat ../bob/secret up/bob/secret", nil)
		require.NoError(t, err)
		res, _ := p.Wait(ctx)
		require.NotNil(t, res)
		out := string(res.Stdout) + string(res.Stderr)
		assert.NotContains(t, out, f.Secret())
		assert.NotContains(t, out, "bob\n", "a background process saw the workspace around the scope")
		// The scope is the sandbox's workspace, read-write.
		res, err = f.alice.Exec(ctx, "pwd; echo mine > mine.txt", nil)
		require.NoError(t, err)
		assert.Equal(t, ab.SandboxWorkspaceDir+"\n", string(res.Stdout))
		data, err := os.ReadFile(f.host("users/alice/mine.txt"))
		require.NoError(t, err)
		assert.Equal(t, "mine\n", string(data))
		f.Untouched(t)
	})
}

// TestScopeJailLinkSwapRace flips a directory of the scope and a link to
// Bob's directory (renameat2 RENAME_EXCHANGE, atomic) in a bounded loop
// while other goroutines read, write, list and stat through it: every
// answer is Alice's data or a refusal, and Bob's secret is never read or
// changed.
func TestScopeJailLinkSwapRace(t *testing.T) {
	noLeaks(t)
	f := newJailFixture(t, ab.LocalConfig{})
	ctx := context.Background()
	require.NoError(t, os.MkdirAll(f.host("users/alice/flip"), 0o755))
	require.NoError(t, os.WriteFile(f.host("users/alice/flip/secret"), []byte("alice"), 0o644))
	require.NoError(t, os.WriteFile(f.host("users/alice/flip/alice-marker"), nil, 0o644))
	require.NoError(t, os.Symlink("../bob", f.host("users/alice/flop")))
	stop := jailtest.Flip(t, f.host("users/alice/flip"), f.host("users/alice/flop"))
	var wg sync.WaitGroup
	var reads, refusals atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for i := range 3000 {
				var err error
				switch (i + w) % 5 {
				case 0:
					var data []byte
					data, err = f.alice.Read(ctx, "flip/secret")
					if err == nil {
						reads.Add(1)
						if !assert.NotEqual(t, f.Secret(), string(data), "read Bob's secret through the flipping link") {
							return
						}
					}
				case 1:
					err = f.alice.Write(ctx, "flip/secret", []byte("alice"))
				case 2:
					var names []string
					names, err = f.alice.ReadDir(ctx, "flip")
					if err == nil {
						assert.Contains(t, names, "alice-marker", "listed Bob's directory through the flipping link")
					}
				case 3:
					_, err = f.alice.Stat(ctx, "flip/secret")
				case 4:
					var res *ab.GrepResult
					res, err = f.alice.Grep(ctx, ab.GrepOptions{Pattern: "secret", Path: "flip", Mode: ab.GrepContent})
					if err == nil {
						assert.NotContains(t, res.Lines, f.Secret())
					}
				}
				if err != nil {
					refusals.Add(1)
					f.failed(t, err, "an operation through the flipping link")
				}
			}
		})
	}
	wg.Wait()
	stop()
	t.Logf("%d reads of Alice's file, %d failures", reads.Load(), refusals.Load())
	f.Untouched(t)
}

// TestScopeJailDirectoryMoves: the scope's directory may be removed,
// renamed or replaced by whoever holds the parent; the scope follows its
// path (its cached handle is checked before each use) and never writes
// into a directory that is no longer its own.
func TestScopeJailDirectoryMoves(t *testing.T) {
	noLeaks(t)
	f := newJailFixture(t, ab.LocalConfig{})
	ctx := context.Background()
	require.NoError(t, f.alice.Write(ctx, "a.txt", []byte("one")))

	// Renamed away: the next write creates the directory anew.
	require.NoError(t, os.Rename(f.host("users/alice"), f.host("users/alice-old")))
	require.NoError(t, f.alice.Write(ctx, "b.txt", []byte("two")))
	assert.FileExists(t, f.host("users/alice/b.txt"))
	assert.NoFileExists(t, f.host("users/alice-old/b.txt"))
	_, err := f.alice.Read(ctx, "a.txt")
	assert.ErrorIs(t, err, os.ErrNotExist)

	// Removed through the scope, then recreated by a write.
	require.NoError(t, f.alice.Remove(ctx, ".", ab.RemoveOptions{Recursive: true}))
	assert.NoDirExists(t, f.host("users/alice"))
	ok, err := f.alice.Exists(ctx, ".")
	require.NoError(t, err)
	assert.False(t, ok)
	require.NoError(t, f.alice.Write(ctx, "c.txt", []byte("three")))
	assert.FileExists(t, f.host("users/alice/c.txt"))

	// Replaced by another directory: the scope uses the new one.
	require.NoError(t, os.Rename(f.host("users/alice"), f.host("users/alice-2")))
	require.NoError(t, os.MkdirAll(f.host("users/alice"), 0o755))
	require.NoError(t, os.WriteFile(f.host("users/alice/d.txt"), []byte("four"), 0o644))
	data, err := f.alice.Read(ctx, "d.txt")
	require.NoError(t, err)
	assert.Equal(t, "four", string(data))

	// A child scope whose directory Alice swaps for a link out of her
	// scope, after the child has cached its handle: refused from then on.
	proj, err := f.alice.Scope("proj", nil)
	require.NoError(t, err)
	defer proj.Close()
	require.NoError(t, proj.Write(ctx, "main.go", []byte("package main")))
	require.NoError(t, os.RemoveAll(f.host("users/alice/proj")))
	require.NoError(t, os.Symlink("../bob", f.host("users/alice/proj")))
	_, err = proj.Read(ctx, "secret")
	f.refused(t, err, "Read through a child scope swapped for a link")
	f.refused(t, proj.Write(ctx, "secret", []byte("pwned")), "Write through a child scope swapped for a link")
	_, err = proj.ReadDir(ctx, ".")
	f.refused(t, err, "ReadDir through a child scope swapped for a link")
	_, err = proj.Grep(ctx, ab.GrepOptions{Pattern: "secret"})
	f.refused(t, err, "Grep through a child scope swapped for a link")
	f.refused(t, proj.Remove(ctx, "secret", ab.RemoveOptions{}), "Remove through a child scope swapped for a link")
	// Removing the child scope's root removes the link, not Bob's files.
	require.NoError(t, proj.Remove(ctx, ".", ab.RemoveOptions{Recursive: true}))
	f.Untouched(t)

	// The same with an absolute link, and with the scope's own directory
	// inside the workspace replaced by a link out of the workspace.
	require.NoError(t, os.Symlink(f.host("users/bob"), f.host("users/alice/proj")))
	_, err = proj.Read(ctx, "secret")
	f.refused(t, err, "Read through a child scope swapped for an absolute link")
	outside := t.TempDir()
	require.NoError(t, os.RemoveAll(f.host("users/alice")))
	require.NoError(t, os.Symlink(outside, f.host("users/alice")))
	f.refused(t, f.alice.Write(ctx, "x.txt", []byte("x")), "Write through a scope whose directory leads out of the workspace")
	entries, err := os.ReadDir(outside)
	require.NoError(t, err)
	assert.Empty(t, entries)
	f.Untouched(t)
}

// TestScopeJailHandles: a scope's view holds the handles of its
// directory only while it is open: they are given back when the scope
// closes, and when the backend closes.
func TestScopeJailHandles(t *testing.T) {
	noLeaks(t)
	b := newLocal(t, ab.LocalConfig{})
	ctx := context.Background()
	for i := range 20 {
		sc, err := b.Scope("tenants/t"+string(rune('a'+i)), nil)
		require.NoError(t, err)
		require.NoError(t, sc.Write(ctx, "f", []byte("x")))
		assert.Equal(t, 2, openBelow(t, b.RootDir()+"/tenants/"), "an open scope's handles")
		require.NoError(t, sc.Close())
		assert.Zero(t, openBelow(t, b.RootDir()+"/tenants/"), "a closed scope left its handles open")
	}
	open := make([]*ab.ScopedBackend, 5)
	for i := range open {
		var err error
		open[i], err = b.Scope("open/o"+string(rune('a'+i)), nil)
		require.NoError(t, err)
		require.NoError(t, open[i].Write(ctx, "f", []byte("x")))
	}
	assert.Equal(t, 10, openBelow(t, b.RootDir()+"/open/"))
	require.NoError(t, b.Close())
	assert.Zero(t, openBelow(t, b.RootDir()), "the backend's Close left handles open")
	_, err := open[0].Read(ctx, "f")
	assert.True(t, errors.Is(err, ab.ErrDestroyed), "%v", err)
}

// openBelow counts this process's descriptors of files whose path starts
// with prefix (a directory's path and "/" counts what is below it).
func openBelow(t *testing.T, prefix string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	n := 0
	for _, e := range entries {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(target, prefix) {
			n++
		}
	}
	return n
}

// TestScopeJailBwrapBindsByDescriptor: the sandbox binds the directory the
// backend opened beneath the workspace, by descriptor, never a path looked
// up again: with the scope's directory swapped, in a loop, with a link to
// a directory outside the workspace, no command ever sees that directory.
func TestScopeJailBwrapBindsByDescriptor(t *testing.T) {
	testenv.NeedBwrap(t)
	noLeaks(t)
	f := newJailFixture(t, ab.LocalConfig{Isolation: ab.IsolationBwrap})
	ctx := context.Background()
	outside := t.TempDir()
	outsideSecret := "outside-secret-" + f.Secret()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "secret"), []byte(outsideSecret), 0o644))
	require.NoError(t, f.alice.Write(ctx, "own.txt", []byte("alice's")))
	require.NoError(t, os.Symlink(outside, f.host("users/swap")))
	stop := jailtest.Flip(t, f.host("users/alice"), f.host("users/swap"))
	ran := 0
	for range 40 {
		res, err := f.alice.Exec(ctx, "cat *", nil)
		if res != nil {
			ran++
			assert.NotContains(t, string(res.Stdout)+string(res.Stderr), outsideSecret, "a command saw the directory outside the workspace")
		} else {
			f.failed(t, err, "Exec while the scope's directory leads out of the workspace")
		}
	}
	stop()
	t.Logf("%d commands ran", ran)
	f.Untouched(t)
}

// TestScopeJailComposite: a scope of a composite above a mount point is a
// composite of the jailed view of the default backend and the route below
// it: links in the scope are refused, the route still works.
func TestScopeJailComposite(t *testing.T) {
	noLeaks(t)
	local := newLocal(t, ab.LocalConfig{})
	w := jailtest.NewWorkspace(t, local.RootDir())
	mem := newMemory(t)
	c, err := ab.NewComposite(local, map[string]ab.FileBackend{"users/alice/mem": mem, "users/carol": newMemory(t)})
	require.NoError(t, err)
	ctx := context.Background()
	for _, dir := range []string{"users/alice", "users"} {
		sc, err := c.Scope(dir, nil)
		require.NoError(t, err)
		defer sc.Close()
		alice := sc
		if dir == "users" {
			alice, err = sc.Scope("alice", nil) // nested: jailed beneath the composite view
			require.NoError(t, err)
			defer alice.Close()
		}
		for _, via := range jailtest.Vias {
			t.Run(dir+"/"+strings.ReplaceAll(via, "/", "_"), func(t *testing.T) { jailtest.Attack(t, ctx, alice, via, w) })
		}
		require.NoError(t, alice.Write(ctx, "mem/note.txt", []byte("in memory")))
		data, err := mem.Read(ctx, "note.txt")
		require.NoError(t, err)
		assert.Equal(t, "in memory", string(data))
		names, err := alice.ReadDir(ctx, ".")
		require.NoError(t, err)
		assert.Contains(t, names, "mem")
	}
	w.Untouched(t)
}

// TestScopeJailLinkInScopePath: the application scopes a path through a
// link that an agent of an enclosing scope planted (users/alice/bob ->
// ../bob): every element of a scope's path is a jail beneath the one
// before, so the scope does not land in users/bob, whatever isolation.
func TestScopeJailLinkInScopePath(t *testing.T) {
	forIsolations(t, func(t *testing.T, iso ab.Isolation) {
		f := newJailFixture(t, ab.LocalConfig{Isolation: iso})
		ctx := context.Background()
		for _, p := range []string{"users/alice/bob", "users/alice/up/bob", "users/alice/c1", "users/alice/abs"} {
			s, err := f.b.Scope(p, nil)
			if err != nil {
				f.refused(t, err, "Scope "+p)
				continue
			}
			data, err := s.Read(ctx, "secret")
			f.failed(t, err, "Read through scope "+p)
			assert.NotContains(t, string(data), f.Secret())
			names, err := s.ReadDir(ctx, ".")
			f.failed(t, err, "ReadDir through scope "+p)
			assert.Empty(t, names)
			_, err = s.Exec(ctx, "cat secret", nil)
			f.failed(t, err, "Exec through scope "+p)
			f.failed(t, s.Write(ctx, "planted", []byte("x")), "Write through scope "+p)
			nested, err := f.alice.Scope(strings.TrimPrefix(p, "users/alice/"), nil)
			if err == nil {
				data, err = nested.Read(ctx, "secret")
				f.failed(t, err, "Read through nested scope "+p)
				assert.NotContains(t, string(data), f.Secret())
				nested.Close()
			}
			s.Close()
		}
		f.Untouched(t)
	})
}
