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

func (d *dirHandle) writeOnceAt(string, []byte) (string, error) {
	panic("unreachable: writeOnceAt without *at system calls")
}

// dirID identifies a directory.
type dirID struct{ fi fs.FileInfo }

func dirIDOf(f *os.File) (dirID, error) {
	fi, err := f.Stat()
	return dirID{fi}, err
}

// holds reports whether the path rel below d is the directory id.
func (d *dirHandle) holds(rel string, id dirID) bool {
	fi, err := d.fsys.Stat(rel)
	return err == nil && os.SameFile(fi, id.fi)
}
