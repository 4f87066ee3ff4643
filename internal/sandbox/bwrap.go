package sandbox

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path"
	"strings"
	"sync"
)

// systemDirs are the host directories every sandbox gets, read-only, as the
// agent-backend client specification lists them.
var systemDirs = []string{"/usr", "/lib", "/lib64", "/bin", "/sbin"}

// Bwrap is a bubblewrap configuration: where bwrap is and the arguments
// every sandbox gets. It is immutable and safe for concurrent use.
type Bwrap struct {
	path string
	args []string // everything before the workspace bind
}

// NewBwrap returns the sandbox configuration of the specification for the
// bwrap binary at bwrapPath:
//
//   - /usr, /lib, /lib64, /bin and /sbin read-only (missing ones skipped; one
//     that is a symlink on the host, as /lib -> usr/lib on merged-/usr
//     systems, becomes the same symlink, which saves a mount);
//   - a fresh /dev, /proc and a private tmpfs /tmp;
//   - extraReadOnly paths read-only at the same place, if they exist
//     (mounted after the tmpfs, so paths under /tmp work too);
//   - every namespace unshared except the network (--unshare-all
//     --share-net), killed when bwrap dies (--die-with-parent), in a new
//     terminal session (--new-session: a command cannot push keystrokes into
//     the caller's terminal with TIOCSTI).
//
// Command adds the workspace, bound read-write at WorkspaceDir, and the
// working directory.
func NewBwrap(bwrapPath string, extraReadOnly []string) *Bwrap {
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
	args = append(args, "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp")
	for _, p := range extraReadOnly { // after the tmpfs, which would hide those under /tmp
		args = append(args, "--ro-bind-try", p, p)
	}
	args = append(args, "--unshare-all", "--share-net", "--die-with-parent", "--new-session")
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

var probes sync.Map // key string -> *probe

type probe struct {
	once sync.Once
	err  error
}

// Probe runs `shell -c true` once in a sandbox of this configuration and
// returns why it failed, if it did: having the binary is not enough, since
// some containers forbid the namespaces bwrap needs. The answer is cached
// per configuration and shell for the life of the process.
func (b *Bwrap) Probe(shell string) error {
	key := b.path + "\x00" + shell + "\x00" + strings.Join(b.args, "\x00")
	v, _ := probes.LoadOrStore(key, new(probe))
	pr := v.(*probe)
	pr.once.Do(func() {
		args := append([]string{"bwrap"}, b.args...)
		args = append(args, "--", shell, "-c", "true")
		var stderr bytes.Buffer
		cmd := &exec.Cmd{Path: b.path, Args: args, Stderr: &stderr}
		if err := cmd.Run(); err != nil {
			if msg := strings.TrimSpace(stderr.String()); msg != "" {
				err = errors.New(msg)
			}
			pr.err = err
		}
	})
	return pr.err
}
