//go:build unix

package agentbackend

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentbackend/agentbackend/internal/proctest"
)

// The conformance suite (backendtest) covers reading, stdin, kill, signal,
// timeout, ctx, checks, 50 concurrent processes, tools and scopes on Local
// (none, software, bwrap, scope, composite). These tests add what needs
// the host: /proc, memory, goroutines, retention.

func localStart(t *testing.T, b ProcessStarter, command string, opts *ExecOptions) *Process {
	t.Helper()
	p, err := b.Start(context.Background(), command, opts)
	if err != nil {
		t.Fatalf("Start %q: %v", command, err)
	}
	return p
}

func localAwait(t *testing.T, p *Process) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(time.Minute):
		t.Fatalf("%s did not end", p.ID())
	}
}

func TestLocalProcessKillLeavesNoProcess(t *testing.T) {
	forLocalIsolations(t, LocalConfig{}, func(t *testing.T, b *LocalBackend) {
		mark := proctest.SleepArg()
		cmd := "sleep " + mark + " & (sleep " + mark + " & sleep " + mark + "; wait) & echo started; wait"
		if b.Isolation() == IsolationBwrap {
			// A process that leaves the group is caught by the pid namespace.
			cmd = "setsid sleep " + mark + " & " + cmd
		}
		p := localStart(t, b, cmd, nil)
		n := 3
		if b.Isolation() == IsolationBwrap {
			n = 4
		}
		proctest.WaitRunning(t, mark, n)
		if err := p.Kill(); err != nil {
			t.Fatal(err)
		}
		localAwait(t, p)
		proctest.WaitGone(t, mark)
		if info := p.Info(); info.State != ProcessKilled || info.ExitCode != 137 {
			t.Errorf("after Kill: %+v", info)
		}
	})
}

// A process writing 100 MB keeps at most OutputLimit per stream: memory
// stays bounded whatever it writes, and a late reader learns how much it
// missed.
func TestLocalProcessLargeOutputStaysBounded(t *testing.T) {
	forLocalIsolations(t, LocalConfig{}, func(t *testing.T, b *LocalBackend) {
		const size = 100_000_000
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		p := localStart(t, b, fmt.Sprintf("head -c %d /dev/zero; echo tail >&2", size), nil)
		localAwait(t, p)
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
			t.Errorf("a 100 MB output allocated %d MB", grew>>20)
		}
		info := p.Info()
		if info.StdoutBytes != size || info.StderrBytes != 5 {
			t.Errorf("counted %d and %d bytes", info.StdoutBytes, info.StderrBytes)
		}
		chunk, next, done := p.Output(0)
		dropped := size - DefaultProcessOutputLimit
		line := fmt.Sprintf("[... %d bytes of earlier output dropped ...]\n", dropped)
		if !strings.HasPrefix(string(chunk), line) || len(chunk) != len(line)+DefaultProcessOutputLimit || next != size || !done {
			t.Errorf("Output(0): %d bytes starting %q, next %d, done %v", len(chunk), chunk[:min(len(chunk), 60)], next, done)
		}
		chunk, next, _ = p.Output(size - 10)
		if len(chunk) != 10 || next != size {
			t.Errorf("Output near the end: %d bytes, next %d", len(chunk), next)
		}
		res, err := p.Wait(context.Background())
		if err != nil || !res.Truncated || len(res.Stdout) != len(line)+DefaultProcessOutputLimit || string(res.Stderr) != "tail\n" {
			t.Errorf("Wait: %d bytes, truncated %v, stderr %q, %v", len(res.Stdout), res.Truncated, res.Stderr, err)
		}
	})
}

func TestLocalProcessOutputLimit(t *testing.T) {
	localNoLeaks(t)
	b := newLocal(t, LocalConfig{Background: ProcessConfig{OutputLimit: 10}})
	p := localStart(t, b, "printf 0123456789abcdef; printf xy >&2", nil)
	localAwait(t, p)
	chunk, next, _ := p.Output(2)
	if string(chunk) != "[... 4 bytes of earlier output dropped ...]\n6789abcdef" || next != 16 {
		t.Errorf("Output(2) = %q, %d", chunk, next)
	}
	if chunk, _, _ := p.Output(0); string(chunk) != "[... 6 bytes of earlier output dropped ...]\n6789abcdef" {
		t.Errorf("Output(0) = %q", chunk)
	}
	if chunk, _, _ := p.ErrorOutput(0); string(chunk) != "xy" {
		t.Errorf("ErrorOutput(0) = %q", chunk)
	}
	for _, cfg := range []ProcessConfig{{OutputLimit: -1}, {KeepExited: -1}, {KeepFor: -time.Second}} {
		_, err := NewLocal(LocalConfig{RootDir: t.TempDir(), Background: cfg})
		localWantCode(t, err, CodeInvalidConfiguration, fmt.Sprintf("Background %+v", cfg))
	}
}

func TestLocalProcessCloseKillsEverything(t *testing.T) {
	forLocalIsolations(t, LocalConfig{}, func(t *testing.T, b *LocalBackend) {
		mark := proctest.SleepArg()
		var procs []*Process
		for _, cmd := range []string{"sleep " + mark, "sleep " + mark + " & sleep " + mark + "; wait", "cat"} {
			procs = append(procs, localStart(t, b, cmd, nil))
		}
		sc, err := b.Scope("tenant", nil)
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, localStart(t, sc, "sleep "+mark, nil))
		proctest.WaitRunning(t, mark, 4)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		proctest.WantEnded(t, procs, waitErr, isDestroyed, "Close")
		proctest.WaitGone(t, mark)
		_, err = b.Start(context.Background(), "true", nil)
		localWantCode(t, err, CodeDestroyed, "Start after Close")
		_, err = sc.Start(context.Background(), "true", nil)
		localWantCode(t, err, CodeDestroyed, "scope Start after Close")
	})
}

// Starts racing with Close either fail with BACKEND_DESTROYED or start a
// process that Close kills and waits for; nothing is left running.
func TestLocalProcessStartRacesClose(t *testing.T) {
	localNoLeaks(t)
	mark := proctest.SleepArg()
	for range 20 {
		b := newLocal(t, LocalConfig{})
		var wg sync.WaitGroup
		procs := make(chan *Process, 8)
		for range 8 {
			wg.Go(func() {
				p, err := b.Start(context.Background(), "sleep "+mark, nil)
				if err != nil {
					if ErrorCode(err) != CodeDestroyed {
						t.Errorf("Start racing Close: %v", err)
					}
					return
				}
				procs <- p
			})
		}
		time.Sleep(time.Millisecond)
		b.Close()
		wg.Wait()
		close(procs)
		for p := range procs {
			localAwait(t, p)
		}
	}
	proctest.WaitGone(t, mark)
}

func TestLocalProcessRetention(t *testing.T) {
	localNoLeaks(t)
	b := newLocal(t, LocalConfig{Background: ProcessConfig{KeepExited: 2}})
	var ids []string
	for i := range 4 {
		p := localStart(t, b, fmt.Sprintf("exit %d", i), nil)
		localAwait(t, p)
		ids = append(ids, p.ID())
	}
	running := localStart(t, b, "cat", nil)
	var got []string
	for _, info := range b.Processes() {
		got = append(got, fmt.Sprintf("%s:%s:%d", info.ID, info.State, info.ExitCode))
	}
	want := []string{ids[2] + ":exited:2", ids[3] + ":exited:3", running.ID() + ":running:-1"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("listed %v, want %v (the two newest ended ones and the running one)", got, want)
	}
	if _, ok := b.Process(ids[0]); ok {
		t.Error("a process beyond KeepExited is still found")
	}
	running.Stdin().Close()
	localAwait(t, running)

	b = newLocal(t, LocalConfig{Background: ProcessConfig{KeepFor: time.Millisecond}})
	p := localStart(t, b, "true", nil)
	localAwait(t, p)
	time.Sleep(5 * time.Millisecond)
	if list := b.Processes(); len(list) != 0 {
		t.Errorf("a process ended longer ago than KeepFor is listed: %v", list)
	}
	if res, err := p.Wait(context.Background()); err != nil || res.ExitCode != 0 {
		t.Errorf("Wait of an expired process: %+v, %v", res, err)
	}
}

func TestLocalProcessThroughScopes(t *testing.T) {
	localNoLeaks(t)
	b := newLocal(t, LocalConfig{})
	logger := NewArrayLogger(LogStandard)
	sc, err := b.Scope("a", &ScopeConfig{Logger: logger, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	inner, err := sc.Scope("b", nil)
	if err != nil {
		t.Fatal(err)
	}
	p1 := localStart(t, sc, "cat", nil)
	p2 := localStart(t, inner, "cat", nil)
	ids := func(list []ProcessInfo) (s []string) {
		for _, info := range list {
			s = append(s, info.ID)
		}
		return s
	}
	if got := ids(b.Processes()); strings.Join(got, ",") != p1.ID()+","+p2.ID() {
		t.Errorf("the backend lists %v, want both", got)
	}
	if got := ids(sc.Processes()); len(got) != 1 || got[0] != p1.ID() {
		t.Errorf("the scope lists %v, want only its own", got)
	}
	if got := ids(inner.Processes()); len(got) != 1 || got[0] != p2.ID() {
		t.Errorf("the child scope lists %v, want only its own", got)
	}
	_, err = sc.Start(context.Background(), "sudo true", nil)
	localWantCode(t, err, CodeDangerousOperation, "dangerous command through a scope")
	entries := logger.Entries()
	if len(entries) < 3 || entries[0].Operation != OpStart || entries[0].Command != "cat" || !entries[0].Success ||
		entries[0].User != "alice" || entries[len(entries)-1].Success {
		t.Errorf("log entries: %+v", entries)
	}
	for _, p := range []*Process{p1, p2} {
		p.Stdin().Close()
		if _, err := p.Wait(context.Background()); err != nil {
			t.Error(err)
		}
	}
}

func TestLocalProcessChangedAndDone(t *testing.T) {
	localNoLeaks(t)
	b := newLocal(t, LocalConfig{})
	p := localStart(t, b, "read x; echo one; read x", nil)
	changed := p.Changed()
	if p.Changed() != changed {
		t.Error("Changed returned a new channel with no output in between")
	}
	p.Stdin().Write([]byte("\n"))
	select {
	case <-changed:
	case <-time.After(time.Minute):
		t.Fatal("Changed not closed by output")
	}
	if out, next, done := p.Output(0); string(out) != "one\n" || next != 4 || done {
		t.Errorf("Output = %q %d %v", out, next, done)
	}
	changed = p.Changed()
	p.Stdin().Close()
	<-changed
	localAwait(t, p)
	if p.Changed() != p.Done() {
		t.Error("Changed of an ended process is not Done")
	}
	if err := p.Signal(nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Signal(nil): %v", err)
	}
}

func TestLocalProcessNotImplementedOnMemory(t *testing.T) {
	m, err := NewMemory(MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sc, _ := m.Scope("s", nil)
	_, err = sc.Start(context.Background(), "true", nil)
	if e := localWantCode(t, err, CodeNotImplemented, "Start on a scope of memory"); e != nil && e.Backend != TypeMemory {
		t.Errorf("NOT_IMPLEMENTED names %q", e.Backend)
	}
	c, err := NewComposite(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Start(context.Background(), "true", nil)
	localWantCode(t, err, CodeNotImplemented, "Start on a composite of memory")
}

// waitErr returns the error of p's Wait.
func waitErr(p *Process) error {
	_, err := p.Wait(context.Background())
	return err
}

func isDestroyed(err error) bool { return ErrorCode(err) == CodeDestroyed }
