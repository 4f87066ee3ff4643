package agentbackend

import (
	"errors"
	"io/fs"

	"golang.org/x/sys/unix"

	"github.com/agentbackend/agentbackend/internal/sandbox"
)

// openMasks prepares a scope's masks for the sandbox: each read-only path
// is opened (O_PATH, through the workspace's os.Root, without following a
// final link) so that bwrap binds the file that was judged, not whatever a
// concurrent command swapped in at its name since. A path gone, or become
// a link, is dropped: nothing is left there to protect. Without bwrap
// there is nothing to do.
func (b *LocalBackend) openMasks(masks []sandbox.Mask) ([]sandbox.Mask, error) {
	if b.bwrap == nil || len(masks) == 0 {
		return nil, nil
	}
	out := make([]sandbox.Mask, 0, len(masks))
	fail := func(err error) ([]sandbox.Mask, error) {
		for _, m := range out {
			if m.File != nil {
				m.File.Close()
			}
		}
		return nil, err
	}
	for _, m := range masks {
		if m.Hide {
			out = append(out, m)
			continue
		}
		f, err := b.fsys.OpenFile(m.Path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fail(b.fileErr(CodeExecError, "exec", m.Path, err))
		}
		if fi, err := f.Stat(); err != nil || fi.Mode()&fs.ModeSymlink != 0 {
			f.Close()
			continue
		}
		m.File = f
		out = append(out, m)
	}
	return out, nil
}
