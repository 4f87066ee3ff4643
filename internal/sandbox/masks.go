package sandbox

import (
	"os"
	"path"
	"path/filepath"
	"strconv"
	"sync"
)

// appendMasks adds the bubblewrap arguments of masks, the workspace being
// mounted at mount, to args, and returns them with the files the
// read-only masks bind, which the child gets from descriptor firstFD on.
//
// A hidden directory becomes an empty read-only tmpfs; a hidden file, a
// bind of an empty read-only file (or, when that file cannot be made, of
// the host's /dev/null, which the nodev bind makes unreadable); a
// read-only path, a read-only bind of its opened file.
func appendMasks(args []string, mount string, masks []Mask, firstFD int) ([]string, []*os.File) {
	var files []*os.File
	for _, m := range masks {
		dest := mount
		if m.Path != "." && m.Path != "" {
			dest = path.Join(mount, m.Path)
		}
		switch {
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

// emptyFile returns the path of an empty read-only file in a private
// directory of this process (made again if a cleaner removed it), or
// /dev/null when none can be made.
func emptyFile() string {
	empty.mu.Lock()
	defer empty.mu.Unlock()
	if empty.path != "" {
		if fi, err := os.Lstat(empty.path); err == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
			return empty.path
		}
	}
	dir, err := os.MkdirTemp("", "agentbe-sandbox-")
	if err != nil {
		return os.DevNull
	}
	p := filepath.Join(dir, "empty")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o444)
	if err != nil {
		os.Remove(dir)
		return os.DevNull
	}
	f.Close()
	empty.path = p
	return p
}
