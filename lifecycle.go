package agentbackend

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// lifecycle is what every backend of this package embeds: its type, the
// status state machine with its listeners, the tracked closers and the
// registry of child scopes. Its exported methods become the backend's.
type lifecycle struct {
	typ       BackendType
	destroyed atomic.Bool // read on every operation; mirrors status == destroyed

	mu        sync.Mutex
	status    Status
	nextID    int
	listeners []statusListener
	closers   []io.Closer
	lifetime  // ends with Close

	scopeRegistry
}

type statusListener struct {
	id int
	fn func(StatusChange)
}

func (l *lifecycle) init(t BackendType, initial Status) {
	l.typ = t
	l.status = initial
}

// Type names the kind of backend.
func (l *lifecycle) Type() BackendType { return l.typ }

// Status reports the current connection state.
func (l *lifecycle) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status
}

// OnStatusChange registers fn to be called on every status transition and
// returns a function that unregisters it.
func (l *lifecycle) OnStatusChange(fn func(StatusChange)) (unsubscribe func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nextID++
	id := l.nextID
	l.listeners = append(l.listeners, statusListener{id, fn})
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.listeners = slices.DeleteFunc(l.listeners, func(s statusListener) bool { return s.id == id })
	}
}

// TrackCloser registers c to be closed by Close. On a backend that is
// already closed, c is closed at once so that nothing leaks.
func (l *lifecycle) TrackCloser(c io.Closer) {
	l.mu.Lock()
	if l.status != StatusDestroyed {
		l.closers = append(l.closers, c)
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	_ = c.Close()
}

// setStatus moves to a new status and tells the listeners. It reports
// whether anything changed; nothing leaves destroyed.
func (l *lifecycle) setStatus(to Status, cause error) bool {
	l.mu.Lock()
	notify, ok := l.transitionLocked(to, cause)
	l.mu.Unlock()
	if ok {
		notify()
	}
	return ok
}

// transitionLocked changes the status under l.mu and returns the function
// that tells the listeners, to be called after l.mu is released.
func (l *lifecycle) transitionLocked(to Status, cause error) (notify func(), ok bool) {
	from := l.status
	if from == to || from == StatusDestroyed {
		return nil, false
	}
	l.status = to
	if to == StatusDestroyed {
		l.destroyed.Store(true)
	}
	listeners := slices.Clone(l.listeners)
	change := StatusChange{From: from, To: to, Time: time.Now(), Err: cause}
	return func() {
		for _, s := range listeners {
			s.fn(change)
		}
	}, true
}

// lifetime is the life of a backend or a scope, which Close ends: what
// runs on past the call that started it (a watch) is bound to it.
type lifetime struct {
	lifeMu sync.Mutex
	life   context.Context // made on first use
	cancel context.CancelFunc
	ended  bool
}

// bound returns a context that ends with ctx or with the end of the
// lifetime; release it with its cancel.
func (l *lifetime) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	l.lifeMu.Lock()
	if l.life == nil {
		l.life, l.cancel = context.WithCancel(context.Background())
		if l.ended {
			l.cancel()
		}
	}
	life := l.life
	l.lifeMu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(life, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// end ends the lifetime: every context bound to it ends.
func (l *lifetime) end() {
	l.lifeMu.Lock()
	l.ended = true
	if l.cancel != nil {
		l.cancel()
	}
	l.lifeMu.Unlock()
}

// checkOpen returns BACKEND_DESTROYED once Close has been called.
func (l *lifecycle) checkOpen(op string) error {
	if l.destroyed.Load() {
		return errDestroyed(op, l.typ)
	}
	return nil
}

// destroy moves to destroyed and closes the tracked closers, newest first.
// Only the first call does anything; it reports whether it was that call,
// and the closers' errors joined.
func (l *lifecycle) destroy() (first bool, err error) {
	l.mu.Lock()
	notify, ok := l.transitionLocked(StatusDestroyed, nil)
	closers := l.closers
	l.closers = nil
	l.mu.Unlock()
	if ok {
		l.lifetime.end()
	}
	if !ok {
		return false, nil
	}
	var errs []error
	for _, c := range slices.Backward(closers) {
		if cerr := c.Close(); cerr != nil {
			errs = append(errs, cerr)
		}
	}
	notify()
	return true, errors.Join(errs...)
}

// scopeRegistry records the live scopes created directly on a backend or on
// a scope, for ActiveScopes. Closing a scope unregisters it.
type scopeRegistry struct {
	scopeMu sync.Mutex
	scopes  map[*ScopedBackend]struct{}
}

// ActiveScopes lists the paths of the live scopes created directly on this
// backend, sorted.
func (r *scopeRegistry) ActiveScopes() []string {
	r.scopeMu.Lock()
	defer r.scopeMu.Unlock()
	paths := make([]string, 0, len(r.scopes))
	for s := range r.scopes {
		paths = append(paths, s.scopePath)
	}
	slices.Sort(paths)
	return paths
}

func (r *scopeRegistry) addScope(s *ScopedBackend) {
	r.scopeMu.Lock()
	defer r.scopeMu.Unlock()
	if r.scopes == nil {
		r.scopes = make(map[*ScopedBackend]struct{})
	}
	r.scopes[s] = struct{}{}
}

func (r *scopeRegistry) removeScope(s *ScopedBackend) {
	r.scopeMu.Lock()
	defer r.scopeMu.Unlock()
	delete(r.scopes, s)
}

// registry lets NewScope find where to register a scope of this backend.
func (r *scopeRegistry) registry() *scopeRegistry { return r }
