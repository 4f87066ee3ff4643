//go:build unix

package daemon

import "syscall"

// oDirectory makes an open fail unless it names a directory.
const oDirectory = syscall.O_DIRECTORY
