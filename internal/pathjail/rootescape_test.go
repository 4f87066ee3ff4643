package pathjail

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestIsRootEscape(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink(t.TempDir(), filepath.Join(dir, "out")); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	LearnRootEscape(r)
	_, err = r.Stat("out/x")
	var pe *fs.PathError
	if !errors.As(err, &pe) || !IsRootEscape(pe.Err) || !IsRootEscape(err) {
		t.Errorf("Stat through a link out of the root: %v, not recognised as an escape", err)
	}
	if IsRootEscape(fs.ErrNotExist) || IsRootEscape(nil) {
		t.Error("IsRootEscape recognises what is not an escape")
	}
}
