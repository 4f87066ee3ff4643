package sandbox

import (
	"os"
	"path"
	"path/filepath"
	"strconv"
	"sync"
)

// appendMasks adds the bubblewrap arguments of masks, the workspace being
// mounted at mount, to args, and returns them with files extended by the
// files the read-only masks bind (files[i] is the child's descriptor
// firstFD+i).
//
// A hidden directory becomes an empty read-only tmpfs; a hidden file, a
// bind of an empty read-only file (or, when that file cannot be made, of
// the host's /dev/null, which the nodev bind makes unreadable); a
// read-only path, a read-only bind of its opened file; a pinned directory,
// a read-write bind of its opened self.
func appendMasks(args []string, mount string, masks []Mask, files []*os.File, firstFD int) ([]string, []*os.File) {
	for _, m := range masks {
		dest := mount
		if m.Path != "." && m.Path != "" {
			dest = path.Join(mount, m.Path)
		}
		switch {
		case m.Pin:
			if m.File != nil {
				args = append(args, "--bind-fd", strconv.Itoa(firstFD+len(files)), dest)
				files = append(files, m.File)
			}
		case !m.Hide && m.File != nil:
			args = append(args, "--ro-bind-fd", strconv.Itoa(firstFD+len(files)), dest)
			files = append(files, m.File)
		case m.Dir:
			args = append(args, "--tmpfs", dest, "--remount-ro", dest)
		default:
			args = append(args, "--ro-bind", emptyFile(), dest)
		}
	}
	return args, files
}

var empty struct {
	mu   sync.Mutex
	path string
}

// emptyFile returns the path of an empty read-only file of this user's, in
// a directory only this user can change: this user's own directory in the
// temporary directory (reused by every process of the user, checked before
// use), else a fresh private one. A file a cleaner removed is made again;
// when none can be made, /dev/null stands in (the nodev bind makes it
// unreadable).
func emptyFile() string {
	empty.mu.Lock()
	defer empty.mu.Unlock()
	if empty.path != "" && isEmptyFile(empty.path) {
		return empty.path
	}
	shared := filepath.Join(os.TempDir(), "agentbe-sandbox-"+strconv.Itoa(os.Getuid()))
	if err := os.Mkdir(shared, 0o700); err == nil || os.IsExist(err) {
		if p := filepath.Join(shared, "empty"); ownedPrivateDir(shared) && makeEmpty(p) {
			empty.path = p
			return p
		}
	}
	dir, err := os.MkdirTemp("", "agentbe-sandbox-")
	if err != nil {
		return os.DevNull
	}
	if p := filepath.Join(dir, "empty"); makeEmpty(p) {
		empty.path = p
		return p
	}
	os.RemoveAll(dir)
	return os.DevNull
}

// makeEmpty makes p an empty read-only file of this user's, if it is not
// one already, and reports whether it is one.
func makeEmpty(p string) bool {
	if f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o444); err == nil {
		f.Close()
	}
	return isEmptyFile(p)
}

// isEmptyFile reports whether p is an empty regular file (not a link) of
// this user's that nobody may write.
func isEmptyFile(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Size() == 0 && fi.Mode().Perm()&0o222 == 0 && ownedByMe(fi)
}

// ownedPrivateDir reports whether dir is a directory (not a link) of this
// user's that nobody else may change.
func ownedPrivateDir(dir string) bool {
	fi, err := os.Lstat(dir)
	return err == nil && fi.IsDir() && fi.Mode().Perm()&0o022 == 0 && ownedByMe(fi)
}
