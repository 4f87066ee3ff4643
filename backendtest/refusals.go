package backendtest

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	ab "github.com/agentbackend/agentbackend"
)

// scopeLike is what a scope (agentbackend.ScopedBackend, or a type that
// embeds one) has and a backend does not: its root may be removed.
type scopeLike interface {
	Path() string
	Unwrap() ab.FileBackend
}

// wantFormat checks that err is an *agentbackend.Error of code whose text
// has the one shape of the module, "CODE: op path: reason", and names path
// (shortened when it is long).
func wantFormat(t *testing.T, err error, code ab.Code, op, path, what string) *ab.Error {
	t.Helper()
	e := wantCode(t, err, code, what)
	if e == nil {
		return nil
	}
	if e.Path != path {
		t.Errorf("%s: error names path %q, want %q", what, e.Path, path)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, string(code)+": "+op+" ") {
		t.Errorf("%s: message %q does not start with %q", what, msg, string(code)+": "+op+" ")
	}
	if len(path) > 200 && len(msg) > 400 {
		t.Errorf("%s: a %d-byte path is shown whole (%d-byte message)", what, len(path), len(msg))
	}
	if e.Reason() == "" || !strings.HasSuffix(msg, e.Reason()) {
		t.Errorf("%s: message %q does not end with its reason %q", what, msg, e.Reason())
	}
	return e
}

// testMissing: a missing path fails with the operation's code on every
// backend (as LocalBackend does), and is fs.ErrNotExist.
func (s suite) testMissing(t *testing.T) {
	b := s.fresh(t)
	c := ctx(t)
	_, errRead := b.Read(c, "missing.txt")
	_, errStat := b.Stat(c, "missing.txt")
	_, errList := b.ReadDir(c, "missing.txt")
	for _, x := range []struct {
		err      error
		code     ab.Code
		op, what string
	}{
		{errRead, ab.CodeReadFailed, "read", "Read"},
		{errStat, ab.CodeReadFailed, "stat", "Stat"},
		{errList, ab.CodeLsFailed, "readdir", "ReadDir"},
		{b.Remove(c, "missing.txt", ab.RemoveOptions{}), ab.CodeWriteFailed, "rm", "Remove"},
		{b.Rename(c, "missing.txt", "b.txt"), ab.CodeWriteFailed, "rename", "Rename"},
	} {
		wantFormat(t, x.err, x.code, x.op, "missing.txt", x.what+"(missing)")
		if !errors.Is(x.err, fs.ErrNotExist) {
			t.Errorf("%s(missing) = %v, want fs.ErrNotExist", x.what, x.err)
		}
	}
}

// testRefusals: what no backend can hold, or what means nothing, is
// refused the same way everywhere, changing nothing.
func (s suite) testRefusals(t *testing.T) {
	b := s.fresh(t)
	c := ctx(t)
	write(t, b, "f.txt", "one\ntwo\n")
	must(t, b.Mkdir(c, "empty"), "Mkdir empty")
	write(t, b, "full/a", "a")

	t.Run("RemoveRoot", func(t *testing.T) {
		if _, ok := b.(scopeLike); ok {
			t.Skip("a scope may remove its own directory (see ScopedBackend.Remove)")
		}
		for _, p := range []string{"/", ".", "", "./", b.RootDir()} {
			for _, o := range []ab.RemoveOptions{{}, {Recursive: true}, {Recursive: true, Force: true}} {
				wantFormat(t, b.Remove(c, p, o), ab.CodeWriteFailed, "rm", p, "Remove("+p+")")
			}
		}
		wantRead(t, b, "f.txt", "one\ntwo\n")
		wantExists(t, b, "empty", true)
	})

	t.Run("DirectoryWithoutRecursive", func(t *testing.T) {
		for _, p := range []string{"empty", "full"} {
			err := b.Remove(c, p, ab.RemoveOptions{})
			wantFormat(t, err, ab.CodeWriteFailed, "rm", p, "Remove("+p+") without Recursive")
			if err != nil && !strings.Contains(err.Error(), "Recursive") {
				t.Errorf("Remove(%s) without Recursive: %q does not say how to remove it", p, err)
			}
			wantExists(t, b, p, true)
		}
		wantRead(t, b, "full/a", "a")
	})

	t.Run("TouchDirectory", func(t *testing.T) {
		wantFormat(t, b.Touch(c, "empty"), ab.CodeWriteFailed, "touch", "empty", "Touch(directory)")
		if fi, err := b.Stat(c, "empty"); err != nil || !fi.IsDir {
			t.Errorf("Touch(directory) changed it: %+v %v", fi, err)
		}
	})

	t.Run("MalformedPaths", func(t *testing.T) {
		long := strings.Repeat("abcd/", 1000) + "f.txt" // 5005 bytes, short names
		for _, p := range []string{"a\x00b", "dir/\x00", "f.txt\x00.evil", strings.Repeat("n", 256), "d/" + strings.Repeat("é", 128), long} {
			ops := map[string]error{}
			_, ops["read"] = b.Read(c, p)
			ops["write"] = b.Write(c, p, []byte("x"))
			_, ops["readdir"] = b.ReadDir(c, p)
			ops["mkdir"] = b.Mkdir(c, p)
			_, ops["exists"] = b.Exists(c, p)
			_, ops["stat"] = b.Stat(c, p)
			ops["rm"] = b.Remove(c, p, ab.RemoveOptions{Recursive: true, Force: true})
			ops["rename"] = b.Rename(c, p, "in.txt")
			ops["touch"] = b.Touch(c, p)
			_, ops["scope"] = b.Scope(p, nil)
			for op, err := range ops {
				wantFormat(t, err, ab.CodeInvalidArgument, op, p, op+"("+shortName(p)+")")
			}
			wantFormat(t, b.Rename(c, "f.txt", p), ab.CodeInvalidArgument, "rename", p, "rename(f.txt, "+shortName(p)+")")
		}
		wantRead(t, b, "f.txt", "one\ntwo\n")
		names, err := b.ReadDir(c, ".")
		must(t, err, "ReadDir .")
		if want := 3 + len(s.opts.RootEntries); len(names) != want {
			t.Errorf("after the refusals the root holds %q", names)
		}
		// A name of 255 bytes is fine.
		write(t, b, strings.Repeat("n", 255), "max")
	})

	t.Run("TrailingSlash", func(t *testing.T) {
		// "g.txt/" names a directory: no file g.txt is made of it.
		wantFormat(t, b.Write(c, "g.txt/", []byte("x")), ab.CodeInvalidArgument, "write", "g.txt/", "Write(g.txt/)")
		wantFormat(t, b.Touch(c, "h.txt/"), ab.CodeInvalidArgument, "touch", "h.txt/", "Touch(h.txt/)")
		wantExists(t, b, "g.txt", false)
		wantExists(t, b, "h.txt", false)
		// Directories may be named with one.
		must(t, b.Mkdir(c, "made/"), "Mkdir(made/)")
		if names, err := b.ReadDir(c, "full/"); err != nil || len(names) != 1 {
			t.Errorf("ReadDir(full/) = %q, %v", names, err)
		}
	})

	t.Run("ScopeOfAFile", func(t *testing.T) {
		_, err := b.Scope("f.txt", nil)
		wantFormat(t, err, ab.CodeInvalidArgument, "scope", "f.txt", "Scope(file)")
		sc, err := b.Scope("not/yet", nil)
		must(t, err, "Scope of a directory not made yet")
		must(t, sc.Close(), "Close scope")
	})

	t.Run("ReadLines", func(t *testing.T) {
		for _, o := range []ab.ReadOptions{{Offset: -1}, {Limit: -2}, {Offset: -5, Limit: -5}} {
			_, err := ab.ReadLines(c, b, "f.txt", o)
			e := wantFormat(t, err, ab.CodeInvalidArgument, "read", "f.txt", "ReadLines negative")
			if e != nil && !strings.Contains(e.Reason(), "ReadOptions.") {
				t.Errorf("ReadLines(%+v): %q does not name the field", o, err)
			}
		}
		if got, err := ab.ReadLines(c, b, "f.txt", ab.ReadOptions{}); err != nil || got.String() != "     1\tone\n     2\ttwo\n" {
			t.Errorf("ReadLines(defaults) = %q, %v", got, err)
		}
	})

	t.Run("Grep", func(t *testing.T) {
		for field, o := range map[string]ab.GrepOptions{
			"Mode":      {Pattern: "one", Mode: "bogus"},
			"Before":    {Pattern: "one", Mode: ab.GrepContent, Before: -3},
			"After":     {Pattern: "one", Mode: ab.GrepContent, After: -1},
			"HeadLimit": {Pattern: "one", HeadLimit: -1},
		} {
			_, err := ab.Grep(c, b, o)
			if e := wantCode(t, err, ab.CodeInvalidArgument, "Grep "+field); e != nil && !strings.Contains(err.Error(), "GrepOptions."+field) {
				t.Errorf("Grep %s: %q does not name the field", field, err)
			}
		}
		if res, err := ab.Grep(c, b, ab.GrepOptions{Pattern: "two"}); err != nil || len(res.Files) != 1 {
			t.Errorf("Grep(two) = %+v, %v", res, err)
		}
	})

	t.Run("ExecNUL", func(t *testing.T) {
		if !supportsExec(t, b) {
			t.Skip("no Exec")
		}
		_, err := b.Exec(c, "echo a\x00b > nul.txt", nil)
		if e := wantCode(t, err, ab.CodeInvalidArgument, "Exec with a NUL byte"); e != nil && !strings.HasPrefix(err.Error(), "INVALID_ARGUMENT: exec ") {
			t.Errorf("Exec with a NUL byte: %q", err)
		}
		wantExists(t, b, "nul.txt", false)
	})
}

// shortName is p for a test's name: long paths cut.
func shortName(p string) string {
	if len(p) > 40 {
		return p[:20] + "..."
	}
	return p
}
