//go:build !unix

package sandbox

import "os"

// ownedByMe cannot tell without Unix owners; bubblewrap, which uses the
// file it guards, is Linux-only anyway.
func ownedByMe(os.FileInfo) bool { return false }

// dupFile has no bubblewrap to serve here.
func dupFile(*os.File) *os.File { return nil }
