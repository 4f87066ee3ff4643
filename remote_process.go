package agentbackend

import (
	"context"
	"errors"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/agentbackend/agentbackend/internal/sshext"
	"golang.org/x/crypto/ssh"
)

var _ ProcessStarter = (*RemoteBackend)(nil)

// remoteKillGrace is how long Kill waits for the daemon to end a process
// after the signal request before it closes the session (which the daemon
// answers by killing the process group).
const remoteKillGrace = 2 * time.Second

// Start runs command in the background on the daemon host, checked and
// placed exactly as by Exec (the same script: working directory, HOME,
// environment), over an SSH session of its own that stays open while the
// command runs; see ProcessStarter for what ctx and opts mean. Output
// streams back over the session; Stdin writes to it.
//
// Signal and Kill go to the command's process group through the SSH
// "signal" request. When the daemon refuses it, leaves it unanswered (the
// reference daemon does) or does not end the process within two seconds,
// Kill closes the session instead, and the daemon kills the process group
// with the session. Signal of another signal fails with EXEC_ERROR after
// five seconds without an answer. opts.Timeout and Close kill the same way.
//
// A lost connection ends the process's session: the process is reported
// ProcessLost and Wait returns CONNECTION_CLOSED, exit code -1. This
// module's daemon kills a session's processes when the connection drops,
// but what happened on the daemon host is not known here: the process may
// have run on for a while, or still run on another daemon. Reconnecting
// does not bring it back.
func (b *RemoteBackend) Start(ctx context.Context, command string, opts *ExecOptions) (*Process, error) {
	var o ExecOptions
	if opts != nil {
		o = *opts
	}
	cwd, err := b.prepareExec("start", command, &o)
	if err != nil {
		return nil, err
	}
	term, _ := terminalOf("start", &o) // checked by prepareExec
	if err := ctx.Err(); err != nil {
		return nil, errNotStarted(command, err)
	}
	c, err := b.connection(ctx, "start")
	if err != nil {
		return nil, err
	}
	p := newProcess(b.bg, TypeRemote, command, &o)
	rc := &remoteProc{b: b, c: c, p: p, ended: make(chan struct{})}
	p.ctl = rc
	if !b.bg.add(p) {
		return nil, errDestroyed("start", TypeRemote)
	}
	fail := func(err error) (*Process, error) {
		p.finish(-1, nil, err)
		b.bg.forget(p)
		return nil, err
	}
	sess, release, err := c.newSession(ctx)
	if err != nil {
		return fail(b.execErr(c, command, err))
	}
	rc.release = release
	closeSess := func() {
		sess.Close()
		release()
	}
	if err := b.jailSession(c, sess.SendRequest); err != nil {
		closeSess()
		return fail(b.execErr(c, command, err))
	}
	// The answer does not matter: the reference daemon refuses it.
	if _, err := sess.SendRequest(sshext.BackgroundRequest, true, nil); err != nil {
		closeSess()
		return fail(b.execErr(c, command, err))
	}
	env := mergeEnv(b.cfg.Env, o.Env)
	stdout, stderr := processStreams(p, o.Stdout, o.Stderr)
	if term != nil {
		// The daemon merges the streams on a terminal; one that ignores the
		// request (the reference) sends stderr apart: merge it here.
		stdout = terminalStream(p, o.Stdout)
		stderr = stdout
		env = mergeEnv(env, map[string]string{"TERM": term.Term})
		if err := sess.RequestPty(term.Term, term.Rows, term.Cols, ssh.TerminalModes{}); err != nil {
			sess.Close()
			return fail(b.execErr(c, command, err))
		}
		p.term = rc
	}
	sess.Stdout, sess.Stderr = stdout, stderr
	if o.Stdin != nil {
		sess.Stdin = o.Stdin
	} else if p.stdin, err = sess.StdinPipe(); err != nil {
		closeSess()
		return fail(b.execErr(c, command, err))
	}
	if err := ctx.Err(); err != nil {
		closeSess()
		return fail(errNotStarted(command, err))
	}
	if err := sess.Start(execScript(cwd, env, command)); err != nil {
		closeSess()
		return fail(b.execErr(c, command, err))
	}
	rc.mu.Lock()
	rc.sess = sess
	if rc.cause != nil { // Close ran meanwhile
		rc.startKillerLocked()
	}
	rc.mu.Unlock()
	if o.Timeout > 0 {
		rc.timer = time.AfterFunc(o.Timeout, func() { _ = rc.killWith(errTimeout) })
	}
	go rc.run()
	return p, nil
}

// prepareExec checks an Exec or Start call before anything is sent and
// returns the working directory of the command.
func (b *RemoteBackend) prepareExec(op, command string, o *ExecOptions) (string, error) {
	if err := b.checkOpen(op); err != nil {
		return "", err
	}
	if err := commandCheck(command, b.safety, b.dangerOK, false); err != nil {
		return "", err
	}
	if err := ValidateEnv(o.Env); err != nil {
		return "", err
	}
	if _, err := terminalOf(op, o); err != nil {
		return "", err
	}
	cwd := b.root
	if o.Cwd != "" {
		full, _, err := b.abs(op, o.Cwd)
		if err != nil {
			return "", err
		}
		cwd = full
	}
	return cwd, nil
}

// Processes lists the backend's background processes: the running ones
// and the ended ones not yet collected, oldest first. See ProcessStarter.
func (b *RemoteBackend) Processes() []ProcessInfo { return b.bg.list() }

// Process returns the listed background process with the given ID.
func (b *RemoteBackend) Process(id string) (*Process, bool) { return b.bg.get(id) }

// closeProcesses kills the running background processes and waits for
// them, before the connection the kills go through is closed.
func (b *RemoteBackend) closeProcesses() {
	running := b.bg.close()
	for _, p := range running {
		_ = p.ctl.(*remoteProc).killWith(errBackendClosed)
	}
	waitAll(running)
}

// remoteProc is a background process on the daemon: its SSH session.
type remoteProc struct {
	b       *RemoteBackend
	c       *remoteConn
	p       *Process
	sess    *ssh.Session // set before run starts
	release func()       // gives the session's place on its link back
	timer   *time.Timer
	ended   chan struct{} // closed when the session has ended

	mu      sync.Mutex
	done    bool  // the session has ended
	cause   error // why this package kills it
	killing bool  // a killer goroutine was started
	killers sync.WaitGroup
}

// run waits for the session to end and records how the command ended.
func (rc *remoteProc) run() {
	err := rc.sess.Wait()
	rc.mu.Lock()
	rc.done = true
	cause := rc.cause
	rc.mu.Unlock()
	close(rc.ended)
	if rc.timer != nil {
		rc.timer.Stop()
	}
	rc.killers.Wait()
	_ = rc.sess.Close()
	rc.release()
	code := exitCodeOf(err)
	var killed, failure error
	switch {
	case cause != nil:
		killed = cause
		if code < 0 {
			code = 128 + int(syscall.SIGKILL) // the session was closed on it
		}
	case code < 0:
		failure = rc.b.execErr(rc.c, rc.p.command, err)
	}
	rc.p.finish(code, killed, failure)
}

func (rc *remoteProc) kill() error { return rc.killWith(errKilled) }

// resize sends the SSH window-change request (RFC 4254, section 6.7),
// which needs no answer: the reference daemon accepts and ignores it.
func (rc *remoteProc) resize(rows, cols int) error {
	rc.mu.Lock()
	done := rc.done
	rc.mu.Unlock()
	if done {
		return os.ErrProcessDone
	}
	if err := rc.sess.WindowChange(rows, cols); err != nil {
		return &Error{Code: CodeExecError, Op: "resize", Command: rc.p.command, Err: err,
			Message: "Could not resize the terminal: " + err.Error()}
	}
	return nil
}

// killWith records why the command is killed and kills it.
func (rc *remoteProc) killWith(cause error) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.done {
		return os.ErrProcessDone
	}
	if rc.cause == nil {
		rc.cause = cause
	}
	if rc.sess != nil { // else Start sees the cause once the command runs
		rc.startKillerLocked()
	}
	return nil
}

// startKillerLocked starts the goroutine that kills the command: the
// signal request, then, if that is refused or does not end it soon,
// closing the session.
func (rc *remoteProc) startKillerLocked() {
	if rc.killing {
		return
	}
	rc.killing = true
	rc.killers.Add(1)
	go func() {
		defer rc.killers.Done()
		t := time.NewTimer(remoteKillGrace)
		defer t.Stop()
		select {
		case answer := <-rc.sendSignal(ssh.SIGKILL):
			if answer.err == nil && answer.ok {
				select {
				case <-rc.ended:
					return
				case <-t.C:
				}
			}
		case <-rc.ended:
			return
		case <-t.C: // a daemon that does not answer the request
		}
		_ = rc.sess.Close() // the daemon kills the process group with the session
	}()
}

// signalAnswer is the daemon's answer to a signal request.
type signalAnswer struct {
	ok  bool
	err error
}

// sendSignal sends the signal request; the answer arrives on the channel
// (a daemon may never answer: the reference leaves it unanswered).
func (rc *remoteProc) sendSignal(sig ssh.Signal) <-chan signalAnswer {
	answer := make(chan signalAnswer, 1)
	go func() {
		ok, err := rc.sess.SendRequest("signal", true, ssh.Marshal(struct{ Signal string }{string(sig)}))
		answer <- signalAnswer{ok, err}
	}()
	return answer
}

// remoteSignalWait bounds how long Signal waits for the daemon's answer.
const remoteSignalWait = 5 * time.Second

// signal sends sig to the command's process group through the daemon.
func (rc *remoteProc) signal(sig syscall.Signal) error {
	if sig == syscall.SIGKILL {
		return rc.kill()
	}
	name, ok := signalNames[sig]
	if !ok {
		return errArgument("signal", "", "signal %d has no SSH name: send one of HUP, INT, QUIT, KILL, USR1, USR2, PIPE, ALRM, TERM, ABRT, FPE, ILL, SEGV", int(sig))
	}
	rc.mu.Lock()
	done := rc.done
	rc.mu.Unlock()
	if done {
		return os.ErrProcessDone
	}
	// The command was running when the request went out. A command that
	// ends before the answer came (often because of the signal: its
	// session closes before the daemon's reply is read) counts as
	// signalled, as os.Process.Signal counts one that ends just after.
	var err error
	select {
	case answer := <-rc.sendSignal(ssh.Signal(name)):
		if answer.err == nil && answer.ok {
			return nil
		}
		err = answer.err
		select {
		case <-rc.ended:
			return nil
		case <-time.After(100 * time.Millisecond): // it may just have ended
		}
		if err == nil {
			err = errors.New("the daemon refused the signal request")
		}
	case <-rc.ended:
		return nil
	case <-time.After(remoteSignalWait):
		err = errors.New("the daemon did not answer the signal request")
	}
	return &Error{Code: CodeExecError, Op: "signal", Command: rc.p.command, Err: err,
		Message: "Could not signal the background command: " + err.Error()}
}

// signalNames are the SSH names of the signals (RFC 4254, section 6.10).
var signalNames = func() map[syscall.Signal]string {
	m := make(map[syscall.Signal]string, len(signalNumbers))
	for name, n := range signalNumbers {
		m[syscall.Signal(n)] = name
	}
	return m
}()
