package agentbackend

import (
	"context"
	"errors"
	"io/fs"
	"sync"
	"time"
)

// DefaultIdleTimeout is how long a pooled backend with no users is kept
// when PoolConfig.IdleTimeout is zero (the reference's default).
const DefaultIdleTimeout = 5 * time.Minute

// PoolConfig configures a PoolManager. C is the configuration type of the
// backends it makes (LocalConfig, say).
type PoolConfig[C any] struct {
	// Defaults is the configuration every backend starts from.
	Defaults C
	// New makes a backend from a configuration. It should return a backend
	// ready for use (for a remote backend, connected).
	New func(ctx context.Context, cfg C) (FileBackend, error)
	// IdleTimeout is how long a backend nobody uses stays in the pool
	// before CleanupIdle closes it. Zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// CleanupInterval, if positive, runs CleanupIdle periodically until
	// Close.
	CleanupInterval time.Duration
	// Warm is how many backends made from Defaults alone the pool keeps
	// ready, so that an Acquire without an override for a key that has no
	// backend takes one at once instead of waiting for New (a container to
	// start, say); another is made in the background. An Acquire with an
	// override makes its own. Close closes the ready ones. Zero means none.
	Warm int
}

// PoolManager reuses backends by key, for servers that handle many requests
// for the same workspaces: at most one backend per key exists, even under
// concurrent Acquire, and it is reused while it is connected. A backend
// nobody has used for IdleTimeout is closed by CleanupIdle.
//
// It is safe for concurrent use.
type PoolManager[C any] struct {
	cfg  PoolConfig[C]
	stop chan struct{} // closed by Close; ends the cleanup ticker
	done sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	entries map[string]*poolEntry
	warm    []FileBackend // ready backends of the warm pool (see pool_warm.go)
	refill  chan struct{} // wakes the warm pool's refiller
}

// poolEntry is one key's backend. Its fields are guarded by the pool's mu.
type poolEntry struct {
	backend  FileBackend
	ready    chan struct{} // closed once backend (or err) is set
	err      error
	uses     int
	lastUsed time.Time
	retired  bool // replaced or dropped: close when uses reaches zero
}

// PoolStats counts a pool's backends.
type PoolStats struct {
	Total  int // backends in the pool
	Active int // backends with at least one user
	Idle   int // backends with none
	Warm   int // ready backends of the warm pool, given to no key yet (PoolConfig.Warm)
}

// Lease is a backend acquired from a pool. Release it exactly once when done.
type Lease struct {
	Backend FileBackend
	pool    interface{ release(*poolEntry, FileBackend) }
	entry   *poolEntry // nil for an unpooled backend
}

// Release gives the backend back. A pooled backend stays for the next
// Acquire of its key; an unpooled one (acquired without a key) is closed.
func (l Lease) Release() {
	if l.pool != nil {
		l.pool.release(l.entry, l.Backend)
	}
}

// NewPool returns a pool; it fails when cfg.New is nil.
func NewPool[C any](cfg PoolConfig[C]) (*PoolManager[C], error) {
	if cfg.New == nil {
		return nil, errConfig("PoolConfig.New is required")
	}
	if cfg.Warm < 0 {
		return nil, errConfig("PoolConfig.Warm must not be negative")
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	p := &PoolManager[C]{cfg: cfg, stop: make(chan struct{}), entries: make(map[string]*poolEntry), refill: make(chan struct{}, 1)}
	if cfg.CleanupInterval > 0 {
		p.done.Go(p.cleanupLoop)
	}
	if cfg.Warm > 0 {
		p.done.Go(p.warmLoop)
		p.wakeWarm()
	}
	return p, nil
}

func (p *PoolManager[C]) cleanupLoop() {
	t := time.NewTicker(p.cfg.CleanupInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.CleanupIdle()
		}
	}
}

var errPoolClosed = &Error{Code: CodeDestroyed, Op: "acquire", Err: fs.ErrClosed, Message: "backend pool is closed"}

// Acquire returns the backend for key, creating it from the pool's defaults
// with override applied (override may be nil) when there is none or the
// existing one is not connected. The override is used only when a backend
// is created. An empty key makes a fresh backend outside the pool, closed by
// its Lease's Release. Concurrent Acquires of one key create one backend.
func (p *PoolManager[C]) Acquire(ctx context.Context, key string, override func(*C)) (Lease, error) {
	if key == "" {
		b, err := p.create(ctx, override)
		if err != nil {
			return Lease{}, err
		}
		return Lease{Backend: b, pool: p}, nil
	}
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return Lease{}, errPoolClosed
		}
		e := p.entries[key]
		if e == nil {
			return p.createEntry(ctx, key, override) // unlocks p.mu
		}
		select {
		case <-e.ready:
		default:
			// Another caller is creating it: wait, then look again.
			p.mu.Unlock()
			select {
			case <-e.ready:
				continue
			case <-ctx.Done():
				return Lease{}, ctx.Err()
			}
		}
		if e.err == nil && e.backend.Status() == StatusConnected {
			e.uses++
			e.lastUsed = time.Now()
			p.mu.Unlock()
			return Lease{Backend: e.backend, pool: p, entry: e}, nil
		}
		// Failed or no longer connected: retire it and make a new one.
		stale := p.retireLocked(key, e)
		p.mu.Unlock()
		if stale != nil {
			_ = stale.Close() // it is broken already; its close error has nobody to go to
		}
	}
}

// createEntry makes the backend for key with p.mu held on entry; it
// releases p.mu while the backend is being made, so other keys proceed.
func (p *PoolManager[C]) createEntry(ctx context.Context, key string, override func(*C)) (Lease, error) {
	e := &poolEntry{ready: make(chan struct{}), uses: 1}
	p.entries[key] = e
	p.mu.Unlock()

	b, err := p.create(ctx, override)

	p.mu.Lock()
	e.backend, e.err, e.lastUsed = b, err, time.Now()
	close(e.ready)
	if err != nil || p.closed {
		if p.entries[key] == e {
			delete(p.entries, key)
		}
		p.mu.Unlock()
		if err == nil {
			_ = b.Close()
			err = errPoolClosed
		}
		return Lease{}, err
	}
	p.mu.Unlock()
	return Lease{Backend: b, pool: p, entry: e}, nil
}

// create makes a backend: a ready one of the warm pool when there is no
// override, else one of New.
func (p *PoolManager[C]) create(ctx context.Context, override func(*C)) (FileBackend, error) {
	if override == nil && p.cfg.Warm > 0 {
		if b := p.takeWarm(); b != nil {
			return b, nil
		}
	}
	cfg := p.cfg.Defaults
	if override != nil {
		override(&cfg)
	}
	return p.cfg.New(ctx, cfg)
}

// retireLocked takes e out of the pool. It returns the backend for the
// caller to close once p.mu is released when nobody uses it; otherwise the
// last Release closes it.
func (p *PoolManager[C]) retireLocked(key string, e *poolEntry) FileBackend {
	if p.entries[key] == e {
		delete(p.entries, key)
	}
	e.retired = true
	if e.uses == 0 {
		return e.backend
	}
	return nil
}

func (p *PoolManager[C]) release(e *poolEntry, b FileBackend) {
	if e == nil {
		_ = b.Close()
		return
	}
	p.mu.Lock()
	if e.uses > 0 {
		e.uses--
	}
	e.lastUsed = time.Now()
	closeNow := e.retired && e.uses == 0
	p.mu.Unlock()
	if closeNow {
		_ = b.Close()
	}
}

// With acquires the backend for key, calls fn with it and releases it, even
// when fn returns an error or panics.
func (p *PoolManager[C]) With(ctx context.Context, key string, override func(*C), fn func(FileBackend) error) error {
	lease, err := p.Acquire(ctx, key, override)
	if err != nil {
		return err
	}
	defer lease.Release()
	return fn(lease.Backend)
}

// CleanupIdle closes and drops the backends nobody has used for the idle
// timeout, and reports how many it closed.
func (p *PoolManager[C]) CleanupIdle() int {
	now := time.Now()
	var idle []FileBackend
	p.mu.Lock()
	for key, e := range p.entries {
		if isReady(e) && e.uses == 0 && now.Sub(e.lastUsed) > p.cfg.IdleTimeout {
			delete(p.entries, key)
			e.retired = true
			if e.backend != nil {
				idle = append(idle, e.backend)
			}
		}
	}
	p.mu.Unlock()
	for _, b := range idle {
		_ = b.Close()
	}
	return len(idle)
}

func isReady(e *poolEntry) bool {
	select {
	case <-e.ready:
		return true
	default:
		return false
	}
}

// Stats counts the pool's backends.
func (p *PoolManager[C]) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := PoolStats{Total: len(p.entries), Warm: len(p.warm)}
	for _, e := range p.entries {
		if e.uses > 0 {
			s.Active++
		} else {
			s.Idle++
		}
	}
	return s
}

// Close stops periodic cleanup and the warm pool's refiller and closes
// every pooled backend, in use or not, and the warm pool's; later Acquires
// fail. Idempotent.
func (p *PoolManager[C]) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	entries := p.entries
	p.entries = map[string]*poolEntry{}
	p.mu.Unlock()

	close(p.stop)
	p.done.Wait()
	p.mu.Lock()
	warm := p.warm
	p.warm = nil
	p.mu.Unlock()
	var errs []error
	for _, b := range warm {
		if err := b.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, e := range entries {
		if isReady(e) && e.backend != nil {
			if err := e.backend.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
