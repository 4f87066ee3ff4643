package agentbackend

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"testing"
)

// newTestComposite returns memory for "/tmp/" and a local directory for
// "/project/" over a memory default, as examples/composite does.
func newTestComposite(t *testing.T) (c *CompositeBackend, def, tmp *MemoryBackend, project *LocalBackend) {
	t.Helper()
	def, _ = NewMemory(MemoryConfig{})
	tmp, _ = NewMemory(MemoryConfig{})
	project, err := NewLocal(LocalConfig{RootDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	cache, _ := NewMemory(MemoryConfig{})
	c, err = NewComposite(def, map[string]FileBackend{"/tmp/": tmp, "project": project, "project/cache": cache})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, def, tmp, project
}

func TestCompositeRouting(t *testing.T) {
	ctx := context.Background()
	c, def, tmp, project := newTestComposite(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Write(ctx, "/tmp/scratch.txt", []byte("scratch")))
	must(c.Write(ctx, "project/main.go", []byte("package main")))
	must(c.Write(ctx, "/project/cache/c.bin", []byte("cached"))) // longest prefix wins
	must(c.Write(ctx, "notes.md", []byte("default")))

	if got, _ := tmp.Read(ctx, "scratch.txt"); string(got) != "scratch" {
		t.Error("/tmp/ did not route to the tmp backend with the prefix removed")
	}
	if got, _ := project.Read(ctx, "main.go"); string(got) != "package main" {
		t.Error("project/ did not route to the project backend")
	}
	if got, _ := c.routes[0].b.Read(ctx, "c.bin"); c.routes[0].prefix != "project/cache" || string(got) != "cached" {
		t.Error("the longer prefix project/cache did not win")
	}
	if ok, _ := def.Exists(ctx, "notes.md"); !ok {
		t.Error("an unrouted path did not go to the default backend")
	}

	root, err := c.ReadDir(ctx, "/")
	if err != nil || !slices.Equal(root, []string{"notes.md", "project", "tmp"}) {
		t.Errorf("ReadDir(/) = %q, %v: mount points must be listed", root, err)
	}
	proj, _ := c.ReadDir(ctx, "project")
	if !slices.Equal(proj, []string{"cache", "main.go"}) {
		t.Errorf("ReadDir(project) = %q: a nested mount point must be listed", proj)
	}
	for _, p := range []string{"tmp", "/project", "project/cache"} {
		fi, err := c.Stat(ctx, p)
		if err != nil || !fi.IsDir {
			t.Errorf("Stat(mount %s) = %+v, %v", p, fi, err)
		}
		if ok, err := c.Exists(ctx, p); !ok || err != nil {
			t.Errorf("Exists(mount %s) = %v, %v", p, ok, err)
		}
	}
	if fi, _ := c.Stat(ctx, "project/cache"); fi.Name != "cache" {
		t.Errorf("mount point Stat name = %q", fi.Name)
	}

	// Errors name the composite path.
	_, err = c.Read(ctx, "/tmp/missing")
	var e *Error
	if !errors.As(err, &e) || e.Path != "/tmp/missing" || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("routed error = %v", err)
	}
	for _, op := range []error{c.Remove(ctx, "tmp", RemoveOptions{Recursive: true}), c.Remove(ctx, ".", RemoveOptions{Recursive: true}),
		c.Write(ctx, "tmp", nil), c.Rename(ctx, "project", "elsewhere")} {
		wantCodeT(t, op, CodeWriteFailed)
	}
	if _, err := c.Read(ctx, "../escape"); !errors.Is(err, ErrPathEscape) {
		t.Errorf("escape: %v", err)
	}
}

func TestCompositeRename(t *testing.T) {
	ctx := context.Background()
	c, _, tmp, project := newTestComposite(t)
	c.Write(ctx, "project/a.txt", []byte("A"))
	if err := c.Rename(ctx, "project/a.txt", "project/b.txt"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := project.Exists(ctx, "b.txt"); !ok {
		t.Error("a rename within a route did not use the route's rename")
	}
	// Across routes: a directory tree is copied, then the source removed.
	c.Write(ctx, "project/dir/x", []byte("x"))
	c.Write(ctx, "project/dir/sub/y", []byte("y"))
	if err := c.Rename(ctx, "project/dir", "/tmp/moved"); err != nil {
		t.Fatal(err)
	}
	if got, _ := tmp.Read(ctx, "moved/sub/y"); string(got) != "y" {
		t.Error("cross-route rename did not copy the tree")
	}
	if ok, _ := project.Exists(ctx, "dir"); ok {
		t.Error("cross-route rename left the source")
	}
	// A failed copy never loses the source: close the destination backend
	// so every write to it fails.
	dest, _ := NewMemory(MemoryConfig{})
	c2, _ := NewComposite(project, map[string]FileBackend{"dead": dest})
	dest.Close()
	if err := c2.Rename(ctx, "b.txt", "dead/b.txt"); err == nil {
		t.Fatal("rename into a closed backend succeeded")
	}
	if got, err := project.Read(ctx, "b.txt"); err != nil || string(got) != "A" {
		t.Errorf("source lost after a failed cross-route rename: %q, %v", got, err)
	}
}

func TestCompositeToolsFanOut(t *testing.T) {
	ctx := context.Background()
	c, def, _, _ := newTestComposite(t)
	for p, content := range map[string]string{
		"root.go": "package root // TODO", "project/main.go": "package main // TODO", "project/pkg/lib.go": "package lib",
		"/tmp/t.go": "package tmp // TODO", "project/cache/gen.go": "package gen // TODO", "docs/readme.md": "TODO",
	} {
		if err := c.Write(ctx, p, []byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	// An entry of the default backend hidden under a mount is not reported.
	def.Write(ctx, "tmp/shadowed.go", []byte("package shadowed // TODO"))

	got, err := Glob(ctx, c, "**/*.go", ".")
	want := []string{"project/cache/gen.go", "project/main.go", "project/pkg/lib.go", "root.go", "tmp/t.go"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Glob(**/*.go) = %q, %v; want %q", got, err, want)
	}
	got, _ = Glob(ctx, c, "project/*.go", ".")
	if !slices.Equal(got, []string{"project/main.go"}) {
		t.Errorf("Glob(project/*.go) = %q", got)
	}
	got, _ = Glob(ctx, c, "*/*.go", "project")
	if !slices.Equal(got, []string{"cache/gen.go", "pkg/lib.go"}) {
		t.Errorf("Glob(*/*.go, project) = %q", got)
	}
	got, _ = Glob(ctx, c, "*", ".")
	if !slices.Equal(got, []string{"docs", "project", "root.go", "tmp"}) {
		t.Errorf("Glob(*) = %q", got)
	}

	r, err := Grep(ctx, c, GrepOptions{Pattern: "TODO"})
	want = []string{"docs/readme.md", "project/cache/gen.go", "project/main.go", "root.go", "tmp/t.go"}
	if err != nil || !slices.Equal(r.Files, want) {
		t.Errorf("Grep = %q, %v; want %q", r.Files, err, want)
	}
	r, _ = Grep(ctx, c, GrepOptions{Pattern: "TODO", Path: "project", Mode: GrepContent})
	if r.String() != "project/cache/gen.go:1:package gen // TODO\nproject/main.go:1:package main // TODO\n" {
		t.Errorf("Grep content under project = %q", r.String())
	}
	r, _ = Grep(ctx, c, GrepOptions{Pattern: "package", Glob: "project/**/*.go", HeadLimit: 2})
	if !slices.Equal(r.Files, []string{"project/cache/gen.go", "project/main.go"}) || !r.Truncated {
		t.Errorf("Grep with a path glob and head limit = %+v", r)
	}

	entries, err := Ls(ctx, c, "project", true)
	if err != nil || len(entries) != 3 || entries[0].Path != "project/cache" || !entries[0].IsDir {
		t.Errorf("Ls(project, true) = %+v, %v", entries, err)
	}

	// Scoping a composite works, tools included.
	s, err := c.Scope("project", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = Glob(ctx, s, "**/*.go", ".")
	if !slices.Equal(got, []string{"cache/gen.go", "main.go", "pkg/lib.go"}) {
		t.Errorf("Glob on a scope of the composite = %q", got)
	}
	r, _ = Grep(ctx, s, GrepOptions{Pattern: "TODO"})
	if !slices.Equal(r.Files, []string{"cache/gen.go", "main.go"}) {
		t.Errorf("Grep on a scope of the composite = %q", r.Files)
	}
}

func TestCompositeExecAndClose(t *testing.T) {
	ctx := context.Background()
	def, err := NewLocal(LocalConfig{RootDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	mem, _ := NewMemory(MemoryConfig{})
	c, _ := NewComposite(def, map[string]FileBackend{"mem": mem, "mem-again": mem})
	res, err := c.Exec(ctx, "echo hi > f.txt && cat f.txt", nil)
	if err != nil || string(res.Stdout) != "hi\n" {
		t.Errorf("Exec on the default backend: %v", err)
	}
	_, err = c.Exec(ctx, "true", &ExecOptions{Cwd: "mem"})
	wantCodeT(t, err, CodeNotImplemented) // a Cwd under a route runs there
	_, err = c.Exec(ctx, "true", &ExecOptions{Cwd: "../x"})
	wantCodeT(t, err, CodePathEscape)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if def.Status() != StatusDestroyed || mem.Status() != StatusDestroyed || c.Status() != StatusDestroyed {
		t.Error("Close did not close the backends it was given")
	}
	if _, err := NewComposite(def, map[string]FileBackend{"a/../..": mem}); !errors.Is(err, ErrInvalidConfiguration) {
		t.Errorf("bad prefix: %v", err)
	}
	if _, err := NewComposite(def, map[string]FileBackend{"/x/": mem, "x": mem}); !errors.Is(err, ErrInvalidConfiguration) {
		t.Errorf("duplicate prefix: %v", err)
	}
}
