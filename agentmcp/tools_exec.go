package agentmcp

import (
	"context"
	"fmt"
	"strings"

	ab "github.com/agentbackend/agentbackend"
)

// The tools agent-backend's daemon adds: exec and grep.

var (
	execSpec = &spec{
		name: "exec", title: "Execute Command",
		desc: "Execute a shell command in the workspace directory and return its standard output. " +
			"A command that exits non-zero is an error carrying its exit code and standard error. " +
			"With background: true it starts the command in the background instead and returns its shell_id at once " +
			"(see run_in_background), where the backend can run background processes. " +
			"Not available for backends that cannot run commands (memory).",
		input: mustSchema(execSchema), output: textOutput,
		ann:  Annotations{Destructive: true, OpenWorld: true},
		exec: true, runs: true,
		run: execCommand,
	}
	grepSpec = &spec{
		name: "grep", title: "Search File Contents",
		desc: "Search file contents with a regular expression. Returns matching file paths, " +
			"per-file match counts, or matching lines (like ripgrep: ./path, ./path:count, ./path:line:text). " +
			"Skips hidden files, binary files and what .gitignore ignores. " +
			"Parameter shape mirrors Claude Code's Grep tool.",
		input: mustSchema(grepSchema), output: textOutput, ann: readOnly,
		run: grep,
	}
)

// allSpecs is every tool, in the filesystem server's order, then
// agent-backend's additions.
var allSpecs = []*spec{
	readFileSpec, readTextFileSpec, readMediaFileSpec, readMultipleFilesSpec,
	writeFileSpec, editFileSpec, createDirectorySpec,
	listDirectorySpec, listDirectoryWithSizesSpec, directoryTreeSpec,
	moveFileSpec, searchFilesSpec, getFileInfoSpec, listAllowedDirectoriesSpec,
	execSpec, grepSpec,
	runInBackgroundSpec, readOutputSpec, sendInputSpec, killShellSpec, listShellsSpec,
}

// execCommand runs a command as agent-backend's daemon does: stdout,
// trimmed, on success; the backend's error (for a non-zero exit, "Command
// execution failed with exit code N: <stderr>") otherwise.
func execCommand(ctx context.Context, t *toolset, args map[string]any) (*Result, error) {
	o := execOptions(args)
	if boolean(args, "background") {
		return startBackground(ctx, t, "exec", str(args, "command"), o)
	}
	res, err := t.b.Exec(ctx, str(args, "command"), o)
	if err != nil {
		return nil, reasonError("exec", err)
	}
	return text(strings.TrimSpace(string(res.Stdout))), nil
}

// grep answers agent-backend's grep with this module's Grep, printing paths
// as ripgrep prints them when given the search path: "./a.go" for the
// default ".", "src/a.go" under "src", the path itself for a file.
func grep(ctx context.Context, t *toolset, args map[string]any) (*Result, error) {
	given := str(args, "path")
	opts := ab.GrepOptions{
		Pattern:         str(args, "pattern"),
		Path:            given,
		Glob:            str(args, "glob"),
		Type:            str(args, "type"),
		Mode:            ab.GrepMode(str(args, "outputMode")),
		CaseInsensitive: boolean(args, "caseInsensitive"),
		Multiline:       boolean(args, "multiline"),
	}
	if opts.Mode == "" {
		opts.Mode = ab.GrepFilesWithMatches
	}
	if opts.Mode == ab.GrepContent {
		around, _ := num(args, "contextAround")
		before, ok := num(args, "contextBefore")
		if !ok {
			before = around
		}
		after, ok := num(args, "contextAfter")
		if !ok {
			after = around
		}
		opts.Before, opts.After = int(before), int(after)
	}
	base := given
	if base == "" {
		base = "."
	}
	r, err := ab.Grep(ctx, t.b, opts)
	if err != nil {
		return nil, t.fileError("grep", err, "stat", base)
	}
	show := displayPaths(t.rel(given), base)
	out := *r
	out.Files = make([]string, len(r.Files))
	for i, f := range r.Files {
		out.Files[i] = show(f)
	}
	out.Counts = make([]ab.GrepFileCount, len(r.Counts))
	for i, c := range r.Counts {
		out.Counts[i] = ab.GrepFileCount{Path: show(c.Path), Count: c.Count}
	}
	out.Lines = make([]ab.GrepLine, len(r.Lines))
	for i, l := range r.Lines {
		l.Path = show(l.Path)
		out.Lines[i] = l
	}
	s := strings.TrimRight(out.Format(boolean(args, "lineNumbers")), "\n")
	if s == "" {
		return text("No matches found"), nil
	}
	if h, ok := num(args, "headLimit"); ok {
		if lines := strings.Split(s, "\n"); len(lines) > int(h) {
			s = strings.Join(lines[:int(h)], "\n") +
				fmt.Sprintf("\n[output truncated to first %d lines; %d more hidden]", int(h), len(lines)-int(h))
		}
	}
	return text(s), nil
}

// displayPaths returns a function turning a root-relative result path into
// the path ripgrep would print for a search of base (the client's path,
// whose root-relative form is searchRel).
func displayPaths(searchRel, base string) func(string) string {
	return func(rel string) string {
		below := rel
		if searchRel != "." {
			if rel == searchRel {
				return base // the search path is the file itself
			}
			below = strings.TrimPrefix(rel, searchRel+"/")
		}
		return joinPath(base, below)
	}
}
