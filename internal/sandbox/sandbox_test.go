//go:build unix

package sandbox

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentbackend/agentbackend/internal/proctest"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a bytes.Buffer safe to read while a copier writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func hostSpec(t *testing.T, command string) Spec {
	return Spec{Shell: "/bin/sh", Command: command, Root: t.TempDir(), Cwd: ".", Env: os.Environ()}
}

// run starts spec's command, waits, and returns its output and state.
func run(t *testing.T, spec Spec) (stdout, stderr string, state *os.ProcessState) {
	t.Helper()
	var out, errb syncBuffer
	p, err := Start(Command(spec), &out, &errb)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	state, err = p.Wait()
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return out.String(), errb.String(), state
}

func TestCommandOnHost(t *testing.T) {
	spec := Spec{Shell: "/bin/sh", Command: "true", Root: "/ws", Cwd: "a/b", Env: []string{"A=1", "HOME=/elsewhere"}}
	cmd := Command(spec)
	if cmd.Path != "/bin/sh" || !slices.Equal(cmd.Args, []string{"/bin/sh", "-c", "true"}) || cmd.Dir != "/ws/a/b" {
		t.Errorf("cmd = %q %q in %q", cmd.Path, cmd.Args, cmd.Dir)
	}
	if want := []string{"A=1", "HOME=/elsewhere", "HOME=/ws/a/b", "PWD=/ws/a/b"}; !slices.Equal(cmd.Env, want) {
		t.Errorf("Env = %q, want %q (HOME and PWD last, so they win)", cmd.Env, want)
	}
	if spec.Env[1] != "HOME=/elsewhere" || len(spec.Env) != 2 {
		t.Errorf("Command changed the caller's Env: %q", spec.Env)
	}
	if cmd.SysProcAttr == nil || !cmd.SysProcAttr.Setpgid {
		t.Error("command does not get its own process group")
	}
	if d := (&Spec{Root: "/ws", Cwd: "."}).Dir(); d != "/ws" {
		t.Errorf("Dir of the root = %q", d)
	}
}

func TestCommandInBwrap(t *testing.T) {
	bw := NewBwrap("/usr/bin/bwrap", BwrapConfig{ReadOnly: []string{"/etc/alternatives"}})
	cmd := Command(Spec{Shell: "/bin/bash", Command: "echo hi", Root: "/host/ws", Cwd: "sub", Bwrap: bw})
	defer Release(cmd)
	args := cmd.Args
	index := func(s string) int { return slices.Index(args, s) }
	if cmd.Path != "/usr/bin/bwrap" || args[0] != "bwrap" || cmd.Dir != "" {
		t.Fatalf("cmd = %q %q dir %q", cmd.Path, args, cmd.Dir)
	}
	if i := index("--bind"); i < 0 || args[i+1] != "/host/ws" || args[i+2] != WorkspaceDir || i < index("--tmpfs") {
		t.Errorf("workspace bind missing or before the /tmp tmpfs: %q", args)
	}
	if i := index("--chdir"); i < 0 || args[i+1] != "/workspace/sub" {
		t.Errorf("--chdir: %q", args)
	}
	if tail := args[len(args)-4:]; !slices.Equal(tail, []string{"--", "/bin/bash", "-c", "echo hi"}) {
		t.Errorf("command tail = %q", tail)
	}
	for _, flag := range []string{"--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "--seccomp", "--die-with-parent", "--new-session"} {
		if index(flag) < 0 {
			t.Errorf("missing %s in %q", flag, args)
		}
	}
	if index("--share-net") >= 0 {
		t.Errorf("the host network is shared by default: %q", args)
	}
	if i := index("/etc/alternatives"); i < 1 || args[i-1] != "--ro-bind-try" || i < index("--tmpfs") {
		t.Errorf("extra read-only path missing or hidden by the /tmp tmpfs: %q", args)
	}
	if i := index("/usr"); i < 1 || args[i-1] != "--ro-bind" {
		t.Errorf("/usr is not bound read-only: %q", args)
	}
	// Every system directory the host has appears in the sandbox, as a
	// read-only bind or as the same symlink.
	for _, dir := range systemDirs {
		if _, err := os.Lstat(dir); err != nil {
			continue
		}
		i := slices.Index(args, dir)
		if i < 0 || (args[i-1] != "--ro-bind" && args[i-2] != "--symlink") {
			t.Errorf("%s is not in the sandbox: %q", dir, args)
		}
	}
	if !slices.Contains(cmd.Env, "HOME=/workspace/sub") || !slices.Contains(cmd.Env, "PWD=/workspace/sub") {
		t.Errorf("HOME/PWD are not the sandbox path: %q", cmd.Env)
	}
}

func TestOutputAndExitCodes(t *testing.T) {
	out, errOut, state := run(t, hostSpec(t, "echo out; echo err >&2; exit 7"))
	if out != "out\n" || errOut != "err\n" || ExitCode(state) != 7 || Killed(state) {
		t.Errorf("got %q %q exit %d", out, errOut, ExitCode(state))
	}
	_, _, state = run(t, hostSpec(t, "kill -TERM $$"))
	if ExitCode(state) != 128+int(syscall.SIGTERM) {
		t.Errorf("killed by SIGTERM: exit %d, want 143", ExitCode(state))
	}
	if ExitCode(nil) != -1 {
		t.Error("ExitCode(nil) != -1")
	}
}

func TestNilWritersDiscard(t *testing.T) {
	p, err := Start(Command(hostSpec(t, "echo discarded; echo also >&2")), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if state, err := p.Wait(); err != nil || ExitCode(state) != 0 {
		t.Errorf("Wait: %v %v", state, err)
	}
}

func TestStdin(t *testing.T) {
	cmd := Command(hostSpec(t, "cat"))
	cmd.Stdin = strings.NewReader("from stdin")
	var out syncBuffer
	p, err := Start(cmd, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if out.String() != "from stdin" {
		t.Errorf("stdout = %q", out.String())
	}
}

func TestStartFailure(t *testing.T) {
	spec := hostSpec(t, "true")
	spec.Shell = filepath.Join(t.TempDir(), "no-such-shell")
	if _, err := Start(Command(spec), &syncBuffer{}, &syncBuffer{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Start with a missing shell: %v", err)
	}
}

// A process the command leaves in the background is killed when the shell
// exits, and does not hold Wait up by keeping the pipes open.
func TestLeftoversKilledAfterExit(t *testing.T) {
	mark := proctest.SleepArg()
	out, _, state := run(t, hostSpec(t, "sleep "+mark+" & echo started"))
	if out != "started\n" || ExitCode(state) != 0 {
		t.Errorf("got %q exit %d", out, ExitCode(state))
	}
	proctest.WaitGone(t, mark)
}

func TestKillEndsTheGroup(t *testing.T) {
	mark := proctest.SleepArg()
	p, err := Start(Command(hostSpec(t, "sleep "+mark+" & sleep "+mark+"; wait")), &syncBuffer{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	proctest.WaitRunning(t, mark, 2)
	cause := errors.New("test cause")
	if !p.Kill(cause) {
		t.Error("Kill of a running command reported it was not running")
	}
	p.Kill(errors.New("second cause"))
	state, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !Killed(state) || ExitCode(state) != 137 || p.KillCause() != cause {
		t.Errorf("state %v exit %d cause %v", state, ExitCode(state), p.KillCause())
	}
	proctest.WaitGone(t, mark)
	if p.Kill(cause) {
		t.Error("Kill after Wait reported a running command")
	}
}

func TestKillAfterExitIsNotACause(t *testing.T) {
	p, err := Start(Command(hostSpec(t, "true")), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	state, err := p.Wait()
	if err != nil || ExitCode(state) != 0 {
		t.Fatal(state, err)
	}
	if p.Kill(errors.New("late")) || p.KillCause() != nil {
		t.Error("a Kill after the command ended counted")
	}
}

// slowWriter takes its time over every write, like a caller streaming to a
// slow network peer.
type slowWriter struct {
	syncBuffer
	delay time.Duration
}

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(w.delay)
	return w.syncBuffer.Write(p)
}

// A process that leaves the group (setsid) keeps the output pipe open
// forever; Wait must still return, and without losing what the command
// wrote, even when the writer is still busy with earlier output then.
func TestEscapedProcessDoesNotBlockOrLoseOutput(t *testing.T) {
	mark := proctest.SleepArg()
	t.Cleanup(func() {
		for _, pid := range proctest.Find(mark) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		proctest.WaitGone(t, mark)
	})
	const size = 200_000
	w := &slowWriter{delay: 50 * time.Millisecond}
	p, err := Start(Command(hostSpec(t, "head -c 200000 /dev/zero; setsid sleep "+mark+" &")), w, nil)
	if err != nil {
		t.Fatal(err)
	}
	state, err := p.Wait()
	if err != nil || ExitCode(state) != 0 {
		t.Fatal(state, err)
	}
	if got := len(w.String()); got != size {
		t.Errorf("received %d bytes, want %d", got, size)
	}
}

func TestBwrapSandbox(t *testing.T) {
	bwrap := testenv.NeedBwrap(t)
	bw, err := NewBwrap(bwrap, BwrapConfig{}).Probe("/bin/sh")
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if _, err := NewBwrap(filepath.Join(t.TempDir(), "bwrap"), BwrapConfig{}).Probe("/bin/sh"); err == nil {
		t.Error("Probe of a missing bwrap succeeded")
	}
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Shell: "/bin/sh", Root: root, Cwd: "sub", Env: os.Environ(), Bwrap: bw,
		Command: `pwd; echo "$HOME"; ls -A /tmp | wc -l; echo made > file`}
	out, errOut, state := run(t, spec)
	if out != "/workspace/sub\n/workspace/sub\n0\n" || ExitCode(state) != 0 {
		t.Errorf("got %q %q exit %d", out, errOut, ExitCode(state))
	}
	if data, err := os.ReadFile(filepath.Join(root, "sub", "file")); err != nil || string(data) != "made\n" {
		t.Errorf("file written in the sandbox: %q %v", data, err)
	}

	mark := proctest.SleepArg()
	spec.Command = "sleep " + mark + " & setsid sleep " + mark + " & sleep " + mark + "; wait"
	p, err := Start(Command(spec), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	proctest.WaitRunning(t, mark, 3)
	p.Kill(errors.New("stop"))
	if state, err := p.Wait(); err != nil || !Killed(state) {
		t.Errorf("Wait after Kill: %v %v", state, err)
	}
	proctest.WaitGone(t, mark) // the setsid one too: the pid namespace died
}

// Signal reaches the command itself, on the host and in bubblewrap (where
// bwrap's own group would only end bwrap), and whatever it started.
func TestSignalReachesTheCommand(t *testing.T) {
	specs := map[string]Spec{"host": hostSpec(t, "")}
	if bw, err := execLookBwrap(); err == nil {
		specs["bwrap"] = Spec{Shell: "/bin/sh", Root: t.TempDir(), Cwd: ".", Env: os.Environ(), Bwrap: bw}
	} else if testenv.Required("bwrap") {
		t.Fatalf("bwrap required: %v", err)
	}
	for name, spec := range specs {
		t.Run(name, func(t *testing.T) {
			mark := proctest.SleepArg()
			spec.Command = "trap 'echo got TERM; exit 3' TERM; echo ready; sleep " + mark + " & wait"
			var out syncBuffer
			p, err := Start(Command(spec), &out, nil)
			if err != nil {
				t.Fatal(err)
			}
			proctest.WaitRunning(t, mark, 1)
			for !strings.Contains(out.String(), "ready") {
				time.Sleep(5 * time.Millisecond)
			}
			if !p.Signal(syscall.SIGTERM) {
				t.Error("Signal of a running command reported it was not running")
			}
			state, err := p.Wait()
			if err != nil || ExitCode(state) != 3 || out.String() != "ready\ngot TERM\n" {
				t.Errorf("after SIGTERM: exit %d, output %q, %v", ExitCode(state), out.String(), err)
			}
			proctest.WaitGone(t, mark)
			if p.Signal(syscall.SIGTERM) {
				t.Error("Signal after Wait reported a running command")
			}
		})
	}
}

func execLookBwrap() (*Bwrap, error) {
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		return nil, err
	}
	return NewBwrap(bwrap, BwrapConfig{}).Probe("/bin/sh")
}
