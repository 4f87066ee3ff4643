//go:build unix

package agentbackend

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/agentbackend/agentbackend/internal/sandbox"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// Each benchmark has two sub-benchmarks: raw, the same work done straight on
// os.Root (or os/exec), and sdk, done through LocalBackend. `make bench`
// prints sdk/raw ratios; the targets are in DESIGN.md.

// localBenchWorkspace is a workspace with dir/file.bin (4 KiB) and fifteen more
// 4 KiB files in dir, opened both as an os.Root and as a LocalBackend.
func localBenchWorkspace(b *testing.B, cfg LocalConfig) (*os.Root, *LocalBackend) {
	b.Helper()
	cfg.RootDir = b.TempDir()
	if cfg.Isolation == IsolationAuto {
		cfg.Isolation = IsolationNone
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 256)
	if err := os.Mkdir(filepath.Join(cfg.RootDir, "dir"), 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range 16 {
		name := fmt.Sprintf("f%02d.bin", i)
		if i == 0 {
			name = "file.bin"
		}
		if err := os.WriteFile(filepath.Join(cfg.RootDir, "dir", name), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	root, err := os.OpenRoot(cfg.RootDir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { root.Close() })
	lb, err := NewLocal(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { lb.Close() })
	return root, lb
}

func BenchmarkLocalRead(b *testing.B) {
	root, lb := localBenchWorkspace(b, LocalConfig{})
	ctx := context.Background()
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			if _, err := root.ReadFile("dir/file.bin"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sdk", func(b *testing.B) {
		for b.Loop() {
			if _, err := lb.Read(ctx, "dir/file.bin"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLocalWrite compares a plain truncate-and-write with the atomic
// write (temporary file, then rename over the target).
func BenchmarkLocalWrite(b *testing.B) {
	root, lb := localBenchWorkspace(b, LocalConfig{})
	ctx := context.Background()
	data := bytes.Repeat([]byte("fedcba9876543210"), 256)
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			if err := root.WriteFile("dir/w.bin", data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sdk", func(b *testing.B) {
		for b.Loop() {
			if err := lb.Write(ctx, "dir/w.bin", data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkScopedLocalRead compares a Read through a scope, which the
// backend resolves beneath the scope's own directory handle (checked
// before each use), with the same Read of the same file on the backend
// (raw). The target is 1.3x.
func BenchmarkScopedLocalRead(b *testing.B) {
	lb, scope := localBenchScope(b)
	ctx := context.Background()
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			if _, err := lb.Read(ctx, "users/alice/dir/file.bin"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("scoped", func(b *testing.B) {
		for b.Loop() {
			if _, err := scope.Read(ctx, "dir/file.bin"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkScopedLocalWrite is BenchmarkScopedLocalRead for an atomic Write.
func BenchmarkScopedLocalWrite(b *testing.B) {
	lb, scope := localBenchScope(b)
	ctx := context.Background()
	data := bytes.Repeat([]byte("fedcba9876543210"), 256)
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			if err := lb.Write(ctx, "users/alice/dir/w.bin", data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("scoped", func(b *testing.B) {
		for b.Loop() {
			if err := scope.Write(ctx, "dir/w.bin", data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// localBenchScope is a backend with users/alice/dir/file.bin (4 KiB) and
// the scope users/alice of it.
func localBenchScope(b *testing.B) (*LocalBackend, *ScopedBackend) {
	b.Helper()
	lb, err := NewLocal(LocalConfig{RootDir: b.TempDir(), Isolation: IsolationNone})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { lb.Close() })
	scope, err := lb.Scope("users/alice", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { scope.Close() })
	if err := scope.Write(context.Background(), "dir/file.bin", bytes.Repeat([]byte("0123456789abcdef"), 256)); err != nil {
		b.Fatal(err)
	}
	return lb, scope
}

func BenchmarkLocalStat(b *testing.B) {
	root, lb := localBenchWorkspace(b, LocalConfig{})
	ctx := context.Background()
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			if _, err := root.Stat("dir/file.bin"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sdk", func(b *testing.B) {
		for b.Loop() {
			if _, err := lb.Stat(ctx, "dir/file.bin"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLocalReadDir lists sixteen names, sorted. raw opens the directory
// through the os.Root and reads the names, the least work that answers.
func BenchmarkLocalReadDir(b *testing.B) {
	root, lb := localBenchWorkspace(b, LocalConfig{})
	ctx := context.Background()
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			f, err := root.Open("dir")
			if err != nil {
				b.Fatal(err)
			}
			names, err := f.Readdirnames(-1)
			f.Close()
			if err != nil || len(names) != 16 {
				b.Fatal(err)
			}
			slices.Sort(names)
		}
	})
	b.Run("sdk", func(b *testing.B) {
		for b.Loop() {
			if names, err := lb.ReadDir(ctx, "dir"); err != nil || len(names) != 16 {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLocalReadDirInfo lists sixteen entries with their metadata. raw
// is the usual os way: ReadDir, then Info (an lstat by path) per entry.
func BenchmarkLocalReadDirInfo(b *testing.B) {
	root, lb := localBenchWorkspace(b, LocalConfig{})
	ctx := context.Background()
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			f, err := root.Open("dir")
			if err != nil {
				b.Fatal(err)
			}
			entries, err := f.ReadDir(-1)
			f.Close()
			if err != nil || len(entries) != 16 {
				b.Fatal(err)
			}
			for _, e := range entries {
				if _, err := e.Info(); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("sdk", func(b *testing.B) {
		for b.Loop() {
			if infos, err := lb.ReadDirInfo(ctx, "dir"); err != nil || len(infos) != 16 {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLocalExec runs `true` in bash: raw with os/exec and nothing
// captured, sdk through Exec (isolation none) with its checks, process
// group, captured output and group cleanup.
func BenchmarkLocalExec(b *testing.B) {
	_, lb := localBenchWorkspace(b, LocalConfig{Isolation: IsolationNone, Shell: ShellBash})
	ctx := context.Background()
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			if err := exec.Command("/bin/bash", "-c", "true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sdk", func(b *testing.B) {
		for b.Loop() {
			if _, err := lb.Exec(ctx, "true", nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLocalExecBwrap runs `true` in the bubblewrap sandbox: raw runs
// the identical bwrap command line (capabilities dropped, seccomp program
// on a pipe, the workspace bound by descriptor, no network) with os/exec,
// sdk goes through Exec.
func BenchmarkLocalExecBwrap(b *testing.B) {
	testenv.NeedBwrap(b)
	_, lb := localBenchWorkspace(b, LocalConfig{Isolation: IsolationBwrap, Shell: ShellBash})
	ctx := context.Background()
	spec := sandbox.Spec{Shell: lb.shell, Command: "true", Root: lb.root, RootFD: lb.dir.file, Cwd: ".",
		Bwrap: lb.bwrap, Env: lb.environ(nil)}
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			cmd := sandbox.Command(spec) // a fresh seccomp pipe each time: bwrap reads it to the end
			err := cmd.Run()
			sandbox.Release(cmd)
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sdk", func(b *testing.B) {
		for b.Loop() {
			if _, err := lb.Exec(ctx, "true", nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
