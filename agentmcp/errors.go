package agentmcp

import (
	"errors"
	"syscall"

	ab "github.com/agentbackend/agentbackend"
)

// ToolError is the error of a tool call that failed: a missing file, a path
// outside the workspace, an edit that does not apply, a command that exited
// non-zero. Its message is the text the model sees (over MCP it is the
// result's text with isError set), worded as the MCP filesystem server
// words it where that server has the tool. The backend's *agentbackend.Error,
// when there is one, stays reachable with errors.As and errors.Is.
type ToolError struct {
	Tool    string // the tool's name
	Message string // the text shown to the model
	Err     error  // the cause, if any
}

// Error returns the message.
func (e *ToolError) Error() string { return e.Message }

// Unwrap returns the cause.
func (e *ToolError) Unwrap() error { return e.Err }

// errnoText holds Node.js's (libuv's) name and description of the errors
// a file operation can meet.
var errnoText = map[syscall.Errno][2]string{
	syscall.ENOENT:       {"ENOENT", "no such file or directory"},
	syscall.EISDIR:       {"EISDIR", "illegal operation on a directory"},
	syscall.ENOTDIR:      {"ENOTDIR", "not a directory"},
	syscall.EEXIST:       {"EEXIST", "file already exists"},
	syscall.EACCES:       {"EACCES", "permission denied"},
	syscall.EPERM:        {"EPERM", "operation not permitted"},
	syscall.ENOTEMPTY:    {"ENOTEMPTY", "directory not empty"},
	syscall.ELOOP:        {"ELOOP", "too many symbolic links encountered"},
	syscall.EINVAL:       {"EINVAL", "invalid argument"},
	syscall.EXDEV:        {"EXDEV", "cross-device link not permitted"},
	syscall.ENAMETOOLONG: {"ENAMETOOLONG", "name too long"},
	syscall.ENOSPC:       {"ENOSPC", "no space left on device"},
	syscall.EROFS:        {"EROFS", "read-only file system"},
	syscall.EBUSY:        {"EBUSY", "resource busy or locked"},
	syscall.EMFILE:       {"EMFILE", "too many open files"},
}

// fileError turns the failure of a file operation into the filesystem
// server's message for it:
//
//   - a path that leaves the workspace: "Access denied - path outside
//     allowed directories: <abs> not in <root>", or "... symlink target
//     outside allowed directories ..." when a symbolic link led out;
//   - an operating-system error: Node's "<CODE>: <description>, <syscall>
//     '<abs>'" ("ENOENT: no such file or directory, open '/w/a.txt'"), with
//     "'<from>' -> '<to>'" for rename and no path for EISDIR on a read;
//   - anything else: the error's own message.
//
// syscallName is the system call Node would name: "read" for reads (shown
// as "open", except EISDIR, shown as "read" without a path), "open" for
// writes, "scandir", "stat", "mkdir", "rename". paths are the paths of the
// call as the client gave them (two for rename).
func (t *toolset) fileError(tool string, err error, syscallName string, paths ...string) error {
	var te *ToolError
	if errors.As(err, &te) {
		return err
	}
	if perr := permissionError(tool, err); perr != nil {
		return perr
	}
	msg := err.Error()
	var e *ab.Error
	var errno syscall.Errno
	switch {
	case errors.Is(err, ab.ErrPathEscape):
		p := paths[0]
		if errors.As(err, &e) && len(paths) > 1 && e.Path == paths[1] {
			p = paths[1]
		}
		msg = t.accessDenied(p)
	case errors.As(err, &errno):
		text, ok := errnoText[errno]
		if !ok {
			break
		}
		if syscallName == "read" {
			if errno == syscall.EISDIR { // Node reports no path for this one
				msg = text[0] + ": " + text[1] + ", read"
				break
			}
			syscallName = "open"
		}
		msg = text[0] + ": " + text[1] + ", " + syscallName
		switch {
		case len(paths) > 1:
			msg += " '" + t.abs(paths[0]) + "' -> '" + t.abs(paths[1]) + "'"
		default:
			msg += " '" + t.abs(paths[0]) + "'"
		}
	}
	return &ToolError{Tool: tool, Message: msg, Err: err}
}

// accessDenied is the filesystem server's message for a path that leaves
// the workspace. When the path itself stays inside (by the path rule), a
// symbolic link led out; the backend does not say where to, so the message
// names the link.
func (t *toolset) accessDenied(p string) string {
	if _, err := ab.ResolvePath(t.root, p); err == nil {
		return "Access denied - symlink target outside allowed directories: " + t.abs(p) + " not in " + t.root
	}
	return "Access denied - path outside allowed directories: " + t.abs(p) + " not in " + t.root
}

// reasonError is the tool error for err worded as agent-backend's daemon
// words it: the reason alone ("Command execution failed with exit code 2:
// ..."), without the code, operation and path that err.Error() puts
// before it. Permission refusals keep their own wording (permissionError).
func reasonError(tool string, err error) error {
	if perr := permissionError(tool, err); perr != nil {
		return perr
	}
	msg := err.Error()
	var e *ab.Error
	if errors.As(err, &e) {
		msg = e.Reason()
	}
	return &ToolError{Tool: tool, Message: msg, Err: err}
}

// toolError is a ToolError with a message of this package's own.
func toolError(tool, msg string, cause error) error {
	return &ToolError{Tool: tool, Message: msg, Err: cause}
}
