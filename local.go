package agentbackend

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/agentbackend/agentbackend/internal/netproxy"
	"github.com/agentbackend/agentbackend/internal/pathjail"
	"github.com/agentbackend/agentbackend/internal/sandbox"
)

// Isolation selects how LocalBackend contains the commands it runs.
type Isolation string

// The isolation modes of the specification.
const (
	// IsolationAuto (the zero value) uses bubblewrap when it is installed and
	// can create a sandbox on this host, and software isolation otherwise,
	// logging a warning once that names what is missing.
	// LocalBackend.Isolation reports the choice.
	IsolationAuto Isolation = ""
	// IsolationBwrap runs every command in a bubblewrap sandbox that holds
	// no capabilities, whoever runs it (root included): the host's system
	// directories read-only, the workspace (for a scope's command, the
	// scope's directory and nothing else of the workspace) read-write at
	// sandboxWorkspaceDir, a private /tmp and /proc, no host processes, no
	// network but a loopback of its own (see LocalConfig.Network), and,
	// through a scope, its permissions applied inside (paths denied for
	// reading shown empty, for writing read-only). Everything the command
	// starts ends with it. NewLocal fails with MISSING_UTILITIES when bwrap
	// is missing or cannot create such a sandbox here.
	IsolationBwrap Isolation = "bwrap"
	// IsolationSoftware runs commands on the host after a heuristic check
	// that refuses commands that look like they leave the workspace (cd,
	// ../, $HOME, ...) with UNSAFE_COMMAND: a heuristic that a determined
	// command defeats, not a security boundary. Commands can read what a
	// scope's permissions deny to the file API, and reach the host's
	// network.
	IsolationSoftware Isolation = "software"
	// IsolationNone runs commands on the host with no containment, for
	// environments that are sandboxed already (a container, a VM).
	IsolationNone Isolation = "none"
)

// Shell selects the shell commands run in.
type Shell string

// The shells of the specification. Commands run as `<shell> -c <command>`.
const (
	ShellAuto Shell = ""     // /bin/bash if present, else /bin/sh; "auto" means the same
	ShellBash Shell = "bash" // /bin/bash
	ShellSh   Shell = "sh"   // /bin/sh
)

// sandboxWorkspaceDir is where the workspace (or, for a command run
// through a scope, the scope's directory) appears inside a bubblewrap
// sandbox: commands there see their working directory, HOME and PWD under
// it. It is outside /tmp, which is a private tmpfs in the sandbox.
const sandboxWorkspaceDir = sandbox.WorkspaceDir

// DefaultMaxOutputLength is how many bytes of each output stream Exec keeps
// when LocalConfig.MaxOutputLength is zero.
const DefaultMaxOutputLength = 10 << 20

// LocalConfig configures a LocalBackend. Only RootDir is required; the zero
// value of every other field is the safe default.
type LocalConfig struct {
	// RootDir is the workspace directory. It is made absolute and clean,
	// created if missing, and symbolic links in it are resolved once, so the
	// workspace is the real directory (RootDir() reports that path; absolute
	// paths under either spelling are accepted as inside the workspace).
	RootDir string
	// Isolation selects how commands are contained; the zero value is auto.
	Isolation Isolation
	// Shell selects the shell; the zero value is auto.
	Shell Shell
	// AllowDangerous turns off the dangerous-command check (see
	// CheckCommand). The zero value keeps it on.
	AllowDangerous bool
	// Safety is the dangerous-command policy; nil means DefaultSafety.
	Safety *SafetyPolicy
	// MaxOutputLength bounds how many bytes of each of stdout and stderr
	// Exec keeps; the rest is counted, not stored, and the kept output ends
	// with a line giving the full length. 0 means DefaultMaxOutputLength;
	// negative means no limit.
	MaxOutputLength int
	// Env is laid over the base environment for every command; scope and
	// per-call variables go over it. Checked with ValidateEnv.
	Env map[string]string
	// InheritEnv gives commands this process's whole environment as their
	// base, API keys and tokens included. The zero value gives them only
	// PATH, HOME, PWD, LANG, LANGUAGE, LC_*, TERM and TMPDIR (under
	// bubblewrap: /tmp) of it.
	InheritEnv bool
	// Network is what a bubblewrap-sandboxed command reaches: none (the
	// zero value), host, or an allow-list served by a filtering proxy (see
	// Network). A bad value is INVALID_CONFIGURATION. An allow-list needs
	// bubblewrap: with isolation auto NewLocal fails (MISSING_UTILITIES)
	// rather than fall back to software isolation, and with software or
	// none it is INVALID_CONFIGURATION, since commands there use the
	// host's network.
	Network Network
	// Logger receives the backend's warnings (a fallback from bwrap to
	// software isolation, a weaker sandbox than asked for); nil means
	// slog.Default().
	Logger *slog.Logger
	// SandboxReadOnly lists extra host paths to mount read-only, at the same
	// place, inside the bubblewrap sandbox (missing ones are skipped). The
	// specification's sandbox has no /etc, so by default names do not
	// resolve (no /etc/resolv.conf), TLS has no CA certificates and
	// Debian's /usr/bin/awk, a link into /etc/alternatives, is missing. For
	// example: "/etc/alternatives", "/etc/resolv.conf", "/etc/hosts",
	// "/etc/ssl" (names and TLS matter only with NetworkHost; an
	// allow-list binds /etc/ssl/certs itself). Paths must be absolute.
	SandboxReadOnly []string
	// Background bounds what the backend keeps of its background processes
	// (see Start); the zero value means the defaults.
	Background ProcessConfig
}

// LocalBackend is a workspace that is a directory on this host.
//
// File operations go through one os.Root opened on the workspace, so besides
// the path rule (which decides what a path means) the kernel guarantees
// where it may go: a symbolic link inside the workspace that points outside
// it is refused with PATH_ESCAPE_ATTEMPT, for every operation. A scope's
// operations go through a handle of the scope's directory the same way
// (see ScopedBackend). Writes are
// atomic (a temporary file in the same directory, renamed over the target).
//
// Commands run in a shell in the workspace, each in its own process group,
// contained according to the configured Isolation. A LocalBackend is safe
// for concurrent use; Close releases the directory handle and kills the
// commands still running.
type LocalBackend struct {
	*localCore // shared with the views of the backend's scopes

	root  string     // this view's directory: real, absolute, clean; RootDir()
	alias string     // the configured spelling of root, when it differs (symlinks), else ""
	dir   *dirHandle // the workspace's handles; nil in a scope's view
	view  *localJail // a scope's view: where its directory is; nil for the backend
}

// localCore is the part of a LocalBackend that its scopes' views share:
// configuration, status, running commands.
type localCore struct {
	lifecycle

	top       *dirHandle // the workspace's handles
	isolation Isolation
	shell     string // absolute path
	bwrap     *sandbox.Bwrap
	safety    *SafetyPolicy
	dangerOK  bool
	maxOutput int            // < 0: unlimited
	env       []string       // cfg.Env as KEY=value
	inherit   bool           // cfg.InheritEnv
	network   Network        // cfg.Network
	netRules  netproxy.Rules // an allow-list's; nil for none and host
	log       *slog.Logger

	procMu sync.Mutex
	procs  map[*sandbox.Process]struct{} // running commands, killed by Close
	bg     *processTable                 // background processes (Start)

	watches sync.WaitGroup // running watches, which Close waits for

	viewMu sync.Mutex
	views  map[*localJail]struct{} // the open scope views, whose handles Close releases
}

var (
	_ FileBackend = (*LocalBackend)(nil)
	_ InfoLister  = (*LocalBackend)(nil)
)

// NewLocal opens a workspace directory. It fails with INVALID_CONFIGURATION
// for a bad configuration, MISSING_UTILITIES when the requested isolation or
// shell is not available, and WRITE_FAILED when the directory cannot be
// created or opened.
func NewLocal(cfg LocalConfig) (*LocalBackend, error) {
	b := &LocalBackend{localCore: &localCore{safety: cfg.Safety, dangerOK: cfg.AllowDangerous}}
	if err := b.configure(cfg); err != nil {
		return nil, err
	}
	if err := b.openRoot(cfg.RootDir); err != nil {
		return nil, err
	}
	if err := b.chooseIsolation(cfg); err != nil {
		b.dir.close()
		return nil, err
	}
	b.init(TypeLocal, StatusConnected)
	return b, nil
}

// configure checks and records everything that does not touch the disk.
func (b *LocalBackend) configure(cfg LocalConfig) error {
	if strings.TrimSpace(cfg.RootDir) == "" {
		return errConfig("LocalConfig.RootDir is required")
	}
	if strings.IndexByte(cfg.RootDir, 0) >= 0 {
		return errConfig("LocalConfig.RootDir contains a NUL byte")
	}
	switch cfg.Isolation {
	case IsolationAuto, IsolationBwrap, IsolationSoftware, IsolationNone, "auto":
	default:
		return errConfig("LocalConfig.Isolation %q is not one of auto, bwrap, software, none", cfg.Isolation)
	}
	rules, err := cfg.Network.rules("LocalConfig.Network")
	if err != nil {
		return err
	}
	if rules != nil {
		switch cfg.Isolation {
		case IsolationSoftware, IsolationNone:
			return errConfig("LocalConfig.Network %q needs bwrap isolation: under %s isolation commands use the host's network", cfg.Network, cfg.Isolation)
		}
	}
	b.netRules, b.network = rules, cfg.Network
	b.inherit = cfg.InheritEnv
	b.log = cfg.Logger
	if b.log == nil {
		b.log = slog.Default()
	}
	switch cfg.Shell {
	case ShellAuto, "auto":
		b.shell = "/bin/bash"
		if _, err := os.Stat(b.shell); err != nil {
			b.shell = "/bin/sh"
		}
	case ShellBash:
		b.shell = "/bin/bash"
	case ShellSh:
		b.shell = "/bin/sh"
	default:
		return errConfig("LocalConfig.Shell %q is not one of auto, bash, sh", cfg.Shell)
	}
	if _, err := os.Stat(b.shell); err != nil {
		return &Error{Code: CodeMissingUtilities, Op: "config", Err: err,
			Message: fmt.Sprintf("Shell %s not found: %v", b.shell, reason(err))}
	}
	if err := ValidateEnv(cfg.Env); err != nil {
		return err
	}
	for k, v := range cfg.Env {
		b.env = append(b.env, k+"="+v)
	}
	for _, p := range cfg.SandboxReadOnly {
		if !filepath.IsAbs(p) || strings.IndexByte(p, 0) >= 0 {
			return errConfig("LocalConfig.SandboxReadOnly path %q is not an absolute path", p)
		}
	}
	b.maxOutput = cfg.MaxOutputLength
	if b.maxOutput == 0 {
		b.maxOutput = DefaultMaxOutputLength
	}
	bg, err := cfg.Background.withDefaults("LocalConfig.Background")
	if err != nil {
		return err
	}
	b.bg = newProcessTable(bg)
	return nil
}

// openRoot creates the workspace if needed, resolves symbolic links in its
// path once and opens the os.Root every file operation goes through.
func (b *LocalBackend) openRoot(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return errConfig("LocalConfig.RootDir %q: %v", dir, err)
	}
	fail := func(err error) error {
		return &Error{Code: CodeWriteFailed, Op: "mkdir", Path: abs, Err: err,
			Message: fmt.Sprintf("Failed to create root directory: %s: %v", abs, reason(err))}
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist) {
			// A file is where the root or one of its parents should be:
			// the configuration is wrong, no write failed.
			return &Error{Code: CodeInvalidConfiguration, Path: abs, Err: err,
				Message: "LocalConfig.RootDir: " + shorten(abs) + " is not a directory"}
		}
		return fail(err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fail(err)
	}
	fsys, err := os.OpenRoot(real)
	if err != nil {
		return fail(err)
	}
	b.dir, err = newDirHandle(fsys)
	if err != nil {
		return fail(err)
	}
	b.dir.workspace = true
	b.top = b.dir
	b.root = cleanRoot(filepath.ToSlash(real))
	if configured := cleanRoot(filepath.ToSlash(abs)); configured != b.root {
		b.alias = configured
	}
	pathjail.LearnRootEscape(fsys)
	return nil
}

// chooseIsolation resolves auto isolation once, and checks that explicit
// bwrap works. A fallback from auto to software isolation, or a sandbox
// lacking a protection, is logged once per logger and reason.
func (b *LocalBackend) chooseIsolation(cfg LocalConfig) error {
	b.isolation = cfg.Isolation
	if b.isolation == "auto" {
		b.isolation = IsolationAuto
	}
	if b.isolation != IsolationAuto && b.isolation != IsolationBwrap {
		return nil
	}
	bcfg := sandbox.BwrapConfig{ReadOnly: cfg.SandboxReadOnly, HostNetwork: cfg.Network == NetworkHost}
	if b.netRules != nil {
		// Most of what an allow-list lets through is TLS.
		bcfg.ReadOnly = append(slices.Clone(bcfg.ReadOnly), "/etc/ssl/certs")
	}
	bw, err := probeBwrap(b.shell, bcfg)
	if err == nil && b.netRules != nil {
		if nerr := netproxy.CanListenIn(); nerr != nil {
			return &Error{Code: CodeMissingUtilities, Op: "config", Err: nerr,
				Message: "LocalConfig.Network " + string(cfg.Network) + ": the proxy of an allow-list cannot be bound inside the sandbox: " + nerr.Error()}
		}
	}
	if err == nil {
		b.bwrap, b.isolation = bw, IsolationBwrap
		if w := bw.Warning(); w != "" {
			warnOnce(b.log, "agentbackend: the bubblewrap sandbox lacks a protection: "+w)
		}
		return nil
	}
	if b.isolation == IsolationBwrap || b.netRules != nil {
		return err // an allow-list never falls back to the host's network
	}
	warnOnce(b.log, "agentbackend: bubblewrap is not usable ("+err.(*Error).Message+"); commands run with software isolation, a heuristic that a determined command defeats, with the host's network and outside the scopes' permissions")
	b.isolation = IsolationSoftware
	return nil
}

// probeBwrap finds bwrap and returns the sandbox configuration that works
// here, or MISSING_UTILITIES saying why none does.
func probeBwrap(shell string, cfg sandbox.BwrapConfig) (*sandbox.Bwrap, error) {
	path, err := exec.LookPath("bwrap")
	if err != nil {
		return nil, &Error{Code: CodeMissingUtilities, Op: "config", Err: err,
			Message: "bwrap command not found. Install bubblewrap: apt install bubblewrap"}
	}
	bw, err := sandbox.NewBwrap(path, cfg).Probe(shell)
	if err != nil {
		return nil, &Error{Code: CodeMissingUtilities, Op: "config", Err: err,
			Message: "bwrap cannot create a sandbox on this host: " + err.Error()}
	}
	return bw, nil
}

// warned holds the warnings logged once per logger.
var warned sync.Map // warning -> struct{}

type warning struct {
	log *slog.Logger
	msg string
}

// warnOnce logs msg at warning level to log, the first time only.
func warnOnce(log *slog.Logger, msg string) {
	if _, seen := warned.LoadOrStore(warning{log, msg}, struct{}{}); !seen {
		log.Warn(msg)
	}
}

// RootDir returns the workspace directory: absolute, clean, with symbolic
// links resolved.
func (b *LocalBackend) RootDir() string { return b.root }

// Isolation returns the isolation commands actually run with: bwrap,
// software or none, never auto.
func (b *LocalBackend) Isolation() Isolation { return b.isolation }

// Scope returns a view of the subdirectory path, jailed beneath that
// directory: no path, link or (under bubblewrap) command of the scope
// reaches outside it. See ScopedBackend.
func (b *LocalBackend) Scope(path string, cfg *ScopeConfig) (*ScopedBackend, error) {
	return NewScope(b, path, cfg)
}

// Close ("destroy") kills the commands still running, background
// processes included, and waits for them to end; then it closes the
// tracked closers and the workspace handle and moves the status to
// destroyed. Later operations fail with BACKEND_DESTROYED. It is idempotent
// and touches nothing else: the directory and its files stay.
func (b *LocalBackend) Close() error {
	if b.view != nil {
		return nil // a scope's view is released by its scope, never closed
	}
	first, err := b.destroy()
	if !first {
		return nil
	}
	b.procMu.Lock()
	for p := range b.procs {
		p.Kill(errBackendClosed)
	}
	b.procMu.Unlock()
	waitAll(b.bg.close())
	b.watches.Wait() // destroy ended them
	b.viewMu.Lock()
	for j := range b.views {
		j.drop()
	}
	b.viewMu.Unlock()
	return errors.Join(err, b.dir.close())
}

// errBackendClosed is the kill cause of commands ended by Close.
var errBackendClosed = errors.New("backend closed")

// rel applies the path rule to p and returns it relative to the workspace.
// An absolute path under the configured spelling of a symlinked root counts
// as inside, like one under the real path.
func (b *LocalBackend) rel(op, p string) (string, error) {
	if b.alias != "" && strings.HasPrefix(p, b.alias) && (len(p) == len(b.alias) || p[len(b.alias)] == '/') {
		rel, ok := pathjail.Resolve(b.alias, p)
		if !ok {
			return "", errPathEscape(op, p)
		}
		return rel, nil
	}
	return resolve(b.root, op, p)
}

// begin is the prologue of every file operation: closed backends and done
// contexts fail before any work.
func (b *LocalBackend) begin(ctx context.Context, code Code, op, p string) error {
	if err := b.checkOpen(op); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return errFileOp(code, op, p, err)
	}
	return nil
}

// errLinkEscapes is this package's own report of a symbolic link that
// leads out of the workspace (Write follows links itself).
var errLinkEscapes = errors.New("symbolic link escapes the workspace")

func isEscape(cause error) bool {
	return cause == errLinkEscapes || pathjail.IsRootEscape(cause)
}

// fileErr converts a failure of os.Root into the SDK's error for op on the
// caller's path p: PATH_ESCAPE_ATTEMPT when a symbolic link led outside,
// BACKEND_DESTROYED when Close raced with the operation, else code. The
// cause keeps its errno (errors.Is(err, fs.ErrNotExist) works) but names p,
// never the host path.
func (b *LocalBackend) fileErr(code Code, op, p string, err error) error {
	cause := rootCause(err)
	switch {
	case isEscape(cause):
		return errPathEscape(op, p)
	case errors.Is(cause, os.ErrClosed) && b.destroyed.Load():
		return errDestroyed(op, TypeLocal)
	}
	return errFileOp(code, op, p, &fs.PathError{Op: op, Path: p, Err: cause})
}

// rootCause strips the *fs.PathError and *os.LinkError layers, which carry
// internal paths, down to the errno (or other cause) beneath.
func rootCause(err error) error {
	for {
		var pe *fs.PathError
		var le *os.LinkError
		switch {
		case errors.As(err, &pe):
			err = pe.Err
		case errors.As(err, &le):
			err = le.Err
		default:
			return err
		}
	}
}
