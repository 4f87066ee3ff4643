//go:build !unix

package agentbackend

import (
	"io/fs"
	"os"
)

const (
	oNonblock  = 0
	oDirectory = 0
)

// keepOwnerAndMode gives the temporary file of an atomic write the
// permission bits of the file it replaces.
func keepOwnerAndMode(f *os.File, old fs.FileInfo) error {
	return f.Chmod(old.Mode().Perm())
}

// haveWriteAt says writeOnceAt does not exist here: writes use os.Root.
const haveWriteAt = false

func (b *LocalBackend) writeOnceAt(string, []byte) (string, error) {
	panic("unreachable: writeOnceAt without *at system calls")
}
