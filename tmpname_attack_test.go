//go:build linux

package agentbackend

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentbackend/agentbackend/internal/tmpfile"
)

// A denied file in a directory the scope's command sees: while the command
// runs, the host replaces the file again and again (Write: a temporary
// name for an instant, then a rename over the file). The command, reading
// the file and every temporary name it can find, gets none of the new
// contents.
//
// KNOWN HOLE, skipped: a mask is a bind mount on the file's dentry, and
// since Linux 3.18 a rename over (or unlink of) a mount point from another
// mount namespace detaches the mounts on it in every namespace: after the
// host's first rewrite the command reads the denied file's new contents
// at its own name (and, for an instant per write, at the temporary name).
// Any writer on the host does this (an editor, git), not only Write.
func TestSandboxAttackDeniedFileRewritten(t *testing.T) {
	t.Skip("known hole: a host rename over a masked file detaches the mask in a running command (see the comment)")
	b := attackLocal(t, IsolationBwrap, LocalConfig{AllowDangerous: true})
	attackWorkspace(t, b)
	alice, err := b.Scope("users/alice", &ScopeConfig{Permissions: DefaultPermissions()})
	require.NoError(t, err)
	ctx := context.Background()
	p, err := alice.Start(ctx, `echo started; i=0; while [ $i -lt 1000 ]; do cat .e?v .agentbe-*.tmp 2>/dev/null; i=$((i+1)); done; echo ended`, nil)
	require.NoError(t, err)
	for deadline := time.Now().Add(30 * time.Second); ; {
		out, _, _ := p.Output(0)
		if strings.HasPrefix(string(out), "started") {
			break
		}
		require.True(t, time.Now().Before(deadline), "the command did not start")
		select {
		case <-p.Changed():
		case <-time.After(100 * time.Millisecond):
		}
	}
	for i := 0; ; i++ {
		select {
		case <-p.Done():
		default:
			require.NoError(t, b.Write(ctx, "users/alice/.env", fmt.Appendf(nil, "SECRET=v%d", i)))
			continue
		}
		break
	}
	res, _ := p.Wait(ctx)
	require.NotNil(t, res)
	assert.Contains(t, string(res.Stdout), "ended")
	assert.NotContains(t, string(res.Stdout), "SECRET", "the command read the denied file's new contents")
	data, err := os.ReadFile(filepath.Join(b.RootDir(), "users/alice/.env"))
	require.NoError(t, err)
	assert.Contains(t, string(data), "SECRET=v")
}

// A scope's command plants names of the temporary files' pattern in its
// own directory: a link to another scope's file, a link to a directory
// outside, a hard link to a file of its own, a directory with a file in it,
// a FIFO. Listings hide them, but the clean-ups that remove stale
// temporary files (a listing's, and the daemon's sweep at start) remove
// regular files only, never follow a link, and leave every other file and
// its contents as they were.
func TestSandboxAttackTemporaryNamesPlanted(t *testing.T) {
	b := attackLocal(t, IsolationBwrap, LocalConfig{AllowDangerous: true})
	ctx := context.Background()
	localWrite(t, b, "bob/data.txt", "bob's data")
	localWrite(t, b, "bob/dir/file.txt", "bob's dir")
	localWrite(t, b, "alice/own.txt", "alice's own")
	alice, err := b.Scope("alice", nil)
	require.NoError(t, err)
	hostBob := filepath.Join(b.RootDir(), "bob")
	names := map[string]string{}
	for _, kind := range []string{"link", "dirlink", "hard", "dir", "fifo"} {
		names[kind] = tmpfile.Name()
	}
	res, err := alice.Exec(ctx, fmt.Sprintf(`ln -s %s/data.txt %s && ln -s %s/dir %s && ln own.txt %s &&
		mkdir %s && echo inside > %s/f && mkfifo %s && echo planted`,
		hostBob, names["link"], hostBob, names["dirlink"], names["hard"], names["dir"], names["dir"], names["fifo"]), nil)
	require.NoError(t, err)
	require.Equal(t, "planted\n", string(res.Stdout), string(res.Stderr))

	defer tmpfile.SetStaleAge(0)()
	listed, err := alice.ReadDir(ctx, ".")
	require.NoError(t, err)
	assert.Equal(t, []string{"own.txt"}, listed)
	root, err := os.OpenRoot(b.RootDir())
	require.NoError(t, err)
	defer root.Close()
	_, err = tmpfile.Sweep(ctx, root, time.Now().Add(time.Second))
	require.NoError(t, err)

	hostAlice := filepath.Join(b.RootDir(), "alice")
	localWantFile(t, filepath.Join(hostBob, "data.txt"), "bob's data")
	localWantFile(t, filepath.Join(hostBob, "dir/file.txt"), "bob's dir")
	localWantFile(t, filepath.Join(hostAlice, "own.txt"), "alice's own")
	localWantFile(t, filepath.Join(hostAlice, names["dir"], "f"), "inside\n")
	for _, kind := range []string{"link", "dirlink", "fifo"} {
		_, err := os.Lstat(filepath.Join(hostAlice, names[kind]))
		assert.NoError(t, err, "the %s was removed", kind)
	}
	assert.NoFileExists(t, filepath.Join(hostAlice, names["hard"]), "a stale regular file of the pattern goes (only that name)")
}
