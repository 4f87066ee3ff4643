package agentbackend

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/pkg/sftp"

	"github.com/agentbackend/agentbackend/internal/sftpbulk"
	"github.com/agentbackend/agentbackend/internal/tmpfile"
)

// File operations of RemoteBackend, over the connection's SFTP session.
// Each resolves the caller's path against the root here (escapes fail
// before anything is sent), sends absolute paths, and converts the SFTP
// status back into the SDK's error with the errno it stands for.

// remoteOp is what a file operation works with.
type remoteOp struct {
	ctx   context.Context
	b     *RemoteBackend // the backend or scope view it works for
	c     *remoteConn
	sc    *sftp.Client
	posix bool         // posix-rename@openssh.com is available
	state atomic.Int32 // 0 running, 1 committed, 2 abandoned by its caller
}

// commit marks the point of no return of a multi-step operation (the
// rename that publishes a Write). It reports false when the caller has
// already given up, in which case the operation must undo its steps.
func (o *remoteOp) commit() bool { return o.state.CompareAndSwap(0, 1) }

// abs resolves p and returns its absolute path on the daemon host and its
// path relative to the root.
func (b *RemoteBackend) abs(op, p string) (full, rel string, err error) {
	rel, err = resolve(b.root, op, p)
	if err != nil {
		return "", "", err
	}
	return joinRoot(b.root, rel), rel, nil
}

// do runs fn on the live connection for operation op on the caller's path
// p and converts its error (code is the operation's failure code). fn runs
// on this goroutine when ctx cannot be cancelled, else on its own so that a
// cancelled ctx or a lost connection returns at once.
func (b *RemoteBackend) do(ctx context.Context, code Code, op, p string, fn func(o *remoteOp) error) error {
	if err := b.checkOpen(op); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return errFileOp(code, op, p, err)
	}
	c, err := b.connection(ctx, op)
	if err != nil {
		return err
	}
	sc, posix, err := c.sftpClient(ctx, b)
	if err != nil {
		return b.fail(c, code, op, p, err)
	}
	o := &remoteOp{ctx: ctx, b: b, c: c, sc: sc, posix: posix}
	if ctx.Done() == nil {
		return b.fail(c, code, op, p, fn(o))
	}
	res := make(chan error, 1)
	go func() { res <- fn(o) }()
	select {
	case err := <-res:
		return b.fail(c, code, op, p, err)
	case <-ctx.Done():
		if o.state.CompareAndSwap(0, 2) {
			return errFileOp(code, op, p, ctx.Err())
		}
		return b.fail(c, code, op, p, <-res) // committed: the outcome is the operation's
	case <-c.done:
		select {
		case err := <-res:
			return b.fail(c, code, op, p, err)
		default:
			o.state.CompareAndSwap(0, 2)
			return b.fail(c, code, op, p, c.err)
		}
	}
}

// fail converts the error of a file operation.
func (b *RemoteBackend) fail(c *remoteConn, code Code, op, p string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if c.lost(err) {
		if b.destroyed.Load() {
			return connClosed(op, p, errRemoteDestroyed)
		}
		cause := err
		if c.dead() {
			cause = c.err
		}
		return connClosed(op, p, cause)
	}
	cause := sftpCause(err)
	if cause == errRemoteEscape {
		return errPathEscape(op, p)
	}
	return errFileOp(code, op, p, &fs.PathError{Op: op, Path: p, Err: cause})
}

// Read returns a file's contents. The file is opened and stat'ed at once,
// then read with concurrent requests straight into the result.
func (b *RemoteBackend) Read(ctx context.Context, p string) ([]byte, error) {
	full, _, err := b.abs("read", p)
	if err != nil {
		return nil, err
	}
	var data []byte
	err = b.do(ctx, CodeReadFailed, "read", p, func(o *remoteOp) error {
		var fi os.FileInfo
		var statErr error
		var wg sync.WaitGroup
		wg.Go(func() { fi, statErr = o.sc.Stat(full) })
		f, err := o.sc.OpenFile(full, os.O_RDONLY)
		wg.Wait()
		if err != nil {
			return err
		}
		defer func() { go f.Close() }() // nobody waits for the answer: one round trip less
		switch {
		case statErr != nil:
			return statErr
		case fi.IsDir():
			return syscall.EISDIR
		case !fi.Mode().IsRegular():
			return errNotRegular
		}
		if fi.Size() >= bulkSize {
			f.Close()
			bulk, err := o.c.bulkSession(o.ctx, o.b)
			if err != nil {
				return err
			}
			data, err = bulk.ReadFile(full)
			return err
		}
		buf := make([]byte, fi.Size())
		n, err := f.ReadAt(buf, 0)
		if err != nil && err != io.EOF {
			return err
		}
		data = buf[:n]
		return nil
	})
	return data, err
}

// Write replaces a file atomically: the data goes to a temporary file
// ".agentbe-<hex>.tmp" beside it, which is renamed over the target, so
// readers see the old contents or the new and a failed Write leaves the old
// file as it was and removes the temporary one. This module's daemon keeps
// that file without a name until the rename (see the daemon package): a
// Write cut off by a lost connection, or by the daemon's death, leaves
// nothing; its listings, like every backend's, leave such names out. An
// existing file keeps its permission bits; missing parents are created (by
// the daemon, when the temporary file is opened). Writing to a symbolic
// link replaces the link with a file.
func (b *RemoteBackend) Write(ctx context.Context, p string, data []byte) error {
	full, rel, err := b.abs("write", p)
	if err != nil {
		return err
	}
	if rel == "." {
		return errFileOp(CodeWriteFailed, "write", p, &fs.PathError{Op: "write", Path: p, Err: syscall.EISDIR})
	}
	tmp := path.Join(path.Dir(full), tmpfile.Name())
	return b.do(ctx, CodeWriteFailed, "write", p, func(o *remoteOp) error {
		var fi os.FileInfo
		var statErr error
		if len(data) >= bulkSize {
			if err := o.writeBulk(tmp, data, func() { fi, statErr = o.sc.Stat(full) }); err != nil {
				return err
			}
		} else if err := o.writeSmall(tmp, data, func() { fi, statErr = o.sc.Stat(full) }); err != nil {
			return err
		}
		done := false
		defer func() {
			if !done {
				_ = o.sc.Remove(tmp)
			}
		}()
		if statErr == nil && fi.IsDir() {
			return syscall.EISDIR
		}
		if statErr == nil && fi.Mode().Perm() != 0o644 {
			if err := o.sc.Chmod(tmp, fi.Mode().Perm()); err != nil {
				return err
			}
		}
		if !o.commit() {
			return context.Canceled
		}
		if err := o.rename(tmp, full); err != nil {
			return err
		}
		done = true
		return nil
	})
}

// writeSmall writes data to the new file tmp over the SFTP session, with
// stat running alongside the open. On failure tmp does not exist.
func (o *remoteOp) writeSmall(tmp string, data []byte, stat func()) error {
	var wg sync.WaitGroup
	wg.Go(stat)
	f, err := o.sc.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	wg.Wait()
	if err != nil {
		return err
	}
	if len(data) > 0 {
		_, err = f.WriteAt(data, 0)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = o.sc.Remove(tmp)
	}
	return err
}

// writeBulk writes data to the new file tmp over the bulk session, with
// stat running alongside. On failure tmp does not exist.
func (o *remoteOp) writeBulk(tmp string, data []byte, stat func()) error {
	var wg sync.WaitGroup
	wg.Go(stat)
	bulk, err := o.c.bulkSession(o.ctx, o.b)
	if err == nil {
		err = bulk.WriteFile(tmp, sftpbulk.FlagWrite|sftpbulk.FlagCreat|sftpbulk.FlagExcl, data)
	}
	wg.Wait()
	if err != nil {
		_ = o.sc.Remove(tmp)
	}
	return err
}

// rename renames with replace semantics: posix-rename where the server has
// it, else RENAME (which both daemons implement by rename(2)).
func (o *remoteOp) rename(from, to string) error {
	if o.posix {
		return o.sc.PosixRename(from, to)
	}
	return o.sc.Rename(from, to)
}

// ReadDir returns the sorted names of a directory's entries.
func (b *RemoteBackend) ReadDir(ctx context.Context, p string) ([]string, error) {
	infos, err := b.readDir(ctx, p, false)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(infos))
	for i, fi := range infos {
		names[i] = fi.Name
	}
	return names, nil
}

// ReadDirInfo lists a directory with each entry's metadata, sorted by name
// (see InfoLister), in one listing: SFTP sends the attributes with the
// names. A symbolic link is described by its target when that can be
// stat'ed, as Stat does.
func (b *RemoteBackend) ReadDirInfo(ctx context.Context, p string) ([]FileInfo, error) {
	return b.readDir(ctx, p, true)
}

func (b *RemoteBackend) readDir(ctx context.Context, p string, follow bool) ([]FileInfo, error) {
	full, _, err := b.abs("readdir", p)
	if err != nil {
		return nil, err
	}
	var infos []FileInfo
	err = b.do(ctx, CodeLsFailed, "readdir", p, func(o *remoteOp) error {
		list, err := o.sc.ReadDir(full)
		if err != nil {
			return err
		}
		infos = make([]FileInfo, 0, len(list))
		for _, fi := range list {
			link := fi.Mode()&fs.ModeSymlink != 0
			if follow && link {
				if target, err := o.sc.Stat(path.Join(full, fi.Name())); err == nil {
					fi = renamedInfo{target, fi.Name()}
				}
			}
			info := localFileInfo(fi.Name(), fi)
			info.Symlink = link
			infos = append(infos, info)
		}
		slices.SortFunc(infos, func(a, b FileInfo) int { return strings.Compare(a.Name, b.Name) })
		return nil
	})
	return infos, err
}

// renamedInfo is a FileInfo under another name (a link's target, listed
// under the link's name).
type renamedInfo struct {
	fs.FileInfo
	name string
}

func (r renamedInfo) Name() string { return r.name }

// Mkdir creates a directory and any missing parents; an existing directory
// is not an error, an existing file is (EEXIST), as is a file on the way
// (ENOTDIR).
func (b *RemoteBackend) Mkdir(ctx context.Context, p string) error {
	full, _, err := b.abs("mkdir", p)
	if err != nil {
		return err
	}
	return b.do(ctx, CodeWriteFailed, "mkdir", p, func(o *remoteOp) error { return o.mkdirAll(full) })
}

// mkdirAll is MkdirAll over SFTP, with the daemon's errors kept (pkg/sftp's
// own MkdirAll makes up errors that name this side's paths). It does not
// rely on what MKDIR says about an existing directory (daemons differ):
// after a failure, STAT decides.
func (o *remoteOp) mkdirAll(dir string) error {
	err := o.sc.Mkdir(dir)
	if err == nil || sftpCause(err) == errRemoteEscape {
		return err
	}
	fi, serr := o.sc.Stat(dir)
	switch {
	case serr == nil && fi.IsDir():
		return nil
	case serr == nil:
		return syscall.EEXIST // a file is in the way
	case sftpCause(serr) != syscall.ENOENT:
		return serr // ENOTDIR: a file on the way
	case path.Dir(dir) == dir:
		return err
	}
	if err := o.mkdirAll(path.Dir(dir)); err != nil {
		return err
	}
	if err = o.sc.Mkdir(dir); err != nil {
		if fi, serr := o.sc.Stat(dir); serr == nil && fi.IsDir() {
			return nil // made meanwhile by someone else
		}
	}
	return err
}

// Exists reports whether a file or directory exists. A missing path, or
// one under a file, is (false, nil).
func (b *RemoteBackend) Exists(ctx context.Context, p string) (bool, error) {
	full, _, err := b.abs("exists", p)
	if err != nil {
		return false, err
	}
	found := false
	err = b.do(ctx, CodeReadFailed, "exists", p, func(o *remoteOp) error {
		_, err := o.sc.Stat(full)
		switch cause := sftpCause(err); {
		case err == nil:
			found = true
		case cause == syscall.ENOENT, cause == syscall.ENOTDIR:
		default:
			return err
		}
		return nil
	})
	return found, err
}

// Stat describes a file or directory, following symbolic links. Name is
// the base name, "." for the root.
func (b *RemoteBackend) Stat(ctx context.Context, p string) (FileInfo, error) {
	full, rel, err := b.abs("stat", p)
	if err != nil {
		return FileInfo{}, err
	}
	var info FileInfo
	err = b.do(ctx, CodeReadFailed, "stat", p, func(o *remoteOp) error {
		fi, err := o.sc.Stat(full)
		if err != nil {
			return err
		}
		info = localFileInfo(path.Base(rel), fi)
		return nil
	})
	return info, err
}

// Remove deletes a file, a symbolic link (not its target) or, with
// opts.Recursive, a directory tree. With opts.Force a missing path is not
// an error. The workspace root itself is never removed (WRITE_FAILED).
func (b *RemoteBackend) Remove(ctx context.Context, p string, opts RemoveOptions) error {
	full, rel, err := b.abs("rm", p)
	if err != nil {
		return err
	}
	if rel == "." {
		return errFileOp(CodeWriteFailed, "rm", p, errRemoveRoot)
	}
	return b.do(ctx, CodeWriteFailed, "rm", p, func(o *remoteOp) error {
		fi, err := o.sc.Lstat(full)
		switch {
		case err != nil && opts.Force && sftpCause(err) == syscall.ENOENT:
			return nil
		case err != nil:
			return err
		case fi.IsDir() && !opts.Recursive:
			return errIsDirectory
		case fi.IsDir():
			err = o.sc.RemoveAll(full) // lstat-based: links are removed, not followed
		default:
			err = o.sc.Remove(full)
		}
		if err != nil && opts.Force && sftpCause(err) == syscall.ENOENT {
			return nil
		}
		return err
	})
}

// Rename moves a file or directory; both paths are checked, an existing
// destination file is replaced and missing parents of the destination are
// created (by the daemon).
func (b *RemoteBackend) Rename(ctx context.Context, from, to string) error {
	fullFrom, _, err := b.abs("rename", from)
	if err != nil {
		return err
	}
	fullTo, _, err := b.abs("rename", to)
	if err != nil {
		return err
	}
	return b.do(ctx, CodeWriteFailed, "rename", from, func(o *remoteOp) error {
		return o.rename(fullFrom, fullTo)
	})
}

// Touch creates an empty file (with missing parents) if nothing exists at
// the path. It never truncates.
func (b *RemoteBackend) Touch(ctx context.Context, p string) error {
	full, _, err := b.abs("touch", p)
	if err != nil {
		return err
	}
	return b.do(ctx, CodeWriteFailed, "touch", p, func(o *remoteOp) error {
		f, err := o.sc.OpenFile(full, os.O_WRONLY|os.O_CREATE)
		if err != nil {
			return err
		}
		return f.Close()
	})
}
