//go:build unix

package agentbackend

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/agentbackend/agentbackend/internal/tmpfile"
)

// localNoLeaks checks, when the test ends, that it left no goroutine behind.
// Call it first, so that its check runs after every other cleanup (Close).
func localNoLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// newLocal returns a backend on a fresh temporary directory (unless cfg
// names one), closed when the test ends. Isolation defaults to none, so
// that file tests do not pay for a bwrap probe.
func newLocal(t *testing.T, cfg LocalConfig) *LocalBackend {
	t.Helper()
	if cfg.RootDir == "" {
		cfg.RootDir = t.TempDir()
	}
	if cfg.Isolation == IsolationAuto {
		cfg.Isolation = IsolationNone
	}
	b, err := NewLocal(cfg)
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func localWantCode(t *testing.T, err error, code Code, what string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Errorf("%s: got %v (%T), want code %s", what, err, err, code)
		return nil
	}
	if e.Code != code {
		t.Errorf("%s: code %s (%v), want %s", what, e.Code, err, code)
	}
	return e
}

func localWrite(t *testing.T, b FileBackend, p, content string) {
	t.Helper()
	if err := b.Write(context.Background(), p, []byte(content)); err != nil {
		t.Fatalf("Write %s: %v", p, err)
	}
}

func localWantFile(t *testing.T, path, want string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil || string(data) != want {
		t.Errorf("%s = %q, %v; want %q", path, data, err, want)
	}
}

// localHostNames lists a host directory, to check for stray temporary files.
func localHostNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestNewLocalConfigErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		cfg  LocalConfig
		code Code
		text string
	}{
		"no root":         {LocalConfig{}, CodeInvalidConfiguration, "RootDir is required"},
		"blank root":      {LocalConfig{RootDir: "  "}, CodeInvalidConfiguration, "RootDir is required"},
		"bad isolation":   {LocalConfig{RootDir: t.TempDir(), Isolation: "docker"}, CodeInvalidConfiguration, `Isolation "docker"`},
		"bad shell":       {LocalConfig{RootDir: t.TempDir(), Shell: "zsh"}, CodeInvalidConfiguration, `Shell "zsh"`},
		"env LD_PRELOAD":  {LocalConfig{RootDir: t.TempDir(), Env: map[string]string{"LD_PRELOAD": "x.so"}}, CodeInvalidConfiguration, "LD_PRELOAD"},
		"env bad name":    {LocalConfig{RootDir: t.TempDir(), Env: map[string]string{"A B": "x"}}, CodeInvalidConfiguration, "not a valid identifier"},
		"relative ro":     {LocalConfig{RootDir: t.TempDir(), SandboxReadOnly: []string{"etc"}}, CodeInvalidConfiguration, "SandboxReadOnly"},
		"root is a file":  {LocalConfig{RootDir: file}, CodeInvalidConfiguration, "LocalConfig.RootDir: " + file + " is not a directory"},
		"root under file": {LocalConfig{RootDir: file + "/ws"}, CodeInvalidConfiguration, "LocalConfig.RootDir: " + file + "/ws is not a directory"},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := NewLocal(tc.cfg)
			if b != nil {
				t.Errorf("got a backend: %v", b.RootDir())
				b.Close()
			}
			if e := localWantCode(t, err, tc.code, name); e != nil && !strings.Contains(e.Error(), tc.text) {
				t.Errorf("message %q does not mention %q", e.Error(), tc.text)
			}
		})
	}
}

func TestNewLocalRoot(t *testing.T) {
	localNoLeaks(t)
	base := t.TempDir()

	// A missing root is created, parents included.
	b := newLocal(t, LocalConfig{RootDir: filepath.Join(base, "new", "ws")})
	if fi, err := os.Stat(filepath.Join(base, "new", "ws")); err != nil || !fi.IsDir() {
		t.Fatalf("root not created: %v", err)
	}
	if b.RootDir() != filepath.Join(base, "new", "ws") || b.Type() != TypeLocal || b.Status() != StatusConnected {
		t.Errorf("RootDir %q type %s status %s", b.RootDir(), b.Type(), b.Status())
	}

	// A relative root is made absolute and clean.
	t.Chdir(base)
	rel := newLocal(t, LocalConfig{RootDir: "./rel/../relws/"})
	if rel.RootDir() != filepath.Join(base, "relws") {
		t.Errorf("relative root: RootDir() = %q", rel.RootDir())
	}

	// Symbolic links in the root path are resolved once: the jail is the
	// real directory, and absolute paths under either spelling are inside.
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink("real", link); err != nil {
		t.Fatal(err)
	}
	lb := newLocal(t, LocalConfig{RootDir: link})
	if lb.RootDir() != real {
		t.Errorf("RootDir() = %q, want the real path %q", lb.RootDir(), real)
	}
	ctx := context.Background()
	localWrite(t, lb, link+"/via-link.txt", "1")
	localWrite(t, lb, real+"/via-real.txt", "2")
	localWantFile(t, filepath.Join(real, "via-link.txt"), "1")
	localWantFile(t, filepath.Join(real, "via-real.txt"), "2")
	_, err := lb.Read(ctx, link+"/../x")
	localWantCode(t, err, CodePathEscape, "escape under the configured spelling")
	// A path that only shares the prefix is case 3 of the path rule.
	localWrite(t, lb, link+"ed/x", "3")
	localWantFile(t, filepath.Join(real, strings.TrimPrefix(link, "/")+"ed", "x"), "3")
	// Re-pointing the link later does not move the workspace.
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	localWrite(t, lb, "after.txt", "4")
	localWantFile(t, filepath.Join(real, "after.txt"), "4")
}

func TestNewLocalIsolationChoice(t *testing.T) {
	// No bwrap on PATH: auto falls back to software, explicit bwrap fails.
	t.Setenv("PATH", t.TempDir())
	b := newLocal(t, LocalConfig{Isolation: "auto"})
	if b.Isolation() != IsolationSoftware {
		t.Errorf("auto without bwrap = %s, want software", b.Isolation())
	}
	_, err := NewLocal(LocalConfig{RootDir: t.TempDir(), Isolation: IsolationBwrap})
	if e := localWantCode(t, err, CodeMissingUtilities, "bwrap missing"); e != nil &&
		e.Reason() != "bwrap command not found. Install bubblewrap: apt install bubblewrap" {
		t.Errorf("message: %q", e.Error())
	}

	// A bwrap that cannot make a sandbox counts as missing.
	bin := t.TempDir()
	fake := "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "bwrap"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	b, err = NewLocal(LocalConfig{RootDir: t.TempDir(), Isolation: "auto"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Isolation() != IsolationSoftware {
		t.Errorf("auto with a broken bwrap = %s, want software", b.Isolation())
	}
	_, err = NewLocal(LocalConfig{RootDir: t.TempDir(), Isolation: IsolationBwrap})
	if e := localWantCode(t, err, CodeMissingUtilities, "broken bwrap"); e != nil && !strings.Contains(e.Error(), "No permissions") {
		t.Errorf("message does not carry bwrap's reason: %q", e.Error())
	}
	for _, iso := range []Isolation{IsolationSoftware, IsolationNone} {
		if got := newLocal(t, LocalConfig{Isolation: iso}).Isolation(); got != iso {
			t.Errorf("Isolation() = %s, want %s", got, iso)
		}
	}
}

func TestLocalCloseLifecycle(t *testing.T) {
	localNoLeaks(t)
	b := newLocal(t, LocalConfig{})
	ctx := context.Background()
	localWrite(t, b, "f", "x")
	var changes []StatusChange
	b.OnStatusChange(func(c StatusChange) { changes = append(changes, c) })
	closed := 0
	b.TrackCloser(localCloser(func() error { closed++; return nil }))
	scope, err := b.Scope("s", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if closed != 1 || b.Status() != StatusDestroyed || len(changes) != 1 || changes[0].To != StatusDestroyed {
		t.Errorf("closed %d times, status %s, changes %+v", closed, b.Status(), changes)
	}
	ops := map[string]error{}
	_, ops["Read"] = b.Read(ctx, "f")
	ops["Write"] = b.Write(ctx, "f", nil)
	_, ops["ReadDir"] = b.ReadDir(ctx, ".")
	_, ops["ReadDirInfo"] = b.ReadDirInfo(ctx, ".")
	ops["Mkdir"] = b.Mkdir(ctx, "d")
	_, ops["Exists"] = b.Exists(ctx, "f")
	_, ops["Stat"] = b.Stat(ctx, "f")
	ops["Remove"] = b.Remove(ctx, "f", RemoveOptions{})
	ops["Rename"] = b.Rename(ctx, "f", "g")
	ops["Touch"] = b.Touch(ctx, "t")
	_, ops["Exec"] = b.Exec(ctx, "true", nil)
	_, ops["Scope"] = b.Scope("x", nil)
	_, ops["scope Read"] = scope.Read(ctx, "f")
	for op, err := range ops {
		if e := localWantCode(t, err, CodeDestroyed, op); e != nil && !errors.Is(err, fs.ErrClosed) {
			t.Errorf("%s: BACKEND_DESTROYED does not wrap fs.ErrClosed", op)
		}
	}
	localWantFile(t, filepath.Join(b.RootDir(), "f"), "x") // Close deletes nothing
}

type localCloser func() error

func (f localCloser) Close() error { return f() }

func TestLocalConcurrentMixedOperations(t *testing.T) {
	localNoLeaks(t)
	b := newLocal(t, LocalConfig{})
	ctx := context.Background()
	const workers, rounds = 12, 30
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			dir := fmt.Sprintf("w%d", w)
			for r := range rounds {
				p := fmt.Sprintf("%s/f%d", dir, r)
				want := fmt.Sprint(w, r)
				steps := []func() error{
					func() error { return b.Write(ctx, p, []byte(want)) },
					func() error {
						got, err := b.Read(ctx, p)
						if err == nil && string(got) != want {
							err = fmt.Errorf("read %q, want %q", got, want)
						}
						return err
					},
					func() error { _, err := b.Stat(ctx, p); return err },
					func() error { _, err := b.ReadDirInfo(ctx, dir); return err },
					func() error { return b.Rename(ctx, p, p+".moved") },
					func() error { return b.Remove(ctx, p+".moved", RemoveOptions{}) },
					func() error { return b.Touch(ctx, fmt.Sprintf("shared/%d-%d", w, r)) },
					func() error { _, err := b.ReadDir(ctx, "shared"); return err },
					func() error { return b.Write(ctx, "contended", []byte(want)) },
				}
				if r%10 == 0 {
					steps = append(steps, func() error {
						res, err := b.Exec(ctx, "cat contended > /dev/null; ls shared | wc -l", nil)
						if err == nil && len(res.Stdout) == 0 {
							err = errors.New("no output")
						}
						return err
					})
				}
				for i, step := range steps {
					if err := step(); err != nil {
						t.Errorf("worker %d round %d step %d: %v", w, r, i, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	names, err := b.ReadDir(ctx, "shared")
	if err != nil || len(names) != workers*rounds {
		t.Errorf("shared has %d entries, %v", len(names), err)
	}
	for _, name := range localHostNames(t, b.RootDir()) {
		if strings.Contains(name, ".tmp-") || tmpfile.Is(name) {
			t.Errorf("temporary file left: %s", name)
		}
	}
}
