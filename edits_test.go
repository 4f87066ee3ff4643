package agentbackend

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"sync"
	"testing"
)

func TestEdit(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, map[string]string{
		"a.txt":    "line1\nline2\nline3\n",
		"code.go":  "func x() {\n    if a {\n        b()\n    }\n}\n",
		"dup.txt":  "x\nx\ny\n",
		"crlf.txt": "one\r\ntwo\r\n",
	}, func(t *testing.T, b FileBackend) {
		read := func(p string) string {
			data, err := b.Read(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			return string(data)
		}

		// In order, each edit seeing the one before; the diff is jsdiff's.
		r, err := Edit(ctx, b, "a.txt", EditOp{Old: "line2", New: "LINE2"}, EditOp{Old: "LINE2\nline3", New: "end"})
		if err != nil {
			t.Fatal(err)
		}
		if got := read("a.txt"); got != "line1\nend\n" || !r.Written || r.Replacements != 2 {
			t.Fatalf("after edits: %q, %+v", got, r)
		}
		wantDiff := "Index: /w/a.txt\n===================================================================\n--- /w/a.txt\toriginal\n+++ /w/a.txt\tmodified\n@@ -1,3 +1,2 @@\n line1\n-line2\n-line3\n+end\n"
		if d := r.Diff("/w/a.txt"); d != wantDiff {
			t.Fatalf("diff:\n%q\nwant\n%q", d, wantDiff)
		}

		// Dry run changes nothing.
		r, err = PreviewEdit(ctx, b, "a.txt", EditOp{Old: "end", New: "x"})
		if err != nil || r.Written || r.After != "line1\nx\n" || read("a.txt") != "line1\nend\n" {
			t.Fatalf("dry run: %+v, %v, file %q", r, err, read("a.txt"))
		}

		// Whitespace-flexible, re-indented as the official server does
		// (measured against @modelcontextprotocol/server-filesystem).
		if _, err = Edit(ctx, b, "code.go", EditOp{Old: "if a {\n    b()\n}", New: "if z {\n  c()\n  d()\n}"}); err != nil {
			t.Fatal(err)
		}
		if got, want := read("code.go"), "func x() {\n    if z {\n    c()\n  d()\n}\n}\n"; got != want {
			t.Fatalf("flexible edit: %q, want %q", got, want)
		}

		// Ambiguous edits are refused; ReplaceAll takes them all.
		_, err = Edit(ctx, b, "dup.txt", EditOp{Old: "x", New: "z"})
		wantCodeT(t, err, CodeInvalidArgument)
		if !strings.Contains(err.Error(), "appears 2 times") {
			t.Fatalf("ambiguity message: %v", err)
		}
		if r, err = Edit(ctx, b, "dup.txt", EditOp{Old: "x", New: "z", ReplaceAll: true}); err != nil || read("dup.txt") != "z\nz\ny\n" || r.Replacements != 2 {
			t.Fatalf("replaceAll: %v, %q", err, read("dup.txt"))
		}

		// Not found: the official message, nothing written even when an
		// earlier edit applied.
		_, err = Edit(ctx, b, "dup.txt", EditOp{Old: "y", New: "w"}, EditOp{Old: "nope", New: "x"})
		wantCodeT(t, err, CodeInvalidArgument)
		if err.Error() != "INVALID_ARGUMENT: edit dup.txt: Could not find exact match for edit:\nnope" || read("dup.txt") != "z\nz\ny\n" {
			t.Fatalf("not found: %v, file %q", err, read("dup.txt"))
		}
		_, err = Edit(ctx, b, "dup.txt", EditOp{Old: "", New: "x"})
		wantCodeT(t, err, CodeInvalidArgument)

		// CRLF files keep their endings.
		if _, err = Edit(ctx, b, "crlf.txt", EditOp{Old: "one\ntwo", New: "1\n2"}); err != nil {
			t.Fatal(err)
		}
		if got := read("crlf.txt"); got != "1\r\n2\r\n" {
			t.Fatalf("crlf: %q", got)
		}

		// Binary files and missing files.
		if err := b.Write(ctx, "bin", []byte{0, 1, 2}); err != nil {
			t.Fatal(err)
		}
		_, err = Edit(ctx, b, "bin", EditOp{Old: "a", New: "b"})
		wantCodeT(t, err, CodeInvalidArgument)
		if _, err = Edit(ctx, b, "missing", EditOp{Old: "a", New: "b"}); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("edit of a missing file: %v", err)
		}

		// An edit that changes nothing writes nothing.
		if r, err = Edit(ctx, b, "dup.txt", EditOp{Old: "y", New: "y"}); err != nil || r.Written || r.Replacements != 1 {
			t.Fatalf("edit to the same text: %+v, %v", r, err)
		}
	})
}

func TestEditConcurrentNoLostUpdates(t *testing.T) {
	ctx := context.Background()
	b, _ := NewMemory(MemoryConfig{})
	defer b.Close()
	var sb strings.Builder
	for i := range 20 {
		sb.WriteString("k" + string(rune('a'+i)) + "\n")
	}
	b.Write(ctx, "f", []byte(sb.String()))
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			k := "k" + string(rune('a'+i)) + "\n"
			if _, err := Edit(ctx, b, "f", EditOp{Old: k, New: strings.ToUpper(k)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	data, _ := b.Read(ctx, "f")
	if got := string(data); got != strings.ToUpper(sb.String()) {
		t.Fatalf("lost updates: %q", got)
	}
}
