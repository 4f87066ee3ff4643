package agentbackend_test

import (
	"context"
	"slices"
	"testing"

	ab "github.com/agentbackend/agentbackend"
)

// Glob and Grep run next to the data in a container and give exactly what
// the generic implementation gives on the same files.
func TestDockerSearchMatchesGeneric(t *testing.T) {
	ctx := context.Background()
	d := newDockerBackend(t, ab.DockerConfig{})
	mem, _ := ab.NewMemory(ab.MemoryConfig{})
	defer mem.Close()
	files := map[string]string{
		"main.go": "package main\n\nfunc main() { println(\"Hello\") }\n", "util/u.go": "package util // hello\n",
		"util/u_test.go": "package util\n", ".gitignore": "build/\n", "build/gen.go": "package build // hello\n",
		".hidden/h.go": "hello", "docs/a.md": "say hello\nbye\n", "bin.dat": "hello\x00",
		"odd name with spaces.txt": "hello there", "deep/er/x.txt": "HELLO",
	}
	for p, c := range files {
		for _, b := range []ab.FileBackend{d, mem} {
			if err := b.Write(ctx, p, []byte(c)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, opts := range []ab.GrepOptions{
		{Pattern: "hello"}, {Pattern: "hello", CaseInsensitive: true}, {Pattern: "hel+o", Mode: ab.GrepContent},
		{Pattern: "package", Mode: ab.GrepCount}, {Pattern: "hello", NoIgnore: true, Hidden: true}, {Pattern: "hello", Path: "util"},
		{Pattern: "func \\w+", Mode: ab.GrepContent, After: 1}, {Pattern: "^bye$", Literal: false},
	} {
		want, err1 := ab.Grep(ctx, mem, opts) // memory has no fast path: the generic engine
		got, err2 := ab.Grep(ctx, d, opts)
		if err1 != nil || err2 != nil || got.String() != want.String() || !slices.Equal(got.Files, want.Files) {
			t.Errorf("Grep(%+v): docker %q (%v), generic %q (%v)", opts, got, err2, want, err1)
		}
	}
	for _, pattern := range []string{"**/*.go", "*", "util/*", "**/x.txt", "{docs,util}/*"} {
		want, _ := ab.Glob(ctx, mem, pattern, ".")
		got, err := ab.Glob(ctx, d, pattern, ".")
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Glob(%q): docker %q (%v), generic %q", pattern, got, err, want)
		}
	}
}
