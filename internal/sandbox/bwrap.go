package sandbox

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path"
	"runtime"
	"strings"
	"sync"
)

// systemDirs are the host directories every sandbox gets, read-only, as the
// agent-backend client specification lists them.
var systemDirs = []string{"/usr", "/lib", "/lib64", "/bin", "/sbin"}

// procReadOnly returns the parts of /proc that are bound read-only over
// the sandbox's own: every directory at its top but the processes' (sys,
// irq, bus, fs, driver, pressure, ...) and every file there with a write
// bit (sysrq-trigger, mtrr, ...). The sandbox runs as the user who runs
// bwrap, and for root the kernel lets many of these be written on the
// strength of the user id alone, no capability needed: a sysctl such as
// kernel.core_pattern (whose pipe handler the host's root then runs), SysRq,
// interrupt affinity, dynamic debug. Docker and Flatpak make the same
// places read-only; this makes all of them so, known or not, while the
// processes' own entries (/proc/self) stay as they are.
var procReadOnly = sync.OnceValue(func() []string {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var paths []string
	for _, e := range entries {
		if e.Name()[0] >= '0' && e.Name()[0] <= '9' {
			continue // a process
		}
		fi, err := e.Info()
		if err != nil || fi.Mode()&os.ModeSymlink != 0 { // self, thread-self, mounts, net
			continue
		}
		if fi.IsDir() || fi.Mode().Perm()&0o222 != 0 {
			paths = append(paths, "/proc/"+e.Name())
		}
	}
	return paths
})

// procHidden are the files of /proc that describe the whole host rather
// than the sandbox (its keys, its timers and tasks, its memory); they are
// covered with the host's /dev/null, which cannot be opened there (the
// bind is nodev).
var procHidden = []string{"/proc/keys", "/proc/key-users", "/proc/kcore", "/proc/timer_list", "/proc/sched_debug", "/proc/latency_stats"}

// BwrapConfig is what varies between sandbox configurations.
type BwrapConfig struct {
	// ReadOnly lists extra host paths bound read-only at the same place,
	// if they exist (after /tmp's tmpfs, so paths under /tmp work too).
	ReadOnly []string
	// HostNetwork shares the host's network namespace. false gives the
	// sandbox a network namespace of its own, with only a loopback
	// interface: the host's loopback services are out of reach.
	HostNetwork bool
}

// Bwrap is a bubblewrap configuration: where bwrap is and the arguments
// every sandbox gets. It is immutable and safe for concurrent use.
type Bwrap struct {
	path    string
	args    []string // everything before the workspace bind, --seccomp included
	warning string   // a protection this configuration lacks; see Probe
}

// The hardening flags, which Probe may have to leave out on an old bwrap
// or a host without user namespaces.
const (
	flagUnshareUser   = "--unshare-user"
	flagDisableUserns = "--disable-userns"
)

// The descriptors of a sandbox's cmd.ExtraFiles: the seccomp program bwrap
// reads, then the workspace (when bound by descriptor) and the files of
// the read-only masks.
const (
	seccompFD   = "3"
	firstFileFD = 4
)

// NewBwrap returns the sandbox configuration for the bwrap binary at
// bwrapPath:
//
//   - /usr, /lib, /lib64, /bin and /sbin read-only (missing ones skipped; one
//     that is a symlink on the host, as /lib -> usr/lib on merged-/usr
//     systems, becomes the same symlink, which saves a mount);
//   - a fresh /dev, a fresh /proc whose kernel-wide parts (procReadOnly)
//     are read-only and whose host-wide listings (procHidden) are hidden,
//     and a private tmpfs /tmp;
//   - cfg.ReadOnly paths read-only at the same place, if they exist;
//   - every namespace unshared, the user namespace included (the network
//     too unless cfg.HostNetwork), and no further user namespace allowed
//     inside (--disable-userns), so nothing can regain a capability;
//   - every capability dropped (--cap-drop ALL): whoever runs bwrap, root
//     included, the command's effective, permitted and bounding sets are
//     empty, and it cannot mount or remount anything;
//   - a seccomp filter refusing the kernel keyring (not namespaced, so a
//     command running as root could read or change the host root's keys);
//   - killed when bwrap dies (--die-with-parent), in a new terminal session
//     (--new-session: a command cannot push keystrokes into the caller's
//     terminal with TIOCSTI).
//
// Command adds the workspace, bound read-write at WorkspaceDir, the masks
// and the working directory. Probe checks that the configuration works.
func NewBwrap(bwrapPath string, cfg BwrapConfig) *Bwrap {
	var args []string
	for _, dir := range systemDirs {
		fi, err := os.Lstat(dir)
		switch {
		case err != nil:
			continue
		case fi.Mode()&os.ModeSymlink != 0:
			if target, err := os.Readlink(dir); err == nil && insideSystemDirs(dir, target) {
				args = append(args, "--symlink", target, dir)
				continue
			}
		}
		args = append(args, "--ro-bind", dir, dir)
	}
	args = append(args, "--dev", "/dev", "--proc", "/proc")
	for _, p := range procReadOnly() {
		args = append(args, "--ro-bind-try", p, p)
	}
	for _, p := range procHidden {
		if _, err := os.Lstat(p); err == nil {
			args = append(args, "--ro-bind", "/dev/null", p)
		}
	}
	args = append(args, "--tmpfs", "/tmp")
	for _, p := range cfg.ReadOnly { // after the tmpfs, which would hide those under /tmp
		args = append(args, "--ro-bind-try", p, p)
	}
	args = append(args, "--unshare-all", flagUnshareUser, flagDisableUserns)
	if cfg.HostNetwork {
		args = append(args, "--share-net")
	}
	args = append(args, "--cap-drop", "ALL", "--seccomp", seccompFD, "--die-with-parent", "--new-session")
	return &Bwrap{path: bwrapPath, args: args}
}

// insideSystemDirs reports whether the symlink link -> target resolves
// (lexically) into a system directory that the sandbox binds for real, so
// that the same symlink works inside.
func insideSystemDirs(link, target string) bool {
	if !path.IsAbs(target) {
		target = path.Join(path.Dir(link), target)
	}
	target = path.Clean(target)
	for _, dir := range systemDirs {
		if dir == link {
			continue
		}
		if target == dir || strings.HasPrefix(target, dir+"/") {
			if fi, err := os.Lstat(dir); err == nil && fi.IsDir() {
				return true
			}
		}
	}
	return false
}

// Path returns the path of the bwrap binary.
func (b *Bwrap) Path() string { return b.path }

// Warning says which protection this configuration lacks because the host
// or its bwrap cannot provide it ("" when it has them all). Only Probe
// returns such a configuration, and only for protections whose absence
// still leaves the command without capabilities.
func (b *Bwrap) Warning() string { return b.warning }

// without returns a copy of b without the given flags, noting why.
func (b *Bwrap) without(warning string, flags ...string) *Bwrap {
	c := &Bwrap{path: b.path, warning: warning}
	for _, a := range b.args {
		drop := false
		for _, f := range flags {
			drop = drop || a == f
		}
		if !drop {
			c.args = append(c.args, a)
		}
	}
	return c
}

// command returns the *exec.Cmd running bwrap with b's arguments, then
// extra, then the program argv; the seccomp program is its first extra
// file.
func (b *Bwrap) command(extra []string, argv ...string) *exec.Cmd {
	args := make([]string, 0, len(b.args)+len(extra)+2+len(argv))
	args = append(args, "bwrap")
	args = append(args, b.args...)
	args = append(args, extra...)
	args = append(args, "--")
	args = append(args, argv...)
	return &exec.Cmd{Path: b.path, Args: args, ExtraFiles: []*os.File{seccompProgram()}}
}

var probes sync.Map // key string -> *probe

type probe struct {
	once sync.Once
	bw   *Bwrap
	err  error
}

// capsScript exits 97 unless the effective, permitted and bounding
// capability sets are all empty: a sandbox that holds a capability must
// never run a command.
const capsScript = `while read -r k v; do case $k in CapEff:|CapPrm:|CapBnd:) [ "$v" = 0000000000000000 ] || exit 97;; esac; done < /proc/self/status`

// errNoSeccomp is Probe's answer on an architecture this package has no
// seccomp filter for.
var errNoSeccomp = errors.New("no seccomp filter for " + runtime.GOARCH + " here: the sandbox cannot close the kernel keyring")

// errCapsKept is Probe's answer when bwrap ran but the command still held
// a capability.
var errCapsKept = errors.New("the sandbox keeps capabilities (--cap-drop ALL had no effect)")

// Probe runs a check of the sandbox once, with shell, and returns the
// configuration to use: b itself, or, when the host or its bwrap cannot
// give a nested-user-namespace ban, a copy without it whose Warning says
// so. It fails when bwrap cannot create the sandbox at all, or when the
// command inside still holds a capability: having the binary is not
// enough, since some containers forbid the namespaces bwrap needs. The
// answer is cached per configuration and shell for the life of the
// process.
func (b *Bwrap) Probe(shell string) (*Bwrap, error) {
	key := b.path + "\x00" + shell + "\x00" + strings.Join(b.args, "\x00")
	v, _ := probes.LoadOrStore(key, new(probe))
	pr := v.(*probe)
	pr.once.Do(func() {
		candidates := []*Bwrap{
			b,
			b.without("bwrap lacks --disable-userns (bubblewrap 0.8.0 or later): commands may create nested user namespaces", flagDisableUserns),
			b.without("bwrap cannot create a user namespace here: commands run without one, so nested user namespaces are not banned", flagUnshareUser, flagDisableUserns),
		}
		var first error
		for _, c := range candidates {
			err := c.try(shell)
			if err == nil {
				pr.bw = c
				return
			}
			if first == nil {
				first = err
			}
			if err == errCapsKept || err == errNoSeccomp {
				break // never run a sandbox that keeps capabilities, nor an unfiltered one
			}
		}
		pr.err = first // the full configuration's failure says best what is wrong
	})
	return pr.bw, pr.err
}

// try runs the capability check in a sandbox of this configuration.
func (b *Bwrap) try(shell string) error {
	if seccompFilter() == nil {
		return errNoSeccomp
	}
	cmd := b.command(nil, shell, "-c", capsScript)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	Release(cmd)
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == 97 {
			return errCapsKept
		}
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return errors.New(msg)
		}
		return err
	}
	return nil
}
