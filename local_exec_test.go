//go:build unix

package agentbackend

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentbackend/agentbackend/internal/proctest"
	"github.com/agentbackend/agentbackend/internal/sandbox"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// forLocalIsolations runs fn against a backend on the host (isolation none) and
// one in bubblewrap (skipped without a working bwrap, unless required).
func forLocalIsolations(t *testing.T, cfg LocalConfig, fn func(t *testing.T, b *LocalBackend)) {
	for _, iso := range []Isolation{IsolationNone, IsolationBwrap} {
		t.Run(string(iso), func(t *testing.T) {
			if iso == IsolationBwrap {
				testenv.NeedBwrap(t)
			}
			localNoLeaks(t)
			c := cfg
			c.Isolation = iso
			fn(t, newLocal(t, c))
		})
	}
}

// localDirSeen returns how a command sees the workspace path rel: under
// sandboxWorkspaceDir in bubblewrap, under RootDir on the host.
func localDirSeen(b *LocalBackend, rel string) string {
	base := b.RootDir()
	if b.Isolation() == IsolationBwrap {
		base = sandboxWorkspaceDir
	}
	if rel == "." {
		return base
	}
	return base + "/" + rel
}

// localScopeDirSeen is where a command run through the scope at scope sees
// the path rel of that scope: under bwrap the scope is the sandbox's whole
// workspace.
func localScopeDirSeen(b *LocalBackend, scope, rel string) string {
	if b.Isolation() == IsolationBwrap {
		return localDirSeen(b, rel)
	}
	return localDirSeen(b, filepath.Join(scope, rel))
}

func TestLocalExecBasics(t *testing.T) {
	forLocalIsolations(t, LocalConfig{}, func(t *testing.T, b *LocalBackend) {
		ctx := context.Background()
		res, err := b.Exec(ctx, "echo hello", nil)
		if err != nil || string(res.Stdout) != "hello\n" || len(res.Stderr) != 0 || res.ExitCode != 0 || res.Duration <= 0 || res.Truncated {
			t.Errorf("echo: %+v %v", res, err)
		}

		res, err = b.Exec(ctx, "echo out; echo problem >&2; exit 3", nil)
		e := localWantCode(t, err, CodeExecFailed, "exit 3")
		if e == nil || e.ExitCode != 3 || e.Command != "echo out; echo problem >&2; exit 3" ||
			e.Reason() != "Command execution failed with exit code 3: problem" ||
			e.Error() != `EXEC_FAILED: exec "echo out; echo problem >&2; exit 3": Command execution failed with exit code 3: problem` {
			t.Errorf("EXEC_FAILED: %#v", e)
		}
		if res == nil || res.ExitCode != 3 || string(res.Stdout) != "out\n" || string(res.Stderr) != "problem\n" {
			t.Errorf("result of a failed command: %+v", res)
		}
		_, err = b.Exec(ctx, "echo only-stdout; exit 2", nil)
		if err == nil || !strings.HasSuffix(err.Error(), "exit code 2: only-stdout") {
			t.Errorf("message without stderr: %v", err)
		}
		// A signal the command gets on its own is an exit status, not a
		// timeout (the signal in a variable: kill -KILL is on the
		// dangerous-command list).
		res, err = b.Exec(ctx, "s=KILL; kill -$s $$", nil)
		if localWantCode(t, err, CodeExecFailed, "self-kill"); res == nil || res.ExitCode != 137 || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("self-kill: %+v %v", res, err)
		}
		// The workspace is the working directory, and HOME is it too.
		res, err = b.Exec(ctx, `echo data > from-exec.txt; echo "$HOME"; pwd`, &ExecOptions{})
		if err != nil || string(res.Stdout) != localDirSeen(b, ".")+"\n"+localDirSeen(b, ".")+"\n" {
			t.Errorf("HOME/pwd: %q %v", res.Stdout, err)
		}
		localWantFile(t, filepath.Join(b.RootDir(), "from-exec.txt"), "data\n")
	})
}

func TestLocalExecSafetyChecks(t *testing.T) {
	b := newLocal(t, LocalConfig{})
	ctx := context.Background()
	for _, cmd := range []string{"", "   ", "\n\t"} {
		_, err := b.Exec(ctx, cmd, nil)
		localWantCode(t, err, CodeEmptyCommand, "empty command")
	}
	_, err := b.Exec(ctx, "touch ran; sudo ls", nil)
	if e := localWantCode(t, err, CodeDangerousOperation, "sudo"); e != nil && e.Command != "touch ran; sudo ls" {
		t.Errorf("DANGEROUS_OPERATION carries %q", e.Command)
	}
	_, err = b.Exec(ctx, "touch ran; cd /", nil)
	if err != nil {
		t.Errorf("isolation none runs cd: %v", err)
	}
	if err := b.Remove(ctx, "ran", RemoveOptions{}); err != nil {
		t.Fatal(err)
	}

	soft := newLocal(t, LocalConfig{Isolation: IsolationSoftware})
	for _, cmd := range []string{"cd /tmp && touch ran", "cat ../x; touch ran", "touch ran; echo $HOME"} {
		_, err := soft.Exec(ctx, cmd, nil)
		if e := localWantCode(t, err, CodeUnsafeCommand, cmd); e != nil && e.Command != cmd {
			t.Errorf("UNSAFE_COMMAND carries %q", e.Command)
		}
	}
	_, err = soft.Exec(ctx, "sudo ls", nil)
	localWantCode(t, err, CodeDangerousOperation, "software: sudo")

	allow := newLocal(t, LocalConfig{AllowDangerous: true})
	if res, err := allow.Exec(ctx, "echo sudo rm -rf /nothing", nil); err != nil || string(res.Stdout) != "sudo rm -rf /nothing\n" {
		t.Errorf("AllowDangerous: %q %v", res.Stdout, err)
	}
	policy := &SafetyPolicy{Allow: []*regexp.Regexp{regexp.MustCompile(`\becho sudo\b`)}}
	custom := newLocal(t, LocalConfig{Safety: policy})
	if _, err := custom.Exec(ctx, "echo sudo", nil); err != nil {
		t.Errorf("custom allow list: %v", err)
	}
	_, err = custom.Exec(ctx, "sudo echo", nil)
	localWantCode(t, err, CodeDangerousOperation, "custom policy still blocks")

	for _, bk := range []*LocalBackend{b, soft} {
		if ok, _ := bk.Exists(ctx, "ran"); ok {
			t.Error("a refused command ran")
		}
	}
}

func TestLocalExecEnvironment(t *testing.T) {
	t.Setenv("AGENTBE_HOST_VAR", "host")
	hostTmp := t.TempDir()
	t.Setenv("TMPDIR", hostTmp)
	cfg := LocalConfig{Env: map[string]string{"BASE": "cfg", "OVER": "cfg"}}
	forLocalIsolations(t, cfg, func(t *testing.T, b *LocalBackend) {
		ctx := context.Background()
		value := `it's; a "test" $HOME` + "\n`x`"
		res, err := b.Exec(ctx, `printf '%s|%s|%s|%s|%s|%s|%s' "$AGENTBE_HOST_VAR" "$BASE" "$OVER" "$HOME" "$PWD" "$SPECIAL" "$TMPDIR"`,
			&ExecOptions{Env: map[string]string{"OVER": "call", "HOME": "/not/used", "PWD": "/nor/this", "SPECIAL": value}})
		tmp := hostTmp
		if b.Isolation() == IsolationBwrap {
			tmp = "/tmp" // the host's does not exist in the sandbox
		}
		// The host's variables stay out (the sandbox attack suite checks
		// that on every mode, with InheritEnv too).
		want := "|cfg|call|" + localDirSeen(b, ".") + "|" + localDirSeen(b, ".") + "|" + value + "|" + tmp
		if err != nil || string(res.Stdout) != want {
			t.Errorf("environment:\n got %q, %v\nwant %q", res.Stdout, err, want)
		}
		for name, env := range map[string]map[string]string{
			"LD_PRELOAD": {"LD_PRELOAD": "/tmp/evil.so"}, "LD_LIBRARY_PATH": {"LD_LIBRARY_PATH": "/x"},
			"BASH_ENV": {"BASH_ENV": "/tmp/x"}, "IFS": {"IFS": "x"}, "bad name": {"A-B": "x"},
			"injection": {"X=1; touch ran #": "y"}, "empty name": {"": "x"}, "NUL": {"OK": "a\x00b"},
		} {
			_, err := b.Exec(ctx, "touch ran", &ExecOptions{Env: env})
			localWantCode(t, err, CodeInvalidConfiguration, name)
		}
		if ok, _ := b.Exists(ctx, "ran"); ok {
			t.Error("a command with a refused environment ran")
		}
	})
}

func TestLocalExecStdinAndLiveOutput(t *testing.T) {
	forLocalIsolations(t, LocalConfig{}, func(t *testing.T, b *LocalBackend) {
		ctx := context.Background()
		res, err := b.Exec(ctx, "tr a-z A-Z", &ExecOptions{Stdin: strings.NewReader("piped input")})
		if err != nil || string(res.Stdout) != "PIPED INPUT" {
			t.Errorf("stdin: %q %v", res.Stdout, err)
		}

		// The live writer sees the first line while the command still runs:
		// the command waits for input that is only sent after that line
		// arrived, so buffered output would deadlock (bounded below).
		stdinR, stdinW := io.Pipe()
		firstLine := make(chan struct{})
		live := &localLineWatcher{line: "first", seen: firstLine}
		done := make(chan error, 1)
		go func() {
			_, err := b.Exec(ctx, "echo first; read reply; echo got $reply", &ExecOptions{Stdin: stdinR, Stdout: live})
			done <- err
		}()
		select {
		case <-firstLine:
		case <-time.After(30 * time.Second):
			t.Fatal("the live writer did not see the first line while the command ran")
		}
		io.WriteString(stdinW, "go\n")
		stdinW.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := live.String(); got != "first\ngot go\n" {
			t.Errorf("live copy = %q", got)
		}

		// One writer for both streams is fed by one goroutine at a time
		// (the race detector checks), and gets both streams.
		var both bytes.Buffer
		res, err = b.Exec(ctx, "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done",
			&ExecOptions{Stdout: &both, Stderr: &both})
		if err != nil || strings.Count(both.String(), "out") != 5 || strings.Count(both.String(), "err") != 5 ||
			string(res.Stderr) != "err1\nerr2\nerr3\nerr4\nerr5\n" {
			t.Errorf("shared writer: %q, result %q, %v", both.String(), res.Stderr, err)
		}
		// Writers that cannot be compared are fine too.
		res, err = b.Exec(ctx, "echo a; echo b >&2", &ExecOptions{Stdout: localSliceWriter{}, Stderr: localSliceWriter{}})
		if err != nil || string(res.Stdout) != "a\n" {
			t.Errorf("non-comparable writers: %q %v", res.Stdout, err)
		}
		// A failing live writer stops only the live copy.
		res, err = b.Exec(ctx, "echo one; echo two", &ExecOptions{Stdout: localFailingWriter{}})
		if err != nil || string(res.Stdout) != "one\ntwo\n" {
			t.Errorf("failing live writer: %q %v", res.Stdout, err)
		}
	})
}

// localLineWatcher records what it is written and closes seen when line arrives.
type localLineWatcher struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	line string
	seen chan struct{}
}

func (w *localLineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	sc := bufio.NewScanner(bytes.NewReader(w.buf.Bytes()))
	for sc.Scan() {
		if sc.Text() == w.line && w.seen != nil {
			close(w.seen)
			w.seen = nil
		}
	}
	return len(p), nil
}

func (w *localLineWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// localSliceWriter is a writer whose type cannot be compared with ==.
type localSliceWriter struct{ _ []byte }

func (localSliceWriter) Write(p []byte) (int, error) { return len(p), nil }

type localFailingWriter struct{}

func (localFailingWriter) Write([]byte) (int, error) { return 0, errors.New("peer gone") }

func TestLocalExecOutputLimit(t *testing.T) {
	ctx := context.Background()
	b := newLocal(t, LocalConfig{MaxOutputLength: 100})
	var live bytes.Buffer
	res, err := b.Exec(ctx, "head -c 1000 /dev/zero | tr '\\0' a; echo err >&2", &ExecOptions{Stdout: &live})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat("a", 100) + "\n\n... [Output truncated. Full output was 1000 bytes, showing first 100]"
	if string(res.Stdout) != want || string(res.Stderr) != "err\n" || !res.Truncated {
		t.Errorf("truncated result: %q %q %v", res.Stdout, res.Stderr, res.Truncated)
	}
	if live.Len() != 1000 {
		t.Errorf("the live writer got %d bytes, want all 1000", live.Len())
	}
	res, err = b.Exec(ctx, "head -c 300 /dev/zero | tr '\\0' e >&2; exit 1", nil)
	if localWantCode(t, err, CodeExecFailed, "truncated failure"); !res.Truncated || !strings.Contains(err.Error(), "Full output was 300 bytes") {
		t.Errorf("truncated stderr: %q %v", res.Stderr, err)
	}

	unlimited := newLocal(t, LocalConfig{MaxOutputLength: -1})
	res, err = unlimited.Exec(ctx, "head -c 3000000 /dev/zero", nil)
	if err != nil || len(res.Stdout) != 3000000 || res.Truncated {
		t.Errorf("unlimited: %d bytes, %v", len(res.Stdout), err)
	}
	def := newLocal(t, LocalConfig{})
	res, err = def.Exec(ctx, "head -c 10485765 /dev/zero", nil)
	if err != nil || !res.Truncated || !bytes.HasSuffix(res.Stdout, []byte("Full output was 10485765 bytes, showing first 10485760]")) {
		t.Errorf("default limit: %d bytes, truncated %v, %v", len(res.Stdout), res.Truncated, err)
	}
}

// Every byte arrives, in order, on both streams at once, with the command
// exiting right after writing.
func TestLocalExecLargeOutput(t *testing.T) {
	forLocalIsolations(t, LocalConfig{MaxOutputLength: -1}, func(t *testing.T, b *LocalBackend) {
		var want, wantErr strings.Builder
		for i := 1; i <= 200000; i++ {
			fmt.Fprintf(&want, "%d\n", i)
		}
		for i := 1; i <= 50000; i++ {
			fmt.Fprintf(&wantErr, "%d\n", i)
		}
		for range 3 {
			var live bytes.Buffer
			res, err := b.Exec(context.Background(), "seq 1 50000 >&2 & seq 1 200000; wait", &ExecOptions{Stdout: &live})
			if err != nil || string(res.Stdout) != want.String() || string(res.Stderr) != wantErr.String() || live.String() != want.String() {
				t.Fatalf("large output: %d/%d stdout bytes, %d/%d stderr bytes, %d live, %v",
					len(res.Stdout), want.Len(), len(res.Stderr), wantErr.Len(), live.Len(), err)
			}
		}
	})
}

func TestLocalExecTimeoutKillsTheGroup(t *testing.T) {
	forLocalIsolations(t, LocalConfig{}, func(t *testing.T, b *LocalBackend) {
		mark := proctest.SleepArg()
		res, err := b.Exec(context.Background(), "echo started; sleep "+mark+" & sleep "+mark+"; wait",
			&ExecOptions{Timeout: 500 * time.Millisecond})
		e := localWantCode(t, err, CodeExecFailed, "timeout")
		if !errors.Is(err, context.DeadlineExceeded) || e == nil || !strings.Contains(e.Error(), "timed out after 500ms") || e.ExitCode != 137 {
			t.Errorf("timeout error: %v", err)
		}
		if res == nil || string(res.Stdout) != "started\n" || res.ExitCode != 137 {
			t.Errorf("partial result: %+v", res)
		}
		proctest.WaitGone(t, mark)
	})
}

func TestLocalExecCancelKillsTheGroup(t *testing.T) {
	forLocalIsolations(t, LocalConfig{}, func(t *testing.T, b *LocalBackend) {
		mark := proctest.SleepArg()
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			proctest.WaitRunning(t, mark, 2)
			cancel()
		}()
		_, err := b.Exec(ctx, "sleep "+mark+" & sleep "+mark+"; wait", nil)
		if localWantCode(t, err, CodeExecFailed, "cancel"); !errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("cancelled: %v", err)
		}
		proctest.WaitGone(t, mark)

		// A deadline of the caller's ctx reads as DeadlineExceeded too.
		dctx, dcancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer dcancel()
		_, err = b.Exec(dctx, "sleep "+mark, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("ctx deadline: %v", err)
		}
		proctest.WaitGone(t, mark)

		// A ctx done before the call spawns nothing.
		_, err = b.Exec(ctx, "touch ran", nil)
		if localWantCode(t, err, CodeExecError, "done ctx"); !errors.Is(err, context.Canceled) {
			t.Errorf("done ctx: %v", err)
		}
		if ok, _ := b.Exists(context.Background(), "ran"); ok {
			t.Error("a command ran under a done ctx")
		}
	})
}

// Nothing a command starts outlives it, and background processes holding
// its output pipes do not make Exec wait for them.
func TestLocalExecLeavesNothingBehind(t *testing.T) {
	forLocalIsolations(t, LocalConfig{}, func(t *testing.T, b *LocalBackend) {
		mark := proctest.SleepArg()
		for _, cmd := range []string{
			"sleep " + mark + " & echo ok",
			"(sleep " + mark + " &) ; echo ok",
			"nohup sleep " + mark + " >/dev/null 2>&1 & echo ok",
		} {
			res, err := b.Exec(context.Background(), cmd, nil)
			if err != nil || string(res.Stdout) != "ok\n" {
				t.Errorf("%s: %q %v", cmd, res.Stdout, err)
			}
			proctest.WaitGone(t, mark)
		}
	})
}

func TestLocalExecShell(t *testing.T) {
	ctx := context.Background()
	for shell, want := range map[Shell]string{ShellBash: "/bin/bash", ShellSh: "/bin/sh", ShellAuto: "/bin/bash", "auto": "/bin/bash"} {
		if _, err := os.Stat(want); err != nil {
			continue
		}
		b := newLocal(t, LocalConfig{Shell: shell})
		res, err := b.Exec(ctx, "echo $0", nil)
		if err != nil || string(res.Stdout) != want+"\n" {
			t.Errorf("Shell %q: %q %v", shell, res.Stdout, err)
		}
	}
	bash := newLocal(t, LocalConfig{Shell: ShellBash})
	if res, err := bash.Exec(ctx, `[[ abc == a* ]] && echo bashism`, nil); err != nil || string(res.Stdout) != "bashism\n" {
		t.Errorf("bash syntax: %q %v", res.Stdout, err)
	}
}

func TestLocalExecCwd(t *testing.T) {
	forLocalIsolations(t, LocalConfig{}, func(t *testing.T, b *LocalBackend) {
		ctx := context.Background()
		localWrite(t, b, "sub/dir/file", "f")
		if err := os.Symlink("sub/dir", filepath.Join(b.RootDir(), "inside-link")); err != nil {
			t.Fatal(err)
		}
		for cwd, rel := range map[string]string{"sub/dir": "sub/dir", "/sub": "sub", b.RootDir() + "/sub/dir/": "sub/dir", ".": "."} {
			res, err := b.Exec(ctx, `printf '%s|' "$HOME"; pwd`, &ExecOptions{Cwd: cwd})
			if want := localDirSeen(b, rel) + "|" + localDirSeen(b, rel) + "\n"; err != nil || string(res.Stdout) != want {
				t.Errorf("Cwd %q: %q %v, want %q", cwd, res.Stdout, err, want)
			}
		}
		if res, err := b.Exec(ctx, "cat file", &ExecOptions{Cwd: "inside-link"}); err != nil || string(res.Stdout) != "f" {
			t.Errorf("Cwd through a link inside: %q %v", res.Stdout, err)
		}
		for _, cwd := range []string{"../", "sub/../../x", b.RootDir() + "/../x"} {
			_, err := b.Exec(ctx, "true", &ExecOptions{Cwd: cwd})
			if e := localWantCode(t, err, CodePathEscape, "Cwd "+cwd); e != nil && e.Path != cwd {
				t.Errorf("Cwd %q: error names %q", cwd, e.Path)
			}
		}
		_, err := b.Exec(ctx, "true", &ExecOptions{Cwd: "no/such/dir"})
		if e := localWantCode(t, err, CodeExecError, "missing Cwd"); !errors.Is(err, fs.ErrNotExist) || e == nil ||
			e.Error() != "EXEC_ERROR: exec no/such/dir: working directory: no such file or directory" {
			t.Errorf("missing Cwd: %v", err)
		}
		_, err = b.Exec(ctx, "true", &ExecOptions{Cwd: "sub/dir/file"})
		if localWantCode(t, err, CodeExecError, "file Cwd"); !errors.Is(err, syscall.ENOTDIR) {
			t.Errorf("file as Cwd: %v", err)
		}
	})
}

func TestLocalExecSpawnFailure(t *testing.T) {
	b := newLocal(t, LocalConfig{})
	if err := os.Remove(b.RootDir()); err != nil {
		t.Fatal(err)
	}
	_, err := b.Exec(context.Background(), "true", nil)
	if e := localWantCode(t, err, CodeExecError, "spawn in a removed root"); e != nil && !strings.HasPrefix(e.Reason(), "Failed to execute command: ") {
		t.Errorf("message: %q", e.Error())
	}

	// bwrap uninstalled after NewLocal: the reference's message.
	gone := newLocal(t, LocalConfig{})
	gone.bwrap = sandbox.NewBwrap(filepath.Join(t.TempDir(), "bwrap"), sandbox.BwrapConfig{})
	_, err = gone.Exec(context.Background(), "true", nil)
	if e := localWantCode(t, err, CodeMissingUtilities, "bwrap gone"); e != nil && !strings.Contains(e.Error(), "apt install bubblewrap") {
		t.Errorf("message: %q", e.Error())
	}
}

func TestLocalExecCloseKillsRunningCommands(t *testing.T) {
	forLocalIsolations(t, LocalConfig{}, func(t *testing.T, b *LocalBackend) {
		mark := proctest.SleepArg()
		errs := make(chan error, 3)
		for range 3 {
			go func() {
				_, err := b.Exec(context.Background(), "sleep "+mark, nil)
				errs <- err
			}()
		}
		proctest.WaitRunning(t, mark, 3)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			localWantCode(t, <-errs, CodeDestroyed, "Exec running at Close")
		}
		proctest.WaitGone(t, mark)
	})
}

// A scope of a LocalBackend runs commands in the scope directory, with
// HOME there and the scope's environment under the call's; under bwrap
// the scope directory is the sandbox's workspace.
func TestLocalExecThroughScope(t *testing.T) {
	forLocalIsolations(t, LocalConfig{Env: map[string]string{"LEVEL": "backend", "B": "b"}}, func(t *testing.T, b *LocalBackend) {
		ctx := context.Background()
		scope, err := b.Scope("tenants/t1", &ScopeConfig{Env: map[string]string{"LEVEL": "scope", "S": "s"}})
		if err != nil {
			t.Fatal(err)
		}
		res, err := scope.Exec(ctx, `echo made > out.txt; printf '%s|%s|%s|%s|' "$HOME" "$LEVEL" "$B" "$S"; pwd`,
			&ExecOptions{Env: map[string]string{"S": "call"}})
		want := localScopeDirSeen(b, "tenants/t1", ".") + "|scope|b|call|" + localScopeDirSeen(b, "tenants/t1", ".") + "\n"
		if err != nil || string(res.Stdout) != want {
			t.Errorf("scope exec: %q %v, want %q", res.Stdout, err, want)
		}
		localWantFile(t, filepath.Join(b.RootDir(), "tenants/t1/out.txt"), "made\n")
		if err := scope.Mkdir(ctx, "inner"); err != nil {
			t.Fatal(err)
		}
		res, err = scope.Exec(ctx, "pwd", &ExecOptions{Cwd: "/inner"})
		if err != nil || string(res.Stdout) != localScopeDirSeen(b, "tenants/t1", "inner")+"\n" {
			t.Errorf("scope Cwd: %q %v", res.Stdout, err)
		}
		_, err = scope.Exec(ctx, "true", &ExecOptions{Cwd: "../t2"})
		if e := localWantCode(t, err, CodePathEscape, "scope Cwd escape"); e != nil && e.Path != "../t2" {
			t.Errorf("scope Cwd escape names %q, want the caller's ../t2", e.Path)
		}

		// Removing the scope's own directory leaves a usable scope: the
		// next command gets its directory back.
		if err := scope.Remove(ctx, ".", RemoveOptions{Recursive: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(b.RootDir(), "tenants/t1")); !os.IsNotExist(err) {
			t.Errorf("scope directory after Remove(.): %v", err)
		}
		res, err = scope.Exec(ctx, "pwd", nil)
		if err != nil || string(res.Stdout) != localScopeDirSeen(b, "tenants/t1", ".")+"\n" {
			t.Errorf("exec after Remove(.): %q %v", res.Stdout, err)
		}
	})
}

func TestLocalExecConcurrent(t *testing.T) {
	forLocalIsolations(t, LocalConfig{}, func(t *testing.T, b *LocalBackend) {
		var wg sync.WaitGroup
		for i := range 12 {
			wg.Go(func() {
				for j := range 4 {
					name := "f" + string(rune('a'+i)) + string(rune('0'+j))
					res, err := b.Exec(context.Background(), "echo "+name+" > "+name+"; cat "+name, nil)
					if err != nil || string(res.Stdout) != name+"\n" {
						t.Errorf("%s: %q %v", name, res.Stdout, err)
					}
				}
			})
		}
		wg.Wait()
		if names, err := b.ReadDir(context.Background(), "."); err != nil || len(names) != 48 {
			t.Errorf("%d files, %v", len(names), err)
		}
	})
}

// TestLocalExecTimeoutNamesTheCommandShort: a long command (a heredoc, a
// script) is named in the timeout's message shortened, and kept whole in
// Error.Command.
func TestLocalExecTimeoutNamesTheCommandShort(t *testing.T) {
	b := newLocal(t, LocalConfig{Isolation: IsolationNone})
	command := "sleep 5 # " + strings.Repeat("x", 10000)
	_, err := b.Exec(context.Background(), command, &ExecOptions{Timeout: 100 * time.Millisecond})
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, command, e.Command)
	assert.Contains(t, e.Error(), "timed out after 100ms and was killed: sleep 5 # xxx")
	assert.Less(t, len(e.Error()), 400, "the message shortens the command: %s", e.Error())
}
