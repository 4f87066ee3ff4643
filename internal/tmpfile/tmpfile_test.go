package tmpfile_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/agentbackend/agentbackend/internal/tmpfile"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNames(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		n := tmpfile.Name()
		require.True(t, tmpfile.Is(n), n)
		require.False(t, seen[n], "drew %s twice", n)
		seen[n] = true
	}
	for _, n := range []string{
		"", ".agentbe-.tmp", ".agentbe-0123456789abcdef.tm", "agentbe-0123456789abcdef.tmp",
		".agentbe-0123456789ABCDEF.tmp", ".agentbe-0123456789abcdeg.tmp", ".agentbe-0123456789abcdef0.tmp",
		".notes.txt.tmp-abc12", "x.agentbe-0123456789abcdef.tmp",
	} {
		assert.False(t, tmpfile.Is(n), "%q", n)
	}
	names := []string{"a", tmpfile.Name(), "b", tmpfile.Name()}
	var hidden []string
	assert.Equal(t, []string{"a", "b"}, tmpfile.Hide(names, func(n string) { hidden = append(hidden, n) }))
	assert.Len(t, hidden, 2)
}

// TestSweep: stale temporary files go, fresh ones and the workspace's own
// files stay, and a link (to a directory outside, with a stale temporary
// file of its own) is not followed.
func TestSweep(t *testing.T) {
	ws, outside := t.TempDir(), t.TempDir()
	stale := filepath.Join(ws, "a", "b", tmpfile.Name())
	require.NoError(t, os.MkdirAll(filepath.Dir(stale), 0o755))
	keep := []string{filepath.Join(ws, "a", "notes.txt"), filepath.Join(ws, ".agentbe-x.tmp")}
	for _, p := range append([]string{stale}, keep...) {
		require.NoError(t, os.WriteFile(p, []byte("x"), 0o644))
	}
	outsideTemp := filepath.Join(outside, tmpfile.Name())
	require.NoError(t, os.WriteFile(outsideTemp, []byte("x"), 0o644))
	require.NoError(t, os.Symlink(outside, filepath.Join(ws, "a", "out")))
	root, err := os.OpenRoot(ws)
	require.NoError(t, err)
	defer root.Close()

	n, err := tmpfile.Sweep(context.Background(), root, time.Now().Add(-time.Minute))
	require.NoError(t, err)
	assert.Zero(t, n, "files changed after the cutoff stay")
	assert.FileExists(t, stale)
	assert.False(t, tmpfile.RemoveStale(root, "a/b/"+filepath.Base(stale)), "fresh")

	n, err = tmpfile.Sweep(context.Background(), root, time.Now().Add(time.Second))
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.NoFileExists(t, stale)
	for _, p := range keep {
		assert.FileExists(t, p)
	}
	assert.FileExists(t, outsideTemp, "the sweep followed a link out")
}

// TestPublish: an unnamed file is nowhere until published; publishing
// creates a new name or replaces an existing file atomically, leaving no
// other name.
func TestPublish(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("O_TMPFILE is Linux's")
	}
	dir := t.TempDir()
	d, err := os.Open(dir)
	require.NoError(t, err)
	defer d.Close()
	dirfd := int(d.Fd())
	unnamed := func(data string) *os.File {
		fd, err := tmpfile.OpenUnnamed(dirfd, 0o640, false)
		require.NoError(t, err)
		f := os.NewFile(uintptr(fd), "unnamed")
		_, err = f.Write([]byte(data))
		require.NoError(t, err)
		return f
	}
	write := func(data string) int {
		f := unnamed(data)
		t.Cleanup(func() { f.Close() })
		return int(f.Fd())
	}
	names := func() []string {
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}

	require.NoError(t, unnamed("never published").Close())
	assert.Empty(t, names())

	require.NoError(t, tmpfile.Publish(write("one"), dirfd, "f.txt", false))
	got, err := os.ReadFile(filepath.Join(dir, "f.txt"))
	require.NoError(t, err)
	assert.Equal(t, "one", string(got))

	// Not told it exists: the link fails, and the rename replaces it.
	require.NoError(t, tmpfile.Publish(write("two"), dirfd, "f.txt", false))
	require.NoError(t, tmpfile.Publish(write("three"), dirfd, "f.txt", true))
	got, err = os.ReadFile(filepath.Join(dir, "f.txt"))
	require.NoError(t, err)
	assert.Equal(t, "three", string(got))
	assert.Equal(t, []string{"f.txt"}, names())

	// A rename that fails (over a non-empty directory) leaves no name.
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "sub", "x"), 0o755))
	assert.Error(t, tmpfile.Publish(write("four"), dirfd, "sub", true))
	assert.Equal(t, []string{"f.txt", "sub"}, names())
}
