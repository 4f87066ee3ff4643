// Package sandbox starts the shell commands of a workspace, on the host or
// inside bubblewrap, each in its own process group, and makes sure nothing a
// command started outlives it.
//
// LocalBackend's Exec, the daemon's SSH exec sessions and background
// processes all start commands through this package, so the sandbox, the
// environment rules and the cleanup are the same wherever a command runs.
// It knows nothing about the SDK's errors or limits: callers get an
// *exec.Cmd to adjust (Stdin, SysProcAttr for a terminal) and a Process to
// wait for or kill.
package sandbox

import (
	"os"
	"os/exec"
	"path"
	"strconv"
)

// WorkspaceDir is where the workspace appears inside the bubblewrap sandbox.
//
// It is outside /tmp on purpose: the sandbox gets a private tmpfs at /tmp,
// and the reference implementation, which binds the workspace at
// /tmp/agentbe-workspace before mounting that tmpfs, hides its own
// workspace (every command fails with "Can't chdir"). A top-level directory
// has no ordering trap and leaves /tmp entirely private.
const WorkspaceDir = "/workspace"

// Spec describes one command.
type Spec struct {
	// Shell is the absolute path of the shell; the command runs as
	// `Shell -c Command`. Under bubblewrap the same path is used inside the
	// sandbox, where /usr, /bin, ... are the host's, read-only.
	Shell   string
	Command string
	// Root is the host path of the workspace root. It should be the real
	// path (symlinks resolved) so that it names the directory the caller
	// checked.
	Root string
	// RootFD, if set, is the workspace root opened by the caller. Under
	// bubblewrap the sandbox binds it by descriptor (--bind-fd) instead of
	// by Root's path, so the mount is the directory the caller checked
	// even if a component of its path is swapped meanwhile. bubblewrap
	// closes it once mounted: the command does not inherit it. It must
	// stay open until the command has started.
	RootFD *os.File
	// Cwd is the working directory relative to Root: clean, slash-separated,
	// "." for the root. The caller validates it.
	Cwd string
	// Env is the command's environment. HOME and PWD are appended, set to
	// the working directory as the command sees it (the sandbox path under
	// bubblewrap), so they win over any earlier entry.
	Env []string
	// Bwrap runs the command inside bubblewrap; nil runs it on the host.
	Bwrap *Bwrap
	// Mount is where the workspace appears inside bubblewrap; empty means
	// WorkspaceDir. The daemon mounts it at its host path (Root), because
	// remote clients send commands that name host paths (`cd /srv/ws && ...`).
	Mount string
}

// mount returns where the workspace appears inside bubblewrap.
func (s *Spec) mount() string {
	if s.Mount != "" {
		return s.Mount
	}
	return WorkspaceDir
}

// Dir returns the working directory as the command sees it: under
// WorkspaceDir in the sandbox, under Root on the host.
func (s *Spec) Dir() string {
	base := s.Root
	if s.Bwrap != nil {
		base = s.mount()
	}
	if s.Cwd == "" || s.Cwd == "." {
		return base
	}
	return path.Join(base, s.Cwd)
}

// Command builds the *exec.Cmd for s. The command gets its own process
// group (so Process can kill everything it starts) and no standard streams;
// set Stdin, or start it with Start for captured output. A caller that
// needs a terminal may replace SysProcAttr with one that has Setsid and
// Setctty: the session leader is a group leader too, so killing the group
// still works.
func Command(s Spec) *exec.Cmd {
	dir := s.Dir()
	var cmd *exec.Cmd
	if s.Bwrap != nil {
		args := make([]string, 0, len(s.Bwrap.args)+12)
		args = append(args, "bwrap")
		args = append(args, s.Bwrap.args...)
		cmd = &exec.Cmd{Path: s.Bwrap.path}
		if s.RootFD != nil {
			fd := 3 + len(cmd.ExtraFiles)
			cmd.ExtraFiles = append(cmd.ExtraFiles, s.RootFD)
			args = append(args, "--bind-fd", strconv.Itoa(fd), s.mount())
		} else {
			args = append(args, "--bind", s.Root, s.mount())
		}
		cmd.Args = append(args, "--chdir", dir, "--", s.Shell, "-c", s.Command)
	} else {
		cmd = &exec.Cmd{Path: s.Shell, Args: []string{s.Shell, "-c", s.Command}, Dir: dir}
	}
	env := make([]string, 0, len(s.Env)+2)
	env = append(env, s.Env...)
	cmd.Env = append(env, "HOME="+dir, "PWD="+dir)
	setProcessGroup(cmd)
	return cmd
}
