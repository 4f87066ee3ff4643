package agentbackend

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bmatcuk/doublestar/v4"
)

// The search benchmarks run over the Go source tree, beside ripgrep (Grep)
// and filepath.WalkDir (Glob) on the same tree in the same run.

func gorootSrc(b *testing.B) string {
	b.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	dir := filepath.Join(strings.TrimSpace(string(out)), "src")
	if _, serr := os.Stat(dir); err != nil || serr != nil {
		b.Skip("GOROOT/src not found")
	}
	return dir
}

func benchGrep(b *testing.B, opts GrepOptions, rgArgs ...string) {
	dir := gorootSrc(b)
	b.Run("raw", func(b *testing.B) {
		rg, err := exec.LookPath("rg")
		if err != nil {
			b.Skip("ripgrep (rg) not installed: no baseline")
		}
		for b.Loop() {
			cmd := exec.Command(rg, append(rgArgs, dir)...)
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sdk", func(b *testing.B) {
		l, err := NewLocal(LocalConfig{RootDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		ctx := context.Background()
		for b.Loop() {
			r, err := Grep(ctx, l, opts)
			if err != nil || len(r.Lines) == 0 {
				b.Fatal(err, "no matches")
			}
		}
	})
}

// BenchmarkGrepGorootLiteral is a fixed-string search in content mode
// (target: within 2x ripgrep).
func BenchmarkGrepGorootLiteral(b *testing.B) {
	benchGrep(b, GrepOptions{Pattern: "ErrNotExist", Literal: true, Mode: GrepContent},
		"--no-heading", "-n", "-F", "ErrNotExist")
}

// BenchmarkGrepGorootRegex is a regular-expression search in content mode
// (target: within 2x ripgrep).
func BenchmarkGrepGorootRegex(b *testing.B) {
	benchGrep(b, GrepOptions{Pattern: `func \(\w+ \*\w+\) Close\(`, Mode: GrepContent},
		"--no-heading", "-n", `func \(\w+ \*\w+\) Close\(`)
}

// BenchmarkGlobGoroot matches **/*.go over the Go source tree beside
// filepath.WalkDir with the same match.
func BenchmarkGlobGoroot(b *testing.B) {
	dir := gorootSrc(b)
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			n := 0
			filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(dir, p)
				if ok, _ := doublestar.Match("**/*.go", rel); ok {
					n++
				}
				return nil
			})
			if n == 0 {
				b.Fatal("no matches")
			}
		}
	})
	b.Run("sdk", func(b *testing.B) {
		l, err := NewLocal(LocalConfig{RootDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		ctx := context.Background()
		for b.Loop() {
			got, err := Glob(ctx, l, "**/*.go", ".")
			if err != nil || len(got) == 0 {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReadLinesPage reads one 2000-line page from the middle of a
// 100k-line file, beside the plain Read of the whole file that it needs.
func BenchmarkReadLinesPage(b *testing.B) {
	ctx := context.Background()
	l, err := NewLocal(LocalConfig{RootDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var sb strings.Builder
	for i := range 100_000 {
		fmt.Fprintf(&sb, "line %d: the quick brown fox jumps over the lazy dog\n", i)
	}
	l.Write(ctx, "big.txt", []byte(sb.String()))
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := l.Read(ctx, "big.txt"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sdk", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ReadLines(ctx, l, "big.txt", ReadOptions{Offset: 50_000, Limit: 2000}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
