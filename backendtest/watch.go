package backendtest

import (
	"context"
	"fmt"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
)

// testWatch checks ab.Watch: natively where the backend is a Watcher,
// by scanning elsewhere (with a short interval, so the section stays
// quick). Every backend can be watched one way or the other.
func (s suite) testWatch(t *testing.T) {
	t.Run("Events", func(t *testing.T) { testWatchEvents(t, s.fresh(t)) })
	t.Run("End", func(t *testing.T) { testWatchEnd(t, s) })
	t.Run("Overflow", func(t *testing.T) { testWatchOverflow(t, s.fresh(t)) })
	t.Run("Checks", func(t *testing.T) { testWatchChecks(t, s.fresh(t)) })
	t.Run("Scope", func(t *testing.T) { testWatchScope(t, s.fresh(t)) })
}

// watchOpts scans often, for backends that are scanned.
var watchOpts = &ab.WatchOptions{PollInterval: 20 * time.Millisecond}

// watching starts a watch that ends with the test.
func watching(t *testing.T, b ab.FileBackend, dir string, opts *ab.WatchOptions) *events {
	t.Helper()
	c, cancel := context.WithCancel(ctx(t))
	ch, err := ab.Watch(c, b, dir, opts)
	require.NoError(t, err, "Watch %s", dir)
	e := &events{ch: ch, cancel: cancel}
	t.Cleanup(func() {
		cancel()
		for range ch { // it must close
		}
	})
	return e
}

// events is a watch's channel and what was read from it.
type events struct {
	ch     <-chan ab.WatchEvent
	cancel context.CancelFunc
	seen   []ab.WatchEvent
}

func (e *events) String() string {
	var sb strings.Builder
	for _, ev := range e.seen {
		fmt.Fprintf(&sb, "%s %s; ", ev.Op, ev.Path)
	}
	return sb.String()
}

// await reads events until one of the ops happens to path (ten seconds
// at most, a bound on a hang).
func (e *events) await(t *testing.T, path string, ops ...ab.WatchOp) {
	t.Helper()
	for _, ev := range e.seen {
		if ev.Path == path && contains(ops, ev.Op) {
			return
		}
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-e.ch:
			require.True(t, ok, "the watch ended before %v %s; seen: %s", ops, path, e)
			e.seen = append(e.seen, ev)
			if ev.Path == path && contains(ops, ev.Op) {
				return
			}
		case <-timeout:
			require.Failf(t, "no event", "%v %s never came; seen: %s", ops, path, e)
		}
	}
}

// drain reads what comes within a moment (for negative checks, after a
// positive one has shown that the watch delivers).
func (e *events) drain(d time.Duration) {
	timeout := time.After(d)
	for {
		select {
		case ev, ok := <-e.ch:
			if !ok {
				return
			}
			e.seen = append(e.seen, ev)
		case <-timeout:
			return
		}
	}
}

func contains(ops []ab.WatchOp, op ab.WatchOp) bool {
	for _, o := range ops {
		if o == op {
			return true
		}
	}
	return false
}

func testWatchEvents(t *testing.T, b ab.FileBackend) {
	c := ctx(t)
	must(t, b.Mkdir(c, "w"), "Mkdir w")
	write(t, b, "w/old.txt", "old")
	e := watching(t, b, "w", watchOpts)

	write(t, b, "w/a.txt", "one")
	e.await(t, "w/a.txt", ab.WatchCreate)
	write(t, b, "w/old.txt", "changed, longer")
	e.await(t, "w/old.txt", ab.WatchWrite, ab.WatchCreate) // an atomic write is a rename over it
	write(t, b, "w/sub/deep/b.txt", "two")
	e.await(t, "w/sub/deep/b.txt", ab.WatchCreate) // new directories are followed
	write(t, b, "w/sub/deep/c.txt", "three")
	e.await(t, "w/sub/deep/c.txt", ab.WatchCreate)
	must(t, b.Rename(c, "w/sub/deep/b.txt", "w/moved.txt"), "Rename")
	e.await(t, "w/sub/deep/b.txt", ab.WatchRename, ab.WatchRemove)
	e.await(t, "w/moved.txt", ab.WatchCreate)
	must(t, b.Remove(c, "w/a.txt", ab.RemoveOptions{}), "Remove")
	e.await(t, "w/a.txt", ab.WatchRemove)
	if supportsExec(t, b) {
		// A command writing into the tree is seen like any other writer.
		_, err := b.Exec(c, "echo hi > w/by-command.txt", nil)
		must(t, err, "Exec")
		e.await(t, "w/by-command.txt", ab.WatchCreate)
	}
	write(t, b, "outside.txt", "not watched")
	write(t, b, "w/last.txt", "")
	e.await(t, "w/last.txt", ab.WatchCreate)
	for _, ev := range e.seen {
		assert.True(t, ev.Op == ab.WatchOverflow || ev.Path == "w" || strings.HasPrefix(ev.Path, "w/"),
			"an event outside the watched tree: %s %s", ev.Op, ev.Path)
		// Only names someone could open: not a write's unnamed new
		// contents (Linux names an O_TMPFILE file "#<inode>" in events).
		assert.NotContains(t, path.Base(ev.Path), "#", "an event about a file that has no name: %s %s", ev.Op, ev.Path)
	}
}

// testWatchEnd: the channel closes when ctx ends, and when the backend
// closes.
func testWatchEnd(t *testing.T, s suite) {
	b := s.fresh(t)
	must(t, b.Mkdir(ctx(t), "w"), "Mkdir")
	c, cancel := context.WithCancel(ctx(t))
	ch, err := ab.Watch(c, b, "w", watchOpts)
	require.NoError(t, err)
	cancel()
	waitClosed(t, ch, "after ctx ended")

	b = s.fresh(t)
	ch, err = ab.Watch(ctx(t), b, ".", watchOpts)
	require.NoError(t, err)
	require.NoError(t, b.Close())
	waitClosed(t, ch, "after Close")
}

func waitClosed(t *testing.T, ch <-chan ab.WatchEvent, when string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			require.Fail(t, "the watch channel did not close "+when)
		}
	}
}

// testWatchOverflow: a reader that does not keep up gets an overflow
// event, and the queue never holds more than asked.
func testWatchOverflow(t *testing.T, b ab.FileBackend) {
	must(t, b.Mkdir(ctx(t), "w"), "Mkdir")
	e := watching(t, b, "w", &ab.WatchOptions{Queue: 4, PollInterval: 20 * time.Millisecond})
	// Nothing is read while the files are written, so a queue of 4 fills
	// unless the backend takes the events in more slowly than they are
	// made (a busy machine can starve inotify's reader), and the reader
	// then keeps pace: then again with more files.
	for round, n := range []int{40, 400, 2000} {
		for i := range n {
			write(t, b, fmt.Sprintf("w/r%d-%04d", round, i), "x")
		}
		last := fmt.Sprintf("w/r%d-last", round)
		write(t, b, last, "x")
		seen := len(e.seen)
		deadline := time.After(10 * time.Second)
		for {
			var ev ab.WatchEvent
			select {
			case got, ok := <-e.ch:
				require.True(t, ok, "the watch ended; seen: %s", e)
				ev = got
			case <-deadline:
				require.Failf(t, "no overflow and no event for the last file", "round %d; seen: %s", round, e)
			}
			e.seen = append(e.seen, ev)
			if ev.Op == ab.WatchOverflow {
				// Some of the round's n+1 events were dropped, and said so.
				assert.Less(t, len(e.seen)-1-seen, n+1, "no event was dropped before the overflow: %s", e)
				return
			}
			if ev.Path == last {
				break // kept pace: a bigger round
			}
		}
		t.Logf("round %d: %d events, no overflow; again with more", round, n+1)
	}
	require.Fail(t, "no overflow", "a queue of 4 never overflowed; seen: %d events", len(e.seen))
}

func testWatchChecks(t *testing.T, b ab.FileBackend) {
	c := ctx(t)
	write(t, b, "file.txt", "x")
	_, err := ab.Watch(c, b, "file.txt", watchOpts)
	wantErr(t, err, "Watch of a file")
	_, err = ab.Watch(c, b, "missing", watchOpts)
	wantErr(t, err, "Watch of a missing directory")
	_, err = ab.Watch(c, b, "../..", watchOpts)
	wantCode(t, err, ab.CodePathEscape, "Watch outside")
}

// testWatchScope: through a scope, paths are the scope's, and nothing
// outside it is reported.
func testWatchScope(t *testing.T, b ab.FileBackend) {
	sc, err := b.Scope("scoped", nil)
	require.NoError(t, err)
	defer sc.Close()
	must(t, sc.Mkdir(ctx(t), "."), "Mkdir scope")
	e := watching(t, sc, ".", watchOpts)
	write(t, b, "beside/secret.txt", "not the scope's")
	write(t, b, "scopedness.txt", "a sibling with a common prefix")
	write(t, b, "scoped/in.txt", "the scope's")
	e.await(t, "in.txt", ab.WatchCreate)
	e.drain(100 * time.Millisecond)
	for _, ev := range e.seen {
		assert.False(t, strings.Contains(ev.Path, "secret") || strings.Contains(ev.Path, "scoped"),
			"an event outside the scope, or not in its paths: %s %s", ev.Op, ev.Path)
	}
}
