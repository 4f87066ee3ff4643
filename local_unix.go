//go:build unix

package agentbackend

import (
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	oNonblock  = syscall.O_NONBLOCK
	oDirectory = syscall.O_DIRECTORY
)

// The process's effective ids, read once: writes compare every replaced
// file's owner with them.
var processUID, processGID = os.Geteuid(), os.Getegid()

// keepOwnerAndMode gives the temporary file of an atomic write the
// permission bits of the file it replaces (the umask applied when it was
// created) and, when they differ from this process's and it is allowed to
// (as root), the owner and group: replacing a user's file from a daemon
// running as root must not hand the file to root.
func keepOwnerAndMode(f *os.File, old fs.FileInfo) error {
	if err := f.Chmod(old.Mode().Perm()); err != nil {
		return err
	}
	if st, ok := old.Sys().(*syscall.Stat_t); ok {
		uid, gid := int(st.Uid), int(st.Gid)
		if uid != processUID || gid != processGID {
			_ = f.Chown(uid, gid) // best effort: only root may give files away
		}
	}
	return nil
}

// dirID identifies a directory: its device and inode.
type dirID struct{ dev, ino uint64 }

func dirIDOf(f *os.File) (dirID, error) {
	fi, err := f.Stat()
	if err != nil {
		return dirID{}, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	return dirID{uint64(st.Dev), uint64(st.Ino)}, nil
}

// holds reports whether the path rel below d (links followed, wherever
// they lead: the answer only compares identities) is the directory id,
// with one fstatat.
func (d *dirHandle) holds(rel string, id dirID) bool {
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstatat(int(d.file.Fd()), rel, &st, 0) }); err != nil {
		return false
	}
	return uint64(st.Dev) == id.dev && uint64(st.Ino) == id.ino
}
