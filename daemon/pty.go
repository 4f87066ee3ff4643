package daemon

import (
	"io"
	"os"
	"os/exec"

	"github.com/agentbackend/agentbackend/internal/sandbox"
)

// Shell and exec sessions that asked for a terminal (pty-req) get a real
// pseudo-terminal (sandbox.StartTerminal), so line editing, job control,
// Ctrl-C and programs that check isatty work; window-change resizes it.

// termSize converts an SSH terminal size, keeping a zero one at 80x24 and
// a huge one within what a terminal holds.
func termSize(cols, rows uint32) sandbox.TermSize {
	if cols == 0 || rows == 0 {
		cols, rows = 80, 24
	}
	return sandbox.TermSize{Rows: uint16(min(rows, 0xffff)), Cols: uint16(min(cols, 0xffff))}
}

// runTerminal runs cmd on a new pseudo-terminal wired to the channel: the
// command leads a session whose controlling terminal it is, and stdout and
// stderr arrive merged, as from a terminal.
func (s *session) runTerminal(cmd *exec.Cmd, dir *os.File) (int, error) {
	defer dir.Close()
	s.mu.Lock()
	size := termSize(s.cols, s.rows)
	s.mu.Unlock()
	p, err := sandbox.StartTerminal(cmd, size, s.ch)
	dir.Close() // the command has started: bwrap has bound it, or it runs there
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.tty = p
	if now := termSize(s.cols, s.rows); now != size { // a window-change came meanwhile
		_ = p.Resize(now)
	}
	s.mu.Unlock()
	s.started(p)
	go func() { _, _ = io.Copy(p.Terminal(), s.ch) }() // ends when the channel or the terminal closes
	state, err := p.Wait()
	s.mu.Lock()
	s.tty = nil
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return sandbox.ExitCode(state), nil
}
