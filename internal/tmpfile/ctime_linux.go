//go:build linux

package tmpfile

import (
	"io/fs"
	"syscall"
	"time"
)

// changeTime returns when fi's status last changed, or its modification
// time where the system does not say.
func changeTime(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Unix())
	}
	return fi.ModTime()
}
