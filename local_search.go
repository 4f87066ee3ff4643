package agentbackend

import "context"

// LocalBackend searches its directory itself: Glob and Grep start at a
// directory opened through its os.Root and walk down one directory at a
// time, opening each entry by its single name relative to its directory's
// descriptor without following links — one openat per file rather than one
// per path component, and no way out of the workspace. Symbolic links are
// listed but never followed by these walks, as ripgrep does: Glob can match
// a link, Grep does not search through one.

var (
	_ Globber = (*LocalBackend)(nil)
	_ Grepper = (*LocalBackend)(nil)
)

// Glob matches a doublestar pattern below dir (see the package-level Glob).
func (b *LocalBackend) Glob(ctx context.Context, pattern, dir string) ([]string, error) {
	if err := b.begin(ctx, CodeLsFailed, "glob", dir); err != nil {
		return nil, err
	}
	return globTree(ctx, localTree{b}, pattern, dir)
}

// Grep searches file contents (see the package-level Grep).
func (b *LocalBackend) Grep(ctx context.Context, opts GrepOptions) (*GrepResult, error) {
	if err := b.begin(ctx, CodeReadFailed, "grep", opts.Path); err != nil {
		return nil, err
	}
	return grepTree(ctx, localTree{b}, opts)
}

// localTree is the search tree of a LocalBackend. Its directories
// (localDir) are platform-specific: descriptors read with *at system calls
// on unix, os.Root elsewhere.
type localTree struct{ b *LocalBackend }

func (t localTree) root() string { return t.b.root }

func (t localTree) stat(ctx context.Context, rel string) (FileInfo, error) {
	return t.b.Stat(ctx, rel)
}

func (t localTree) readFile(ctx context.Context, rel string) ([]byte, error) {
	return t.b.Read(ctx, rel)
}
