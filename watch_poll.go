package agentbackend

import (
	"context"
	"slices"
	"time"

	"github.com/agentbackend/agentbackend/internal/pathjail"
)

// Watching a backend that is not told of changes: scan the tree every
// PollInterval and report the differences (see Watch).

// pollEntry is what a scan keeps of a path.
type pollEntry struct {
	size  int64
	mod   time.Time
	isDir bool
}

// watchDir checks that the directory of a watch is one, and returns it
// relative to b's root.
func watchDir(ctx context.Context, b FileBackend, p string) (string, error) {
	rel, err := resolve(cleanRoot(b.RootDir()), "watch", p)
	if err != nil {
		return "", err
	}
	fi, err := b.Stat(ctx, rel)
	if err != nil {
		return "", err
	}
	if !fi.IsDir {
		return "", errArgument("watch", p, "not a directory: watch the directory that holds it")
	}
	return rel, nil
}

// pollWatch watches b by scanning it.
func pollWatch(ctx context.Context, b FileBackend, p string, opts *WatchOptions) (<-chan WatchEvent, error) {
	o := opts.withDefaults()
	dir, err := watchDir(ctx, b, p)
	if err != nil {
		return nil, err
	}
	snap, complete := pollScan(ctx, b, dir)
	q := newWatchQueue(o.Queue)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel() // a closed backend ends the watch
		t := time.NewTicker(o.PollInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if b.Status() == StatusDestroyed {
				return
			}
			next, ok := pollScan(ctx, b, dir)
			if ctx.Err() != nil {
				return
			}
			pollDiff(snap, next, q)
			if !ok || !complete {
				q.overflow()
			}
			snap, complete = next, ok
		}
	}()
	go q.deliver(ctx, done)
	return q.out, nil
}

// pollScan lists the tree at dir (relative to b's root): every path below
// it, relative to the root, up to maxPollEntries (false past it). Symbolic
// links are entries, not followed. A directory that cannot be listed is
// left out with what is below it.
func pollScan(ctx context.Context, b FileBackend, dir string) (map[string]pollEntry, bool) {
	snap := map[string]pollEntry{}
	stack := []string{dir}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		infos, err := readDirInfo(ctx, b, d)
		if err != nil {
			if ctx.Err() != nil {
				return snap, true
			}
			continue
		}
		for _, fi := range infos {
			p := pathjail.JoinRel(d, fi.Name)
			if len(snap) >= maxPollEntries {
				return snap, false
			}
			snap[p] = pollEntry{size: fi.Size, mod: fi.ModTime, isDir: fi.IsDir}
			if fi.IsDir && !fi.Symlink {
				stack = append(stack, p)
			}
		}
	}
	return snap, true
}

// pollDiff reports what changed from one scan to the next, in path order.
func pollDiff(old, next map[string]pollEntry, q *watchQueue) {
	var created, written, removed []string
	for p, e := range next {
		was, ok := old[p]
		switch {
		case !ok || was.isDir != e.isDir:
			created = append(created, p)
			if ok {
				removed = append(removed, p)
			}
		case !e.isDir && (was.size != e.size || !was.mod.Equal(e.mod)):
			written = append(written, p)
		}
	}
	for p := range old {
		if _, ok := next[p]; !ok {
			removed = append(removed, p)
		}
	}
	for _, batch := range []struct {
		op    WatchOp
		paths []string
	}{{WatchRemove, removed}, {WatchCreate, created}, {WatchWrite, written}} {
		slices.Sort(batch.paths)
		for _, p := range batch.paths {
			q.push(WatchEvent{Op: batch.op, Path: p})
		}
	}
}
