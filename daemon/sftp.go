package daemon

import (
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"syscall"
	"time"

	"github.com/pkg/sftp"

	"github.com/agentbackend/agentbackend/internal/tmpfile"
)

// sftpHandlers serves the SFTP subsystem over the session's jail (the
// workspace or a scope). pkg/sftp's request server hands every handler a
// path it has already cleaned against "/" (so ".." stops at the top, as in
// an OpenSSH chroot); the jail then applies the path rule and os.Root, at
// the jail's directory, refuses symbolic links that lead out.
//
// Operations, as in spec/daemon.md: OPEN (parents created when writing,
// mode 0644 unless the client sends one; READ/WRITE/CREAT/TRUNC/EXCL/APPEND),
// READ (EOF on zero bytes), WRITE at offset, CLOSE, FSTAT, OPENDIR, READDIR,
// STAT, LSTAT, REALPATH (an absolute path from "/" relative to the root),
// READLINK, MKDIR (0755), RMDIR, REMOVE, RENAME and posix-rename (the
// destination's parent is created; an existing destination file is
// replaced), SETSTAT/FSETSTAT (mode and size; owner and times best effort).
// SYMLINK and LINK are refused: they could plant links, and the reference
// has neither. The temporary files of writes (internal/tmpfile) have no
// name while they are written (see pendingWrites), and listings leave
// temporary names out.
//
// Errors: ENOENT → NO_SUCH_FILE, EACCES and EPERM → PERMISSION_DENIED,
// anything else → FAILURE; the message is "<op> <path>: <reason>" with the
// path as the client sent it and the reason the system's text for the
// errno ("no space left on device"), from which a client recovers the
// errno (RemoteBackend does).
type sftpHandlers struct {
	j       *jail
	pending *pendingWrites
	owner   *connState // the connection, which owns the unnamed files it makes
}

func (h sftpHandlers) handlers() sftp.Handlers {
	return sftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h}
}

// resolve resolves a client's path and opens the jail's directory, to be
// released with done. create makes a scope's missing directory (for the
// requests that write).
func (h sftpHandlers) resolve(p string, create bool) (root *os.Root, rel string, done func(), err error) {
	if rel, err = h.j.rel(p); err != nil {
		return nil, "", nil, err
	}
	if root, done, err = h.j.dir(create); err != nil {
		return nil, "", nil, fxErr(p, err)
	}
	return root, rel, done, nil
}

// Fileread opens a file for reading.
func (h sftpHandlers) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	root, rel, done, err := h.resolve(r.Filepath, false)
	if err != nil {
		return nil, err
	}
	defer done()
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fxErr(r.Filepath, err)
	}
	return sftpFile{f, r.Filepath}, nil
}

// Filewrite opens a file for writing.
func (h sftpHandlers) Filewrite(r *sftp.Request) (io.WriterAt, error) {
	rw, err := h.open(r, false)
	return rw, err
}

// OpenFile opens a file for reading and writing.
func (h sftpHandlers) OpenFile(r *sftp.Request) (sftp.WriterAtReaderAt, error) {
	return h.open(r, true)
}

func (h sftpHandlers) open(r *sftp.Request, read bool) (sftp.WriterAtReaderAt, error) {
	pf := r.Pflags()
	root, rel, done, err := h.resolve(r.Filepath, pf.Write || pf.Creat)
	if err != nil {
		return nil, err
	}
	defer done()
	flags := os.O_WRONLY
	if read {
		flags = os.O_RDWR
	}
	if pf.Creat {
		flags |= os.O_CREATE
	}
	if pf.Trunc {
		flags |= os.O_TRUNC
	}
	if pf.Excl {
		flags |= os.O_EXCL
	}
	if (pf.Write || pf.Creat) && path.Dir(rel) != "." {
		_ = root.MkdirAll(path.Dir(rel), 0o755) // errors surface in the open
	}
	mode := fs.FileMode(0o644)
	if m, ok := openMode(r.Attrs); ok {
		mode = m
	}
	if w, ok, err := h.openPending(root, rel, r.Filepath, pf, mode); ok {
		return w, fxErr(r.Filepath, err)
	}
	f, err := root.OpenFile(rel, flags|syscall.O_NONBLOCK, mode)
	if err != nil {
		return nil, fxErr(r.Filepath, err)
	}
	if pf.Append {
		return appender{sftpFile{f, r.Filepath}}, nil
	}
	return sftpFile{f, r.Filepath}, nil
}

// sftpFile is an open file whose errors name the path as the client sent
// it.
type sftpFile struct {
	f    *os.File
	path string
}

func (s sftpFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.f.ReadAt(p, off)
	if err != nil && err != io.EOF {
		err = fxErr(s.path, err)
	}
	return n, err
}

func (s sftpFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := s.f.WriteAt(p, off)
	return n, fxErr(s.path, err)
}

func (s sftpFile) Close() error { return fxErr(s.path, s.f.Close()) }

// openMode reads the permissions from the attributes of an OPEN request,
// if the client sent them.
func openMode(attrs []byte) (fs.FileMode, bool) {
	if len(attrs) < 4 {
		return 0, false
	}
	flags := binary.BigEndian.Uint32(attrs)
	off := 4
	if flags&0x1 != 0 { // size
		off += 8
	}
	if flags&0x2 != 0 { // uid, gid
		off += 8
	}
	if flags&0x4 == 0 || len(attrs) < off+4 {
		return 0, false
	}
	return fs.FileMode(binary.BigEndian.Uint32(attrs[off:]) & 0o7777), true
}

// appender is a file opened with APPEND: every write goes to the end,
// whatever offset the client names (as O_APPEND does for pwrite on Linux).
type appender struct{ sftpFile }

func (a appender) WriteAt(p []byte, _ int64) (int, error) {
	n, err := a.f.Write(p)
	return n, fxErr(a.path, err)
}

// Filecmd carries out the requests that change the tree.
func (h sftpHandlers) Filecmd(r *sftp.Request) error {
	root, rel, done, err := h.resolve(r.Filepath, r.Method != "Remove" && r.Method != "Rmdir")
	if err != nil {
		return err
	}
	defer done()
	return fxErr(r.Filepath, h.filecmd(root, rel, r))
}

func (h sftpHandlers) filecmd(root *os.Root, rel string, r *sftp.Request) error {
	key := pendingKey(h.j, rel)
	p := h.pending.get(key)
	switch r.Method {
	case "Setstat":
		if p != nil {
			return setstatFile(p.f, r)
		}
		return setstat(root, rel, r)
	case "Rename", "PosixRename":
		to, err := h.j.rel(r.Target)
		if err != nil {
			return err
		}
		if p != nil {
			return h.publish(p, key, root, to)
		}
		if dir := path.Dir(to); dir != "." {
			_ = root.MkdirAll(dir, 0o755)
		}
		return root.Rename(rel, to)
	case "Mkdir":
		return root.Mkdir(rel, 0o755)
	case "Rmdir":
		fi, err := root.Lstat(rel)
		if err == nil && !fi.IsDir() {
			err = &fs.PathError{Op: "rmdir", Path: rel, Err: syscall.ENOTDIR}
		}
		if err == nil {
			err = root.Remove(rel)
		}
		return err
	case "Remove":
		if p != nil {
			h.pending.drop(key)
			return nil
		}
		fi, err := root.Lstat(rel)
		if err == nil && fi.IsDir() {
			err = &fs.PathError{Op: "remove", Path: rel, Err: syscall.EISDIR}
		}
		if err == nil {
			err = root.Remove(rel)
		}
		return err
	default: // Link, Symlink
		return sftp.ErrSSHFxOpUnsupported
	}
}

// PosixRename is Rename: both replace an existing destination file.
func (h sftpHandlers) PosixRename(r *sftp.Request) error { return h.Filecmd(r) }

// setstatFile is SETSTAT on an open file.
func setstatFile(f *os.File, r *sftp.Request) error {
	af := r.AttrFlags()
	attrs := r.Attributes()
	if af.Size {
		if err := f.Truncate(int64(attrs.Size)); err != nil {
			return err
		}
	}
	if af.Permissions {
		if err := f.Chmod(attrs.FileMode().Perm()); err != nil {
			return err
		}
	}
	if af.UidGid {
		_ = f.Chown(int(attrs.UID), int(attrs.GID)) // only root may give files away
	}
	return nil
}

func setstat(root *os.Root, rel string, r *sftp.Request) error {
	af := r.AttrFlags()
	attrs := r.Attributes()
	if af.Size {
		f, err := root.OpenFile(rel, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		err = f.Truncate(int64(attrs.Size))
		f.Close()
		if err != nil {
			return err
		}
	}
	if af.Permissions {
		if err := root.Chmod(rel, attrs.FileMode().Perm()); err != nil {
			return err
		}
	}
	if af.UidGid {
		_ = root.Chown(rel, int(attrs.UID), int(attrs.GID)) // only root may give files away
	}
	if af.Acmodtime {
		_ = root.Chtimes(rel, time.Unix(int64(attrs.Atime), 0), time.Unix(int64(attrs.Mtime), 0))
	}
	return nil
}

// Filelist answers List (a directory's entries), Stat and Readlink.
func (h sftpHandlers) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	root, rel, done, err := h.resolve(r.Filepath, false)
	if err != nil {
		return nil, err
	}
	defer done()
	switch r.Method {
	case "List":
		l, err := list(root, rel)
		return l, fxErr(r.Filepath, err)
	case "Stat":
		fi, err := h.stat(root, rel, root.Stat)
		if err != nil {
			return nil, fxErr(r.Filepath, err)
		}
		return listerOf{fi}, nil
	default:
		return nil, sftp.ErrSSHFxOpUnsupported
	}
}

// stat describes rel with statFn, or the unnamed file of a write in flight
// that the client knows by that name.
func (h sftpHandlers) stat(root *os.Root, rel string, statFn func(string) (fs.FileInfo, error)) (fs.FileInfo, error) {
	if p := h.pending.get(pendingKey(h.j, rel)); p != nil {
		return p.stat()
	}
	return statFn(rel)
}

// Lstat describes a path without following a final symbolic link.
func (h sftpHandlers) Lstat(r *sftp.Request) (sftp.ListerAt, error) {
	root, rel, done, err := h.resolve(r.Filepath, false)
	if err != nil {
		return nil, err
	}
	defer done()
	fi, err := h.stat(root, rel, root.Lstat)
	if err != nil {
		return nil, fxErr(r.Filepath, err)
	}
	return listerOf{fi}, nil
}

// Readlink returns a link's target as stored.
func (h sftpHandlers) Readlink(p string) (string, error) {
	root, rel, done, err := h.resolve(p, false)
	if err != nil {
		return "", err
	}
	defer done()
	target, err := root.Readlink(rel)
	return target, fxErr(p, err)
}

// RealPath answers REALPATH as the reference does: the path as an absolute
// path from "/" relative to the jail's directory (the workspace root, or
// the scope's).
func (h sftpHandlers) RealPath(p string) (string, error) {
	rel, err := h.j.rel(p)
	if err != nil {
		return "", err
	}
	if rel == "." {
		return "/", nil
	}
	return "/" + rel, nil
}

// list reads a directory's names at once (sorted, temporary names left
// out and removed when stale) and describes them (lstat, as the reference
// does) batch by batch as the client asks.
func list(root *os.Root, rel string) (sftp.ListerAt, error) {
	dir, err := root.OpenRoot(rel)
	if err != nil {
		if fi, serr := root.Stat(rel); serr == nil && !fi.IsDir() {
			return nil, &fs.PathError{Op: "opendir", Path: rel, Err: syscall.ENOTDIR}
		}
		return nil, err
	}
	f, err := dir.Open(".")
	if err != nil {
		dir.Close()
		return nil, err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		dir.Close()
		return nil, err
	}
	names = tmpfile.Hide(names, func(name string) { tmpfile.RemoveStale(dir, name) })
	slices.Sort(names)
	return &dirLister{dir: dir, names: names}, nil
}

type dirLister struct {
	dir   *os.Root
	names []string
}

func (l *dirLister) ListAt(buf []os.FileInfo, off int64) (int, error) {
	n := 0
	for i := int(off); i < len(l.names) && n < len(buf); i++ {
		fi, err := l.dir.Lstat(l.names[i])
		if err != nil {
			fi = missingInfo(l.names[i]) // removed since the listing
		}
		buf[n] = fi
		n++
	}
	if int(off)+n >= len(l.names) {
		return n, io.EOF
	}
	return n, nil
}

// Close releases the directory once the client closes its handle.
func (l *dirLister) Close() error { return l.dir.Close() }

type listerOf []os.FileInfo

func (l listerOf) ListAt(buf []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(buf, l[off:])
	if n+int(off) >= len(l) {
		return n, io.EOF
	}
	return n, nil
}

// missingInfo describes an entry that vanished between listing and lstat.
type missingInfo string

func (m missingInfo) Name() string       { return string(m) }
func (m missingInfo) Size() int64        { return 0 }
func (m missingInfo) Mode() fs.FileMode  { return 0 }
func (m missingInfo) ModTime() time.Time { return time.Time{} }
func (m missingInfo) IsDir() bool        { return false }
func (m missingInfo) Sys() any           { return nil }

// fxErr maps a file-system error to what the SFTP client is told about
// its path p (as the client sent it): an escape → FAILURE "Path escape
// attempt blocked"; an error with an errno → that errno on p (pkg/sftp
// turns ENOENT into NO_SUCH_FILE, EACCES and EPERM into PERMISSION_DENIED,
// the rest into FAILURE, with the message "<op> <p>: <errno text>");
// anything else → FAILURE with its message. Paths of this host never reach
// the client.
func fxErr(p string, err error) error {
	if err == nil {
		return nil
	}
	if isEscape(err) {
		return errEscape
	}
	op := "sftp"
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		op = pe.Op
	case errors.As(err, &le):
		op = le.Op
	}
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
	case errors.Is(err, fs.ErrNotExist):
		errno = syscall.ENOENT
	case errors.Is(err, fs.ErrExist):
		errno = syscall.EEXIST
	case errors.Is(err, fs.ErrPermission):
		errno = syscall.EACCES
	default:
		if errors.Is(err, sftp.ErrSSHFxOpUnsupported) {
			return err
		}
		return errors.New(op + " " + p + ": " + innermost(err).Error())
	}
	return &fs.PathError{Op: op, Path: p, Err: errno}
}

// innermost returns the last error of err's chain.
func innermost(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}
