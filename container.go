package agentbackend

import (
	"context"
	"errors"
	"io"
	"maps"
	"path"
	"strings"
	"sync"

	"github.com/agentbackend/agentbackend/internal/shellfs"
)

// defaultMaxOutput is ContainerConfig.MaxOutputLength when it is zero.
const defaultMaxOutput = 10 << 20

// TypeKubernetes is the type of the kubernetes package's backend: a
// workspace in a Kubernetes pod.
const TypeKubernetes BackendType = "kubernetes"

// ContainerTransport is how a ContainerBackend reaches its container: it
// starts processes there with their standard streams connected. The
// kubernetes package's transport is pods/exec through the API server;
// implement it to put a workspace in any sandbox that can start a process
// with pipes. Everything else (files, scopes, background processes,
// searches) the ContainerBackend builds on it, with /bin/sh and the POSIX
// tools of busybox or coreutils in the container.
type ContainerTransport interface {
	// Start starts cmd in the container and returns once the process is
	// started or its start is under way; a failure to start may then be
	// reported by Wait instead. ctx bounds the start only: once started,
	// the process runs until it exits or Close drops it. The transport
	// copies cmd.Stdin (if not nil) to the process's standard input,
	// closing that at end of input, and the process's standard output and
	// error to cmd.Stdout and cmd.Stderr until they end. The process runs
	// in a process group of its own, as the container runtime's exec
	// makes it (runc makes every exec a session leader).
	Start(ctx context.Context, cmd *ContainerCommand) (ContainerProcess, error)
	// Close releases what the transport holds (and what it created for the
	// backend, such as the container). The backend calls it once, from
	// Close, after its own processes have ended.
	Close() error
}

// ContainerCommand is a process for ContainerTransport.Start to start.
type ContainerCommand struct {
	Argv  []string  // the program and its arguments; Argv[0] is an absolute path
	Stdin io.Reader // nil: no standard input
	// Stdout and Stderr are never nil. A transport may write them from two
	// goroutines at once; when they are one writer, it is safe for that.
	Stdout, Stderr io.Writer
}

// ContainerProcess is a process started by a ContainerTransport.
type ContainerProcess interface {
	// Wait waits until the process's output streams have ended and it has
	// exited, and returns its exit code (128+n after signal n). It may be
	// called once.
	Wait() (exitCode int, err error)
	// Close drops the connection to the process: its input and output end
	// (which may or may not end the process). It may be called any number
	// of times, also while Wait runs.
	Close() error
}

// ContainerTerminals is an optional interface for a ContainerTransport
// that can start a process on a pseudo-terminal in the container; a
// ContainerBackend whose transport lacks it answers ExecOptions.Terminal
// with NOT_IMPLEMENTED. StartTerminal is Start with the process's standard
// streams on a new terminal of the given size, which is its controlling
// terminal (the process leads a session of its own, its group in the
// foreground, so that Ctrl-C typed into cmd.Stdin interrupts it). What the
// terminal shows, both output streams merged, goes to cmd.Stdout; cmd.Stderr
// is not used. cmd.Stdin is never nil and ends only once the process has.
type ContainerTerminals interface {
	StartTerminal(ctx context.Context, cmd *ContainerCommand, rows, cols int) (ContainerTerminal, error)
}

// ContainerTerminal is a process started by ContainerTerminals.StartTerminal.
type ContainerTerminal interface {
	ContainerProcess
	// Resize changes the size of the process's terminal; the kernel tells
	// its foreground process group (SIGWINCH).
	Resize(ctx context.Context, rows, cols int) error
}

// ContainerWatcher is an optional interface for a ContainerTransport whose
// container can become unreachable or disappear underneath the backend (a
// pod deleted or evicted, an API server restarting). NewContainer calls
// Watch once, with the function through which the transport reports the
// backend's new status and why: StatusReconnecting while the container
// cannot be reached for now, StatusConnected when it can again, and
// StatusDisconnected when it is gone for good. From then on every
// operation, those in flight included, fails with CONNECTION_CLOSED
// wrapping the cause, at once.
type ContainerWatcher interface {
	Watch(report func(to Status, cause error))
}

// ContainerConfig configures a ContainerBackend.
type ContainerConfig struct {
	// Type is what the backend's Type reports (TypeKubernetes, say). It is
	// required.
	Type BackendType
	// WorkspaceDir is the workspace root inside the container, an absolute
	// path other than "/"; it is created if missing. Required.
	WorkspaceDir string
	// Env is given to every command, under ExecOptions.Env and the scope's.
	Env map[string]string
	// MaxOutputLength caps the bytes kept of each of a command's stdout and
	// stderr; longer output is cut and ends with a line giving its length.
	// Zero means 10 MiB; negative means no limit.
	MaxOutputLength int
	// AllowDangerous turns off dangerous-command blocking (see
	// CheckCommand). The container is what contains a command; the check
	// only catches mistakes early.
	AllowDangerous bool
	// Safety is the policy commands are checked against; nil means
	// DefaultSafety.
	Safety *SafetyPolicy
	// Background bounds what the backend keeps of its background processes
	// (see Start); the zero value means the defaults.
	Background ProcessConfig
	// HoldStreams says that the container runtime closes a process's
	// standard input as soon as one of its output streams ends, and ends
	// an exec only once every process holding its output has ended, as
	// containerd's CRI (every Kubernetes node) does. Commands then run under
	// a shell that holds their streams open while they run and reports
	// their exit status itself, one process more per command. Docker's
	// engine needs none of this.
	HoldStreams bool

	// envOver is set over every command's environment, over Env and the
	// call's: an allow-list's proxy variables (DockerConfig.Network).
	envOver map[string]string
}

// ContainerBackend is a workspace inside a container that a
// ContainerTransport reaches: the kubernetes package's Backend is one. Every
// file operation and command runs in the container through processes the
// transport starts:
//
//   - Commands run as /bin/sh -c command, with the workspace (or scope)
//     directory as working directory and HOME, in a process group of their
//     own; a Timeout, a cancelled context or Kill ends the whole group.
//   - File operations go through a few long-lived shells in the container
//     (op shells), one fixed shell function per operation with every
//     argument single-quoted; files over 1 MiB move over an exec stream of
//     their own. Whatever moves over a stream is checked on arrival: a write
//     replaces its target only when the length that arrived is the length
//     sent, a read only returns the file's whole length.
//   - Glob and Grep run next to the data: one find lists the tree, grep
//     finds the candidate files, so only those are read out.
//
// Paths are jailed to the workspace by the package's path rule. Symbolic
// links are followed inside the container: they can lead to container paths
// outside the workspace, never to the host. The container is the sandbox;
// the path rule decides what a path means.
//
// A ContainerBackend is safe for concurrent use. Close kills its background
// processes, ends its shells and closes the transport.
type ContainerBackend struct {
	*containerCore // shared with the views of the backend's scopes

	root  string   // this view's directory in the container: WorkspaceDir, or a scope's
	jails []string // a scope's view: WorkspaceDir and each scope level's directory, outermost first; nil for the backend
}

// containerCore is the part of a ContainerBackend that its scopes' views
// share.
type containerCore struct {
	lifecycle

	t         ContainerTransport
	env       map[string]string
	envOver   map[string]string // ContainerConfig.envOver
	maxOutput int
	allowDang bool
	safety    *SafetyPolicy
	shells    *shellfs.Pool
	bg        *processTable

	hold     bool            // ContainerConfig.HoldStreams
	lost     context.Context // cancelled, with the cause, when the container is gone for good
	markLost context.CancelCauseFunc
	lostOnce sync.Once
}

var (
	_ FileBackend    = (*ContainerBackend)(nil)
	_ InfoLister     = (*ContainerBackend)(nil)
	_ ProcessStarter = (*ContainerBackend)(nil)
	_ LinkResolver   = (*ContainerBackend)(nil)
	_ Globber        = (*ContainerBackend)(nil)
	_ Grepper        = (*ContainerBackend)(nil)
)

// NewContainer returns the backend of the workspace in the container that
// t reaches, connected, once the workspace directory exists. The backend
// owns t from then on: its Close closes t, and so does a failed
// NewContainer. It fails with INVALID_CONFIGURATION for a bad configuration,
// MISSING_UTILITIES when the container has no /bin/sh with POSIX tools, and
// EXEC_ERROR when the workspace cannot be created.
func NewContainer(ctx context.Context, t ContainerTransport, cfg ContainerConfig) (*ContainerBackend, error) {
	b, err := newContainer(t, cfg)
	if err != nil {
		return nil, errors.Join(err, t.Close())
	}
	if err := b.setUp(ctx); err != nil {
		b.shells.Close()
		return nil, errors.Join(err, t.Close())
	}
	b.init(cfg.Type, StatusConnected)
	if w, ok := t.(ContainerWatcher); ok {
		w.Watch(b.report)
	}
	return b, nil
}

// validate checks the configuration.
func (cfg *ContainerConfig) validate() error {
	if cfg.Type == "" {
		return errConfig("ContainerConfig.Type is required")
	}
	if !path.IsAbs(cfg.WorkspaceDir) || cleanRoot(cfg.WorkspaceDir) == "/" {
		return errConfig("ContainerConfig.WorkspaceDir must be an absolute path other than /: %q", cfg.WorkspaceDir)
	}
	if _, err := cfg.Background.withDefaults("ContainerConfig.Background"); err != nil {
		return err
	}
	return ValidateEnv(cfg.Env)
}

func newContainer(t ContainerTransport, cfg ContainerConfig) (*ContainerBackend, error) {
	if t == nil {
		return nil, errConfig("NewContainer: the transport is nil")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	bg, _ := cfg.Background.withDefaults("ContainerConfig.Background")
	b := &ContainerBackend{root: cleanRoot(cfg.WorkspaceDir), containerCore: &containerCore{
		t:         t,
		env:       maps.Clone(cfg.Env),
		envOver:   cfg.envOver,
		maxOutput: cfg.MaxOutputLength,
		allowDang: cfg.AllowDangerous,
		safety:    cfg.Safety,
		hold:      cfg.HoldStreams,
		bg:        newProcessTable(bg),
	}}
	b.typ = cfg.Type // for errors before init
	if b.maxOutput == 0 {
		b.maxOutput = defaultMaxOutput
	}
	b.lost, b.markLost = context.WithCancelCause(context.Background())
	b.shells = shellfs.NewPool(b.startShell)
	return b, nil
}

// setUp checks that the container has a shell and makes the workspace.
func (b *ContainerBackend) setUp(ctx context.Context) error {
	reply, err := b.shells.Run(ctx, "ab_mkdir", nil, b.root)
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case err != nil && missingShell(err):
		return &Error{Code: CodeMissingUtilities, Op: "connect", Err: err,
			Message: string(b.typ) + ": cannot run /bin/sh with POSIX tools in the container: " + err.Error()}
	case err != nil:
		return &Error{Code: CodeExecError, Op: "connect", Err: err,
			Message: string(b.typ) + ": cannot run a command in the container: " + err.Error()}
	}
	if reply.Code != 0 {
		return &Error{Code: CodeExecError, Op: "connect",
			Message: string(b.typ) + ": cannot create the workspace " + b.root + ": " + trimText(reply.Text)}
	}
	return nil
}

// missingShell reports a failure to start an op shell that says the
// container has no shell, or not the tools the prelude needs.
func missingShell(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "no such file") || strings.Contains(msg, "not found") ||
		strings.Contains(msg, "prelude failed") || strings.Contains(msg, "executable file")
}

// startShell starts an op shell: a plain /bin/sh reading requests.
func (b *ContainerBackend) startShell(ctx context.Context, stdin io.Reader, output io.Writer) (shellfs.Process, error) {
	return b.t.Start(ctx, &ContainerCommand{Argv: []string{"/bin/sh"}, Stdin: stdin, Stdout: output, Stderr: output})
}

// report is the ContainerWatcher callback.
func (b *containerCore) report(to Status, cause error) {
	if to == StatusDisconnected || to == StatusDestroyed {
		b.lostOnce.Do(func() {
			b.markLost(&Error{Code: CodeConnectionClosed, Op: "connect", Err: cause,
				Message: string(b.typ) + ": the container is gone: " + reasonOf(cause)})
		})
		to = StatusDisconnected
	}
	if b.lost.Err() != nil && to != StatusDisconnected {
		return // gone for good
	}
	b.setStatus(to, cause)
}

func reasonOf(err error) string {
	if err == nil {
		return "no reason given"
	}
	return err.Error()
}

// lostErr returns the CONNECTION_CLOSED error once the container is gone.
func (b *containerCore) lostErr() error {
	if b.lost.Err() == nil {
		return nil
	}
	return context.Cause(b.lost)
}

// bound returns ctx, also cancelled when the container is lost.
func (b *containerCore) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(b.lost, cancel)
	return ctx, func() { stop(); cancel() }
}

// check fails once the backend is closed or its container lost.
func (b *ContainerBackend) check(op string) error {
	if err := b.checkOpen(op); err != nil {
		return err
	}
	return b.lostErr()
}

// RootDir returns the workspace directory inside the container.
func (b *ContainerBackend) RootDir() string { return b.root }

// Scope returns a view of the subdirectory path of the workspace; see
// ScopedBackend.
func (b *ContainerBackend) Scope(path string, cfg *ScopeConfig) (*ScopedBackend, error) {
	return NewScope(b, path, cfg)
}

// Close closes the tracked closers, kills the background processes still
// running (their process groups, as Kill does) and waits for them, ends the
// op shells and closes the transport. It is idempotent.
func (b *ContainerBackend) Close() error {
	if b.jails != nil {
		return nil // a scope's view is released by its scope, never closed
	}
	first, err := b.destroy()
	if !first {
		return nil
	}
	running := b.bg.close()
	for _, p := range running {
		_ = p.ctl.(*containerProc).killWith(errBackendClosed)
	}
	waitAll(running)
	b.shells.Close()
	return errors.Join(err, b.t.Close())
}

// shellRun runs one prelude function in an op shell, failing with the
// container's loss when that is why it failed.
func (b *containerCore) shellRun(ctx context.Context, fn string, input []byte, args ...string) (shellfs.Reply, error) {
	return b.shellRunIn(ctx, nil, nil, fn, input, args...)
}

// shellRunIn is shellRun behind the jail check of roots and paths (see
// shellfs.Pool.RunIn; none: no check).
func (b *containerCore) shellRunIn(ctx context.Context, roots, paths []string, fn string, input []byte, args ...string) (shellfs.Reply, error) {
	if err := b.lostErr(); err != nil {
		return shellfs.Reply{}, err
	}
	ctx, stop := b.bound(ctx)
	defer stop()
	reply, err := b.shells.RunIn(ctx, roots, paths, fn, input, args...)
	if err != nil {
		if lerr := b.lostErr(); lerr != nil {
			return reply, lerr
		}
	}
	return reply, err
}
