package agentbackend

import (
	"context"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/agentbackend/agentbackend/internal/tmpfile"
)

// Listing a directory by the types of its entries alone: what a listing
// that only says "[FILE]" or "[DIR]" needs (MCP's list_directory and
// directory_tree). A local directory then costs one read of the directory
// instead of a stat per entry.

// typeLister is implemented by the backends that can list a directory's
// entries with their types alone, cheaper than ReadDirInfo: each FileInfo
// has Name, IsDir, Symlink and the type bits of Mode, and nothing else (no
// size, time or permissions). A symbolic link is a link (Symlink set, IsDir
// false), not what it points to. Entries are sorted by name. Ls without
// info uses it when present, else ReadDirInfo.
type typeLister interface {
	readDirTypes(ctx context.Context, path string) ([]FileInfo, error)
}

var (
	_ typeLister = (*LocalBackend)(nil)
	_ typeLister = (*ScopedBackend)(nil)
	_ typeLister = (*CompositeBackend)(nil)
)

// dirLister lists a directory of a backend: readDirInfo or listTypes.
type dirLister func(ctx context.Context, b FileBackend, dir string) ([]FileInfo, error)

// listTypes lists a directory by type when b can, else with metadata.
func listTypes(ctx context.Context, b FileBackend, dir string) ([]FileInfo, error) {
	if l, ok := b.(typeLister); ok {
		return l.readDirTypes(ctx, dir)
	}
	return readDirInfo(ctx, b, dir)
}

// readDirTypes lists a directory's entries with their types, from the
// directory itself (see typeLister), without the temporary files of writes
// in flight (see ReadDir).
func (b *LocalBackend) readDirTypes(ctx context.Context, p string) ([]FileInfo, error) {
	var infos []FileInfo
	err := b.listDir(ctx, p, func(f *os.File, d *dirHandle, rel string) error {
		entries, err := dirEntries(f)
		if err != nil {
			return err
		}
		infos = make([]FileInfo, 0, len(entries))
		for _, e := range entries {
			if tmpfile.Is(e.Name()) {
				tmpfile.RemoveStale(d.fsys, path.Join(rel, e.Name()))
				continue
			}
			t := e.Type()
			infos = append(infos, FileInfo{Name: e.Name(), Mode: t, IsDir: t.IsDir(), Symlink: t&fs.ModeSymlink != 0})
		}
		slices.SortFunc(infos, func(a, b FileInfo) int { return strings.Compare(a.Name, b.Name) })
		return nil
	})
	return infos, err
}

// readDirTypes lists a directory's entries with their types (see
// typeLister), without the entries the scope's permissions hide. It is
// logged as a readdir.
func (s *ScopedBackend) readDirTypes(ctx context.Context, p string) ([]FileInfo, error) {
	start := s.begin(OpReadDir)
	var o opCheck
	infos, err := s.readDirInfo(ctx, p, &o, listTypes)
	s.log(start, OperationEntry{Operation: OpReadDir, Path: p, Permission: o.rec}, err)
	return infos, err
}

// readDirTypes lists a directory's entries with their types (see
// typeLister), with the mount points inside it.
func (c *CompositeBackend) readDirTypes(ctx context.Context, p string) ([]FileInfo, error) {
	return c.readDir(ctx, p, listTypes)
}
