package agentbackend_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	ab "github.com/agentbackend/agentbackend"
)

// Exec rules judge every simple command of the line; the strictest wins.
func TestPermissionExecRules(t *testing.T) {
	ctx := context.Background()
	b := newLocal(t, ab.LocalConfig{Isolation: ab.IsolationNone})
	seed(t, b, ".", map[string]string{".env": "SECRET=1", "src/a.go": "package a", ".ssh/id_rsa": "KEY"})
	a := &countingApprover{dec: ab.DenyOnce}
	p := ab.StrictPermissions()
	p.Network = ab.Policy{} // the host's network, accepted as it is: isolation none cannot filter it
	p.Exec.Rules = []ab.Rule{
		{Pattern: "echo *", Action: ab.Allow},
		{Pattern: "ls*", Action: ab.Allow},
		{Pattern: "re:^git (status|diff)( |$)", Action: ab.Allow},
		{Pattern: "rm *", Action: ab.Deny, Reason: "use Remove"},
	}
	p.Approver = a
	s := permScope(t, b, ".", p)
	for _, c := range []struct {
		command string
		want    string // "allow", "deny" (a rule or a path), "ask" (refused by the approver)
	}{
		{"echo hi", "allow"},
		{"ls -la src", "allow"},
		{"echo a; ls", "allow"},
		{"echo a && rm -rf src", "deny"},
		{"FOO=1 rm -rf src", "deny"},
		{`r""m -rf src`, "deny"},
		{"if true; then rm -rf src; fi", "deny"},
		{"echo $(rm -rf src)", "deny"},
		{"echo `rm -rf src`", "deny"},
		{`echo "$(rm -rf src)"`, "deny"},
		{"(rm -rf src)", "deny"},
		{"echo a | sh", "ask"},
		{"echo a && make", "ask"},
		{"make", "ask"},
		{"git status", "allow"},
		{"git push", "ask"},
		{`echo "rm -rf src"`, "allow"}, // a quoted string is data
		{"echo 'a; rm -rf src'", "allow"},
		{"cat <<EOF\nrm -rf src\nEOF", "ask"}, // cat asks; the heredoc body is data
		{"echo x > .env", "deny"},             // a path word hits a Deny rule
		{"echo hi >.env", "deny"},
		{"ls .ssh", "deny"},
		{"ls ~/.ssh", "deny"},
		{"ls src/../.ssh/id_rsa", "deny"},
		{"ls --file=.env", "deny"},
		{"echo " + s.RootDir() + "/.env", "deny"},
		{"ls src", "allow"},
		{"# rm -rf src", "allow"}, // a comment runs nothing
	} {
		a.calls.Store(0)
		_, err := s.Exec(ctx, c.command, nil)
		var got string
		switch {
		case err == nil, errors.Is(err, ab.ErrExecFailed):
			got = "allow" // it ran
		case errors.Is(err, ab.ErrPermissionDenied):
			var d *ab.Denial
			errors.As(err, &d)
			got = "deny"
			if d.Asked {
				got = "ask"
			}
		default:
			got = "error: " + err.Error()
		}
		if got != c.want {
			t.Errorf("Exec(%q) = %s (%v), want %s", c.command, got, err, c.want)
		}
		if asked := a.calls.Load() > 0; asked != (c.want == "ask") {
			t.Errorf("Exec(%q): approver called %d times", c.command, a.calls.Load())
		}
	}
	if ok, _ := b.Exists(ctx, "src/a.go"); !ok {
		t.Fatal("src was removed")
	}
	// The working directory counts for relative words.
	_, err := s.Exec(ctx, "ls id_rsa", &ab.ExecOptions{Cwd: ".ssh"})
	wantDenied(t, err, "a word relative to the Cwd")
	_, err = s.Exec(ctx, "ls ~/id_rsa", &ab.ExecOptions{Cwd: ".ssh"})
	wantDenied(t, err, "~ is the Cwd (HOME)")
	// Remembered answers apply to the same command line only.
	a.dec = ab.AllowAlways
	for range 2 {
		if _, err := s.Exec(ctx, "make -v || true", nil); err != nil {
			t.Fatal(err)
		}
	}
	if a.calls.Load() != 1 {
		t.Errorf("allow-always for a command: %d calls", a.calls.Load())
	}
	if _, err := s.Exec(ctx, "make -v  || true ", nil); err != nil {
		t.Fatal(err)
	}
	if a.calls.Load() != 2 {
		t.Errorf("another spelling of the command was not asked about: %d calls", a.calls.Load())
	}
}

// Empty commands are the backend's error; an exec default of deny denies
// everything, and ReadOnly leaves nothing to run.
func TestPermissionExecDefaults(t *testing.T) {
	ctx := context.Background()
	b := newLocal(t, ab.LocalConfig{Isolation: ab.IsolationNone})
	s := permScope(t, b, ".", ab.ReadOnlyPermissions())
	if _, err := s.Exec(ctx, "  ", nil); !errors.Is(err, ab.ErrEmptyCommand) {
		t.Errorf("empty command: %v", err)
	}
	_, err := s.Exec(ctx, "true", nil)
	wantDenied(t, err, "Exec under ReadOnly")
	if want := `PERMISSION_DENIED: exec "true": the default exec policy denies exec`; err.Error() != want {
		t.Errorf("message %q", err)
	}
	_, err = s.Exec(ctx, "# only a comment", nil)
	wantDenied(t, err, "a comment under a deny default")
	// A catch-all Deny rule of a file access does not deny every command
	// through its words; a rule that names something does.
	all := permScope(t, b, ".", &ab.Permissions{Write: ab.Policy{Rules: []ab.Rule{
		{Pattern: "**", Action: ab.Deny}, {Pattern: "*/*", Action: ab.Deny}, {Pattern: "build/**", Action: ab.Deny},
	}}})
	if _, err := all.Exec(ctx, "echo test ./x a/b", nil); err != nil {
		t.Errorf("catch-all write rules deny a command: %v", err)
	}
	_, err = all.Exec(ctx, "echo build/out", nil)
	wantDenied(t, err, "a word naming a denied directory")
	// A memory backend still reports that it cannot run commands when
	// permissions allow it.
	m := permScope(t, newMemory(t), ".", ab.DefaultPermissions())
	if _, err := m.Exec(ctx, "ls", nil); !errors.Is(err, ab.ErrNotImplemented) {
		t.Errorf("memory Exec: %v", err)
	}
	_, err = m.Exec(ctx, "cat .env", nil)
	wantDenied(t, err, "memory Exec naming a secret")
	if !strings.Contains(err.Error(), `argument ".env"`) {
		t.Errorf("message %q", err)
	}
}
