package pathjail

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOpenBeneathEscape: each element of the path is a jail beneath the
// one before, so a link planted in users/alice that climbs out of it
// leads nowhere, even though its target is inside the root.
func TestOpenBeneathEscape(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"users/alice/real", "users/bob"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "users/alice/file"), nil, 0o644))
	for link, target := range map[string]string{"bob": "../bob", "up": "..", "abs": filepath.Join(dir, "users/bob"), "side": "real"} {
		require.NoError(t, os.Symlink(target, filepath.Join(dir, "users/alice", link)))
	}
	r, err := os.OpenRoot(dir)
	require.NoError(t, err)
	defer r.Close()
	LearnRootEscape(r)
	for _, p := range []string{"users/alice/bob", "users/alice/up/bob", "users/alice/abs", "users/alice/up"} {
		sub, err := OpenBeneath(r, p, true)
		if assert.Error(t, err, "%s opened", p) {
			assert.True(t, IsRootEscape(err) || os.IsNotExist(err), "%s: %v", p, err)
		} else {
			sub.Close()
		}
	}
	_, err = OpenBeneath(r, "users/alice/file", false)
	assert.ErrorIs(t, err, syscall.ENOTDIR)
	// A link within its own directory is followed; missing elements are
	// made only with create.
	sub, err := OpenBeneath(r, "users/alice/side", false)
	require.NoError(t, err)
	sub.Close()
	_, err = OpenBeneath(r, "users/carol/new", false)
	assert.True(t, os.IsNotExist(err), "%v", err)
	sub, err = OpenBeneath(r, "users/carol/new", true)
	require.NoError(t, err)
	sub.Close()
	assert.DirExists(t, filepath.Join(dir, "users/carol/new"))
	assert.NoDirExists(t, filepath.Join(dir, "users/bob/new"))
}
