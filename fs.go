package agentbackend

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// FS returns a read-only io/fs view of b, so every backend works with
// fs.WalkDir, fs.Glob, template.ParseFS, http.FS and testing/fstest. Names
// are io/fs paths (slash-separated, relative, "." for the root) and resolve
// against b's root. Every call uses ctx. The result implements fs.StatFS,
// fs.ReadFileFS, fs.ReadDirFS and fs.SubFS.
//
// Opening a file reads it whole; directories are listed when opened.
func FS(ctx context.Context, b FileBackend) fs.FS {
	return &backendFS{ctx: ctx, b: b}
}

type backendFS struct {
	ctx context.Context
	b   FileBackend
}

var (
	_ fs.StatFS     = (*backendFS)(nil)
	_ fs.ReadFileFS = (*backendFS)(nil)
	_ fs.ReadDirFS  = (*backendFS)(nil)
	_ fs.SubFS      = (*backendFS)(nil)
)

// fsErr converts a backend error into the *fs.PathError io/fs callers
// expect, keeping the backend error as the cause.
func fsErr(op, name string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		err = &fsCause{fs.ErrNotExist, err}
	case errors.Is(err, ErrPathEscape):
		err = &fsCause{fs.ErrPermission, err}
	}
	return &fs.PathError{Op: op, Path: name, Err: err}
}

// fsCause is a backend error presented as one of io/fs's sentinel kinds.
type fsCause struct {
	kind  error
	cause error
}

func (c *fsCause) Error() string   { return c.cause.Error() }
func (c *fsCause) Unwrap() []error { return []error{c.kind, c.cause} }

func (f *backendFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	fi, err := f.b.Stat(f.ctx, name)
	if err != nil {
		return nil, fsErr("open", name, err)
	}
	info := fileInfo{fi, path.Base(name)}
	if fi.IsDir {
		return &dirFile{fsys: f, name: name, info: info}, nil
	}
	data, err := f.b.Read(f.ctx, name)
	if err != nil {
		return nil, fsErr("open", name, err)
	}
	info.FileInfo.Size = int64(len(data))
	return &regularFile{Reader: bytes.NewReader(data), info: info}, nil
}

func (f *backendFS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	fi, err := f.b.Stat(f.ctx, name)
	if err != nil {
		return nil, fsErr("stat", name, err)
	}
	return fileInfo{fi, path.Base(name)}, nil
}

func (f *backendFS) ReadFile(name string) ([]byte, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: fs.ErrInvalid}
	}
	data, err := f.b.Read(f.ctx, name)
	if err != nil {
		return nil, fsErr("readfile", name, err)
	}
	return data, nil
}

func (f *backendFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	infos, err := readDirInfo(f.ctx, f.b, name)
	if err != nil {
		return nil, fsErr("readdir", name, err)
	}
	entries := make([]fs.DirEntry, len(infos))
	for i, fi := range infos {
		entries[i] = fs.FileInfoToDirEntry(fileInfo{fi, fi.Name})
	}
	return entries, nil
}

func (f *backendFS) Sub(dir string) (fs.FS, error) {
	if !fs.ValidPath(dir) {
		return nil, &fs.PathError{Op: "sub", Path: dir, Err: fs.ErrInvalid}
	}
	if dir == "." {
		return f, nil
	}
	s, err := NewScope(f.b, dir, nil)
	if err != nil {
		return nil, fsErr("sub", dir, err)
	}
	return &backendFS{ctx: f.ctx, b: s}, nil
}

// readDirInfo lists a directory with metadata: in one call when b is an
// InfoLister, else ReadDir then a Stat per entry. Entries that vanish
// between the two calls are left out.
func readDirInfo(ctx context.Context, b FileBackend, dir string) ([]FileInfo, error) {
	if l, ok := b.(InfoLister); ok {
		return l.ReadDirInfo(ctx, dir)
	}
	names, err := b.ReadDir(ctx, dir)
	if err != nil {
		return nil, err
	}
	infos := make([]FileInfo, 0, len(names))
	for _, name := range names {
		fi, err := b.Stat(ctx, joinName(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		fi.Name = name
		infos = append(infos, fi)
	}
	return infos, nil
}

// joinName joins a directory path as given by a caller and an entry name.
func joinName(dir, name string) string {
	if dir == "" || dir == "." {
		return name
	}
	return strings.TrimSuffix(dir, "/") + "/" + name
}

// fileInfo adapts FileInfo to fs.FileInfo, with the name io/fs expects.
type fileInfo struct {
	FileInfo
	name string
}

func (fi fileInfo) Name() string { return fi.name }
func (fi fileInfo) Size() int64  { return fi.FileInfo.Size }
func (fi fileInfo) Mode() fs.FileMode {
	if fi.FileInfo.IsDir {
		return fi.FileInfo.Mode | fs.ModeDir
	}
	return fi.FileInfo.Mode
}
func (fi fileInfo) ModTime() time.Time { return fi.FileInfo.ModTime }
func (fi fileInfo) IsDir() bool        { return fi.FileInfo.IsDir }
func (fi fileInfo) Sys() any           { return nil }

type regularFile struct {
	*bytes.Reader
	info fileInfo
}

func (f *regularFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *regularFile) Close() error               { return nil }

type dirFile struct {
	fsys    *backendFS
	name    string
	info    fileInfo
	entries []fs.DirEntry // nil until the first ReadDir
	offset  int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errors.New("is a directory")}
}

// ReadDir follows fs.ReadDirFile: n > 0 returns at most n entries and io.EOF
// at the end; n <= 0 returns the rest.
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if d.entries == nil {
		entries, err := d.fsys.ReadDir(d.name)
		if err != nil {
			return nil, err
		}
		d.entries = slices.Clip(entries)
		if d.entries == nil {
			d.entries = []fs.DirEntry{}
		}
	}
	rest := d.entries[d.offset:]
	if n <= 0 {
		d.offset = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	rest = rest[:min(n, len(rest))]
	d.offset += len(rest)
	return rest, nil
}
