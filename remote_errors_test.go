package agentbackend

import (
	"io/fs"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/agentbackend/agentbackend/internal/sftpbulk"
)

// TestSFTPCause: the errno comes back out of either daemon's message, and
// a path that reads like another error does not fool it.
func TestSFTPCause(t *testing.T) {
	for _, c := range []struct {
		msg  string
		want error
	}{
		// This module's daemon: "<op> <path>: <reason>".
		{"write /ws/big.bin: no space left on device", syscall.ENOSPC},
		{"open /ws/file exists/x: not a directory", syscall.ENOTDIR},
		{"rename /ws/no space left on device: file exists", syscall.EEXIST},
		{"rmdir /ws/d: directory not empty", syscall.ENOTEMPTY},
		{"open /ws/d: is a directory", syscall.EISDIR},
		{"open /ws/l: too many levels of symbolic links", syscall.ELOOP},
		{"write /ws/q: disk quota exceeded", syscall.EDQUOT},
		{"open /ws/r: read-only file system", syscall.EROFS},
		{"open /ws/f: too many open files in system", syscall.ENFILE},
		// The reference daemon (Node.js): "<ERRNO>: <text>, <op> '<path>'".
		{"ENOSPC: no space left on device, write", syscall.ENOSPC},
		{"EEXIST: file already exists, mkdir '/ws/file'", syscall.EEXIST},
		{"ENOTEMPTY: directory not empty, rmdir '/ws/is a directory'", syscall.ENOTEMPTY},
		{"EISDIR: illegal operation on a directory, read", syscall.EISDIR},
		{"Path escape attempt blocked", errRemoteEscape},
	} {
		err := &sftpbulk.StatusError{Code: 4, Msg: c.msg}
		assert.Equal(t, c.want, sftpCause(err), "%q", c.msg)
	}
	assert.Equal(t, syscall.ENOENT, sftpCause(fs.ErrNotExist))
	other := &sftpbulk.StatusError{Code: 4, Msg: "something else"}
	assert.Equal(t, error(other), sftpCause(other))
}
