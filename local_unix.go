//go:build unix

package agentbackend

import (
	"io/fs"
	"os"
	"syscall"
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
