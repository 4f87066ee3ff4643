package jailtest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Workspace is a workspace directory on this host laid out for the
// attacks: users/bob/secret (the Target), users/alice/own.txt, and in
// users/alice links that lead to users/bob every way there is.
type Workspace struct {
	Root   string // the workspace directory
	secret string
	info   os.FileInfo
}

// Vias are the paths, relative to users/alice, that lead to users/bob:
// links up the tree, straight at it, absolute, chained, and "..".
var Vias = []string{"up/bob", "bob", "abs", "c1", "../bob", "d/../../bob"}

// NewWorkspace lays out root (created if missing).
func NewWorkspace(t testing.TB, root string) *Workspace {
	t.Helper()
	raw := make([]byte, 8)
	_, _ = rand.Read(raw)
	w := &Workspace{Root: root, secret: "bob-secret-" + hex.EncodeToString(raw)}
	require.NoError(t, os.MkdirAll(w.path("users/bob"), 0o755))
	require.NoError(t, os.MkdirAll(w.path("users/alice/d"), 0o755))
	secret := w.path("users/bob/secret")
	require.NoError(t, os.WriteFile(secret, []byte(w.secret), 0o600))
	old := time.Now().Add(-time.Hour) // an mtime any write would move
	require.NoError(t, os.Chtimes(secret, old, old))
	var err error
	w.info, err = os.Lstat(secret)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(w.path("users/alice/own.txt"), []byte("alice's own\n"), 0o644))
	for link, target := range map[string]string{
		"up": "..", "bob": "../bob", "abs": w.path("users/bob"), "c2": "up/bob", "c1": "c2",
	} {
		require.NoError(t, os.Symlink(target, w.path("users/alice/"+link)))
	}
	return w
}

func (w *Workspace) path(rel string) string { return filepath.Join(w.Root, rel) }

// Secret returns the contents of users/bob/secret.
func (w *Workspace) Secret() string { return w.secret }

// Untouched asserts that users/bob/secret is as planted and alone.
func (w *Workspace) Untouched(t testing.TB) {
	t.Helper()
	data, err := os.ReadFile(w.path("users/bob/secret"))
	require.NoError(t, err)
	assert.Equal(t, w.secret, string(data), "the sibling's secret changed")
	fi, err := os.Lstat(w.path("users/bob/secret"))
	require.NoError(t, err)
	assert.Equal(t, w.info.ModTime(), fi.ModTime(), "the sibling's secret was written")
	entries, err := os.ReadDir(w.path("users/bob"))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "something was created beside the sibling's secret")
}
