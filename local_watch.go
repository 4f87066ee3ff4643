package agentbackend

import (
	"context"
	"errors"
	"io/fs"
	"path"

	"github.com/agentbackend/agentbackend/internal/fswatch"
	"github.com/agentbackend/agentbackend/internal/tmpfile"
)

var _ Watcher = (*LocalBackend)(nil)

// Watch reports the changes to the directory tree at p as they happen,
// through inotify (github.com/fsnotify/fsnotify), recursively: a directory
// created or moved in is watched from then on, and what it already holds
// is reported as created. See the function Watch for the events and the
// queue. Every directory is opened beneath the workspace (or the scope's
// directory) and watched by that descriptor, so a symbolic link never
// carries the watch outside: links are reported as entries, never
// followed. The temporary files of the backend's own writes are not
// reported (a file named like one, ".name.tmp-1a2b3c", is not either): a
// Write shows as the file's creation. Where inotify cannot be used (no /proc, no inotify), it scans
// every WatchOptions.PollInterval instead.
func (b *LocalBackend) Watch(ctx context.Context, p string, opts *WatchOptions) (<-chan WatchEvent, error) {
	if err := b.begin(ctx, CodeReadFailed, "watch", p); err != nil {
		return nil, err
	}
	rel, err := b.rel("watch", p)
	if err != nil {
		return nil, err
	}
	d, err := b.open(false)
	if err != nil {
		return nil, b.fileErr(CodeReadFailed, "watch", p, err)
	}
	fi, err := d.fsys.Stat(rel)
	if err == nil && !fi.IsDir() {
		err = errArgument("watch", p, "not a directory: watch the directory that holds it")
	}
	if err != nil {
		b.done(d)
		if ae := (*Error)(nil); errors.As(err, &ae) {
			return nil, err
		}
		return nil, b.fileErr(CodeReadFailed, "watch", p, err)
	}
	o := opts.withDefaults()
	q := newWatchQueue(o.Queue)
	wctx, cancel := b.bound(ctx)
	w, err := fswatch.Start(wctx, d.fsys, rel, watchSink{q})
	if err != nil {
		cancel()
		b.done(d)
		if errors.Is(err, fs.ErrNotExist) || isEscape(rootCause(err)) {
			return nil, b.fileErr(CodeReadFailed, "watch", p, err)
		}
		return pollWatch(ctx, b, p, opts)
	}
	// Counted under procMu, which Close takes after marking the backend
	// destroyed and before it waits: a watch is counted before that wait,
	// or sees the backend closed.
	b.procMu.Lock()
	if b.destroyed.Load() {
		b.procMu.Unlock()
		cancel()
		<-w.Done()
		b.done(d)
		return nil, errDestroyed("watch", TypeLocal)
	}
	b.watches.Add(1)
	b.procMu.Unlock()
	go func() {
		defer b.watches.Done()
		q.deliver(wctx, w.Done())
		cancel()
		b.done(d)
	}()
	return q.out, nil
}

// watchSink turns the events of fswatch into a queue's.
type watchSink struct{ q *watchQueue }

var watchOps = [...]WatchOp{fswatch.Create: WatchCreate, fswatch.Write: WatchWrite, fswatch.Remove: WatchRemove, fswatch.Rename: WatchRename}

// Event reports ev, unless it is about the temporary file of a Write
// (tmpfile.Is): the write shows as its rename onto the file, and the
// temporary name would tell a scope about a file its permissions hide.
func (s watchSink) Event(ev fswatch.Event) {
	if tmpfile.Is(path.Base(ev.Path)) {
		return
	}
	s.q.push(WatchEvent{Op: watchOps[ev.Op], Path: ev.Path})
}
func (s watchSink) Lost() { s.q.overflow() }
