//go:build !unix

package sandbox

import (
	"io"
	"os"
	"os/exec"
)

// StartTerminal is not supported on this system.
func StartTerminal(cmd *exec.Cmd, _ TermSize, _ io.Writer) (*Process, error) {
	Release(cmd)
	return nil, ErrUnsupported
}

// Terminal is not supported on this system.
func (*Process) Terminal() *os.File { return nil }

// Resize is not supported on this system.
func (*Process) Resize(TermSize) error { return ErrUnsupported }
