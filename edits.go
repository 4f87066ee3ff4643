package agentbackend

import (
	"context"
	"strings"

	"github.com/agentbackend/agentbackend/internal/udiff"
)

// EditOp is one replacement of Edit: Old is the text to find, New what
// replaces it.
type EditOp struct {
	Old, New string
	// ReplaceAll replaces every occurrence of Old instead of requiring it
	// to occur exactly once.
	ReplaceAll bool
}

// EditResult is what Edit did, or what PreviewEdit would do. Before and After are the file's text
// with line endings normalised to "\n", as the edits and the diff see it.
type EditResult struct {
	Before, After string
	// Replacements counts the occurrences replaced, over all edits.
	Replacements int
	// Written reports whether the file was rewritten (false for a dry run
	// or when the edits changed nothing).
	Written bool
}

// Diff returns the unified diff from Before to After under the file name
// name, in the format of the MCP filesystem server's edit_file (which is
// the JavaScript "diff" package's createTwoFilesPatch): an "Index:" line, a
// line of "=", "--- name\toriginal", "+++ name\tmodified" and hunks with
// four lines of context.
func (r *EditResult) Diff(name string) string {
	return udiff.TwoFiles(name, name, r.Before, r.After, "original", "modified")
}

// Edit applies replacements to a text file in order, each seeing the
// result of the ones before, and writes the file once at the end: either
// every edit applies or the file is left as it was. It is the edit_file
// tool of the MCP filesystem server, so an agent gets the same behaviour
// through MCP and through this call:
//
//   - Line endings are normalised to "\n" for matching; a file whose every
//     line ended in "\r\n" is written back with "\r\n" (a file with mixed
//     endings is written back with "\n").
//   - Old must occur exactly once unless ReplaceAll is set; more than once
//     is INVALID_ARGUMENT saying how many times, so an edit never lands on
//     the wrong occurrence. An empty Old is INVALID_ARGUMENT.
//   - When Old does not occur as given, its lines are matched ignoring
//     leading and trailing whitespace on each line, and New is re-indented
//     to the indentation of the matched text, as the MCP filesystem server
//     does. Not found that way either is INVALID_ARGUMENT with the message
//     "Could not find exact match for edit:\n<Old>".
//
// Binary files are refused with INVALID_ARGUMENT. The file is rewritten
// with the backend's atomic Write, and concurrent Edits of the same file
// in this process are serialised so none is lost.
func Edit(ctx context.Context, b FileBackend, path string, edits ...EditOp) (*EditResult, error) {
	return edit(ctx, b, path, edits, true)
}

// PreviewEdit is Edit without the write: it returns what Edit would do
// (the text before and after, Diff) and leaves the file as it is.
func PreviewEdit(ctx context.Context, b FileBackend, path string, edits ...EditOp) (*EditResult, error) {
	return edit(ctx, b, path, edits, false)
}

func edit(ctx context.Context, b FileBackend, path string, edits []EditOp, write bool) (*EditResult, error) {
	unlock := lockPath(b, path)
	defer unlock()
	data, err := b.Read(ctx, path)
	if err != nil {
		return nil, err
	}
	if isBinary(data) {
		return nil, errArgument("edit", path, "a binary file; edits change text files only")
	}
	raw := string(data)
	crlf := strings.Count(raw, "\r\n") > 0 && strings.Count(raw, "\r\n") == strings.Count(raw, "\n")
	r := &EditResult{Before: normalizeNewlines(raw)}
	text := r.Before
	for i, e := range edits {
		old, repl := normalizeNewlines(e.Old), normalizeNewlines(e.New)
		if old == "" {
			return nil, errArgument("edit", path, "edit %d: oldText is empty; give the exact text to replace", i+1)
		}
		n := strings.Count(text, old)
		switch {
		case n > 1 && !e.ReplaceAll:
			return nil, errAmbiguousEdit(path, i, n)
		case n > 0 && e.ReplaceAll:
			text = strings.ReplaceAll(text, old, repl)
		case n > 0:
			text = strings.Replace(text, old, repl, 1)
		default:
			n, text = replaceLinesFlexibly(text, old, repl, e.ReplaceAll)
			switch {
			case n == 0:
				return nil, &Error{Code: CodeInvalidArgument, Op: "edit", Path: path,
					Message: "Could not find exact match for edit:\n" + e.Old}
			case n > 1 && !e.ReplaceAll:
				return nil, errAmbiguousEdit(path, i, n)
			}
		}
		r.Replacements += n
	}
	r.After = text
	if !write || r.After == r.Before {
		return r, nil
	}
	out := r.After
	if crlf {
		out = strings.ReplaceAll(out, "\n", "\r\n")
	}
	if err := b.Write(ctx, path, []byte(out)); err != nil {
		return nil, err
	}
	r.Written = true
	return r, nil
}

func errAmbiguousEdit(path string, i, n int) error {
	return errArgument("edit", path, "edit %d: oldText appears %d times in the file; pass replaceAll: true to replace every occurrence, or add surrounding context to oldText to make it unique.", i+1, n)
}

func normalizeNewlines(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

// replaceLinesFlexibly finds the runs of lines of text equal to old's lines
// once each line is trimmed of whitespace, and replaces them with repl
// re-indented as the MCP filesystem server does: the first line takes the
// matched text's indentation, a later line whose indentation and whose
// counterpart in old are both non-empty keeps its indentation relative to
// that counterpart, any other line is kept as written. Matches do not
// overlap. Without all, more than one match replaces nothing (the caller
// refuses the ambiguous edit). It returns the number of matches and the
// new text.
func replaceLinesFlexibly(text, old, repl string, all bool) (int, string) {
	oldLines := strings.Split(old, "\n")
	lines := strings.Split(text, "\n")
	var starts []int
	for i := 0; i+len(oldLines) <= len(lines); i++ {
		match := true
		for j, ol := range oldLines {
			if jsTrim(ol) != jsTrim(lines[i+j]) {
				match = false
				break
			}
		}
		if match {
			starts = append(starts, i)
			i += len(oldLines) - 1
		}
	}
	if len(starts) == 0 || (len(starts) > 1 && !all) {
		return len(starts), text
	}
	replLines := strings.Split(repl, "\n")
	for k := len(starts) - 1; k >= 0; k-- {
		i := starts[k]
		indent := leadingSpace(lines[i])
		newLines := make([]string, len(replLines))
		for j, line := range replLines {
			if j == 0 {
				newLines[j] = indent + jsTrimStart(line)
				continue
			}
			oldIndent := ""
			if j < len(oldLines) {
				oldIndent = leadingSpace(oldLines[j])
			}
			newIndent := leadingSpace(line)
			if oldIndent != "" && newIndent != "" {
				rel := max(0, utf16Len(newIndent)-utf16Len(oldIndent))
				newLines[j] = indent + strings.Repeat(" ", rel) + jsTrimStart(line)
			} else {
				newLines[j] = line
			}
		}
		lines = append(lines[:i], append(newLines, lines[i+len(oldLines):]...)...)
	}
	return len(starts), strings.Join(lines, "\n")
}

// isJSSpace reports whether r is white space or a line terminator for
// JavaScript's trim and \s, which the MCP filesystem server's matching uses.
func isJSSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}

func jsTrim(s string) string      { return strings.TrimFunc(s, isJSSpace) }
func jsTrimStart(s string) string { return strings.TrimLeftFunc(s, isJSSpace) }

func leadingSpace(s string) string { return s[:len(s)-len(jsTrimStart(s))] }

// utf16Len is the length of s as JavaScript counts it.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r >= 0x10000 {
			n++
		}
	}
	return n
}
