//go:build !unix

package agentbackend

import (
	"context"
	"os"

	"github.com/agentbackend/agentbackend/internal/tmpfile"
)

func (t localTree) openDir(_ context.Context, rel string) (treeDir, error) {
	d, err := t.b.open(false)
	if err != nil {
		return nil, t.b.fileErr(CodeLsFailed, "readdir", rel, err)
	}
	r, err := d.fsys.OpenRoot(rel)
	t.b.done(d)
	if err != nil {
		return nil, t.b.fileErr(CodeLsFailed, "readdir", rel, err)
	}
	return localDir{r}, nil
}

// localDir is one directory of a localTree, open as an os.Root.
type localDir struct{ r *os.Root }

func (d localDir) list(context.Context) ([]FileInfo, error) {
	f, err := d.r.Open(".")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	infos := make([]FileInfo, 0, len(entries))
	for _, e := range entries {
		if tmpfile.Is(e.Name()) {
			continue // a write in flight (see Write)
		}
		mode := e.Type()
		if mode.IsRegular() {
			mode |= 0o644
		}
		infos = append(infos, FileInfo{Name: e.Name(), Mode: mode, IsDir: e.IsDir()})
	}
	return infos, nil
}

func (d localDir) read(_ context.Context, name string, _ []byte) ([]byte, error) {
	f, err := d.r.OpenFile(name, readFlags, 0)
	if err != nil {
		return nil, err
	}
	return readOpenFile(f)
}

func (d localDir) sub(_ context.Context, name string) (treeDir, error) {
	r, err := d.r.OpenRoot(name)
	if err != nil {
		return nil, err
	}
	return localDir{r}, nil
}

func (d localDir) close() { d.r.Close() }

// dirEntries reads the entries of the directory f with their types.
func dirEntries(f *os.File) ([]os.DirEntry, error) { return f.ReadDir(-1) }
