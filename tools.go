package agentbackend

import (
	"bytes"
	"context"
	"fmt"
	"hash/maphash"
	"path"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/agentbackend/agentbackend/internal/pathjail"
)

// The agent tools: what harnesses give a model besides read and write —
// ls with metadata, numbered reads with paging, exact-string edits, glob and
// grep. Each works on any FileBackend through its ordinary methods, and uses
// a backend's own faster implementation when it has one (Globber, Grepper,
// InfoLister). The MCP server and the plain tool definitions are built on
// these functions, so each tool behaves the same everywhere.

// Globber is an optional interface for backends that match glob patterns
// themselves (next to the data, or through an index) instead of listing
// every directory through ReadDir. Glob uses it when present; it must
// behave exactly like the generic implementation.
type Globber interface {
	Glob(ctx context.Context, pattern, dir string) ([]string, error)
}

// Grepper is an optional interface for backends that search file contents
// themselves instead of reading every file through Read. Grep uses it when
// present; it must behave exactly like the generic implementation.
type Grepper interface {
	Grep(ctx context.Context, opts GrepOptions) (*GrepResult, error)
}

// LsEntry is one entry of Ls.
type LsEntry struct {
	Name    string    // base name
	Path    string    // path relative to the backend root, slash-separated
	IsDir   bool      // a directory, or a link to one
	Symlink bool      // a symbolic link (described by its target where the backend follows it)
	Size    int64     // bytes, for files
	ModTime time.Time // last modification
}

// Ls lists a directory as ls does, for a person or a model: its entries
// sorted by name, each with its kind and its path from the backend root;
// on a file, that file's one entry. With info, each entry has its Size and
// ModTime too. Without, those are zero and the listing may cost much less
// (a local directory: one read of it instead of a stat per entry), and a
// symbolic link may be described by its target (IsDir of a link to a
// directory) or not, depending on the backend: code that must not follow
// links checks Symlink. For names alone, use the backend's ReadDir; for
// io/fs (fs.ReadDir, fs.WalkDir), FS.
func Ls(ctx context.Context, b FileBackend, dir string, info bool) ([]LsEntry, error) {
	list := listTypes
	if info {
		list = readDirInfo
	}
	rel, err := resolve(cleanRoot(b.RootDir()), "ls", dir)
	if err != nil {
		return nil, err
	}
	infos, err := list(ctx, b, dir)
	if err != nil {
		// A file is listed as itself, like ls does.
		if fi, serr := b.Stat(ctx, dir); serr == nil && !fi.IsDir {
			fi.Name = path.Base(rel)
			return []LsEntry{lsEntry(fi, rel)}, nil
		}
		return nil, err
	}
	entries := make([]LsEntry, len(infos))
	for i, fi := range infos {
		entries[i] = lsEntry(fi, pathjail.JoinRel(rel, fi.Name))
	}
	return entries, nil
}

func lsEntry(fi FileInfo, path string) LsEntry {
	return LsEntry{Name: fi.Name, Path: path, IsDir: fi.IsDir, Symlink: fi.Symlink, Size: fi.Size, ModTime: fi.ModTime}
}

// DefaultReadLimit is how many lines ReadLines returns when no limit is
// given.
const DefaultReadLimit = 2000

// MaxLineLength is the longest line ReadLines shows whole; longer lines are
// cut with a marker saying how long they were.
const MaxLineLength = 2000

// ReadOptions pages through a file by lines.
type ReadOptions struct {
	Offset int // first line to return, 1-based; 0 means 1
	Limit  int // how many lines; 0 means DefaultReadLimit
}

// check refuses the negative numbers that would otherwise read as the
// defaults.
func (o ReadOptions) check(path string) error {
	if o.Offset < 0 {
		return errArgument("read", path, "ReadOptions.Offset is %d, want 1 or more (0 means 1)", o.Offset)
	}
	if o.Limit < 0 {
		return errArgument("read", path, "ReadOptions.Limit is %d, want 1 or more (0 means %d)", o.Limit, DefaultReadLimit)
	}
	return nil
}

// Page is a run of a text file's lines, read by ReadLines. Its String
// method shows it to a model, numbered.
type Page struct {
	Lines     []string // the lines, without line endings (a trailing \r is dropped)
	First     int      // line number of Lines[0], 1-based
	Total     int      // lines in the whole file
	Size      int64    // bytes in the whole file
	Truncated bool     // some line was longer than MaxLineLength and was cut
}

// Last returns the line number of the page's last line (First-1 when empty).
func (p *Page) Last() int { return p.First + len(p.Lines) - 1 }

// WholeFile reports whether the page holds every line of the file.
func (p *Page) WholeFile() bool { return p.First == 1 && len(p.Lines) >= p.Total }

// BeyondEnd reports whether the page starts past the file's last line.
func (p *Page) BeyondEnd() bool { return p.First > p.Total && p.Total > 0 }

// ReadLines returns a page of a text file's lines. Lines longer than
// MaxLineLength are cut, ending with "… [line truncated, original N chars]".
// A binary file is refused with INVALID_ARGUMENT rather than dumped, and so
// is a negative Offset or Limit. An offset past the end is not an error:
// the page is empty (BeyondEnd says so), as the MCP tool read_text_file
// answers it.
func ReadLines(ctx context.Context, b FileBackend, path string, opts ReadOptions) (*Page, error) {
	if err := opts.check(path); err != nil {
		return nil, err
	}
	data, err := b.Read(ctx, path)
	if err != nil {
		return nil, err
	}
	if isBinary(data) {
		return nil, errArgument("read", path, "a binary file (%d bytes); read it as bytes, not as text lines", len(data))
	}
	offset, limit := max(opts.Offset, 1), opts.Limit
	if limit <= 0 {
		limit = DefaultReadLimit
	}
	p := &Page{First: offset, Size: int64(len(data)), Total: countLines(data)}
	rest := data
	for line := 1; len(rest) > 0 && line < offset+limit; line++ {
		var text []byte
		text, rest, _ = bytes.Cut(rest, []byte{'\n'})
		if line < offset {
			continue
		}
		text = bytes.TrimSuffix(text, []byte{'\r'})
		s := string(text)
		if utf8.RuneCountInString(s) > MaxLineLength {
			s = truncateLine(s)
			p.Truncated = true
		}
		p.Lines = append(p.Lines, s)
	}
	return p, nil
}

// String returns the page numbered like `cat -n`: each line is its number
// right-aligned in six columns, a tab, and the line. When the page does
// not cover the whole file a footer says which lines were shown, how many
// there are, and how to read on; a page past the end is that line alone;
// an empty file gives "".
func (p *Page) String() string {
	var sb strings.Builder
	for i, line := range p.Lines {
		fmt.Fprintf(&sb, "%6d\t%s\n", p.First+i, line)
	}
	switch {
	case p.BeyondEnd():
		fmt.Fprintf(&sb, "[Offset %d is beyond the end of the file (%d lines).]\n", p.First, p.Total)
	case !p.WholeFile() && p.Total > 0:
		fmt.Fprintf(&sb, "\n[Showing lines %d-%d of %d.", p.First, p.Last(), p.Total)
		if p.Last() < p.Total {
			fmt.Fprintf(&sb, " Use offset=%d to read more.", p.Last()+1)
		}
		sb.WriteString("]\n")
	}
	return sb.String()
}

// truncateLine cuts a line at MaxLineLength characters with the marker the
// reference daemon uses, so the model can tell the content is partial.
func truncateLine(s string) string {
	n := utf8.RuneCountInString(s)
	cut := 0
	for i := range s {
		if cut == MaxLineLength {
			return fmt.Sprintf("%s… [line truncated, original %d chars]", s[:i], n)
		}
		cut++
	}
	return s
}

// countLines counts lines the way an editor does: a final line without a
// newline counts, a trailing newline does not start another.
func countLines(data []byte) int {
	if len(data) == 0 {
		return 0
	}
	n := bytes.Count(data, []byte{'\n'})
	if data[len(data)-1] != '\n' {
		n++
	}
	return n
}

// sniffLen is how much of a file decides whether it is binary, as in git
// and ripgrep.
const sniffLen = 8000

// isBinary reports whether data looks binary: a NUL byte in its first
// sniffLen bytes, or bytes there that are not UTF-8.
func isBinary(data []byte) bool {
	head := data[:min(len(data), sniffLen)]
	if bytes.IndexByte(head, 0) >= 0 {
		return true
	}
	if len(head) < len(data) {
		// Don't hold a rune cut in half by the window against the file.
		for i := 1; i < utf8.UTFMax && i <= len(head); i++ {
			if utf8.RuneStart(head[len(head)-i]) {
				if !utf8.FullRune(head[len(head)-i:]) {
					head = head[:len(head)-i]
				}
				break
			}
		}
	}
	return !utf8.Valid(head)
}

// pathLocks serialises read-modify-write tool calls (Edit) on the same
// file. Locks are striped by a hash of the backend type and the file's
// absolute path, so two views of one file (a scope and its parent) share a
// lock.
var (
	pathLocks    [64]sync.Mutex
	pathLockSeed = maphash.MakeSeed()
)

func lockPath(b FileBackend, path string) (unlock func()) {
	key := string(b.Type()) + "\x00" + path
	if abs, err := ResolvePath(b.RootDir(), path); err == nil {
		key = string(b.Type()) + "\x00" + abs
	}
	m := &pathLocks[maphash.String(pathLockSeed, key)%uint64(len(pathLocks))]
	m.Lock()
	return m.Unlock
}

// Glob returns the paths under dir matching a doublestar pattern (`*`, `?`,
// `[a-z]`, `{a,b}`, `**` for any number of directories), relative to dir
// and sorted. Files and directories both match; version-control directories
// (.git, .hg, .svn, ...) are not searched. A bad pattern is
// INVALID_ARGUMENT.
func Glob(ctx context.Context, b FileBackend, pattern, dir string) ([]string, error) {
	if g, ok := b.(Globber); ok {
		return g.Glob(ctx, pattern, dir)
	}
	return globTree(ctx, backendTree(b), pattern, dir)
}
