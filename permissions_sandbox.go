package agentbackend

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/agentbackend/agentbackend/internal/pathjail"
	"github.com/agentbackend/agentbackend/internal/sandbox"
)

// Permissions reach into the bubblewrap sandbox: before a command runs
// through a scope over a LocalBackend with bwrap isolation, the scope
// walks its directory and gives the sandbox masks (see sandbox.Mask):
//
//   - a path whose read access is not allowed (Deny, or Ask: a command
//     cannot stop to ask) is shown empty: a file as an empty read-only
//     file, a directory whose every entry is denied as an empty read-only
//     directory. `cat .env`, `grep -r`, `tar` and `cp` read nothing, and a
//     hard link to it fails (EXDEV), so the file API cannot be led to it
//     either;
//   - a path whose write or delete access is not allowed is shown
//     read-only (and cannot be removed or renamed: it is a mount point); a
//     directory whose every entry is so, read-only as a whole, so nothing
//     can be created in it either;
//   - the directories above those paths are bound onto themselves, still
//     read-write: as mount points they cannot be renamed or removed, so a
//     command cannot move a masked path, with its directory, to a name the
//     rules do not cover (where the next command would see it unmasked).
//
// Paths are judged when the command starts: files it creates, and files
// renamed to a protected name meanwhile, are not covered. A directory the
// walk cannot read (mode 000, which its owner may change back) is masked
// whole when a rule may apply below it. Symbolic links
// are not masked: reading through one reaches the masked target. Under
// isolation none or software, and on other backends, nothing reaches into
// the command: it can read and write what the file API denies, and the
// scope says so once in the log.

// Limits of one command's masks: each is a mount, and each read-only one
// a descriptor passed to bwrap.
const (
	maxSandboxMasks  = 4096
	maxReadOnlyMasks = 512
)

// maskedAccesses are the accesses whose rules reach into the sandbox.
var maskedAccesses = []Access{AccessRead, AccessWrite, AccessDelete}

// needsMasks reports whether some layer of c restricts an access that
// reaches into the sandbox.
func (c *permChain) needsMasks() bool {
	for _, a := range maskedAccesses {
		if c.strict[a.index()] {
			return true
		}
	}
	return false
}

// maskExec gives a command run through the scope the means to compute its
// masks (ExecOptions.masker: the LocalBackend below calls it with the very
// directory the sandbox binds), or, when the backend below cannot apply
// them, logs once that the command can reach what the file API denies.
func (s *ScopedBackend) maskExec(eo *ExecOptions) {
	if s.perms == nil || !s.perms.needsMasks() {
		return
	}
	lb, ok := s.fs.(*LocalBackend)
	if !ok || lb.bwrap == nil {
		s.unmaskedOnce.Do(func() {
			why, log := "the backend is "+string(s.base.Type()), slog.Default()
			if ok {
				why, log = "isolation is "+string(lb.isolation), lb.log
			}
			log.Warn("agentbackend: commands run through this scope can read and write paths its permissions deny to the file API, because "+why+"; only bwrap isolation applies permissions inside commands",
				"scope", s.root)
		})
		return
	}
	c, fsRoot := s.perms, s.fsRoot
	eo.masker = func(ctx context.Context, top maskDir) ([]sandbox.Mask, error) {
		return c.masks(ctx, top, fsRoot)
	}
}

// maskDir is an open directory of the tree a mask walk reads.
type maskDir interface {
	ReadDir(n int) ([]fs.DirEntry, error)
	// Sub opens the directory name in it, not following a link.
	Sub(name string) (maskDir, error)
	Close() error
}

// masks walks the open directory top, the root of the command's
// workspace, which is the directory base relative to the base backend's
// root, and returns what the sandbox must hide or protect, parents before
// children, with paths relative to top.
func (c *permChain) masks(ctx context.Context, top maskDir, base string) ([]sandbox.Mask, error) {
	var out []sandbox.Mask
	readOnly := 0
	mounted := map[string]bool{".": true} // masks and pins so far
	add := func(m sandbox.Mask) error {
		// The directories above a mask are pinned first (see
		// sandbox.Mask.Pin): renaming one would move the mask along with
		// the path, to a name the next command's walk does not judge.
		for i := 0; i < len(m.Path); i++ {
			if m.Path[i] == '/' && !mounted[m.Path[:i]] {
				mounted[m.Path[:i]] = true
				out = append(out, sandbox.Mask{Path: m.Path[:i], Dir: true, Pin: true})
				readOnly++
			}
		}
		mounted[m.Path] = true
		out = append(out, m)
		if !m.Hide {
			readOnly++
		}
		if len(out) > maxSandboxMasks || readOnly > maxReadOnlyMasks {
			return &Error{Code: CodeExecError, Op: "exec", Path: base,
				Message: fmt.Sprintf("Command not started: the permissions protect more than %d paths (or %d read-only ones) here, each a mount of the sandbox; narrow the read, write and delete rules", maxSandboxMasks, maxReadOnlyMasks)}
		}
		return nil
	}
	// A directory the walk cannot read, whose user (the command's) may
	// chmod it back, is masked whole: hidden when a read rule may apply
	// below it, else read-only when a write or delete rule may.
	blind := func(rel, in string, protected bool) error {
		if c.mayRuleBelow([]Access{AccessRead}, in, "") {
			return add(sandbox.Mask{Path: rel, Dir: true, Hide: true})
		}
		if !protected && c.mayRuleBelow([]Access{AccessWrite, AccessDelete}, in, in) {
			return add(sandbox.Mask{Path: rel, Dir: true})
		}
		return nil
	}
	// A directory (rel to top, in: to the base root) itself, then what
	// is below it.
	var visit func(d maskDir, rel, in string, depth int, protected bool) error
	visit = func(d maskDir, rel, in string, depth int, protected bool) error {
		if c.coversBelow(AccessRead, in) {
			return add(sandbox.Mask{Path: rel, Dir: true, Hide: true})
		}
		if !protected && (c.coversBelow(AccessWrite, in) || c.coversBelow(AccessDelete, in)) {
			protected = true
			if err := add(sandbox.Mask{Path: rel, Dir: true}); err != nil {
				return err
			}
		}
		readBelow := c.mayRuleBelow([]Access{AccessRead}, in, "")
		writeBelow := !protected && c.mayRuleBelow([]Access{AccessWrite, AccessDelete}, in, in)
		if (!readBelow && !writeBelow) || depth >= maxWalkDepth {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		entries, err := d.ReadDir(-1)
		if err != nil {
			return blind(rel, in, protected)
		}
		for _, e := range entries {
			p, pin := pathjail.JoinRel(rel, e.Name()), pathjail.JoinRel(in, e.Name())
			switch t := e.Type(); {
			case t&fs.ModeSymlink != 0:
				continue // the link's target is judged where it lies
			case t.IsDir():
				sub, err := d.Sub(e.Name())
				if errors.Is(err, fs.ErrPermission) {
					if err := blind(p, pin, protected); err != nil {
						return err
					}
					continue
				}
				if err != nil {
					continue // vanished, or replaced by a link
				}
				err = visit(sub, p, pin, depth+1, protected)
				sub.Close()
				if err != nil {
					return err
				}
			case c.decidePath(AccessRead, pin).act != Allow:
				if err := add(sandbox.Mask{Path: p, Hide: true}); err != nil {
					return err
				}
			case !protected && (c.decidePath(AccessWrite, pin).act != Allow || c.decidePath(AccessDelete, pin).act != Allow):
				if err := add(sandbox.Mask{Path: p}); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return out, visit(top, ".", base, 0, false)
}

// coversBelow reports whether every path strictly below dir (relative to
// the base root) is refused access a by some layer: a layer whose rules
// cannot allow anything below dir and that refuses it all, by a rule
// covering dir's whole subtree or by its default.
func (c *permChain) coversBelow(a Access, dir string) bool {
	for _, l := range c.layers {
		pol := &l.perms.pol[a.index()]
		if pol.trivial {
			continue
		}
		sub, ok := layerPath(l.prefix, dir)
		if !ok {
			continue
		}
		if policyCoversBelow(pol, sub) {
			return true
		}
	}
	return false
}

// policyCoversBelow reports whether pol refuses every path strictly below
// sub (relative to its layer, "" for the root): taking the rules in order,
// a refusing rule that covers the subtree comes before any allowing rule
// that could match in it, or the default refuses and no rule allows.
func policyCoversBelow(pol *compiledPolicy, sub string) bool {
	for i := range pol.rules {
		r := &pol.rules[i]
		if r.Action == Allow {
			if r.glob.mayMatchBelow(sub) {
				return false
			}
			continue
		}
		for j := range r.glob {
			if r.glob[j].coversBelow(sub) {
				return true
			}
		}
	}
	return pol.def != Allow
}

// coversBelow reports whether the pattern matches every path strictly
// below dir ("" for the root): "**", "d/**" and "**/d/**" with dir at or
// below a match, and any "p/**" whose p matches dir or one of its parents.
func (m *globMatcher) coversBelow(dir string) bool {
	switch m.kind {
	case globAny:
		return true
	case globDir:
		return dir == m.lit || strings.HasPrefix(dir, m.dirPre)
	case globSegment:
		return hasSegment(dir, m.lit)
	case globGeneral:
		p, ok := strings.CutSuffix(m.pattern, "/**")
		if !ok || dir == "" {
			return false
		}
		for a := dir; ; {
			if match, _ := doublestar.Match(p, a); match {
				return true
			}
			i := strings.LastIndexByte(a, '/')
			if i < 0 {
				return false
			}
			a = a[:i]
		}
	}
	return false
}
