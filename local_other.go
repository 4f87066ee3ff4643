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
