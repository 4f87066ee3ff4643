package agentbackend

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"strconv"
	"strings"
	"syscall"

	"github.com/pkg/sftp"

	"github.com/agentbackend/agentbackend/internal/sftpbulk"
)

// How a RemoteBackend tells what a failure on the daemon was. SFTP
// (version 3) has status codes for a missing file and a refused permission
// only; every other failure is FAILURE with a message. Both daemons fill
// the message from the OS error: this module's as "<op> <path>:
// <reason>", the reference (Node.js) as "ENOSPC: no space left on device,
// <op> '<path>'". sftpCause reads the errno back out of either, so that an
// error of a Remote operation answers errors.Is(err, syscall.ENOSPC) (or
// fs.ErrNotExist, ...) as the same operation on a LocalBackend does; the
// path in the message is the caller's, never the daemon host's.

// isConnLoss reports whether err says the SSH or SFTP connection went away
// rather than that the operation failed.
func isConnLoss(err error) bool {
	var oe *net.OpError
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, sftp.ErrSSHFxConnectionLost) || errors.Is(err, sftp.ErrSSHFxNoConnection) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.As(err, &oe)
}

// errRemoteEscape stands for the daemon refusing a path that leaves the
// workspace (a symbolic link pointing out).
var errRemoteEscape = errors.New("path escapes the workspace")

// remoteErrnos are the errnos a daemon's message can name: by the symbol
// (the reference's messages start with it) or by the system's text for it
// (Linux's, which Go and Node.js both use).
var remoteErrnos = []struct {
	name, text string
	errno      syscall.Errno
}{
	{"ENOSPC", "no space left on device", syscall.ENOSPC},
	{"EDQUOT", "disk quota exceeded", syscall.EDQUOT},
	{"EROFS", "read-only file system", syscall.EROFS},
	{"ENOENT", "no such file or directory", syscall.ENOENT},
	{"EACCES", "permission denied", syscall.EACCES},
	{"EPERM", "operation not permitted", syscall.EPERM},
	{"EEXIST", "file exists", syscall.EEXIST},
	{"ENOTDIR", "not a directory", syscall.ENOTDIR},
	{"EISDIR", "is a directory", syscall.EISDIR},
	{"ENOTEMPTY", "directory not empty", syscall.ENOTEMPTY},
	{"ELOOP", "too many levels of symbolic links", syscall.ELOOP},
	{"ENAMETOOLONG", "file name too long", syscall.ENAMETOOLONG},
	{"EFBIG", "file too large", syscall.EFBIG},
	{"EXDEV", "invalid cross-device link", syscall.EXDEV},
	{"EBUSY", "device or resource busy", syscall.EBUSY},
	{"EMFILE", "too many open files", syscall.EMFILE},
	{"ENFILE", "too many open files in system", syscall.ENFILE},
	{"EIO", "input/output error", syscall.EIO},
	{"EINVAL", "invalid argument", syscall.EINVAL},
}

// sftpCause turns an SFTP failure into the errno it stands for (or
// errRemoteEscape), or returns err when it names none.
func sftpCause(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, fs.ErrPermission):
		return syscall.EACCES
	}
	msg, ok := statusMessage(err)
	if !ok {
		return err
	}
	if strings.Contains(strings.ToLower(msg), "escape") {
		return errRemoteEscape
	}
	// The reference: "ENOSPC: no space left on device, write '/p'".
	if sym, _, ok := strings.Cut(msg, ":"); ok {
		for _, e := range remoteErrnos {
			if sym == e.name {
				return e.errno
			}
		}
	}
	// This module's daemon (and Go servers): "<op> <path>: <reason>"; the
	// path may hold anything, the reason is after the last ": ".
	reason := strings.ToLower(msg[strings.LastIndex(msg, ": ")+1:])
	reason = strings.TrimSpace(reason)
	for _, e := range remoteErrnos {
		if reason == e.text {
			return e.errno
		}
	}
	lower := strings.ToLower(msg)
	for _, e := range remoteErrnos {
		if strings.Contains(lower, e.text) {
			return e.errno
		}
	}
	return err
}

// statusMessage returns the message of an SFTP status error.
func statusMessage(err error) (string, bool) {
	var be *sftpbulk.StatusError
	if errors.As(err, &be) {
		return be.Msg, true
	}
	var se *sftp.StatusError
	if !errors.As(err, &se) {
		return "", false
	}
	// pkg/sftp keeps the message to itself: `sftp: "<msg>" (<code>)`.
	text := strings.TrimPrefix(se.Error(), "sftp: ")
	if i := strings.LastIndex(text, " ("); i > 0 {
		if msg, err := strconv.Unquote(text[:i]); err == nil {
			return msg, true
		}
	}
	return text, true
}
