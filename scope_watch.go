package agentbackend

import "context"

var _ Watcher = (*ScopedBackend)(nil)

// Watch reports the changes to the directory tree at p of the scope (see
// the function Watch), with paths relative to the scope's root. It needs
// the scope's permission to list p. Where the backend below is told of
// changes (a Watcher), its events are taken beneath the scope's jailed
// view (Local watches the scope's directory by descriptor, so nothing
// outside it, through a link or otherwise, can be reported), and those
// the scope's permissions do not let it list and read are never
// delivered; otherwise the scope itself is scanned, which applies the
// same rules. The watch ends with ctx, the scope's Close or the backend's.
// Watching the scope's root creates its directory, as a command does.
func (s *ScopedBackend) Watch(ctx context.Context, p string, opts *WatchOptions) (<-chan WatchEvent, error) {
	in, err := s.inner("watch", p)
	if err != nil {
		return nil, err
	}
	var o opCheck
	if _, err := s.check(ctx, "watch", AccessList, in, p, &o); err != nil {
		return nil, err
	}
	if in == s.at {
		// Watching the scope's root is using the scope: its directory
		// exists from then on, as for a command.
		if err := s.ensureRoot(ctx); err != nil {
			return nil, err
		}
	}
	w, native := s.fs.(Watcher)
	if !native {
		return pollWatch(ctx, s, p, opts)
	}
	wctx, cancel := s.lifetime.bound(ctx)
	events, err := w.Watch(wctx, in, opts)
	if err != nil {
		cancel()
		return nil, withPath(err, in, p)
	}
	out := make(chan WatchEvent)
	filter := s.newEntryFilter(false)
	go func() {
		defer close(out)
		defer cancel()
		for ev := range events {
			if ev.Op != WatchOverflow {
				rel, inside := belowOrSame(s.at, ev.Path)
				if !inside || !filter.keep(s.baseRel(ev.Path)) {
					continue
				}
				ev.Path = rel
			}
			select {
			case out <- ev:
			case <-wctx.Done():
				for range events { // the source closes its channel once it has stopped
				}
				return
			}
		}
	}()
	return out, nil
}
