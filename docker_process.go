package agentbackend

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

var _ ProcessStarter = (*DockerBackend)(nil)

// Start runs command in the background in the container: an exec that is
// not waited on, checked and placed exactly as by Exec (/bin/sh -c, the
// workspace or opts.Cwd as working directory and HOME, the backend's Env
// under opts.Env). It returns once the command runs (its wrapper has
// reported its process id), so a command the engine cannot start (a
// missing working directory, no /bin/sh) fails here with EXEC_ERROR; see
// ProcessStarter for what ctx and opts mean. Kill, Signal and opts.Timeout
// act on the command's process group inside the container; the exit code
// comes from the engine's exec inspect.
//
// The output arrives over the exec's attach connection; a process that
// leaves the group (setsid) and keeps the output open does not hold a
// killed process up longer than a few seconds: the connection is dropped.
func (b *DockerBackend) Start(ctx context.Context, command string, opts *ExecOptions) (*Process, error) {
	var o ExecOptions
	if opts != nil {
		o = *opts
	}
	cwd, envList, err := b.prepareExec("start", command, &o)
	if err != nil {
		return nil, err
	}
	if err := b.checkDir(ctx, "start", cwd, o.Cwd); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, errNotStarted(command, err)
	}
	p := newProcess(b.bg, TypeDocker, command, &o)
	c := &dockerProc{b: b, p: p, cwd: o.Cwd, exited: make(chan struct{})}
	p.ctl = c
	stdout, stderr := processStreams(p, o.Stdout, o.Stderr)
	c.pid = &pidLine{next: stderr, found: make(chan struct{}), onPID: c.pidKnown}
	if !b.bg.add(p) {
		return nil, errDestroyed("start", TypeDocker)
	}
	fail := func(err error) (*Process, error) {
		p.finish(-1, nil, err)
		b.bg.forget(p)
		return nil, err
	}

	created, err := b.cli.ContainerExecCreate(ctx, b.id, container.ExecOptions{
		User:         b.user,
		AttachStdin:  true,
		AttachStdout: true,
		AttachStderr: true,
		Env:          envList,
		WorkingDir:   cwd,
		Cmd:          []string{"/bin/sh", "-c", dockerExecWrapper, "sh", command},
	})
	if err != nil {
		return fail(b.execSpawnErr(command, ctx, err))
	}
	if err := ctx.Err(); err != nil {
		return fail(errNotStarted(command, err))
	}
	if c.killRequested() != nil { // Close ran meanwhile
		return fail(errDestroyed("start", TypeDocker))
	}
	// Not ctx: the connection carries the process's output for its life.
	hr, err := b.cli.ContainerExecAttach(context.WithoutCancel(ctx), created.ID, container.ExecAttachOptions{})
	if err != nil {
		return fail(b.execSpawnErr(command, ctx, err))
	}
	c.hr, c.execID = hr, created.ID
	if o.Stdin != nil {
		go func() { // ends when Stdin does, or at its first write after the end
			_, _ = io.Copy(hr.Conn, o.Stdin)
			_ = hr.CloseWrite()
		}()
	} else {
		p.stdin = &dockerStdin{hr: hr}
	}
	if o.Timeout > 0 {
		c.timer = time.AfterFunc(o.Timeout, func() { _ = c.killWith(errTimeout) })
	}
	go c.run(stdout)

	select {
	case <-c.pid.found:
		return p, nil
	case <-p.done:
		if !c.pid.seen() { // the engine could not start it
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
func (b *DockerBackend) Processes() []ProcessInfo { return b.bg.list() }

// Process returns the listed background process with the given ID.
func (b *DockerBackend) Process(id string) (*Process, bool) { return b.bg.get(id) }

// closeProcesses kills the running background processes and waits for
// them, before the op shells the kills go through are closed.
func (b *DockerBackend) closeProcesses() {
	running := b.bg.close()
	for _, p := range running {
		_ = p.ctl.(*dockerProc).killWith(errBackendClosed)
	}
	waitAll(running)
}

func errNotStarted(command string, err error) error {
	return &Error{Code: CodeExecError, Op: "start", Command: command, Err: err,
		Message: "Command not started: " + err.Error()}
}

// dockerProc is a background exec: it reads the output, and kills and
// signals the command's process group through the op shells.
type dockerProc struct {
	b      *DockerBackend
	p      *Process
	cwd    string // ExecOptions.Cwd as given, for errors
	pid    *pidLine
	hr     types.HijackedResponse // set before run starts
	execID string
	timer  *time.Timer
	exited chan struct{} // closed when the command has ended

	mu      sync.Mutex
	ended   bool  // the command has ended: nothing to kill any more
	cause   error // why this package kills it
	killing bool  // a killer goroutine was started
	killers sync.WaitGroup
}

// run copies the output until the stream ends, waits for the command to
// end (a command may close its output and go on), then kills what it left
// in its process group, as Local does, and records the end.
func (c *dockerProc) run(stdout io.Writer) {
	_, streamErr := stdcopy.StdCopy(stdout, c.pid, c.hr.Reader)
	code, err := c.awaitExit()
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
	close(c.exited)
	if c.timer != nil {
		c.timer.Stop()
	}
	c.killers.Wait()
	c.hr.Close()
	if c.pid.seen() {
		// The group outlives its leader while a member lives, and its id
		// cannot be reused meanwhile: this reaches exactly the leftovers.
		ctx, cancel := context.WithTimeout(context.Background(), dockerKillGrace)
		_, _ = c.b.shellRun(ctx, "ab_kill", nil, strconv.Itoa(c.pid.pid))
		cancel()
	}
	cause := c.killRequested()
	var killed, failure error
	switch {
	case err != nil:
		failure = &Error{Code: CodeExecError, Op: "exec", Command: c.p.command, Err: err,
			Message: "docker: could not learn how the background command ended: " + err.Error()}
	case !c.pid.seen() && code != 0:
		c.p.mu.Lock()
		out, _ := c.p.streams[0].all()
		errOut, _ := c.p.streams[1].all()
		c.p.mu.Unlock()
		failure = execStartErr(c.p.command, c.cwd, &ExecResult{Stdout: out, Stderr: errOut, ExitCode: code})
	case cause != nil && code == 128+int(syscall.SIGKILL):
		killed = cause
	case streamErr != nil && !errors.Is(streamErr, io.EOF) && cause == nil:
		failure = &Error{Code: CodeExecError, Op: "exec", Command: c.p.command, Err: streamErr,
			Message: "docker: lost the background command's output: " + streamErr.Error()}
	}
	c.p.finish(code, killed, failure)
}

// awaitExit polls the engine until the exec has ended and returns its exit
// code: at once in the usual case (the output ends with the command), every
// second at most when the command closed its output and runs on.
func (c *dockerProc) awaitExit() (int, error) {
	delay := 10 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		info, err := c.b.cli.ContainerExecInspect(ctx, c.execID)
		cancel()
		if err != nil {
			return -1, err
		}
		if !info.Running {
			return info.ExitCode, nil
		}
		time.Sleep(delay)
		delay = min(2*delay, time.Second)
	}
}

func (c *dockerProc) killRequested() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

func (c *dockerProc) kill() error { return c.killWith(errKilled) }

// killWith records why the command is killed and kills its group, now if
// its PID is known, else as soon as it is (pidKnown).
func (c *dockerProc) killWith(cause error) error {
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
	}
	return nil
}

// pidKnown is called by the output goroutine when the PID arrives.
func (c *dockerProc) pidKnown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cause != nil && !c.ended {
		c.startKillerLocked()
	}
}

// startKillerLocked starts the goroutine that kills the group until the
// command has ended (a process forked between kill and exit needs another
// kill), and drops the connection when that takes longer than
// dockerKillGrace (a process that left the group may hold the output open).
func (c *dockerProc) startKillerLocked() {
	if c.killing {
		return
	}
	c.killing = true
	c.killers.Add(1)
	go func() {
		defer c.killers.Done()
		ctx, cancel := context.WithTimeout(context.Background(), dockerKillGrace)
		defer cancel()
		for {
			_, _ = c.b.shellRun(ctx, "ab_kill", nil, strconv.Itoa(c.pid.pid))
			t := time.NewTimer(100 * time.Millisecond)
			select {
			case <-c.exited:
				t.Stop()
				return
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				c.hr.Close()
				return
			}
		}
	}()
}

// signal sends sig to the command's process group in the container.
func (c *dockerProc) signal(sig syscall.Signal) error {
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
	if _, err := c.b.shellRun(ctx, "ab_signal", nil, strconv.Itoa(int(sig)), strconv.Itoa(c.pid.pid)); err != nil {
		return &Error{Code: CodeExecError, Op: "signal", Command: c.p.command, Err: err,
			Message: "docker: could not signal the command: " + err.Error()}
	}
	return nil
}

// dockerStdin is a background exec's standard input: the write side of
// its attach connection.
type dockerStdin struct {
	hr     types.HijackedResponse
	closed atomic.Bool
}

func (s *dockerStdin) Write(p []byte) (int, error) {
	if s.closed.Load() {
		return 0, os.ErrClosed
	}
	return s.hr.Conn.Write(p)
}

func (s *dockerStdin) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.hr.CloseWrite()
}
