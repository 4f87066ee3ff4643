//go:build linux

package sandbox

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/agentbackend/agentbackend/internal/attacktest"
	"github.com/agentbackend/agentbackend/internal/proctest"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// The attacks of a hostile command on the sandbox's guarantees. Each one
// asserts that its target stayed unread and unwritten. They run as whoever
// runs the tests: as root they are the real thing (a root-run bwrap used to
// keep every capability); as an unprivileged user (setpriv --reuid=65534
// --regid=65534 --clear-groups) they must hold just the same.

// attackBwrap returns a probed sandbox configuration, or skips (fails when
// AGENTBE_REQUIRE names bwrap).
func attackBwrap(t *testing.T, cfg BwrapConfig) *Bwrap {
	t.Helper()
	testenv.NeedBwrap(t)
	bw, err := NewBwrap(testenv.NeedCommand(t, "bwrap", "bwrap"), cfg).Probe("/bin/sh")
	require.NoError(t, err, "Probe")
	assert.Empty(t, bw.Warning(), "this host's bwrap should give every protection")
	return bw
}

// inSandbox runs script with /bin/sh in a sandbox of bw over a fresh
// workspace (or root, if given), and returns its output and exit code.
func inSandbox(t *testing.T, bw *Bwrap, root, script string) (stdout, stderr string, code int) {
	t.Helper()
	if root == "" {
		root = t.TempDir()
	}
	out, errOut, state := run(t, Spec{Shell: "/bin/sh", Command: script, Root: root, Cwd: ".", Bwrap: bw,
		Env: BaseEnv(false, true)})
	return out, errOut, ExitCode(state)
}

func TestAttackCapabilities(t *testing.T) {
	bw := attackBwrap(t, BwrapConfig{})
	out, errOut, code := inSandbox(t, bw, "", "cat /proc/self/status")
	require.Equal(t, 0, code, errOut)
	seen := map[string]string{}
	for line := range strings.SplitSeq(out, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			seen[k] = strings.TrimSpace(v)
		}
	}
	for _, set := range []string{"CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"} {
		assert.Equal(t, "0000000000000000", seen[set], "%s inside the sandbox (run as uid %d)", set, os.Geteuid())
	}
	assert.Equal(t, "1", seen["NoNewPrivs"])
	assert.Equal(t, "2", seen["Seccomp"], "the keyring filter is not loaded")
}

func TestAttackMountAndNamespaces(t *testing.T) {
	bw := attackBwrap(t, BwrapConfig{})
	target := "/usr/agentbe-attack-" + proctest.SleepArg()
	t.Cleanup(func() { os.Remove(target) })
	for name, script := range map[string]string{
		"remount /usr rw":      "mount -o remount,rw,bind /usr && touch " + target,
		"remount / rw":         "mount -o remount,rw / && touch " + target,
		"write /usr":           "touch " + target,
		"mount a tmpfs":        "mount -t tmpfs none /usr && touch " + target,
		"new user namespace":   "unshare -U -r sh -c 'mount -t tmpfs none /usr && touch " + target + "'",
		"new mount namespace":  "unshare -m sh -c 'mount -o remount,rw /usr && touch " + target + "'",
		"umount a /proc guard": "umount /proc/sys && echo 1 > /proc/sys/kernel/core_pattern",
	} {
		t.Run(name, func(t *testing.T) {
			tool := strings.Fields(script)[0]
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s not installed", tool)
			}
			out, errOut, code := inSandbox(t, bw, "", script)
			assert.NotEqual(t, 0, code, "the attack succeeded: %q %q", out, errOut)
			assert.NoFileExists(t, target)
		})
	}
}

// The sandbox runs as its caller's user id, root included, and the kernel
// lets a uid-0 process write sysctls and other /proc knobs without any
// capability: none of them may be writable inside.
func TestAttackProcKnobs(t *testing.T) {
	bw := attackBwrap(t, BwrapConfig{})
	restore := func(path string, before []byte) {
		if after, err := os.ReadFile(path); err == nil && string(after) != string(before) {
			_ = os.WriteFile(path, before, 0)
			t.Errorf("the sandbox changed the host's %s to %q (restored)", path, after)
		}
	}
	pattern, err := os.ReadFile("/proc/sys/kernel/core_pattern")
	require.NoError(t, err)
	hostname, err := os.ReadFile("/proc/sys/kernel/hostname")
	require.NoError(t, err)
	_, _, _ = inSandbox(t, bw, "", "echo '|/bin/sh -c id' > /proc/sys/kernel/core_pattern; "+
		"echo agentbe-evil > /proc/sys/kernel/hostname; hostname agentbe-evil; "+
		"echo 1 > /proc/sys/vm/drop_caches; echo h > /proc/sysrq-trigger")
	restore("/proc/sys/kernel/core_pattern", pattern)
	restore("/proc/sys/kernel/hostname", hostname)

	// No file of /proc outside the processes' own entries opens for
	// writing (opening writes nothing: `: >>`).
	out, errOut, code := inSandbox(t, bw, "", `find /proc \( -path '/proc/[0-9]*' -o -path /proc/self -o -path /proc/thread-self \) -prune -o -type f -writable -print 2>/dev/null |
		while read -r f; do if (: >> "$f") 2>/dev/null; then echo "$f"; fi; done; exit 0`)
	require.Equal(t, 0, code, errOut)
	assert.Empty(t, out, "writable in the sandbox's /proc")

	// Host-wide listings are hidden.
	out, _, _ = inSandbox(t, bw, "", "cat /proc/keys /proc/key-users /proc/timer_list 2>/dev/null | wc -c")
	assert.Equal(t, "0\n", out)
}

// Keyrings are not namespaced: a root command could read or clear the
// host root's keys. The seccomp filter refuses the keyring calls.
func TestAttackKeyring(t *testing.T) {
	bw := attackBwrap(t, BwrapConfig{})
	perl, err := exec.LookPath("perl")
	if err != nil {
		t.Skip("perl not installed (the attack needs a raw syscall)")
	}
	const secret = "agentbe-host-key-secret"
	id, err := unix.AddKey("user", "agentbe-attack-"+proctest.SleepArg(), []byte(secret), unix.KEY_SPEC_USER_KEYRING)
	if err == nil {
		t.Cleanup(func() { _, _ = unix.KeyctlInt(unix.KEYCTL_REVOKE, id, 0, 0, 0) })
		// Let the owner's user id read it, as many keys (and every user
		// keyring) do: possession is then not needed.
		require.NoError(t, unix.KeyctlSetperm(id, 0x3f030000))
	} else {
		t.Logf("no key on the host (%v): checking that the calls are refused", err)
		id = 0
	}
	script := fmt.Sprintf(`%s -e 'my $buf = "\0" x 64; my $n = syscall(%d, 11, %d, $buf, 64); print "read=$n ", ($n > 0 ? substr($buf, 0, $n) : $!+0), "\n"; $n = syscall(%d, 7, -4); print "clear=$n ", $!+0, "\n"; $n = syscall(%d, 0, -4, 0); print "id=$n ", $!+0, "\n"'`,
		perl, unix.SYS_KEYCTL, id, unix.SYS_KEYCTL, unix.SYS_KEYCTL)
	out, errOut, _ := inSandbox(t, bw, "", script)
	eperm := fmt.Sprint(int(unix.EPERM))
	assert.Equal(t, "read=-1 "+eperm+"\nclear=-1 "+eperm+"\nid=-1 "+eperm+"\n", out, errOut)
	assert.NotContains(t, out, secret)
	if id != 0 {
		buf := make([]byte, 64)
		n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, id, buf, 0)
		require.NoError(t, err, "the host's key is gone")
		assert.Equal(t, secret, string(buf[:n]))
	}
}

// By default the sandbox has a network of its own: the host's loopback
// services are out of reach. HostNetwork opts into the host's.
func TestAttackHostLoopback(t *testing.T) {
	if _, err := os.Stat("/bin/bash"); err != nil {
		t.Skip("needs bash for /dev/tcp")
	}
	connect, reached := attacktest.HostService(t)
	for _, host := range []bool{false, true} {
		t.Run(fmt.Sprint("host network ", host), func(t *testing.T) {
			bw := attackBwrap(t, BwrapConfig{HostNetwork: host})
			out, _, _ := run(t, Spec{Shell: "/bin/bash", Command: connect, Root: t.TempDir(), Cwd: ".", Bwrap: bw})
			if host {
				assert.Equal(t, "connected\n", out)
				assert.True(t, reached(true), "the listener saw no connection")
			} else {
				assert.Empty(t, out, "a sandboxed command reached the host's 127.0.0.1")
				assert.False(t, reached(false))
			}
		})
	}
}

func TestBaseEnv(t *testing.T) {
	t.Setenv("AGENTBE_SECRET_KEY", "sk-host")
	t.Setenv("LC_ALL", "C.UTF-8")
	t.Setenv("TERM", "xterm")
	t.Setenv("TMPDIR", "/host/tmp")
	t.Setenv("PATH", "/host/bin:/usr/bin")
	assert.ElementsMatch(t, []string{"LC_ALL=C.UTF-8", "TERM=xterm", "TMPDIR=/host/tmp", "PATH=/host/bin:/usr/bin"},
		filterEnv(BaseEnv(false, false), "LC_ALL", "TERM", "TMPDIR", "PATH", "AGENTBE_SECRET_KEY"))
	assert.ElementsMatch(t, []string{"LC_ALL=C.UTF-8", "TERM=xterm", "TMPDIR=/tmp", "PATH=/host/bin:/usr/bin"},
		filterEnv(BaseEnv(false, true), "LC_ALL", "TERM", "TMPDIR", "PATH", "AGENTBE_SECRET_KEY"))
	assert.Contains(t, BaseEnv(true, false), "AGENTBE_SECRET_KEY=sk-host")
	assert.Equal(t, "TMPDIR=/tmp", BaseEnv(true, true)[len(BaseEnv(true, true))-1])
	t.Setenv("PATH", "")
	assert.Contains(t, BaseEnv(false, false), "PATH="+DefaultPath)
	for _, kv := range BaseEnv(false, false) {
		assert.NotContains(t, kv, "AGENTBE_SECRET_KEY")
	}
}

// filterEnv keeps the entries of env with one of the names.
func filterEnv(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		for _, n := range names {
			if name == n {
				out = append(out, kv)
			}
		}
	}
	return out
}

// maskedWorkspace is a workspace with a secret file, a secret directory, a
// protected file and a protected directory, and the masks that hide or
// protect them (the protected ones opened as a caller does).
func maskedWorkspace(t *testing.T) (string, []Mask) {
	t.Helper()
	root := t.TempDir()
	for p, content := range map[string]string{
		".env": "SECRET=env", "keys/id_rsa": "SECRET=key", "keys/sub/x.pem": "SECRET=pem",
		"locked.txt": "locked", "frozen/a.txt": "frozen", "open.txt": "open",
	} {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(root, p), []byte(content), 0o644))
	}
	open := func(p string) *os.File {
		f, err := os.OpenFile(filepath.Join(root, p), unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		require.NoError(t, err)
		return f
	}
	return root, []Mask{
		{Path: ".env", Hide: true},
		{Path: "frozen", Dir: true, File: open("frozen")},
		{Path: "keys", Dir: true, Hide: true},
		{Path: "locked.txt", File: open("locked.txt")},
	}
}

func TestAttackMasks(t *testing.T) {
	bw := attackBwrap(t, BwrapConfig{})
	for name, script := range map[string]string{
		"cat":       "cat .env keys/id_rsa keys/sub/x.pem",
		"glob":      "cat .e?v k*/*",
		"grep -r":   "grep -r SECRET .",
		"tar":       "tar cf - . | tar xOf -",
		"cp":        "cp .env copy && cat copy",
		"hard link": "ln .env h; cat h",
		"dd":        "dd if=.env bs=1 2>/dev/null",
		"ls keys":   "ls -A keys",
		"find":      "find . -name '*.pem' -o -name id_rsa",
		"sed":       "sed -n p .env",
	} {
		t.Run(name, func(t *testing.T) {
			root, masks := maskedWorkspace(t)
			out, errOut, _ := run(t, Spec{Shell: "/bin/sh", Command: script, Root: root, Cwd: ".", Bwrap: bw, Masks: masks})
			assert.NotContains(t, out+errOut, "SECRET", "the command read a hidden file")
			assert.NotContains(t, out, "id_rsa")
			if _, err := os.Stat(filepath.Join(root, "h")); err == nil {
				t.Error("a hard link to the hidden file was made")
			}
		})
	}
	t.Run("writes", func(t *testing.T) {
		root, masks := maskedWorkspace(t)
		out, errOut, _ := run(t, Spec{Shell: "/bin/sh", Root: root, Cwd: ".", Bwrap: bw, Masks: masks, Command: `
			echo x > .env; rm -f .env; mv .env moved
			echo x > locked.txt; echo x >> locked.txt; rm -f locked.txt; mv locked.txt moved2; chmod 777 locked.txt; ln locked.txt hl
			echo x > frozen/a.txt; rm -f frozen/a.txt; touch frozen/new; mv frozen gone; rm -rf frozen
			echo fine > open.txt; touch newfile; echo done`})
		assert.Equal(t, "done\n", out, errOut)
		for p, content := range map[string]string{".env": "SECRET=env", "locked.txt": "locked", "frozen/a.txt": "frozen",
			"open.txt": "fine\n", "keys/id_rsa": "SECRET=key"} {
			data, err := os.ReadFile(filepath.Join(root, p))
			require.NoError(t, err, p)
			assert.Equal(t, content, string(data), p)
		}
		for _, p := range []string{"moved", "moved2", "hl", "frozen/new", "gone"} {
			assert.NoFileExists(t, filepath.Join(root, p))
		}
		fi, err := os.Stat(filepath.Join(root, "locked.txt"))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
		assert.FileExists(t, filepath.Join(root, "newfile"))
	})
	// A read-only mask binds the file that was opened: a link swapped in
	// at its name since cannot make bwrap bind something outside.
	t.Run("link swapped in", func(t *testing.T) {
		root, masks := maskedWorkspace(t)
		outside := filepath.Join(t.TempDir(), "outside")
		require.NoError(t, os.WriteFile(outside, []byte("SECRET=outside"), 0o644))
		require.NoError(t, os.Remove(filepath.Join(root, "locked.txt")))
		require.NoError(t, os.Symlink(outside, filepath.Join(root, "locked.txt")))
		cmd := Command(Spec{Shell: "/bin/sh", Command: "cat locked.txt; cat " + outside, Root: root, Cwd: ".", Bwrap: bw, Masks: masks})
		for i, a := range cmd.Args {
			if a == "--ro-bind" || a == "--bind" {
				assert.NotContains(t, cmd.Args[i+1], root+"/", "a workspace path is a bind source")
			}
		}
		var out, errb syncBuffer
		p, err := Start(cmd, &out, &errb)
		require.NoError(t, err)
		_, err = p.Wait()
		require.NoError(t, err)
		assert.NotContains(t, out.String(), "SECRET")
	})
}

// leftoverModes are the ways a command runs; fn is called for each with a
// Spec to complete.
func leftoverModes(t *testing.T, fn func(t *testing.T, spec Spec)) {
	t.Run("host cgroup", func(t *testing.T) {
		if cgroupParent() == "" {
			t.Skip("no cgroup v2 leaf can be made here")
		}
		fn(t, hostSpec(t, ""))
	})
	t.Run("host tag", func(t *testing.T) {
		cgroupsOff.Store(true)
		defer cgroupsOff.Store(false)
		fn(t, hostSpec(t, ""))
	})
	t.Run("bwrap", func(t *testing.T) {
		bw := attackBwrap(t, BwrapConfig{})
		fn(t, Spec{Shell: "/bin/sh", Root: t.TempDir(), Cwd: ".", Bwrap: bw, Env: BaseEnv(false, true)})
	})
}

// escapes are the ways a command detaches a process from its process
// group; %s is the command of the process (the sleeper).
var escapes = map[string]string{
	"setsid":             "setsid %s &",
	"setsid in subshell": "(setsid %s &) &",
	"nohup":              "nohup %s >/dev/null 2>&1 &",
	"double fork daemon": "sh -c 'cd /; setsid sh -c \"%s </dev/null >/dev/null 2>&1 &\" &' </dev/null >/dev/null 2>&1",
}

// sleeper writes a script into the workspace of spec that marks that it
// runs (a file "ready" beside it) and then becomes `sleep mark`, and
// returns the command that runs it, as the command sees its path.
func sleeper(t *testing.T, spec Spec, mark string) string {
	t.Helper()
	script := "#!/bin/sh\ntouch \"$(dirname \"$0\")/ready\"\nexec sleep \"$1\"\n"
	require.NoError(t, os.WriteFile(filepath.Join(spec.Root, "sleeper"), []byte(script), 0o755))
	return spec.Dir() + "/sleeper " + mark
}

// awaitReady waits (boundedly) in the shell until the sleeper runs.
const awaitReady = "\nn=0; while [ ! -e ready ] && [ $n -lt 1000 ]; do sleep 0.01; n=$((n+1)); done; echo started"

// Nothing a command started outlives it, however it detached: when its
// shell exits, and when it is killed.
func TestAttackLeftovers(t *testing.T) {
	leftoverModes(t, func(t *testing.T, spec Spec) {
		for name, escape := range escapes {
			t.Run(name+" then exit", func(t *testing.T) {
				mark := proctest.SleepArg()
				t.Cleanup(func() { attacktest.KillMarked(mark) })
				spec := spec
				spec.Root = t.TempDir()
				spec.Command = fmt.Sprintf(escape, sleeper(t, spec, mark)) + awaitReady
				out, errOut, _ := run(t, spec)
				assert.Equal(t, "started\n", out, errOut)
				assert.FileExists(t, filepath.Join(spec.Root, "ready"))
				proctest.WaitGone(t, mark)
			})
			t.Run(name+" then kill", func(t *testing.T) {
				mark := proctest.SleepArg()
				t.Cleanup(func() { attacktest.KillMarked(mark) })
				spec := spec
				spec.Root = t.TempDir()
				spec.Command = fmt.Sprintf(escape, sleeper(t, spec, mark)) + "\nsleep " + mark
				p, err := Start(Command(spec), nil, nil)
				require.NoError(t, err)
				proctest.WaitRunning(t, mark, 2)
				assert.True(t, p.Kill(errors.New("stop")))
				state, err := p.Wait()
				require.NoError(t, err)
				assert.True(t, Killed(state))
				proctest.WaitGone(t, mark)
			})
		}
	})
}

// A cgroup catches even a process that clears its environment (which the
// tag cannot follow; see TagVar).
func TestAttackLeftoverWithoutEnvironment(t *testing.T) {
	if cgroupParent() == "" {
		t.Skip("no cgroup v2 leaf can be made here")
	}
	mark := proctest.SleepArg()
	t.Cleanup(func() { attacktest.KillMarked(mark) })
	out, _, _ := run(t, hostSpec(t, "env -i setsid sleep "+mark+" & sleep 0.2; echo started"))
	assert.Equal(t, "started\n", out)
	proctest.WaitGone(t, mark)
}

// An old bwrap without --disable-userns still gives a sandbox without
// capabilities: Probe takes it, saying what it lacks.
func TestProbeFallsBackWithAWarning(t *testing.T) {
	old := attacktest.FakeBwrap(t, `if [ "$a" = --disable-userns ]; then echo "bwrap: Unknown option --disable-userns" >&2; exit 1; fi; set -- "$@" "$a"`)
	bw, err := NewBwrap(old, BwrapConfig{}).Probe("/bin/sh")
	require.NoError(t, err)
	assert.Contains(t, bw.Warning(), "--disable-userns")
	cmd := Command(Spec{Shell: "/bin/sh", Command: "true", Root: t.TempDir(), Cwd: ".", Bwrap: bw})
	defer Release(cmd)
	assert.NotContains(t, cmd.Args, "--disable-userns")
	assert.Contains(t, cmd.Args, "--cap-drop")
	out, errOut, code := inSandbox(t, bw, "", "grep CapEff /proc/self/status")
	assert.Equal(t, 0, code, errOut)
	assert.Equal(t, "CapEff:\t0000000000000000\n", out)
}

// A bwrap that leaves the capabilities in place (here: one that drops the
// --cap-drop argument, run by root) is refused: no command ever runs in
// it.
func TestProbeRefusesASandboxWithCapabilities(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root's sandbox would hold capabilities")
	}
	keeps := attacktest.FakeBwrap(t, `case "$a" in --cap-drop|ALL) ;; *) set -- "$@" "$a";; esac`)
	_, err := NewBwrap(keeps, BwrapConfig{}).Probe("/bin/sh")
	assert.ErrorIs(t, err, errCapsKept)
}

// The empty file hidden paths are bound from lives where only this user
// can change it: a directory another user planted, or left writable, or a
// link, is not used.
func TestEmptyFileIsPrivate(t *testing.T) {
	use := func(t *testing.T, prepare func(shared string)) string {
		tmp := t.TempDir()
		t.Setenv("TMPDIR", tmp)
		shared := filepath.Join(tmp, fmt.Sprintf("agentbe-sandbox-%d", os.Getuid()))
		if prepare != nil {
			prepare(shared)
		}
		empty.mu.Lock()
		saved := empty.path
		empty.path = ""
		empty.mu.Unlock()
		p := emptyFile()
		empty.mu.Lock()
		empty.path = saved
		empty.mu.Unlock()
		fi, err := os.Lstat(p)
		require.NoError(t, err)
		assert.True(t, fi.Mode().IsRegular() && fi.Size() == 0 && fi.Mode().Perm() == 0o444, "%s: %v", p, fi.Mode())
		return p
	}
	t.Run("shared", func(t *testing.T) {
		p := use(t, nil)
		assert.Equal(t, fmt.Sprintf("agentbe-sandbox-%d", os.Getuid()), filepath.Base(filepath.Dir(p)))
	})
	t.Run("writable by others", func(t *testing.T) {
		p := use(t, func(shared string) {
			require.NoError(t, os.Mkdir(shared, 0o777))
			require.NoError(t, os.Chmod(shared, 0o777))
		})
		assert.NotEqual(t, fmt.Sprintf("agentbe-sandbox-%d", os.Getuid()), filepath.Base(filepath.Dir(p)))
	})
	t.Run("a link", func(t *testing.T) {
		elsewhere := t.TempDir()
		p := use(t, func(shared string) { require.NoError(t, os.Symlink(elsewhere, shared)) })
		assert.NotContains(t, p, elsewhere)
		assert.NoFileExists(t, filepath.Join(elsewhere, "empty"))
	})
	t.Run("a planted file with content", func(t *testing.T) {
		p := use(t, func(shared string) {
			require.NoError(t, os.Mkdir(shared, 0o700))
			require.NoError(t, os.WriteFile(filepath.Join(shared, "empty"), []byte("SECRET"), 0o444))
		})
		assert.NotEqual(t, fmt.Sprintf("agentbe-sandbox-%d", os.Getuid()), filepath.Base(filepath.Dir(p)))
	})
}

// Idle leaves outlive their process (they are kept for reuse); the next
// process removes those of processes that are gone, and only those.
func TestStaleLeavesRemoved(t *testing.T) {
	parent := cgroupParent()
	if parent == "" {
		t.Skip("no cgroup v2 leaf can be made here")
	}
	gone := exec.Command("/bin/true")
	require.NoError(t, gone.Run())
	stale := filepath.Join(parent, fmt.Sprintf("agentbe-%d-1", gone.Process.Pid))
	mine := filepath.Join(parent, fmt.Sprintf("agentbe-%d-999999", os.Getpid()))
	for _, d := range []string{stale, mine} {
		require.NoError(t, unix.Mkdir(d, 0o755))
		t.Cleanup(func() { _ = unix.Rmdir(d) })
	}
	removeStaleLeaves(parent)
	assert.NoDirExists(t, stale)
	assert.DirExists(t, mine)
}

// A descriptor this process inherited without close-on-exec (from whoever
// started it: a supervisor, a shell, a leaky parent) would pass on to every
// command: a directory's is a way out of the sandbox through
// /proc/self/fd/N, whatever is mounted. Commands get their standard
// streams and the files they are given, nothing else.
func TestAttackInheritedDescriptor(t *testing.T) {
	bw := attackBwrap(t, BwrapConfig{})
	outside := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("SECRET=outside"), 0o644))
	fd, err := unix.Open(outside, unix.O_RDONLY|unix.O_DIRECTORY, 0) // no O_CLOEXEC: a leaked descriptor
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	attack := fmt.Sprintf(`ls -l /proc/self/fd/; cat /proc/self/fd/%d/secret.txt; echo pwned > /proc/self/fd/%d/pwned
		for f in /proc/self/fd/*; do cat "$f/secret.txt"; done`, fd, fd)
	for name, bwrap := range map[string]*Bwrap{"bwrap": bw, "host": nil} {
		t.Run(name, func(t *testing.T) {
			out, errOut, _ := run(t, Spec{Shell: "/bin/sh", Command: attack, Root: t.TempDir(), Cwd: ".", Bwrap: bwrap})
			assert.NotContains(t, out+errOut, "SECRET", "the command read through a descriptor it inherited")
			assert.NoFileExists(t, filepath.Join(outside, "pwned"))
		})
	}
}

// The keyring filter covers the compat system call tables too: an x86-64
// process can still make i386 system calls (int $0x80) and x32 ones (the
// 0x40000000 bit), each with its own numbers, which a filter of the native
// numbers alone would let through. Two tiny static programs, written
// here, make keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING) each
// way and exit with its errno (0 on success).
func TestAttackKeyringCompat(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the compat programs are x86-64 machine code")
	}
	bw := attackBwrap(t, BwrapConfig{})
	tail := []byte{
		0x85, 0xc0, // test eax, eax
		0x79, 0x06, // jns ok
		0xf7, 0xd8, // neg eax
		0x89, 0xc7, // mov edi, eax
		0xeb, 0x02, // jmp exit
		0x31, 0xff, // ok: xor edi, edi
		0xb8, 0x3c, 0, 0, 0, // exit: mov eax, 60 (exit)
		0x0f, 0x05, // syscall
	}
	programs := map[string][]byte{
		"i386": append([]byte{
			0xb8, 0x20, 0x01, 0, 0, // mov eax, 288 (i386 keyctl)
			0x31, 0xdb, // xor ebx, ebx (KEYCTL_GET_KEYRING_ID)
			0xb9, 0xfc, 0xff, 0xff, 0xff, // mov ecx, -4 (KEY_SPEC_USER_KEYRING)
			0x31, 0xd2, // xor edx, edx
			0xcd, 0x80, // int 0x80
		}, tail...),
		"x32": append([]byte{
			0xb8, 0xfa, 0, 0, 0x40, // mov eax, 0x40000000|250 (x32 keyctl)
			0x31, 0xff, // xor edi, edi
			0x48, 0xc7, 0xc6, 0xfc, 0xff, 0xff, 0xff, // mov rsi, -4
			0x31, 0xd2, // xor edx, edx
			0x0f, 0x05, // syscall
		}, tail...),
	}
	root := t.TempDir()
	for name, code := range programs {
		require.NoError(t, os.WriteFile(filepath.Join(root, name), staticELF(code), 0o755))
	}
	for name := range programs {
		t.Run(name, func(t *testing.T) {
			host := exec.Command(filepath.Join(root, name))
			err := host.Run()
			var exit *exec.ExitError
			if err != nil && !errors.As(err, &exit) {
				t.Skipf("the %s program does not run here: %v", name, err)
			}
			t.Logf("on the host: exit %d", host.ProcessState.ExitCode())
			_, errOut, code := inSandbox(t, bw, root, "./"+name)
			assert.Equal(t, int(unix.EPERM), code, "keyctl through the %s table was not refused (%s)", name, errOut)
		})
	}
}

// staticELF returns a minimal static x86-64 executable running code.
func staticELF(code []byte) []byte {
	const base, headers = 0x400000, 64 + 56
	size := uint64(headers + len(code))
	le := binary.LittleEndian
	b := make([]byte, headers, size)
	copy(b, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1})
	le.PutUint16(b[16:], 2)            // ET_EXEC
	le.PutUint16(b[18:], 0x3e)         // EM_X86_64
	le.PutUint32(b[20:], 1)            // EV_CURRENT
	le.PutUint64(b[24:], base+headers) // entry
	le.PutUint64(b[32:], 64)           // program headers' offset
	le.PutUint16(b[52:], 64)           // header size
	le.PutUint16(b[54:], 56)           // program header size
	le.PutUint16(b[56:], 1)            // one program header
	ph := b[64:]
	le.PutUint32(ph[0:], 1)     // PT_LOAD
	le.PutUint32(ph[4:], 5)     // R+X
	le.PutUint64(ph[16:], base) // vaddr
	le.PutUint64(ph[24:], base) // paddr
	le.PutUint64(ph[32:], size) // file size
	le.PutUint64(ph[40:], size) // memory size
	le.PutUint64(ph[48:], 0x1000)
	return append(b, code...)
}

// Abstract unix sockets (no file: a name in the network namespace) and
// netlink (the interfaces and routes) are the network namespace's: a
// sandbox without the host network reaches neither the host's abstract
// sockets (X11, D-Bus, many daemons listen there) nor its interfaces.
func TestAttackHostAbstractSocketAndNetlink(t *testing.T) {
	perl, err := exec.LookPath("perl")
	if err != nil {
		t.Skip("perl not installed (the attack needs a unix socket client)")
	}
	name := "agentbe-attack-" + proctest.SleepArg()
	ln, err := net.Listen("unix", "@"+name)
	require.NoError(t, err)
	reached := attacktest.Accepting(t, ln)
	connect := fmt.Sprintf(`%s -MIO::Socket::UNIX -e 'print IO::Socket::UNIX->new(Peer => "\0%s") ? "connected\n" : "refused\n"'; cat /proc/net/dev`, perl, name)
	for _, host := range []bool{false, true} {
		t.Run(fmt.Sprint("host network ", host), func(t *testing.T) {
			bw := attackBwrap(t, BwrapConfig{HostNetwork: host})
			out, errOut, _ := inSandbox(t, bw, "", connect)
			if host {
				assert.Contains(t, out, "connected\n", errOut)
				assert.True(t, reached(true), "the listener saw no connection")
				return
			}
			assert.Contains(t, out, "refused\n", errOut)
			assert.False(t, reached(false), "a sandboxed command reached the host's abstract socket")
			for line := range strings.Lines(out) {
				if dev, _, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && !strings.Contains(dev, "|") {
					assert.Equal(t, "lo", dev, "the sandbox sees a host interface")
				}
			}
		})
	}
}

// A command started from a terminal (the caller's controlling terminal on
// its standard input) must not push keystrokes into it with TIOCSTI, which
// the caller's shell would then run: bwrap --new-session leaves the
// command without a controlling terminal. The same attack without that
// flag shows that it would work here.
func TestAttackTIOCSTI(t *testing.T) {
	perl, err := exec.LookPath("perl")
	if err != nil {
		t.Skip("perl not installed (the attack needs a raw ioctl)")
	}
	if v, err := os.ReadFile("/proc/sys/dev/tty/legacy_tiocsti"); err == nil && strings.TrimSpace(string(v)) == "0" {
		t.Skip("this kernel refuses TIOCSTI to everyone (dev.tty.legacy_tiocsti = 0)")
	}
	bw := attackBwrap(t, BwrapConfig{})
	script := fmt.Sprintf(`%s -e 'for my $c (split //, "echo pwned\n") { ioctl(STDIN, %d, $c) or print "refused: $!\n" }'`, perl, unix.TIOCSTI)
	inject := func(t *testing.T, bw *Bwrap) string {
		master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
		require.NoError(t, err)
		defer master.Close()
		mfd := int(master.Fd())
		require.NoError(t, unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0))
		n, err := unix.IoctlGetInt(mfd, unix.TIOCGPTN)
		require.NoError(t, err)
		tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
		require.NoError(t, err)
		defer tty.Close()
		cmd := Command(Spec{Shell: "/bin/sh", Command: script, Root: t.TempDir(), Cwd: ".", Bwrap: bw})
		cmd.Stdin = tty
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0} // the terminal is the caller's
		var out bytes.Buffer
		p, err := Start(cmd, &out, &out)
		require.NoError(t, err)
		_, _ = p.Wait()
		// What was pushed waits in the terminal's input, for its reader.
		fd := int(tty.Fd()) // once: Fd makes the file blocking again
		require.NoError(t, unix.SetNonblock(fd, true))
		buf := make([]byte, 256)
		k, _ := unix.Read(fd, buf)
		t.Logf("command said %q", out.String())
		return string(buf[:max(k, 0)])
	}
	if !strings.Contains(inject(t, bw.without("", "--new-session")), "pwned") {
		t.Skip("TIOCSTI pushes nothing here even without --new-session")
	}
	assert.NotContains(t, inject(t, bw), "pwned", "the sandboxed command pushed input into the caller's terminal")
}
