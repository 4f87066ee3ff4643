//go:build unix

package sandbox

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// stdinGrace bounds how long Wait waits, once the command has exited, for
// the goroutine os/exec uses to copy a Stdin that is not a file (it may be
// blocked in the caller's Read).
const stdinGrace = 100 * time.Millisecond

func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// Process is a started command. When the command's shell exits, everything
// it started is killed, so nothing it left in the background survives it;
// Kill ends all of it early. That is its process group, and, for processes
// that leave the group (setsid, a double fork): under bubblewrap the
// sandbox's pid namespace; on the host a cgroup of its own or, where none
// can be made, a tag in its environment (see TagVar for what that misses).
type Process struct {
	cmd       *exec.Cmd
	pid       int     // also the process group id
	sandboxed bool    // pid is bubblewrap's; the command runs in a pid namespace below it
	nsInit    int     // the sandbox's init, found when Kill killed bubblewrap under it
	reap      *reaper // a host command's escapees; nil under bubblewrap

	mu     sync.Mutex
	exited bool  // the shell has exited (not yet reaped: the group id is still ours)
	reaped bool  // the shell is reaped: the id may belong to someone else, never signal it
	cause  error // why Kill killed a running command

	attached  io.Closer     // what an Attacher returned, closed by Wait
	term      *os.File      // the terminal's controlling side (StartTerminal); also in outputs
	outputs   []*os.File    // read ends of the output pipes, or the terminal
	copying   atomic.Int32  // copiers still running
	copiesEnd chan struct{} // closed by the last copier
}

// Start starts cmd (usually built by Command) with its standard output and
// error copied to stdout and stderr as they are produced. A nil writer
// leaves cmd's own setting of that stream (nil: discarded). Each writer is
// called from one goroutine, and never after Wait returns; Wait waits for
// the writers to take everything the command wrote. A writer's error stops
// the copying to it, not the command. It closes cmd.ExtraFiles, started or
// not (the child has its copies). The command inherits no other
// descriptor of this process: Start marks any this process inherited
// without close-on-exec so.
func Start(cmd *exec.Cmd, stdout, stderr io.Writer) (*Process, error) {
	return start(cmd, stdout, stderr, nil, nil)
}

// isBwrap reports whether cmd runs bubblewrap (Command under a Bwrap).
func isBwrap(cmd *exec.Cmd) bool { return len(cmd.Args) > 0 && cmd.Args[0] == "bwrap" }

// start is Start; with term (a terminal's controlling side, which cmd's
// standard streams are the other side of) the command's output is read
// from term and copied to termOut.
func start(cmd *exec.Cmd, stdout, stderr io.Writer, term *os.File, termOut io.Writer) (*Process, error) {
	att := takeAttachment(cmd)
	defer Release(cmd)
	if att != nil && att.err != nil {
		return nil, att.err
	}
	p := &Process{cmd: cmd, sandboxed: isBwrap(cmd), term: term}
	var parentEnds, childEnds []*os.File
	closeAll := func() {
		for _, f := range append(parentEnds, childEnds...) {
			f.Close()
		}
	}
	for _, w := range []io.Writer{stdout, stderr} {
		if w == nil {
			parentEnds = append(parentEnds, nil)
			childEnds = append(childEnds, nil)
			continue
		}
		r, cw, err := os.Pipe()
		if err != nil {
			closeAll()
			return nil, err
		}
		parentEnds = append(parentEnds, r)
		childEnds = append(childEnds, cw)
	}
	if childEnds[0] != nil {
		cmd.Stdout = childEnds[0]
	}
	if childEnds[1] != nil {
		cmd.Stderr = childEnds[1]
	}
	if cmd.WaitDelay == 0 {
		// Bounds how long Wait waits for the goroutine os/exec uses to copy
		// a non-file Stdin, which may be blocked in the caller's Read.
		cmd.WaitDelay = stdinGrace
	}
	if !p.sandboxed {
		p.reap = newReaper(cmd)
	}
	closeInherited()
	err := cmd.Start()
	if p.reap != nil {
		p.reap.started(err)
	}
	for _, f := range childEnds {
		if f != nil {
			f.Close() // the child has its copies
		}
	}
	if err == nil && att != nil {
		err = p.attach(att)
	} else if att != nil {
		att.close()
	}
	if err != nil {
		for _, f := range parentEnds {
			if f != nil {
				f.Close()
			}
		}
		return nil, err
	}
	p.pid = cmd.Process.Pid
	p.copiesEnd = make(chan struct{})
	writers := []io.Writer{stdout, stderr}
	if term != nil {
		parentEnds = append(parentEnds, term)
		writers = append(writers, termOut)
	}
	for _, r := range parentEnds {
		if r != nil {
			p.outputs = append(p.outputs, r)
			p.copying.Add(1) // all counted before any copier can finish
		}
	}
	for i, w := range writers {
		if r := parentEnds[i]; r != nil {
			go p.copy(r, w)
		}
	}
	return p, nil
}

// attach runs the Attacher of a started sandbox and lets its command run;
// when the Attacher fails, the sandbox is killed and reaped before its
// command can start.
func (p *Process) attach(att *attachment) error {
	closer, err := att.run(p.cmd.Process.Pid)
	if err != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		_ = p.cmd.Wait()
		att.close() // only now: bubblewrap runs the command when the pipe ends
		return err
	}
	p.attached = closer
	att.unblock()
	return nil
}

// Pid returns the process id of the command (the shell, or bwrap), which is
// also its process group id.
func (p *Process) Pid() int { return p.pid }

// Kill kills the command's whole process group with SIGKILL and records
// cause as the reason, if the command is still running. It reports whether
// it was (false: it had already exited). Kill is safe to call at any time,
// from any goroutine, any number of times; only the first cause is kept.
func (p *Process) Kill(cause error) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return false
	}
	if p.sandboxed && !p.exited && p.nsInit == 0 {
		// Killed, bubblewrap leaves its init to die by --die-with-parent
		// after it: Wait waits for that (see awaitNamespace).
		p.nsInit = childOf(p.pid)
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	if p.reap != nil {
		p.reap.kill()
	}
	if p.exited {
		return false
	}
	if p.cause == nil {
		p.cause = cause
	}
	return true
}

// Signal sends sig to the command's whole process group, if the command is
// still running (not yet reaped), and reports whether it did. Unlike Kill
// it records no cause: the command decides what the signal means.
//
// Under bubblewrap the group of bwrap itself would receive it, and bwrap
// does not pass signals on: most would end it (and with it the sandbox, at
// once) without the command seeing them. So the signal goes to the group of
// the sandbox's init instead, which holds the command's shell (bwrap's
// --new-session makes it a session of its own); the init, as pid 1 of its
// namespace, ignores what it has no handler for. A signal sent before the
// sandbox is set up goes to bwrap's group, which ends the sandbox.
func (p *Process) Signal(sig syscall.Signal) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped || p.exited {
		return false
	}
	if p.term != nil {
		return p.signalTerminal(sig)
	}
	if p.sandboxed && sig != syscall.SIGKILL {
		if init := childOf(p.pid); init > 0 {
			return syscall.Kill(-init, sig) == nil
		}
	}
	return syscall.Kill(-p.pid, sig) == nil
}

// signalTerminal sends sig to a command with a terminal: to its shell's
// process group, and to the terminal's foreground process group when that
// is another (a job of an interactive shell). The shell leads a session
// of its own: on the host it is the command's process, under bubblewrap
// the child of the sandbox's init. p.mu is held.
func (p *Process) signalTerminal(sig syscall.Signal) bool {
	shell := p.pid
	if p.sandboxed && sig != syscall.SIGKILL {
		if init := childOf(p.pid); init > 0 {
			shell = init // until setsid(1) runs, the sandbox is still starting
			if c := childOf(init); c > 0 {
				shell = c
			}
		}
	}
	ok := syscall.Kill(-shell, sig) == nil
	if fg := p.foreground(); fg > 0 && fg != shell {
		ok = syscall.Kill(-fg, sig) == nil || ok
	}
	return ok
}

// KillCause returns the cause given to the first Kill that found the command
// running, or nil.
func (p *Process) KillCause() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cause
}

// Wait waits for the command to exit, kills what is left of its process
// group, reaps it and finishes copying its output. The error is nil for any
// exit status (read it from the state); it reports a failure to wait.
func (p *Process) Wait() (*os.ProcessState, error) {
	reapedEarly := false
	if waitExited(p.pid) {
		p.mu.Lock()
		p.exited = true
		// The shell is a zombie, so its id still names its group and cannot
		// have been reused: kill whatever it left behind, then never signal
		// the group again.
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		p.reaped = true
		p.mu.Unlock()
	} else {
		reapedEarly = true
	}
	err := p.cmd.Wait()
	if reapedEarly {
		// Without a non-reaping wait the group stays killable until here; a
		// Kill racing with the reap could in theory hit a reused id, which
		// is why Linux does it the other way round.
		p.mu.Lock()
		p.exited, p.reaped = true, true
		p.mu.Unlock()
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) || errors.Is(err, exec.ErrWaitDelay) {
		err = nil // the status is in ProcessState; an abandoned Stdin copy is not the command's failure
	}
	p.mu.Lock()
	nsInit := p.nsInit
	p.mu.Unlock()
	if nsInit != 0 {
		awaitNamespace(nsInit)
	}
	if p.reap != nil {
		p.reap.finish()
	}
	if p.attached != nil {
		p.attached.Close()
	}
	p.finishOutput()
	if err != nil && p.cmd.ProcessState == nil {
		return nil, err
	}
	return p.cmd.ProcessState, nil
}

// finishOutput ends the copying once the command has exited. Everything
// the command wrote is in the pipes by then: the shell has exited, and in
// bubblewrap so has the sandbox's init, which waits for it. Waiting for EOF
// instead would also wait for whatever else holds the pipes: the rest of the
// group as the kernel kills it, the sandbox's pid namespace as it is torn
// down (about a millisecond), or, forever, a process that left the group.
// So each copier is told to take what the pipe holds now, without waiting,
// and stop.
func (p *Process) finishOutput() {
	if len(p.outputs) == 0 {
		return
	}
	for _, r := range p.outputs {
		_ = r.SetReadDeadline(time.Unix(1, 0)) // wakes a copier blocked in Read; it drains and returns
	}
	<-p.copiesEnd
	for _, r := range p.outputs {
		r.Close()
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (p *Process) copy(r *os.File, w io.Writer) {
	defer func() {
		if p.copying.Add(-1) == 0 {
			close(p.copiesEnd)
		}
	}()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var werr error
	emit := func(b []byte) {
		if werr == nil {
			_, werr = w.Write(b)
		}
	}
	for {
		n, err := r.Read(buf)
		if n > 0 {
			emit(buf[:n])
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			drain(r, buf, emit)
			return
		}
		if err != nil {
			return
		}
	}
}

// drain reads what is in the pipe right now, without waiting for more, up to
// 32 MiB (more than a pipe can hold: a process outside the group may keep
// writing).
func drain(r *os.File, buf []byte, emit func([]byte)) {
	_ = r.SetReadDeadline(time.Time{})
	rc, err := r.SyscallConn()
	if err != nil {
		return
	}
	for range 1024 {
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, rerr = syscall.Read(int(fd), buf)
			return true // never wait for readiness: take only what is there
		}); err != nil || rerr != nil || n <= 0 {
			return
		}
		emit(buf[:n])
	}
}

// ExitCode returns the exit status of a finished command in the shell's
// convention: the exit code, or 128 + the signal number for a command killed
// by a signal (so 137 for SIGKILL).
func ExitCode(state *os.ProcessState) int {
	if state == nil {
		return -1
	}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return state.ExitCode()
}

// Killed reports whether a finished command was ended by SIGKILL.
func Killed(state *os.ProcessState) bool {
	if state == nil {
		return false
	}
	ws, ok := state.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}
