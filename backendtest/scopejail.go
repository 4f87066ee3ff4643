package backendtest

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/internal/jailtest"
)

// testScopeJail attacks a scope through symbolic links planted in it: the
// scope users/alice must not read, list, change or even see users/bob
// through a link, whatever the operation (see ScopedBackend). The links are
// planted with the parent's Exec (`ln $s -f "$TARGET"`: the
// dangerous-command check is a speed bump, which variables get past, as a
// hostile agent would find), so the section needs
// a backend that runs commands; one without has no way to hold a link.
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
	// subdirectory.
	for link, target := range map[string]string{
		"up":   "..",
		"bob":  "../bob",
		"abs":  b.RootDir() + "/users/bob",
		"c2":   "up/bob",
		"c1":   "c2",
		"d/in": "../up/bob",
	} {
		plant(t, b, "users/alice/"+link, target)
	}
	alice, err := b.Scope("users/alice", nil)
	require.NoError(t, err)
	t.Cleanup(func() { alice.Close() })

	for _, via := range []string{"up/bob", "bob", "abs", "c1", "d/in", "../bob", "d/../../bob"} {
		t.Run(strings.ReplaceAll(via, "/", "_"), func(t *testing.T) {
			jailtest.Attack(t, ctx(t), alice, via, bob)
		})
	}
	// Listing and searching the scope show the links as entries; nothing
	// follows them.
	t.Run("Listings", func(t *testing.T) { jailtest.Listings(t, ctx(t), alice, bob) })
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
		jailtest.Refused(t, err, bob, "Read of the parent scope's file through nest/up")
		jailtest.Attack(t, c, nest, "up/up/bob", bob)
		for _, dir := range []string{"bob", "up", "c1", "abs"} {
			child, err := alice.Scope(dir, nil)
			require.NoError(t, err)
			_, err = child.Read(c, "secret")
			jailtest.Refused(t, err, bob, "Read through a scope whose directory is the link "+dir)
			err = child.Write(c, "secret", []byte("pwned"))
			jailtest.Refused(t, err, bob, "Write through a scope whose directory is the link "+dir)
			_, err = child.ReadDir(c, ".")
			jailtest.Refused(t, err, bob, "ReadDir through a scope whose directory is the link "+dir)
			child.Close()
		}
	})
	t.Run("PathThroughLink", func(t *testing.T) {
		// The same links named in one scope path of the parent (a link an
		// agent of users/alice planted, then scoped by the application):
		// every element of a scope's path is a jail beneath the one before.
		for _, dir := range []string{"bob", "up/bob", "c1", "abs"} {
			s, err := b.Scope("users/alice/"+dir, nil)
			require.NoError(t, err)
			data, err := s.Read(c, "secret")
			jailtest.Refused(t, err, bob, "Read through the scope users/alice/"+dir)
			assert.NotContains(t, string(data), bob.Secret())
			err = s.Write(c, "secret", []byte("pwned"))
			jailtest.Refused(t, err, bob, "Write through the scope users/alice/"+dir)
			names, err := s.ReadDir(c, ".")
			jailtest.Refused(t, err, bob, "ReadDir through the scope users/alice/"+dir)
			assert.Empty(t, names)
			s.Close()
		}
	})
	bob.Untouched(t)
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

// Secret returns the planted contents.
func (f *bobsFile) Secret() string { return f.secret }

// Untouched asserts that the secret is as planted (bytes, modification
// time) and alone in its directory.
func (f *bobsFile) Untouched(t testing.TB) {
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

// plant makes a symbolic link at link (relative to b's root) to target
// with b's Exec. The flag and the target come in variables, which the
// dangerous-command check does not see.
func plant(t *testing.T, b ab.FileBackend, link, target string) {
	t.Helper()
	_, err := b.Exec(ctx(t), `s=-s; ln $s -f "$AGENTBE_LINK_TARGET" `+shq(link), &ab.ExecOptions{Env: map[string]string{"AGENTBE_LINK_TARGET": target}})
	require.NoError(t, err, "planting %s -> %s", link, target)
}

// shq quotes s for a POSIX shell.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
