//go:build linux

package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/daemon"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// errnos are the causes a file operation's error can carry.
var errnos = []syscall.Errno{syscall.ENOSPC, syscall.EACCES, syscall.EPERM, syscall.ENOENT, syscall.EEXIST,
	syscall.ENOTDIR, syscall.EISDIR, syscall.ENOTEMPTY, syscall.ELOOP, syscall.EROFS}

// errnoOf returns the errno err carries, or 0.
func errnoOf(err error) syscall.Errno {
	for _, e := range errnos {
		if errors.Is(err, e) {
			return e
		}
	}
	return 0
}

// sameFailure checks that a Remote operation failed as the same operation
// on a LocalBackend of the same directory: the same code, errno, message
// (the path as the caller named it), and nothing of the daemon host's
// paths.
func sameFailure(t *testing.T, what string, local, remote error, hostRoot string) {
	t.Helper()
	require.Error(t, local, "%s on Local", what)
	require.Error(t, remote, "%s on Remote", what)
	assert.Equal(t, ab.ErrorCode(local), ab.ErrorCode(remote), "%s: codes (Local %v, Remote %v)", what, local, remote)
	want := errnoOf(local)
	assert.NotZero(t, want, "%s: Local's error carries no errno: %v", what, local)
	assert.True(t, errors.Is(remote, want), "%s: Remote %v, want errors.Is %v (as Local: %v)", what, remote, want, local)
	for _, target := range []error{fs.ErrNotExist, fs.ErrExist, fs.ErrPermission} {
		assert.Equal(t, errors.Is(local, target), errors.Is(remote, target), "%s: errors.Is(%v)", what, target)
	}
	assert.Equal(t, local.Error(), remote.Error(), "%s: messages", what)
	assert.NotContains(t, remote.Error(), hostRoot, "%s: the message shows the daemon's path", what)
}

// TestRemoteErrorsMatchLocal: every failing file operation of a
// RemoteBackend carries the code, errno and message the same operation on
// a LocalBackend does.
func TestRemoteErrorsMatchLocal(t *testing.T) {
	d, port := startDaemon(t, daemon.Config{Isolation: ab.IsolationNone})
	rb := remoteFor(t, d, port, ab.RemoteConfig{})
	lb := d.Backend()
	ctx := context.Background()
	require.NoError(t, lb.Write(ctx, "file", []byte("x")))
	require.NoError(t, lb.Mkdir(ctx, "dir"))
	require.NoError(t, lb.Write(ctx, "full/x", []byte("x")))
	require.NoError(t, os.Symlink("loop", filepath.Join(lb.RootDir(), "loop")))

	for _, c := range []struct {
		what string
		op   func(ab.FileBackend) error
	}{
		{"Read missing", func(b ab.FileBackend) error { _, err := b.Read(ctx, "missing"); return err }},
		{"Read under a file", func(b ab.FileBackend) error { _, err := b.Read(ctx, "file/x"); return err }},
		{"Read a directory", func(b ab.FileBackend) error { _, err := b.Read(ctx, "dir"); return err }},
		{"Read a link loop", func(b ab.FileBackend) error { _, err := b.Read(ctx, "loop"); return err }},
		{"Write over a directory", func(b ab.FileBackend) error { return b.Write(ctx, "dir", []byte("x")) }},
		{"Write under a file", func(b ab.FileBackend) error { return b.Write(ctx, "file/x", []byte("x")) }},
		{"Stat missing", func(b ab.FileBackend) error { _, err := b.Stat(ctx, "missing/x"); return err }},
		{"ReadDir a file", func(b ab.FileBackend) error { _, err := b.ReadDir(ctx, "file"); return err }},
		{"ReadDir missing", func(b ab.FileBackend) error { _, err := b.ReadDir(ctx, "missing"); return err }},
		{"Mkdir over a file", func(b ab.FileBackend) error { return b.Mkdir(ctx, "file") }},
		{"Mkdir under a file", func(b ab.FileBackend) error { return b.Mkdir(ctx, "file/sub") }},
		{"Rename missing", func(b ab.FileBackend) error { return b.Rename(ctx, "missing", "y") }},
		{"Rename onto a directory", func(b ab.FileBackend) error { return b.Rename(ctx, "dir", "full") }},
		{"Rename a directory onto a file", func(b ab.FileBackend) error { return b.Rename(ctx, "dir", "file") }},
		{"Remove missing", func(b ab.FileBackend) error { return b.Remove(ctx, "missing", ab.RemoveOptions{}) }},
		{"Remove a directory", func(b ab.FileBackend) error { return b.Remove(ctx, "full", ab.RemoveOptions{}) }},
		{"Touch under a file", func(b ab.FileBackend) error { return b.Touch(ctx, "file/x") }},
	} {
		sameFailure(t, c.what, c.op(lb), c.op(rb), d.Backend().RootDir())
	}
}

// TestRemoteDiskFull: on a full disk a Remote Write fails with
// errors.Is(err, syscall.ENOSPC), as on Local, naming the path as the
// caller did, and leaves the old file and nothing else, whether the data
// goes over the SFTP session (under 1 MiB) or the bulk one.
func TestRemoteDiskFull(t *testing.T) {
	root := testenv.MountTmpfs(t, 1<<20)
	d, port := startDaemon(t, daemon.Config{RootDir: root, Isolation: ab.IsolationNone})
	rb := remoteFor(t, d, port, ab.RemoteConfig{})
	lb := d.Backend()
	ctx := context.Background()
	require.NoError(t, rb.Write(ctx, "keep.txt", []byte("old")))

	big := bytes.Repeat([]byte("x"), 2<<20)
	sameFailure(t, "Write 2 MiB", lb.Write(ctx, "keep.txt", big), rb.Write(ctx, "keep.txt", big), root)
	sameFailure(t, "Write 2 MiB new", lb.Write(ctx, "new.bin", big), rb.Write(ctx, "new.bin", big), root)

	// Fill the disk, then small writes fail too.
	filler := filepath.Join(root, "filler")
	f, err := os.Create(filler)
	require.NoError(t, err)
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			require.True(t, errors.Is(err, syscall.ENOSPC), "%v", err)
			break
		}
	}
	f.Close()
	small := bytes.Repeat([]byte("y"), 64<<10)
	sameFailure(t, "Write 64 KiB", lb.Write(ctx, "keep.txt", small), rb.Write(ctx, "keep.txt", small), root)
	err = rb.Write(ctx, "sub/new.txt", small)
	assert.True(t, errors.Is(err, syscall.ENOSPC), "%v", err)
	assert.Contains(t, err.Error(), "sub/new.txt")

	got, err := rb.Read(ctx, "keep.txt")
	require.NoError(t, err)
	assert.Equal(t, "old", string(got))
	names := strings.Join(hostTree(t, root), " ")
	assert.Equal(t, "filler keep.txt", strings.TrimSpace(strings.Replace(names, "sub", "", 1)), "debris")
	require.NoError(t, os.Remove(filler))
	require.NoError(t, rb.Write(ctx, "keep.txt", small), "with room again")
}

// TestRemotePermissionDenied: a daemon run as nobody refuses what nobody
// may not do, and the client sees EACCES (fs.ErrPermission), as a
// LocalBackend run as nobody would.
func TestRemotePermissionDenied(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run the daemon as another user")
	}
	setpriv := testenv.NeedCommand(t, "setpriv", "setpriv")
	root := t.TempDir()
	cli := testenv.BuildCLI(t)
	for _, dir := range []string{filepath.Dir(root), filepath.Dir(cli)} {
		require.NoError(t, os.Chmod(dir, 0o755)) // for nobody to reach
	}
	require.NoError(t, os.Chmod(root, 0o777))
	require.NoError(t, os.WriteFile(filepath.Join(root, "secret"), []byte("s"), 0o600))
	require.NoError(t, os.Mkdir(filepath.Join(root, "locked"), 0o755))
	p := startCLIDaemonAt(t, root, freePort(t), []string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"})
	rb := p.remote(t, ab.RemoteConfig{})
	ctx := context.Background()
	_, err := rb.Read(ctx, "secret")
	assert.Equal(t, ab.CodeReadFailed, ab.ErrorCode(err), "%v", err)
	assert.ErrorIs(t, err, syscall.EACCES)
	assert.ErrorIs(t, err, fs.ErrPermission)
	assert.Equal(t, "READ_FAILED: read secret: permission denied", err.Error())
	err = rb.Write(ctx, "locked/x", []byte("x"))
	assert.Equal(t, ab.CodeWriteFailed, ab.ErrorCode(err), "%v", err)
	assert.ErrorIs(t, err, syscall.EACCES)
	assert.NotContains(t, err.Error(), root)
}
