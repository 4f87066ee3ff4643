package agentbackend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/agentbackend/agentbackend/internal/sandbox"
)

// Exec runs command as `<shell> -c <command>` in the workspace, contained
// according to the backend's Isolation.
//
// Before anything is spawned: an empty command is EMPTY_COMMAND; unless
// AllowDangerous, a command matching the dangerous patterns is
// DANGEROUS_OPERATION; under software isolation one that looks like it
// leaves the workspace is UNSAFE_COMMAND; opts.Env is checked with
// ValidateEnv; opts.Cwd must name a directory inside the workspace
// (PATH_ESCAPE_ATTEMPT, or EXEC_ERROR when it is missing or not a
// directory).
//
// The working directory is the workspace root or opts.Cwd, and HOME and PWD
// are set to it (inside bubblewrap: its path under sandboxWorkspaceDir). The
// environment is PATH, LANG, LANGUAGE, LC_*, TERM and TMPDIR of this
// process's (all of it with LocalConfig.InheritEnv), then LocalConfig.Env,
// then opts.Env, later ones winning; under bubblewrap TMPDIR is the
// sandbox's private /tmp.
//
// When its shell exits, whatever the command left running is killed, so
// an Exec never leaves a process behind, however it detached (setsid, a
// double fork): under bubblewrap the sandbox's pid namespace holds them
// all; on the host (on Linux) a cgroup v2 of its own does when this
// process can make one (root, or a delegated subtree), and otherwise the
// process group and a tag in the environment (AGENTBE_COMMAND_TAG), which
// a process that clears its environment escapes. opts.Timeout and the
// cancellation of ctx kill all of it and Exec returns at once; the error
// is EXEC_FAILED wrapping context.DeadlineExceeded (timeout) or ctx.Err(),
// returned with the output produced so far.
//
// Each output stream is kept up to MaxOutputLength bytes; the rest is
// counted and dropped, Truncated is set and the kept output ends with
// "\n\n... [Output truncated. Full output was N bytes, showing first M]".
// opts.Stdout and opts.Stderr receive everything, live; Exec returns once
// they have taken all of it, so a writer that blocks holds Exec. A non-zero exit
// returns the result AND an EXEC_FAILED error carrying the exit code and
// stderr (or stdout when stderr is empty); a command killed by a signal
// exits 128+signal, as in the shell. A failure to start is EXEC_ERROR.
//
// A Stdin that is not an *os.File is copied by a goroutine, as os/exec
// does; if that Stdin is still blocked in Read when the command ends, Exec
// returns anyway (after a short grace period) and the goroutine ends when
// the Read returns.
func (b *LocalBackend) Exec(ctx context.Context, command string, opts *ExecOptions) (*ExecResult, error) {
	var o ExecOptions
	if opts != nil {
		o = *opts
	}
	cmd, dir, _, err := b.command(ctx, "exec", command, &o)
	if err != nil {
		return nil, err
	}
	cmd.Stdin = o.Stdin
	stdout := &execCapture{limit: b.maxOutput, live: o.Stdout}
	stderr := &execCapture{limit: b.maxOutput, live: o.Stderr}
	if o.Stdout != nil && sameWriter(o.Stdout, o.Stderr) {
		// One writer fed by two goroutines: serialise, as os/exec does.
		mu := new(sync.Mutex)
		stdout.mu, stderr.mu = mu, mu
	}

	start := time.Now()
	p, err := sandbox.Start(cmd, stdout, stderr)
	b.done(dir)
	if err != nil {
		return nil, b.spawnErr(command, cmd, err)
	}
	b.track(p)
	if o.Timeout > 0 {
		t := time.AfterFunc(o.Timeout, func() { p.Kill(errTimeout) })
		defer t.Stop()
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { p.Kill(ctx.Err()) })
		defer stop()
	}
	state, err := p.Wait()
	b.untrack(p)

	res := &ExecResult{ExitCode: sandbox.ExitCode(state), Duration: time.Since(start)}
	var cut1, cut2 bool
	res.Stdout, cut1 = stdout.result()
	res.Stderr, cut2 = stderr.result()
	res.Truncated = cut1 || cut2
	if err != nil {
		return res, errWait(command, err)
	}
	if cause := p.KillCause(); cause != nil && sandbox.Killed(state) {
		return res, killedErr(TypeLocal, command, res.ExitCode, cause, o.Timeout)
	}
	if res.ExitCode != 0 {
		return res, errExecFailed(command, res.ExitCode, res.Stdout, res.Stderr)
	}
	return res, nil
}

// command checks an Exec or Start call and builds its command; nothing is
// spawned before every check has passed. It returns the handle of the
// directory the command runs in, to be given back (done) once the command
// has started: under bubblewrap the sandbox binds that very directory, by
// descriptor, as its workspace, so a path swapped for a symbolic link
// cannot redirect the mount, and a scope's command sees its scope only.
// It also returns the terminal the command is to run on, if any.
func (b *LocalBackend) command(ctx context.Context, op, command string, o *ExecOptions) (*exec.Cmd, *dirHandle, *Terminal, error) {
	if err := b.checkOpen(op); err != nil {
		return nil, nil, nil, err
	}
	if err := commandCheck(command, b.safety, b.dangerOK, b.isolation == IsolationSoftware); err != nil {
		return nil, nil, nil, err
	}
	if err := ValidateEnv(o.Env); err != nil {
		return nil, nil, nil, err
	}
	term, err := terminalOf(op, o)
	if err != nil {
		return nil, nil, nil, err
	}
	cwd := "."
	if o.Cwd != "" {
		var err error
		if cwd, err = b.rel(op, o.Cwd); err != nil {
			return nil, nil, nil, err
		}
	}
	d, err := b.open(true) // a scope's directory exists for its commands
	if err != nil {
		return nil, nil, nil, b.execDirErr(op, o.Cwd, err)
	}
	if err := b.execDir(d, op, o.Cwd, cwd); err != nil {
		b.done(d)
		return nil, nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		b.done(d)
		return nil, nil, nil, &Error{Code: CodeExecError, Op: op, Command: command, Err: err,
			Message: "Command not started: " + err.Error()}
	}
	env := b.environ(o.Env)
	if term != nil {
		env = append(env, "TERM="+term.Term) // last: it wins
	}
	spec := sandbox.Spec{Shell: b.shell, Command: command, Root: b.root, Cwd: cwd, Env: env, Bwrap: b.bwrap, Terminal: term != nil}
	if b.bwrap != nil {
		if b.netRules != nil {
			b.proxied(&spec, command, o.network)
		}
		spec.RootFD = d.file
		if spec.Masks, err = b.sandboxMasks(ctx, d, o.masker); err != nil {
			b.done(d)
			return nil, nil, nil, err
		}
	}
	return sandbox.Command(spec), d, term, nil
}

// spawnErr reports a command that could not be started.
func (b *LocalBackend) spawnErr(command string, cmd *exec.Cmd, err error) error {
	if b.bwrap != nil && errors.Is(err, fs.ErrNotExist) && cmd.Path == b.bwrap.Path() {
		return &Error{Code: CodeMissingUtilities, Op: "exec", Command: command, Err: err,
			Message: "bwrap command not found. Install bubblewrap: apt install bubblewrap"}
	}
	if errors.Is(err, sandbox.ErrNoSetsid) {
		return &Error{Code: CodeMissingUtilities, Op: "start", Command: command, Err: err,
			Message: "a terminal under bubblewrap needs setsid (util-linux). Install it: apt install util-linux"}
	}
	return &Error{Code: CodeExecError, Op: "exec", Command: command, Err: err,
		Message: "Failed to execute command: " + err.Error()}
}

// errWait reports a failure to wait for a command.
func errWait(command string, err error) error {
	return &Error{Code: CodeExecError, Op: "exec", Command: command, Err: err,
		Message: "Failed to wait for command: " + err.Error()}
}

// execDir validates the working directory rel (ExecOptions.Cwd, as given:
// cwd) below d: through no symbolic link that leads out, an existing
// directory.
func (b *LocalBackend) execDir(d *dirHandle, op, cwd, rel string) error {
	if rel == "." {
		return nil
	}
	fi, err := d.fsys.Stat(rel)
	if err == nil && !fi.IsDir() {
		err = syscall.ENOTDIR
	}
	if err != nil {
		return b.execDirErr(op, cwd, err)
	}
	return nil
}

// execDirErr reports a working directory that cannot be used.
func (b *LocalBackend) execDirErr(op, cwd string, err error) error {
	if isEscape(rootCause(err)) {
		return errPathEscape(op, cwd)
	}
	return b.fileErr(CodeExecError, op, cwd, fmt.Errorf("working directory: %w", rootCause(err)))
}

// environ builds a command's environment: the base (sandbox.BaseEnv: a
// few variables of this process's, or all of them with InheritEnv),
// LocalConfig.Env, the call's. os/exec keeps the last of repeated names.
// sandbox.Command appends HOME and PWD.
func (b *LocalBackend) environ(call map[string]string) []string {
	env := sandbox.BaseEnv(b.inherit, b.bwrap != nil) // a fresh copy, ours to extend
	env = append(env, b.env...)
	for k, v := range call {
		env = append(env, k+"="+v)
	}
	return env
}

// track registers a running command so Close can kill it; a command that
// starts while Close runs is killed here.
func (b *LocalBackend) track(p *sandbox.Process) {
	b.procMu.Lock()
	if b.procs == nil {
		b.procs = make(map[*sandbox.Process]struct{})
	}
	b.procs[p] = struct{}{}
	closed := b.destroyed.Load()
	b.procMu.Unlock()
	if closed {
		p.Kill(errBackendClosed)
	}
}

func (b *LocalBackend) untrack(p *sandbox.Process) {
	b.procMu.Lock()
	delete(b.procs, p)
	b.procMu.Unlock()
}

// sameWriter reports whether two writers are the same comparable value.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil { // not comparable (e.g. a func type)
			same = false
		}
	}()
	return a == b
}

// execCapture keeps the first limit bytes of a stream (all of it when limit
// is negative), counts the rest, and passes everything on to live. It never
// fails, so the command is never stopped by it; an error from live stops
// only the live copy.
type execCapture struct {
	limit   int
	buf     []byte
	total   int64
	live    io.Writer
	liveErr error
	mu      *sync.Mutex // shared with the other stream when both go to one writer
}

func (c *execCapture) Write(p []byte) (int, error) {
	c.total += int64(len(p))
	if c.limit < 0 {
		c.buf = append(c.buf, p...)
	} else if room := c.limit - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	if c.live != nil && c.liveErr == nil {
		if c.mu != nil {
			c.mu.Lock()
			defer c.mu.Unlock()
		}
		_, c.liveErr = c.live.Write(p)
	}
	return len(p), nil
}

// result returns the kept output and whether it was cut, in which case it
// ends with the reference implementation's notice (in bytes, not
// characters).
func (c *execCapture) result() ([]byte, bool) {
	if int64(len(c.buf)) == c.total {
		return c.buf, false
	}
	note := "\n\n... [Output truncated. Full output was " + strconv.FormatInt(c.total, 10) +
		" bytes, showing first " + strconv.Itoa(len(c.buf)) + "]"
	return append(c.buf, note...), true
}
