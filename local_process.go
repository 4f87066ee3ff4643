package agentbackend

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/agentbackend/agentbackend/internal/sandbox"
)

var _ ProcessStarter = (*LocalBackend)(nil)

// Start runs command in the background and returns as soon as it runs; see
// ProcessStarter for what ctx and opts mean. The command is checked,
// placed and contained exactly as by Exec: its own process group, under
// bubblewrap when that is the isolation, and when its shell exits whatever
// it left running is killed. Kill and opts.Timeout end the whole group.
// A failure to start is EXEC_ERROR (MISSING_UTILITIES when bwrap is gone).
func (b *LocalBackend) Start(ctx context.Context, command string, opts *ExecOptions) (*Process, error) {
	var o ExecOptions
	if opts != nil {
		o = *opts
	}
	cmd, dir, term, err := b.command(ctx, "start", command, &o)
	if err != nil {
		return nil, err
	}
	defer b.done(dir) // once started
	p := newProcess(b.bg, TypeLocal, command, &o)
	var sp *sandbox.Process
	if term != nil {
		size := sandbox.TermSize{Rows: uint16(term.Rows), Cols: uint16(term.Cols)}
		sp, err = sandbox.StartTerminal(cmd, size, terminalStream(p, o.Stdout))
		if err != nil {
			return nil, b.spawnErr(command, cmd, err)
		}
		p.stdin = &terminalInput{w: sp.Terminal()}
		p.term = localControl{sp}
	} else if sp, err = b.startPiped(p, cmd, &o); err != nil {
		return nil, b.spawnErr(command, cmd, err)
	}
	p.ctl = localControl{sp}
	b.track(sp) // Close kills it from now on
	if !b.bg.add(p) {
		// Close ran meanwhile; it has killed sp (track saw it) or is about to.
		sp.Kill(errBackendClosed)
		_, _ = sp.Wait()
		b.untrack(sp)
		if p.stdin != nil {
			p.stdin.Close()
		}
		return nil, errDestroyed("start", TypeLocal)
	}
	var timer *time.Timer
	if o.Timeout > 0 {
		timer = time.AfterFunc(o.Timeout, func() { sp.Kill(errTimeout) })
	}
	go func() {
		state, err := sp.Wait()
		if timer != nil {
			timer.Stop()
		}
		b.untrack(sp)
		var killed, failure error
		if cause := sp.KillCause(); cause != nil && sandbox.Killed(state) {
			killed = cause
		}
		if err != nil {
			failure = errWait(command, err)
		}
		p.finish(sandbox.ExitCode(state), killed, failure)
	}()
	return p, nil
}

// startPiped starts a background command with pipes for its streams:
// stdin the caller's ExecOptions.Stdin, or a pipe that Process.Stdin
// writes to.
func (b *LocalBackend) startPiped(p *Process, cmd *exec.Cmd, o *ExecOptions) (*sandbox.Process, error) {
	var stdinRead *os.File
	if o.Stdin != nil {
		cmd.Stdin = o.Stdin
	} else {
		r, w, err := os.Pipe()
		if err != nil {
			sandbox.Release(cmd)
			return nil, err
		}
		cmd.Stdin, stdinRead, p.stdin = r, r, w
	}
	stdout, stderr := processStreams(p, o.Stdout, o.Stderr)
	sp, err := sandbox.Start(cmd, stdout, stderr)
	if stdinRead != nil {
		stdinRead.Close() // the command has its copy
	}
	if err != nil && p.stdin != nil {
		p.stdin.Close()
	}
	return sp, err
}

// Processes lists the backend's background processes: the running ones
// and the ended ones not yet collected, oldest first. See ProcessStarter.
func (b *LocalBackend) Processes() []ProcessInfo { return b.bg.list() }

// Process returns the listed background process with the given ID.
func (b *LocalBackend) Process(id string) (*Process, bool) { return b.bg.get(id) }

// localControl acts on a local command's process group.
type localControl struct{ sp *sandbox.Process }

func (c localControl) signal(sig syscall.Signal) error {
	if !c.sp.Signal(sig) {
		return os.ErrProcessDone
	}
	return nil
}

func (c localControl) resize(rows, cols int) error {
	if err := c.sp.Resize(sandbox.TermSize{Rows: uint16(rows), Cols: uint16(cols)}); err != nil {
		if errors.Is(err, os.ErrClosed) {
			return os.ErrProcessDone
		}
		return &Error{Code: CodeExecError, Op: "resize", Err: err, Message: "Could not resize the terminal: " + err.Error()}
	}
	return nil
}

func (c localControl) kill() error {
	if !c.sp.Kill(errKilled) {
		return os.ErrProcessDone
	}
	return nil
}
