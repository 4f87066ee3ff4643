//go:build !unix

package sandbox

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"syscall"
)

// ErrUnsupported is returned by Start on systems without process groups.
var ErrUnsupported = errors.New("sandbox: running commands is only supported on Unix systems")

func setProcessGroup(*exec.Cmd) {}

// Process is a started command; see the Unix implementation.
type Process struct{}

// Start is not supported on this system.
func Start(*exec.Cmd, io.Writer, io.Writer) (*Process, error) { return nil, ErrUnsupported }

// Pid is not supported on this system.
func (*Process) Pid() int { return -1 }

// Kill is not supported on this system.
func (*Process) Kill(error) bool { return false }

// Signal is not supported on this system.
func (*Process) Signal(syscall.Signal) bool { return false }

// KillCause is not supported on this system.
func (*Process) KillCause() error { return nil }

// Wait is not supported on this system.
func (*Process) Wait() (*os.ProcessState, error) { return nil, ErrUnsupported }

// ExitCode returns the exit code of a finished command.
func ExitCode(state *os.ProcessState) int {
	if state == nil {
		return -1
	}
	return state.ExitCode()
}

// Killed is not supported on this system.
func Killed(*os.ProcessState) bool { return false }
