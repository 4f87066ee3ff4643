package agentbackend

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/bmatcuk/doublestar/v4"
)

// GrepMode selects what Grep reports.
type GrepMode string

// The output modes of Grep, named like ripgrep's and the reference daemon's.
const (
	GrepFilesWithMatches GrepMode = "files_with_matches" // the paths of matching files (the default)
	GrepContent          GrepMode = "content"            // the matching lines, with context if asked
	GrepCount            GrepMode = "count"              // the number of matching lines per file
)

// GrepOptions is a search. Only Pattern is required.
type GrepOptions struct {
	Pattern         string   // RE2 regular expression, or a literal string with Literal
	Literal         bool     // match Pattern as a fixed string
	CaseInsensitive bool     // ignore case
	Multiline       bool     // let matches span lines ("." matches newlines too)
	Path            string   // file or directory to search, under the path rule; "" is the root
	Glob            string   // only files matching this doublestar glob; without a "/" it matches the name, else the path below Path; a leading "!" excludes
	Type            string   // only files of this type ("go", "py", "js", ...; see GrepTypes)
	Mode            GrepMode // what to report; "" means GrepFilesWithMatches
	Before, After   int      // context lines around each match, in content mode
	HeadLimit       int      // keep only the first N entries (files, counts or lines); 0 keeps all
	Hidden          bool     // search hidden files and directories (names starting with ".")
	NoIgnore        bool     // do not honour .gitignore and .ignore files
}

// GrepResult is what Grep found. Paths are relative to the backend root and
// sorted; within a file, lines are in order.
type GrepResult struct {
	Mode      GrepMode
	Files     []string        // files with matches (every mode)
	Counts    []GrepFileCount // matching lines per file (count mode)
	Lines     []GrepLine      // matching and context lines (content mode)
	Truncated bool            // HeadLimit cut the result short
}

// GrepFileCount is the number of matching lines in one file.
type GrepFileCount struct {
	Path  string
	Count int
}

// GrepLine is one line of content-mode output.
type GrepLine struct {
	Path    string
	Line    int    // 1-based
	Text    string // without the line ending; cut like ReadLines past MaxLineLength
	Context bool   // a context line, not a match
}

// GrepTypes maps the file types Grep's Type accepts to their globs, a
// subset of ripgrep's --type-list.
var GrepTypes = map[string][]string{
	"c": {"*.c", "*.h"}, "cpp": {"*.cpp", "*.cc", "*.cxx", "*.hpp", "*.hh", "*.hxx", "*.h"},
	"cs": {"*.cs"}, "css": {"*.css", "*.scss", "*.sass", "*.less"}, "go": {"*.go"},
	"html": {"*.html", "*.htm"}, "java": {"*.java"}, "js": {"*.js", "*.mjs", "*.cjs", "*.jsx"},
	"json": {"*.json"}, "kotlin": {"*.kt", "*.kts"}, "lua": {"*.lua"}, "make": {"Makefile", "makefile", "GNUmakefile", "*.mk"},
	"md": {"*.md", "*.markdown"}, "php": {"*.php"}, "py": {"*.py", "*.pyi"}, "rb": {"*.rb"},
	"rust": {"*.rs"}, "sh": {"*.sh", "*.bash", "*.zsh"}, "sql": {"*.sql"}, "swift": {"*.swift"},
	"toml": {"*.toml"}, "ts": {"*.ts", "*.tsx", "*.mts", "*.cts"}, "txt": {"*.txt"},
	"yaml": {"*.yaml", "*.yml"}, "xml": {"*.xml"},
}

// Grep searches file contents. Binary files (a NUL in their first 8000
// bytes) are skipped, version-control directories are never entered, hidden
// entries are skipped unless Hidden, and .gitignore/.ignore rules are
// honoured unless NoIgnore — as ripgrep does, except that the rules apply
// whether or not the tree is a git repository. A file named by Path is
// searched even if hidden or ignored. A bad pattern, glob, type or mode, or
// a negative Before, After or HeadLimit, is INVALID_ARGUMENT.
func Grep(ctx context.Context, b FileBackend, opts GrepOptions) (*GrepResult, error) {
	if g, ok := b.(Grepper); ok {
		return g.Grep(ctx, opts)
	}
	return grepTree(ctx, backendTree(b), opts)
}

// check refuses the numbers and modes that mean nothing, naming the
// field, rather than searching as if they had not been given.
func (o GrepOptions) check() error {
	switch o.Mode {
	case "", GrepFilesWithMatches, GrepContent, GrepCount:
	default:
		return errArgument("grep", o.Path, "GrepOptions.Mode %q is not one of %q, %q, %q", o.Mode, GrepFilesWithMatches, GrepContent, GrepCount)
	}
	for _, f := range []struct {
		name string
		n    int
	}{{"Before", o.Before}, {"After", o.After}, {"HeadLimit", o.HeadLimit}} {
		if f.n < 0 {
			return errArgument("grep", o.Path, "GrepOptions.%s is %d, want 0 or more", f.name, f.n)
		}
	}
	return nil
}

// grepTree is Grep on a tree: the one implementation behind every backend's
// search that runs in this process.
func grepTree(ctx context.Context, t tree, opts GrepOptions) (*GrepResult, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	m, err := newLineMatcher(opts)
	if err != nil {
		return nil, err
	}
	filter, err := newFileFilter(opts)
	if err != nil {
		return nil, err
	}
	if opts.Mode == "" {
		opts.Mode = GrepFilesWithMatches
	}
	start, fi, err := startDir(ctx, t, "grep", opts.Path)
	if err != nil {
		return nil, err
	}
	// A tree that can name, next to the data, the files containing the
	// literal every match needs spares reading the others.
	var candidates map[string]bool
	if cf, ok := t.(candidateFinder); ok && fi.IsDir {
		if lit := m.prefilter(); lit != nil && bytes.IndexByte(lit, '\n') < 0 {
			candidates, _ = cf.candidates(ctx, start, lit) // on failure, read everything
		}
	}
	var found resultSet[fileResult]
	search := func(rel string, data []byte) {
		if isBinary(data) {
			return
		}
		hits := m.search(data, opts)
		if len(hits) == 0 {
			return
		}
		res := fileResult{path: rel}
		switch opts.Mode {
		case GrepCount:
			res.count = countHitLines(data, hits)
		case GrepContent:
			res.lines = contentLines(rel, data, hits, opts.Before, opts.After)
		}
		found.add(res)
	}
	if !fi.IsDir {
		data, err := t.readFile(ctx, start)
		if err != nil {
			return nil, withPath(err, start, opts.Path)
		}
		search(start, data)
	} else {
		err = walk(ctx, t, start, walkOptions{
			hidden:   opts.Hidden,
			noIgnore: opts.NoIgnore,
			file: func(ctx context.Context, d treeDir, rel string, fi FileInfo) error {
				below, _ := belowDir(start, rel)
				if !fi.Mode.IsRegular() || !filter.keep(below) || (candidates != nil && !candidates[rel] && !strings.Contains(rel, "\n")) {
					// Links, FIFOs, sockets and devices are not searched,
					// as in ripgrep.
					return nil
				}
				buf := readBufs.Get().(*[]byte)
				defer readBufs.Put(buf)
				data, err := d.read(ctx, fi.Name, (*buf)[:0])
				if err != nil {
					return nil // vanished or unreadable: skip like ripgrep
				}
				search(rel, data) // keeps no reference to data
				if cap(data) <= maxPooledBuf {
					*buf = data[:0]
				}
				return nil
			},
		})
		if err != nil {
			return nil, err
		}
	}
	return buildResult(found.items, opts), nil
}

// candidateFinder is a tree that can list, in one round trip next to the
// data, the files below start containing a literal: a superset of the
// files a search for a pattern requiring that literal has to read.
type candidateFinder interface {
	candidates(ctx context.Context, start string, literal []byte) (map[string]bool, error)
}

// readBufs recycles the buffers files are read into during a search, so a
// search over thousands of files does not allocate (and clear) each one.
var readBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBuf is the largest buffer kept for reuse.
const maxPooledBuf = 4 << 20

// fileResult is what one matching file contributes to a GrepResult. It
// holds no reference to the file's data.
type fileResult struct {
	path  string
	count int        // matching lines, in count mode
	lines []GrepLine // in content mode
}

// lineHit is a run of matched lines (one line unless Multiline) by byte
// offsets [start, end) of the data, end excluding the final newline.
type lineHit struct{ start, end int }

func buildResult(files []fileResult, opts GrepOptions) *GrepResult {
	slices.SortFunc(files, func(a, b fileResult) int { return strings.Compare(a.path, b.path) })
	r := &GrepResult{Mode: opts.Mode}
	for _, f := range files {
		r.Files = append(r.Files, f.path)
		switch opts.Mode {
		case GrepCount:
			r.Counts = append(r.Counts, GrepFileCount{f.path, f.count})
		case GrepContent:
			r.Lines = append(r.Lines, f.lines...)
		}
	}
	r.limit(opts.HeadLimit)
	return r
}

// limit keeps the first n entries of the mode's list (all when n <= 0) and
// notes whether it cut any.
func (r *GrepResult) limit(n int) {
	cut := func(l int) int {
		if n > 0 && l > n {
			r.Truncated = true
			return n
		}
		return l
	}
	switch r.Mode {
	case GrepCount:
		r.Counts = r.Counts[:cut(len(r.Counts))]
	case GrepContent:
		r.Lines = r.Lines[:cut(len(r.Lines))]
	default:
		r.Files = r.Files[:cut(len(r.Files))]
	}
}

func countHitLines(data []byte, hits []lineHit) int {
	n := 0
	for _, h := range hits {
		n += 1 + bytes.Count(data[h.start:h.end], []byte{'\n'})
	}
	return n
}

// contentLines renders one file's hits with their context lines.
func contentLines(path string, data []byte, hits []lineHit, before, after int) []GrepLine {
	lines := splitLines(data)
	matched := make(map[int]bool)
	for _, h := range hits {
		for i := lineAt(lines, h.start); i <= lineAt(lines, h.end); i++ {
			matched[i] = true
		}
	}
	keys := make([]int, 0, len(matched))
	for i := range matched {
		keys = append(keys, i)
	}
	slices.Sort(keys)
	var out []GrepLine
	next := 0 // first line not yet emitted
	for _, i := range keys {
		for j := max(i-before, next); j <= min(i+after, len(lines)-1); j++ {
			out = append(out, GrepLine{Path: path, Line: j + 1, Text: lineText(data, lines[j]), Context: !matched[j]})
		}
		next = max(next, min(i+after, len(lines)-1)+1)
	}
	return out
}

// splitLines returns the start offset of every line of data.
func splitLines(data []byte) []int {
	starts := []int{0}
	for i := 0; ; {
		nl := bytes.IndexByte(data[i:], '\n')
		if nl < 0 || i+nl+1 >= len(data) {
			return starts
		}
		i += nl + 1
		starts = append(starts, i)
	}
}

// lineAt returns the index of the line containing byte offset off.
func lineAt(starts []int, off int) int {
	i, found := slices.BinarySearch(starts, off)
	if found {
		return i
	}
	return i - 1
}

func lineText(data []byte, start int) string {
	end := bytes.IndexByte(data[start:], '\n')
	if end < 0 {
		end = len(data) - start
	}
	s := string(bytes.TrimSuffix(data[start:start+end], []byte{'\r'}))
	if len(s) > MaxLineLength && utf8.RuneCountInString(s) > MaxLineLength {
		s = truncateLine(s)
	}
	return s
}

// String renders the result like ripgrep with line numbers: paths for
// files_with_matches, "path:count" for count, and "path:line:text" for
// matches and "path-line-text" for context in content mode, with "--"
// between separate groups when context was asked for.
func (r *GrepResult) String() string { return r.Format(true) }

// Format renders the result like String, with or without line numbers in
// content mode.
func (r *GrepResult) Format(lineNumbers bool) string {
	var sb strings.Builder
	switch r.Mode {
	case GrepCount:
		for _, c := range r.Counts {
			fmt.Fprintf(&sb, "%s:%d\n", c.Path, c.Count)
		}
	case GrepContent:
		hasContext := slices.ContainsFunc(r.Lines, func(l GrepLine) bool { return l.Context })
		for i, l := range r.Lines {
			if hasContext && i > 0 && (r.Lines[i-1].Path != l.Path || r.Lines[i-1].Line+1 != l.Line) {
				sb.WriteString("--\n")
			}
			sep := ":"
			if l.Context {
				sep = "-"
			}
			sb.WriteString(l.Path)
			sb.WriteString(sep)
			if lineNumbers {
				fmt.Fprintf(&sb, "%d%s", l.Line, sep)
			}
			sb.WriteString(l.Text)
			sb.WriteByte('\n')
		}
	default:
		for _, f := range r.Files {
			sb.WriteString(f)
			sb.WriteByte('\n')
		}
	}
	return sb.String()
}

// lineMatcher finds matching lines fast: a literal search with bytes.Index
// when the pattern is a plain string, and otherwise a literal the pattern
// cannot match without (found with bytes.Index, which is vectorised) to pick
// candidate lines for the regular expression.
type lineMatcher struct {
	re        *regexp.Regexp
	literal   []byte // the whole pattern when it is a plain case-sensitive string
	required  []byte // a substring every match contains, for prefiltering
	multiline bool
}

func newLineMatcher(opts GrepOptions) (*lineMatcher, error) {
	if opts.Pattern == "" {
		return nil, errArgument("grep", opts.Path, "the search pattern is empty")
	}
	expr := opts.Pattern
	if opts.Literal {
		expr = regexp.QuoteMeta(expr)
	}
	flags := "(?m)"
	if opts.CaseInsensitive {
		flags = "(?mi)"
	}
	if opts.Multiline {
		flags = strings.Replace(flags, "m", "ms", 1)
	}
	re, err := regexp.Compile(flags + expr)
	if err != nil {
		return nil, errArgument("grep", opts.Path, "invalid regular expression %q: %v (use Literal for a plain string)", opts.Pattern, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
	m := &lineMatcher{re: re, multiline: opts.Multiline}
	if !opts.CaseInsensitive {
		if parsed, err := syntax.Parse(expr, syntax.Perl); err == nil {
			parsed = parsed.Simplify()
			if parsed.Op == syntax.OpLiteral && parsed.Flags&syntax.FoldCase == 0 && !strings.Contains(string(parsed.Rune), "\n") {
				m.literal = []byte(string(parsed.Rune))
			} else if lit := requiredLiteral(parsed); len(lit) >= 3 {
				m.required = []byte(lit)
			}
		}
	}
	return m, nil
}

// prefilter returns a literal every match contains, or nil when the
// pattern has none (or matching ignores case).
func (m *lineMatcher) prefilter() []byte {
	if m.literal != nil {
		return m.literal
	}
	return m.required
}

// requiredLiteral returns the longest literal string every match of re
// contains, or "".
func requiredLiteral(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase == 0 {
			return string(re.Rune)
		}
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiteral(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return requiredLiteral(re.Sub[0])
		}
	case syntax.OpConcat:
		best := ""
		for _, sub := range re.Sub {
			if lit := requiredLiteral(sub); len(lit) > len(best) {
				best = lit
			}
		}
		return best
	}
	return ""
}

// search returns the matching lines of data.
func (m *lineMatcher) search(data []byte, opts GrepOptions) []lineHit {
	if m.multiline {
		var hits []lineHit
		for _, loc := range m.re.FindAllIndex(data, -1) {
			start := bytes.LastIndexByte(data[:loc[0]], '\n') + 1
			end := loc[1]
			if loc[1] > loc[0] && data[loc[1]-1] == '\n' {
				end-- // a match ending in a newline ends on that line
			}
			if nl := bytes.IndexByte(data[end:], '\n'); nl >= 0 {
				end += nl
			} else {
				end = len(data)
			}
			if n := len(hits); n > 0 && hits[n-1].end >= start {
				hits[n-1].end = max(hits[n-1].end, end)
				continue
			}
			hits = append(hits, lineHit{start, end})
		}
		return hits
	}
	if m.required != nil && !bytes.Contains(data, m.required) {
		return nil
	}
	if bytes.IndexByte(data, '\r') >= 0 {
		return m.searchCRLF(data, opts)
	}
	var hits []lineHit
	stopAfterFirst := opts.Mode == GrepFilesWithMatches
	for pos := 0; pos < len(data); {
		at, matchEnd := m.next(data, pos)
		if at < 0 {
			break
		}
		start := bytes.LastIndexByte(data[:at], '\n') + 1
		end := len(data)
		if nl := bytes.IndexByte(data[at:], '\n'); nl >= 0 {
			end = at + nl
		}
		// A prefilter candidate (matchEnd < 0), or a regexp match that ran
		// past its line (\s matches newlines), must match within the line.
		if m.literal == nil && (matchEnd < 0 || matchEnd > end) && !m.re.Match(data[start:end]) {
			pos = end + 1
			continue
		}
		hits = append(hits, lineHit{start, end})
		if stopAfterFirst {
			break
		}
		pos = end + 1
	}
	return hits
}

// searchCRLF matches line by line with each line's trailing \r removed, so
// that $ and a pattern's end match at the end of the text, not before the
// \r, in files with Windows line endings.
func (m *lineMatcher) searchCRLF(data []byte, opts GrepOptions) []lineHit {
	var hits []lineHit
	for start := 0; start < len(data); {
		end := len(data)
		if nl := bytes.IndexByte(data[start:], '\n'); nl >= 0 {
			end = start + nl
		}
		if m.re.Match(bytes.TrimSuffix(data[start:end], []byte{'\r'})) {
			hits = append(hits, lineHit{start, end})
			if opts.Mode == GrepFilesWithMatches {
				break
			}
		}
		start = end + 1
	}
	return hits
}

// next returns the offset of the next possible match at or after pos and
// where that match ends (-1 when only a prefilter candidate is known), or
// -1 when there is none.
func (m *lineMatcher) next(data []byte, pos int) (at, end int) {
	switch {
	case m.literal != nil:
		if i := bytes.Index(data[pos:], m.literal); i >= 0 {
			return pos + i, pos + i + len(m.literal)
		}
	case m.required != nil:
		if i := bytes.Index(data[pos:], m.required); i >= 0 {
			return pos + i, -1
		}
	default:
		if loc := m.re.FindIndex(data[pos:]); loc != nil {
			return pos + loc[0], pos + loc[1]
		}
	}
	return -1, -1
}

// fileFilter keeps the files a Glob and a Type allow.
type fileFilter struct {
	glob    string
	exclude bool
	byName  bool
	types   []string
}

func newFileFilter(opts GrepOptions) (*fileFilter, error) {
	f := &fileFilter{glob: opts.Glob}
	if g, ok := strings.CutPrefix(f.glob, "!"); ok {
		f.glob, f.exclude = g, true
	}
	f.glob = strings.TrimPrefix(f.glob, "./")
	f.byName = !strings.Contains(f.glob, "/")
	if f.glob != "" && !doublestar.ValidatePattern(f.glob) {
		return nil, errArgument("grep", opts.Path, "invalid glob %q", opts.Glob)
	}
	if opts.Type != "" {
		var ok bool
		if f.types, ok = GrepTypes[opts.Type]; !ok {
			known := make([]string, 0, len(GrepTypes))
			for t := range GrepTypes {
				known = append(known, t)
			}
			slices.Sort(known)
			return nil, errArgument("grep", opts.Path, "unknown file type %q; known types: %s", opts.Type, strings.Join(known, ", "))
		}
	}
	return f, nil
}

// keep reports whether the file at rel (relative to the search path) is
// searched.
func (f *fileFilter) keep(rel string) bool {
	name := path.Base(rel)
	if f.glob != "" {
		subject := rel
		if f.byName {
			subject = name
		}
		ok, _ := doublestar.Match(f.glob, subject)
		if ok == f.exclude {
			return false
		}
	}
	if f.types != nil {
		return slices.ContainsFunc(f.types, func(g string) bool {
			ok, _ := doublestar.Match(g, name)
			return ok
		})
	}
	return true
}
