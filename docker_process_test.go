package agentbackend_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/internal/proctest"
)

// The conformance suite covers background processes on Docker (reading,
// stdin, kill, signal, timeout, ctx, checks, 50 concurrent processes,
// tools, scopes, Close); these tests look inside the container with ps.

func dockerAwait(t *testing.T, p *ab.Process) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(time.Minute):
		t.Fatalf("%s did not end: %v", p.ID(), p.Info())
	}
}

func dockerWaitProc(t *testing.T, id, needle string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if ps, ok := dockerProcs(t, id); ok && strings.Contains(ps, needle) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no process matching %q in the container", needle)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDockerProcessKillLeavesNoProcess(t *testing.T) {
	t.Parallel()
	b := newDockerBackend(t, ab.DockerConfig{})
	ctx := dockerCtx(t)
	p, err := b.Start(ctx, "sleep 611 & (sleep 612 & sleep 613; wait) & sleep 614", nil)
	if err != nil {
		t.Fatal(err)
	}
	dockerWaitProc(t, b.ContainerID(), "sleep 613")
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	dockerAwait(t, p)
	waitNoProc(t, b.ContainerID(), "sleep 61")
	if info := p.Info(); info.State != ab.ProcessKilled || info.ExitCode != 137 {
		t.Errorf("after Kill: %+v", info)
	}

	// What a command leaves in the background when it exits is killed, as
	// on Local.
	p, err = b.Start(ctx, "sleep 621 & echo started", nil)
	if err != nil {
		t.Fatal(err)
	}
	dockerAwait(t, p)
	if res, err := p.Wait(ctx); err != nil || string(res.Stdout) != "started\n" {
		t.Errorf("Wait: %+v, %v", res, err)
	}
	waitNoProc(t, b.ContainerID(), "sleep 621")
}

// A command that closes its output and runs on is still running: the end
// of the output stream is not the end of the command.
func TestDockerProcessClosedOutput(t *testing.T) {
	t.Parallel()
	b := newDockerBackend(t, ab.DockerConfig{})
	ctx := dockerCtx(t)
	p, err := b.Start(ctx, "echo going quiet; exec >/dev/null 2>&1; sleep 631", nil)
	if err != nil {
		t.Fatal(err)
	}
	dockerWaitProc(t, b.ContainerID(), "sleep 631")
	time.Sleep(500 * time.Millisecond)
	if info := p.Info(); info.State != ab.ProcessRunning {
		t.Fatalf("a command that closed its output: %+v", info)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	dockerAwait(t, p)
	waitNoProc(t, b.ContainerID(), "sleep 631")
	if res, _ := p.Wait(ctx); res == nil || res.ExitCode != 137 || string(res.Stdout) != "going quiet\n" {
		t.Errorf("after Kill: %+v", res)
	}
}

func TestDockerProcessLargeOutputStaysBounded(t *testing.T) {
	b := newDockerBackend(t, ab.DockerConfig{})
	ctx := dockerCtx(t)
	const size = 100_000_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p, err := b.Start(ctx, fmt.Sprintf("head -c %d /dev/zero", size), nil)
	if err != nil {
		t.Fatal(err)
	}
	dockerAwait(t, p)
	runtime.ReadMemStats(&after)
	// The Engine API client reads in its own chunks; what matters is that
	// nothing grows with the output.
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
		t.Errorf("a 100 MB output allocated %d MB", grew>>20)
	}
	res, err := p.Wait(ctx)
	if err != nil || p.Info().StdoutBytes != size || !res.Truncated || len(res.Stdout) > ab.DefaultProcessOutputLimit+100 {
		t.Errorf("Wait: %d bytes kept, truncated %v, %+v, %v", len(res.Stdout), res.Truncated, p.Info(), err)
	}
}

// Close kills the processes it started, also in a container it attached
// to and leaves running, and leaves no goroutine behind.
func TestDockerProcessCloseKillsEverything(t *testing.T) {
	// Not parallel: goleak looks at every goroutine of the process. The
	// container and the shared client's connection exist before it looks;
	// the backend under test makes (and closes) a client of its own.
	host := newDockerBackend(t, ab.DockerConfig{})
	dockerProcs(t, host.ContainerID())
	ignore := goleak.IgnoreCurrent()
	b, err := ab.NewDocker(dockerCtx(t), ab.DockerConfig{ContainerID: host.ContainerID()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var procs []*ab.Process
	for _, cmd := range []string{"sleep 641", "sleep 642 & sleep 643; wait", "cat", "setsid sleep 655 & read x"} {
		p, err := b.Start(ctx, cmd, nil)
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	dockerWaitProc(t, b.ContainerID(), "sleep 643")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	proctest.WantEnded(t, procs, processWaitErr, func(err error) bool { return ab.ErrorCode(err) == ab.CodeDestroyed }, "Close")
	if _, err := b.Start(ctx, "true", nil); ab.ErrorCode(err) != ab.CodeDestroyed {
		t.Errorf("Start after Close: %v", err)
	}
	goleak.VerifyNone(t, ignore)
	// The group is killed; the process that left it (setsid) is not: an
	// attached container has no pid namespace per command.
	waitNoProc(t, b.ContainerID(), "sleep 64")
}

func TestDockerProcessStartFailure(t *testing.T) {
	t.Parallel()
	b := newDockerBackend(t, ab.DockerConfig{})
	ctx := dockerCtx(t)
	_, err := b.Start(ctx, "true", &ab.ExecOptions{Cwd: "no/such/dir"})
	if ab.ErrorCode(err) != ab.CodeExecError {
		t.Errorf("Start in a missing directory: %v", err)
	}
	if list := b.Processes(); len(list) != 0 {
		t.Errorf("a process that never started is listed: %v", list)
	}
}

// processWaitErr returns the error of p's Wait.
func processWaitErr(p *ab.Process) error {
	_, err := p.Wait(context.Background())
	return err
}
