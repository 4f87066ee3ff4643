package agentbackend

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingPool returns a pool of memory backends whose RootDir comes from
// the config, and a counter of how many it created.
func countingPool(t *testing.T, cfg PoolConfig[MemoryConfig]) (*PoolManager[MemoryConfig], *atomic.Int32) {
	t.Helper()
	var created atomic.Int32
	cfg.New = func(ctx context.Context, c MemoryConfig) (FileBackend, error) {
		created.Add(1)
		return NewMemory(c)
	}
	p, err := NewPool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, &created
}

func TestPoolReusesByKey(t *testing.T) {
	ctx := context.Background()
	p, created := countingPool(t, PoolConfig[MemoryConfig]{Defaults: MemoryConfig{RootDir: "/default"}})

	a1, err := p.Acquire(ctx, "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := p.Acquire(ctx, "a", func(c *MemoryConfig) { c.RootDir = "/ignored-for-existing" })
	b1, _ := p.Acquire(ctx, "b", func(c *MemoryConfig) { c.RootDir = "/override" })
	if a1.Backend != a2.Backend || a1.Backend == b1.Backend || created.Load() != 2 {
		t.Fatalf("key reuse wrong: created %d", created.Load())
	}
	if a1.Backend.RootDir() != "/default" || b1.Backend.RootDir() != "/override" {
		t.Errorf("config merge: %q, %q", a1.Backend.RootDir(), b1.Backend.RootDir())
	}
	if s := p.Stats(); s != (PoolStats{Total: 2, Active: 2, Idle: 0}) {
		t.Errorf("Stats = %+v", s)
	}
	a1.Release()
	a2.Release()
	if s := p.Stats(); s != (PoolStats{Total: 2, Active: 1, Idle: 1}) {
		t.Errorf("Stats after release = %+v", s)
	}
	b1.Release()
	b1.Release() // an extra release never drives the count negative
	if s := p.Stats(); s.Idle != 2 {
		t.Errorf("Stats = %+v", s)
	}
}

func TestPoolOneBackendPerKeyUnderConcurrency(t *testing.T) {
	var created atomic.Int32
	gate := make(chan struct{})
	p, err := NewPool(PoolConfig[MemoryConfig]{New: func(ctx context.Context, c MemoryConfig) (FileBackend, error) {
		created.Add(1)
		<-gate // hold creation open so every caller piles up on it
		return NewMemory(c)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var wg sync.WaitGroup
	leases := make(chan Lease, 100)
	for range 100 {
		wg.Go(func() {
			l, err := p.Acquire(context.Background(), "k", nil)
			if err != nil {
				t.Error(err)
				return
			}
			leases <- l
		})
	}
	time.Sleep(20 * time.Millisecond) // let them queue (not a timing assertion)
	close(gate)
	wg.Wait()
	close(leases)
	var first FileBackend
	for l := range leases {
		if first == nil {
			first = l.Backend
		}
		if l.Backend != first {
			t.Fatal("two backends for one key")
		}
		l.Release()
	}
	if created.Load() != 1 {
		t.Errorf("created %d backends for one key", created.Load())
	}
}

func TestPoolUnpooledAndWith(t *testing.T) {
	ctx := context.Background()
	p, created := countingPool(t, PoolConfig[MemoryConfig]{})

	l1, _ := p.Acquire(ctx, "", nil)
	l2, _ := p.Acquire(ctx, "", nil)
	if l1.Backend == l2.Backend || p.Stats().Total != 0 {
		t.Fatal("an empty key must give fresh, unpooled backends")
	}
	l1.Release()
	if l1.Backend.Status() != StatusDestroyed {
		t.Error("releasing an unpooled backend must close it")
	}
	l2.Release()

	boom := errors.New("boom")
	err := p.With(ctx, "w", nil, func(b FileBackend) error {
		if p.Stats().Active != 1 {
			t.Error("not active inside With")
		}
		return boom
	})
	if !errors.Is(err, boom) || p.Stats().Active != 0 {
		t.Errorf("With on error: %v, stats %+v", err, p.Stats())
	}
	func() {
		defer func() { _ = recover() }()
		_ = p.With(ctx, "w", nil, func(FileBackend) error { panic("fn panicked") })
	}()
	if s := p.Stats(); s.Active != 0 || s.Idle != 1 {
		t.Errorf("With did not release on panic: %+v", s)
	}
	if created.Load() != 3 {
		t.Errorf("created %d, want 3 (two unpooled, one for w)", created.Load())
	}
}

func TestPoolReplacesDisconnectedBackend(t *testing.T) {
	ctx := context.Background()
	p, created := countingPool(t, PoolConfig[MemoryConfig]{})
	l, _ := p.Acquire(ctx, "k", nil)
	old := l.Backend
	l.Release()
	old.Close() // closed behind the pool's back
	l2, err := p.Acquire(ctx, "k", nil)
	if err != nil || l2.Backend == old || created.Load() != 2 {
		t.Fatalf("destroyed backend not replaced: %v, created %d", err, created.Load())
	}
	l2.Release()

	// A backend replaced while in use is closed by its last release.
	l3, _ := p.Acquire(ctx, "k", nil)
	inUse := l3.Backend
	p.mu.Lock()
	p.retireLocked("k", p.entries["k"])
	p.mu.Unlock()
	if inUse.Status() == StatusDestroyed {
		t.Fatal("retired backend closed while in use")
	}
	l3.Release()
	if inUse.Status() != StatusDestroyed {
		t.Error("retired backend not closed by its last release")
	}
}

func TestPoolIdleCleanup(t *testing.T) {
	ctx := context.Background()
	p, _ := countingPool(t, PoolConfig[MemoryConfig]{IdleTimeout: time.Nanosecond})
	busy, _ := p.Acquire(ctx, "busy", nil)
	idle, _ := p.Acquire(ctx, "idle", nil)
	idle.Release()
	time.Sleep(time.Millisecond)
	if n := p.CleanupIdle(); n != 1 {
		t.Errorf("CleanupIdle closed %d, want 1", n)
	}
	if idle.Backend.Status() != StatusDestroyed || busy.Backend.Status() != StatusConnected {
		t.Error("cleanup closed the wrong backend")
	}
	busy.Release()

	// Periodic cleanup runs on its own and stops on Close.
	pp, _ := countingPool(t, PoolConfig[MemoryConfig]{IdleTimeout: time.Nanosecond, CleanupInterval: 5 * time.Millisecond})
	l, _ := pp.Acquire(ctx, "x", nil)
	l.Release()
	deadline := time.Now().Add(10 * time.Second)
	for pp.Stats().Total != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if pp.Stats().Total != 0 {
		t.Error("periodic cleanup never ran")
	}
}

func TestPoolClose(t *testing.T) {
	ctx := context.Background()
	p, _ := countingPool(t, PoolConfig[MemoryConfig]{CleanupInterval: time.Hour})
	l, _ := p.Acquire(ctx, "k", nil)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if l.Backend.Status() != StatusDestroyed {
		t.Error("Close left a backend open")
	}
	l.Release() // after Close: harmless
	if _, err := p.Acquire(ctx, "k", nil); !errors.Is(err, ErrDestroyed) {
		t.Errorf("Acquire after Close = %v", err)
	}
	if _, err := NewPool(PoolConfig[MemoryConfig]{}); !errors.Is(err, ErrInvalidConfiguration) {
		t.Errorf("NewPool without New = %v", err)
	}
}

func TestPoolAcquireHonoursContext(t *testing.T) {
	gate := make(chan struct{})
	defer close(gate)
	p, _ := NewPool(PoolConfig[MemoryConfig]{New: func(ctx context.Context, c MemoryConfig) (FileBackend, error) {
		<-gate
		return NewMemory(c)
	}})
	defer p.Close()
	go p.Acquire(context.Background(), "slow", nil) //nolint:errcheck // the creator; released by gate
	time.Sleep(10 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Acquire(ctx, "slow", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("waiting Acquire with a cancelled ctx = %v", err)
	}
}

// BenchmarkPoolAcquireRelease measures a warm key's Acquire+Release (target
// ≥ 1M/s, 0 allocs) beside the least any pool must do: a mutex-guarded map
// lookup and a counter update.
func BenchmarkPoolAcquireRelease(b *testing.B) {
	ctx := context.Background()
	b.Run("raw", func(b *testing.B) {
		var mu sync.Mutex
		m := map[string]*int{"warm": new(int)}
		b.ReportAllocs()
		for b.Loop() {
			mu.Lock()
			*m["warm"]++
			mu.Unlock()
			mu.Lock()
			*m["warm"]--
			mu.Unlock()
		}
	})
	b.Run("sdk", func(b *testing.B) {
		p, _ := NewPool(PoolConfig[MemoryConfig]{New: func(ctx context.Context, c MemoryConfig) (FileBackend, error) {
			return NewMemory(c)
		}})
		defer p.Close()
		l, _ := p.Acquire(ctx, "warm", nil)
		l.Release()
		b.ReportAllocs()
		for b.Loop() {
			l, err := p.Acquire(ctx, "warm", nil)
			if err != nil {
				b.Fatal(err)
			}
			l.Release()
		}
	})
}

// waitWarm waits until the pool has n ready backends.
func waitWarm(t *testing.T, p *PoolManager[MemoryConfig], n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); p.Stats().Warm != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("warm pool has %d ready, want %d", p.Stats().Warm, n)
		}
	}
}

// TestPoolWarm: the warm pool fills to its bound and no further; a key's
// first Acquire without an override takes a ready backend (made from the
// defaults) and the pool makes another; one with an override makes its
// own; a failing New is retried; a ready backend closed meanwhile is not
// handed out; Close closes the ready ones.
func TestPoolWarm(t *testing.T) {
	defer func(d time.Duration) { warmRetry = d }(warmRetry)
	warmRetry = 10 * time.Millisecond
	ctx := context.Background()
	var failures atomic.Int32
	failures.Store(2)
	var made sync.Map // the backends New made
	var created atomic.Int32
	p, err := NewPool(PoolConfig[MemoryConfig]{
		Defaults: MemoryConfig{RootDir: "/default"},
		Warm:     2,
		New: func(ctx context.Context, c MemoryConfig) (FileBackend, error) {
			if failures.Add(-1) >= 0 {
				return nil, errors.New("injected New failure")
			}
			created.Add(1)
			b, err := NewMemory(c)
			made.Store(b, true)
			return b, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitWarm(t, p, 2)
	time.Sleep(50 * time.Millisecond)
	if s := p.Stats(); s.Warm != 2 || created.Load() != 2 {
		t.Fatalf("filled past its bound: %+v, %d made", s, created.Load())
	}

	a, err := p.Acquire(ctx, "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := made.Load(a.Backend); !ok || a.Backend.RootDir() != "/default" {
		t.Errorf("Acquire did not take a warm backend")
	}
	waitWarm(t, p, 2)
	if created.Load() != 3 {
		t.Errorf("%d made after one was taken, want 3", created.Load())
	}
	b, err := p.Acquire(ctx, "b", func(c *MemoryConfig) { c.RootDir = "/override" })
	if err != nil {
		t.Fatal(err)
	}
	if b.Backend.RootDir() != "/override" || p.Stats().Warm != 2 {
		t.Errorf("an override took a warm backend: %q, %+v", b.Backend.RootDir(), p.Stats())
	}

	// A ready backend that stopped being connected is dropped, not given.
	p.mu.Lock()
	stale := p.warm[0]
	p.mu.Unlock()
	stale.Close()
	c, err := p.Acquire(ctx, "c", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Backend == stale || c.Backend.Status() != StatusConnected {
		t.Errorf("a closed warm backend was handed out")
	}
	waitWarm(t, p, 2)
	p.mu.Lock()
	ready := append([]FileBackend(nil), p.warm...)
	p.mu.Unlock()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for _, b := range ready {
		if b.Status() != StatusDestroyed {
			t.Errorf("Close left a warm backend %s", b.Status())
		}
	}
	if s := p.Stats(); s.Warm != 0 {
		t.Errorf("Stats after Close = %+v", s)
	}
}
