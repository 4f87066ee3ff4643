package agentbackend

import (
	"context"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentbackend/agentbackend/internal/pathjail"
)

// ScopeConfig configures a scope. The zero value (or nil) inherits
// everything from the parent.
type ScopeConfig struct {
	// Env is laid over the parent's environment for every command run
	// through the scope; per-call ExecOptions.Env goes over both.
	Env map[string]string
	// Logger receives the scope's operations. Nil inherits the parent
	// scope's logger (a backend itself has none).
	Logger OperationsLogger
	// User names who acts through the scope (a tenant, an agent); it is
	// recorded in log entries. Empty inherits the parent scope's.
	User string
	// Permissions decide which operations the scope allows, denies or asks
	// a human about (see Permissions). They add to the parent scope's: a
	// child can only tighten. Nil adds none; a scope with no permissions
	// anywhere in its chain checks nothing and pays nothing.
	Permissions *Permissions
}

// ScopedBackend is a view of a subdirectory of another backend: its root is
// the parent's root joined with the scope path. It wraps any FileBackend,
// scopes included, and is the one place where environment merging,
// operations logging and permissions (ScopeConfig.Permissions) happen.
//
// The path rule applies with the scope's root: "../user2/secret" from
// scope "users/user1" fails with PATH_ESCAPE_ATTEMPT, although it is inside
// the parent. Where the files are, the backend enforces the scope as a
// jail of its own, so that a symbolic link inside the scope cannot lead out
// of it either, not even to a sibling scope (a link "up -> .." and a read
// of "up/user2/secret" fail with PATH_ESCAPE_ATTEMPT):
//
//   - LocalBackend resolves every operation of the scope beneath a handle
//     of the scope's directory (os.Root and *at system calls), opened
//     beneath the parent's, for the file operations, Glob, Grep, RealPath
//     and the permission checks; under bubblewrap isolation a command of
//     the scope (Exec, Start) gets the scope's directory, bound by
//     descriptor, as its whole workspace: its siblings do not exist in the
//     sandbox. Under isolation none or software a command runs on the host
//     in the scope's directory, and nothing contains it.
//   - RemoteBackend asks this module's daemon for SFTP and exec sessions
//     jailed at the scope (the daemon resolves beneath the scope's
//     directory, and binds only it into bubblewrap). A daemon that refuses
//     (the reference daemon, agent-backend 0.13) gets prefix arithmetic:
//     the path rule on this side, the daemon's workspace jail on the other,
//     so a link inside the scope can reach the rest of that workspace. This
//     is logged once per backend.
//   - ContainerBackend (DockerBackend, the kubernetes package's Backend)
//     resolves each path inside the container and refuses one whose links
//     lead out of the scope's directory. Commands run in the scope's
//     directory but can reach the whole container: a container scope is a
//     jail for the file operations, not for Exec.
//   - CompositeBackend gives a scope inside one route the jail of that
//     route's backend, and a scope above mount points a composite of the
//     jailed views below it.
//   - Nested scopes jail each level beneath its parent's.
//
// A backend without links (MemoryBackend) needs nothing more than the path
// rule. Other FileBackend implementations get the path rule only (prefix
// arithmetic): their scopes are as strong as their own symbolic-link
// handling.
//
// Commands run with the scope root as working directory and HOME. Status is
// the parent's, read live. TrackCloser registers on the backend at the root
// of the chain. The scope directory is created on the first operation that
// writes (Write, Mkdir, Touch, Rename, Exec), once even under concurrent
// calls. Close unregisters the scope from its parent, makes its own
// operations fail and kills the background processes started through it;
// it never closes the parent.
type ScopedBackend struct {
	base      FileBackend    // the backend at the bottom of the chain: type, status, closers; never a scope
	fs        FileBackend    // where operations go: a jailed view of the scope's directory, or base
	at        string         // the scope root's path in fs: "." for the scope's own view
	fsRoot    string         // fs's root relative to base's root
	release   func()         // gives back what this scope's own view holds; nil if none
	registry  *scopeRegistry // where this scope is registered; nil for foreign parents
	scopePath string         // the path given to Scope, cleaned, relative to the parent
	prefix    string         // the scope root relative to base's root
	root      string         // the scope root as an absolute path
	env       map[string]string
	logger    OperationsLogger
	user      string
	perms     *permChain   // nil: no permissions anywhere in the chain
	links     LinkResolver // fs, when it can resolve symbolic links
	closed    atomic.Bool

	rootMu    sync.Mutex
	rootReady atomic.Bool

	unmaskedOnce sync.Once // maskExec's warning that commands escape the permissions

	procMu sync.Mutex
	procs  map[string]*Process // background processes started through this scope

	lifetime // ends with Close: the scope's watches end with it

	scopeRegistry // this scope's own children
}

// NewScope scopes any FileBackend to the subdirectory path. Backends of this
// package call it from their Scope method; other FileBackend
// implementations can too.
func NewScope(parent FileBackend, path string, cfg *ScopeConfig) (*ScopedBackend, error) {
	if s, ok := parent.(*ScopedBackend); ok {
		return s.Scope(path, cfg)
	}
	if parent.Status() == StatusDestroyed {
		return nil, errDestroyed("scope", parent.Type())
	}
	var reg *scopeRegistry
	if r, ok := parent.(interface{ registry() *scopeRegistry }); ok {
		reg = r.registry()
	}
	return newScope(parent, reg, &ScopedBackend{fs: parent, at: ".", fsRoot: ".", prefix: "."}, path, cfg)
}

// scopeOfFile refuses a scope whose directory is a file, which would
// otherwise fail only at its first operation. A missing directory is fine
// (the scope creates it when first written), and so is a backend that is
// not connected yet (a RemoteBackend before its first operation): Scope
// does not connect.
func scopeOfFile(parent *ScopedBackend, rel, path string) error {
	if rel == "." || parent.fs.Status() != StatusConnected {
		return nil
	}
	fi, err := parent.fs.Stat(context.Background(), pathjail.JoinRel(parent.at, rel))
	if err == nil && fi.Mode.IsRegular() { // a link is judged when it is followed, beneath the jail
		return errArgument("scope", path, "not a directory: a scope is a directory")
	}
	return nil
}

// newScope makes a scope of base below parent (a pseudo-scope of the whole
// backend for a backend's own scopes), inheriting its prefix, environment,
// logger, user and permissions.
func newScope(base FileBackend, reg *scopeRegistry, parent *ScopedBackend, path string, cfg *ScopeConfig) (*ScopedBackend, error) {
	if err := checkPath("scope", path); err != nil {
		return nil, err
	}
	rel, ok := pathjail.ValidScope(path)
	if !ok {
		return nil, errPathEscape("scope", path)
	}
	if err := scopeOfFile(parent, rel, path); err != nil {
		return nil, err
	}
	if cfg == nil {
		cfg = &ScopeConfig{}
	}
	if err := ValidateEnv(cfg.Env); err != nil {
		return nil, err
	}
	s := &ScopedBackend{
		base:      base,
		registry:  reg,
		scopePath: rel,
		prefix:    pathjail.JoinRel(parent.prefix, rel),
		env:       mergeEnv(parent.env, cfg.Env),
		logger:    parent.logger,
		user:      parent.user,
	}
	s.root = joinRoot(cleanRoot(base.RootDir()), s.prefix)
	perms, err := parent.perms.extend(cfg.Permissions, s.prefix, s.root)
	if err != nil {
		return nil, err
	}
	s.perms = perms
	s.fs, s.at, s.fsRoot = parent.fs, pathjail.JoinRel(parent.at, rel), parent.fsRoot
	if j, ok := parent.fs.(jailer); ok && s.at != "." {
		if view, release := j.jail(s.at); view != nil {
			s.fs, s.at, s.fsRoot, s.release = view, ".", s.prefix, release
		}
	}
	if err := s.checkNetworkRules(); err != nil {
		if s.release != nil {
			s.release()
		}
		return nil, err
	}
	if lr, ok := s.fs.(LinkResolver); ok {
		s.links = lr
	}
	if cfg.Logger != nil {
		s.logger = cfg.Logger
	}
	if cfg.User != "" {
		s.user = cfg.User
	}
	if s.prefix == "." {
		s.rootReady.Store(true)
	}
	if reg != nil {
		reg.addScope(s)
	}
	return s, nil
}

// Type returns the type of the backend the scope wraps.
func (s *ScopedBackend) Type() BackendType { return s.base.Type() }

// Status returns the parent's status, read live, or destroyed once the
// scope itself is closed.
func (s *ScopedBackend) Status() Status {
	if s.closed.Load() {
		return StatusDestroyed
	}
	return s.base.Status()
}

// OnStatusChange watches the status of the backend at the root of the chain.
func (s *ScopedBackend) OnStatusChange(fn func(StatusChange)) (unsubscribe func()) {
	return s.base.OnStatusChange(fn)
}

// TrackCloser registers c on the backend at the root of the chain.
func (s *ScopedBackend) TrackCloser(c io.Closer) { s.base.TrackCloser(c) }

// Close unregisters the scope from its parent and kills the background
// processes started through it that still run. It closes nothing else: the
// parent keeps running and child scopes become orphaned. Idempotent.
func (s *ScopedBackend) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	if s.registry != nil {
		s.registry.removeScope(s)
	}
	s.killProcesses()
	s.lifetime.end()
	if s.release != nil {
		s.release()
	}
	return nil
}

// RootDir returns the scope root: the parent's root joined with the scope
// path.
func (s *ScopedBackend) RootDir() string { return s.root }

// Path returns the scope root relative to the root of the backend at the
// bottom of the chain ("." when the scope is the whole workspace).
func (s *ScopedBackend) Path() string { return s.prefix }

// Env returns the merged environment the scope gives its commands. The map
// must not be modified.
func (s *ScopedBackend) Env() map[string]string { return s.env }

// Unwrap returns the backend at the bottom of the chain.
func (s *ScopedBackend) Unwrap() FileBackend { return s.base }

// Scope returns a child scope: paths join, environments merge with the
// child's winning, the logger and user are inherited unless set, and the
// child's permissions add to this scope's.
func (s *ScopedBackend) Scope(path string, cfg *ScopeConfig) (*ScopedBackend, error) {
	if err := s.checkOpen("scope"); err != nil {
		return nil, err
	}
	return newScope(s.base, &s.scopeRegistry, s, path, cfg)
}

// checkOpen fails once the scope is closed; the base checks its own state.
func (s *ScopedBackend) checkOpen(op string) error {
	if s.closed.Load() {
		return errDestroyed(op, s.base.Type())
	}
	return nil
}

// inner resolves p against the scope root and returns the path to hand to
// fs: clean and relative to fs's root.
func (s *ScopedBackend) inner(op, p string) (string, error) {
	if err := s.checkOpen(op); err != nil {
		return "", err
	}
	rel, err := resolve(s.root, op, p)
	if err != nil {
		return "", err
	}
	return pathjail.JoinRel(s.at, rel), nil
}

// ensureRoot creates the scope directory before the first operation that
// writes. Concurrent callers wait for one Mkdir; a failed Mkdir is retried by
// the next caller.
func (s *ScopedBackend) ensureRoot(ctx context.Context) error {
	if s.rootReady.Load() {
		return nil
	}
	s.rootMu.Lock()
	defer s.rootMu.Unlock()
	if s.rootReady.Load() {
		return nil
	}
	if err := s.fs.Mkdir(ctx, s.at); err != nil {
		return err
	}
	s.rootReady.Store(true)
	return nil
}

// begin returns the start time of an operation that will be logged, or the
// zero time when nobody logs it, so unlogged operations never read the clock.
func (s *ScopedBackend) begin(op Operation) time.Time {
	if shouldLog(s.logger, op) {
		return time.Now()
	}
	return time.Time{}
}

// log records an operation started at start (zero: not logged), and any
// operation with a notable permission decision (a denial or an ask)
// whatever the logger's mode.
func (s *ScopedBackend) log(start time.Time, e OperationEntry, err error) {
	if start.IsZero() {
		if e.Permission.Access == "" || s.logger == nil {
			return
		}
		start = time.Now()
	}
	e.Time = start
	e.Duration = time.Since(start)
	e.Success = err == nil
	e.Err = err
	e.User = s.user
	e.Workspace = s.root
	s.logger.Log(e)
}

// check checks one access to the path at (relative to fs's root, as inner
// returned it) and returns the real path it leads to, relative to the base
// root. With no permissions it costs one nil check.
func (s *ScopedBackend) check(ctx context.Context, op string, a Access, at, p string, o *opCheck) (string, error) {
	if s.perms == nil {
		return "", nil
	}
	return s.checkPath(ctx, op, pathCheck{access: a, in: s.baseRel(at), p: p}, o)
}

// Read returns a file's contents.
func (s *ScopedBackend) Read(ctx context.Context, p string) ([]byte, error) {
	start := s.begin(OpRead)
	var o opCheck
	data, err := s.read(ctx, p, &o)
	s.log(start, OperationEntry{Operation: OpRead, Path: p, Permission: o.rec}, err)
	return data, err
}

func (s *ScopedBackend) read(ctx context.Context, p string, o *opCheck) ([]byte, error) {
	in, err := s.inner("read", p)
	if err != nil {
		return nil, err
	}
	for rechecks := 0; ; rechecks++ {
		real, err := s.check(ctx, "read", AccessRead, in, p, o)
		if err != nil {
			return nil, err
		}
		lf, ok := s.fs.(linkFreeFS)
		if !ok || !s.judgesRealPath(AccessRead) {
			break
		}
		data, err := lf.readLinkFree(ctx, s.fsPath(real))
		if err == errLinkChanged && rechecks < maxLinkRechecks {
			continue
		}
		if err == errLinkChanged {
			err = &Error{Code: CodeReadFailed, Op: "read", Path: p, Message: "the path's symbolic links kept changing during the read", Err: err}
		}
		return data, withPath(err, in, p)
	}
	data, err := s.fs.Read(ctx, in)
	return data, withPath(err, in, p)
}

// Write creates or replaces a file, creating the scope directory and the
// file's parents as needed.
func (s *ScopedBackend) Write(ctx context.Context, p string, data []byte) error {
	start := s.begin(OpWrite)
	var o opCheck
	err := s.write(ctx, p, data, &o)
	s.log(start, OperationEntry{Operation: OpWrite, Path: p, Permission: o.rec}, err)
	return err
}

func (s *ScopedBackend) write(ctx context.Context, p string, data []byte, o *opCheck) error {
	in, err := s.inner("write", p)
	if err != nil {
		return err
	}
	for rechecks := 0; ; rechecks++ {
		real, err := s.check(ctx, "write", AccessWrite, in, p, o)
		if err != nil {
			return err
		}
		if err := s.ensureRoot(ctx); err != nil {
			return err
		}
		lf, ok := s.fs.(linkFreeFS)
		if !ok || !s.judgesRealPath(AccessWrite) {
			break
		}
		err = lf.writeLinkFree(ctx, s.fsPath(real), data)
		if err == errLinkChanged && rechecks < maxLinkRechecks {
			continue
		}
		if err == errLinkChanged {
			err = &Error{Code: CodeWriteFailed, Op: "write", Path: p, Message: "the path's symbolic links kept changing during the write", Err: err}
		}
		return withPath(err, in, p)
	}
	return withPath(s.fs.Write(ctx, in, data), in, p)
}

// ReadDir returns the sorted names of a directory's children, without the
// entries the scope's permissions hide (see Permissions).
func (s *ScopedBackend) ReadDir(ctx context.Context, p string) ([]string, error) {
	start := s.begin(OpReadDir)
	var o opCheck
	names, err := s.readDir(ctx, p, &o)
	s.log(start, OperationEntry{Operation: OpReadDir, Path: p, Permission: o.rec}, err)
	return names, err
}

func (s *ScopedBackend) readDir(ctx context.Context, p string, o *opCheck) ([]string, error) {
	in, err := s.inner("readdir", p)
	if err != nil {
		return nil, err
	}
	real, err := s.check(ctx, "readdir", AccessList, in, p, o)
	if err != nil {
		return nil, err
	}
	names, err := s.fs.ReadDir(ctx, in)
	if err != nil {
		return nil, withPath(err, in, p)
	}
	if f := s.newEntryFilter(false); !f.noCheck {
		names = slices.DeleteFunc(names, func(name string) bool { return !f.keep(pathjail.JoinRel(real, name)) })
	}
	return names, nil
}

// ReadDirInfo lists a directory with each entry's metadata (see InfoLister),
// without the entries the scope's permissions hide. It is logged as a
// readdir.
func (s *ScopedBackend) ReadDirInfo(ctx context.Context, p string) ([]FileInfo, error) {
	start := s.begin(OpReadDir)
	var o opCheck
	infos, err := s.readDirInfo(ctx, p, &o, readDirInfo)
	s.log(start, OperationEntry{Operation: OpReadDir, Path: p, Permission: o.rec}, err)
	return infos, err
}

// readDirInfo lists p with list (readDirInfo, or listTypes) on the view.
func (s *ScopedBackend) readDirInfo(ctx context.Context, p string, o *opCheck, list dirLister) ([]FileInfo, error) {
	in, err := s.inner("readdir", p)
	if err != nil {
		return nil, err
	}
	real, err := s.check(ctx, "readdir", AccessList, in, p, o)
	if err != nil {
		return nil, err
	}
	infos, err := list(ctx, s.fs, in)
	if err != nil {
		return nil, withPath(err, in, p)
	}
	if f := s.newEntryFilter(false); !f.noCheck {
		infos = slices.DeleteFunc(infos, func(fi FileInfo) bool { return !f.keep(pathjail.JoinRel(real, fi.Name)) })
	}
	return infos, nil
}

// Mkdir creates a directory and its parents.
func (s *ScopedBackend) Mkdir(ctx context.Context, p string) error {
	start := s.begin(OpMkdir)
	var o opCheck
	err := s.mkdir(ctx, p, &o)
	s.log(start, OperationEntry{Operation: OpMkdir, Path: p, Permission: o.rec}, err)
	return err
}

func (s *ScopedBackend) mkdir(ctx context.Context, p string, o *opCheck) error {
	in, err := s.inner("mkdir", p)
	if err != nil {
		return err
	}
	if _, err := s.check(ctx, "mkdir", AccessWrite, in, p, o); err != nil {
		return err
	}
	if err := s.ensureRoot(ctx); err != nil {
		return err
	}
	return withPath(s.fs.Mkdir(ctx, in), in, p)
}

// Exists reports whether a file or directory exists in the scope. A path
// the scope's permissions do not let it read is a PERMISSION_DENIED error,
// not an answer.
func (s *ScopedBackend) Exists(ctx context.Context, p string) (bool, error) {
	start := s.begin(OpExists)
	var o opCheck
	ok, err := s.exists(ctx, p, &o)
	s.log(start, OperationEntry{Operation: OpExists, Path: p, Permission: o.rec}, err)
	return ok, err
}

func (s *ScopedBackend) exists(ctx context.Context, p string, o *opCheck) (bool, error) {
	in, err := s.inner("exists", p)
	if err != nil {
		return false, err
	}
	if _, err := s.check(ctx, "exists", AccessRead, in, p, o); err != nil {
		return false, err
	}
	ok, err := s.fs.Exists(ctx, in)
	return ok, withPath(err, in, p)
}

// Stat describes a file or directory.
func (s *ScopedBackend) Stat(ctx context.Context, p string) (FileInfo, error) {
	start := s.begin(OpStat)
	var o opCheck
	fi, err := s.stat(ctx, p, &o)
	s.log(start, OperationEntry{Operation: OpStat, Path: p, Permission: o.rec}, err)
	return fi, err
}

func (s *ScopedBackend) stat(ctx context.Context, p string, o *opCheck) (FileInfo, error) {
	in, err := s.inner("stat", p)
	if err != nil {
		return FileInfo{}, err
	}
	if _, err := s.check(ctx, "stat", AccessRead, in, p, o); err != nil {
		return FileInfo{}, err
	}
	fi, err := s.fs.Stat(ctx, in)
	if err == nil && in == s.at {
		fi.Name = "." // the scope root is this view's root
	}
	return fi, withPath(err, in, p)
}

// Remove deletes a file, or a directory with opts.Recursive. Unlike a
// backend's own root, the scope's root may be removed (Remove(".") with
// Recursive deletes the scope's directory and everything in it: the way to
// drop a tenant's data); the scope stays usable and recreates its directory
// on the next write or command.
func (s *ScopedBackend) Remove(ctx context.Context, p string, opts RemoveOptions) error {
	start := s.begin(OpDelete)
	var o opCheck
	err := s.remove(ctx, p, opts, &o)
	s.log(start, OperationEntry{Operation: OpDelete, Path: p, Permission: o.rec}, err)
	return err
}

func (s *ScopedBackend) remove(ctx context.Context, p string, opts RemoveOptions, o *opCheck) error {
	in, err := s.inner("rm", p)
	if err != nil {
		return err
	}
	if s.perms != nil {
		if err := s.checkRemove(ctx, s.baseRel(in), p, opts.Recursive, o); err != nil {
			return err
		}
	}
	err = s.fs.Remove(ctx, in, opts)
	if in == s.at {
		// The scope's directory may be gone now: the next write or command
		// creates it again.
		s.rootReady.Store(false)
	}
	return withPath(err, in, p)
}

// Rename moves a file or directory within the scope.
func (s *ScopedBackend) Rename(ctx context.Context, from, to string) error {
	start := s.begin(OpRename)
	var o opCheck
	err := s.rename(ctx, from, to, &o)
	s.log(start, OperationEntry{Operation: OpRename, Path: from, Target: to, Permission: o.rec}, err)
	return err
}

func (s *ScopedBackend) rename(ctx context.Context, from, to string, o *opCheck) error {
	inFrom, err := s.inner("rename", from)
	if err != nil {
		return err
	}
	inTo, err := s.inner("rename", to)
	if err != nil {
		return err
	}
	if s.perms != nil {
		if err := s.checkRename(ctx, s.baseRel(inFrom), s.baseRel(inTo), from, to, o); err != nil {
			return err
		}
	}
	if err := s.ensureRoot(ctx); err != nil {
		return err
	}
	err = s.fs.Rename(ctx, inFrom, inTo)
	return withPath(withPath(err, inFrom, from), inTo, to)
}

// Touch creates an empty file if none exists.
func (s *ScopedBackend) Touch(ctx context.Context, p string) error {
	start := s.begin(OpTouch)
	var o opCheck
	err := s.touch(ctx, p, &o)
	s.log(start, OperationEntry{Operation: OpTouch, Path: p, Permission: o.rec}, err)
	return err
}

func (s *ScopedBackend) touch(ctx context.Context, p string, o *opCheck) error {
	in, err := s.inner("touch", p)
	if err != nil {
		return err
	}
	if _, err := s.check(ctx, "touch", AccessWrite, in, p, o); err != nil {
		return err
	}
	if err := s.ensureRoot(ctx); err != nil {
		return err
	}
	return withPath(s.fs.Touch(ctx, in), in, p)
}
