//go:build unix

package fswatch

import "syscall"

// dirFlags open a directory to watch: it must be one, and not a link.
const dirFlags = syscall.O_DIRECTORY | syscall.O_NOFOLLOW
