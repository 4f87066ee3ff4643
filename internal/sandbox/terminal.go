//go:build unix

package sandbox

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"syscall"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// A command with a terminal runs on a new pseudo-terminal pair: the
// command gets the terminal side as its standard streams and its
// controlling terminal; this process keeps the controlling side (the
// master), where the command's input is written and its output, both
// streams merged as on any terminal, is read.
//
// On the host the shell is started as the leader of a new session, with
// the terminal as its controlling terminal (setsid, TIOCSCTTY): Ctrl-C
// written to the terminal interrupts the foreground process group, as in
// any terminal, and the caller's own terminal, if it has one, is not the
// command's. Under bubblewrap, bwrap itself is started in a new session
// without a controlling terminal, so neither it nor anything in the
// sandbox can reach the caller's terminal; --new-session stays (the
// sandbox's init leads a session without one), and the shell is started
// by setsid(1) --ctty, which makes it the leader of a session of its own
// whose controlling terminal is the pseudo-terminal. Job control and
// Ctrl-C then work inside the sandbox, and reach nothing outside it:
// TIOCSTI on that terminal only types into the command's own input.
// The sandbox's /dev is its own (bwrap --dev: a devpts instance of its
// own), so the host's other terminals are not there to open.

// StartTerminal starts cmd, built by Command from a Spec with Terminal
// set, on a new pseudo-terminal of the given size, and copies what the
// terminal shows (the command's output, both streams, and the echo of its
// input) to output as it comes, as Start does for pipes. Write the
// command's input to Terminal; Resize changes the size. The terminal is
// closed once Wait has taken the output.
func StartTerminal(cmd *exec.Cmd, size TermSize, output io.Writer) (*Process, error) {
	if output == nil {
		output = io.Discard
	}
	ptmx, tty, err := openPTY()
	if err != nil {
		Release(cmd)
		return nil, err
	}
	if err := setSize(ptmx, size); err != nil {
		Release(cmd)
		ptmx.Close()
		tty.Close()
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	if isBwrap(cmd) {
		// setsid(1) inside takes the terminal; bwrap holds none.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		// A session leader is a process-group leader too, so killing the
		// group still ends what the command started in it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	}
	p, err := start(cmd, nil, nil, ptmx, output)
	tty.Close() // the command has its copies
	if err != nil {
		ptmx.Close()
		return nil, err
	}
	return p, nil
}

// Terminal returns the controlling side of the command's terminal, where
// its input is written, or nil for a command without one. Writes fail
// once the command has ended and its output has been taken.
func (p *Process) Terminal() *os.File { return p.term }

// Resize sets the size of the command's terminal; the kernel tells its
// foreground process group (SIGWINCH).
func (p *Process) Resize(size TermSize) error {
	if p.term == nil {
		return errors.New("sandbox: the command has no terminal")
	}
	return setSize(p.term, size)
}

// openPTY opens a pseudo-terminal pair with creack/pty, and makes the
// controlling side non-blocking: pty.Open leaves it in blocking mode
// (it asks for its descriptor), where reads cannot be given a deadline
// and a reader would wait for as long as anything holds the terminal
// open, even a process that escaped the kill. A non-blocking copy goes
// through the runtime's poller, so Wait can end the reading at once.
func openPTY() (ptmx, tty *os.File, err error) {
	blocking, tty, err := pty.Open()
	if err != nil {
		return nil, nil, err
	}
	defer blocking.Close()
	fd, err := unix.FcntlInt(blocking.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err == nil {
		if err = unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		tty.Close()
		return nil, nil, err
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), tty, nil
}

// setSize sets a terminal's size through the poller's hold on the
// descriptor (pty.Setsize asks for it, which would make it blocking again,
// and races with Close).
func setSize(f *os.File, size TermSize) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioctlErr error
	if err := rc.Control(func(fd uintptr) {
		ioctlErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: size.Rows, Col: size.Cols})
	}); err != nil {
		return err
	}
	return ioctlErr
}

// foreground returns the foreground process group of the command's
// terminal (what Ctrl-C interrupts), or 0 when it has none or it cannot
// be read.
func (p *Process) foreground() int {
	rc, err := p.term.SyscallConn()
	if err != nil {
		return 0
	}
	pgrp := 0
	_ = rc.Control(func(fd uintptr) {
		if n, err := unix.IoctlGetInt(int(fd), unix.TIOCGPGRP); err == nil {
			pgrp = n
		}
	})
	return pgrp
}
