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
	leaf  *leaf  // the command's cgroup; nil when tagged, or once finished
	tag   []byte // "\x00TagVar=value\x00" when tagged
	ended bool   // finish has run: the leaf may serve another command now
}

// newReaper prepares cmd: into a cgroup leaf of its own if one can be
// had, else tagged.
func newReaper(cmd *exec.Cmd) *reaper {
	r := &reaper{}
	if l := takeLeaf(); l != nil {
		r.leaf = l
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = l.fd
		return r
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
	if err != nil && r.leaf != nil {
		putLeaf(r.leaf) // nothing was started in it
		r.leaf = nil
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
	if r.leaf != nil {
		r.leaf.kill()
		return
	}
	killTagged(r.tag)
}

// finish is called once the command's shell has exited: it kills what is
// left, waits (a bounded time) until it is gone, and gives the leaf back.
func (r *reaper) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return
	}
	r.ended = true
	if r.leaf == nil {
		killTagged(r.tag)
		return
	}
	l := r.leaf
	r.leaf = nil
	if l.populated() { // the command left something running
		l.kill()
		if !l.awaitEmpty(5 * time.Second) {
			l.close() // stuck (uninterruptible sleep): never reused, never removable while populated
			return
		}
	}
	putLeaf(l)
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

// awaitEmpty waits up to timeout until the cgroup holds no process, woken
// by the kernel's notification of a change of its cgroup.events.
func (l *leaf) awaitEmpty(timeout time.Duration) bool {
	if !l.populated() {
		return true
	}
	in, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return false
	}
	defer unix.Close(in)
	if _, err := unix.InotifyAddWatch(in, filepath.Join(l.dir, "cgroup.events"), unix.IN_MODIFY); err != nil {
		return false
	}
	buf := make([]byte, 4096)
	for deadline := time.Now().Add(timeout); ; {
		if !l.populated() {
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

// populated reports whether the cgroup (or one below it) holds a process,
// as its cgroup.events says (read again from the start of the open file);
// an unreadable file counts as populated.
func (l *leaf) populated() bool {
	var buf [256]byte
	n, err := l.events.ReadAt(buf[:], 0)
	if n == 0 && err != nil {
		return true
	}
	for line := range strings.SplitSeq(string(buf[:n]), "\n") {
		if v, ok := strings.CutPrefix(line, "populated "); ok {
			return v != "0"
		}
	}
	return true
}

// leaf is a cgroup for one command at a time, below cgroupParent.
type leaf struct {
	dir    string
	fd     int      // open, for clone3
	events *os.File // its cgroup.events, open
	killed bool     // cgroup.kill was written: never reused (see putLeaf)
}

// kill kills everything in the cgroup, at once (cgroup.kill).
func (l *leaf) kill() {
	l.killed = true
	_ = os.WriteFile(filepath.Join(l.dir, "cgroup.kill"), []byte("1"), 0)
}

// close closes the leaf's files.
func (l *leaf) close() {
	unix.Close(l.fd)
	l.events.Close()
}

// remove closes and removes the (empty) cgroup.
func (l *leaf) remove() {
	l.close()
	_ = unix.Rmdir(l.dir)
}

// Empty leaves are kept for the next commands: making a cgroup and
// starting a process in a fresh one costs several times what reusing one
// does. They are named agentbe-<pid>-<n>; the first process of a user to
// use cgroups removes the empty ones of processes that are gone.
const maxIdleLeaves = 8

var leaves struct {
	mu   sync.Mutex
	idle []*leaf
	seq  uint64
}

// takeLeaf returns an empty leaf for a command, or nil when no cgroup can
// be had.
func takeLeaf() *leaf {
	parent := cgroupParent()
	if parent == "" {
		return nil
	}
	leaves.mu.Lock()
	if n := len(leaves.idle); n > 0 {
		l := leaves.idle[n-1]
		leaves.idle = leaves.idle[:n-1]
		leaves.mu.Unlock()
		return l
	}
	leaves.seq++
	seq := leaves.seq
	leaves.mu.Unlock()
	l, err := makeLeaf(parent, seq)
	if err != nil {
		return nil
	}
	return l
}

// putLeaf gives back the leaf of a finished command, which is empty. A
// leaf that was killed is removed instead: some kernels (6.18 here) kill a
// process started with CLONE_INTO_CGROUP in a cgroup that was once killed,
// at birth.
func putLeaf(l *leaf) {
	leaves.mu.Lock()
	if !l.killed && len(leaves.idle) < maxIdleLeaves {
		leaves.idle = append(leaves.idle, l)
		l = nil
	}
	leaves.mu.Unlock()
	if l != nil {
		l.remove()
	}
}

// makeLeaf creates a cgroup below parent and opens it.
func makeLeaf(parent string, seq uint64) (*leaf, error) {
	dir := filepath.Join(parent, fmt.Sprintf("agentbe-%d-%d", os.Getpid(), seq))
	if err := unix.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = unix.Rmdir(dir)
		return nil, err
	}
	events, err := os.Open(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		unix.Close(fd)
		_ = unix.Rmdir(dir)
		return nil, err
	}
	return &leaf{dir: dir, fd: fd, events: events}, nil
}

// removeStaleLeaves removes the empty leaves below parent left by
// processes that are gone (a populated one cannot be removed, and is not).
func removeStaleLeaves(parent string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "agentbe-")
		if !ok || !e.IsDir() {
			continue
		}
		pid, _, _ := strings.Cut(rest, "-")
		if _, err := os.Stat("/proc/" + pid); err == nil || pid == strconv.Itoa(os.Getpid()) {
			continue // alive (or a reused pid: left alone)
		}
		_ = unix.Rmdir(filepath.Join(parent, e.Name()))
	}
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
	removeStaleLeaves(dir)
	l, err := makeLeaf(dir, 0)
	if err != nil {
		return ""
	}
	defer l.remove()
	if _, err := os.Stat(filepath.Join(l.dir, "cgroup.kill")); err != nil {
		return ""
	}
	p, err := os.StartProcess("/bin/sh", []string{"sh", "-c", ":"}, &os.ProcAttr{
		Sys: &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: l.fd}})
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
