package agentbackend

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
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
	CodeKeyNotFound          Code = "KEY_NOT_FOUND"         // key does not exist (memory)
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
// errors.Is(err, fs.ErrNotExist) is true for a missing file on every backend.
type Error struct {
	Code     Code        // the kind of failure
	Op       string      // the operation: "read", "write", "exec", ...
	Path     string      // the path as the caller gave it, for file operations
	Command  string      // the command, for exec and safety failures
	Backend  BackendType // the backend type, for NOT_IMPLEMENTED and destroyed backends
	ExitCode int         // the exit code, for EXEC_FAILED
	Message  string      // the human-readable message; Error returns it
	Err      error       // the underlying cause, if any
}

// Error returns the message. Errors about a path build it from the fields,
// so a layer that renames the path (a scope, a composite route) renames the
// message with it.
func (e *Error) Error() string {
	switch {
	case e.Message != "":
		return e.Message
	case e.Code == CodePathEscape:
		return "Path escapes scope boundary: " + e.Path
	case e.Code == CodePermissionDenied || e.Code == CodeApprovalRequired:
		return permissionMessage(e)
	case e.Path != "" && e.Err != nil:
		return e.Op + " " + e.Path + ": " + reason(e.Err)
	case e.Err != nil:
		return string(e.Code) + ": " + e.Err.Error()
	default:
		return string(e.Code)
	}
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

// permissionMessage phrases a permission error from its fields, so that a
// layer renaming the path (a composite route) renames the message too:
// "read .env: permission denied: rule "**/.env" denies read (...)".
func permissionMessage(e *Error) string {
	subject := e.Path
	if e.Command != "" {
		subject = fmt.Sprintf("%q", e.Command)
	}
	what := "permission denied"
	if e.Code == CodeApprovalRequired {
		what = "approval required"
	}
	msg := e.Op + " " + displayPath(subject) + ": " + what
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
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

// errPathEscape reports a path that leaves the workspace or scope. The
// message is the reference implementation's, so tools and logs read the same.
func errPathEscape(op, path string) *Error {
	return &Error{Code: CodePathEscape, Op: op, Path: path}
}

// errNotImplemented reports an operation a backend type does not support.
func errNotImplemented(op string, t BackendType) *Error {
	return &Error{Code: CodeNotImplemented, Op: op, Backend: t,
		Message: fmt.Sprintf("Operation '%s' not implemented for %s backend", op, t)}
}

// errDestroyed reports an operation on a closed backend. It wraps
// fs.ErrClosed so generic code that checks for closed files sees it too.
func errDestroyed(op string, t BackendType) *Error {
	return &Error{Code: CodeDestroyed, Op: op, Backend: t, Err: fs.ErrClosed,
		Message: fmt.Sprintf("%s: %s backend is destroyed (Close was called)", op, t)}
}

// errConfig reports invalid configuration.
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
