package sandbox

import (
	"math"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// closeInherited marks every descriptor of this process above the standard
// streams close-on-exec, so that a command inherits only its streams and
// the files it is given (os/exec puts those in place itself). Go opens
// its own files close-on-exec, but a descriptor this process inherited
// without the flag (from a supervisor, a shell, a leaky parent) would pass
// on to every command, and one of a directory is a way out of any sandbox
// through /proc/self/fd/N. One system call; the descriptors stay open here.
func closeInherited() {
	if unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC) == nil {
		return
	}
	// Kernels before 5.11: one by one.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
				unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags|unix.FD_CLOEXEC)
			}
		}
	}
}
