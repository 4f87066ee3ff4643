package sandbox

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A command run on the host (isolation none or software) is its shell's
// process group, but a process can leave the group (setsid, a daemon's
// double fork) and outlive the command. The reaper of a host command
// finds those too, in one of two ways:
//
//   - a cgroup v2 leaf of its own, when this process can make one (root,
//     or a delegated subtree): the shell is started inside it atomically
//     (clone3 CLONE_INTO_CGROUP), nothing it starts can leave it, and
//     cgroup.kill ends all of it at once. Every escape is caught.
//   - otherwise, a tag: a variable (TagVar) with a random value in the
//     command's environment, which every process it starts inherits; the
//     reaper kills each process whose initial environment holds the tag
//     (through a pidfd, so a reused pid is never hit). This catches
//     setsid, nohup and double forks, but NOT a process started with a
//     cleared or rewritten environment (env -i, a program that execs
//     with its own environment), nor one whose environment this process
//     may not read (a setuid program, another user's).
//
// Under bubblewrap neither is needed: the sandbox is a pid namespace, and
// everything in it dies with its init.

// TagVar names the variable that tags the processes of a host command
// when no cgroup can be made for it.
const TagVar = "AGENTBE_COMMAND_TAG"

// reaper ends what a host command started.
type reaper struct {
	mu    sync.Mutex
	leaf  string // the command's cgroup directory; "" when tagged, or once removed
	cgfd  int    // the open leaf, for clone3, until the command has started
	tag   []byte // "\x00TagVar=value\x00" when tagged
	ended bool   // finish has run
}

// newReaper prepares cmd: into a cgroup leaf of its own if one can be
// made, else tagged.
func newReaper(cmd *exec.Cmd) *reaper {
	r := &reaper{cgfd: -1}
	if parent := cgroupParent(); parent != "" {
		if leaf, fd, err := makeLeaf(parent); err == nil {
			r.leaf, r.cgfd = leaf, fd
			if cmd.SysProcAttr == nil {
				cmd.SysProcAttr = &syscall.SysProcAttr{}
			}
			cmd.SysProcAttr.UseCgroupFD = true
			cmd.SysProcAttr.CgroupFD = fd
			return r
		}
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	value := TagVar + "=" + hex.EncodeToString(id[:])
	cmd.Env = append(cmd.Env, value)
	r.tag = []byte("\x00" + value + "\x00")
	return r
}

// started is called once cmd.Start has returned err.
func (r *reaper) started(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cgfd >= 0 {
		unix.Close(r.cgfd)
		r.cgfd = -1
	}
	if err != nil && r.leaf != "" {
		_ = unix.Rmdir(r.leaf)
		r.leaf = ""
		r.ended = true
	}
}

// kill kills every process of the command now.
func (r *reaper) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return
	}
	if r.leaf != "" {
		_ = os.WriteFile(filepath.Join(r.leaf, "cgroup.kill"), []byte("1"), 0)
		return
	}
	killTagged(r.tag)
}

// finish is called once the command's shell has exited: it kills what is
// left, waits (a bounded time) until it is gone, and removes the leaf.
func (r *reaper) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return
	}
	r.ended = true
	if r.leaf == "" {
		killTagged(r.tag)
		return
	}
	leaf := r.leaf
	r.leaf = ""
	if populated(filepath.Join(leaf, "cgroup.events")) { // the command left something running
		_ = os.WriteFile(filepath.Join(leaf, "cgroup.kill"), []byte("1"), 0)
		if !awaitEmpty(leaf, 5*time.Second) {
			return // stuck (uninterruptible sleep): a cgroup holding processes cannot be removed
		}
	}
	_ = unix.Rmdir(leaf)
}

// killTagged kills, pass after pass, every process whose environment holds
// tag, until a pass finds none (a bounded number of passes: each one kills
// what the last one missed, forked in between).
func killTagged(tag []byte) {
	self := os.Getpid()
	for range 100 {
		found := false
		entries, err := os.ReadDir("/proc")
		if err != nil {
			return
		}
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == self {
				continue
			}
			if killIfTagged(pid, tag) {
				found = true
			}
		}
		if !found {
			return
		}
	}
}

// killIfTagged kills pid if its environment holds tag, and reports whether
// it did. The pidfd is opened before the environment is read, so the
// signal reaches the process that was read even if pid is reused.
func killIfTagged(pid int, tag []byte) bool {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil && !errors.Is(err, unix.ENOSYS) {
		return false // gone, or not ours to see
	}
	env, rerr := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	tagged := rerr == nil && bytes.Contains(append([]byte{0}, env...), tag)
	if tagged {
		if pidfd >= 0 && err == nil {
			_ = unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		} else {
			_ = unix.Kill(pid, unix.SIGKILL) // no pidfd (Linux < 5.3): a tiny reuse race remains
		}
	}
	if err == nil {
		unix.Close(pidfd)
	}
	return tagged
}

// awaitEmpty waits up to timeout until the cgroup at dir holds no process
// (its cgroup.events says "populated 0"), woken by the kernel's
// notification of a change of that file.
func awaitEmpty(dir string, timeout time.Duration) bool {
	events := filepath.Join(dir, "cgroup.events")
	if !populated(events) {
		return true
	}
	in, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return false
	}
	defer unix.Close(in)
	if _, err := unix.InotifyAddWatch(in, events, unix.IN_MODIFY); err != nil {
		return false
	}
	buf := make([]byte, 4096)
	for deadline := time.Now().Add(timeout); ; {
		if !populated(events) {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		fds := []unix.PollFd{{Fd: int32(in), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(left/time.Millisecond)+1); err != nil && err != unix.EINTR {
			return false
		}
		for {
			if _, err := unix.Read(in, buf); err != nil {
				break // drained (EAGAIN)
			}
		}
	}
}

// populated reports whether a cgroup.events file says the cgroup (or one
// below it) holds a process; an unreadable file counts as populated.
func populated(events string) bool {
	data, err := os.ReadFile(events)
	if err != nil {
		return true
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "populated "); ok {
			return v != "0"
		}
	}
	return true
}

var leafSeq atomic.Uint64

// makeLeaf creates a cgroup below parent for one command and opens it.
func makeLeaf(parent string) (string, int, error) {
	leaf := filepath.Join(parent, fmt.Sprintf("agentbe-%d-%d", os.Getpid(), leafSeq.Add(1)))
	if err := unix.Mkdir(leaf, 0o755); err != nil {
		return "", -1, err
	}
	fd, err := unix.Open(leaf, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = unix.Rmdir(leaf)
		return "", -1, err
	}
	return leaf, fd, nil
}

// cgroupsOff turns the cgroup way off, for tests of the tag.
var cgroupsOff atomic.Bool

// cgroupParent returns the cgroup v2 directory below which this process
// can make command leaves (its own cgroup in the unified hierarchy), or ""
// when it cannot: no cgroup2 mount, no right to create or enter cgroups
// there, or a kernel without cgroup.kill (5.14) or CLONE_INTO_CGROUP. The
// first call checks by starting /bin/sh in a trial leaf.
func cgroupParent() string {
	if cgroupsOff.Load() {
		return ""
	}
	return cgroupHome()
}

var cgroupHome = sync.OnceValue(func() string {
	dir := ownCgroupDir()
	if dir == "" {
		return ""
	}
	leaf, fd, err := makeLeaf(dir)
	if err != nil {
		return ""
	}
	defer unix.Rmdir(leaf)
	defer unix.Close(fd)
	if _, err := os.Stat(filepath.Join(leaf, "cgroup.kill")); err != nil {
		return ""
	}
	p, err := os.StartProcess("/bin/sh", []string{"sh", "-c", ":"}, &os.ProcAttr{
		Sys: &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}})
	if err != nil {
		return ""
	}
	if _, err := p.Wait(); err != nil {
		return ""
	}
	return dir
})

// ownCgroupDir returns the directory of this process's cgroup in the
// cgroup v2 hierarchy, or "".
func ownCgroupDir() string {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	var own string
	found := false
	for line := range strings.SplitSeq(string(data), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			own, found = p, true
		}
	}
	if !found {
		return ""
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - type source super
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, fl := range fields {
			if fl == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+1 >= len(fields) || fields[sep+1] != "cgroup2" {
			continue
		}
		root, mountPoint := fields[3], fields[4]
		rel, ok := strings.CutPrefix(own, root)
		if !ok || (rel != "" && root != "/" && rel[0] != '/') {
			continue
		}
		dir := filepath.Join(mountPoint, rel)
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir
		}
	}
	return ""
}
