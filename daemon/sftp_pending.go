package daemon

import (
	"io"
	"io/fs"
	"os"
	"path"
	"sync"
	"syscall"

	"github.com/pkg/sftp"

	"github.com/agentbackend/agentbackend/internal/pathjail"
	"github.com/agentbackend/agentbackend/internal/tmpfile"
)

// A RemoteBackend writes a file as every backend does: into a temporary
// file beside the target (a name of internal/tmpfile's pattern, opened
// with CREAT|EXCL), which it then renames over the target. The daemon
// keeps such a file without a name while it is written (O_TMPFILE, on
// Linux): a connection that ends before the rename (the client gave up, or
// its keepalive timed out), or the daemon killed mid-write, leaves nothing
// on disk, and no listing or command ever sees it. The rename links it in
// place (tmpfile.Publish). Until then the daemon answers for the name
// itself: STAT, LSTAT, FSTAT, SETSTAT (mode, size, owner), REMOVE and
// RENAME of it, on any session of any connection (a large file is written
// over a second session). Where the file system has no O_TMPFILE, or a
// connection has maxPendingPerConn such files already, the name is created
// as any other, hidden from listings and swept when stale.

// maxPendingPerConn bounds the unnamed files (descriptors) one connection
// may hold; further temporary files get names.
const maxPendingPerConn = 256

// pendingWrites are the unnamed temporary files of the writes in flight.
type pendingWrites struct {
	mu    sync.Mutex
	files map[string]*pendingFile // by the temporary name's absolute path on this host
	count map[*connState]int
}

// pendingFile is one unnamed temporary file and the connection it belongs
// to.
type pendingFile struct {
	f     *os.File
	name  string // its temporary name (the base name)
	owner *connState
}

func newPendingWrites() *pendingWrites {
	return &pendingWrites{files: map[string]*pendingFile{}, count: map[*connState]int{}}
}

// key is the map key of the path rel of jail j.
func pendingKey(j *jail, rel string) string { return pathjail.Join(j.real, rel) }

func (pw *pendingWrites) get(key string) *pendingFile {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return pw.files[key]
}

// drop forgets the file at key and closes it, which frees it unless it
// was published.
func (pw *pendingWrites) drop(key string) {
	pw.mu.Lock()
	p := pw.files[key]
	if p != nil {
		delete(pw.files, key)
		pw.count[p.owner]--
		if pw.count[p.owner] == 0 {
			delete(pw.count, p.owner)
		}
	}
	pw.mu.Unlock()
	if p != nil {
		p.f.Close()
	}
}

// dropConn frees the files of a connection that has ended.
func (pw *pendingWrites) dropConn(owner *connState) {
	pw.mu.Lock()
	var gone []*pendingFile
	for key, p := range pw.files {
		if p.owner == owner {
			gone = append(gone, p)
			delete(pw.files, key)
		}
	}
	delete(pw.count, owner)
	pw.mu.Unlock()
	for _, p := range gone {
		p.f.Close()
	}
}

// openPending answers an OPEN of rel (in root, the jail's directory) that
// creates a temporary file with an unnamed one. ok is false when the
// request is not that, or the file is to get its name after all (see
// above): the caller then opens it as any file.
func (h sftpHandlers) openPending(root *os.Root, rel, clientPath string, pf sftp.FileOpenFlags, mode fs.FileMode) (w sftp.WriterAtReaderAt, ok bool, err error) {
	dir, name := path.Split(rel)
	if !pf.Creat || !pf.Excl || pf.Append || !tmpfile.Is(name) {
		return nil, false, nil
	}
	key := pendingKey(h.j, rel)
	pw := h.pending
	pw.mu.Lock()
	_, taken := pw.files[key]
	full := pw.count[h.owner] >= maxPendingPerConn
	pw.mu.Unlock()
	if full {
		return nil, false, nil
	}
	if _, err := root.Lstat(rel); taken || err == nil {
		return nil, true, &fs.PathError{Op: "open", Path: rel, Err: syscall.EEXIST}
	}
	if dir == "" {
		dir = "."
	}
	d, err := root.OpenFile(dir, os.O_RDONLY|oDirectory, 0)
	if err != nil {
		return nil, true, err
	}
	defer d.Close()
	fd, err := withFd(d, func(dirfd int) (int, error) { return tmpfile.OpenUnnamed(dirfd, uint32(mode.Perm()), true) })
	if err == tmpfile.ErrUnsupported {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, &fs.PathError{Op: "open", Path: rel, Err: err}
	}
	p := &pendingFile{f: os.NewFile(uintptr(fd), name), name: name, owner: h.owner}
	pw.mu.Lock()
	if _, taken := pw.files[key]; taken {
		pw.mu.Unlock()
		p.f.Close()
		return nil, true, &fs.PathError{Op: "open", Path: rel, Err: syscall.EEXIST}
	}
	pw.files[key] = p
	pw.count[h.owner]++
	pw.mu.Unlock()
	return pendingHandle{p, clientPath}, true, nil
}

// pendingHandle is the SFTP handle of an unnamed file (path is the
// client's name for it): closing the handle keeps the file for the rename
// (or REMOVE, or the connection's end).
type pendingHandle struct {
	p    *pendingFile
	path string
}

func (h pendingHandle) WriteAt(b []byte, off int64) (int, error) {
	n, err := h.p.f.WriteAt(b, off)
	return n, fxErr(h.path, err)
}

func (h pendingHandle) ReadAt(b []byte, off int64) (int, error) {
	n, err := h.p.f.ReadAt(b, off)
	if err != nil && err != io.EOF {
		err = fxErr(h.path, err)
	}
	return n, err
}

// publish renames the unnamed file at key over the path to (in root): it
// gets that name, atomically, and is no longer pending.
func (h sftpHandlers) publish(p *pendingFile, key string, root *os.Root, to string) error {
	dir, name := path.Split(to)
	if dir == "" {
		dir = "."
	} else {
		_ = root.MkdirAll(dir, 0o755) // errors surface in the open
	}
	d, err := root.OpenFile(dir, os.O_RDONLY|oDirectory, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	_, lerr := root.Lstat(to)
	_, err = withFd(d, func(dirfd int) (int, error) {
		return withFd(p.f, func(fd int) (int, error) { return 0, tmpfile.Publish(fd, dirfd, name, lerr == nil) })
	})
	if err != nil {
		return &fs.PathError{Op: "rename", Path: to, Err: err}
	}
	h.pending.drop(key)
	return nil
}

// withFd calls fn with f's descriptor.
func withFd(f *os.File, fn func(fd int) (int, error)) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	var n int
	var ferr error
	if err := rc.Control(func(fd uintptr) { n, ferr = fn(int(fd)) }); err != nil {
		return -1, err
	}
	return n, ferr
}

// pendingInfo describes an unnamed file under its temporary name.
type pendingInfo struct {
	fs.FileInfo
	name string
}

func (i pendingInfo) Name() string { return i.name }

func (p *pendingFile) stat() (fs.FileInfo, error) {
	fi, err := p.f.Stat()
	if err != nil {
		return nil, err
	}
	return pendingInfo{fi, p.name}, nil
}
