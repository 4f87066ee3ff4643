// Package sandbox starts the shell commands of a workspace, on the host or
// inside bubblewrap, each in its own process group, and makes sure nothing a
// command started outlives it.
//
// The bubblewrap sandbox (NewBwrap) is where the SDK's sandbox guarantees
// live: no capabilities whoever runs it, no mount, a read-only view of the
// host's system and of /proc's kernel-wide parts, no keyring, no network
// unless asked, the workspace's masks (Mask), a minimal environment
// (BaseEnv). The attack tests (attack_test.go) hold it to them.
//
// LocalBackend's Exec, the daemon's SSH exec sessions and background
// processes all start commands through this package, so the sandbox, the
// environment rules and the cleanup are the same wherever a command runs.
// It knows nothing about the SDK's errors or limits: callers get an
// *exec.Cmd to adjust (Stdin, SysProcAttr for a terminal) and a Process to
// wait for or kill.
package sandbox

import (
	"errors"
	"os"
	"os/exec"
	"path"
	"strconv"
	"sync"
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
	// closes it once mounted: the command does not inherit it. Command
	// takes a copy; the caller's stays the caller's.
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
	// Masks are paths of the workspace that bubblewrap shows empty or
	// read-only, parents before children; ignored on the host. Command
	// takes ownership of their files.
	Masks []Mask
	// Attach, under bubblewrap, is called by Start with the sandbox's
	// network namespace before the command runs (see Attacher); ignored
	// on the host.
	Attach Attacher
	// Terminal prepares the command for StartTerminal: under bubblewrap
	// the shell is started by setsid(1) with --ctty, so that inside the
	// sandbox it leads a session of its own whose controlling terminal is
	// the pseudo-terminal (see StartTerminal).
	Terminal bool
}

// Mask is a path of the workspace that the sandbox shows differently from
// the host. Masks are mounts: the command cannot remove, rename or
// hard-link them (EBUSY, EXDEV), nor write through them (EROFS).
type Mask struct {
	// Path is relative to Root: clean, slash-separated, "." for the root.
	Path string
	// Dir says the path is a directory.
	Dir bool
	// Hide shows the path empty and read-only: a file as an empty file, a
	// directory as an empty directory. Otherwise it is shown read-only.
	Hide bool
	// Pin binds the directory onto itself, read-write: it looks the same,
	// but as a mount point it cannot be renamed or removed (EBUSY). The
	// directories above the other masks are pinned, since a mount moves
	// with its parent: renaming one of them would carry the masked path to
	// a name no rule covers, unmasked in the next command. A pin needs a
	// File, like a read-only mask; one without is skipped.
	Pin bool
	// File is the path opened (O_PATH, without following a final link)
	// inside the workspace, for a read-only mask or a pin: the bind takes the
	// opened file, so a link swapped in for the path since it was judged
	// cannot redirect it out of the workspace. A read-only mask without a
	// File is hidden instead.
	File *os.File
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
//
// Under bubblewrap, cmd.ExtraFiles holds the sandbox's seccomp program, the
// files of the masks and the pipes of an Attacher: Start closes them once
// the child has its copies; a command that is never started must be given
// to Release.
func Command(s Spec) *exec.Cmd {
	dir := s.Dir()
	var cmd *exec.Cmd
	if s.Bwrap != nil {
		extra := make([]string, 0, 5+4*len(s.Masks))
		var files []*os.File
		if s.RootFD != nil {
			// A copy of the caller's descriptor: Start closes what the
			// command holds, and the caller keeps its own.
			extra = append(extra, "--bind-fd", strconv.Itoa(firstFileFD), s.mount())
			files = append(files, dupFile(s.RootFD)) // nil when it cannot: bwrap then fails, never binds by path
		} else {
			extra = append(extra, "--bind", s.Root, s.mount())
		}
		extra, files = appendMasks(extra, s.mount(), s.Masks, files, firstFileFD)
		var att *attachment
		if s.Attach != nil {
			extra, files, att = prepareAttach(s.Attach, extra, files, firstFileFD)
		}
		extra = append(extra, "--chdir", dir)
		argv := []string{s.Shell, "-c", s.Command}
		if s.Terminal {
			argv = append([]string{setsidPath(), "--ctty", "--wait"}, argv...)
		}
		cmd = s.Bwrap.command(extra, argv...)
		cmd.ExtraFiles = append(cmd.ExtraFiles, files...)
		if att != nil {
			attachments.Store(cmd, att)
		}
		if s.Terminal && setsidPath() == "" {
			cmd.Err = ErrNoSetsid // Start fails with it, and runs nothing
		}
	} else {
		for _, m := range s.Masks {
			if m.File != nil {
				m.File.Close()
			}
		}
		cmd = &exec.Cmd{Path: s.Shell, Args: []string{s.Shell, "-c", s.Command}, Dir: dir}
	}
	env := make([]string, 0, len(s.Env)+2)
	env = append(env, s.Env...)
	cmd.Env = append(env, "HOME="+dir, "PWD="+dir)
	setProcessGroup(cmd)
	return cmd
}

// Release closes the files Command gave a command that will not be
// started (Start closes them itself).
func Release(cmd *exec.Cmd) {
	if a := takeAttachment(cmd); a != nil {
		a.close()
	}
	for _, f := range cmd.ExtraFiles {
		if f != nil {
			f.Close()
		}
	}
	cmd.ExtraFiles = nil
}

// ErrNoSetsid is the error of StartTerminal under bubblewrap when no
// setsid(1) (util-linux) is found in the host's /usr/bin or /bin.
var ErrNoSetsid = errors.New("sandbox: a terminal under bubblewrap needs setsid(1) from util-linux in /usr/bin or /bin")

// setsidPath returns the path of setsid(1) on the host, which the sandbox
// sees at the same place, or "" when there is none.
var setsidPath = sync.OnceValue(func() string {
	for _, p := range []string{"/usr/bin/setsid", "/bin/setsid"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
})

// TermSize is a terminal's size in character cells.
type TermSize struct {
	Rows, Cols uint16
}
