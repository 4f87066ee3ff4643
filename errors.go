package agentbackend

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Code identifies the kind of failure an *Error reports. The values are the
// error codes of the agent-backend specification, so clients written against
// the TypeScript or Python packages can match on the same strings.
type Code string

// The error codes of the agent-backend specification.
const (
	CodeEmptyCommand         Code = "EMPTY_COMMAND"         // empty command string passed to Exec
	CodeUnsafeCommand        Code = "UNSAFE_COMMAND"        // command failed the workspace-escape check
	CodeExecFailed           Code = "EXEC_FAILED"           // command exited non-zero
	CodeExecError            Code = "EXEC_ERROR"            // command could not be spawned
	CodeReadFailed           Code = "READ_FAILED"           // file read failed
	CodeWriteFailed          Code = "WRITE_FAILED"          // file write failed
	CodeLsFailed             Code = "LS_FAILED"             // directory listing failed
	CodePathEscape           Code = "PATH_ESCAPE_ATTEMPT"   // path escapes the workspace or scope
	CodeMissingUtilities     Code = "MISSING_UTILITIES"     // a required system tool is missing
	CodeInvalidConfiguration Code = "INVALID_CONFIGURATION" // configuration validation failed
	CodeDangerousOperation   Code = "DANGEROUS_OPERATION"   // dangerous command blocked
	CodeConnectionClosed     Code = "CONNECTION_CLOSED"     // connection lost (remote)
	CodeAuthFailed           Code = "AUTH_FAILED"           // the daemon refused the auth token (remote)
	CodeKeyNotFound          Code = "KEY_NOT_FOUND"         // the specification's code for a missing key in memory; MemoryBackend reports the operation's code instead, as LocalBackend does
	CodeNotImplemented       Code = "NOT_IMPLEMENTED"       // operation unsupported by this backend type
)

// Codes this SDK adds to the specification's table.
const (
	// CodeDestroyed reports an operation on a backend (or scope) that was
	// closed. The specification asks for "a clear error" without naming a
	// code; a distinct code lets callers tell "you closed it" apart from a
	// lost connection, which CONNECTION_CLOSED reports.
	CodeDestroyed Code = "BACKEND_DESTROYED"
	// CodeInvalidArgument reports a tool call whose arguments cannot be
	// carried out as given: an edit whose text is not found (or found more
	// than once), a read offset past the end, a bad pattern. The message
	// says what to change.
	CodeInvalidArgument Code = "INVALID_ARGUMENT"
	// CodePermissionDenied reports an operation a scope's Permissions
	// refused: by a Deny rule or default, or by an approver asked because
	// of an Ask. It is checked before the backend is touched, so it says
	// nothing about whether the path exists. The cause is a *Denial naming
	// the rule and its reason; the message says what is not allowed and
	// why, in words meant for the model as much as for the developer.
	CodePermissionDenied Code = "PERMISSION_DENIED"
	// CodeApprovalRequired reports an operation whose rule asks for
	// approval when no approver is configured and the permissions'
	// AskFallback is FallbackError: a caller can tell "needs a human"
	// apart from "not allowed". The cause is a *Denial.
	CodeApprovalRequired Code = "APPROVAL_REQUIRED"
	// CodeResourceLimit reports work a daemon refused because one of its
	// limits is reached: the SSH-WS connections it serves at once
	// (--max-connections), or the sessions of a connection
	// (--max-sessions-per-conn) when another connection could not be
	// opened either. The message names the limit and its flag. Nothing
	// was done; the same call may succeed once other clients finish.
	// (RemoteBackend opens another connection by itself when one
	// connection's sessions are used up, so it reports this only when the
	// daemon also refuses a connection.)
	CodeResourceLimit Code = "RESOURCE_LIMIT"
)

// Error is the one error type every backend returns. Code says what kind of
// failure it is; the other fields say where it happened, when they apply.
//
// Use errors.Is with the sentinels below (errors.Is(err, ErrPathEscape)) or
// errors.As to get the fields. The cause stays reachable through Unwrap, so
// errors.Is(err, fs.ErrNotExist) is true for a missing file on every backend,
// whose code is the operation's on each (READ_FAILED for a read,
// WRITE_FAILED for a remove, LS_FAILED for a listing).
type Error struct {
	Code     Code        // the kind of failure
	Op       string      // the operation: "read", "write", "exec", ...
	Path     string      // the path as the caller gave it, for file operations
	Command  string      // the command, for exec and safety failures
	Backend  BackendType // the backend type, for NOT_IMPLEMENTED and destroyed backends
	ExitCode int         // the exit code, for EXEC_FAILED
	Message  string      // what went wrong, in words (see Reason); empty: the cause's text
	Err      error       // the underlying cause, if any
}

// Error returns the one shape every error of this module has,
// "CODE: op path: reason", leaving out what does not apply:
//
//	READ_FAILED: read notes.txt: no such file or directory
//	PATH_ESCAPE_ATTEMPT: write ../x: path escapes the workspace
//	EXEC_FAILED: exec: Command execution failed with exit code 2: no such file
//	INVALID_CONFIGURATION: LocalConfig.RootDir: /srv/ws/f.txt is a file, not a directory
//
// The path is the caller's (a layer that renames the path, a scope or a
// composite route, renames the message with it). An empty path shows as "",
// a path with control characters is quoted, and a path over 120 bytes is
// shortened in the middle: the Path field keeps it whole. Where there is no
// path, a command the reason does not already name is shown quoted and
// shortened the same way.
func (e *Error) Error() string {
	var sb strings.Builder
	sb.WriteString(string(e.Code))
	sb.WriteString(": ")
	reason := e.Reason()
	if e.Op != "" {
		sb.WriteString(e.Op)
		switch {
		case e.Path != "" || e.Code.pathOp():
			sb.WriteByte(' ')
			sb.WriteString(shownPath(e.Path))
		case e.Command != "" && !strings.Contains(reason, e.Command):
			sb.WriteByte(' ')
			sb.WriteString(strconv.Quote(shorten(e.Command)))
		}
		sb.WriteString(": ")
	}
	sb.WriteString(reason)
	return sb.String()
}

// Reason returns what went wrong, without the code, operation and path that
// Error puts before it: the Message when there is one, else the cause's
// text (for an *fs.PathError only its inner error, since its path is the
// backend's internal one), else a description of the code. It is the text
// to show where the code and path are shown otherwise, as the MCP server
// and the daemon do.
func (e *Error) Reason() string {
	switch {
	case e.Message != "":
		return e.Message
	case e.Code == CodePermissionDenied || e.Code == CodeApprovalRequired:
		return permissionReason(e)
	case e.Err != nil:
		return reason(e.Err)
	}
	return e.Code.describe()
}

// pathOp reports whether errors of code c are about a path even when the
// path is empty (an empty path names the root), so that "" is shown.
func (c Code) pathOp() bool {
	switch c {
	case CodeReadFailed, CodeWriteFailed, CodeLsFailed, CodePathEscape, CodeKeyNotFound:
		return true
	}
	return false
}

// describe is the reason of an error that has neither message nor cause,
// such as the sentinels.
func (c Code) describe() string {
	switch c {
	case CodePathEscape:
		return "path escapes the workspace"
	case CodeKeyNotFound:
		return "no such file or directory"
	case CodeDestroyed:
		return "the backend is destroyed (Close was called)"
	case CodeNotImplemented:
		return "not implemented by this backend"
	case CodeEmptyCommand:
		return "command is empty"
	}
	return strings.ToLower(strings.ReplaceAll(string(c), "_", " "))
}

// maxShown is the longest path or command a message shows whole.
const maxShown = 120

// shownPath is how a message shows path p: "" for the empty path, quoted
// when it holds control characters, shortened past maxShown bytes.
func shownPath(p string) string {
	if p == "" {
		return `""`
	}
	short := shorten(p)
	for _, r := range short {
		if r < ' ' || r == 0x7f || r == utf8.RuneError {
			return strconv.Quote(short)
		}
	}
	return short
}

// shorten cuts the middle out of s when it is longer than maxShown bytes,
// on rune boundaries, saying how long it was.
func shorten(s string) string {
	if len(s) <= maxShown {
		return s
	}
	head, tail := s[:maxShown/2], s[len(s)-maxShown/2+10:]
	for len(head) > 0 && !utf8.RuneStart(s[len(head)]) {
		head = head[:len(head)-1]
	}
	for len(tail) > 0 && !utf8.RuneStart(tail[0]) {
		tail = tail[1:]
	}
	return head + "…" + tail + " (" + strconv.Itoa(len(s)) + " bytes)"
}

// reason returns the part of a cause worth showing: for an *fs.PathError
// only the inner error, because its path is the backend's internal one.
func reason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, ErrPathEscape) matches any path-escape error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinels for errors.Is. Each matches every *Error with its code.
var (
	ErrEmptyCommand         = &Error{Code: CodeEmptyCommand}
	ErrUnsafeCommand        = &Error{Code: CodeUnsafeCommand}
	ErrExecFailed           = &Error{Code: CodeExecFailed}
	ErrExecError            = &Error{Code: CodeExecError}
	ErrReadFailed           = &Error{Code: CodeReadFailed}
	ErrWriteFailed          = &Error{Code: CodeWriteFailed}
	ErrLsFailed             = &Error{Code: CodeLsFailed}
	ErrPathEscape           = &Error{Code: CodePathEscape}
	ErrMissingUtilities     = &Error{Code: CodeMissingUtilities}
	ErrInvalidConfiguration = &Error{Code: CodeInvalidConfiguration}
	ErrDangerous            = &Error{Code: CodeDangerousOperation}
	ErrConnectionClosed     = &Error{Code: CodeConnectionClosed}
	ErrAuthFailed           = &Error{Code: CodeAuthFailed}
	ErrKeyNotFound          = &Error{Code: CodeKeyNotFound}
	ErrNotImplemented       = &Error{Code: CodeNotImplemented}
	ErrDestroyed            = &Error{Code: CodeDestroyed}
	ErrInvalidArgument      = &Error{Code: CodeInvalidArgument}
	ErrPermissionDenied     = &Error{Code: CodePermissionDenied}
	ErrApprovalRequired     = &Error{Code: CodeApprovalRequired}
	ErrResourceLimit        = &Error{Code: CodeResourceLimit}
)

// permissionReason phrases the reason of a permission error from its
// cause, a *Denial: `rule "**/.env" denies read (...)`. A command the
// operation was refused for is named by Error, as its subject.
func permissionReason(e *Error) string {
	if e.Err != nil {
		return e.Err.Error()
	}
	if e.Code == CodeApprovalRequired {
		return "approval required"
	}
	return "permission denied"
}

// ErrorCode returns the code of the first *Error in err's chain, or "" when
// there is none.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// errPathEscape reports a path that leaves the workspace or scope.
func errPathEscape(op, path string) *Error {
	return &Error{Code: CodePathEscape, Op: op, Path: path}
}

// errNotImplemented reports an operation a backend type does not support.
func errNotImplemented(op string, t BackendType) *Error {
	return &Error{Code: CodeNotImplemented, Op: op, Backend: t,
		Message: fmt.Sprintf("not implemented by the %s backend", t)}
}

// errDestroyed reports an operation on a closed backend. It wraps
// fs.ErrClosed so generic code that checks for closed files sees it too.
func errDestroyed(op string, t BackendType) *Error {
	return &Error{Code: CodeDestroyed, Op: op, Backend: t, Err: fs.ErrClosed,
		Message: fmt.Sprintf("%s backend is destroyed (Close was called)", t)}
}

// errConfig reports invalid configuration. The message names the field
// first: "LocalConfig.RootDir: ...".
func errConfig(format string, args ...any) *Error {
	return &Error{Code: CodeInvalidConfiguration, Message: fmt.Sprintf(format, args...)}
}

// errArgument reports tool arguments that cannot be carried out.
func errArgument(op, path, format string, args ...any) *Error {
	return &Error{Code: CodeInvalidArgument, Op: op, Path: path, Message: fmt.Sprintf(format, args...)}
}

// errExecFailed reports a command that exited non-zero. Like the reference
// it carries stderr, or stdout when stderr is empty.
func errExecFailed(command string, exitCode int, stdout, stderr []byte) *Error {
	detail := strings.TrimSpace(string(stderr))
	if detail == "" {
		detail = strings.TrimSpace(string(stdout))
	}
	return &Error{Code: CodeExecFailed, Op: "exec", Command: command, ExitCode: exitCode,
		Message: fmt.Sprintf("Command execution failed with exit code %d: %s", exitCode, detail)}
}

// errFileOp wraps a failure of a file operation on path (as the caller
// gave it). cause is usually an *fs.PathError and stays reachable, so
// errors.Is(err, fs.ErrNotExist) works.
func errFileOp(code Code, op, path string, cause error) *Error {
	return &Error{Code: code, Op: op, Path: path, Err: cause}
}

// withPath returns err with its path renamed from inner to outer when err is
// an *Error about inner: layers that translate paths (scopes, composite
// routes) report the path their caller gave, not the one they passed down.
func withPath(err error, inner, outer string) error {
	e, ok := err.(*Error)
	if !ok || inner == outer || e.Path != inner {
		return err
	}
	c := *e
	c.Path = outer
	return &c
}
