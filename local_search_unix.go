//go:build unix

package agentbackend

import (
	"context"
	"os"

	"golang.org/x/sys/unix"

	"github.com/agentbackend/agentbackend/internal/tmpfile"
)

// openDir opens the directory at rel through the os.Root (which resolves
// rel safely) and keeps a descriptor of its own for the walk.
func (t localTree) openDir(_ context.Context, rel string) (treeDir, error) {
	d, err := t.b.open(false)
	if err != nil {
		return nil, t.b.fileErr(CodeLsFailed, "readdir", rel, err)
	}
	f, err := d.fsys.OpenFile(rel, dirFlags, 0)
	t.b.done(d)
	if err != nil {
		return nil, t.b.fileErr(CodeLsFailed, "readdir", rel, err)
	}
	defer f.Close()
	raw, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	cerr := raw.Control(func(sysfd uintptr) { fd, err = unix.FcntlInt(sysfd, unix.F_DUPFD_CLOEXEC, 0) })
	if cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, err
	}
	return localDir{fd}, nil
}

// localDir is one open directory of a localTree. Entries are opened by
// their single name relative to fd with O_NOFOLLOW, so neither a link nor
// a "..", which a listing never contains, leads anywhere else.
type localDir struct{ fd int }

const (
	fileOpenFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC
	dirOpenFlags  = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_DIRECTORY | unix.O_CLOEXEC
)

// list reads the entries with their types from the directory listing
// itself, with no stat per entry.
func (d localDir) list(context.Context) ([]FileInfo, error) {
	entries, err := dirEntriesAt(d.fd)
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
			mode |= 0o644 // permission bits are not in the listing; searches need only the type
		}
		infos = append(infos, FileInfo{Name: e.Name(), Mode: mode, IsDir: e.IsDir()})
	}
	return infos, nil
}

// dirEntriesAt reads the entries of the directory dirfd with their types
// from the listing itself, through a descriptor of its own (a fresh offset
// for getdents).
func dirEntriesAt(dirfd int) ([]os.DirEntry, error) {
	fd, err := unix.Openat(dirfd, ".", dirOpenFlags, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), ".")
	defer f.Close()
	return f.ReadDir(-1)
}

// dirEntries reads the entries of the directory f with their types from
// the listing itself. For a File opened in an os.Root, os lstats every
// entry (to keep DirEntry.Info consistent); one of our own does not.
func dirEntries(f *os.File) ([]os.DirEntry, error) {
	raw, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var entries []os.DirEntry
	var lerr error
	if err := raw.Control(func(fd uintptr) { entries, lerr = dirEntriesAt(int(fd)) }); err != nil {
		return nil, err
	}
	return entries, lerr
}

// read reads a regular file into buf (grown as needed): openat, fstat, one
// read when the size is right, close.
func (d localDir) read(_ context.Context, name string, buf []byte) ([]byte, error) {
	fd, err := unix.Openat(d.fd, name, fileOpenFlags, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, errNotRegular
	}
	want := int(st.Size) + 1 // one spare byte tells EOF without another read
	if cap(buf) < want {
		buf = make([]byte, 0, max(want, 4096))
	}
	buf = buf[:0]
	for {
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		buf = buf[:len(buf)+n]
		if n == 0 || len(buf) < cap(buf) {
			return buf, nil
		}
		buf = append(buf, 0)[:len(buf)] // the file grew: make room and read on
	}
}

func (d localDir) sub(_ context.Context, name string) (treeDir, error) {
	fd, err := unix.Openat(d.fd, name, dirOpenFlags, 0)
	if err != nil {
		return nil, err
	}
	return localDir{fd}, nil
}

func (d localDir) close() { unix.Close(d.fd) }
