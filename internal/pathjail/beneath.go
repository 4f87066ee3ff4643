package pathjail

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// OpenBeneath opens the directory dir (clean, relative, not ".") below r
// one element at a time, each as a root beneath the one before, and
// returns it as a root of its own (r stays open). A link on the way is
// followed within its own directory only: a link users/alice/x -> ../bob,
// which whoever may write users/alice can plant, cannot take dir
// users/alice/x into users/bob. With create, missing elements are made
// (0755). An element that is not a directory is ENOTDIR.
func OpenBeneath(r *os.Root, dir string, create bool) (*os.Root, error) {
	cur := r
	for name := range strings.SplitSeq(dir, "/") {
		next, err := cur.OpenRoot(name)
		if create && errors.Is(err, fs.ErrNotExist) {
			if err = cur.Mkdir(name, 0o755); err == nil || errors.Is(err, fs.ErrExist) {
				next, err = cur.OpenRoot(name)
			}
		}
		if err != nil {
			if fi, serr := cur.Stat(name); serr == nil && !fi.IsDir() {
				err = &fs.PathError{Op: "open", Path: dir, Err: syscall.ENOTDIR} // OpenRoot says so only in words
			}
		}
		if cur != r {
			cur.Close()
		}
		if err != nil {
			return nil, err
		}
		cur = next
	}
	return cur, nil
}
