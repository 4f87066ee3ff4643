// Package jailtest attacks scopes through symbolic links and "..", aiming
// at a sibling's secret: the one set of attacks that backendtest runs on
// every backend's scopes and that the tests of the root package, agentmcp,
// the daemon and the CLI run on the ways they reach a scope (a FileBackend,
// an MCP session). Each attack asserts that the operation is refused, that
// the secret is in no output and no error, and that it was not changed.
package jailtest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
)

// Target is the sibling's file the attacks aim at.
type Target interface {
	// Secret returns the file's contents, which no attack may reveal.
	Secret() string
	// Untouched asserts that the file is as planted: its bytes, its
	// modification time, and nothing created beside it.
	Untouched(t testing.TB)
}

// Refused asserts a refusal of the specification: an *Error with
// PATH_ESCAPE_ATTEMPT or PERMISSION_DENIED that does not carry the secret.
func Refused(t testing.TB, err error, target Target, what string) {
	t.Helper()
	var e *ab.Error
	if !assert.True(t, errors.As(err, &e), "%s: got %v, want PATH_ESCAPE_ATTEMPT", what, err) {
		return
	}
	assert.Contains(t, []ab.Code{ab.CodePathEscape, ab.CodePermissionDenied}, e.Code, "%s: %v", what, err)
	assert.NotContains(t, err.Error(), target.Secret(), "%s: the error carries the secret", what)
}

// Attack runs every path-taking operation of b (a scope, or a backend
// jailed at the scope's directory) on paths through via, which leads to
// the directory of target (named "secret" there) through a link or "..":
// every one must be refused.
func Attack(t *testing.T, ctx context.Context, b ab.FileBackend, via string, target Target) {
	t.Helper()
	c := ctx
	file := via + "/secret"
	refused := func(what string, err error) { t.Helper(); Refused(t, err, target, what+" "+file) }
	leaks := func(what string, v any) {
		t.Helper()
		assert.NotContains(t, fmt.Sprint(v), target.Secret(), "%s leaked the secret", what)
	}

	data, err := b.Read(c, file)
	refused("Read", err)
	leaks("Read", string(data))
	refused("Write", b.Write(c, file, []byte("pwned")))
	names, err := b.ReadDir(c, via)
	refused("ReadDir", err)
	assert.Empty(t, names)
	entries, err := ab.Ls(c, b, via, true)
	refused("Ls", err)
	assert.Empty(t, entries)
	_, err = b.Stat(c, file)
	refused("Stat", err)
	ok, err := b.Exists(c, file)
	refused("Exists", err)
	assert.False(t, ok)
	refused("Mkdir", b.Mkdir(c, via+"/planted"))
	refused("Touch", b.Touch(c, via+"/planted.txt"))
	refused("Remove", b.Remove(c, file, ab.RemoveOptions{}))
	refused("Remove -rf", b.Remove(c, file, ab.RemoveOptions{Recursive: true, Force: true}))
	refused("Rename from", b.Rename(c, file, "stolen.txt"))
	refused("Rename to", b.Rename(c, "own.txt", file))
	if lr, ok := b.(ab.LinkResolver); ok {
		_, err = lr.RealPath(c, file)
		refused("RealPath", err)
	}
	page, err := ab.ReadLines(c, b, file, ab.ReadOptions{})
	refused("ReadLines", err)
	leaks("ReadLines", page)
	fsys := ab.FS(c, b)
	data, err = fs.ReadFile(fsys, file)
	assert.Error(t, err, "fs.ReadFile through FS")
	leaks("fs.ReadFile", string(data))
	_, err = ab.Edit(c, b, file, ab.EditOp{Old: target.Secret(), New: "pwned"})
	refused("Edit", err)
	globbed, err := ab.Glob(c, b, "*", via)
	refused("Glob dir", err)
	assert.Empty(t, globbed)
	globbed, _ = ab.Glob(c, b, via+"/*", ".")
	for _, n := range globbed {
		assert.NotContains(t, n, "secret", "Glob with the pattern %s/* listed the sibling's file", via)
	}
	res, err := ab.Grep(c, b, ab.GrepOptions{Pattern: "secret", Path: via, Mode: ab.GrepContent})
	refused("Grep", err)
	leaks("Grep", res)
	res, err = ab.Grep(c, b, ab.GrepOptions{Pattern: "secret", Path: file, Mode: ab.GrepContent})
	refused("Grep file", err)
	leaks("Grep file", res)
	target.Untouched(t)
}

// Listings asserts that listing and searching the whole of b shows links
// as entries without following them: nothing of target appears.
func Listings(t *testing.T, ctx context.Context, b ab.FileBackend, target Target) {
	t.Helper()
	names, err := ab.Glob(ctx, b, "**", ".")
	require.NoError(t, err)
	for _, n := range names {
		assert.False(t, strings.HasSuffix(n, "/secret"), "Glob listed the sibling's file as %s", n)
	}
	res, err := ab.Grep(ctx, b, ab.GrepOptions{Pattern: target.Secret(), Mode: ab.GrepContent})
	require.NoError(t, err)
	assert.Empty(t, res.Lines, "Grep of the scope found the sibling's secret")
	target.Untouched(t)
}
