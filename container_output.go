package agentbackend

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
)

// What a container command's output carries besides the command's own: the
// wrapper's PID line first and its exit line last (see
// containerExecWrapper), both taken off before the output is kept.

// pidLine passes stderr through after taking the wrapper's PID line off
// its front.
type pidLine struct {
	next  io.Writer
	found chan struct{} // closed once the PID is known
	onPID func()        // if set, called (by the writing goroutine) once found is closed
	// session says the command is on a terminal, where an interactive
	// shell puts its jobs in process groups of their own: killing it kills
	// its whole session, and a signal also goes to the terminal's
	// foreground group.
	session bool
	buf     []byte
	pid     int
	done    bool
}

func (p *pidLine) Write(data []byte) (int, error) {
	n := len(data)
	if !p.done {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			p.buf = append(p.buf, data...)
			return n, nil
		}
		p.buf = append(p.buf, data[:i]...)
		data = data[i+1:]
		p.done = true
		// A terminal may end the line with "\r\n".
		if v, err := strconv.Atoi(strings.TrimSuffix(string(p.buf), "\r")); err == nil && v > 1 {
			p.pid = v
			close(p.found)
			if p.onPID != nil {
				p.onPID()
			}
		} else {
			// Not the wrapper's line (the wrapper did not run): keep it.
			data = append(append(p.buf, '\n'), data...)
		}
		p.buf = nil
	}
	if len(data) > 0 {
		if _, err := p.next.Write(data); err != nil {
			return n, err
		}
	}
	return n, nil
}

// killFn is the prelude function that kills the command.
func (p *pidLine) killFn() string {
	if p.session {
		return "ab_killsession"
	}
	return "ab_kill"
}

// seen reports whether the PID line arrived. Call it after the stream ended.
func (p *pidLine) seen() bool {
	select {
	case <-p.found:
		return true
	default:
		return false
	}
}

// outputCapture keeps up to max bytes of a stream (all when max < 0),
// counts the rest, and copies everything to live when set.
type outputCapture struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	max    int
	total  int64
	live   io.Writer
	liveMu *sync.Mutex // shared with the other stream when both go to one writer
}

func newOutputCapture(max int, live io.Writer) *outputCapture {
	return &outputCapture{max: max, live: live}
}

// newCaptures returns the captures of a command's stdout and stderr. When
// both go live to one writer, its writes are serialized: a transport may
// copy the two streams from two goroutines.
func newCaptures(max int, stdout, stderr io.Writer) (*outputCapture, *outputCapture) {
	o, e := newOutputCapture(max, stdout), newOutputCapture(max, stderr)
	if stdout != nil && sameWriter(stdout, stderr) {
		mu := new(sync.Mutex)
		o.liveMu, e.liveMu = mu, mu
	}
	return o, e
}

func (c *outputCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.total += int64(len(p))
	keep := p
	if c.max >= 0 {
		keep = p[:min(len(p), max(0, c.max-c.buf.Len()))]
	}
	c.buf.Write(keep)
	c.mu.Unlock()
	if c.live != nil {
		if c.liveMu != nil {
			c.liveMu.Lock()
			defer c.liveMu.Unlock()
		}
		// A failing live writer must not stop the command's output from
		// being read: the command would block on a full pipe.
		_, _ = c.live.Write(p)
	}
	return len(p), nil
}

// result returns the kept bytes, with the truncation line when output was
// cut.
func (c *outputCapture) result() ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := bytes.Clone(c.buf.Bytes())
	if out == nil {
		out = []byte{}
	}
	if c.total <= int64(len(out)) {
		return out, false
	}
	out = fmt.Appendf(out, "\n\n... [Output truncated. Full output was %d bytes, showing first %d]", c.total, len(out))
	return out, true
}

// exitLine passes a command's stderr on without the wrapper's exit line
// (exitMark), which it reads. A write that ends in what may be the start of
// the mark is held back until the next write shows what it is.
type exitLine struct {
	next  io.Writer
	token string        // this exec's; a line with another is output
	mark  []byte        // exitMark + token + " "
	ended chan struct{} // closed once the line has come

	mu   sync.Mutex
	held []byte
	code int
	seen bool
}

// maxExitCode bounds the digits of an exit line, so that output that
// looks like the start of one is held back no more than that.
const maxExitCode = 12 // and a "\r"

func newExitLine(next io.Writer) *exitLine {
	token := randomHex(8)
	return &exitLine{next: next, token: token, mark: []byte(exitMark + token + " "), ended: make(chan struct{})}
}

func (e *exitLine) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	data := p
	if len(e.held) > 0 {
		data = append(e.held, p...)
		e.held = nil
	}
	for {
		i := bytes.Index(data, e.mark)
		if i < 0 {
			break
		}
		j := bytes.IndexByte(data[i:], '\n')
		if j < 0 && len(data)-i <= len(e.mark)+maxExitCode { // the line is not complete yet
			e.pass(data[:i])
			e.held = bytes.Clone(data[i:])
			return len(p), nil
		}
		if j < 0 || j > len(e.mark)+maxExitCode { // too long for an exit line: output, held back no longer
			e.pass(data[:i+1])
			data = data[i+1:]
			continue
		}
		// A terminal may end the line with "\r\n".
		if code, err := strconv.Atoi(strings.TrimSuffix(string(data[i+len(e.mark):i+j]), "\r")); err == nil && !e.seen {
			e.code, e.seen = code, true
			close(e.ended)
		}
		e.pass(data[:i])
		data = data[i+j+1:]
	}
	keep := len(data)
	for k := min(len(data), len(e.mark)-1); k > 0; k-- {
		if bytes.HasPrefix(e.mark, data[len(data)-k:]) {
			keep = len(data) - k
			break
		}
	}
	e.pass(data[:keep])
	e.held = bytes.Clone(data[keep:])
	return len(p), nil
}

func (e *exitLine) pass(data []byte) {
	if len(data) > 0 {
		_, _ = e.next.Write(data)
	}
}

// resolve passes on what is held back, once the stream has ended, and
// returns how the command ended: as the wrapper reported it, else (the
// wrapper did not get to say: killed, or the connection lost) as the
// transport did.
func (e *exitLine) resolve(w waited) waited {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pass(e.held)
	e.held = nil
	if e.seen {
		return waited{code: e.code}
	}
	return w
}

// execStartErr reports a process the engine could not start; a missing
// working directory answers errors.Is(err, fs.ErrNotExist).
func execStartErr(command, cwd string, res *ExecResult) error {
	msg := strings.TrimSpace(string(res.Stdout) + string(res.Stderr))
	e := &Error{Code: CodeExecError, Op: "exec", Command: command, ExitCode: res.ExitCode,
		Message: "docker: could not start the command: " + msg}
	if strings.Contains(msg, "chdir") || strings.Contains(msg, "cd") { // the engine's chdir, the wrapper's cd
		e.Path = cwd
		e.Err = errnoFromMessage(msg)
	}
	return e
}

// errNotStarted reports a background command whose start was abandoned.
func errNotStarted(command string, err error) error {
	return &Error{Code: CodeExecError, Op: "start", Command: command, Err: err,
		Message: "Command not started: " + err.Error()}
}
