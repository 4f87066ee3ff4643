package backendtest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
)

// testScopeJail attacks a scope through symbolic links planted in it: the
// scope users/alice must not read, list, change or even see users/bob
// through a link, whatever the operation (see ScopedBackend). The links are
// planted with the parent's Exec (`ln --symbolic`, which the
// dangerous-command check lets through), so the section needs a backend
// that runs commands; one without has no way to hold a link.
func (s suite) testScopeJail(t *testing.T) {
	if s.opts.PrefixScopes != "" {
		t.Skip("scopes are prefix arithmetic: " + s.opts.PrefixScopes)
	}
	b := s.fresh(t)
	if !supportsExec(t, b) {
		t.Skip("the backend runs no commands: no link can be planted")
	}
	c := ctx(t)
	bob := plantBob(t, b)
	require.NoError(t, b.Write(c, "users/alice/own.txt", []byte("alice's own\n")))
	require.NoError(t, b.Mkdir(c, "users/alice/d"))
	// Every way of pointing at users/bob from users/alice: up the tree,
	// straight at it, absolute, through a chain of links, from a
	// subdirectory. `..'/bob'` is ../bob to the shell, and not to the
	// software-isolation heuristic that refuses "../".
	for link, target := range map[string]string{
		"up":   "..",
		"bob":  `..'/bob'`,
		"abs":  shq(b.RootDir() + "/users/bob"),
		"c2":   "up/bob",
		"c1":   "c2",
		"d/in": `..'/up/bob'`,
	} {
		plant(t, b, "users/alice/"+link, target)
	}
	alice, err := b.Scope("users/alice", nil)
	require.NoError(t, err)
	t.Cleanup(func() { alice.Close() })

	for _, via := range []string{"up/bob", "bob", "abs", "c1", "d/in", "../bob", "d/../../bob"} {
		t.Run(strings.ReplaceAll(via, "/", "_"), func(t *testing.T) {
			attackThrough(t, alice, via, bob)
		})
	}
	t.Run("Listings", func(t *testing.T) {
		// Listing the scope shows the links as entries; nothing follows them.
		names, err := ab.Glob(c, alice, "**", ".")
		require.NoError(t, err)
		for _, n := range names {
			assert.NotContains(t, n, "secret", "Glob listed a file of the sibling")
		}
		res, err := ab.Grep(c, alice, ab.GrepOptions{Pattern: bob.secret, Mode: ab.GrepContent})
		require.NoError(t, err)
		assert.Empty(t, res.Lines, "Grep of the scope found the sibling's secret")
		entries, err := ab.LsInfo(c, alice, ".")
		require.NoError(t, err)
		for _, e := range entries {
			assert.NotEqual(t, "secret", e.Path)
		}
	})
	t.Run("Nested", func(t *testing.T) {
		// Each level of nested scopes is a jail beneath its parent: a link
		// to the parent leads out of the child, and a child scope whose
		// directory is a link out of its parent is refused.
		require.NoError(t, alice.Mkdir(c, "nest"))
		plant(t, b, "users/alice/nest/up", "..")
		nest, err := alice.Scope("nest", nil)
		require.NoError(t, err)
		defer nest.Close()
		_, err = nest.Read(c, "up/own.txt")
		wantRefused(t, err, bob, "Read of the parent scope's file through nest/up")
		attackThrough(t, nest, "up/up/bob", bob)
		for _, dir := range []string{"bob", "up", "c1", "abs"} {
			child, err := alice.Scope(dir, nil)
			require.NoError(t, err)
			_, err = child.Read(c, "secret")
			wantRefused(t, err, bob, "Read through a scope whose directory is the link "+dir)
			err = child.Write(c, "secret", []byte("pwned"))
			wantRefused(t, err, bob, "Write through a scope whose directory is the link "+dir)
			_, err = child.ReadDir(c, ".")
			wantRefused(t, err, bob, "ReadDir through a scope whose directory is the link "+dir)
			child.Close()
		}
	})
	bob.check(t)
}

// bobsFile is the sibling's secret the attacks aim at, as planted.
type bobsFile struct {
	b      ab.FileBackend
	secret string
	info   ab.FileInfo
}

// plantBob writes users/bob/secret with fresh random contents.
func plantBob(t *testing.T, b ab.FileBackend) *bobsFile {
	t.Helper()
	raw := make([]byte, 8)
	_, _ = rand.Read(raw)
	secret := "bob-secret-" + hex.EncodeToString(raw)
	c := ctx(t)
	require.NoError(t, b.Write(c, "users/bob/secret", []byte(secret)))
	fi, err := b.Stat(c, "users/bob/secret")
	require.NoError(t, err)
	return &bobsFile{b: b, secret: secret, info: fi}
}

// check asserts that the secret is as planted (bytes, size, modification
// time) and alone in its directory.
func (f *bobsFile) check(t *testing.T) {
	t.Helper()
	c := ctx(t)
	data, err := f.b.Read(c, "users/bob/secret")
	require.NoError(t, err)
	assert.Equal(t, f.secret, string(data), "the sibling's secret was changed")
	fi, err := f.b.Stat(c, "users/bob/secret")
	require.NoError(t, err)
	assert.True(t, fi.ModTime.Equal(f.info.ModTime), "the sibling's secret was touched: mtime %v, was %v", fi.ModTime, f.info.ModTime)
	names, err := f.b.ReadDir(c, "users/bob")
	require.NoError(t, err)
	assert.Equal(t, []string{"secret"}, names, "something was created beside the sibling's secret")
}

// plant makes a symbolic link at link (relative to b's root) to target, a
// shell word, with b's Exec.
func plant(t *testing.T, b ab.FileBackend, link, target string) {
	t.Helper()
	_, err := b.Exec(ctx(t), "ln --symbolic "+target+" "+shq(link), nil)
	require.NoError(t, err, "planting %s -> %s", link, target)
}

// shq quotes s for a POSIX shell.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// wantRefused asserts a refusal of the spec: an *Error with
// PATH_ESCAPE_ATTEMPT or PERMISSION_DENIED that does not carry the secret.
func wantRefused(t *testing.T, err error, bob *bobsFile, what string) {
	t.Helper()
	var e *ab.Error
	if !assert.True(t, errors.As(err, &e), "%s: got %v, want PATH_ESCAPE_ATTEMPT", what, err) {
		return
	}
	assert.Contains(t, []ab.Code{ab.CodePathEscape, ab.CodePermissionDenied}, e.Code, "%s: %v", what, err)
	assert.NotContains(t, err.Error(), bob.secret, "%s: the error carries the secret", what)
}

// attackThrough runs every path-taking operation of sc on paths through
// via, which leads to users/bob, and checks that each is refused and that
// the secret stayed unread and unwritten.
func attackThrough(t *testing.T, sc *ab.ScopedBackend, via string, bob *bobsFile) {
	c := ctx(t)
	file := via + "/secret"
	refused := func(what string, err error) { t.Helper(); wantRefused(t, err, bob, what+" "+file) }
	leaks := func(what string, v any) {
		t.Helper()
		assert.NotContains(t, fmt.Sprint(v), bob.secret, "%s leaked the secret", what)
	}

	data, err := sc.Read(c, file)
	refused("Read", err)
	leaks("Read", string(data))
	refused("Write", sc.Write(c, file, []byte("pwned")))
	names, err := sc.ReadDir(c, via)
	refused("ReadDir", err)
	assert.Empty(t, names)
	entries, err := ab.LsInfo(c, sc, via)
	refused("LsInfo", err)
	assert.Empty(t, entries)
	_, err = sc.Stat(c, file)
	refused("Stat", err)
	ok, err := sc.Exists(c, file)
	refused("Exists", err)
	assert.False(t, ok)
	refused("Mkdir", sc.Mkdir(c, via+"/planted"))
	refused("Touch", sc.Touch(c, via+"/planted.txt"))
	refused("Remove", sc.Remove(c, file, ab.RemoveOptions{}))
	refused("Remove -rf", sc.Remove(c, file, ab.RemoveOptions{Recursive: true, Force: true}))
	refused("Rename from", sc.Rename(c, file, "stolen.txt"))
	refused("Rename to", sc.Rename(c, "own.txt", file))
	_, err = sc.RealPath(c, file)
	refused("RealPath", err)
	text, err := ab.ReadLines(c, sc, file, ab.ReadOptions{})
	refused("ReadLines", err)
	leaks("ReadLines", text)
	_, err = ab.Edit(c, sc, file, bob.secret, "pwned", false)
	refused("Edit", err)
	globbed, err := ab.Glob(c, sc, "*", via)
	refused("Glob dir", err)
	assert.Empty(t, globbed)
	globbed, _ = ab.Glob(c, sc, via+"/*", ".")
	leaks("Glob pattern", globbed)
	for _, n := range globbed {
		assert.NotContains(t, n, "secret", "Glob with the pattern %s/* listed the sibling's file", via)
	}
	res, err := ab.Grep(c, sc, ab.GrepOptions{Pattern: "secret", Path: via, Mode: ab.GrepContent})
	refused("Grep", err)
	leaks("Grep", res)
	res, err = ab.Grep(c, sc, ab.GrepOptions{Pattern: "secret", Path: file, Mode: ab.GrepContent})
	refused("Grep file", err)
	leaks("Grep file", res)
	bob.check(t)
}
