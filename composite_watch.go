package agentbackend

import (
	"context"
	"sync"

	"github.com/agentbackend/agentbackend/internal/pathjail"
)

var _ Watcher = (*CompositeBackend)(nil)

// Watch reports the changes to the tree at p across the backends it spans
// (see the function Watch): the backend p routes to, and every backend
// mounted below p, each watched its own way (natively, or by scanning),
// merged into one stream with the composite's paths. A path of the
// default backend hidden by a mount is not reported.
func (c *CompositeBackend) Watch(ctx context.Context, p string, opts *WatchOptions) (<-chan WatchEvent, error) {
	t, rel, err := c.resolve("watch", p)
	if err != nil {
		return nil, err
	}
	wctx, cancel := c.bound(ctx)
	type source struct {
		events <-chan WatchEvent
		prefix string
	}
	var sources []source
	fail := func(err error) (<-chan WatchEvent, error) {
		cancel()
		for _, s := range sources {
			for range s.events { // they close once cancel has stopped them
			}
		}
		return nil, err
	}
	events, err := Watch(wctx, t.b, t.inner, opts)
	if err != nil {
		return fail(withPath(err, t.inner, p))
	}
	sources = append(sources, source{events, t.prefix})
	for _, r := range c.routes {
		if _, below := belowDir(rel, r.prefix); below || rel == "." {
			if r.prefix == t.prefix {
				continue
			}
			events, err := Watch(wctx, r.b, ".", opts)
			if err != nil {
				return fail(err)
			}
			sources = append(sources, source{events, r.prefix})
		}
	}
	out := make(chan WatchEvent)
	var forwarders sync.WaitGroup
	for _, s := range sources {
		forwarders.Go(func() {
			for ev := range s.events {
				if ev.Op != WatchOverflow {
					if s.prefix != "" {
						ev.Path = pathjail.JoinRel(s.prefix, ev.Path)
					} else if c.route(ev.Path).prefix != "" {
						continue // hidden by a mount
					}
				}
				select {
				case out <- ev:
				case <-wctx.Done():
				}
			}
		})
	}
	go func() {
		forwarders.Wait()
		cancel()
		close(out)
	}()
	return out, nil
}
