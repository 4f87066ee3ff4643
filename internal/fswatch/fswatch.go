// Package fswatch reports the changes to a directory tree beneath an
// os.Root, recursively, with inotify through fsnotify: LocalBackend's
// Watch and the daemon's watch subsystem both use it, so a workspace is
// watched the same way wherever it is.
//
// Every directory is opened beneath the root (os.Root: a symbolic link
// cannot lead out of it) and watched by that open descriptor, through its
// /proc/self/fd path, never by a path the kernel would resolve again: a
// directory swapped for a link to elsewhere between the check and the
// watch cannot make the watch land outside the root. Links themselves are
// reported as entries and never followed.
package fswatch

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/fsnotify/fsnotify"
)

// Op is what happened to a path.
type Op uint8

// The operations reported.
const (
	Create Op = iota + 1 // created, or moved in
	Write                // its contents changed
	Remove               // removed
	Rename               // moved away (the new name, if inside, comes as a Create)
)

// Event is one change. Path is relative to the root, slash-separated.
type Event struct {
	Op   Op
	Path string
}

// Sink receives the events, from one goroutine. Lost is called when events
// were missed (the kernel's queue overflowed, or a directory could not be
// watched): what is known of the tree may be stale.
type Sink interface {
	Event(Event)
	Lost()
}

// fdDir is where a process's open descriptors are named.
const fdDir = "/proc/self/fd/"

// Watch is a running watch of a tree.
type Watch struct {
	root  *os.Root
	top   string // the directory watched
	w     *fsnotify.Watcher
	sink  Sink
	dirs  map[string]*os.File // watched directories by path (relative to root)
	names map[string]string   // the /proc/self/fd name of each watch -> its directory's path
	done  chan struct{}
}

// Start watches the directory dir (relative to root, "." for the root)
// and everything below it, and reports to sink until ctx ends; Done is
// closed then. Start returns once the whole tree is watched; a change
// made after it returns is reported. It fails when dir is not a directory
// beneath root, or inotify cannot be used here.
func Start(ctx context.Context, root *os.Root, dir string, sink Sink) (*Watch, error) {
	if _, err := os.Stat(fdDir); err != nil {
		return nil, errors.New("fswatch: " + fdDir + " is not available")
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	wt := &Watch{root: root, top: dir, w: w, sink: sink, dirs: map[string]*os.File{}, names: map[string]string{}, done: make(chan struct{})}
	if err := wt.add(dir, false); err != nil {
		wt.close()
		return nil, err
	}
	go wt.run(ctx)
	return wt, nil
}

// Done is closed once the watch has ended and released everything.
func (wt *Watch) Done() <-chan struct{} { return wt.done }

func (wt *Watch) close() {
	wt.w.Close()
	for _, f := range wt.dirs {
		f.Close()
	}
}

// add watches the directory rel and, recursively, the directories below
// it; with announce, every entry found is reported as created (they were
// made before the watch could see them: mkdir -p, a tree moved in).
func (wt *Watch) add(rel string, announce bool) error {
	if _, ok := wt.dirs[rel]; ok {
		return nil
	}
	f, err := wt.root.OpenFile(rel, os.O_RDONLY|dirFlags, 0)
	if err != nil {
		return err
	}
	name := fdDir + strconv.Itoa(int(f.Fd()))
	if err := wt.w.Add(name); err != nil {
		f.Close()
		return err
	}
	wt.dirs[rel] = f
	wt.names[name] = rel
	entries, err := f.ReadDir(-1)
	if err != nil {
		return nil // watched; its listing is lost
	}
	for _, e := range entries {
		child := path.Join(rel, e.Name())
		if announce {
			wt.sink.Event(Event{Op: Create, Path: child})
		}
		if e.Type()&fs.ModeType == fs.ModeDir {
			if err := wt.add(child, announce); err != nil && !errors.Is(err, fs.ErrNotExist) {
				wt.sink.Lost()
			}
		}
	}
	return nil
}

// drop stops watching rel and everything below it.
func (wt *Watch) drop(rel string) {
	for p, f := range wt.dirs {
		if p == rel || rel == "." || strings.HasPrefix(p, rel+"/") {
			name := fdDir + strconv.Itoa(int(f.Fd()))
			_ = wt.w.Remove(name)
			delete(wt.names, name)
			delete(wt.dirs, p)
			f.Close()
		}
	}
}

func (wt *Watch) run(ctx context.Context) {
	defer close(wt.done)
	defer wt.close()
	for {
		select {
		case <-ctx.Done():
			return
		case err, ok := <-wt.w.Errors:
			if !ok {
				return
			}
			if err != nil {
				wt.sink.Lost()
			}
		case ev, ok := <-wt.w.Events:
			if !ok {
				return
			}
			wt.handle(ev)
		}
	}
}

// handle reports one fsnotify event and follows the tree's shape.
func (wt *Watch) handle(ev fsnotify.Event) {
	if rel, ok := wt.names[ev.Name]; ok {
		// An event about a watched directory itself: its parent reports
		// it, but nobody watches the parent of the top.
		if rel == wt.top && ev.Has(fsnotify.Remove) {
			wt.drop(rel)
			wt.sink.Event(Event{Op: Remove, Path: rel})
		} else if rel == wt.top && ev.Has(fsnotify.Rename) {
			wt.drop(rel)
			wt.sink.Event(Event{Op: Rename, Path: rel})
		}
		return
	}
	dirName, base := path.Split(ev.Name)
	dir, ok := wt.names[strings.TrimSuffix(dirName, "/")]
	if !ok {
		// An event about a watched directory itself (deleted, moved):
		// its parent reports it; or a watch already dropped.
		return
	}
	rel := path.Join(dir, base)
	switch {
	case ev.Has(fsnotify.Create):
		wt.sink.Event(Event{Op: Create, Path: rel})
		if fi, err := wt.root.Lstat(rel); err == nil && fi.IsDir() {
			if err := wt.add(rel, true); err != nil && !errors.Is(err, fs.ErrNotExist) {
				wt.sink.Lost()
			}
		}
	case ev.Has(fsnotify.Remove):
		wt.drop(rel)
		wt.sink.Event(Event{Op: Remove, Path: rel})
	case ev.Has(fsnotify.Rename):
		wt.drop(rel)
		wt.sink.Event(Event{Op: Rename, Path: rel})
	case ev.Has(fsnotify.Write):
		if unnamed(wt.root, base, rel) {
			return
		}
		wt.sink.Event(Event{Op: Write, Path: rel})
	}
}

// unnamed reports whether a written file is one opened without a name
// (O_TMPFILE, as every write of this module makes its new contents): the
// kernel names it "#<inode>" in the events of its directory, and it has
// no such name there. The watcher learns of it when it is linked in; a
// write to it says nothing a reader could open, and would tell a scope
// that something unnamed is being written in its directory. A real file
// named so is checked, and reported.
func unnamed(root *os.Root, base, rel string) bool {
	if len(base) < 2 || base[0] != '#' {
		return false
	}
	for _, c := range base[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	_, err := root.Lstat(rel)
	return errors.Is(err, fs.ErrNotExist)
}
