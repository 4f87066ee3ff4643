package backendtest

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	ab "github.com/agentbackend/agentbackend"
)

func (s suite) testExec(t *testing.T) {
	b := s.fresh(t)
	if !supportsExec(t, b) {
		s.testNoExec(t, b)
		return
	}
	c := ctx(t)

	res, err := b.Exec(c, "echo hello", nil)
	must(t, err, "Exec echo")
	if string(res.Stdout) != "hello\n" || res.ExitCode != 0 || len(res.Stderr) != 0 {
		t.Errorf("echo hello: %+v", res)
	}

	res, err = b.Exec(c, "echo out; echo err >&2; exit 3", nil)
	e := wantCode(t, err, ab.CodeExecFailed, "non-zero exit")
	if e != nil && (e.ExitCode != 3 || !strings.Contains(e.Error(), "err")) {
		t.Errorf("EXEC_FAILED error: exit %d, %q", e.ExitCode, e.Error())
	}
	if !errors.Is(err, ab.ErrExecFailed) {
		t.Errorf("errors.Is(err, ErrExecFailed) = false for %v", err)
	}
	if res == nil || res.ExitCode != 3 || string(res.Stdout) != "out\n" || string(res.Stderr) != "err\n" {
		t.Errorf("non-zero exit result: %+v", res)
	}

	// The working directory is the workspace root, and HOME is it too.
	// (env and pwd, not $HOME: software isolation refuses $HOME.)
	res, err = b.Exec(c, "echo data > from-exec.txt; env | grep ^HOME=; pwd", nil)
	must(t, err, "Exec in root")
	wantRead(t, b, "from-exec.txt", "data\n")
	wantHomeIsCwd(t, res)

	// Per-call environment, passed as data.
	res, err = b.Exec(c, `printf '%s' "$GREETING"`, &ab.ExecOptions{Env: map[string]string{"GREETING": "it's; a 'test' $HOME"}})
	must(t, err, "Exec with env")
	if string(res.Stdout) != "it's; a 'test' $HOME" {
		t.Errorf("env value changed on the way: %q", res.Stdout)
	}
	for name, env := range map[string]map[string]string{
		"LD_PRELOAD": {"LD_PRELOAD": "/tmp/evil.so"},
		"BASH_ENV":   {"BASH_ENV": "/tmp/x"},
		"bad name":   {"A-B": "x"},
		"injection":  {"X=1; touch ran #": "y"},
		"NUL value":  {"OK": "a\x00b"},
	} {
		_, err := b.Exec(c, "touch ran", &ab.ExecOptions{Env: env})
		wantCode(t, err, ab.CodeInvalidConfiguration, "Exec with "+name)
	}
	wantExists(t, b, "ran", false)

	// Cwd inside the workspace; escapes and missing directories fail.
	must(t, b.Mkdir(c, "sub/dir"), "Mkdir")
	_, err = b.Exec(c, "echo x > here.txt", &ab.ExecOptions{Cwd: "sub/dir"})
	must(t, err, "Exec with Cwd")
	wantRead(t, b, "sub/dir/here.txt", "x\n")
	_, err = b.Exec(c, "true", &ab.ExecOptions{Cwd: "../"})
	wantCode(t, err, ab.CodePathEscape, "Exec with escaping Cwd")
	_, err = b.Exec(c, "true", &ab.ExecOptions{Cwd: "no/such/dir"})
	wantErr(t, err, "Exec with missing Cwd")

	// Stdin, and live copies of the output.
	var live bytes.Buffer
	res, err = b.Exec(c, "cat; echo done >&2", &ab.ExecOptions{Stdin: strings.NewReader("piped input"), Stdout: &live, Stderr: &live})
	must(t, err, "Exec with stdin")
	if string(res.Stdout) != "piped input" || !strings.Contains(live.String(), "piped input") || !strings.Contains(live.String(), "done") {
		t.Errorf("stdin/stdout: result %q, live %q", res.Stdout, live.String())
	}

	// Timeout and cancellation end the command.
	_, err = b.Exec(c, "sleep 30", &ab.ExecOptions{Timeout: 300 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Exec past its Timeout: %v, want context.DeadlineExceeded", err)
	}
	wantErr(t, err, "Exec past its Timeout")
	cc, cancel := context.WithCancel(c)
	time.AfterFunc(200*time.Millisecond, cancel)
	_, err = b.Exec(cc, "sleep 30", nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Exec with a cancelled ctx: %v, want context.Canceled", err)
	}

	// Safety runs before anything is spawned.
	_, err = b.Exec(c, "sudo touch ran", nil)
	if e := wantCode(t, err, ab.CodeDangerousOperation, "dangerous command"); e != nil && e.Command != "sudo touch ran" {
		t.Errorf("DANGEROUS_OPERATION carries command %q", e.Command)
	}
	_, err = b.Exec(c, "   ", nil)
	wantCode(t, err, ab.CodeEmptyCommand, "blank command")
	wantExists(t, b, "ran", false)

	// Scopes: cwd and HOME are the scope root; env merges scope under call.
	sc, err := b.Scope("ws/a", &ab.ScopeConfig{Env: map[string]string{"SCOPE_VAR": "scope", "OTHER": "scope"}})
	must(t, err, "Scope")
	res, err = sc.Exec(c, `echo "$SCOPE_VAR $OTHER" > v.txt; env | grep ^HOME=; pwd`,
		&ab.ExecOptions{Env: map[string]string{"OTHER": "call"}})
	must(t, err, "scope Exec")
	wantRead(t, b, "ws/a/v.txt", "scope call\n")
	wantHomeIsCwd(t, res)
	_, err = sc.Exec(c, "echo nested > n.txt", &ab.ExecOptions{Cwd: "/inner"})
	if err == nil {
		t.Error("scope Exec with a missing Cwd succeeded")
	}
	must(t, sc.Mkdir(c, "inner"), "scope Mkdir")
	_, err = sc.Exec(c, "echo nested > n.txt", &ab.ExecOptions{Cwd: "/inner"})
	must(t, err, "scope Exec with Cwd")
	wantRead(t, b, "ws/a/inner/n.txt", "nested\n")
	_, err = sc.Exec(c, "true", &ab.ExecOptions{Cwd: "../b"})
	wantCode(t, err, ab.CodePathEscape, "scope Exec escaping Cwd")
}

// wantHomeIsCwd checks the output of `env | grep ^HOME=; pwd`.
func wantHomeIsCwd(t *testing.T, res *ab.ExecResult) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(string(res.Stdout)), "\n")
	if len(lines) != 2 || strings.TrimPrefix(lines[0], "HOME=") != lines[1] || lines[1] == "" {
		t.Errorf("HOME and the working directory differ: %q", res.Stdout)
	}
}

// testNoExec checks how a backend without commands says so.
func (s suite) testNoExec(t *testing.T, b ab.FileBackend) {
	for name, target := range map[string]ab.FileBackend{"backend": b, "scope": mustScope(t, b, "s")} {
		_, err := target.Exec(ctx(t), "echo hi", nil)
		e := wantCode(t, err, ab.CodeNotImplemented, name+" Exec")
		if e != nil && (e.Op != "exec" || e.Backend != b.Type()) {
			t.Errorf("%s NOT_IMPLEMENTED carries op %q, backend %q", name, e.Op, e.Backend)
		}
	}
}

func mustScope(t *testing.T, b ab.FileBackend, p string) *ab.ScopedBackend {
	t.Helper()
	s, err := b.Scope(p, nil)
	must(t, err, "Scope "+p)
	return s
}
