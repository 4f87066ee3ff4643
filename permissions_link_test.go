package agentbackend_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	ab "github.com/agentbackend/agentbackend"
)

// linkedWorkspace is a local workspace with secrets and links inside it
// that lead to them under innocent names.
func linkedWorkspace(t *testing.T) (ab.FileBackend, string) {
	t.Helper()
	dir := t.TempDir()
	for p, content := range map[string]string{
		".env": "SECRET=1", ".ssh/id_rsa": "KEY", "src/main.go": "package main", "work/notes.txt": "n",
		"other/secret.txt": "other tenant",
	} {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"alias":             ".env",              // a file link
		"keys":              ".ssh",              // a directory link
		"src/config":        "../.env",           // climbing inside the workspace
		"chain1":            "chain2",            // a chain of links
		"chain2":            "src/config",        //
		"dangling":          ".env.local",        // to a secret that does not exist yet
		"work/peek":         "../other",          // out of the scope "work", inside the workspace
		"src/loop":          "loop",              // a loop
		"src/abs":           "/etc/passwd",       // out of the workspace
		"work/innocent.txt": "notes.txt",         // a link that stays harmless
		"keysdir":           "keys",              // a link to a link to a directory
		"src/dotdot":        "../keys/../.ssh/.", // ".." after a link
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	b := newLocal(t, ab.LocalConfig{RootDir: dir, Isolation: ab.IsolationNone})
	t.Cleanup(func() { b.Close() })
	return b, dir
}

// A link inside the workspace cannot dodge a rule about what it leads to.
func TestPermissionSymlinkAliases(t *testing.T) {
	ctx := context.Background()
	b, dir := linkedWorkspace(t)
	s := permScope(t, b, ".", ab.DefaultPermissions())
	for _, p := range []string{"alias", "keys/id_rsa", "src/config", "chain1", "keysdir/id_rsa", "src/dotdot/id_rsa", "./src/../alias"} {
		_, err := s.Read(ctx, p)
		wantDenied(t, err, "Read "+p)
		var d *ab.Denial
		if errors.As(err, &d) && d.Resolved == "" && !slices.Contains([]string{"keys/id_rsa", "keysdir/id_rsa", "src/dotdot/id_rsa"}, p) {
			t.Errorf("Read %s: the denial does not say where the link leads: %+v", p, d)
		}
		wantDenied(t, s.Write(ctx, p, []byte("x")), "Write "+p)
		_, err = s.Stat(ctx, p)
		wantDenied(t, err, "Stat "+p)
	}
	wantDenied(t, s.Write(ctx, "dangling", []byte("x")), "Write through a dangling link to a secret")
	if _, err := os.Lstat(filepath.Join(dir, ".env.local")); err == nil {
		t.Error("the write through the dangling link created .env.local")
	}
	_, err := s.ReadDir(ctx, "keys")
	wantDenied(t, err, "ReadDir through a directory link")
	_, err = ab.Grep(ctx, s, ab.GrepOptions{Pattern: "KEY", Path: "keys"})
	wantDenied(t, err, "Grep through a directory link")
	_, err = ab.Glob(ctx, s, "*", "keysdir")
	wantDenied(t, err, "Glob through a link to a link")

	// Harmless links still work; links that loop or leave are the
	// backend's errors, not permission denials.
	data, err := s.Read(ctx, "work/innocent.txt")
	if err != nil || string(data) != "n" {
		t.Errorf("Read of a harmless link: %q %v", data, err)
	}
	if _, err := s.Read(ctx, "src/abs"); !errors.Is(err, ab.ErrPathEscape) {
		t.Errorf("Read of a link out of the workspace: %v", err)
	}
	if _, err := s.Read(ctx, "src/loop"); err == nil || errors.Is(err, ab.ErrPermissionDenied) {
		t.Errorf("Read of a loop: %v", err)
	}
	for _, want := range []string{".env", ".ssh/id_rsa"} {
		data, _ := os.ReadFile(filepath.Join(dir, want))
		if string(data) == "x" {
			t.Errorf("%s was overwritten through a link", want)
		}
	}
}

// In a scope with rules for an access, a link that leads out of the scope
// (even to elsewhere in the workspace) is refused for that access.
func TestPermissionSymlinkLeavingScope(t *testing.T) {
	ctx := context.Background()
	b, _ := linkedWorkspace(t)
	work := permScope(t, b, "work", &ab.Permissions{Read: ab.Policy{Rules: []ab.Rule{{Pattern: "**/*.pem", Action: ab.Deny}}}})
	_, err := work.Read(ctx, "peek/secret.txt")
	if !errors.Is(err, ab.ErrPathEscape) {
		t.Errorf("Read through a link out of the scope: %v, want PATH_ESCAPE_ATTEMPT", err)
	}
	if data, err := work.Read(ctx, "innocent.txt"); err != nil || string(data) != "n" {
		t.Errorf("Read of a link inside the scope: %q %v", data, err)
	}
	real, err := work.RealPath(ctx, "innocent.txt")
	if err != nil || real != "notes.txt" {
		t.Errorf("RealPath = %q %v", real, err)
	}
	if _, err := work.RealPath(ctx, "peek/secret.txt"); !errors.Is(err, ab.ErrPathEscape) {
		t.Errorf("RealPath out of the scope: %v", err)
	}
}

func TestLocalRealPath(t *testing.T) {
	ctx := context.Background()
	b, _ := linkedWorkspace(t)
	lr := b.(ab.LinkResolver)
	for _, c := range []struct{ p, want string }{
		{".", "."}, {"src/main.go", "src/main.go"}, {"alias", ".env"}, {"keys/id_rsa", ".ssh/id_rsa"},
		{"chain1", ".env"}, {"keysdir", ".ssh"}, {"src/dotdot/id_rsa", ".ssh/id_rsa"}, {"dangling", ".env.local"},
		{"keys/new/deeper", ".ssh/new/deeper"}, {"missing/x", "missing/x"}, {"src/main.go/x", "src/main.go/x"},
		{"work/peek/secret.txt", "other/secret.txt"},
	} {
		got, err := lr.RealPath(ctx, c.p)
		if err != nil || got != c.want {
			t.Errorf("RealPath(%q) = %q, %v; want %q", c.p, got, err, c.want)
		}
	}
	if _, err := lr.RealPath(ctx, "src/abs"); !errors.Is(err, ab.ErrPathEscape) {
		t.Errorf("RealPath of a link out: %v", err)
	}
	if _, err := lr.RealPath(ctx, "src/loop"); err == nil {
		t.Error("RealPath of a loop succeeded")
	}
	if _, err := lr.RealPath(ctx, "../x"); !errors.Is(err, ab.ErrPathEscape) {
		t.Errorf("RealPath(../x): %v", err)
	}
	// Through a composite route, the prefix comes back.
	c, err := ab.NewComposite(newMemory(t), map[string]ab.FileBackend{"/ws/": b})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.RealPath(ctx, "/ws/keys/id_rsa"); err != nil || got != "ws/.ssh/id_rsa" {
		t.Errorf("composite RealPath = %q %v", got, err)
	}
	if got, err := c.RealPath(ctx, "/elsewhere/x"); err != nil || got != "elsewhere/x" {
		t.Errorf("composite RealPath on memory = %q %v", got, err)
	}
	// A permissioned scope over the composite sees the links of the route.
	s := permScope(t, c, "ws", ab.DefaultPermissions())
	_, err = s.Read(ctx, "keys/id_rsa")
	wantDenied(t, err, "Read through a link of a composite route")
	names, err := s.ReadDir(ctx, ".")
	if err != nil || slices.Contains(names, ".env") || slices.Contains(names, ".ssh") {
		t.Errorf("ReadDir = %q %v", names, err)
	}
}

// Links inside a container are followed by the check too.
func TestPermissionSymlinkAliasesDocker(t *testing.T) {
	ctx := context.Background()
	d := newDockerForPerms(t)
	seed(t, d, "ws", map[string]string{".env": "SECRET=1", ".ssh/id_rsa": "KEY", "src/a.go": "package a", "other/x": "x"})
	if _, err := d.Exec(ctx, "cd ws && ln -s .env alias && ln -s .ssh keys && ln -s ../.env src/config && ln -s .env.local dangling && ln -s /etc/passwd out && ln -s loop loop", nil); err != nil {
		t.Fatal(err)
	}
	lr := d.(ab.LinkResolver)
	for _, c := range []struct{ p, want string }{
		{"ws/alias", "ws/.env"}, {"ws/keys/id_rsa", "ws/.ssh/id_rsa"}, {"ws/src/config", "ws/.env"},
		{"ws/dangling", "ws/.env.local"}, {"ws/src/a.go", "ws/src/a.go"}, {"ws/keys/new/x", "ws/.ssh/new/x"},
		{"ws/missing/x", "ws/missing/x"}, {".", "."},
	} {
		got, err := lr.RealPath(ctx, c.p)
		if err != nil || got != c.want {
			t.Errorf("RealPath(%q) = %q, %v; want %q", c.p, got, err, c.want)
		}
	}
	if _, err := lr.RealPath(ctx, "ws/out"); !errors.Is(err, ab.ErrPathEscape) {
		t.Errorf("RealPath of a link out of the workspace: %v", err)
	}
	if _, err := lr.RealPath(ctx, "ws/loop"); err == nil {
		t.Error("RealPath of a loop succeeded")
	}
	s := permScope(t, d, "ws", ab.DefaultPermissions())
	for _, p := range []string{"alias", "keys/id_rsa", "src/config"} {
		_, err := s.Read(ctx, p)
		wantDenied(t, err, "docker Read "+p)
	}
	wantDenied(t, s.Write(ctx, "dangling", []byte("x")), "docker Write through a dangling link")
	if data, err := s.Read(ctx, "src/a.go"); err != nil || string(data) != "package a" {
		t.Errorf("docker Read src/a.go: %q %v", data, err)
	}
}
