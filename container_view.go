package agentbackend

import (
	"context"
	"path"
	"strings"

	"github.com/agentbackend/agentbackend/internal/shellfs"
)

// A scope of a ContainerBackend works on a view of the backend rooted at
// the scope's directory in the container. Before each operation, in the
// same op-shell call, the view checks inside the container (ab_in) that
// the scope's directory, every level of it resolved with its links, lies
// within its parent's, and that every path the operation touches, resolved
// the same way, lies within the scope: a link that leads out of the scope
// is refused with PATH_ESCAPE_ATTEMPT. The check and the operation are two
// steps of one shell, so a process running in the container at the same
// time could swap a link between them; but such a process can reach the
// whole container anyway (commands of a container scope are not jailed:
// they run in the scope's directory, nothing more).

var _ jailer = (*ContainerBackend)(nil)

// jail returns the view of the directory dir for a scope. Every element
// of dir is a level of the chain ab_in checks, each within the one before,
// so a link on the way (one an agent of an enclosing scope planted) is
// followed within its own directory only.
func (b *ContainerBackend) jail(dir string) (FileBackend, func()) {
	jails := b.jails
	if jails == nil {
		jails = []string{b.root}
	}
	jails = jails[:len(jails):len(jails)]
	root := b.root
	for name := range strings.SplitSeq(dir, "/") {
		root = joinRoot(root, name)
		jails = append(jails, root)
	}
	return &ContainerBackend{containerCore: b.containerCore, root: root, jails: jails}, nil
}

// shellRunIn is shellRun for an operation on paths: in a scope's view the
// call runs only if every path of follow (whose last element the call
// follows, when it is a link) and the directory of every path of nofollow
// (whose last element it does not follow: rm, mv, a link's own metadata)
// stay inside the scope. Otherwise its code is shellfs.ExitEscape.
func (b *ContainerBackend) shellRunIn(ctx context.Context, follow, nofollow []string, fn string, input []byte, args ...string) (shellfs.Reply, error) {
	if b.jails == nil {
		return b.shellRun(ctx, fn, input, args...)
	}
	paths := append([]string{}, follow...)
	for _, p := range nofollow {
		if p != b.root { // the scope's own directory: the chain of roots is its check
			paths = append(paths, path.Dir(p))
		}
	}
	return b.containerCore.shellRunIn(ctx, b.jails, paths, fn, input, args...)
}

// checkDir refuses, in a scope's view, a working directory (absolute in the
// container) that leads out of the scope.
func (b *ContainerBackend) checkDir(ctx context.Context, op, cwd, p string) error {
	if b.jails == nil {
		return nil
	}
	reply, err := b.shellRunIn(ctx, []string{cwd}, nil, "true", nil)
	if err != nil || reply.Code != 0 {
		return b.fileErr(CodeExecError, op, p, reply, err)
	}
	return nil
}
