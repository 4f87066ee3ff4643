//go:build unix && !linux

package sandbox

import "os/exec"

// TagVar names the variable that tags the processes of a host command on
// Linux; elsewhere only the process group is ended.
const TagVar = "AGENTBE_COMMAND_TAG"

// reaper has nothing beyond the process group to end without /proc and
// cgroups.
type reaper struct{}

func newReaper(*exec.Cmd) *reaper { return &reaper{} }
func (*reaper) started(error)     {}
func (*reaper) kill()             {}
func (*reaper) finish()           {}
