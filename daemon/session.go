package daemon

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/agentbackend/agentbackend/internal/pathjail"
	"github.com/agentbackend/agentbackend/internal/sandbox"
	"github.com/agentbackend/agentbackend/internal/sshext"
)

// session is one SSH session channel: a terminal description (pty-req,
// window-change), then one program: a command (exec), a shell or a
// subsystem (sftp, search).
type session struct {
	d    *Daemon
	cs   *connState
	ch   ssh.Channel
	jail *jail // where the session works: the workspace, the static scope, or a scope the client asked for

	term       string
	cols, rows uint32
	done       chan struct{} // closed when the channel is gone: the peer closed it, or the connection ended

	mu         sync.Mutex
	background bool // the client asked for a background process: no exec slot
	proc       *sandbox.Process
	command    bool             // an exec or shell request was accepted: a command is starting or running
	signals    []syscall.Signal // signals that came before proc was recorded, delivered once it is
	tty        *sandbox.Process // the command, when it has a terminal
	pty        bool             // the client asked for a terminal
}

// session serves a session channel's requests until the channel is closed,
// then kills its command (if still running) and waits for it to end.
func (d *Daemon) session(ch ssh.Channel, reqs <-chan *ssh.Request, cs *connState) {
	s := &session{d: d, cs: cs, ch: ch, jail: d.sessionJail, term: "xterm-256color", cols: 80, rows: 24, done: make(chan struct{})}
	var running sync.WaitGroup
	started := false
	for req := range reqs {
		ok := false
		var program func()
		switch req.Type {
		case "pty-req":
			ok = s.ptyRequest(req.Payload)
		case "window-change":
			ok = s.windowChange(req.Payload)
		case "signal":
			ok = s.signal(req.Payload)
		case sshext.ScopeRequest:
			ok = !started && s.scope(req.Payload)
		case sshext.BackgroundRequest:
			if !started {
				s.mu.Lock()
				s.background = true
				s.mu.Unlock()
				ok = true
			}
		case "exec", "shell", "subsystem":
			if started {
				break // one program per session
			}
			program = s.program(req)
			ok = program != nil
			started = ok
			if ok && req.Type != "subsystem" {
				s.mu.Lock()
				s.command = true
				s.mu.Unlock()
			}
		}
		if req.WantReply {
			_ = req.Reply(ok, nil)
		}
		if program != nil {
			running.Go(program)
		}
	}
	close(s.done)
	s.kill()
	running.Wait()
	ch.Close()
}

// program returns what an exec, shell or subsystem request runs, or nil
// to refuse it.
func (s *session) program(req *ssh.Request) func() {
	switch req.Type {
	case "exec":
		var p struct{ Command string }
		if ssh.Unmarshal(req.Payload, &p) != nil {
			return nil
		}
		return func() { s.run(p.Command) }
	case "shell":
		// As the reference: the shell itself, reading commands from the
		// channel (interactive when the client asked for a terminal).
		return func() { s.run(s.d.exec.shell) }
	default:
		var p struct{ Name string }
		if ssh.Unmarshal(req.Payload, &p) != nil {
			return nil
		}
		switch p.Name {
		case "sftp":
			return s.serveSFTP
		case sshext.SearchSubsystem:
			return s.serveSearch
		case sshext.WatchSubsystem:
			return s.serveWatch
		}
		return nil
	}
}

// serveSFTP serves the SFTP subsystem on the channel until the client
// closes it.
func (s *session) serveSFTP() {
	srv := sftp.NewRequestServer(s.ch, sftpHandlers{j: s.jail, pending: s.d.pending, owner: s.cs}.handlers())
	err := srv.Serve()
	srv.Close()
	if err != nil && err != io.EOF {
		s.d.log.Debug("sftp session ended", "err", err)
	}
	s.exitNoEOF(0)
}

// run runs a command for the session: through the sandbox, with the
// channel as its standard streams (or a pseudo-terminal on the channel when
// the client asked for one), then reports the exit status and closes the
// channel. A command that cannot start gets its error on stderr and exit
// status 1. A background process (RemoteBackend.Start) takes no exec slot:
// it would hold one for its whole life; the session limit bounds them.
func (s *session) run(command string) {
	s.mu.Lock()
	pty, background := s.pty, s.background
	s.mu.Unlock()
	if !background {
		select {
		case s.cs.execs <- struct{}{}:
		case <-s.done:
			return
		}
		defer func() { <-s.cs.execs }()
	}
	var code int
	cmd, dir, err := s.d.exec.command(command, s.term, pty, s.jail)
	if err == nil {
		if pty {
			code, err = s.runTerminal(cmd, dir)
		} else {
			code, err = s.runPiped(cmd, dir)
		}
	}
	if err != nil {
		fmt.Fprintf(s.ch.Stderr(), "Error: %v\n", err)
		code = 1
	}
	s.exit(code)
}

// runPiped runs cmd with the channel's data as stdin and its output
// streams as stdout and stderr.
func (s *session) runPiped(cmd *exec.Cmd, dir *os.File) (int, error) {
	defer dir.Close()
	// A pipe of our own for stdin: os/exec would wait for its copier, which
	// waits for the client's EOF, which some clients never send.
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	cmd.Stdin = pr
	p, err := sandbox.Start(cmd, s.ch, s.ch.Stderr())
	pr.Close()
	dir.Close() // the command has started: bwrap has bound it, or it runs there
	if err != nil {
		pw.Close()
		return 0, err
	}
	s.started(p)
	go func() {
		_, _ = io.Copy(pw, s.ch) // ends when the command is gone or the channel is
		pw.Close()
	}()
	state, err := p.Wait()
	pw.Close()
	if err != nil {
		return 0, err
	}
	return sandbox.ExitCode(state), nil
}

// started records the running command, delivers the signals that came
// while it was starting (the command may already have written output the
// client reacted to), and kills it at once when the channel went away in
// the meantime.
func (s *session) started(p *sandbox.Process) {
	s.mu.Lock()
	s.proc = p
	pending := s.signals
	s.signals = nil
	s.mu.Unlock()
	for _, sig := range pending {
		p.Signal(sig)
	}
	select {
	case <-s.done:
		p.Kill(errChannelClosed)
	default:
	}
}

// context returns a context that ends when the session's channel is gone
// (or cancel is called), for subsystems that must stop with their client.
func (s *session) context() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// exit reports the exit status on the channel, sends EOF and closes it.
// Only for programs whose writers have all returned: x/crypto/ssh does not
// synchronise CloseWrite with Write.
func (s *session) exit(code int) {
	_, _ = s.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
	_ = s.ch.CloseWrite()
	_ = s.ch.Close()
}

// exitNoEOF is exit without the EOF, for the SFTP server, whose response
// writer may still be flushing when Serve returns (Close, unlike
// CloseWrite, is safe alongside a Write).
func (s *session) exitNoEOF(code int) {
	_, _ = s.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
	_ = s.ch.Close()
}

var errChannelClosed = fmt.Errorf("ssh channel closed")

// kill ends the session's command, if it is running, with its whole
// process group.
func (s *session) kill() {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p != nil {
		p.Kill(errChannelClosed)
	}
}

// signal delivers a "signal" request to the command's process group.
func (s *session) signal(payload []byte) bool {
	var p struct{ Name string }
	if ssh.Unmarshal(payload, &p) != nil {
		return false
	}
	sig, ok := signals[p.Name]
	if !ok {
		return false
	}
	s.mu.Lock()
	proc := s.proc
	if proc == nil && s.command {
		s.signals = append(s.signals, sig) // starting: delivered by started
		s.mu.Unlock()
		return true
	}
	s.mu.Unlock()
	return proc != nil && proc.Signal(sig)
}

// scope narrows the session's jail to the scope levels of an
// sshext.ScopeRequest (NUL-separated, each beneath the one before),
// before its program starts. A level that is not a clean relative path
// below its parent is refused.
func (s *session) scope(payload []byte) bool {
	var p struct{ Levels string }
	if ssh.Unmarshal(payload, &p) != nil || p.Levels == "" {
		return false
	}
	var levels []string
	for level := range strings.SplitSeq(p.Levels, "\x00") {
		rel, ok := pathjail.ValidScope(level)
		if !ok || rel == "." || rel != level {
			return false
		}
		levels = append(levels, rel)
	}
	s.jail = s.jail.scoped(levels...)
	return true
}

// ptyRequest records the terminal a "pty-req" describes.
func (s *session) ptyRequest(payload []byte) bool {
	var p struct {
		Term             string
		Cols, Rows, W, H uint32
		Modes            string
	}
	if ssh.Unmarshal(payload, &p) != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pty = true
	if p.Term != "" {
		s.term = p.Term
	}
	if p.Cols > 0 && p.Rows > 0 {
		s.cols, s.rows = p.Cols, p.Rows
	}
	return true
}

// windowChange resizes the terminal, if the command has one.
func (s *session) windowChange(payload []byte) bool {
	var p struct{ Cols, Rows, W, H uint32 }
	if ssh.Unmarshal(payload, &p) != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cols, s.rows = p.Cols, p.Rows
	if s.tty != nil {
		_ = s.tty.Resize(termSize(p.Cols, p.Rows))
	}
	return true
}
