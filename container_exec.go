package agentbackend

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// containerExecWrapper starts every command of a ContainerBackend, as
// /bin/sh -c wrapper sh <dir> [K=V...] /bin/sh -c <command>. It changes to
// the working directory (failing before anything else runs), reports its
// PID on stderr (a line the backend strips), then becomes the command,
// with the environment set by env, so that values stay data. The PID is
// the process group's: every exec is a session leader in the container,
// and everything the command starts is in that group, which is what a
// timeout or Kill ends. When the command has ended, the backend kills what
// it left in its group (the group outlives its leader while a member
// lives, and its id cannot be reused meanwhile), as Local does.
const containerExecWrapper = `cd -- "$1" || exit 126
shift
printf '%d\n' "$$" >&2
exec env "$@"`

// containerHoldWrapper is containerExecWrapper for a runtime that holds
// streams (ContainerConfig.HoldStreams), as sh -c wrapper sh <token> <dir>
// ...: it stays while the command runs instead of becoming it, so that the
// command's standard input stays open until the command is done, even one
// like `cat > file` that has no output stream of its own. It catches the
// signals a Signal may send so that only the command decides how it ends.
// When the command has ended, it reports the exit status on stderr
// (exitMark and the token, another line the backend strips) and exits;
// the backend then kills what the command left behind, which would
// otherwise keep the exec open. (Nothing kills the group while the wrapper
// lives: under load, that crashes some gVisor sandboxes.) It costs one
// process more per command.
const containerHoldWrapper = `t=$1
shift
cd -- "$1" || exit 126
shift
trap : HUP INT QUIT TERM USR1 USR2 ALRM
printf '%d\n' "$$" >&2
env "$@"
s=$?
printf '\001agentbe-exit-%s %d\n' "$t" "$s" >&2
exit "$s"`

// exitMark starts the line with which containerHoldWrapper reports the
// command's exit status; the exec's token follows, then a space.
const exitMark = "\x01agentbe-exit-"

// containerKillGrace is how long a killed command's output may take to
// close before the connection is dropped.
const containerKillGrace = 5 * time.Second

// containerTerminalSize goes before the wrapper of a command on a
// terminal, as sh -c size+wrapper sh <rows> <cols> ...: it sets the
// terminal's size before the command can ask for it. An exec's initial
// size reaches the terminal only after the start on engines before
// Engine API 1.42 and on Kubernetes (a resize that races with the
// command), and not at all where nothing asks for it. Without stty in the
// container the backend's resize after the start is all there is.
const containerTerminalSize = `stty rows "$1" cols "$2" 2>/dev/null
shift 2
`

// execArgv is the argv that runs command through the wrapper; exit reads
// its exit line, when it writes one. term is the command's terminal, or
// nil.
func (b *containerCore) execArgv(exit *exitLine, term *Terminal, cwd string, env []string, command string) []string {
	argv := make([]string, 0, len(env)+11)
	wrapper := containerExecWrapper
	if b.hold {
		wrapper = containerHoldWrapper
	}
	if term != nil {
		argv = append(argv, "/bin/sh", "-c", containerTerminalSize+wrapper, "sh", strconv.Itoa(term.Rows), strconv.Itoa(term.Cols))
	} else {
		argv = append(argv, "/bin/sh", "-c", wrapper, "sh")
	}
	if b.hold {
		argv = append(argv, exit.token)
	}
	argv = append(argv, cwd)
	argv = append(argv, env...)
	return append(argv, "/bin/sh", "-c", command)
}

// waited is what ContainerProcess.Wait returned.
type waited struct {
	code int
	err  error
}

func waitFor(p ContainerProcess) chan waited {
	ch := make(chan waited, 1)
	go func() {
		code, err := p.Wait()
		ch <- waited{code, err}
	}()
	return ch
}

// Exec runs command with /bin/sh -c inside the container, in the workspace
// root (or opts.Cwd) with HOME set to that directory and the backend's Env
// under opts.Env. Dangerous commands are refused first unless the backend
// allows them. Output is captured (up to MaxOutputLength per stream) and
// copied live to opts.Stdout and opts.Stderr. A non-zero exit returns the
// result AND an EXEC_FAILED error. When opts.Timeout passes or ctx ends, the
// command's process group is killed inside the container and the error
// (EXEC_FAILED, with the partial result) wraps context.DeadlineExceeded or
// context.Canceled. When the container is lost meanwhile, the error is
// CONNECTION_CLOSED.
//
// A Stdin whose Read blocks after the command has ended keeps one goroutine
// until that Read returns, as with os/exec.
func (b *ContainerBackend) Exec(ctx context.Context, command string, opts *ExecOptions) (*ExecResult, error) {
	var o ExecOptions
	if opts != nil {
		o = *opts
	}
	cwd, env, err := b.prepareExec("exec", command, &o)
	if err != nil {
		return nil, err
	}
	if err := b.checkDir(ctx, "exec", cwd, o.Cwd); err != nil {
		return nil, err
	}
	runCtx := ctx
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	start := time.Now()
	stdout, stderr := newCaptures(b.maxOutput, o.Stdout, o.Stderr)
	exit := newExitLine(stderr)
	pid := &pidLine{next: exit, found: make(chan struct{})}
	proc, err := b.t.Start(runCtx, &ContainerCommand{
		Argv: b.execArgv(exit, nil, cwd, env, command), Stdin: o.Stdin, Stdout: stdout, Stderr: pid,
	})
	if err != nil {
		return nil, b.spawnErr("exec", command, runCtx, err)
	}
	defer proc.Close()
	done := waitFor(proc)

	var w waited
	var stopped error // why the command was killed, if it was
	select {
	case w = <-done:
		b.killLeftovers(pid)
	case <-exit.ended:
		w = b.endGroup(pid, done, proc)
	case <-runCtx.Done():
		stopped = runCtx.Err()
		w = b.killExec(pid, done, proc)
	case <-b.lost.Done():
		_ = proc.Close()
		w = <-done
	}
	// The command is done; a Stdin that blocks must not hold anything up.
	_ = proc.Close()
	w = exit.resolve(w)

	res := &ExecResult{Duration: time.Since(start), ExitCode: w.code}
	if w.err != nil {
		res.ExitCode = -1
	}
	res.Stdout, res.Truncated = stdout.result()
	var cut bool
	res.Stderr, cut = stderr.result()
	res.Truncated = res.Truncated || cut

	switch {
	case stopped != nil:
		return res, killedErr(b.typ, command, res.ExitCode, stopped, o.Timeout)
	case b.lostErr() != nil && (w.err != nil || w.code != 0):
		return res, b.lostErr()
	case w.err != nil && !pid.seen():
		return nil, b.spawnErr("exec", command, runCtx, w.err)
	case w.err != nil:
		return res, b.streamErr(command, w.err)
	case !pid.seen() && w.code != 0:
		// The wrapper could not change to the working directory, or there
		// is no /bin/sh: the message says which.
		return nil, execStartErr(command, o.Cwd, res)
	case w.code != 0:
		return res, errExecFailed(command, w.code, res.Stdout, res.Stderr)
	}
	return res, nil
}

// prepareExec checks an Exec or Start call before anything runs and
// returns the working directory and environment of the command.
func (b *ContainerBackend) prepareExec(op, command string, o *ExecOptions) (cwd string, env []string, err error) {
	if err := b.check(op); err != nil {
		return "", nil, err
	}
	if err := commandCheck(command, b.safety, b.allowDang, false); err != nil {
		return "", nil, err
	}
	if err := ValidateEnv(o.Env); err != nil {
		return "", nil, err
	}
	term, err := terminalOf(op, o)
	if err != nil {
		return "", nil, err
	}
	if _, ok := b.t.(ContainerTerminals); term != nil && !ok {
		return "", nil, errNotImplemented("start on a terminal", b.typ)
	}
	cwd = b.root
	if o.Cwd != "" {
		rel, err := resolve(b.root, op, o.Cwd)
		if err != nil {
			return "", nil, err
		}
		cwd = joinRoot(b.root, rel)
	}
	merged := mergeEnv(b.env, o.Env)
	if b.envOver != nil {
		merged = mergeEnv(merged, b.envOver)
	}
	if term != nil {
		merged = mergeEnv(merged, map[string]string{"TERM": term.Term})
	}
	env = make([]string, 0, len(merged)+1)
	for _, k := range slices.Sorted(maps.Keys(merged)) {
		if k != "HOME" {
			env = append(env, k+"="+merged[k])
		}
	}
	env = append(env, "HOME="+cwd) // HOME is the working directory, as everywhere
	return cwd, env, nil
}

// killExec kills the process group of a command whose context ended and
// waits (boundedly) for its output to close; then it drops the connection.
func (b *ContainerBackend) killExec(pid *pidLine, done chan waited, proc ContainerProcess) waited {
	select {
	case w := <-done: // it ended on its own just then
		return w
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), containerKillGrace)
	defer cancel()
	// The PID is the first thing the command prints; it may still be on
	// its way, or the command may have ended meanwhile.
	select {
	case <-pid.found:
	case w := <-done:
		return w
	case <-ctx.Done():
		_ = proc.Close()
		return <-done
	}
	for {
		_, _ = b.shellRun(ctx, pid.killFn(), nil, strconv.Itoa(pid.pid))
		select {
		case w := <-done:
			return w
		case <-time.After(100 * time.Millisecond):
			// A process forked between kill and exit: kill again.
		case <-ctx.Done():
			_ = proc.Close()
			return <-done
		}
	}
}

// leftoverGrace is how long an exec whose command has ended may take to
// end by itself before what the command left behind is killed.
const leftoverGrace = 50 * time.Millisecond

// endGroup ends the exec of a command that has ended (its hold wrapper said
// so): the wrapper exits at once, and the exec ends with it unless what
// the command left running holds the output open. Those leftovers are
// killed either way; then endGroup waits (boundedly) for the exec to end,
// and drops the connection when it does not.
func (b *containerCore) endGroup(pid *pidLine, done chan waited, proc ContainerProcess) waited {
	t := time.NewTimer(leftoverGrace)
	defer t.Stop()
	select {
	case w := <-done:
		b.killLeftovers(pid)
		return w
	case <-t.C:
	}
	b.killLeftovers(pid)
	ctx, cancel := context.WithTimeout(context.Background(), containerKillGrace)
	defer cancel()
	select {
	case w := <-done:
		return w
	case <-ctx.Done():
		_ = proc.Close()
		return <-done
	}
}

// killLeftovers kills what a command that has ended left in its process
// group (nothing, usually; a command that never started left nothing).
func (b *containerCore) killLeftovers(pid *pidLine) {
	if !pid.seen() || b.lostErr() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), containerKillGrace)
	defer cancel()
	_, _ = b.shellRun(ctx, pid.killFn(), nil, strconv.Itoa(pid.pid))
}

// spawnErr reports a command that could not be started.
func (b *ContainerBackend) spawnErr(op, command string, ctx context.Context, err error) error {
	if lerr := b.lostErr(); lerr != nil {
		return lerr
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return &Error{Code: CodeExecError, Op: op, Command: command, Err: err,
		Message: string(b.typ) + ": could not start the command: " + err.Error()}
}

// streamErr reports a command whose output broke off.
func (b *ContainerBackend) streamErr(command string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeConnectionClosed, Op: "exec", Command: command, Err: err,
		Message: string(b.typ) + ": lost the command's output: " + err.Error()}
}

// trimText is a tool's message as one trimmed string.
func trimText(text []byte) string { return strings.TrimSpace(string(text)) }
