package daemon

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentbackend/agentbackend/internal/sandbox"
)

// havePTY says shell and exec sessions that asked for a terminal get a
// real pseudo-terminal here (so line editing, job control and programs
// that check isatty work), opened with two ioctls on /dev/ptmx rather than
// with a dependency.
const havePTY = true

// openPTY opens a pseudo-terminal pair: the controlling side (ptmx) and
// the terminal the command gets.
func openPTY() (ptmx, tty *os.File, err error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil { // unlockpt
		unix.Close(fd)
		return nil, nil, err
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN) // ptsname
	if err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil { // so that os uses the poller: reads end on Close
		unix.Close(fd)
		return nil, nil, err
	}
	ptmx = os.NewFile(uintptr(fd), "/dev/ptmx")
	tty, err = os.OpenFile("/dev/pts/"+strconv.FormatUint(uint64(n), 10), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		ptmx.Close()
		return nil, nil, err
	}
	return ptmx, tty, nil
}

// setWinsize sets a terminal's size.
func setWinsize(f *os.File, cols, rows uint32) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(rows), Col: uint16(cols)})
	})
	return errors.Join(err, serr)
}

// runTerminal runs cmd on a new pseudo-terminal wired to the channel: the
// command is a session leader with the terminal as its controlling
// terminal, and stdout and stderr arrive merged, as from a terminal.
func (s *session) runTerminal(cmd *exec.Cmd, dir *os.File) (int, error) {
	defer dir.Close()
	ptmx, tty, err := openPTY()
	if err != nil {
		return 0, err
	}
	defer ptmx.Close()
	s.mu.Lock()
	_ = setWinsize(ptmx, s.cols, s.rows)
	s.tty = ptmx
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.tty = nil
		s.mu.Unlock()
	}()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	// A session leader is a process-group leader too, so killing the
	// group still ends everything the command started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	p, err := sandbox.Start(cmd, nil, nil)
	tty.Close()
	dir.Close() // the command has started: bwrap has bound it, or it runs there
	if err != nil {
		return 0, err
	}
	s.started(p)
	output := make(chan struct{})
	go func() {
		_, _ = io.Copy(s.ch, ptmx) // ends with EIO once the terminal has no process left
		close(output)
	}()
	go func() { _, _ = io.Copy(ptmx, s.ch) }() // ends when the channel or the terminal closes
	state, err := p.Wait()
	select {
	case <-output:
	case <-time.After(2 * time.Second): // something outside the group still holds the terminal
	}
	if err != nil {
		return 0, err
	}
	return sandbox.ExitCode(state), nil
}
