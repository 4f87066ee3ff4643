package daemon

import (
	"errors"
	"os"
	"strings"

	"github.com/agentbackend/agentbackend/internal/pathjail"
)

// jail is the view of the workspace an SSH session works in: the
// workspace itself, or a scope of it (the static Config.ScopePath, then
// the levels a client named with sshext.ScopeRequest). Paths
// are resolved with the one path rule (internal/pathjail) against the
// jail's directory, and then beneath a handle of that directory (os.Root),
// so a symbolic link cannot lead outside it: for a scope, not even to the
// rest of the workspace. A scope's directory is opened anew for each
// operation, one level beneath the other, from the workspace's os.Root,
// the same real directory as the daemon's LocalBackend.
type jail struct {
	root   *os.Root // the workspace, shared by every jail of it
	real   string   // the jail's directory: absolute, clean, symlinks of the workspace's path resolved
	alias  string   // the configured spelling when it differs, else ""
	levels []string // the scope below the workspace, each level resolved beneath the one before; nil for the workspace
}

// errEscape is what an SFTP client is told about a path that leads out of
// the workspace: the reference daemon's message, with status FAILURE.
//
//lint:ignore ST1005 the reference daemon's wording, which clients match
var errEscape = errors.New("Path escape attempt blocked")

func openJail(real, configured string) (*jail, error) {
	r, err := os.OpenRoot(real)
	if err != nil {
		return nil, err
	}
	j := &jail{root: r, real: pathjail.Clean(real)}
	if c := pathjail.Clean(configured); c != j.real {
		j.alias = c
	}
	pathjail.LearnRootEscape(r)
	return j, nil
}

func (j *jail) close() error { return j.root.Close() }

// scoped returns the jail of the scope levels (clean, relative, no "..")
// below j.
func (j *jail) scoped(levels ...string) *jail {
	s := &jail{root: j.root, real: j.real, alias: j.alias, levels: append(j.levels[:len(j.levels):len(j.levels)], levels...)}
	for _, l := range levels {
		s.real = pathjail.Join(s.real, l)
		if s.alias != "" {
			s.alias = pathjail.Join(s.alias, l)
		}
	}
	return s
}

// rel resolves a client's path with the path rule: an absolute path under
// the jail's directory (either spelling) is used as is, any other is taken
// as relative to it. It returns the clean path relative to the directory.
func (j *jail) rel(p string) (string, error) {
	root := j.real
	if j.alias != "" && (p == j.alias || strings.HasPrefix(p, j.alias+"/")) {
		root = j.alias
	}
	rel, ok := pathjail.Resolve(root, p)
	if !ok {
		return "", errEscape
	}
	return rel, nil
}

// abs returns the absolute path (configured spelling) of a path relative
// to the jail's directory.
func (j *jail) abs(rel string) string {
	root := j.real
	if j.alias != "" {
		root = j.alias
	}
	return pathjail.Join(root, rel)
}

// dir returns the handle every path of the jail resolves beneath, and the
// function that releases it. A scope's directory is opened one element at
// a time, each beneath the one before, so a link on the way is followed
// inside its own directory only (a link that an agent planted in an
// enclosing scope cannot take a scope path into a sibling); with create,
// missing elements are made.
func (j *jail) dir(create bool) (*os.Root, func(), error) {
	r := j.root
	var opened *os.Root // the last level opened here, for the caller to release
	for _, level := range j.levels {
		next, err := pathjail.OpenBeneath(r, level, create)
		if opened != nil {
			opened.Close()
		}
		if err != nil {
			return nil, nil, err
		}
		r, opened = next, next
	}
	if opened == nil {
		return r, func() {}, nil
	}
	return r, func() { opened.Close() }, nil
}

// isEscape reports whether err is a path refused for leaving the jail, by
// os.Root or by the jail's own checks.
func isEscape(err error) bool { return errors.Is(err, errEscape) || pathjail.IsRootEscape(err) }
