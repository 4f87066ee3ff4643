//go:build linux

package agentbackend

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentbackend/agentbackend/internal/tmpfile"
)

// The writer a test kills: this test binary run again with
// AGENTBE_KILLED_WRITER naming a workspace. It writes 8 MiB files over
// and over from four goroutines, each file all one byte (its version), says
// "ready" after the first writes and runs until it is killed.
func init() {
	dir := os.Getenv("AGENTBE_KILLED_WRITER")
	if dir == "" {
		return
	}
	b, err := NewLocal(LocalConfig{RootDir: dir, Isolation: IsolationNone})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	ctx := context.Background()
	var ready sync.WaitGroup
	for w := range 4 {
		ready.Add(1)
		go func() {
			for v := 1; ; v++ {
				data := bytes.Repeat([]byte{byte('a' + (w+v)%26)}, 8<<20)
				if err := b.Write(ctx, fmt.Sprintf("w%d/file.bin", w), data); err != nil {
					fmt.Println("error:", err)
					os.Exit(1)
				}
				if v == 1 {
					ready.Done()
				}
			}
		}()
	}
	ready.Wait()
	fmt.Println("ready")
	select {}
}

// TestKilledLocalWriterLeavesNothing kills (SIGKILL) a process in the
// middle of writing large files, several times: every file is whole (one
// version, not a mix), the agent sees no other name, and once listed the
// workspace holds no other name, hidden or not, and no space is held by a
// name nobody sees.
func TestKilledLocalWriterLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	for round := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "AGENTBE_KILLED_WRITER="+dir)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		line, err := bufio.NewReader(out).ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "ready\n", line, "round %d", round)
		time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond) // mid-write, somewhere
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()

		// A kill in the instant between linking the finished file under
		// its hidden name and renaming it over the file leaves that name
		// (Linux cannot link an unnamed file over an existing one): the
		// agent never sees it, and the first listing that meets it once
		// it is stale removes it.
		b, err := NewLocal(LocalConfig{RootDir: dir, Isolation: IsolationNone})
		require.NoError(t, err)
		restore := tmpfile.SetStaleAge(0)
		for w := range 4 {
			before := localHostNames(t, filepath.Join(dir, fmt.Sprintf("w%d", w)))
			names, err := b.ReadDir(context.Background(), fmt.Sprintf("w%d", w))
			require.NoError(t, err)
			assert.Equal(t, []string{"file.bin"}, names, "round %d: the agent sees other names", round)
			if len(before) > 1 {
				t.Logf("round %d: w%d held %v when the writer died; removed when listed", round, w, before)
			}
		}
		restore()
		require.NoError(t, b.Close())

		var found []string
		require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || p == dir {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			found = append(found, rel)
			if !d.IsDir() {
				data, err := os.ReadFile(p)
				require.NoError(t, err)
				assert.Len(t, data, 8<<20, "%s: torn", rel)
				assert.Equal(t, len(data), bytes.Count(data, data[:1]), "%s: mixed contents", rel)
			}
			return nil
		}))
		assert.Equal(t, []string{"w0", "w0/file.bin", "w1", "w1/file.bin", "w2", "w2/file.bin", "w3", "w3/file.bin"},
			found, "round %d: the workspace holds other names", round)
	}
}

// TestTemporaryNamesHidden: a temporary file left by a writer that had
// one with a name (a file system without O_TMPFILE, os.Root's portable
// writes, another process's Write) is shown by no listing or search, and
// ReadDir removes it once stale.
func TestTemporaryNamesHidden(t *testing.T) {
	localNoLeaks(t)
	b := newLocal(t, LocalConfig{})
	ctx := context.Background()
	localWrite(t, b, "d/real.txt", "needle")
	left := tmpfile.Name()
	require.NoError(t, os.WriteFile(filepath.Join(b.RootDir(), "d", left), []byte("needle in the debris"), 0o644))

	names, err := b.ReadDir(ctx, "d")
	require.NoError(t, err)
	assert.Equal(t, []string{"real.txt"}, names)
	infos, err := b.ReadDirInfo(ctx, "d")
	require.NoError(t, err)
	require.Len(t, infos, 1)
	assert.Equal(t, "real.txt", infos[0].Name)
	matches, err := Glob(ctx, b, "**/*", ".")
	require.NoError(t, err)
	assert.Equal(t, []string{"d", "d/real.txt"}, matches)
	hits, err := Grep(ctx, b, GrepOptions{Pattern: "needle", Mode: GrepFilesWithMatches})
	require.NoError(t, err)
	assert.Equal(t, []string{"d/real.txt"}, hits.Files)
	assert.FileExists(t, filepath.Join(b.RootDir(), "d", left), "fresh: it may be a write in flight")

	defer tmpfile.SetStaleAge(0)()
	_, err = b.ReadDir(ctx, "d")
	require.NoError(t, err)
	assert.NoFileExists(t, filepath.Join(b.RootDir(), "d", left), "stale: removed when seen")

	// The portable writes (named from the start) clean up after a failure
	// as the unnamed ones do.
	portableWrites = true
	defer func() { portableWrites = false }()
	writeFault = func(step string) error {
		if step == "rename" {
			return fmt.Errorf("injected")
		}
		return nil
	}
	assert.Error(t, b.Write(ctx, "d/real.txt", []byte("new")))
	writeFault = nil
	assert.Equal(t, []string{"real.txt"}, localHostNames(t, filepath.Join(b.RootDir(), "d")))
	localWantFile(t, filepath.Join(b.RootDir(), "d", "real.txt"), "needle")
}
