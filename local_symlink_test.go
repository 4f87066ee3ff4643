//go:build unix

package agentbackend

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// escapeFixture is a workspace with symbolic links that lead out of it:
// "etc" -> /etc, "outside" -> a directory outside the workspace (absolute),
// "up" -> .., and "sub/back" -> ../.. (relative, from a subdirectory).
type escapeFixture struct {
	b       *LocalBackend
	outside string // the outside directory, holding "secret"
}

func newEscapeFixture(t *testing.T) escapeFixture {
	t.Helper()
	parent := t.TempDir()
	root := filepath.Join(parent, "ws")
	outside := filepath.Join(parent, "outside")
	for _, dir := range []string{filepath.Join(root, "sub"), outside} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{"etc": "/etc", "outside": outside, "up": "..", "sub/back": "../.."}
	for link, target := range links {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	return escapeFixture{b: newLocal(t, LocalConfig{RootDir: root}), outside: outside}
}

// checkOutside fails t if anything outside the workspace changed.
func (f escapeFixture) checkOutside(t *testing.T) {
	t.Helper()
	if names := localHostNames(t, f.outside); !slices.Equal(names, []string{"secret"}) {
		t.Errorf("outside directory now holds %q", names)
	}
	localWantFile(t, filepath.Join(f.outside, "secret"), "secret")
	if names := localHostNames(t, filepath.Dir(f.outside)); !slices.Equal(names, []string{"outside", "ws"}) {
		t.Errorf("the workspace's parent now holds %q", names)
	}
}

// Every operation refuses a path through a link that leads out, with
// PATH_ESCAPE_ATTEMPT naming the caller's path, and touches nothing
// outside. The links to /etc are only read through: were the jail broken,
// a test must not write to the host's /etc.
func TestLocalSymlinkEscapesRefused(t *testing.T) { forWriteImpls(t, testLocalSymlinkEscapesRefused) }

func testLocalSymlinkEscapesRefused(t *testing.T) {
	localNoLeaks(t)
	f := newEscapeFixture(t)
	b, ctx := f.b, context.Background()
	localWrite(t, b, "file", "inside")
	junk := fmt.Sprintf("agentbackend-test-%d", rand.Uint64())

	type op struct {
		name string
		do   func(p string) error
	}
	readOps := []op{
		{"Read", func(p string) error { _, err := b.Read(ctx, p); return err }},
		{"Stat", func(p string) error { _, err := b.Stat(ctx, p); return err }},
		{"Exists", func(p string) error { _, err := b.Exists(ctx, p); return err }},
		{"ReadDir", func(p string) error { _, err := b.ReadDir(ctx, p); return err }},
		{"ReadDirInfo", func(p string) error { _, err := b.ReadDirInfo(ctx, p); return err }},
	}
	writeOps := []op{
		{"Write", func(p string) error { return b.Write(ctx, p, []byte("pwned")) }},
		{"Mkdir", func(p string) error { return b.Mkdir(ctx, p) }},
		{"Touch", func(p string) error { return b.Touch(ctx, p) }},
		{"Remove", func(p string) error { return b.Remove(ctx, p, RemoveOptions{Recursive: true, Force: true}) }},
		{"Rename from", func(p string) error { return b.Rename(ctx, p, "stolen") }},
		{"Rename to", func(p string) error { return b.Rename(ctx, "file", p) }},
		{"Exec cwd", func(p string) error { _, err := b.Exec(ctx, "touch pwned", &ExecOptions{Cwd: p}); return err }},
	}
	check := func(ops []op, paths ...string) {
		t.Helper()
		for _, o := range ops {
			for _, p := range paths {
				err := o.do(p)
				if e := localWantCode(t, err, CodePathEscape, o.name+"("+p+")"); e != nil && e.Path != p {
					t.Errorf("%s(%q): error names %q", o.name, p, e.Path)
				}
			}
		}
	}
	check(readOps, "etc", "etc/passwd", "etc/", "outside", "outside/secret", "up", "up/ws/file", "sub/back", "sub/back/outside/secret")
	check(writeOps, "etc/"+junk, "etc/"+junk+"/deeper", "outside/secret", "outside/new", "up/new", "up/outside/secret", "sub/back/new")
	// Writing to, or creating at, the link itself follows it: refused too.
	check([]op{writeOps[0], writeOps[1], writeOps[2]}, "outside", "up", "sub/back")

	// Scopes pass their paths down to the same checks.
	scope, err := b.Scope("sub", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = scope.Read(ctx, "back/outside/secret")
	localWantCode(t, err, CodePathEscape, "scope Read through a link")
	localWantCode(t, scope.Write(ctx, "back/x", []byte("x")), CodePathEscape, "scope Write through a link")

	f.checkOutside(t)
	if _, err := os.Lstat(filepath.Join("/etc", junk)); err == nil {
		os.RemoveAll(filepath.Join("/etc", junk))
		t.Fatalf("a file was created in the host's /etc")
	}
	localWantFile(t, filepath.Join(b.RootDir(), "file"), "inside")
}

// Operations on a link itself, not through it, act on the link, inside the
// workspace: removing or renaming a link to /etc leaves /etc alone.
func TestLocalSymlinkItselfIsInside(t *testing.T) {
	f := newEscapeFixture(t)
	b, ctx := f.b, context.Background()
	if err := b.Rename(ctx, "outside", "moved-link"); err != nil {
		t.Errorf("Rename of a link: %v", err)
	}
	if err := b.Remove(ctx, "moved-link", RemoveOptions{Recursive: true}); err != nil {
		t.Errorf("Remove of a link: %v", err)
	}
	if err := b.Remove(ctx, "etc", RemoveOptions{}); err != nil {
		t.Errorf("Remove of a link to /etc: %v", err)
	}
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Fatalf("/etc/passwd: %v", err)
	}
	f.checkOutside(t)
	names, err := b.ReadDir(ctx, ".")
	if err != nil || !slices.Equal(names, []string{"sub", "up"}) {
		t.Errorf("workspace after removing the links: %q %v", names, err)
	}
}

// A link that stays inside the workspace is followed, however it climbs.
func TestLocalSymlinkInsideFollowed(t *testing.T) {
	b := newLocal(t, LocalConfig{})
	ctx := context.Background()
	root := b.RootDir()
	localWrite(t, b, "data/file.txt", "data")
	for link, target := range map[string]string{"rel": "data", "a/b/climb": "../../data"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, link)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
		if got, err := b.Read(ctx, link+"/file.txt"); err != nil || string(got) != "data" {
			t.Errorf("Read through %s: %q %v", link, got, err)
		}
		localWrite(t, b, link+"/new-"+filepath.Base(link), "n")
		if ok, err := b.Exists(ctx, link); !ok || err != nil {
			t.Errorf("Exists(%s) = %v %v", link, ok, err)
		}
	}
	names, err := b.ReadDir(ctx, "data")
	if err != nil || !slices.Equal(names, []string{"file.txt", "new-climb", "new-rel"}) {
		t.Errorf("data holds %q, %v", names, err)
	}
	if _, err := b.Stat(ctx, "a/b/climb/../x"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing path through a link: %v", err)
	}
}
