//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/agentbackend/agentbackend/internal/attacktest"
	"github.com/agentbackend/agentbackend/internal/proctest"
)

// terminalModes runs fn for a command on the host and one in bubblewrap.
func terminalModes(t *testing.T, fn func(t *testing.T, spec Spec)) {
	t.Run("host", func(t *testing.T) {
		fn(t, Spec{Shell: "/bin/sh", Root: t.TempDir(), Cwd: ".", Env: BaseEnv(false, false), Terminal: true})
	})
	t.Run("bwrap", func(t *testing.T) {
		bw := attackBwrap(t, BwrapConfig{})
		fn(t, Spec{Shell: "/bin/sh", Root: t.TempDir(), Cwd: ".", Bwrap: bw, Env: BaseEnv(false, true), Terminal: true})
	})
}

// awaitOutput waits (ten seconds at most, a bound on a hang) until out
// contains want.
func awaitOutput(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), want); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			require.Failf(t, "output never came", "want %q in %q", want, out.String())
		}
	}
}

func startTerminal(t *testing.T, spec Spec, command string) (*Process, *syncBuffer) {
	t.Helper()
	spec.Command = command
	out := new(syncBuffer)
	p, err := StartTerminal(Command(spec), TermSize{Rows: 24, Cols: 80}, out)
	require.NoError(t, err)
	t.Cleanup(func() {
		p.Kill(errors.New("test over"))
		_, _ = p.Wait()
	})
	return p, out
}

// The command has a terminal of the size asked for, its controlling one:
// input typed reaches it, Ctrl-C interrupts the foreground job and not the
// shell, and Resize is seen.
func TestTerminal(t *testing.T) {
	terminalModes(t, func(t *testing.T, spec Spec) {
		mark := proctest.SleepArg()
		p, out := startTerminal(t, spec, `test -t 0 && test -t 1 && test -t 2 && echo tty=yes; stty size; `+
			`read line; echo "got:$line"; trap 'echo interrupted' INT; sleep `+mark+`; echo shell-lives; `+
			`read go; stty size; exit 7`)
		awaitOutput(t, out, "24 80")
		_, err := p.Terminal().Write([]byte("hello\r"))
		require.NoError(t, err)
		awaitOutput(t, out, "got:hello")
		// Ctrl-C typed: the line discipline signals the foreground group.
		proctest.WaitRunning(t, mark, 1)
		_, err = p.Terminal().Write([]byte{0x03})
		require.NoError(t, err)
		awaitOutput(t, out, "shell-lives")
		require.NoError(t, p.Resize(TermSize{Rows: 50, Cols: 132}))
		_, err = p.Terminal().Write([]byte("\r"))
		require.NoError(t, err)
		state, err := p.Wait()
		require.NoError(t, err)
		assert.Equal(t, 7, ExitCode(state), out.String())
		assert.Contains(t, out.String(), "tty=yes")
		assert.Contains(t, out.String(), "interrupted")
		assert.Contains(t, out.String(), "50 132")
		_, err = p.Terminal().Write([]byte("late\r"))
		assert.Error(t, err, "the terminal is closed once the output is taken")
	})
}

// Signal reaches the shell of a terminal command (under bubblewrap, in the
// session setsid(1) made inside the sandbox), not only bwrap's group.
func TestTerminalSignal(t *testing.T) {
	terminalModes(t, func(t *testing.T, spec Spec) {
		p, out := startTerminal(t, spec, `trap 'echo got-usr1; exit 3' USR1; echo ready; while :; do sleep 0.05; done`)
		awaitOutput(t, out, "ready")
		require.True(t, p.Signal(syscall.SIGUSR1))
		state, err := p.Wait()
		require.NoError(t, err)
		assert.Equal(t, 3, ExitCode(state), out.String())
		assert.Contains(t, out.String(), "got-usr1")
	})
}

// A terminal command that detaches what it starts (setsid, a double fork)
// leaves nothing behind when killed, as without a terminal.
func TestAttackTerminalLeftovers(t *testing.T) {
	leftoverModes(t, func(t *testing.T, spec Spec) {
		spec.Terminal = true
		for name, escape := range escapes {
			t.Run(name, func(t *testing.T) {
				mark := proctest.SleepArg()
				t.Cleanup(func() { attacktest.KillMarked(mark) })
				spec := spec
				spec.Root = t.TempDir()
				p, _ := startTerminal(t, spec, fmt.Sprintf(escape, sleeper(t, spec, mark))+"\nsleep "+mark)
				proctest.WaitRunning(t, mark, 2)
				assert.True(t, p.Kill(errors.New("stop")))
				state, err := p.Wait()
				require.NoError(t, err)
				assert.True(t, Killed(state))
				proctest.WaitGone(t, mark)
			})
		}
	})
}

// The sandbox has a devpts of its own: the host's terminals are not there
// to be opened, and its capabilities are still none.
func TestAttackTerminalDevpts(t *testing.T) {
	bw := attackBwrap(t, BwrapConfig{})
	host, hostTTY, err := pty.Open() // a terminal of the host's, open and waiting
	require.NoError(t, err)
	defer host.Close()
	defer hostTTY.Close()
	spec := Spec{Shell: "/bin/sh", Root: t.TempDir(), Cwd: ".", Bwrap: bw, Env: BaseEnv(false, true), Terminal: true}
	p, out := startTerminal(t, spec, `ls /dev/pts; echo "open:$(cat `+hostTTY.Name()+` 2>&1 </dev/null | head -c 80)"; `+
		`grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status; echo done`)
	awaitOutput(t, out, "done")
	_, err = p.Wait()
	require.NoError(t, err)
	assert.Contains(t, out.String(), "ptmx")
	assert.NotContains(t, out.String(), "\n"+strings.TrimPrefix(hostTTY.Name(), "/dev/pts/")+"\r\n", "a host terminal is listed")
	assert.Contains(t, out.String(), "No such file", "the host's terminal could be opened")
	assert.Equal(t, 3, strings.Count(out.String(), "0000000000000000"), out.String())
}

// terminalCallerEnv makes the test binary the caller of
// TestTerminalCallerHelper: a process whose controlling terminal is a
// terminal of the test's.
const terminalCallerEnv = "AGENTBE_TERMINAL_CALLER"

// The reason for bwrap's --new-session is TIOCSTI: a command that shares
// its caller's terminal can type commands into it, which the caller's
// shell then runs. A command with a terminal of its own must not reach the
// caller's either: here the caller (a helper process) has a controlling
// terminal, and the command pushes input into every terminal it can find
// (its standard streams, /dev/tty, every descriptor, every /dev/pts entry).
// Its own terminal takes the input (the attack works); the caller's gets
// nothing. On the host, where nothing contains a command, only the
// inherited ways in are tried.
func TestAttackTerminalTIOCSTI(t *testing.T) {
	perl, err := exec.LookPath("perl")
	if err != nil {
		t.Skip("perl not installed (the attack needs the ioctl)")
	}
	for _, mode := range []string{"host", "bwrap"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "bwrap" {
				attackBwrap(t, BwrapConfig{})
			}
			callerPTY, callerTTY, err := pty.Open()
			require.NoError(t, err)
			defer callerPTY.Close()
			defer callerTTY.Close()
			raw, err := unix.IoctlGetTermios(int(callerTTY.Fd()), unix.TCGETS)
			require.NoError(t, err)
			raw.Lflag &^= unix.ICANON | unix.ECHO // every byte pushed is readable at once
			require.NoError(t, unix.IoctlSetTermios(int(callerTTY.Fd()), unix.TCSETS, raw))

			cmd := exec.Command(os.Args[0], "-test.run=^TestTerminalCallerHelper$", "-test.v")
			cmd.Env = append(os.Environ(), terminalCallerEnv+"="+mode, "AGENTBE_PERL="+perl)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = callerTTY, callerTTY, callerTTY
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
			var helperOut syncBuffer
			done := make(chan struct{})
			go func() {
				defer close(done)
				buf := make([]byte, 4096)
				for {
					n, err := callerPTY.Read(buf)
					helperOut.Write(buf[:n])
					if err != nil {
						return
					}
				}
			}()
			require.NoError(t, cmd.Run())
			pushed := pendingInput(t, callerTTY)
			callerTTY.Close()
			<-done
			out := helperOut.String()
			require.Contains(t, out, "control:pushed", "the caller could not push into its own terminal: the test proves nothing")
			assert.Contains(t, out, "command:own-terminal-took-input", "the attack did not work on the command's own terminal")
			assert.Equal(t, "c", pushed, "the command pushed input into the caller's terminal\n%s", out)
		})
	}
}

// pendingInput reads what is waiting in a terminal's input.
func pendingInput(t *testing.T, tty *os.File) string {
	t.Helper()
	n, err := unix.IoctlGetInt(int(tty.Fd()), unix.TIOCINQ)
	require.NoError(t, err)
	if n == 0 {
		return ""
	}
	buf := make([]byte, n)
	_, err = tty.Read(buf)
	require.NoError(t, err)
	return string(buf)
}

// TestTerminalCallerHelper is the caller of TestAttackTerminalTIOCSTI, run
// in a process of its own whose controlling terminal is the test's.
func TestTerminalCallerHelper(t *testing.T) {
	mode := os.Getenv(terminalCallerEnv)
	if mode == "" {
		t.Skip("run by TestAttackTerminalTIOCSTI")
	}
	// The control: this process can push into its own terminal.
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	require.NoError(t, err)
	c := []byte("c")
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, tty.Fd(), unix.TIOCSTI, uintptr(unsafe.Pointer(&c[0]))); errno == 0 {
		fmt.Println("control:pushed")
	}
	tty.Close()

	// The attack: push "echo PWNED" into every terminal the command can
	// open or holds.
	push := os.Getenv("AGENTBE_PERL") + ` -e 'open(my $f, "+<", $ARGV[0]) or exit 0; ioctl($f, 0x` +
		strconv.FormatInt(unix.TIOCSTI, 16) + `, $_) for split //, "echo PWNED\n"' "$t" 2>/dev/null`
	targets := "/dev/tty /dev/console /dev/pts/* /proc/self/fd/*"
	if mode == "host" {
		// On the host nothing contains the command: as root it may open
		// and push into any terminal. What it must not get is the
		// caller's by inheritance: as controlling terminal or descriptor.
		targets = "/dev/tty /proc/self/fd/*"
	}
	script := `for t in ` + targets + `; do ` + push + `; done; ` +
		`read -r line; [ "$line" = "echo PWNED" ] && echo command:own-terminal-took-input`
	spec := Spec{Shell: "/bin/sh", Command: script, Root: t.TempDir(), Cwd: ".", Terminal: true}
	if mode == "bwrap" {
		path, err := exec.LookPath("bwrap")
		require.NoError(t, err)
		bw, err := NewBwrap(path, BwrapConfig{}).Probe("/bin/sh")
		require.NoError(t, err)
		spec.Bwrap, spec.Env = bw, BaseEnv(false, true)
	} else {
		spec.Env = BaseEnv(false, false)
	}
	out := new(syncBuffer)
	p, err := StartTerminal(Command(spec), TermSize{Rows: 24, Cols: 80}, out)
	require.NoError(t, err)
	hang := time.AfterFunc(20*time.Second, func() { p.Kill(errors.New("hung")) })
	_, err = p.Wait()
	hang.Stop()
	require.NoError(t, err)
	fmt.Println(strings.ReplaceAll(out.String(), "\r", ""))
}

// Wait ends even when a process outside the command's group still holds
// the terminal open (here on the host with neither cgroup nor tag: a
// process that cleared its environment and left the group): the output
// is taken as it stands.
func TestTerminalWaitDoesNotWaitForHolders(t *testing.T) {
	cgroupsOff.Store(true)
	defer cgroupsOff.Store(false)
	mark := proctest.SleepArg()
	t.Cleanup(func() { attacktest.KillMarked(mark) })
	spec := Spec{Shell: "/bin/sh", Root: t.TempDir(), Cwd: ".", Env: BaseEnv(false, false), Terminal: true}
	p, out := startTerminal(t, spec, "env -i setsid sleep "+mark+" & sleep 0.2; echo started")
	awaitOutput(t, out, "started")
	done := make(chan struct{})
	go func() {
		_, _ = p.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second): // a bound on a hang
		t.Fatal("Wait waits for whatever holds the terminal")
	}
}
