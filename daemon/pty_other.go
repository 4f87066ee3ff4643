//go:build !linux

package daemon

import (
	"errors"
	"os"
	"os/exec"
)

// havePTY says sessions run with pipes here, terminal or not.
const havePTY = false

func setWinsize(*os.File, uint32, uint32) error { return nil }

func (s *session) runTerminal(_ *exec.Cmd, dir *os.File) (int, error) {
	dir.Close()
	return 0, errors.New("pseudo-terminals are not supported on this system")
}
