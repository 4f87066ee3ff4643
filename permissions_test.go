package agentbackend_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	ab "github.com/agentbackend/agentbackend"
)

// permBackend is a backend the permission tests run on: a fresh one from
// make, and the scope (without permissions) the permissioned scopes are
// made under.
type permBackend struct {
	name string
	exec bool // it runs commands
	make func(t *testing.T) (ab.FileBackend, string)
}

// permBackends are the backends of the permission matrix: each kind, a
// route of a composite, and a scope of each (the permissions then sit on a
// scope of a scope).
func permBackends() []permBackend {
	local := func(t *testing.T) ab.FileBackend { return newLocal(t, ab.LocalConfig{Isolation: ab.IsolationNone}) }
	memory := func(t *testing.T) ab.FileBackend { return newMemory(t) }
	composite := func(t *testing.T) ab.FileBackend {
		c, err := ab.NewComposite(newMemory(t), map[string]ab.FileBackend{"/proj/": local(t)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	var out []permBackend
	for _, k := range []struct {
		name string
		exec bool
		make func(t *testing.T) ab.FileBackend
		at   string
	}{
		{"local", true, local, "."},
		{"memory", false, memory, "."},
		{"composite", false, composite, "."},
		{"composite-route", true, composite, "proj"},
	} {
		out = append(out, permBackend{k.name, k.exec, func(t *testing.T) (ab.FileBackend, string) {
			b := k.make(t)
			t.Cleanup(func() { b.Close() })
			return b, k.at
		}})
		out = append(out, permBackend{k.name + "/scope", k.exec, func(t *testing.T) (ab.FileBackend, string) {
			b := k.make(t)
			t.Cleanup(func() { b.Close() })
			s, err := b.Scope(filepath.ToSlash(filepath.Join(k.at, "tenant")), nil)
			if err != nil {
				t.Fatal(err)
			}
			return s, "."
		}})
	}
	return out
}

// permScope returns a scope at `at` of b with permissions p.
func permScope(t *testing.T, b ab.FileBackend, at string, p *ab.Permissions) *ab.ScopedBackend {
	t.Helper()
	s, err := b.Scope(at, &ab.ScopeConfig{Permissions: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// seed writes the fixture every matrix case starts from, without
// permissions.
func seed(t *testing.T, b ab.FileBackend, at string, files map[string]string) {
	t.Helper()
	s, err := b.Scope(at, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for p, content := range files {
		if err := s.Write(context.Background(), p, []byte(content)); err != nil {
			t.Fatalf("seed %s: %v", p, err)
		}
	}
}

func wantDenied(t *testing.T, err error, what string) {
	t.Helper()
	if !errors.Is(err, ab.ErrPermissionDenied) {
		t.Fatalf("%s: got %v, want PERMISSION_DENIED", what, err)
	}
	var d *ab.Denial
	if !errors.As(err, &d) {
		t.Fatalf("%s: %v carries no *Denial", what, err)
	}
}

func wantAllowed(t *testing.T, err error, what string) {
	t.Helper()
	if errors.Is(err, ab.ErrPermissionDenied) || errors.Is(err, ab.ErrApprovalRequired) {
		t.Fatalf("%s: %v, want it allowed", what, err)
	}
}

// permOp is one operation of the matrix.
type permOp struct {
	name    string
	access  Access
	target  string // the path (or command) the rule names
	run     func(ctx context.Context, s ab.FileBackend) error
	noExec  bool   // needs a backend that runs commands
	effect  string // a path that exists after the operation ran ("" when none)
	missing string // a path that no longer exists after it ran
}

type Access = ab.Access

var permOps = []permOp{
	{name: "Read", access: ab.AccessRead, target: "f.txt", run: func(ctx context.Context, s ab.FileBackend) error { _, err := s.Read(ctx, "f.txt"); return err }},
	{name: "Stat", access: ab.AccessRead, target: "f.txt", run: func(ctx context.Context, s ab.FileBackend) error { _, err := s.Stat(ctx, "f.txt"); return err }},
	{name: "Exists", access: ab.AccessRead, target: "f.txt", run: func(ctx context.Context, s ab.FileBackend) error { _, err := s.Exists(ctx, "f.txt"); return err }},
	{name: "ReadLines", access: ab.AccessRead, target: "f.txt", run: func(ctx context.Context, s ab.FileBackend) error {
		_, err := ab.ReadLines(ctx, s, "f.txt", ab.ReadOptions{})
		return err
	}},
	{name: "ReadDir", access: ab.AccessList, target: "d", run: func(ctx context.Context, s ab.FileBackend) error { _, err := s.ReadDir(ctx, "d"); return err }},
	{name: "ReadDirInfo", access: ab.AccessList, target: "d", run: func(ctx context.Context, s ab.FileBackend) error {
		_, err := s.(ab.InfoLister).ReadDirInfo(ctx, "d")
		return err
	}},
	{name: "Ls", access: ab.AccessList, target: "d", run: func(ctx context.Context, s ab.FileBackend) error { _, err := ab.Ls(ctx, s, "d", true); return err }},
	{name: "Glob", access: ab.AccessList, target: "d", run: func(ctx context.Context, s ab.FileBackend) error { _, err := ab.Glob(ctx, s, "*", "d"); return err }},
	{name: "Grep", access: ab.AccessSearch, target: "d", run: func(ctx context.Context, s ab.FileBackend) error {
		_, err := ab.Grep(ctx, s, ab.GrepOptions{Pattern: "x", Path: "d"})
		return err
	}},
	{name: "Write", access: ab.AccessWrite, target: "new.txt", effect: "new.txt", run: func(ctx context.Context, s ab.FileBackend) error { return s.Write(ctx, "new.txt", []byte("x")) }},
	{name: "Mkdir", access: ab.AccessWrite, target: "nd", effect: "nd", run: func(ctx context.Context, s ab.FileBackend) error { return s.Mkdir(ctx, "nd") }},
	{name: "Touch", access: ab.AccessWrite, target: "t.txt", effect: "t.txt", run: func(ctx context.Context, s ab.FileBackend) error { return s.Touch(ctx, "t.txt") }},
	{name: "Edit", access: ab.AccessWrite, target: "f.txt", run: func(ctx context.Context, s ab.FileBackend) error {
		_, err := ab.Edit(ctx, s, "f.txt", ab.EditOp{Old: "hello", New: "bye"})
		return err
	}},
	{name: "RenameTarget", access: ab.AccessWrite, target: "moved.txt", effect: "moved.txt", missing: "f.txt", run: func(ctx context.Context, s ab.FileBackend) error { return s.Rename(ctx, "f.txt", "moved.txt") }},
	{name: "Remove", access: ab.AccessDelete, target: "f.txt", missing: "f.txt", run: func(ctx context.Context, s ab.FileBackend) error { return s.Remove(ctx, "f.txt", ab.RemoveOptions{}) }},
	{name: "RenameSource", access: ab.AccessDelete, target: "f.txt", effect: "moved.txt", missing: "f.txt", run: func(ctx context.Context, s ab.FileBackend) error { return s.Rename(ctx, "f.txt", "moved.txt") }},
	{name: "RenameSourceRead", access: ab.AccessRead, target: "f.txt", effect: "moved.txt", missing: "f.txt", run: func(ctx context.Context, s ab.FileBackend) error { return s.Rename(ctx, "f.txt", "moved.txt") }},
	{name: "Exec", access: ab.AccessExec, target: "echo *", noExec: true, run: func(ctx context.Context, s ab.FileBackend) error { _, err := s.Exec(ctx, "echo hi", nil); return err }},
}

// policyFor returns permissions whose only rule is {target, act} for access
// a; everything else is allowed.
func policyFor(a Access, target string, act ab.Action, approver ab.Approver) *ab.Permissions {
	p := &ab.Permissions{Approver: approver}
	p.Policy(a).Rules = []ab.Rule{{Pattern: target, Action: act, Reason: "the test says so"}}
	return p
}

// countingApprover answers every request with dec and counts the calls.
type countingApprover struct {
	dec   ab.Decision
	calls atomic.Int32
	last  atomic.Pointer[ab.Request]
}

func (a *countingApprover) Approve(_ context.Context, req ab.Request) (ab.Decision, error) {
	a.calls.Add(1)
	a.last.Store(&req)
	return a.dec, nil
}

// Every operation of every backend, under each action of a rule naming
// exactly what the operation touches.
func TestPermissionMatrix(t *testing.T) {
	runPermissionMatrix(t, permBackends())
}

// The matrix on a Docker container (one for the whole run, a fresh
// directory per case), directly and through a scope.
func TestPermissionMatrixDocker(t *testing.T) {
	d := newDockerForPerms(t)
	var n atomic.Int32
	fresh := func() string { return fmt.Sprintf("case%d", n.Add(1)) }
	runPermissionMatrix(t, []permBackend{
		{"docker", true, func(t *testing.T) (ab.FileBackend, string) { return d, fresh() }},
		{"docker/scope", true, func(t *testing.T) (ab.FileBackend, string) {
			s, err := d.Scope(fresh(), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s, "."
		}},
	})
}

func runPermissionMatrix(t *testing.T, backends []permBackend) {
	ctx := context.Background()
	type outcome int
	const (
		allowed outcome = iota
		denied
		approvalRequired
	)
	cases := []struct {
		name     string
		act      ab.Action
		approver *countingApprover
		fallback ab.AskFallback
		want     outcome
		asks     int32
	}{
		{"allow", ab.Allow, nil, "", allowed, 0},
		{"deny", ab.Deny, nil, "", denied, 0},
		{"ask-allowed", ab.Ask, &countingApprover{dec: ab.AllowOnce}, "", allowed, 1},
		{"ask-refused", ab.Ask, &countingApprover{dec: ab.DenyOnce}, "", denied, 1},
		{"ask-no-approver", ab.Ask, nil, "", denied, 0},
		{"ask-no-approver-error", ab.Ask, nil, ab.FallbackError, approvalRequired, 0},
	}
	for _, pb := range backends {
		t.Run(pb.name, func(t *testing.T) {
			for _, op := range permOps {
				if op.noExec && !pb.exec {
					continue
				}
				for _, c := range cases {
					t.Run(op.name+"/"+c.name, func(t *testing.T) {
						b, at := pb.make(t)
						seed(t, b, at, map[string]string{"f.txt": "hello x", "d/g.txt": "x marks"})
						var approver ab.Approver
						if c.approver != nil {
							approver = &countingApprover{dec: c.approver.dec}
						}
						p := policyFor(op.access, op.target, c.act, approver)
						p.AskFallback = c.fallback
						s := permScope(t, b, at, p)
						err := op.run(ctx, s)
						switch c.want {
						case allowed:
							wantAllowed(t, err, op.name)
							if err != nil {
								t.Fatalf("%s: %v", op.name, err)
							}
						case denied:
							wantDenied(t, err, op.name)
						case approvalRequired:
							if !errors.Is(err, ab.ErrApprovalRequired) {
								t.Fatalf("%s: got %v, want APPROVAL_REQUIRED", op.name, err)
							}
						}
						if ca, ok := approver.(*countingApprover); ok && ca.calls.Load() != c.asks {
							t.Errorf("approver called %d times, want %d", ca.calls.Load(), c.asks)
						}
						// A refused operation leaves no trace; an allowed one does.
						check, _ := b.Scope(at, nil)
						defer check.Close()
						if op.effect != "" {
							ok, _ := check.Exists(ctx, op.effect)
							if ok != (c.want == allowed) {
								t.Errorf("after %s (%s): %s exists = %v", op.name, c.name, op.effect, ok)
							}
						}
						if op.missing != "" {
							ok, _ := check.Exists(ctx, op.missing)
							if ok == (c.want == allowed) {
								t.Errorf("after %s (%s): %s exists = %v", op.name, c.name, op.missing, ok)
							}
						}
						if op.name == "Edit" {
							data, _ := check.Read(ctx, "f.txt")
							if edited := string(data) == "bye x"; edited != (c.want == allowed) {
								t.Errorf("after Edit (%s): f.txt = %q", c.name, data)
							}
						}
					})
				}
			}
		})
	}
}

// The Docker backend through a scope: the same checks, one per access.
func TestPermissionsDocker(t *testing.T) {
	d := newDockerForPerms(t)
	ctx := context.Background()
	seed(t, d, "ws", map[string]string{"f.txt": "hello x", ".env": "SECRET=1", "d/g.txt": "x"})
	s := permScope(t, d, "ws", ab.ReadOnlyPermissions())
	_, err := s.Read(ctx, ".env")
	wantDenied(t, err, "docker Read .env")
	_, err = s.Read(ctx, "f.txt")
	wantAllowed(t, err, "docker Read f.txt")
	wantDenied(t, s.Write(ctx, "f.txt", []byte("x")), "docker Write under ReadOnly")
	_, err = s.Exec(ctx, "echo hi", nil)
	wantDenied(t, err, "docker Exec under ReadOnly")
	names, err := s.ReadDir(ctx, ".")
	if err != nil || slices.Contains(names, ".env") {
		t.Errorf("docker ReadDir: %q %v, want .env left out", names, err)
	}
	res, err := ab.Grep(ctx, s, ab.GrepOptions{Pattern: "=", Hidden: true})
	if err != nil || len(res.Files) != 0 {
		t.Errorf("docker Grep found %q (%v) in denied files", res.Files, err)
	}
}

func newDockerForPerms(t *testing.T) ab.FileBackend {
	return newDockerBackend(t, ab.DockerConfig{AllowDangerous: true}) // the tests make links with ln -s
}

// The first matching rule decides; the default applies when none does.
func TestPermissionFirstMatchWins(t *testing.T) {
	ctx := context.Background()
	b := newMemory(t)
	seed(t, b, ".", map[string]string{"keep.env": "ok", "drop.env": "no", "other.txt": "ok"})
	s := permScope(t, b, ".", &ab.Permissions{Read: ab.Policy{Default: ab.Deny, Rules: []ab.Rule{
		{Pattern: "keep.env", Action: ab.Allow},
		{Pattern: "*.env", Action: ab.Deny},
		{Pattern: "*.txt", Action: ab.Allow},
		{Pattern: "other.txt", Action: ab.Deny}, // never reached
	}}})
	for p, want := range map[string]bool{"keep.env": true, "drop.env": false, "other.txt": true, "missing.bin": false} {
		_, err := s.Read(ctx, p)
		if got := !errors.Is(err, ab.ErrPermissionDenied); got != want {
			t.Errorf("Read(%s): %v, want allowed=%v", p, err, want)
		}
	}
}

// Nested scopes only tighten: each layer judges the path relative to its
// own root, and any Deny wins.
func TestPermissionNestedTightening(t *testing.T) {
	ctx := context.Background()
	for _, pb := range permBackends() {
		t.Run(pb.name, func(t *testing.T) {
			b, at := pb.make(t)
			seed(t, b, at, map[string]string{"app/src/a.go": "a", "app/docs/x.md": "x", "app/secret.txt": "s"})
			parent := permScope(t, b, at, &ab.Permissions{
				Read:  ab.Policy{Rules: []ab.Rule{{Pattern: "app/secret.txt", Action: ab.Deny}}},
				Write: ab.Policy{Default: ab.Deny, Rules: []ab.Rule{{Pattern: "app/src/**", Action: ab.Allow}}},
			})
			// The child tries to loosen (allow everything) and tightens (no docs).
			child, err := parent.Scope("app", &ab.ScopeConfig{Permissions: &ab.Permissions{
				Read:  ab.Policy{Default: ab.Allow, Rules: []ab.Rule{{Pattern: "docs/**", Action: ab.Deny}, {Pattern: "**", Action: ab.Allow}}},
				Write: ab.Policy{Default: ab.Allow},
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer child.Close()
			_, err = child.Read(ctx, "secret.txt")
			wantDenied(t, err, "child Read of what the parent denies")
			_, err = child.Read(ctx, "docs/x.md")
			wantDenied(t, err, "child Read of what the child denies")
			_, err = parent.Read(ctx, "app/docs/x.md")
			wantAllowed(t, err, "parent Read of what only the child denies")
			_, err = child.Read(ctx, "src/a.go")
			wantAllowed(t, err, "child Read")
			wantDenied(t, child.Write(ctx, "notes.txt", nil), "child Write the parent denies by default")
			wantAllowed(t, child.Write(ctx, "src/b.go", nil), "child Write the parent allows")
			// A grandchild without permissions keeps both layers.
			gc, err := child.Scope("docs", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer gc.Close()
			_, err = gc.Read(ctx, "x.md")
			wantDenied(t, err, "grandchild Read")
			var d *ab.Denial
			if errors.As(err, &d) && (d.Path != "docs/x.md" || d.Scope != child.RootDir()) {
				t.Errorf("denial names %q in %q, want docs/x.md in the child's root %q", d.Path, d.Scope, child.RootDir())
			}
		})
	}
}

// However a denied path is spelled, the rule sees the resolved path.
func TestPermissionTraversalCannotDodge(t *testing.T) {
	ctx := context.Background()
	for _, pb := range permBackends() {
		t.Run(pb.name, func(t *testing.T) {
			b, at := pb.make(t)
			seed(t, b, at, map[string]string{".env": "SECRET", "a/b/.env": "SECRET", "a/ok.txt": "ok"})
			s := permScope(t, b, at, ab.DefaultPermissions())
			root := s.RootDir()
			for _, p := range []string{".env", "./.env", "a/../.env", "a/b/../../.env", "//.env", "/.env",
				root + "/.env", root + "//a/../.env", "a/b/.env", "a/./b/.env", "a//b///.env", root + "/a/b/.env", "/a/b/.env"} {
				_, err := s.Read(ctx, p)
				wantDenied(t, err, "Read "+p)
				wantDenied(t, s.Write(ctx, p, []byte("x")), "Write "+p)
				_, err = s.Stat(ctx, p)
				wantDenied(t, err, "Stat "+p)
			}
			_, err := s.Read(ctx, "../.env")
			if !errors.Is(err, ab.ErrPathEscape) {
				t.Errorf("Read ../.env: %v, want PATH_ESCAPE_ATTEMPT before any rule", err)
			}
			data, err := s.Read(ctx, "a/../a/ok.txt")
			if err != nil || string(data) != "ok" {
				t.Errorf("Read allowed path: %q %v", data, err)
			}
		})
	}
}

// A denied path that does not exist is denied, not reported missing.
func TestPermissionDeniedMissingFile(t *testing.T) {
	ctx := context.Background()
	for _, pb := range permBackends() {
		t.Run(pb.name, func(t *testing.T) {
			b, at := pb.make(t)
			s := permScope(t, b, at, ab.DefaultPermissions())
			_, err := s.Read(ctx, "nowhere/.env")
			wantDenied(t, err, "Read of a missing secret")
			if errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the denial reveals that the file is missing: %v", err)
			}
			_, err = s.Exists(ctx, ".env")
			wantDenied(t, err, "Exists of a missing secret")
		})
	}
}

// The secrets preset blocks every pattern of its list, at any depth, for
// every file access, and hides them from listings and searches.
func TestPermissionSecretsPreset(t *testing.T) {
	ctx := context.Background()
	secrets := []string{".env", "app/.env.production", ".envrc", "certs/server.pem", "tls.key", "k.p12",
		"home/.ssh/id_ed25519", "id_rsa", "id_rsa.pub", ".ssh/config", ".aws/credentials", "deep/x/.aws/config",
		".git/config", "sub/.git/config", ".netrc", ".npmrc", ".pypirc", ".gnupg/pubring.kbx", ".kube/config",
		".docker/config.json", ".git-credentials", "infra/terraform.tfstate"}
	fine := []string{"env.go", "README.md", "src/keys.go", ".gitignore", ".git/HEAD", "environment.txt", "pem.txt"}
	b := newMemory(t)
	files := map[string]string{}
	for _, p := range append(slices.Clone(secrets), fine...) {
		files[p] = "TOKEN=1"
	}
	seed(t, b, ".", files)
	for _, preset := range []struct {
		name string
		p    *ab.Permissions
	}{{"Default", ab.DefaultPermissions()}, {"ReadOnly", ab.ReadOnlyPermissions()}, {"Strict", ab.StrictPermissions()}} {
		s := permScope(t, b, ".", preset.p)
		for _, p := range secrets {
			_, err := s.Read(ctx, p)
			wantDenied(t, err, preset.name+" Read "+p)
			wantDenied(t, s.Write(ctx, p, nil), preset.name+" Write "+p)
			wantDenied(t, s.Remove(ctx, p, ab.RemoveOptions{}), preset.name+" Remove "+p)
			_, err = ab.Grep(ctx, s, ab.GrepOptions{Pattern: "TOKEN", Path: p})
			wantDenied(t, err, preset.name+" Grep "+p)
		}
		for _, p := range fine {
			_, err := s.Read(ctx, p)
			wantAllowed(t, err, preset.name+" Read "+p)
		}
		all, err := ab.Glob(ctx, s, "**", ".")
		if err != nil {
			t.Fatal(err)
		}
		res, err := ab.Grep(ctx, s, ab.GrepOptions{Pattern: "TOKEN", Hidden: true, NoIgnore: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range secrets {
			if slices.Contains(all, p) || slices.Contains(res.Files, p) {
				t.Errorf("%s: %s is listed (glob %v) or searched (grep %v)", preset.name, p, slices.Contains(all, p), slices.Contains(res.Files, p))
			}
		}
		for _, p := range fine {
			if p != ".git/HEAD" && !slices.Contains(res.Files, p) {
				t.Errorf("%s: grep lost %s", preset.name, p)
			}
		}
	}
	if got := ab.ReadOnlyPermissions(); !got.Denies(ab.AccessExec) || !got.Denies(ab.AccessWrite) || got.Denies(ab.AccessRead) {
		t.Error("ReadOnlyPermissions should deny exec and write, not read")
	}
	if ab.StrictPermissions().Denies(ab.AccessExec) || ab.DefaultPermissions().Denies(ab.AccessWrite) {
		t.Error("Strict asks for exec and Default allows writes: neither denies all")
	}
}

// Every notable decision is logged, whatever the logger's mode.
func TestPermissionDecisionsLogged(t *testing.T) {
	ctx := context.Background()
	b := newMemory(t)
	seed(t, b, ".", map[string]string{".env": "s", "a.txt": "a"})
	log := ab.NewArrayLogger(ab.LogStandard)
	s, err := b.Scope(".", &ab.ScopeConfig{Logger: log, User: "agent-7", Permissions: &ab.Permissions{
		Read:     ab.Policy{Rules: []ab.Rule{{Pattern: "**/.env", Action: ab.Deny}, {Pattern: "a.txt", Action: ab.Ask}}},
		Approver: ab.ApproverFunc(func(context.Context, ab.Request) (ab.Decision, error) { return ab.AllowOnce, nil }),
	}})
	if err != nil {
		t.Fatal(err)
	}
	s.Read(ctx, ".env")
	s.Read(ctx, "a.txt")
	s.Stat(ctx, "a.txt")
	entries := log.Entries()
	if len(entries) != 3 {
		t.Fatalf("logged %d entries in standard mode, want the denial and both asks: %+v", len(entries), entries)
	}
	e := entries[0]
	if e.Success || e.Permission.Action != ab.Deny || e.Permission.Rule != "**/.env" || e.Permission.Access != ab.AccessRead || e.User != "agent-7" || !errors.Is(e.Err, ab.ErrPermissionDenied) {
		t.Errorf("denial entry = %+v", e)
	}
	e = entries[1]
	if !e.Success || e.Permission.Action != ab.Ask || e.Permission.Decision != ab.AllowOnce || e.Operation != ab.OpRead {
		t.Errorf("ask entry = %+v", e)
	}
	// Without decisions, standard mode logs no reads.
	log.Clear()
	s2, _ := b.Scope(".", &ab.ScopeConfig{Logger: log, Permissions: ab.DefaultPermissions()})
	s2.Read(ctx, "a.txt")
	if n := len(log.Entries()); n != 0 {
		t.Errorf("an allowed read was logged in standard mode (%d entries)", n)
	}
}

// Denial messages say what, where and why, for the model to choose another
// path; errors.As gives the rule.
func TestPermissionDenialMessage(t *testing.T) {
	ctx := context.Background()
	b := newLocal(t, ab.LocalConfig{Isolation: ab.IsolationNone})
	seed(t, b, ".", map[string]string{"src/a.go": "a"})
	s := permScope(t, b, ".", &ab.Permissions{
		Write: ab.Policy{Default: ab.Deny, Rules: []ab.Rule{{Pattern: "docs/**", Action: ab.Allow}}},
		Read:  ab.Policy{Rules: []ab.Rule{{Pattern: "**/.env", Action: ab.Deny, Reason: "credentials"}}},
		Exec:  ab.Policy{Rules: []ab.Rule{{Pattern: "rm *", Action: ab.Deny, Reason: "no deleting by shell"}}},
	})
	for _, c := range []struct {
		err  error
		want string
	}{
		{s.Write(ctx, "src/a.go", nil), `PERMISSION_DENIED: write src/a.go: the default write policy denies write`},
		{func() error { _, err := s.Read(ctx, "x/.env"); return err }(), `PERMISSION_DENIED: read x/.env: rule "**/.env" denies read (credentials)`},
		{func() error { _, err := s.Exec(ctx, "ls && rm -rf src", nil); return err }(), `PERMISSION_DENIED: exec "ls && rm -rf src": rule "rm *" denies exec (no deleting by shell)`},
		{func() error { _, err := s.Exec(ctx, "cat x/.env", nil); return err }(), `PERMISSION_DENIED: exec "cat x/.env": argument "x/.env": rule "**/.env" denies read (credentials)`},
	} {
		if c.err == nil || c.err.Error() != c.want {
			t.Errorf("error = %v\nwant    %s", c.err, c.want)
		}
	}
	_, err := s.Read(ctx, "x/.env")
	var d *ab.Denial
	if !errors.As(err, &d) || d.Rule.Pattern != "**/.env" || d.Rule.Reason != "credentials" || d.Access != ab.AccessRead || d.Path != "x/.env" {
		t.Errorf("Denial = %+v", d)
	}
	var e *ab.Error
	if !errors.As(err, &e) || e.Code != ab.CodePermissionDenied || e.Op != "read" || e.Path != "x/.env" {
		t.Errorf("Error = %+v", e)
	}
}
