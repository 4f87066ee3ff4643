package tmpfile

import (
	"errors"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ErrUnsupported says the file system cannot make a file without a name:
// make a named temporary file instead.
var ErrUnsupported = errors.New("tmpfile: unnamed files are not supported here")

// OpenUnnamed opens a new regular file without a name in the directory
// dirfd, for writing (and reading when read is set), with permissions perm
// (less the umask). Only Publish gives it a name; closed before that, it is
// gone. ErrUnsupported when the file system cannot (O_TMPFILE).
func OpenUnnamed(dirfd int, perm uint32, read bool) (int, error) {
	mode := unix.O_WRONLY
	if read {
		mode = unix.O_RDWR
	}
	for {
		fd, err := unix.Openat(dirfd, ".", unix.O_TMPFILE|mode|unix.O_CLOEXEC, perm)
		switch err {
		case nil:
			return fd, nil
		case unix.EINTR:
			continue
		case unix.EOPNOTSUPP, unix.EISDIR, unix.EINVAL: // the file system, or a kernel before 3.11
			return -1, ErrUnsupported
		}
		return -1, err
	}
}

// emptyPathDenied is set once linkat(AT_EMPTY_PATH) has been refused (it
// needs CAP_DAC_READ_SEARCH before Linux 6.10): links then go through
// /proc/self/fd.
var emptyPathDenied atomic.Bool

// link gives the open file fd the name name in the directory dirfd; EEXIST
// when something has that name.
func link(fd, dirfd int, name string) error {
	if !emptyPathDenied.Load() {
		err := ignoringEINTR(func() error { return unix.Linkat(fd, "", dirfd, name, unix.AT_EMPTY_PATH) })
		if err != unix.ENOENT && err != unix.EPERM {
			return err
		}
		emptyPathDenied.Store(true)
	}
	return ignoringEINTR(func() error {
		return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), dirfd, name, unix.AT_SYMLINK_FOLLOW)
	})
}

// Publish gives the unnamed file fd (OpenUnnamed) the name name in the
// directory dirfd, atomically: readers find the old file there or this
// one, complete. With replace unset it first tries to link it there
// directly (a new file); otherwise, or when the name turned out to be
// taken, it links it under a fresh hidden name and renames that over name
// (removing the hidden name when the rename fails). The caller still
// closes fd.
func Publish(fd, dirfd int, name string, replace bool) error {
	if !replace {
		if err := link(fd, dirfd, name); err != unix.EEXIST {
			return err
		}
	}
	// Replacing a file by rename makes some file systems (ext4's
	// auto_da_alloc) start writing the new file's data out inside the
	// rename, which would keep the hidden name in place for milliseconds:
	// start that now, before the name exists.
	_ = unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	for attempt := 0; ; attempt++ {
		tmp := Name()
		err := link(fd, dirfd, tmp)
		if err == unix.EEXIST && attempt < 10 {
			continue
		}
		if err != nil {
			return err
		}
		if err := ignoringEINTR(func() error { return unix.Renameat(dirfd, tmp, dirfd, name) }); err != nil {
			_ = unix.Unlinkat(dirfd, tmp, 0)
			return err
		}
		return nil
	}
}

func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}
