package agentbackend

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Start runs command in the background in the container, checked and
// placed exactly as by Exec (the wrapper, the workspace or opts.Cwd as
// working directory and HOME, the backend's Env under opts.Env). It returns
// once the command runs (the wrapper has reported its process id), so a
// command that cannot start (a missing working directory, no /bin/sh)
// fails here with EXEC_ERROR; see ProcessStarter for what ctx and opts
// mean. Kill, Signal and opts.Timeout act on the command's process group
// inside the container. When the container is lost, its processes end as
// lost (CONNECTION_CLOSED).
//
// opts.Terminal needs a transport that implements ContainerTerminals
// (Docker's does), else it is NOT_IMPLEMENTED. The command then leads a
// session of its own on the terminal: Kill, opts.Timeout and the end of
// the command end the whole session (an interactive shell's jobs in
// process groups of their own too), and Signal also reaches the terminal's
// foreground group.
func (b *ContainerBackend) Start(ctx context.Context, command string, opts *ExecOptions) (*Process, error) {
	var o ExecOptions
	if opts != nil {
		o = *opts
	}
	cwd, env, err := b.prepareExec("start", command, &o)
	if err != nil {
		return nil, err
	}
	if err := b.checkDir(ctx, "start", cwd, o.Cwd); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, errNotStarted(command, err)
	}
	p := newProcess(b.bg, b.typ, command, &o)
	c := &containerProc{b: b, p: p, cwd: o.Cwd, exited: make(chan struct{})}
	p.ctl = c
	term, _ := terminalOf("start", &o) // checked by prepareExec
	var stdout, stderr io.Writer
	if term != nil {
		// One stream, which also carries the wrapper's lines.
		stdout = terminalStream(p, o.Stdout)
		stderr = stdout
	} else {
		stdout, stderr = processStreams(p, o.Stdout, o.Stderr)
	}
	c.exit = newExitLine(stderr)
	c.pid = &pidLine{next: c.exit, found: make(chan struct{}), onPID: c.pidKnown, session: term != nil}
	if !b.bg.add(p) {
		return nil, errDestroyed("start", b.typ)
	}
	stdin := o.Stdin
	if stdin == nil {
		// Process.Stdin; finish closes it when the command has ended, so
		// that later writes fail.
		var r *io.PipeReader
		r, c.input = io.Pipe()
		stdin, p.stdin = r, c.input
	}
	cmd := &ContainerCommand{Argv: b.execArgv(c.exit, term, cwd, env, command), Stdin: stdin, Stdout: stdout, Stderr: c.pid}
	if term != nil {
		// Closing Process.Stdin ends only the writer: the terminal stays
		// until the command ends (run closes the pipe).
		p.stdin, p.term = &terminalInput{w: c.input}, c
		cmd.Stdout, cmd.Stderr = c.pid, nil
		c.tty, err = b.t.(ContainerTerminals).StartTerminal(ctx, cmd, term.Rows, term.Cols)
		if err == nil {
			c.proc = c.tty
		}
	} else {
		c.proc, err = b.t.Start(ctx, cmd)
	}
	if err != nil {
		err = b.spawnErr("start", command, ctx, err)
		p.finish(-1, nil, err)
		b.bg.forget(p)
		if term != nil {
			_ = c.input.Close()
		}
		return nil, err
	}
	if o.Timeout > 0 {
		c.timer = time.AfterFunc(o.Timeout, func() { _ = c.killWith(errTimeout) })
	}
	go c.run()

	select {
	case <-c.pid.found:
		if term != nil {
			// For a container without stty (see containerTerminalSize).
			_ = c.tty.Resize(ctx, term.Rows, term.Cols)
		}
		return p, nil
	case <-p.done:
		if !c.pid.seen() { // it could not start
			b.bg.forget(p)
			return nil, p.err
		}
		return p, nil
	case <-ctx.Done():
		_ = c.killWith(ctx.Err())
		<-p.done
		b.bg.forget(p)
		return nil, errNotStarted(command, ctx.Err())
	}
}

// Processes lists the backend's background processes: the running ones
// and the ended ones not yet collected, oldest first. See ProcessStarter.
func (b *ContainerBackend) Processes() []ProcessInfo { return b.bg.list() }

// Process returns the listed background process with the given ID.
func (b *ContainerBackend) Process(id string) (*Process, bool) { return b.bg.get(id) }

// containerProc is a background command: it waits for it, and kills and
// signals its process group through the op shells.
type containerProc struct {
	b      *ContainerBackend
	p      *Process
	cwd    string // ExecOptions.Cwd as given, for errors
	pid    *pidLine
	exit   *exitLine
	proc   ContainerProcess  // set before run starts
	tty    ContainerTerminal // proc, when the command runs on a terminal
	input  *io.PipeWriter    // the pipe to the command's input, when Process.Stdin writes it
	timer  *time.Timer
	exited chan struct{} // closed when the command has ended

	mu      sync.Mutex
	ended   bool  // the command has ended: nothing to kill any more
	cause   error // why this package kills it
	killing bool  // a killer goroutine was started
	killers sync.WaitGroup
}

// run waits for the command (its output taken in, its exit code known),
// kills what it left in its process group, as Local does (see
// containerExecWrapper), and records the end. A loss of the container ends
// the wait at once.
func (c *containerProc) run() {
	done := waitFor(c.proc)
	var w waited
	select {
	case w = <-done:
		if c.killRequested() == nil {
			c.b.killLeftovers(c.pid)
		}
	case <-c.exit.ended:
		c.mu.Lock()
		c.ended = true // what runs now is left over: Kill has nothing to do
		c.mu.Unlock()
		w = c.b.endGroup(c.pid, done, c.proc)
	case <-c.b.lost.Done():
		_ = c.proc.Close()
		w = <-done
	}
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
	close(c.exited)
	if c.timer != nil {
		c.timer.Stop()
	}
	c.killers.Wait()
	_ = c.proc.Close()
	if c.input != nil {
		_ = c.input.Close() // a terminal's input ends with the command
	}
	w = c.exit.resolve(w)
	lost := c.b.lostErr()
	cause := c.killRequested()
	var killed, failure error
	switch {
	case lost != nil && (w.err != nil || w.code != 0):
		failure = lost
	case w.err != nil && !c.pid.seen():
		failure = c.b.spawnErr("start", c.p.command, context.Background(), w.err)
	case w.err != nil && cause == nil:
		failure = c.b.streamErr(c.p.command, w.err)
	case !c.pid.seen() && w.code != 0:
		c.p.mu.Lock()
		out, _ := c.p.streams[0].all()
		errOut, _ := c.p.streams[1].all()
		c.p.mu.Unlock()
		failure = execStartErr(c.p.command, c.cwd, &ExecResult{Stdout: out, Stderr: errOut, ExitCode: w.code})
	case cause != nil && (w.err != nil || w.code == 128+int(syscall.SIGKILL)):
		killed = cause
	}
	code := w.code
	if w.err != nil {
		code = -1
		if killed != nil {
			code = 128 + int(syscall.SIGKILL)
		}
	}
	c.p.finish(code, killed, failure)
}

func (c *containerProc) killRequested() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

func (c *containerProc) kill() error { return c.killWith(errKilled) }

// killWith records why the command is killed and kills its group, now if
// its PID is known, else as soon as it is (pidKnown).
func (c *containerProc) killWith(cause error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return os.ErrProcessDone
	}
	if c.cause == nil {
		c.cause = cause
	}
	if c.pid.seen() {
		c.startKillerLocked()
	} else if c.proc != nil && errors.Is(cause, errBackendClosed) {
		_ = c.proc.Close() // not started yet: nothing to kill but the connection
	}
	return nil
}

// pidKnown is called by the output goroutine when the PID arrives.
func (c *containerProc) pidKnown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cause != nil && !c.ended {
		c.startKillerLocked()
	}
}

// startKillerLocked starts the goroutine that kills the group until the
// command has ended (a process forked between kill and exit needs another
// kill), and drops the connection when that takes longer than
// containerKillGrace (a process that left the group may hold the output
// open).
func (c *containerProc) startKillerLocked() {
	if c.killing {
		return
	}
	c.killing = true
	c.killers.Add(1)
	go func() {
		defer c.killers.Done()
		ctx, cancel := context.WithTimeout(context.Background(), containerKillGrace)
		defer cancel()
		for {
			_, _ = c.b.shellRun(ctx, c.pid.killFn(), nil, strconv.Itoa(c.pid.pid))
			t := time.NewTimer(100 * time.Millisecond)
			select {
			case <-c.exited:
				t.Stop()
				return
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				_ = c.proc.Close()
				return
			}
		}
	}()
}

// signal sends sig to the command's process group in the container.
func (c *containerProc) signal(sig syscall.Signal) error {
	select {
	case <-c.pid.found:
	case <-c.exited:
		return os.ErrProcessDone
	}
	c.mu.Lock()
	ended := c.ended
	c.mu.Unlock()
	if ended {
		return os.ErrProcessDone
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fn := "ab_signal"
	if c.pid.session {
		fn = "ab_signalterm"
	}
	if _, err := c.b.shellRun(ctx, fn, nil, strconv.Itoa(int(sig)), strconv.Itoa(c.pid.pid)); err != nil {
		return &Error{Code: CodeExecError, Op: "signal", Command: c.p.command, Err: err,
			Message: string(c.b.typ) + ": could not signal the command: " + err.Error()}
	}
	return nil
}

// resize resizes the command's terminal.
func (c *containerProc) resize(rows, cols int) error {
	select {
	case <-c.exited:
		return os.ErrProcessDone
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.tty.Resize(ctx, rows, cols); err != nil {
		select {
		case <-c.exited:
			return os.ErrProcessDone
		default:
		}
		return &Error{Code: CodeExecError, Op: "resize", Command: c.p.command, Err: err,
			Message: string(c.b.typ) + ": could not resize the terminal: " + err.Error()}
	}
	return nil
}
