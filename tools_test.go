package agentbackend

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"
)

// toolBackends returns, for one test, every kind of backend the tools must
// work on: Local, Memory, a scope of each, and a Composite routing a
// directory to a second backend.
func toolBackends(t *testing.T) map[string]FileBackend {
	t.Helper()
	local, err := NewLocal(LocalConfig{RootDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	mem, err := NewMemory(MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	local2, _ := NewLocal(LocalConfig{RootDir: t.TempDir()})
	mem2, _ := NewMemory(MemoryConfig{})
	localScope, _ := local2.Scope("tenants/t1", nil)
	memScope, _ := mem2.Scope("tenants/t1", nil)
	compLocal, _ := NewLocal(LocalConfig{RootDir: t.TempDir()})
	compMem, _ := NewMemory(MemoryConfig{})
	comp, err := NewComposite(compMem, map[string]FileBackend{"/routed/": compLocal})
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]FileBackend{"local": local, "memory": mem, "local-scope": localScope, "memory-scope": memScope, "composite": comp}
	t.Cleanup(func() {
		for _, b := range []FileBackend{local, mem, local2, mem2, comp} {
			b.Close()
		}
	})
	return all
}

// forEachBackend runs fn as a subtest on every tool backend, with files
// written by setup.
func forEachBackend(t *testing.T, files map[string]string, fn func(t *testing.T, b FileBackend)) {
	for name, b := range toolBackends(t) {
		t.Run(name, func(t *testing.T) {
			for p, content := range files {
				if err := b.Write(context.Background(), p, []byte(content)); err != nil {
					t.Fatal(err)
				}
			}
			fn(t, b)
		})
	}
}

func wantCodeT(t *testing.T, err error, code Code) {
	t.Helper()
	if ErrorCode(err) != code {
		t.Errorf("error %v (code %q), want code %s", err, ErrorCode(err), code)
	}
}

func TestLs(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, map[string]string{"src/b.go": "package b", "src/a.go": "package a\n", "src/sub/c.go": ""}, func(t *testing.T, b FileBackend) {
		entries, err := Ls(ctx, b, "src", true)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range entries {
			got = append(got, fmt.Sprintf("%s %s %v %d", e.Name, e.Path, e.IsDir, e.Size))
			if e.ModTime.IsZero() {
				t.Errorf("%s has no ModTime", e.Name)
			}
		}
		want := []string{"a.go src/a.go false 10", "b.go src/b.go false 9", "sub src/sub true"}
		for i := range want {
			if i >= len(got) || !strings.HasPrefix(got[i], want[i]) {
				t.Fatalf("Ls(src, true) = %q, want %q", got, want)
			}
		}
		one, err := Ls(ctx, b, "/src/a.go", true)
		if err != nil || len(one) != 1 || one[0].Path != "src/a.go" || one[0].IsDir {
			t.Errorf("Ls(file, true) = %+v, %v", one, err)
		}
		if _, err := Ls(ctx, b, "missing", true); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Ls(missing, true) = %v", err)
		}
		_, err = Ls(ctx, b, "../x", true)
		wantCodeT(t, err, CodePathEscape)
	})
}

func TestReadLines(t *testing.T) {
	ctx := context.Background()
	long := strings.Repeat("é", MaxLineLength+5)
	files := map[string]string{
		"plain.txt":   "one\ntwo\nthree\n",
		"nonl.txt":    "one\ntwo",
		"crlf.txt":    "one\r\ntwo\r\n",
		"unicode.txt": "héllo wörld ✓\n日本語\n",
		"long.txt":    long + "\nshort\n",
		"empty.txt":   "",
		"bin.dat":     "PNG\x00\x01\x02",
	}
	forEachBackend(t, files, func(t *testing.T, b FileBackend) {
		check := func(path string, opts ReadOptions, want string) {
			t.Helper()
			page, err := ReadLines(ctx, b, path, opts)
			got := ""
			if page != nil {
				got = page.String()
			}
			if err != nil || got != want {
				t.Errorf("ReadLines(%s, %+v) = %q, %v\nwant %q", path, opts, got, err, want)
			}
		}
		check("plain.txt", ReadOptions{}, "     1\tone\n     2\ttwo\n     3\tthree\n")
		check("nonl.txt", ReadOptions{}, "     1\tone\n     2\ttwo\n")
		check("crlf.txt", ReadOptions{}, "     1\tone\n     2\ttwo\n")
		check("unicode.txt", ReadOptions{}, "     1\théllo wörld ✓\n     2\t日本語\n")
		check("empty.txt", ReadOptions{}, "")
		check("plain.txt", ReadOptions{Offset: 2, Limit: 1}, "     2\ttwo\n\n[Showing lines 2-2 of 3. Use offset=3 to read more.]\n")
		check("plain.txt", ReadOptions{Offset: 3}, "     3\tthree\n\n[Showing lines 3-3 of 3.]\n")
		check("long.txt", ReadOptions{Offset: 2}, "     2\tshort\n\n[Showing lines 2-2 of 2.]\n")

		page, err := ReadLines(ctx, b, "long.txt", ReadOptions{Limit: 1})
		wantLine := strings.Repeat("é", MaxLineLength) + fmt.Sprintf("… [line truncated, original %d chars]", MaxLineLength+5)
		if err != nil || !page.Truncated || !strings.HasPrefix(page.String(), "     1\t"+wantLine+"\n") {
			t.Errorf("long line: %.80q…, %v", page, err)
		}
		_, err = ReadLines(ctx, b, "bin.dat", ReadOptions{})
		wantCodeT(t, err, CodeInvalidArgument)
		// An offset past the end is an empty page, as read_text_file answers it.
		check("plain.txt", ReadOptions{Offset: 9}, "[Offset 9 is beyond the end of the file (3 lines).]\n")
		if page, err := ReadLines(ctx, b, "plain.txt", ReadOptions{Offset: 9}); err != nil || len(page.Lines) != 0 || !page.BeyondEnd() {
			t.Errorf("offset past the end: %+v, %v", page, err)
		}
		if _, err := ReadLines(ctx, b, "missing.txt", ReadOptions{}); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("missing: %v", err)
		}
	})
}

func TestReadLinesPagesABigFile(t *testing.T) {
	ctx := context.Background()
	m, _ := NewMemory(MemoryConfig{})
	defer m.Close()
	var sb strings.Builder
	for i := 1; i <= 5000; i++ {
		fmt.Fprintf(&sb, "line %d\n", i)
	}
	m.Write(ctx, "big.txt", []byte(sb.String()))
	page, err := ReadLines(ctx, m, "big.txt", ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(page.String(), "\n"), "\n")
	if len(lines) != DefaultReadLimit+2 || lines[DefaultReadLimit-1] != "  2000\tline 2000" ||
		lines[len(lines)-1] != "[Showing lines 1-2000 of 5000. Use offset=2001 to read more.]" {
		t.Errorf("default page: %d lines, last %q", len(lines), lines[len(lines)-1])
	}
	p, err := ReadLines(ctx, m, "big.txt", ReadOptions{Offset: 4999, Limit: 10})
	if err != nil || p.First != 4999 || p.Last() != 5000 || p.Total != 5000 || p.WholeFile() || p.Lines[1] != "line 5000" {
		t.Errorf("last page: %+v, %v", p, err)
	}
}

func TestGlob(t *testing.T) {
	ctx := context.Background()
	files := map[string]string{
		"main.go": "", "README.md": "", "a/x.go": "", "a/b/y.go": "", "a/b/z.txt": "", "b/w.go": "",
		"docs/guide.md": "", ".git/config": "", ".hidden/h.go": "", "c1.txt": "", "Z.txt": "",
	}
	forEachBackend(t, files, func(t *testing.T, b FileBackend) {
		check := func(pattern, dir string, want ...string) {
			t.Helper()
			got, err := Glob(ctx, b, pattern, dir)
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("Glob(%q, %q) = %q, %v; want %q", pattern, dir, got, err, want)
			}
		}
		check("**/*.go", ".", ".hidden/h.go", "a/b/y.go", "a/x.go", "b/w.go", "main.go")
		check("*.go", ".", "main.go")
		check("*.go", "a", "x.go")
		check("**/*.go", "/a", "b/y.go", "x.go")
		check("{a,b}/*.go", ".", "a/x.go", "b/w.go")
		check("[a-z]*.txt", ".", "c1.txt")
		check("a/*", ".", "a/b", "a/x.go")
		check("**/*.md", ".", "README.md", "docs/guide.md")
		check("nothing*", ".")
		_, err := Glob(ctx, b, "[", ".")
		wantCodeT(t, err, CodeInvalidArgument)
		_, err = Glob(ctx, b, "*", "../x")
		wantCodeT(t, err, CodePathEscape)
		_, err = Glob(ctx, b, "*", "main.go")
		wantCodeT(t, err, CodeInvalidArgument)
	})
}

func TestGrep(t *testing.T) {
	ctx := context.Background()
	files := map[string]string{
		"main.go":            "package main\n\nfunc main() {\n\tprintln(\"Hello\")\n}\n",
		"util/util.go":       "package util\n\n// Hello says hello.\nfunc Hello() string { return \"hello\" }\n",
		"util/util_test.go":  "package util\n",
		"notes.md":           "say HELLO\r\nto everyone\r\n",
		"image.png":          "PNG\x00hello",
		".git/HEAD":          "hello",
		".env":               "HELLO=1",
		".gitignore":         "build/\n*.log\n!keep.log\n",
		"build/out.go":       "hello",
		"app.log":            "hello",
		"keep.log":           "hello",
		"sub/.gitignore":     "/local.txt\n",
		"sub/local.txt":      "hello",
		"sub/other.txt":      "hello",
		"sub/deep/local.txt": "hello",
	}
	forEachBackend(t, files, func(t *testing.T, b FileBackend) {
		files := func(opts GrepOptions) []string {
			t.Helper()
			r, err := Grep(ctx, b, opts)
			if err != nil {
				t.Fatalf("Grep(%+v): %v", opts, err)
			}
			return r.Files
		}
		check := func(opts GrepOptions, want ...string) {
			t.Helper()
			if got := files(opts); !slices.Equal(got, want) {
				t.Errorf("Grep(%+v) files = %q, want %q", opts, got, want)
			}
		}
		check(GrepOptions{Pattern: "hello"}, "keep.log", "sub/deep/local.txt", "sub/other.txt", "util/util.go")
		check(GrepOptions{Pattern: "hello", CaseInsensitive: true}, "keep.log", "main.go", "notes.md", "sub/deep/local.txt", "sub/other.txt", "util/util.go")
		check(GrepOptions{Pattern: "hello", NoIgnore: true}, "app.log", "build/out.go", "keep.log", "sub/deep/local.txt", "sub/local.txt", "sub/other.txt", "util/util.go")
		check(GrepOptions{Pattern: "HELLO", Hidden: true}, ".env", "notes.md")
		check(GrepOptions{Pattern: "func \\w+\\(", Type: "go"}, "main.go", "util/util.go")
		check(GrepOptions{Pattern: "package", Glob: "*_test.go"}, "util/util_test.go")
		check(GrepOptions{Pattern: "package", Glob: "!*_test.go"}, "main.go", "util/util.go")
		check(GrepOptions{Pattern: "package", Path: "util", Glob: "util*.go"}, "util/util.go", "util/util_test.go")
		check(GrepOptions{Pattern: "a.b", Literal: true})
		check(GrepOptions{Pattern: "hello", Path: "sub/local.txt"}, "sub/local.txt") // named files are searched even if ignored
		check(GrepOptions{Pattern: "hello", Path: "/sub"}, "sub/deep/local.txt", "sub/other.txt")
		check(GrepOptions{Pattern: "^to everyone$"}, "notes.md")
		check(GrepOptions{Pattern: "nothing matches this"})

		r, err := Grep(ctx, b, GrepOptions{Pattern: "hello", Mode: GrepContent, CaseInsensitive: true, Path: "util"})
		if err != nil {
			t.Fatal(err)
		}
		if got := r.String(); got != "util/util.go:3:// Hello says hello.\nutil/util.go:4:func Hello() string { return \"hello\" }\n" {
			t.Errorf("content = %q", got)
		}
		r, _ = Grep(ctx, b, GrepOptions{Pattern: "println", Mode: GrepContent, Before: 1, After: 1})
		if got := r.String(); got != "main.go-3-func main() {\nmain.go:4:\tprintln(\"Hello\")\nmain.go-5-}\n" {
			t.Errorf("context = %q", got)
		}
		if got := r.Format(false); got != "main.go-func main() {\nmain.go:\tprintln(\"Hello\")\nmain.go-}\n" {
			t.Errorf("without line numbers = %q", got)
		}
		r, _ = Grep(ctx, b, GrepOptions{Pattern: "package|func", Mode: GrepCount})
		if got := r.String(); got != "main.go:2\nutil/util.go:2\nutil/util_test.go:1\n" {
			t.Errorf("count = %q", got)
		}
		r, _ = Grep(ctx, b, GrepOptions{Pattern: "package", HeadLimit: 2})
		if len(r.Files) != 2 || !r.Truncated {
			t.Errorf("head limit: %+v", r)
		}
		r, _ = Grep(ctx, b, GrepOptions{Pattern: `main\(\) \{\n\s+println`, Multiline: true, Mode: GrepContent})
		if got := r.String(); got != "main.go:3:func main() {\nmain.go:4:\tprintln(\"Hello\")\n" {
			t.Errorf("multiline = %q", got)
		}
		_, err = Grep(ctx, b, GrepOptions{Pattern: "("})
		wantCodeT(t, err, CodeInvalidArgument)
		_, err = Grep(ctx, b, GrepOptions{Pattern: "x", Type: "cobol"})
		wantCodeT(t, err, CodeInvalidArgument)
		_, err = Grep(ctx, b, GrepOptions{Pattern: "x", Path: "../up"})
		wantCodeT(t, err, CodePathEscape)
		if _, err = Grep(ctx, b, GrepOptions{Pattern: "x", Path: "nope"}); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("missing path: %v", err)
		}
	})
}

// A regular expression whose match runs across a newline (\s matches \n)
// is not a match of either line, as in ripgrep without -U.
func TestGrepIsLineOriented(t *testing.T) {
	ctx := context.Background()
	m, _ := NewMemory(MemoryConfig{})
	defer m.Close()
	m.Write(ctx, "f.txt", []byte("alpha\nbeta\nalpha beta\n"))
	r, err := Grep(ctx, m, GrepOptions{Pattern: `alpha\s+beta`, Mode: GrepContent})
	if err != nil || r.String() != "f.txt:3:alpha beta\n" {
		t.Errorf("got %q, %v", r.String(), err)
	}
}
