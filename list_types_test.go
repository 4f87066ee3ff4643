package agentbackend_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/internal/tmpfile"
)

// TestLsWithoutInfo: listing by type names the same entries as with info,
// with the same kinds (a link is a link), on Local, a scope whose permissions hide
// an entry, a composite with a mount point and Memory (which has no
// cheaper listing); temporary files of writes are not listed.
func TestLsWithoutInfo(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	local, err := ab.NewLocal(ab.LocalConfig{RootDir: dir, Isolation: ab.IsolationNone})
	require.NoError(t, err)
	defer local.Close()
	for _, f := range []string{"d/a.txt", "d/.env", "d/sub/x"} {
		require.NoError(t, local.Write(ctx, f, []byte("x")))
	}
	require.NoError(t, os.Symlink("sub", filepath.Join(dir, "d", "tosub")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "d", tmpfile.Name()), nil, 0o644))
	scope, err := local.Scope(".", &ab.ScopeConfig{Permissions: ab.DefaultPermissions()})
	require.NoError(t, err)
	defer scope.Close()
	mem, err := ab.NewMemory(ab.MemoryConfig{})
	require.NoError(t, err)
	require.NoError(t, mem.Write(ctx, "d/m.txt", []byte("m")))
	comp, err := ab.NewComposite(local, map[string]ab.FileBackend{"/d/mnt/": mem})
	require.NoError(t, err)

	kinds := func(entries []ab.LsEntry) map[string]string {
		out := map[string]string{}
		for _, e := range entries {
			switch {
			case e.Symlink:
				out[e.Name] = "link"
			case e.IsDir:
				out[e.Name] = "dir"
			default:
				out[e.Name] = "file"
			}
		}
		return out
	}
	for _, c := range []struct {
		name string
		b    ab.FileBackend
		want map[string]string
	}{
		{"local", local, map[string]string{".env": "file", "a.txt": "file", "sub": "dir", "tosub": "link"}},
		{"scope", scope, map[string]string{"a.txt": "file", "sub": "dir", "tosub": "link"}},
		{"composite", comp, map[string]string{".env": "file", "a.txt": "file", "mnt": "dir", "sub": "dir", "tosub": "link"}},
		{"memory", mem, map[string]string{"m.txt": "file"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			types, err := ab.Ls(ctx, c.b, "d", false)
			require.NoError(t, err)
			infos, err := ab.Ls(ctx, c.b, "d", true)
			require.NoError(t, err)
			assert.Equal(t, c.want, kinds(types))
			assert.Equal(t, kinds(infos), kinds(types))
			for _, e := range types {
				assert.Equal(t, "d/"+e.Name, e.Path)
			}
		})
	}
	_, err = ab.Ls(ctx, local, "../x", false)
	assert.ErrorIs(t, err, ab.ErrPathEscape)
	_, err = ab.Ls(ctx, local, "missing", false)
	assert.ErrorIs(t, err, os.ErrNotExist)
}
