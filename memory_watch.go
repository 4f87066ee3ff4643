package agentbackend

import (
	"context"
	"path"
)

var _ Watcher = (*MemoryBackend)(nil)

// memWatch is a watch of a MemoryBackend: the directory watched and the
// queue its events go to.
type memWatch struct {
	dir string // relative to the root
	q   *watchQueue
}

// Watch reports the changes to the directory tree at p as they happen
// (see the function Watch): Write is a create or a write, Mkdir, Touch of
// a new file and the parents they create are creates, Remove is one
// remove (a directory's contents go with it, unreported), Rename is a
// rename of the old path and a create of the new one. Touch of an existing
// path, which changes only its time, is not reported.
func (b *MemoryBackend) Watch(ctx context.Context, p string, opts *WatchOptions) (<-chan WatchEvent, error) {
	rel, err := b.begin(ctx, CodeReadFailed, "watch", p)
	if err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	w := &memWatch{dir: rel, q: newWatchQueue(o.Queue)}
	b.mu.Lock()
	if b.idx == nil {
		b.mu.Unlock()
		return nil, errDestroyed("watch", TypeMemory)
	}
	e, ok := b.idx.get(rel)
	switch {
	case !ok:
		b.mu.Unlock()
		return nil, notFound(CodeReadFailed, "watch", p)
	case !e.dir:
		b.mu.Unlock()
		return nil, errArgument("watch", p, "not a directory: watch the directory that holds it")
	}
	b.watches = append(b.watches, w)
	b.mu.Unlock()
	wctx, cancel := b.bound(ctx)
	go func() {
		w.q.deliver(wctx, nil)
		cancel()
		b.mu.Lock()
		for i, x := range b.watches {
			if x == w {
				b.watches = append(b.watches[:i], b.watches[i+1:]...)
				break
			}
		}
		b.mu.Unlock()
	}()
	return w.q.out, nil
}

// publish reports a change to the watches whose tree holds rel; b.mu is
// held for writing.
func (b *MemoryBackend) publish(op WatchOp, rel string) {
	for _, w := range b.watches {
		if _, ok := belowOrSame(w.dir, rel); ok || w.dir == "." {
			w.q.push(WatchEvent{Op: op, Path: rel})
		}
	}
}

// missingDirs returns the directories above key (and key itself, with
// self) that do not exist yet, top first: what a mutation of key creates.
func missingDirs(idx *memIndex, key string, self bool) []string {
	var missing []string
	at := key
	if !self {
		at = parentKey(key)
	}
	for at != "." {
		if _, ok := idx.get(at); ok {
			break
		}
		missing = append(missing, at)
		at = parentKey(at)
	}
	for i, j := 0, len(missing)-1; i < j; i, j = i+1, j-1 {
		missing[i], missing[j] = missing[j], missing[i]
	}
	return missing
}

func parentKey(key string) string { return path.Dir(key) }

// created publishes the creation of key and of the missing parents a
// mutation is about to create (found before it runs: missing).
func (b *MemoryBackend) created(missing []string, key string, existed bool) {
	for _, d := range missing {
		b.publish(WatchCreate, d)
	}
	if existed {
		b.publish(WatchWrite, key)
	} else if len(missing) == 0 || missing[len(missing)-1] != key {
		b.publish(WatchCreate, key)
	}
}
