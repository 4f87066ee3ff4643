// Package tmpfile is the one place that knows the temporary files of atomic
// writes: their names, how they are made without a name where the system
// allows it, and how the ones a dead writer left are found and removed.
//
// A write makes its new contents in a temporary file beside the target and
// then renames it over the target, so that readers see the old contents or
// the new, never a part. Where Linux allows it the temporary file has no
// name at all while it is written (O_TMPFILE): a writer killed then leaves
// nothing, and only the instant between linking it under a hidden name and
// renaming that over the target shows a name. Elsewhere, and for writers on
// the other side of a wire, it is a hidden file with a name of this
// package's pattern: listings, searches and MCP results leave such names
// out (Is), and the ones older than StaleAge are removed where they are
// seen and by Sweep.
package tmpfile

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

const (
	prefix = ".agentbe-"
	suffix = ".tmp"
	digits = 16 // hexadecimal
)

// Name returns a fresh temporary name: ".agentbe-<16 hex digits>.tmp", the
// same in every directory (its length does not grow with the target's).
func Name() string {
	h := strconv.FormatUint(rand.Uint64(), 16)
	buf := make([]byte, 0, len(prefix)+digits+len(suffix))
	buf = append(buf, prefix...)
	for range digits - len(h) {
		buf = append(buf, '0')
	}
	buf = append(buf, h...)
	return string(append(buf, suffix...))
}

// Is reports whether name (a base name) is a temporary name.
func Is(name string) bool {
	if len(name) != len(prefix)+digits+len(suffix) || name[:len(prefix)] != prefix || name[len(name)-len(suffix):] != suffix {
		return false
	}
	for _, c := range name[len(prefix) : len(prefix)+digits] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// staleAge is StaleAge in nanoseconds, atomic so that tests may lower it.
var staleAge atomic.Int64

func init() { staleAge.Store(int64(time.Minute)) }

// StaleAge is how long a temporary file may go without a change before it
// counts as left behind: a live writer changes it as it writes, and holds
// a hidden name only for the instant before its rename.
func StaleAge() time.Duration { return time.Duration(staleAge.Load()) }

// SetStaleAge sets StaleAge and returns a function that restores it (for
// tests).
func SetStaleAge(d time.Duration) (restore func()) {
	old := staleAge.Swap(int64(d))
	return func() { staleAge.Store(old) }
}

// RemoveStale removes the temporary file name below root if it was left
// behind: its data (mtime) and status (ctime) have not changed for
// StaleAge. It reports whether it did.
func RemoveStale(root *os.Root, name string) bool {
	return removeUnchangedSince(root, name, time.Now().Add(-StaleAge()))
}

// removeUnchangedSince removes the temporary file name below root if its
// data and status last changed before cutoff.
func removeUnchangedSince(root *os.Root, name string, cutoff time.Time) bool {
	fi, err := root.Lstat(name)
	if err != nil || !fi.Mode().IsRegular() || !fi.ModTime().Before(cutoff) || !changeTime(fi).Before(cutoff) {
		return false
	}
	return root.Remove(name) == nil
}

// maxDepth bounds Sweep's descent: a workspace changing under it (a
// directory swapped for a link to its parent) must not keep it going.
const maxDepth = 256

// Sweep removes the temporary files in the tree below root whose data and
// status last changed before cutoff, and returns how many. A process
// starting to serve a workspace sweeps with its start time as the cutoff:
// it has no write in flight yet, and another process's is changing its
// file as it writes (or holds its name for an instant only). Every
// directory is opened beneath the one above it (os.Root), links are not
// followed, and it stops when ctx ends.
func Sweep(ctx context.Context, root *os.Root, cutoff time.Time) (int, error) {
	return sweep(ctx, root, cutoff, 0)
}

func sweep(ctx context.Context, dir *os.Root, cutoff time.Time, depth int) (int, error) {
	if depth > maxDepth {
		return 0, nil
	}
	f, err := dir.Open(".")
	if err != nil {
		return 0, err
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	removed := 0
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		switch {
		case e.Type().IsRegular() && Is(e.Name()):
			if removeUnchangedSince(dir, e.Name(), cutoff) {
				removed++
			}
		case e.IsDir():
			sub, err := dir.OpenRoot(e.Name())
			if err != nil {
				continue // gone, or no longer a directory
			}
			n, err := sweep(ctx, sub, cutoff, depth+1)
			sub.Close()
			removed += n
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return removed, err
			}
		}
	}
	return removed, err
}

// Hide removes the temporary names from names, in place, and returns the
// rest. It calls seen, when not nil, with each one it removes, so that the
// caller can remove the file if it is stale (RemoveStale).
func Hide(names []string, seen func(name string)) []string {
	return slices.DeleteFunc(names, func(name string) bool {
		if !Is(name) {
			return false
		}
		if seen != nil {
			seen(name)
		}
		return true
	})
}
