package agentmcp_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentbackend/agentbackend/internal/testenv"
)

// Differences from agent-backend 0.13.2's daemon kept on purpose (see
// TestDifferentialOfficial for how they are checked).
const (
	keptBlocking = "spec/daemon.md: --local-only turns dangerous-command blocking off; agent-backend 0.13.2 " +
		"still blocks (a defect the spec names)"
	keptLineCount = "a final newline ends the last line: agent-backend counts the empty string after it as " +
		"one more line (\"of 6\" for a 5-line file) and shows it as a trailing newline"
	keptImplicitPaging = "without offset or limit read_text_file returns the whole file, as the official server " +
		"does; agent-backend returns the first 1000 lines and a footer"
	keptDiffFormat = "edit_file answers with the official server's diff (fenced, with Index and ===); " +
		"agent-backend's has file headers only"
	keptRegexSyntax = "grep runs this module's Grep (Go RE2 syntax, its own messages), not ripgrep"
	keptGrepMissing = "a missing grep path is reported like the other tools' errors, not as ripgrep's exit status"
)

// TestDifferentialAgentBackend compares the tools agent-backend's daemon
// adds or extends (exec, grep, read_text_file paging, replaceAll) with
// agent-backend 0.13.2's own daemon.
func TestDifferentialAgentBackend(t *testing.T) {
	pkg := referencePackage(t, agentPackage, agentVersion)
	testenv.NeedCommand(t, "mcp-reference", "rg") // the reference's grep runs ripgrep
	cli := buildCLI(t)
	refDir, ourDir := t.TempDir(), t.TempDir()
	for _, dir := range []string{refDir, ourDir} {
		for p, c := range map[string]string{
			"src/a.go":          "package a\n\nfunc Foo() {}\n// foo bar\n",
			"src/b.py":          "def foo():\n    return 1\n",
			"n.txt":             "foo\nbar\nbaz\nqux\n",
			"five.txt":          "l1\nl2\nl3\nl4\nl5\n",
			"three.txt":         "t1\nt2\nt3",
			"big.txt":           strings.Repeat("line\n", 1500),
			".hidden/h.txt":     "foo hidden\n",
			".gitignore":        "ignored.txt\n",
			"ignored.txt":       "foo ignored\n",
			".git/HEAD":         "ref: refs/heads/main\n",
			"multi.txt":         "start\nmiddle\nend\n",
			"sub/deep/deep.txt": "foo deep\n",
		} {
			full := filepath.Join(dir, p)
			os.MkdirAll(filepath.Dir(full), 0o755)
			if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	ref := startPeer(t, "agent-backend", exec.Command("node", filepath.Join(pkg, "bin", "agent-backend.js"),
		"daemon", "--rootDir", refDir, "--local-only", "--isolation", "software"), refDir)
	ours := startPeer(t, "ours", exec.Command(cli, "daemon", "--rootDir", ourDir, "--local-only", "--isolation", "software"), ourDir)

	// Every parameter agent-backend accepts, ours accepts with the same type.
	compareToolLists(t, ref, ours, nil, nil, false)

	type A = map[string]any
	steps := []step{
		// exec
		{"exec", A{"command": "echo hi; echo warn >&2"}, ""},
		{"exec", A{"command": "printf '  padded\\n\\n'"}, ""},
		{"exec", A{"command": "echo out; echo bad >&2; exit 3"}, ""},
		{"exec", A{"command": "exit 4"}, ""},
		{"exec", A{"command": "printf %s \"$GREETING\"", "env": A{"GREETING": "hello there"}}, ""},
		{"exec", A{"command": "cat three.txt | wc -l"}, ""},
		{"exec", A{"command": "mkdir -p scratch && touch scratch/x && rm -rf scratch/* && echo cleaned"}, keptBlocking},

		// read_text_file paging
		{"read_text_file", A{"path": "three.txt", "offset": 2, "limit": 1}, ""},
		{"read_text_file", A{"path": "three.txt", "offset": 2}, ""},
		{"read_text_file", A{"path": "three.txt", "limit": 10}, ""},
		{"read_text_file", A{"path": "three.txt", "offset": 9}, ""},
		{"read_text_file", A{"path": "big.txt", "offset": 1490, "limit": 5}, keptLineCount},
		{"read_text_file", A{"path": "five.txt", "offset": 2, "limit": 2}, keptLineCount},
		{"read_text_file", A{"path": "big.txt"}, keptImplicitPaging},

		// grep (always with a path: without one the reference reads its
		// standard input and never answers; ours searches the root)
		{"grep", A{"pattern": "foo", "path": "."}, unordered},
		{"grep", A{"pattern": "foo", "path": ".", "outputMode": "content"}, unordered},
		{"grep", A{"pattern": "foo", "path": ".", "outputMode": "content", "lineNumbers": true}, unordered},
		{"grep", A{"pattern": "ba", "path": ".", "outputMode": "count"}, unordered},
		{"grep", A{"pattern": "FOO", "path": ".", "caseInsensitive": true}, unordered},
		{"grep", A{"pattern": "bar", "path": "n.txt", "outputMode": "content", "contextBefore": 1, "lineNumbers": true}, ""},
		{"grep", A{"pattern": "baz", "path": "n.txt", "outputMode": "content", "contextAround": 1}, ""},
		{"grep", A{"pattern": "ba", "path": "n.txt", "outputMode": "content", "contextAfter": 1, "contextAround": 0}, ""},
		{"grep", A{"pattern": "foo", "path": "src"}, unordered},
		{"grep", A{"pattern": "foo", "path": "src", "outputMode": "content", "lineNumbers": true}, unordered},
		{"grep", A{"pattern": "foo", "path": ".", "glob": "*.go"}, ""},
		{"grep", A{"pattern": "foo", "path": ".", "type": "py"}, ""},
		{"grep", A{"pattern": "start.*end", "path": "multi.txt", "multiline": true, "outputMode": "content"}, ""},
		{"grep", A{"pattern": "l", "path": "big.txt", "outputMode": "content", "headLimit": 3}, ""},
		{"grep", A{"pattern": "zzz", "path": "."}, ""},
		{"grep", A{"pattern": "(", "path": "."}, keptRegexSyntax},
		{"grep", A{"pattern": "x", "path": "missing"}, keptGrepMissing},

		// edit_file with replaceAll: the result, then the file.
		{"edit_file", A{"path": "n.txt", "edits": []any{A{"oldText": "ba", "newText": "BA", "replaceAll": true}}}, keptDiffFormat},
		{"read_text_file", A{"path": "n.txt", "offset": 1, "limit": 3}, keptLineCount},
		{"exec", A{"command": "cat n.txt"}, ""},
		{"edit_file", A{"path": "n.txt", "edits": []any{A{"oldText": "BA", "newText": "x"}}}, ""},
	}
	runSteps(t, ref, ours, steps)
}
