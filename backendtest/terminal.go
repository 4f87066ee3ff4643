package backendtest

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
)

// testTerminal checks background processes on a pseudo-terminal
// (ExecOptions.Terminal) on backends that start processes. A backend that
// answers a terminal with NOT_IMPLEMENTED declares it has none, and the
// section is skipped.
func (s suite) testTerminal(t *testing.T) {
	b := s.fresh(t)
	starter, ok := b.(ab.ProcessStarter)
	if !ok {
		t.Skip("the backend starts no processes")
	}
	p, err := starter.Start(ctx(t), "true", &ab.ExecOptions{Terminal: &ab.Terminal{}})
	if errors.Is(err, ab.ErrNotImplemented) {
		t.Skipf("the backend has no terminals: %v", err)
	}
	require.NoError(t, err, "Start(true) on a terminal")
	_, err = p.Wait(ctx(t))
	require.NoError(t, err)

	t.Run("Session", func(t *testing.T) { s.testTerminalSession(t, starter) })
	t.Run("Interrupt", func(t *testing.T) { s.testTerminalInterrupt(t, starter) })
	t.Run("Checks", func(t *testing.T) { testTerminalChecks(t, b, starter) })
	t.Run("Kill", func(t *testing.T) { testTerminalKill(t, starter) })
	t.Run("Scope", func(t *testing.T) { testTerminalScope(t, b) })
}

// testTerminalSession types into a terminal, reads what it shows, resizes
// it, and checks the result.
func (s suite) testTerminalSession(t *testing.T, starter ab.ProcessStarter) {
	p := start(t, starter, `test -t 0 && test -t 1 && echo tty=yes; echo "term=$TERM"; stty size; `+
		`read line; echo "got:$line"; echo to-stderr >&2; read x; stty size; exit 3`,
		&ab.ExecOptions{Terminal: &ab.Terminal{Rows: 30, Cols: 100, Term: "vt100"}})
	assert.True(t, p.Info().Terminal, "Info().Terminal")
	if s.opts.TerminalPipes == "" {
		waitOutput(t, p, "30 100")
	} else {
		waitOutput(t, p, "term=vt100")
	}
	_, err := p.Stdin().Write([]byte("hello\r"))
	require.NoError(t, err, "type into the terminal")
	waitOutput(t, p, "got:hello")
	require.NoError(t, p.Resize(40, 120), "Resize")
	_, err = p.Stdin().Write([]byte("\r"))
	require.NoError(t, err)
	res, err := wait(t, p)
	e := wantCode(t, err, ab.CodeExecFailed, "Wait of exit 3")
	if e != nil {
		assert.Equal(t, 3, e.ExitCode)
	}
	require.NotNil(t, res)
	out := strings.ReplaceAll(string(res.Stdout), "\r\n", "\n")
	assert.Contains(t, out, "term=vt100\n")
	assert.Contains(t, out, "to-stderr\n", "a terminal shows both streams")
	assert.Empty(t, string(res.Stderr), "everything a terminal shows is standard output")
	if s.opts.TerminalPipes == "" {
		assert.Contains(t, out, "tty=yes\n")
		assert.Contains(t, out, "hello\n", "the terminal echoes what is typed")
		assert.Contains(t, out, "40 120\n", "the resize reached the terminal")
	}
	assert.ErrorIs(t, p.Resize(10, 10), os.ErrProcessDone, "Resize after the end")
}

// ended reports whether p ends within d.
func ended(p *ab.Process, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.Done():
		return true
	case <-timer.C:
		return false
	}
}

// testTerminalInterrupt types Ctrl-C: the foreground program is
// interrupted, as in a terminal.
func (s suite) testTerminalInterrupt(t *testing.T, starter ab.ProcessStarter) {
	if s.opts.TerminalPipes != "" {
		t.Skip(s.opts.TerminalPipes)
	}
	p := start(t, starter, `trap 'echo interrupted; exit 5' INT; echo ready; while :; do sleep 1; done`,
		&ab.ExecOptions{Terminal: &ab.Terminal{}})
	waitOutput(t, p, "ready")
	key, ok := ab.TerminalKey("Ctrl-C")
	require.True(t, ok)
	// A key can be lost to the shell's own races (it once was, in one CI
	// run of hundreds): press it again, as a user would, a few times, and
	// say so; a terminal where Ctrl-C never interrupts fails.
	for press := 1; ; press++ {
		_, err := p.Stdin().Write(key)
		require.NoError(t, err)
		if ended(p, 10*time.Second) {
			if press > 1 {
				t.Logf("Ctrl-C interrupted on press %d", press)
			}
			break
		}
		out, _, _ := p.Output(0)
		require.Less(t, press, 3, "Ctrl-C pressed %d times did not interrupt: %q", press, out)
	}
	res, err := wait(t, p)
	e := wantCode(t, err, ab.CodeExecFailed, "Wait after Ctrl-C")
	if e != nil {
		assert.Equal(t, 5, e.ExitCode, "%q", res.Stdout)
	}
	assert.Contains(t, string(res.Stdout), "interrupted")
}

func testTerminalChecks(t *testing.T, b ab.FileBackend, starter ab.ProcessStarter) {
	c := ctx(t)
	_, err := b.Exec(c, "echo hi", &ab.ExecOptions{Terminal: &ab.Terminal{}})
	wantCode(t, err, ab.CodeInvalidArgument, "Exec with a terminal")
	_, err = starter.Start(c, "cat", &ab.ExecOptions{Terminal: &ab.Terminal{}, Stdin: strings.NewReader("x")})
	wantCode(t, err, ab.CodeInvalidArgument, "Start with a terminal and Stdin")
	for _, term := range []ab.Terminal{{Rows: -1}, {Cols: 70000}, {Term: "xterm; rm -rf /"}, {Term: "a\nb"}} {
		_, err = starter.Start(c, "true", &ab.ExecOptions{Terminal: &term})
		wantCode(t, err, ab.CodeInvalidArgument, "Start with a bad terminal")
	}
	_, err = starter.Start(c, "sudo true", &ab.ExecOptions{Terminal: &ab.Terminal{}})
	wantCode(t, err, ab.CodeDangerousOperation, "a dangerous command on a terminal")
	_, err = starter.Start(c, "true", &ab.ExecOptions{Terminal: &ab.Terminal{}, Cwd: "../.."})
	wantCode(t, err, ab.CodePathEscape, "a terminal's Cwd outside")

	p := start(t, starter, "true", nil)
	wantCode(t, p.Resize(10, 10), ab.CodeInvalidArgument, "Resize of a process without a terminal")
	_, err = wait(t, p)
	require.NoError(t, err)
	p = start(t, starter, "read x", &ab.ExecOptions{Terminal: &ab.Terminal{}})
	wantCode(t, p.Resize(0, 10), ab.CodeInvalidArgument, "Resize to nothing")
	require.NoError(t, p.Kill())
	_, _ = wait(t, p)
}

func testTerminalKill(t *testing.T, starter ab.ProcessStarter) {
	p := start(t, starter, `echo started; while :; do sleep 1; done`, &ab.ExecOptions{Terminal: &ab.Terminal{}})
	waitOutput(t, p, "started")
	require.NoError(t, p.Kill())
	_, err := wait(t, p)
	wantCode(t, err, ab.CodeExecFailed, "Wait after Kill")
	assert.Equal(t, ab.ProcessKilled, p.Info().State)
	_, err = p.Stdin().Write([]byte("late\r"))
	assert.Error(t, err, "typing into a killed process's terminal")
}

// testTerminalScope starts a terminal process through a scope: the same
// working directory as Exec there, and the scope lists it.
func testTerminalScope(t *testing.T, b ab.FileBackend) {
	sc, err := b.Scope("term-scope", nil)
	require.NoError(t, err)
	defer sc.Close()
	want, err := sc.Exec(ctx(t), "pwd", nil)
	require.NoError(t, err)
	p, err := sc.Start(ctx(t), "pwd", &ab.ExecOptions{Terminal: &ab.Terminal{}})
	require.NoError(t, err)
	_, listed := sc.Process(p.ID())
	assert.True(t, listed, "the scope lists its terminal process")
	res, err := wait(t, p)
	require.NoError(t, err)
	assert.Equal(t, strings.TrimSpace(string(want.Stdout)), strings.TrimSpace(string(res.Stdout)))
}
