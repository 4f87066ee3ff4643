package daemon

import (
	"errors"
	"os"
	"strings"

	"github.com/agentbackend/agentbackend/internal/pathjail"
)

// jail is the SFTP view of the workspace: an os.Root on the same real
// directory as the daemon's LocalBackend, so that, as there, a symbolic
// link cannot lead outside, and paths resolved by the one path rule
// (internal/pathjail).
type jail struct {
	root  *os.Root
	real  string // the workspace: absolute, clean, symlinks resolved
	alias string // the configured spelling when it differs, else ""
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

// rel resolves a client's path with the path rule: an absolute path under
// the workspace (either spelling) is used as is, any other is taken as
// relative to it. It returns the clean path relative to the root.
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

// abs returns the absolute path (configured spelling) of a root-relative
// path.
func (j *jail) abs(rel string) string {
	root := j.real
	if j.alias != "" {
		root = j.alias
	}
	return pathjail.Join(root, rel)
}

// isEscape reports whether err is a path refused for leaving the jail, by
// os.Root or by the jail's own checks.
func isEscape(err error) bool { return errors.Is(err, errEscape) || pathjail.IsRootEscape(err) }
