package backendtest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ab "github.com/agentbackend/agentbackend"
)

// testProcesses checks background processes (ab.ProcessStarter) on
// backends that can start them, and NOT_IMPLEMENTED on the others. The
// commands are POSIX sh that busybox runs too, and pass software
// isolation's escape check.
func (s suite) testProcesses(t *testing.T) {
	b := s.fresh(t)
	starter, ok := b.(ab.ProcessStarter)
	if ok {
		p, err := starter.Start(ctx(t), "true", nil)
		if errors.Is(err, ab.ErrNotImplemented) {
			ok = false
		} else {
			must(t, err, "Start(true)")
			if _, err := p.Wait(ctx(t)); err != nil {
				t.Fatalf("Wait of true: %v", err)
			}
		}
	}
	if !ok {
		testNoProcesses(t, b)
		return
	}
	t.Run("ReadWait", func(t *testing.T) { testProcessReadWait(t, starter) })
	t.Run("StreamOrder", func(t *testing.T) { testProcessStreamOrder(t, starter) })
	t.Run("Stdin", func(t *testing.T) { testProcessStdin(t, starter) })
	t.Run("Kill", func(t *testing.T) { testProcessKill(t, b, starter) })
	t.Run("Signal", func(t *testing.T) { testProcessSignal(t, starter) })
	t.Run("TimeoutAndContext", func(t *testing.T) { testProcessTimeoutAndContext(t, starter) })
	t.Run("Checks", func(t *testing.T) { testProcessChecks(t, b, starter) })
	t.Run("Concurrent", func(t *testing.T) { testProcessConcurrent(t, starter, cmp.Or(s.opts.ConcurrentProcesses, 50)) })
	t.Run("Lookup", func(t *testing.T) { testProcessLookup(t, starter) })
	t.Run("Scopes", func(t *testing.T) { testProcessScopes(t, b) })
	if left := starter.Processes(); len(left) != 0 {
		t.Errorf("processes still listed after every result was collected: %v", left)
	}
	t.Run("Close", func(t *testing.T) { s.testProcessClose(t) })
}

// testNoProcesses checks how a backend without background processes says so.
func testNoProcesses(t *testing.T, b ab.FileBackend) {
	s, ok := b.(ab.ProcessStarter)
	if !ok {
		return
	}
	_, err := s.Start(ctx(t), "echo hi", nil)
	wantCode(t, err, ab.CodeNotImplemented, "Start")
	if _, ok := s.Process("bg_1"); ok {
		t.Error("Process(bg_1) found on a backend that cannot start processes")
	}
	if len(s.Processes()) != 0 {
		t.Errorf("Processes of a backend that cannot start any: %v", s.Processes())
	}
}

func start(t *testing.T, s ab.ProcessStarter, command string, opts *ab.ExecOptions) *ab.Process {
	t.Helper()
	p, err := s.Start(ctx(t), command, opts)
	must(t, err, "Start "+command)
	return p
}

// follow reads both streams of p until it has ended and they are read to
// the end, waiting on Changed in between, and returns them.
func follow(t *testing.T, p *ab.Process) (stdout, stderr string) {
	t.Helper()
	var out, errOut []byte
	var nOut, nErr int64
	c := ctx(t)
	for {
		changed := p.Changed()
		chunk, next, done1 := p.Output(nOut)
		out, nOut = append(out, chunk...), next
		chunk, next, done2 := p.ErrorOutput(nErr)
		errOut, nErr = append(errOut, chunk...), next
		if done1 && done2 {
			return string(out), string(errOut)
		}
		select {
		case <-changed:
		case <-c.Done():
			t.Fatalf("%s did not end: %v", p.ID(), p.Info())
		}
	}
}

// waitOutput waits until p's standard output contains want and returns it.
func waitOutput(t *testing.T, p *ab.Process, want string) string {
	t.Helper()
	c := ctx(t)
	for {
		changed := p.Changed()
		out, _, done := p.Output(0)
		if strings.Contains(string(out), want) {
			return string(out)
		}
		if done {
			t.Fatalf("%s ended without printing %q: %q", p.ID(), want, out)
		}
		select {
		case <-changed:
		case <-c.Done():
			t.Fatalf("%s did not print %q: %q", p.ID(), want, out)
		}
	}
}

func wait(t *testing.T, p *ab.Process) (*ab.ExecResult, error) {
	t.Helper()
	res, err := p.Wait(ctx(t))
	if res == nil && err != nil && errors.Is(err, context.DeadlineExceeded) && p.Info().State == ab.ProcessRunning {
		t.Fatalf("%s did not end: %v", p.ID(), p.Info())
	}
	return res, err
}

func listed(s ab.ProcessStarter, id string) (ab.ProcessInfo, bool) {
	for _, info := range s.Processes() {
		if info.ID == id {
			return info, true
		}
	}
	return ab.ProcessInfo{}, false
}

func testProcessReadWait(t *testing.T, s ab.ProcessStarter) {
	// The command blocks on its input, so its first output is read while
	// it certainly runs.
	p := start(t, s, `echo out1; echo err1 >&2; read line; echo "got $line"; echo err2 >&2; exit 3`, nil)
	if p.ID() == "" || p.Command() == "" {
		t.Errorf("ID %q, Command %q", p.ID(), p.Command())
	}
	waitOutput(t, p, "out1\n")
	info, ok := listed(s, p.ID())
	if !ok || info.State != ab.ProcessRunning || info.ExitCode != -1 || info.StartedAt.IsZero() || !info.EndedAt.IsZero() {
		t.Errorf("running process listed as %+v (listed %v)", info, ok)
	}
	if q, ok := s.Process(p.ID()); !ok || q != p {
		t.Errorf("Process(%s) = %v, %v", p.ID(), q, ok)
	}
	select {
	case <-p.Done():
		t.Fatal("Done closed while the process waits for input")
	default:
	}
	_, err := p.Stdin().Write([]byte("input\n"))
	must(t, err, "write stdin")
	stdout, stderr := follow(t, p)
	if stdout != "out1\ngot input\n" || stderr != "err1\nerr2\n" {
		t.Errorf("output %q, errors %q", stdout, stderr)
	}
	<-p.Done()
	info = p.Info()
	if info.State != ab.ProcessExited || info.ExitCode != 3 || info.EndedAt.IsZero() ||
		info.StdoutBytes != int64(len(stdout)) || info.StderrBytes != int64(len(stderr)) {
		t.Errorf("ended process: %+v", info)
	}
	// Read to the end: collected, no longer listed; Wait still answers.
	if _, ok := listed(s, p.ID()); ok {
		t.Error("a process whose output was read to the end is still listed")
	}
	if _, ok := s.Process(p.ID()); ok {
		t.Error("a collected process is still found by ID")
	}
	for range 2 {
		res, err := wait(t, p)
		e := wantCode(t, err, ab.CodeExecFailed, "Wait of exit 3")
		if e != nil && (e.ExitCode != 3 || !strings.Contains(e.Error(), "err2")) {
			t.Errorf("EXEC_FAILED: exit %d, %q", e.ExitCode, e.Error())
		}
		if res == nil || res.ExitCode != 3 || string(res.Stdout) != stdout || string(res.Stderr) != stderr || res.Truncated || res.Duration <= 0 {
			t.Errorf("result %+v", res)
		}
	}

	// An ended process stays listed, with its exit code, until collected.
	p = start(t, s, "echo done", nil)
	<-p.Done()
	if info, ok := listed(s, p.ID()); !ok || info.State != ab.ProcessExited || info.ExitCode != 0 {
		t.Errorf("ended, uncollected process listed as %+v (listed %v)", info, ok)
	}
	res, err := wait(t, p)
	if err != nil || string(res.Stdout) != "done\n" {
		t.Errorf("Wait: %+v, %v", res, err)
	}
	if _, ok := listed(s, p.ID()); ok {
		t.Error("a process Wait returned is still listed")
	}
}

func testProcessStreamOrder(t *testing.T, s ab.ProcessStarter) {
	var live [2]bytes.Buffer
	p := start(t, s, `seq 1 3000 | while read i; do echo "o$i"; echo "e$i" >&2; done`,
		&ab.ExecOptions{Stdout: &live[0], Stderr: &live[1]})
	stdout, stderr := follow(t, p)
	var wantOut, wantErr strings.Builder
	for i := 1; i <= 3000; i++ {
		fmt.Fprintf(&wantOut, "o%d\n", i)
		fmt.Fprintf(&wantErr, "e%d\n", i)
	}
	if stdout != wantOut.String() || stderr != wantErr.String() {
		t.Errorf("streams out of order or incomplete: %d and %d bytes", len(stdout), len(stderr))
	}
	if _, err := wait(t, p); err != nil {
		t.Fatal(err)
	}
	// The live writers are not called after Done.
	if live[0].String() != stdout || live[1].String() != stderr {
		t.Errorf("live writers got %d and %d bytes", live[0].Len(), live[1].Len())
	}
}

func testProcessStdin(t *testing.T, s ab.ProcessStarter) {
	p := start(t, s, "cat", nil)
	in := p.Stdin()
	if in == nil {
		t.Fatal("Stdin() is nil without ExecOptions.Stdin")
	}
	_, err := in.Write([]byte("line1\n"))
	must(t, err, "write line1")
	waitOutput(t, p, "line1\n")
	_, err = in.Write([]byte("line2\n"))
	must(t, err, "write line2")
	must(t, in.Close(), "close stdin")
	res, err := wait(t, p)
	if err != nil || string(res.Stdout) != "line1\nline2\n" {
		t.Errorf("cat: %+v, %v", res, err)
	}
	if _, err := in.Write([]byte("late")); err == nil {
		t.Error("a write to the input of an ended process succeeded")
	}

	p = start(t, s, "cat", &ab.ExecOptions{Stdin: strings.NewReader("from a reader")})
	if p.Stdin() != nil {
		t.Error("Stdin() is not nil with ExecOptions.Stdin")
	}
	res, err = wait(t, p)
	if err != nil || string(res.Stdout) != "from a reader" {
		t.Errorf("cat with a Stdin reader: %+v, %v", res, err)
	}
}

// testProcessKill checks that Kill ends what the command started: a loop
// in the background appends to a file, which must stop growing.
func testProcessKill(t *testing.T, b ab.FileBackend, s ab.ProcessStarter) {
	c := ctx(t)
	p := start(t, s, `(while :; do echo x >> beat; sleep 0.05; done) & echo started; sleep 1000`, nil)
	waitOutput(t, p, "started")
	for {
		data, _ := b.Read(c, "beat")
		if len(data) >= 4 {
			break
		}
		if c.Err() != nil {
			t.Fatal("the background loop does not run")
		}
		time.Sleep(20 * time.Millisecond)
	}
	must(t, p.Kill(), "Kill")
	res, err := wait(t, p)
	e := wantCode(t, err, ab.CodeExecFailed, "Wait after Kill")
	if e != nil && e.ExitCode != 137 {
		t.Errorf("exit code after Kill: %d", e.ExitCode)
	}
	if res == nil || res.ExitCode != 137 || string(res.Stdout) != "started\n" {
		t.Errorf("result after Kill: %+v", res)
	}
	if info := p.Info(); info.State != ab.ProcessKilled || info.ExitCode != 137 {
		t.Errorf("killed process: %+v", info)
	}
	before, _ := b.Read(c, "beat")
	time.Sleep(300 * time.Millisecond)
	if after, _ := b.Read(c, "beat"); len(after) != len(before) {
		t.Errorf("a child of the killed command still runs: beat grew from %d to %d bytes", len(before), len(after))
	}
	if err := p.Kill(); err != os.ErrProcessDone {
		t.Errorf("Kill after the end: %v, want os.ErrProcessDone", err)
	}
	if err := p.Signal(syscall.SIGTERM); err != os.ErrProcessDone {
		t.Errorf("Signal after the end: %v, want os.ErrProcessDone", err)
	}
}

func testProcessSignal(t *testing.T, s ab.ProcessStarter) {
	p := start(t, s, `trap 'echo got TERM; exit 5' TERM; sleep 1000 & echo ready; wait`, nil)
	waitOutput(t, p, "ready\n")
	must(t, p.Signal(syscall.SIGTERM), "Signal")
	res, err := wait(t, p)
	wantCode(t, err, ab.CodeExecFailed, "Wait after SIGTERM")
	if res == nil || res.ExitCode != 5 || string(res.Stdout) != "ready\ngot TERM\n" {
		t.Errorf("after SIGTERM: %+v", res)
	}
	if info := p.Info(); info.State != ab.ProcessExited {
		t.Errorf("a process that handled SIGTERM and exited: %+v", info)
	}
}

func testProcessTimeoutAndContext(t *testing.T, s ab.ProcessStarter) {
	p := start(t, s, "echo up; sleep 1000", &ab.ExecOptions{Timeout: 300 * time.Millisecond})
	res, err := wait(t, p)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ab.ErrExecFailed) {
		t.Errorf("Wait past the Timeout: %v, want EXEC_FAILED wrapping context.DeadlineExceeded", err)
	}
	if res == nil || (string(res.Stdout) != "up\n" && len(res.Stdout) != 0) || p.Info().State != ab.ProcessKilled {
		t.Errorf("after the Timeout: %+v, %+v", res, p.Info())
	}

	// A ctx that has ended starts nothing.
	done, cancel := context.WithCancel(ctx(t))
	cancel()
	before := len(s.Processes())
	if _, err := s.Start(done, "echo never", nil); err == nil {
		t.Error("Start with a cancelled ctx succeeded")
	}
	if n := len(s.Processes()); n != before {
		t.Errorf("Start with a cancelled ctx listed a process (%d -> %d)", before, n)
	}

	// ctx bounds only the start: the process outlives it.
	sctx, cancel := context.WithCancel(ctx(t))
	p, err = s.Start(sctx, "echo a; read x; echo b", nil)
	must(t, err, "Start")
	cancel()
	waitOutput(t, p, "a\n")
	// Wait's ctx bounds only the waiting.
	wctx, wcancel := context.WithTimeout(ctx(t), 100*time.Millisecond)
	res, err = p.Wait(wctx)
	wcancel()
	if res != nil || !errors.Is(err, context.DeadlineExceeded) || p.Info().State != ab.ProcessRunning {
		t.Errorf("Wait with a short ctx: %v, %v, %+v", res, err, p.Info())
	}
	_, err = p.Stdin().Write([]byte("go\n"))
	must(t, err, "write stdin")
	res, err = wait(t, p)
	if err != nil || string(res.Stdout) != "a\nb\n" {
		t.Errorf("process started with a since-cancelled ctx: %+v, %v", res, err)
	}
}

func testProcessChecks(t *testing.T, b ab.FileBackend, s ab.ProcessStarter) {
	c := ctx(t)
	_, err := s.Start(c, "sudo touch ran", nil)
	wantCode(t, err, ab.CodeDangerousOperation, "dangerous command")
	_, err = s.Start(c, "  ", nil)
	wantCode(t, err, ab.CodeEmptyCommand, "blank command")
	_, err = s.Start(c, "touch ran", &ab.ExecOptions{Env: map[string]string{"LD_PRELOAD": "/x.so"}})
	wantCode(t, err, ab.CodeInvalidConfiguration, "LD_PRELOAD")
	_, err = s.Start(c, "touch ran", &ab.ExecOptions{Cwd: "../"})
	wantCode(t, err, ab.CodePathEscape, "escaping Cwd")
	wantExists(t, b, "ran", false)

	// Same working directory, HOME and environment as Exec.
	must(t, b.Mkdir(c, "sub/dir"), "Mkdir")
	opts := &ab.ExecOptions{Cwd: "sub/dir", Env: map[string]string{"GREETING": "it's; a 'test'"}}
	const cmd = `env | grep ^HOME=; pwd; printf '%s\n' "$GREETING"`
	want, err := b.Exec(c, cmd, opts)
	must(t, err, "Exec")
	res, err := wait(t, start(t, s, cmd, opts))
	if err != nil || string(res.Stdout) != string(want.Stdout) {
		t.Errorf("Start ran %q, Exec %q (%v)", res.Stdout, want.Stdout, err)
	}
}

func testProcessConcurrent(t *testing.T, s ab.ProcessStarter, n int) {
	procs := make([]*ab.Process, n)
	var wg sync.WaitGroup
	for i := range procs {
		wg.Go(func() {
			p, err := s.Start(ctx(t), `read x; echo "$N:$x"`, &ab.ExecOptions{Env: map[string]string{"N": fmt.Sprint(i)}})
			if err != nil {
				t.Errorf("Start %d: %v", i, err)
				return
			}
			procs[i] = p
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	running := 0
	for _, info := range s.Processes() {
		if info.State == ab.ProcessRunning {
			running++
		}
	}
	if running != n {
		t.Errorf("%d processes running, want %d", running, n)
	}
	for i, p := range procs {
		wg.Go(func() {
			if _, err := p.Stdin().Write([]byte("in\n")); err != nil {
				t.Errorf("write %d: %v", i, err)
			}
			res, err := p.Wait(ctx(t))
			if err != nil || string(res.Stdout) != fmt.Sprintf("%d:in\n", i) {
				t.Errorf("process %d: %+v, %v", i, res, err)
			}
		})
	}
	wg.Wait()
}

// testProcessLookup checks what the tools that name a process by its ID
// (agentmcp's run_in_background, read_output, kill_shell, list_shells)
// rely on: Process finds a listed process, Processes lists it, a process
// stays listed after Kill until its output is read to the end, and then
// neither finds it.
func testProcessLookup(t *testing.T, s ab.ProcessStarter) {
	p := start(t, s, "echo first; read x; echo second >&2", nil)
	info := p.Info()
	if info.State != ab.ProcessRunning || !strings.HasPrefix(info.String(), info.ID+" running") {
		t.Errorf("Info of a running process: %+v %q", info, info.String())
	}
	waitOutput(t, p, "first\n")
	if found, ok := s.Process(p.ID()); !ok || found != p {
		t.Errorf("Process(%s) = %v, %v", p.ID(), found, ok)
	}
	if list := s.Processes(); len(list) != 1 || list[0].ID != p.ID() {
		t.Errorf("Processes: %v", list)
	}
	must(t, p.Kill(), "Kill")
	<-p.Done()
	if info := p.Info(); info.State != ab.ProcessKilled || info.ExitCode != 137 || !strings.Contains(info.String(), "killed with code 137") {
		t.Errorf("Info of a killed process: %+v %q", info, info.String())
	}
	if err := p.Kill(); err != os.ErrProcessDone {
		t.Errorf("Kill of an ended process: %v", err)
	}
	if _, ok := s.Process(p.ID()); !ok {
		t.Errorf("%s not found after Kill, before its output was read", p.ID())
	}
	// Read to the end: gone.
	p.Output(0)
	p.ErrorOutput(0)
	if _, ok := s.Process(p.ID()); ok {
		t.Errorf("%s still found after its output was read to the end", p.ID())
	}
	if _, ok := s.Process("bg_0"); ok {
		t.Error("Process(bg_0) found")
	}

	p = start(t, s, "echo out; echo err >&2; exit 4", nil)
	<-p.Done()
	if info := p.Info(); info.ExitCode != 4 || !strings.Contains(info.String(), "exited with code 4") {
		t.Errorf("Info of an ended process: %+v", info)
	}
	out, _, _ := p.Output(0)
	errOut, _, _ := p.ErrorOutput(0)
	if string(out) != "out\n" || string(errOut) != "err\n" {
		t.Errorf("output of an ended process: %q, %q", out, errOut)
	}
}

func testProcessScopes(t *testing.T, b ab.FileBackend) {
	c := ctx(t)
	s1, err := b.Scope("procs/one", &ab.ScopeConfig{Env: map[string]string{"WHO": "one"}})
	must(t, err, "Scope one")
	s2, err := b.Scope("procs/two", nil)
	must(t, err, "Scope two")
	p1 := start(t, s1, `echo "$WHO"; pwd; read x`, nil)
	p2 := start(t, s2, `read x`, nil)
	for name, sc := range map[string]struct {
		s          *ab.ScopedBackend
		own, other *ab.Process
	}{"one": {s1, p1, p2}, "two": {s2, p2, p1}} {
		if list := sc.s.Processes(); len(list) != 1 || list[0].ID != sc.own.ID() {
			t.Errorf("scope %s lists %v, want only %s", name, list, sc.own.ID())
		}
		if _, ok := sc.s.Process(sc.other.ID()); ok {
			t.Errorf("scope %s finds the other scope's process", name)
		}
	}
	want, err := s1.Exec(c, "pwd", nil)
	must(t, err, "scope Exec")
	out := waitOutput(t, p1, string(want.Stdout))
	if out != "one\n"+string(want.Stdout) {
		t.Errorf("scope process printed %q, want its env and the scope root %q", out, want.Stdout)
	}
	// Closing a scope kills what it started.
	must(t, s1.Close(), "scope Close")
	if _, err := wait(t, p1); err == nil {
		t.Error("a process of a closed scope ended without error")
	}
	_, err = p2.Stdin().Write([]byte("x\n"))
	must(t, err, "write stdin")
	if _, err := wait(t, p2); err != nil {
		t.Errorf("the other scope's process: %v", err)
	}
	if _, err := s1.Start(c, "true", nil); err == nil {
		t.Error("Start on a closed scope succeeded")
	}
}

func (s suite) testProcessClose(t *testing.T) {
	b := s.newBackend(t)
	starter := b.(ab.ProcessStarter)
	var procs []*ab.Process
	for _, cmd := range []string{"sleep 1000", "sleep 1000 & sleep 1000; wait", "read x"} {
		procs = append(procs, start(t, starter, cmd, nil))
	}
	must(t, b.Close(), "Close")
	for _, p := range procs {
		select {
		case <-p.Done():
		default:
			t.Fatalf("%s still runs after Close", p.ID())
		}
		if _, err := p.Wait(ctx(t)); err == nil {
			t.Errorf("%s ended by Close: no error", p.ID())
		}
	}
	if _, err := starter.Start(ctx(t), "true", nil); !errors.Is(err, ab.ErrDestroyed) {
		t.Errorf("Start after Close: %v, want BACKEND_DESTROYED", err)
	}
}
