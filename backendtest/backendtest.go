// Package backendtest is the conformance suite for agentbackend.FileBackend
// implementations, in the spirit of testing/fstest: any backend, this
// module's or yours, passes the same contract.
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, func(t *testing.T) agentbackend.FileBackend {
//			b, err := agentbackend.NewLocal(agentbackend.LocalConfig{RootDir: t.TempDir()})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return b
//		})
//	}
//
// The suite covers path resolution (including escapes), reading and writing
// text and binary data, directory listing, mkdir, exists, stat, remove
// modes, rename, touch, the codes of a missing path, the refusal of
// malformed input (NUL bytes, over-long names, "g.txt/" to write, negative
// numbers, unknown modes) as INVALID_ARGUMENT in the error format of the
// module, scopes and their nesting, scopes as jails against
// symbolic links (planted with the backend's Exec), environment merging, exec
// (or NOT_IMPLEMENTED where a backend has none), background processes
// (ProcessStarter, or NOT_IMPLEMENTED), processes on a terminal, close semantics and
// concurrent use. It expects the backend's defaults: dangerous-command
// blocking on.
package backendtest

import (
	"context"
	"errors"
	"testing"
	"time"

	ab "github.com/agentbackend/agentbackend"
)

// Factory returns a new, empty backend for one test. The suite closes it
// (Close must be idempotent, so a t.Cleanup of the factory's own is fine).
type Factory func(t *testing.T) ab.FileBackend

// Options adapts the suite to a backend.
type Options struct {
	// RootEntries are names a fresh backend already shows at its root,
	// such as the mount points of a composite; listings of the root expect
	// them besides what the suite wrote.
	RootEntries []string
	// PrefixScopes, when not empty, says why the backend's scopes are
	// prefix arithmetic only (the path rule, without a jail where the files
	// are: see agentbackend.ScopedBackend), and skips the section that
	// attacks scopes through symbolic links.
	PrefixScopes string
	// ConcurrentProcesses is how many background processes the Processes
	// section runs at once; 0 means 50. Where each start is costly (a
	// container engine), a suite that repeats what another already covers
	// can lower it.
	ConcurrentProcesses int
	// TerminalPipes, when not empty, says why a process the backend starts
	// on a terminal (ExecOptions.Terminal) gets pipes instead of a real
	// terminal (a daemon that accepts the terminal request but ignores
	// it), and skips the checks only a real terminal passes (isatty, size,
	// echo, Ctrl-C).
	TerminalPipes string
}

// Run runs the whole suite against backends made by newBackend, each
// subtest on a fresh backend.
func Run(t *testing.T, newBackend Factory) { RunWith(t, newBackend, Options{}) }

// RunWith is Run with options.
func RunWith(t *testing.T, newBackend Factory, opts Options) {
	s := suite{newBackend: newBackend, opts: opts}
	t.Run("Paths", s.testPaths)
	t.Run("ReadWrite", s.testReadWrite)
	t.Run("ReadDir", s.testReadDir)
	t.Run("Mkdir", s.testMkdir)
	t.Run("ExistsStat", s.testExistsStat)
	t.Run("Remove", s.testRemove)
	t.Run("Rename", s.testRename)
	t.Run("Touch", s.testTouch)
	t.Run("Missing", s.testMissing)
	t.Run("Refusals", s.testRefusals)
	t.Run("Scopes", s.testScopes)
	t.Run("ScopeJail", s.testScopeJail)
	t.Run("Exec", s.testExec)
	t.Run("Processes", s.testProcesses)
	t.Run("Terminal", s.testTerminal)
	t.Run("Watch", s.testWatch)
	t.Run("Close", s.testClose)
	t.Run("Concurrent", s.testConcurrent)
	t.Run("FS", s.testFS)
}

type suite struct {
	newBackend Factory
	opts       Options
}

// fresh returns a new backend that is closed when the test ends.
func (s suite) fresh(t *testing.T) ab.FileBackend {
	t.Helper()
	b := s.newBackend(t)
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// ctx returns a context bounded so that a hung backend fails the test
// instead of hanging the run.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// supportsExec reports whether b runs commands, by trying one.
func supportsExec(t *testing.T, b ab.FileBackend) bool {
	t.Helper()
	_, err := b.Exec(ctx(t), "true", nil)
	if errors.Is(err, ab.ErrNotImplemented) {
		return false
	}
	if err != nil {
		t.Fatalf("Exec(true): %v", err)
	}
	return true
}

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func write(t *testing.T, b ab.FileBackend, path, content string) {
	t.Helper()
	must(t, b.Write(ctx(t), path, []byte(content)), "Write "+path)
}

func read(t *testing.T, b ab.FileBackend, path string) string {
	t.Helper()
	data, err := b.Read(ctx(t), path)
	must(t, err, "Read "+path)
	return string(data)
}

func wantRead(t *testing.T, b ab.FileBackend, path, want string) {
	t.Helper()
	if got := read(t, b, path); got != want {
		t.Errorf("Read(%q) = %q, want %q", path, got, want)
	}
}

func wantExists(t *testing.T, b ab.FileBackend, path string, want bool) {
	t.Helper()
	got, err := b.Exists(ctx(t), path)
	must(t, err, "Exists "+path)
	if got != want {
		t.Errorf("Exists(%q) = %v, want %v", path, got, want)
	}
}

// wantCode checks that err is an *agentbackend.Error with the given code.
func wantCode(t *testing.T, err error, code ab.Code, what string) *ab.Error {
	t.Helper()
	var e *ab.Error
	if !errors.As(err, &e) {
		t.Errorf("%s: got %v (%T), want an *agentbackend.Error with code %s", what, err, err, code)
		return nil
	}
	if e.Code != code {
		t.Errorf("%s: code %s (%v), want %s", what, e.Code, err, code)
	}
	return e
}

// wantErr checks that err is an *agentbackend.Error of any code.
func wantErr(t *testing.T, err error, what string) *ab.Error {
	t.Helper()
	var e *ab.Error
	if !errors.As(err, &e) {
		t.Errorf("%s: got %v (%T), want an *agentbackend.Error", what, err, err)
		return nil
	}
	return e
}
