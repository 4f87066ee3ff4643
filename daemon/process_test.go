package daemon_test

import (
	"cmp"
	"context"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/agentmcp"
	"github.com/agentbackend/agentbackend/daemon"
	"github.com/agentbackend/agentbackend/internal/proctest"
)

// The conformance suite (TestConformanceRemote) covers background
// processes on a RemoteBackend: reading, stream order, stdin, kill, signal,
// timeout, ctx, checks, 50 concurrent processes, tools, scopes, Close.
// These tests look at the daemon host's processes by PID.

func procCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// pidsOf waits until p has printed n lines and returns them as PIDs.
func pidsOf(t *testing.T, p *ab.Process, n int) []int {
	t.Helper()
	ctx := procCtx(t)
	for {
		changed := p.Changed()
		out, _, done := p.Output(0)
		if lines := strings.Fields(string(out)); len(lines) >= n {
			pids := make([]int, n)
			for i := range pids {
				pid, err := strconv.Atoi(lines[i])
				if err != nil {
					t.Fatalf("not a PID: %q", out)
				}
				pids[i] = pid
			}
			return pids
		}
		if done {
			t.Fatalf("%s ended after printing %q", p.ID(), out)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("%s printed %q", p.ID(), out)
		}
	}
}

// waitPrinted waits until p's standard output is want.
func waitPrinted(t *testing.T, p *ab.Process, want string, patience time.Duration) {
	t.Helper()
	timeout := time.After(patience)
	for {
		changed := p.Changed()
		if out, _, _ := p.Output(0); string(out) == want {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("%s did not print %q: %v", p.ID(), want, p.Info())
		}
	}
}

const twoSleepers = `sleep 1001 & echo $!; (sleep 1002 & echo $!; wait) & wait`

func TestRemoteProcessKillLeavesNoProcess(t *testing.T) {
	for _, iso := range []ab.Isolation{ab.IsolationNone, ab.IsolationAuto} {
		t.Run("isolation="+cmp.Or(string(iso), "auto"), func(t *testing.T) {
			d, port := startDaemon(t, daemon.Config{Isolation: iso})
			b := remoteFor(t, d, port, ab.RemoteConfig{})
			p, err := b.Start(procCtx(t), twoSleepers, nil)
			if err != nil {
				t.Fatal(err)
			}
			pids := pidsOf(t, p, 2)
			if iso != ab.IsolationNone {
				pids = nil // PIDs inside bubblewrap's namespace; the conformance suite checks by effect
			}
			if err := p.Kill(); err != nil {
				t.Fatal(err)
			}
			res, err := p.Wait(procCtx(t))
			if ab.ErrorCode(err) != ab.CodeExecFailed || res == nil || res.ExitCode != 137 {
				t.Errorf("Wait after Kill: %+v, %v", res, err)
			}
			if info := p.Info(); info.State != ab.ProcessKilled || info.ExitCode != 137 {
				t.Errorf("after Kill: %+v", info)
			}
			for _, pid := range pids {
				waitGone(t, pid)
			}
		})
	}
}

// A lost connection marks the process lost; the daemon, which sees the
// session's channel go with the connection, kills it.
func TestRemoteProcessLostConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	kl := &killable{Listener: ln}
	d, err := daemon.New(daemon.Config{RootDir: t.TempDir(), HostKey: testKey, Isolation: ab.IsolationNone, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- d.Serve(context.Background(), kl) }()
	defer func() { <-served; d.Close() }()
	b := remoteFor(t, d, ln.Addr().(*net.TCPAddr).Port, ab.RemoteConfig{Reconnect: ab.ReconnectConfig{Disabled: true}})

	p, err := b.Start(procCtx(t), twoSleepers, nil)
	if err != nil {
		t.Fatal(err)
	}
	pids := pidsOf(t, p, 2)
	kl.Kill()
	res, err := p.Wait(procCtx(t))
	if ab.ErrorCode(err) != ab.CodeConnectionClosed {
		t.Errorf("Wait after the connection was lost: %v, want CONNECTION_CLOSED", err)
	}
	if info := p.Info(); info.State != ab.ProcessLost || info.ExitCode != -1 || res == nil || res.ExitCode != -1 {
		t.Errorf("after the loss: %+v, %+v", info, res)
	}
	if err := p.Kill(); err != nil && err.Error() != "os: process already finished" {
		t.Errorf("Kill of a lost process: %v", err)
	}
	for _, pid := range pids {
		waitGone(t, pid)
	}
	b.Close()
}

// Background processes take no exec slot on the daemon: they would hold
// it for their whole life and starve Exec.
func TestRemoteProcessesTakeNoExecSlot(t *testing.T) {
	d, port := startDaemon(t, daemon.Config{Isolation: ab.IsolationNone, MaxExecsPerConn: 1})
	b := remoteFor(t, d, port, ab.RemoteConfig{})
	ctx := procCtx(t)
	var procs []*ab.Process
	for range 3 {
		p, err := b.Start(ctx, "echo up; read x; echo $x", nil)
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	for _, p := range procs {
		waitPrinted(t, p, "up\n", 10*time.Second)
	}
	ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if res, err := b.Exec(ectx, "echo exec", nil); err != nil || string(res.Stdout) != "exec\n" {
		t.Errorf("Exec beside three background processes: %+v, %v", res, err)
	}
	for _, p := range procs {
		if _, err := p.Stdin().Write([]byte("bye\n")); err != nil {
			t.Fatal(err)
		}
		if res, err := p.Wait(ctx); err != nil || string(res.Stdout) != "up\nbye\n" {
			t.Errorf("%s: %+v, %v", p.ID(), res, err)
		}
	}
}

func TestRemoteProcessLargeOutputStaysBounded(t *testing.T) {
	d, port := startDaemon(t, daemon.Config{Isolation: ab.IsolationNone})
	b := remoteFor(t, d, port, ab.RemoteConfig{})
	const size = 100_000_000
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	p, err := b.Start(procCtx(t), "head -c 100000000 /dev/zero", nil)
	if err != nil {
		t.Fatal(err)
	}
	for ended := false; !ended; {
		select {
		case <-p.Done():
			ended = true
		case <-time.After(20 * time.Millisecond):
		}
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	// Daemon and client share this heap; the SSH layer's packets come and
	// go. What must not happen is a heap growing with the output.
	if grew := int64(peak) - int64(base); grew > 64<<20 {
		t.Errorf("the heap grew by %d MiB for a 100 MB output", grew>>20)
	}
	res, err := p.Wait(procCtx(t))
	if err != nil || p.Info().StdoutBytes != size || !res.Truncated || len(res.Stdout) > ab.DefaultProcessOutputLimit+100 {
		t.Errorf("Wait: %d bytes kept, truncated %v, %+v, %v", len(res.Stdout), res.Truncated, p.Info(), err)
	}
}

// Close kills every process the backend started, on the daemon host, and
// leaves no goroutine behind.
func TestRemoteProcessCloseKillsEverything(t *testing.T) {
	d, port := startDaemon(t, daemon.Config{Isolation: ab.IsolationNone})
	// The daemon's listener runs until the test's cleanup; it may not have
	// been scheduled yet.
	ignore := []goleak.Option{goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("github.com/agentbackend/agentbackend/daemon.(*Daemon).serve.func1")}
	b := remoteFor(t, d, port, ab.RemoteConfig{})
	ctx := procCtx(t)
	var procs []*ab.Process
	var pids []int
	for _, cmd := range []string{twoSleepers, "echo $$; cat", "echo $$; sleep 1003"} {
		p, err := b.Start(ctx, cmd, nil)
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	pids = append(pids, pidsOf(t, procs[0], 2)...)
	pids = append(pids, pidsOf(t, procs[1], 1)...)
	pids = append(pids, pidsOf(t, procs[2], 1)...)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	proctest.WantEnded(t, procs, func(p *ab.Process) error { _, err := p.Wait(ctx); return err },
		func(err error) bool { return ab.ErrorCode(err) == ab.CodeDestroyed }, "Close")
	for _, pid := range pids {
		waitGone(t, pid)
	}
	if _, err := b.Start(ctx, "true", nil); ab.ErrorCode(err) != ab.CodeDestroyed {
		t.Errorf("Start after Close: %v", err)
	}
	goleak.VerifyNone(t, ignore...)
}

// Over the daemon's stateless POST /mcp, the unscoped workspace keeps its
// background processes from one request to the next; a scope made for one
// request would end them with it, so it does not offer the tools.
func TestMCPBackgroundTools(t *testing.T) {
	d, port := startDaemon(t, daemon.Config{Isolation: ab.IsolationNone})
	rb := remoteFor(t, d, port, ab.RemoteConfig{})
	ctx := procCtx(t)
	cs, err := agentmcp.ConnectRemote(ctx, rb, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	text, isErr := callText(t, cs, "run_in_background", map[string]any{"command": "echo served; sleep 1000"})
	id, _, _ := strings.Cut(strings.TrimPrefix(text, "Started "), " ")
	if isErr || !strings.HasPrefix(id, "bg_") {
		t.Fatalf("run_in_background: %q", text)
	}
	if text, _ := callText(t, cs, "read_output", map[string]any{"shell_id": id, "wait_seconds": 10}); !strings.Contains(text, "served") {
		t.Errorf("read_output in a later request: %q", text)
	}
	if text, _ := callText(t, cs, "kill_shell", map[string]any{"shell_id": id}); !strings.HasPrefix(text, id+" killed") {
		t.Errorf("kill_shell: %q", text)
	}

	scoped, err := agentmcp.ConnectRemote(ctx, rb, "users/alice")
	if err != nil {
		t.Fatal(err)
	}
	defer scoped.Close()
	tools, err := scoped.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range tools.Tools {
		if tl.Name == "run_in_background" || tl.Name == "list_shells" {
			t.Errorf("a per-request scope offers %s", tl.Name)
		}
	}
	if text, isErr := callText(t, scoped, "exec", map[string]any{"command": "sleep 1000", "background": true}); !isErr ||
		!strings.Contains(text, "not available") {
		t.Errorf("exec background in a per-request scope: %q %v", text, isErr)
	}
}
