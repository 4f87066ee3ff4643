package agentbackend

import (
	"context"
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

var _ linkFreeFS = (*LocalBackend)(nil)

// linkFreeHow resolves a path beneath a directory without following any
// link.
const linkFreeResolve = unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS

// readLinkFree reads the file p with one openat2 that follows no link
// (RESOLVE_NO_SYMLINKS beneath the root): a link anywhere on the path is
// errLinkChanged. Where openat2 is missing it is Read.
func (b *LocalBackend) readLinkFree(ctx context.Context, p string) ([]byte, error) {
	if !noOpenat2.Load() {
		data, err := b.readVia(ctx, p, openLinkFree)
		if !errors.Is(err, errNoOpenat2) {
			return data, err
		}
	}
	return b.Read(ctx, p)
}

// errNoOpenat2 is openLinkFree's answer when openat2 turns out to be
// missing or forbidden.
var errNoOpenat2 = errors.New("openat2 is not available")

// openLinkFree opens rel beneath d for reading, following no link.
func openLinkFree(d *dirHandle, rel string) (*os.File, error) {
	fd, err := unix.Openat2(int(d.file.Fd()), rel, &unix.OpenHow{
		Flags:   uint64(readFlags | unix.O_CLOEXEC | unix.O_NOCTTY),
		Resolve: linkFreeResolve,
	})
	switch err {
	case nil:
		return os.NewFile(uintptr(fd), rel), nil
	case unix.ELOOP:
		return nil, errLinkChanged
	case unix.ENOSYS, unix.EPERM:
		noOpenat2.Store(true)
		return nil, errNoOpenat2
	}
	return nil, &os.PathError{Op: "openat2", Path: rel, Err: err}
}

// writeLinkFree writes the file p as Write does, reaching its directory
// with openat2 calls that follow no link and refusing a link in its place
// (errLinkChanged), where Write would write the link's target. Where
// openat2 is missing it is Write.
func (b *LocalBackend) writeLinkFree(ctx context.Context, p string, data []byte) error {
	if noOpenat2.Load() {
		return b.Write(ctx, p, data)
	}
	if err := b.begin(ctx, CodeWriteFailed, "write", p); err != nil {
		return err
	}
	rel, err := b.rel("write", p)
	if err != nil {
		return err
	}
	if rel == "." {
		return b.fileErr(CodeWriteFailed, "write", p, unix.EISDIR)
	}
	d, err := b.open(true)
	if err != nil {
		return b.fileErr(CodeWriteFailed, "write", p, err)
	}
	defer b.done(d)
	dir, name := splitRel(rel)
	dirfd := int(d.file.Fd())
	if dir != "" {
		how := &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: linkFreeResolve}
		fd, err := unix.Openat2(dirfd, dir, how)
		if err == unix.ENOENT {
			if err = d.fsys.MkdirAll(dir, 0o755); err == nil {
				fd, err = unix.Openat2(dirfd, dir, how)
			}
		}
		switch err {
		case nil:
		case unix.ELOOP:
			return errLinkChanged
		case unix.ENOSYS, unix.EPERM:
			noOpenat2.Store(true)
			return b.Write(ctx, p, data)
		default:
			return b.fileErr(CodeWriteFailed, "write", p, err)
		}
		defer unix.Close(fd)
		dirfd = fd
	}
	next, err := writeAt(dirfd, dir, name, data)
	switch {
	case err != nil:
		return b.fileErr(CodeWriteFailed, "write", p, err)
	case next != "":
		return errLinkChanged // a link where the check found a file: writeAt wrote nothing
	}
	return nil
}
