// Package agentbackend gives AI-agent code one safe interface to a workspace:
// read, write, list and search files and run commands, whether the workspace
// is a local directory (optionally sandboxed with bubblewrap), process memory,
// a remote host running the agent-backend daemon, a Docker container, or
// several of these routed by path.
//
// Every backend implements FileBackend. Paths follow one rule everywhere (see
// ResolvePath): relative paths and absolute paths inside the workspace are
// used as given, other absolute paths are taken as relative to the workspace,
// and a path that leaves the workspace fails with PATH_ESCAPE_ATTEMPT. Scope
// narrows any backend to a subdirectory, which is how one workspace serves
// many tenants. Every failure is an *Error carrying a code of the
// agent-backend specification.
//
// Backends are safe for concurrent use. Close releases everything a backend
// holds; an operation after Close fails with BACKEND_DESTROYED.
package agentbackend

import (
	"context"
	"io"
	"io/fs"
	"time"
)

// BackendType names the kind of a backend. The values are the reference
// implementation's.
type BackendType string

// The backend types of this SDK.
const (
	TypeLocal     BackendType = "local-filesystem"
	TypeMemory    BackendType = "memory"
	TypeRemote    BackendType = "remote-filesystem"
	TypeDocker    BackendType = "docker"
	TypeComposite BackendType = "composite"
)

// Status is a backend's connection state. Local, memory, Docker and
// composite backends are connected from the start until Close; remote
// backends move through connecting, disconnected and reconnecting too.
type Status string

// The connection states of the specification.
const (
	StatusConnected    Status = "connected"
	StatusConnecting   Status = "connecting"
	StatusDisconnected Status = "disconnected"
	StatusReconnecting Status = "reconnecting"
	StatusDestroyed    Status = "destroyed"
)

// StatusChange describes one status transition.
type StatusChange struct {
	From, To Status
	Time     time.Time
	Err      error // what caused the transition, if anything went wrong
}

// Backend is what every backend has, whatever it stores: a type, a status
// that can be watched, and a Close that releases everything.
type Backend interface {
	// Type names the kind of backend.
	Type() BackendType
	// Status reports the current connection state.
	Status() Status
	// OnStatusChange registers fn to be called on every status transition,
	// synchronously on the goroutine that made it; keep fn short. The
	// returned function unregisters it.
	OnStatusChange(fn func(StatusChange)) (unsubscribe func())
	// TrackCloser registers c to be closed by Close, such as an MCP client
	// session or a resource of the caller's that lives as long as the backend.
	TrackCloser(c io.Closer)
	// Close ("destroy") closes every tracked closer and moves the status to
	// destroyed. It is idempotent. Child scopes are not closed: they stay
	// orphaned and fail their operations from then on.
	Close() error
}

// FileBackend is a workspace: files under a root directory and, where the
// backend supports it, commands run in that directory.
//
// Every path argument follows the path rule of the package documentation.
// Every method is safe for concurrent use.
type FileBackend interface {
	Backend

	// RootDir is the workspace root as the backend sees it (an absolute,
	// slash-separated path).
	RootDir() string
	// Read returns a file's contents.
	Read(ctx context.Context, path string) ([]byte, error)
	// Write creates or replaces a file, creating missing parent directories.
	// A failed write leaves the previous contents in place.
	Write(ctx context.Context, path string, data []byte) error
	// ReadDir returns the names of a directory's immediate children, sorted.
	ReadDir(ctx context.Context, path string) ([]string, error)
	// Mkdir creates a directory and any missing parents; an existing
	// directory is not an error.
	Mkdir(ctx context.Context, path string) error
	// Exists reports whether a file or directory exists. A missing path is
	// (false, nil); an escaping path is an error.
	Exists(ctx context.Context, path string) (bool, error)
	// Stat describes a file or directory.
	Stat(ctx context.Context, path string) (FileInfo, error)
	// Remove deletes a file, or a directory with opts.Recursive. With
	// opts.Force a missing path is not an error.
	Remove(ctx context.Context, path string, opts RemoveOptions) error
	// Rename moves a file or directory; both paths are checked.
	Rename(ctx context.Context, from, to string) error
	// Touch creates an empty file if none exists. It never truncates.
	Touch(ctx context.Context, path string) error
	// Exec runs a shell command in the workspace. A non-zero exit returns
	// the populated result AND an *Error with code EXEC_FAILED. Backends
	// that cannot run commands return NOT_IMPLEMENTED.
	Exec(ctx context.Context, command string, opts *ExecOptions) (*ExecResult, error)
	// Scope returns a view of the subdirectory path (created on first
	// write), whose paths the path rule keeps inside it and which the
	// backend jails where its files are. See ScopedBackend for what each
	// backend enforces.
	Scope(path string, cfg *ScopeConfig) (*ScopedBackend, error)
	// ActiveScopes lists the paths of the live scopes created directly on
	// this backend.
	ActiveScopes() []string
}

// FileInfo describes a file or directory.
type FileInfo struct {
	Name    string      // base name ("." for a workspace root)
	Size    int64       // length in bytes for files; backend-dependent for directories
	Mode    fs.FileMode // permission and type bits (fs.ModeDir for directories)
	ModTime time.Time   // last modification
	IsDir   bool
	// Symlink reports that the entry is a symbolic link. Listings
	// (ReadDirInfo) of Local and Remote describe a link that resolves
	// inside the workspace by its target (Size, Mode and IsDir are the
	// target's, so a link to a directory lists as one); Symlink still says
	// it is a link, so that tree walks do not descend into it and cannot
	// loop.
	Symlink bool
}

// RemoveOptions controls Remove.
type RemoveOptions struct {
	Recursive bool // remove a directory and everything under it
	Force     bool // a missing path is not an error
}

// ExecOptions adjusts one Exec call. The zero value (or nil) runs the command
// in the workspace (or scope) root with the backend's environment.
type ExecOptions struct {
	// Cwd is the working directory, a path inside the workspace under the
	// usual path rule. Empty means the workspace (or scope) root. HOME is set
	// to it.
	Cwd string
	// Env adds variables over the backend's and the scope's. Names must be
	// shell identifiers; loader and shell-startup variables (LD_PRELOAD,
	// BASH_ENV, ...) are refused with INVALID_CONFIGURATION.
	Env map[string]string
	// Stdin, if set, is the command's standard input.
	Stdin io.Reader
	// Stdout and Stderr, if set, receive a live copy of the command's output
	// as it is produced, in addition to what ExecResult keeps.
	Stdout, Stderr io.Writer
	// Timeout, if positive, bounds the run; when it expires every process
	// the command started is killed.
	Timeout time.Duration
	// Terminal, for Start only, runs the command on a pseudo-terminal of
	// this size and type (see Terminal): its standard streams are the
	// terminal, which is its controlling terminal, so programs that want a
	// terminal (REPLs, prompts, TUIs) run as for a person. The output, both
	// streams merged as a terminal shows them with the echo of the input,
	// is Process.Output (ErrorOutput stays empty) and goes to Stdout if
	// set; the input is written to Process.Stdin (Stdin must be nil);
	// Process.Resize resizes it. Exec refuses it with INVALID_ARGUMENT.
	Terminal *Terminal

	// masker computes what a scope's permissions hide or protect in the
	// sandbox (see permissions_sandbox.go).
	masker masker
	// network is the part of the scope the command runs through in its
	// network decisions (see permissions_network.go).
	network *netGate
}

// ExecResult is what a finished command produced.
type ExecResult struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
	// Truncated is true when output went over the backend's
	// MaxOutputLength; the kept output then ends with a line giving the
	// original length.
	Truncated bool
	Duration  time.Duration
}

// InfoLister is an optional interface for backends that can list a
// directory with each entry's metadata in one call, cheaper than ReadDir
// followed by a Stat per entry. Entries are sorted by name. Generic code
// (Ls, FS) uses it when present.
type InfoLister interface {
	ReadDirInfo(ctx context.Context, path string) ([]FileInfo, error)
}

// ResolvePath applies the path rule of the specification to p against the
// workspace root and returns the absolute, slash-separated path it names:
// relative paths join the root, absolute paths inside the root stay as they
// are, other absolute paths are taken as relative to the root. A path that
// leaves the root fails with PATH_ESCAPE_ATTEMPT.
func ResolvePath(root, p string) (string, error) {
	root = cleanRoot(root)
	rel, err := resolve(root, "resolve", p)
	if err != nil {
		return "", err
	}
	return joinRoot(root, rel), nil
}
