package agentbackend

import (
	"context"
	"time"
)

// The warm pool of a PoolManager: PoolConfig.Warm backends made ahead of
// need from the defaults alone (for Docker: containers created, started
// and with their shell running), so that a key's first Acquire does not
// wait for one. A refiller makes them one at a time, in the background:
// at start, whenever one is taken, and again warmRetry after a failure.
// The number of ready backends never exceeds Warm. A backend taken from
// the warm pool belongs to its key from then on, and is reaped like any
// other (CleanupIdle, Close); the ready ones are closed by Close.

// warmRetry is how long the refiller waits after New failed.
var warmRetry = 5 * time.Second

// takeWarm returns a ready backend, or nil when none is, and wakes the
// refiller. A ready backend that is no longer connected is dropped.
func (p *PoolManager[C]) takeWarm() FileBackend {
	var dead []FileBackend
	defer func() {
		for _, b := range dead {
			_ = b.Close()
		}
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.wakeWarm()
	for len(p.warm) > 0 {
		b := p.warm[0]
		p.warm = p.warm[1:]
		if b.Status() == StatusConnected {
			return b
		}
		dead = append(dead, b)
	}
	return nil
}

// wakeWarm asks the refiller to top the warm pool up.
func (p *PoolManager[C]) wakeWarm() {
	select {
	case p.refill <- struct{}{}:
	default:
	}
}

// warmLoop tops the warm pool up whenever woken, until Close.
func (p *PoolManager[C]) warmLoop() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // a New in progress ends with the pool
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-p.refill:
		case <-retry.C:
		}
		if err := p.fillWarm(ctx); err != nil && ctx.Err() == nil {
			retry.Reset(warmRetry)
		}
	}
}

// fillWarm makes backends until Warm are ready.
func (p *PoolManager[C]) fillWarm(ctx context.Context) error {
	for {
		p.mu.Lock()
		need := !p.closed && len(p.warm) < p.cfg.Warm
		p.mu.Unlock()
		if !need {
			return nil
		}
		b, err := p.cfg.New(ctx, p.cfg.Defaults)
		if err != nil {
			return err
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = b.Close()
			return nil
		}
		p.warm = append(p.warm, b)
		p.mu.Unlock()
	}
}
