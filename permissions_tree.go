package agentbackend

import (
	"context"
	"io/fs"
	"path"
	"slices"

	"github.com/agentbackend/agentbackend/internal/pathjail"
)

// The checks of operations on many paths at once: renames and recursive
// removes (which carry a whole tree), and the filters of listings and
// searches.

// checkRename checks a rename: read and delete on the source, write on the
// target, and the same for everything a directory carries along.
func (s *ScopedBackend) checkRename(ctx context.Context, inFrom, inTo, from, to string, o *opCheck) error {
	for _, pc := range []pathCheck{
		{access: AccessRead, in: inFrom, p: from, other: to},
		{access: AccessDelete, in: inFrom, p: from, other: to},
		{access: AccessWrite, in: inTo, p: to, other: from},
	} {
		if _, err := s.checkPath(ctx, "rename", pc, o); err != nil {
			return err
		}
	}
	return s.checkTree(ctx, "rename", inFrom, inTo, from, o)
}

// checkRemove checks a remove: delete on the path and, when it is
// recursive, on everything below.
func (s *ScopedBackend) checkRemove(ctx context.Context, in, p string, recursive bool, o *opCheck) error {
	if _, err := s.checkPath(ctx, "rm", pathCheck{access: AccessDelete, in: in, p: p}, o); err != nil {
		return err
	}
	if !recursive {
		return nil
	}
	return s.checkTree(ctx, "rm", in, "", p, o)
}

// checkTree checks what a recursive remove (to == "") or a rename of the
// directory from does to everything below it: each entry needs delete
// (and, for a rename, read at its old place and write at its new one). It
// walks the tree only when some layer has a rule that could name an entry
// below from or to; an operation on a tree costs a walk of it anyway.
// Entries answering Ask are asked about once, as the tree.
func (s *ScopedBackend) checkTree(ctx context.Context, op, from, to, p string, o *opCheck) error {
	accesses := []Access{AccessDelete}
	if to != "" {
		accesses = []Access{AccessRead, AccessDelete, AccessWrite}
	}
	if !s.perms.mayRuleBelow(accesses, from, to) {
		return nil
	}
	var found *verdict
	var foundAccess Access
	var foundPath string
	err := walkBase(ctx, s.fs, s.fsPath(from), func(rel string) bool {
		for _, a := range accesses {
			in := pathjail.JoinRel(from, rel)
			if a == AccessWrite {
				in = pathjail.JoinRel(to, rel)
			}
			v := s.perms.decidePath(a, in)
			if v.act != Allow && (found == nil || v.stricter(*found)) {
				found, foundAccess, foundPath = &v, a, in
				if v.act == Deny {
					return false
				}
			}
		}
		return true
	})
	if err != nil {
		return withPath(err, from, p)
	}
	if found == nil {
		return nil
	}
	pc := pathCheck{access: foundAccess, in: foundPath, p: p}
	if found.act == Deny || found.outside {
		return s.denied(op, pc, *found, "", o)
	}
	return s.askPath(ctx, op, pc, foundPath, o)
}

// mayRuleBelow reports whether some layer has, for one of the accesses, a
// non-Allow rule that could match below from (or below to, for write), or
// a non-Allow default beside rules (which an entry below could escape).
func (c *permChain) mayRuleBelow(accesses []Access, from, to string) bool {
	for _, a := range accesses {
		dir := from
		if a == AccessWrite {
			dir = to
		}
		for _, l := range c.layers {
			pol := &l.perms.pol[a.index()]
			if pol.trivial {
				continue
			}
			sub, ok := layerPath(l.prefix, dir)
			if !ok {
				return true
			}
			if pol.def != Allow && len(pol.rules) > 0 {
				return true
			}
			for i := range pol.rules {
				if r := &pol.rules[i]; r.Action != Allow && r.glob.mayMatchBelow(sub) {
					return true
				}
			}
		}
	}
	return false
}

// walkBase calls visit with the path (relative to dir) of every entry
// below the directory dir of b, without following links, until visit
// returns false. A dir that is not a directory has nothing below it.
func walkBase(ctx context.Context, b FileBackend, dir string, visit func(rel string) bool) error {
	var walkDir func(rel string, depth int) (bool, error)
	walkDir = func(rel string, depth int) (bool, error) {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		infos, err := readDirInfo(ctx, b, pathjail.JoinRel(dir, rel))
		if err != nil {
			return true, nil // not a directory, vanished or unreadable: nothing to carry
		}
		for _, fi := range infos {
			child := pathjail.JoinRel(rel, fi.Name)
			if !visit(child) {
				return false, nil
			}
			if fi.IsDir && fi.Mode&fs.ModeSymlink == 0 && depth < maxWalkDepth {
				if more, err := walkDir(child, depth+1); !more || err != nil {
					return false, err
				}
			}
		}
		return true, nil
	}
	_, err := walkDir(".", 0)
	return err
}

// entryFilter decides which entries of listings and searches a caller may
// see. Decisions are cached per path for a search's many lines.
type entryFilter struct {
	s       *ScopedBackend
	search  bool // Grep: list, read and search must allow outright
	cache   map[string]bool
	noCheck bool
}

// newEntryFilter returns the filter of a listing (search false) or a
// search, or one that keeps everything when no policy could hide an entry.
func (s *ScopedBackend) newEntryFilter(search bool) *entryFilter {
	f := &entryFilter{s: s, search: search}
	c := s.perms
	if c == nil {
		f.noCheck = true
		return f
	}
	accesses := []Access{AccessList, AccessRead}
	if search {
		accesses = append(accesses, AccessSearch)
	}
	f.noCheck = true
	for _, a := range accesses {
		if c.strict[a.index()] {
			f.noCheck = false
		}
	}
	return f
}

// keep reports whether the entry at in (relative to the base root) is
// shown.
func (f *entryFilter) keep(in string) bool {
	if f.noCheck {
		return true
	}
	if ok, hit := f.cache[in]; hit {
		return ok
	}
	ok := f.decide(in)
	if f.search {
		if f.cache == nil {
			f.cache = map[string]bool{}
		}
		f.cache[in] = ok
	}
	return ok
}

func (f *entryFilter) decide(in string) bool {
	accesses := [3]Access{AccessList, AccessRead, AccessSearch}
	n := 2
	if f.search {
		n = 3
	}
	for _, a := range accesses[:n] {
		v := f.s.perms.decidePath(a, in)
		switch v.act {
		case Deny:
			return false
		case Ask:
			sub, _ := layerPath(v.layer.prefix, in)
			d, known := v.layer.approvals.remembered(approvalKey{a, sub})
			if known && !d.Allows() || !known && f.search {
				return false
			}
		}
	}
	return true
}

// realBelow maps a path p at or below spelled (both relative to the base
// root) to the same place below real, where a link in spelled led.
func realBelow(spelled, real, p string) string {
	if spelled == real {
		return p
	}
	below, ok := belowOrSame(spelled, p)
	if !ok {
		return p
	}
	return path.Clean(pathjail.JoinRel(real, below))
}

// filter keeps the files of a search result for which keep is true.
func (r *GrepResult) filter(keep func(path string) bool) {
	r.Files = slices.DeleteFunc(r.Files, func(p string) bool { return !keep(p) })
	r.Counts = slices.DeleteFunc(r.Counts, func(c GrepFileCount) bool { return !keep(c.Path) })
	r.Lines = slices.DeleteFunc(r.Lines, func(l GrepLine) bool { return !keep(l.Path) })
}
