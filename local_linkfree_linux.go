package agentbackend

import (
	"context"
	"os"

	"golang.org/x/sys/unix"
)

var _ linkFreeReader = (*LocalBackend)(nil)

// readLinkFree reads the file p with one openat2 that follows no link
// (RESOLVE_NO_SYMLINKS beneath the root): a link anywhere on the path is
// errLinkChanged. Where openat2 is missing it is Read.
func (b *LocalBackend) readLinkFree(ctx context.Context, p string) ([]byte, error) {
	if noOpenat2.Load() {
		return b.Read(ctx, p)
	}
	if err := b.begin(ctx, CodeReadFailed, "read", p); err != nil {
		return nil, err
	}
	rel, err := b.rel("read", p)
	if err != nil {
		return nil, err
	}
	d, err := b.open(false)
	if err != nil {
		return nil, b.fileErr(CodeReadFailed, "read", p, err)
	}
	fd, err := unix.Openat2(int(d.file.Fd()), rel, &unix.OpenHow{
		Flags:   uint64(readFlags | unix.O_CLOEXEC | unix.O_NOCTTY),
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	})
	b.done(d)
	switch err {
	case nil:
	case unix.ELOOP:
		return nil, errLinkChanged
	case unix.ENOSYS, unix.EPERM:
		noOpenat2.Store(true)
		return b.Read(ctx, p)
	default:
		return nil, b.fileErr(CodeReadFailed, "read", p, &os.PathError{Op: "openat2", Path: rel, Err: err})
	}
	data, err := readOpenFile(os.NewFile(uintptr(fd), rel))
	if err != nil {
		return nil, b.fileErr(CodeReadFailed, "read", p, err)
	}
	return data, nil
}
