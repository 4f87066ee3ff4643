package agentbackend

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// Glob and Grep on a local workspace do not follow symbolic links (a link
// cycle cannot trap them, a link out of the workspace cannot leak through
// them) and never block on a FIFO.
func TestLocalSearchLinksAndSpecialFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("needle outside"), 0o644)
	b, err := NewLocal(LocalConfig{RootDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.Write(ctx, "src/a.txt", []byte("needle inside"))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("..", filepath.Join(dir, "src", "loop")))          // a cycle
	must(os.Symlink(outside, filepath.Join(dir, "out")))               // a way out
	must(os.Symlink("a.txt", filepath.Join(dir, "src", "alias.txt")))  // a link to a file
	must(syscall.Mkfifo(filepath.Join(dir, "src", "pipe.txt"), 0o644)) // would block a plain open

	r, err := Grep(ctx, b, GrepOptions{Pattern: "needle"})
	if err != nil || !slices.Equal(r.Files, []string{"src/a.txt"}) {
		t.Errorf("Grep = %+v, %v; want only the real file", r, err)
	}
	got, err := Glob(ctx, b, "**/*.txt", ".")
	if err != nil || !slices.Equal(got, []string{"src/a.txt", "src/alias.txt", "src/pipe.txt"}) {
		t.Errorf("Glob = %q, %v; links and FIFOs match by name, nothing is followed", got, err)
	}
	if _, err := Grep(ctx, b, GrepOptions{Pattern: "needle", Path: "out"}); err == nil {
		t.Error("Grep through a link out of the workspace succeeded")
	}
}
