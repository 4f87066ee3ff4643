package agentbackend_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	ab "github.com/agentbackend/agentbackend"
)

// FuzzPermissionPaths: no spelling of a path — traversal, absolute forms,
// doubled slashes, links inside the workspace — lets a read reveal, or a
// write or remove change, a file the rules deny. Seeds are in
// testdata/fuzz/FuzzPermissionPaths.
func FuzzPermissionPaths(f *testing.F) {
	dir := f.TempDir()
	protected := map[string]string{".env": "SECRET-env", "a/.env": "SECRET-a", "secrets/k.txt": "SECRET-k"}
	for p, content := range map[string]string{".env": "SECRET-env", "a/.env": "SECRET-a", "secrets/k.txt": "SECRET-k", "ok.txt": "fine", "a/b/c.txt": "fine"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(content), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	for link, target := range map[string]string{"alias": ".env", "sdir": "secrets", "a/up": "..", "a/b/deep": "../../secrets/k.txt"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			f.Fatal(err)
		}
	}
	local, err := ab.NewLocal(ab.LocalConfig{RootDir: dir, Isolation: ab.IsolationNone})
	if err != nil {
		f.Fatal(err)
	}
	defer local.Close()
	mem, err := ab.NewMemory(ab.MemoryConfig{})
	if err != nil {
		f.Fatal(err)
	}
	defer mem.Close()
	ctx := context.Background()
	for p, content := range protected {
		mem.Write(ctx, p, []byte(content))
	}
	rules := []ab.Rule{{Pattern: "**/.env", Action: ab.Deny}, {Pattern: "secrets/**", Action: ab.Deny}}
	perms := &ab.Permissions{Read: ab.Policy{Rules: rules}, Write: ab.Policy{Rules: rules}, Delete: ab.Policy{Rules: rules}}
	var scopes []*ab.ScopedBackend
	for _, b := range []ab.FileBackend{local, mem} {
		s, err := b.Scope(".", &ab.ScopeConfig{Permissions: perms})
		if err != nil {
			f.Fatal(err)
		}
		scopes = append(scopes, s)
	}
	f.Add(local.RootDir() + "/.env")
	f.Add(local.RootDir() + "//a/../sdir/k.txt")
	f.Fuzz(func(t *testing.T, p string) {
		for i, s := range scopes {
			if data, err := s.Read(ctx, p); err == nil && bytes.Contains(data, []byte("SECRET")) {
				t.Fatalf("backend %d: Read(%q) revealed %q", i, p, data)
			}
			s.Write(ctx, p, []byte("FUZZ"))
			s.Remove(ctx, p, ab.RemoveOptions{})
			s.Rename(ctx, p, "renamed")
			s.Rename(ctx, "renamed", p)
			for q, want := range protected {
				var got []byte
				if i == 0 {
					got, _ = os.ReadFile(filepath.Join(dir, q))
				} else {
					got, _ = mem.Read(ctx, q)
				}
				if string(got) != want {
					t.Fatalf("backend %d: after Write/Remove/Rename of %q, %s holds %q", i, p, q, got)
				}
			}
		}
	})
}
