package agentbackend

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// noOpenat2 is set once openat2 turns out to be missing (Linux before 5.6)
// or forbidden (a seccomp filter): links are then always followed one
// element at a time.
var noOpenat2 atomic.Bool

// linkFree reports whether rel certainly holds no symbolic link, with one
// openat2 call that refuses to follow any (RESOLVE_NO_SYMLINKS) beneath the
// d. A missing element proves it too: the elements before it were
// walked without meeting a link and nothing after it exists. Any other
// answer means "look element by element".
func (d *dirHandle) linkFree(rel string) bool {
	if noOpenat2.Load() {
		return false
	}
	// After Close the descriptor is -1 (EBADF) and the caller's operation
	// fails on the closed backend anyway.
	fd, err := openat2NoLinks(int(d.file.Fd()), rel)
	switch err {
	case nil:
		unix.Close(fd)
		return true
	case unix.ENOENT, unix.ENOTDIR:
		return true
	case unix.ENOSYS, unix.EPERM:
		noOpenat2.Store(true)
	}
	return false
}

// openat2NoLinks opens rel beneath dirfd as an O_PATH descriptor, following
// no link. Paths shorter than a page are passed from the stack, so the
// check allocates nothing.
func openat2NoLinks(dirfd int, rel string) (int, error) {
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	var buf [512]byte
	if len(rel) >= len(buf) {
		return unix.Openat2(dirfd, rel, &how)
	}
	copy(buf[:], rel)
	for i := range len(rel) {
		if buf[i] == 0 {
			return -1, unix.EINVAL
		}
	}
	buf[len(rel)] = 0
	r, _, errno := unix.Syscall6(unix.SYS_OPENAT2, uintptr(dirfd), uintptr(unsafe.Pointer(&buf[0])),
		uintptr(unsafe.Pointer(&how)), unsafe.Sizeof(how), 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}
