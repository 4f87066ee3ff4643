package agentbackend

import (
	"context"
	"sync"
	"time"
)

// WatchOp says what happened to a watched path.
type WatchOp string

// The changes a watch reports.
const (
	WatchCreate WatchOp = "create" // a file or directory was created, or moved in
	WatchWrite  WatchOp = "write"  // a file's contents changed
	WatchRemove WatchOp = "remove" // a file or directory was removed
	WatchRename WatchOp = "rename" // it was moved away; its new name, if watched, comes as a create
	// WatchOverflow says events were dropped: the reader fell behind the
	// queue (WatchOptions.Queue), or the backend missed changes. Its Path
	// is empty. What the reader knows of the tree may be stale: list it
	// again.
	WatchOverflow WatchOp = "overflow"
)

// WatchEvent is one change in a watched tree.
type WatchEvent struct {
	Op WatchOp
	// Path is the changed file or directory, relative to the root of the
	// backend that was watched (for a scope, the scope's root; for a
	// composite, the composite's), slash-separated, as LsEntry.Path and
	// GrepResult paths are: it can be passed back to that backend as is.
	Path string
}

// Defaults of WatchOptions.
const (
	DefaultWatchQueue        = 4096
	DefaultWatchPollInterval = time.Second
	// maxPollEntries bounds the tree a polling watch keeps in memory; past
	// it, each scan reports an overflow.
	maxPollEntries = 100_000
)

// WatchOptions adjusts a watch. The zero value (or nil) means the defaults.
type WatchOptions struct {
	// Queue is how many events wait for a reader that has not taken them
	// yet; past it, new events are dropped and an overflow event tells
	// the reader, so a slow reader costs bounded memory. 0 means
	// DefaultWatchQueue.
	Queue int
	// PollInterval is how often a backend that cannot be told of changes
	// is scanned for them (see Watch). 0 means DefaultWatchPollInterval.
	PollInterval time.Duration
}

func (o *WatchOptions) withDefaults() WatchOptions {
	var w WatchOptions
	if o != nil {
		w = *o
	}
	if w.Queue <= 0 {
		w.Queue = DefaultWatchQueue
	}
	if w.PollInterval <= 0 {
		w.PollInterval = DefaultWatchPollInterval
	}
	return w
}

// Watcher is an optional interface for backends that are told of changes
// to their files as they happen (LocalBackend through inotify,
// MemoryBackend natively, RemoteBackend through this module's daemon),
// rather than finding them by scanning. Use Watch, which falls back to
// scanning for other backends.
type Watcher interface {
	// Watch reports the changes to the directory tree at path (under the
	// path rule) until ctx ends or the backend closes, then closes the
	// channel. See the function Watch.
	Watch(ctx context.Context, path string, opts *WatchOptions) (<-chan WatchEvent, error)
}

// Watch reports the changes to the directory tree at path of b (the
// directory and everything below it, new directories included) on the
// returned channel until ctx ends or b is closed, then closes the channel.
// It returns once the watch is in place: a change made after it returns
// is reported.
//
// A backend that implements Watcher is told of changes as they happen:
// create, write, remove, rename. For any other backend, Watch scans the
// tree every WatchOptions.PollInterval (DefaultWatchPollInterval, one
// second) and reports the differences: a new path as create, a changed
// size or modification time as write, a missing path as remove (a rename
// is a remove and a create), and changes undone between two scans are not
// seen. A scan holds at most 100,000 paths; a larger tree is reported
// with an overflow event per scan.
//
// The events wait in a queue of WatchOptions.Queue events for the reader;
// when it is full, events are dropped and a WatchOverflow event follows:
// a slow reader never costs unbounded memory. Paths are relative to b's
// root (WatchEvent). Through a scope, only paths inside the scope that its
// permissions let it list and read are reported. A path that is not a
// directory is an error (READ_FAILED, PATH_ESCAPE_ATTEMPT, ...), as for
// ReadDir.
func Watch(ctx context.Context, b FileBackend, path string, opts *WatchOptions) (<-chan WatchEvent, error) {
	if w, ok := b.(Watcher); ok {
		return w.Watch(ctx, path, opts)
	}
	return pollWatch(ctx, b, path, opts)
}

// watchQueue is the bounded queue between a watch's source and its
// reader: push never blocks; a goroutine delivers to the reader's
// channel, and closes it when the watch ends.
type watchQueue struct {
	out  chan WatchEvent
	mu   sync.Mutex
	buf  []WatchEvent // pending, oldest first; at most limit
	head int
	lost bool // events were dropped since the last overflow was queued
	wake chan struct{}
	cap  int
}

func newWatchQueue(limit int) *watchQueue {
	return &watchQueue{out: make(chan WatchEvent), wake: make(chan struct{}, 1), cap: limit}
}

// push queues an event, or drops it and notes the loss when the queue is
// full.
func (q *watchQueue) push(ev WatchEvent) {
	q.mu.Lock()
	if len(q.buf)-q.head >= q.cap {
		q.lost = true
	} else {
		q.buf = append(q.buf, ev)
	}
	q.mu.Unlock()
	q.signal()
}

// overflow notes that events were missed upstream.
func (q *watchQueue) overflow() {
	q.mu.Lock()
	q.lost = true
	q.mu.Unlock()
	q.signal()
}

func (q *watchQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// next takes the next event to deliver: queued events first, then an
// overflow for what was dropped.
func (q *watchQueue) next() (WatchEvent, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head < len(q.buf) {
		ev := q.buf[q.head]
		q.buf[q.head] = WatchEvent{}
		q.head++
		if q.head == len(q.buf) || q.head > 1024 && q.head*2 > len(q.buf) {
			q.buf = append(q.buf[:0], q.buf[q.head:]...)
			q.head = 0
		}
		return ev, true
	}
	if q.lost {
		q.lost = false
		return WatchEvent{Op: WatchOverflow}, true
	}
	return WatchEvent{}, false
}

// deliver moves events to the reader until ctx ends, or the source has
// ended (done closed: it pushes no more) and the queue is empty; then it
// closes the reader's channel, once the source has ended (done, if not
// nil).
func (q *watchQueue) deliver(ctx context.Context, done <-chan struct{}) {
	defer close(q.out)
	if done != nil {
		defer func() { <-done }()
	}
	ended := false
	for {
		ev, ok := q.next()
		if !ok {
			if ended {
				return
			}
			select {
			case <-q.wake:
			case <-done:
				ended = true
			case <-ctx.Done():
				return
			}
			continue
		}
		select {
		case q.out <- ev:
		case <-ctx.Done():
			return
		}
	}
}
