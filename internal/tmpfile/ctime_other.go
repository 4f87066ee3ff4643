//go:build !linux

package tmpfile

import (
	"io/fs"
	"time"
)

func changeTime(fi fs.FileInfo) time.Time { return fi.ModTime() }
