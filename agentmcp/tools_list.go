package agentmcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"syscall"

	ab "github.com/agentbackend/agentbackend"
	"github.com/bmatcuk/doublestar/v4"
)

// The tools that describe the workspace: list_directory,
// list_directory_with_sizes, directory_tree, search_files, get_file_info
// and list_allowed_directories.

var (
	listDirectorySpec = &spec{
		name: "list_directory", title: "List Directory",
		desc: "Get a detailed listing of all files and directories in a specified path. " +
			"Results clearly distinguish between files and directories with [FILE] and [DIR] " +
			"prefixes. This tool is essential for understanding directory structure and " +
			"finding specific files within a directory. Only works within allowed directories.",
		input: mustSchema(pathOnlySchema), output: textOutput, ann: readOnly,
		run: listDirectory,
	}
	listDirectoryWithSizesSpec = &spec{
		name: "list_directory_with_sizes", title: "List Directory with Sizes",
		desc: "Get a detailed listing of all files and directories in a specified path, including sizes. " +
			"Results clearly distinguish between files and directories with [FILE] and [DIR] " +
			"prefixes. This tool is useful for understanding directory structure and " +
			"finding specific files within a directory. Only works within allowed directories.",
		input: mustSchema(listSizesSchema), output: textOutput, ann: readOnly,
		run: listDirectoryWithSizes,
	}
	directoryTreeSpec = &spec{
		name: "directory_tree", title: "Directory Tree",
		desc: "Get a recursive tree view of files and directories as a JSON structure. " +
			"Each entry includes 'name', 'type' (file/directory), and 'children' for directories. " +
			"Files have no children array, while directories always have a children array (which may be empty). " +
			"The output is formatted with 2-space indentation for readability. Only works within allowed directories.",
		input: mustSchema(treeSchema), output: textOutput, ann: readOnly,
		run: directoryTree,
	}
	searchFilesSpec = &spec{
		name: "search_files", title: "Search Files",
		desc: "Recursively search for files and directories matching a pattern. " +
			"The patterns should be glob-style patterns that match paths relative to the working directory. " +
			"Use pattern like '*.ext' to match files in current directory, and '**/*.ext' to match files in all subdirectories. " +
			"Returns full paths to all matching items. Great for finding files when you don't know their exact location. " +
			"Only searches within allowed directories.",
		input: mustSchema(searchSchema), output: textOutput, ann: readOnly,
		run: searchFiles,
	}
	getFileInfoSpec = &spec{
		name: "get_file_info", title: "Get File Info",
		desc: "Retrieve detailed metadata about a file or directory. Returns comprehensive " +
			"information including size, creation time, last modified time, permissions, " +
			"and type. This tool is perfect for understanding file characteristics " +
			"without reading the actual content. Only works within allowed directories.",
		input: mustSchema(pathOnlySchema), output: textOutput, ann: readOnly,
		run: getFileInfo,
	}
	listAllowedDirectoriesSpec = &spec{
		name: "list_allowed_directories", title: "List Allowed Directories",
		desc: "Returns the list of directories that this server is allowed to access. " +
			"Subdirectories within these allowed directories are also accessible. " +
			"Use this to understand which directories and their nested paths are available " +
			"before trying to access files.",
		input: mustSchema(noArgsSchema), output: textOutput, ann: readOnly,
		run: func(_ context.Context, t *toolset, _ map[string]any) (*Result, error) {
			return text("Allowed directories:\n" + t.root), nil
		},
	}
)

// list returns a directory's entries sorted by name (byte order, as Node's
// readdir returns them). A file is ENOTDIR, as readdir makes it.
// list lists p for a tool: with each entry's metadata when withInfo, else
// its kind only (cheaper).
func (t *toolset) list(ctx context.Context, tool, p string, withInfo bool) ([]ab.LsEntry, error) {
	entries, err := ab.Ls(ctx, t.b, p, withInfo)
	if err != nil {
		return nil, t.fileError(tool, err, "scandir", p)
	}
	if len(entries) == 1 && !entries[0].IsDir && entries[0].Path == t.rel(p) {
		// Ls lists a file as itself, as ls does; readdir refuses it.
		return nil, t.fileError(tool, &fs.PathError{Op: "scandir", Path: p, Err: syscall.ENOTDIR}, "scandir", p)
	}
	return entries, nil
}

// rel is p relative to the root ("." for the root), as LsEntry.Path is.
func (t *toolset) rel(p string) string {
	abs := t.abs(p)
	if abs == t.root {
		return "."
	}
	return strings.TrimPrefix(abs, strings.TrimSuffix(t.root, "/")+"/")
}

// isDir reports whether an entry lists as a directory: as in the reference,
// whose readdir types a symbolic link as a link, a link never does (and
// directory_tree does not descend into it, so a link back up cannot loop).
func isDir(e ab.LsEntry) bool { return e.IsDir && !e.Symlink }

func kind(e ab.LsEntry) string {
	if isDir(e) {
		return "[DIR]"
	}
	return "[FILE]"
}

func listDirectory(ctx context.Context, t *toolset, args map[string]any) (*Result, error) {
	entries, err := t.list(ctx, "list_directory", str(args, "path"), false)
	if err != nil {
		return nil, err
	}
	lines := make([]string, len(entries))
	for i, e := range entries {
		lines[i] = kind(e) + " " + e.Name
	}
	return text(strings.Join(lines, "\n")), nil
}

func listDirectoryWithSizes(ctx context.Context, t *toolset, args map[string]any) (*Result, error) {
	entries, err := t.list(ctx, "list_directory_with_sizes", str(args, "path"), true)
	if err != nil {
		return nil, err
	}
	sorted := slices.Clone(entries)
	if str(args, "sortBy") == "size" {
		slices.SortStableFunc(sorted, func(a, b ab.LsEntry) int { return int(min(max(b.Size-a.Size, -1), 1)) })
	} else {
		slices.SortStableFunc(sorted, func(a, b ab.LsEntry) int { return localeCompare(a.Name, b.Name) })
	}
	var sb strings.Builder
	files, dirs := 0, 0
	var total int64
	for _, e := range sorted {
		size := ""
		if isDir(e) {
			dirs++
		} else {
			files++
			total += e.Size
			size = padStart(formatSize(e.Size), 10)
		}
		sb.WriteString(kind(e) + " " + padEnd(e.Name, 30) + " " + size + "\n")
	}
	fmt.Fprintf(&sb, "\nTotal: %d files, %d directories\nCombined size: %s", files, dirs, formatSize(total))
	return text(sb.String()), nil
}

// treeNode is an entry of directory_tree; directories always have children.
type treeNode struct {
	Name     string       `json:"name"`
	Type     string       `json:"type"`
	Children *[]*treeNode `json:"children,omitempty"`
}

// defaultExcludes are agent-backend's directory_tree exclusions, used with
// includeDefaultExcludes.
var defaultExcludes = []string{
	".git", ".svn", ".hg", "node_modules", ".venv", "venv", "__pycache__", ".tox", ".nox",
	"dist", "build", ".next", ".nuxt", ".output", "target", ".cache", ".pytest_cache",
	".mypy_cache", ".ruff_cache", "coverage", ".coverage", "htmlcov", ".idea", ".vscode",
	".DS_Store", "*.egg-info", ".eggs",
}

func directoryTree(ctx context.Context, t *toolset, args map[string]any) (*Result, error) {
	root := str(args, "path")
	patterns := strs(args, "excludePatterns")
	if boolean(args, "includeDefaultExcludes") {
		patterns = append(slices.Clone(defaultExcludes), patterns...)
	}
	var build func(dir, rel string) ([]*treeNode, error)
	build = func(dir, rel string) ([]*treeNode, error) {
		entries, err := t.list(ctx, "directory_tree", dir, false)
		if err != nil {
			return nil, err
		}
		nodes := []*treeNode{}
		for _, e := range entries {
			childRel := e.Name
			if rel != "" {
				childRel = rel + "/" + e.Name
			}
			if excluded(childRel, patterns) {
				continue
			}
			n := &treeNode{Name: e.Name, Type: "file"}
			if isDir(e) {
				children, err := build(joinPath(dir, e.Name), childRel)
				if err != nil {
					return nil, err
				}
				n.Type, n.Children = "directory", &children
			}
			nodes = append(nodes, n)
		}
		return nodes, nil
	}
	tree, err := build(root, "")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(tree); err != nil {
		return nil, toolError("directory_tree", err.Error(), err)
	}
	return text(strings.TrimSuffix(buf.String(), "\n")), nil
}

// joinPath appends a name to a path as the client gave it.
func joinPath(dir, name string) string {
	if dir == "" || strings.HasSuffix(dir, "/") {
		return dir + name
	}
	return dir + "/" + name
}

// excluded is the filesystem server's directory_tree exclusion: a pattern
// with "*" is a glob on the path below the listed directory; any other
// pattern matches that path, or a name at any depth, or anything below it.
func excluded(rel string, patterns []string) bool {
	for _, p := range patterns {
		if strings.Contains(p, "*") {
			if globMatch(p, rel) {
				return true
			}
			continue
		}
		if globMatch(p, rel) || globMatch("**/"+p, rel) || globMatch("**/"+p+"/**", rel) {
			return true
		}
	}
	return false
}

// globMatch matches like minimatch with {dot: true}, which the filesystem
// server uses; a bad pattern matches nothing. Unlike doublestar, minimatch's
// "dir/**" matches what is below dir but not dir itself.
func globMatch(pattern, name string) bool {
	ok, _ := doublestar.Match(pattern, name)
	if ok {
		if prefix, found := strings.CutSuffix(pattern, "/**"); found {
			if self, _ := doublestar.Match(prefix, name); self {
				return false
			}
		}
	}
	return ok
}

func searchFiles(ctx context.Context, t *toolset, args map[string]any) (*Result, error) {
	const tool = "search_files"
	dir, pattern := str(args, "path"), str(args, "pattern")
	fi, err := t.b.Stat(ctx, dir)
	if err != nil {
		return nil, t.fileError(tool, err, "scandir", dir)
	}
	if !fi.IsDir {
		return nil, t.fileError(tool, &fs.PathError{Op: "scandir", Path: dir, Err: syscall.ENOTDIR}, "scandir", dir)
	}
	matches, err := ab.Glob(ctx, t.b, pattern, dir)
	if err != nil {
		if ab.ErrorCode(err) == ab.CodeInvalidArgument {
			return nil, toolError(tool, err.Error(), err)
		}
		return nil, t.fileError(tool, err, "scandir", dir)
	}
	excludes := strs(args, "excludePatterns")
	kept := matches[:0]
	for _, m := range matches {
		if !underExcluded(m, excludes) {
			kept = append(kept, m)
		}
	}
	base := strings.TrimSuffix(t.abs(dir), "/")
	results := make([]string, len(kept))
	for i, m := range kept {
		results[i] = base + "/" + m
	}
	switch str(args, "sortBy") {
	case "path":
		slices.SortStableFunc(results, localeCompare)
	case "mtime":
		mtimes := make(map[string]int64, len(kept))
		for i, m := range kept {
			if fi, err := t.b.Stat(ctx, joinPath(dir, m)); err == nil {
				mtimes[results[i]] = fi.ModTime.UnixNano()
			}
		}
		slices.SortStableFunc(results, func(a, b string) int {
			return int(min(max(mtimes[b]-mtimes[a], -1), 1))
		})
	default:
		// The filesystem server's order: a depth-first walk, each
		// directory's entries by name, a directory before its contents.
		slices.SortFunc(results, compareSegments)
	}
	if len(results) == 0 {
		return text("No matches found"), nil
	}
	return text(strings.Join(results, "\n")), nil
}

// underExcluded reports whether rel or a directory above it matches an
// exclude pattern: the filesystem server skips an excluded directory with
// everything in it.
func underExcluded(rel string, patterns []string) bool {
	if len(patterns) == 0 {
		return false
	}
	for p := rel; ; {
		for _, pat := range patterns {
			if globMatch(pat, p) {
				return true
			}
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			return false
		}
		p = p[:i]
	}
}

// compareSegments orders paths as a depth-first walk visits them: by their
// elements in turn, byte order within an element, a parent before its
// children.
func compareSegments(a, b string) int {
	for {
		ea, ra, moreA := strings.Cut(a, "/")
		eb, rb, moreB := strings.Cut(b, "/")
		if c := strings.Compare(ea, eb); c != 0 {
			return c
		}
		switch {
		case !moreA && !moreB:
			return 0
		case !moreA:
			return -1
		case !moreB:
			return 1
		}
		a, b = ra, rb
	}
}

func getFileInfo(ctx context.Context, t *toolset, args map[string]any) (*Result, error) {
	p := str(args, "path")
	fi, err := t.b.Stat(ctx, p)
	if err != nil {
		return nil, t.fileError("get_file_info", err, "stat", p)
	}
	// Backends report one time, the modification time; it stands in for
	// the creation and access times the filesystem server also shows.
	date := jsDate(fi.ModTime)
	return text(fmt.Sprintf("size: %d\ncreated: %s\nmodified: %s\naccessed: %s\nisDirectory: %t\nisFile: %t\npermissions: %03o",
		fi.Size, date, date, date, fi.IsDir, !fi.IsDir && fi.Mode.Type() == 0, fi.Mode.Perm())), nil
}
