package jailtest

import (
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// Flip exchanges the entries a and b (a directory and a symbolic link,
// say) atomically, with renameat2 RENAME_EXCHANGE, in a bounded loop on
// its own goroutine until the returned function is called; that function
// waits for the loop and leaves a and b as they were.
func Flip(t testing.TB, a, b string) (stop func()) {
	t.Helper()
	exchange := func() error { return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE) }
	var done atomic.Bool
	var flips int
	var wg sync.WaitGroup
	wg.Go(func() {
		for ; !done.Load() && flips < 1_000_000; flips++ {
			if err := exchange(); err != nil {
				t.Errorf("exchanging %s and %s: %v", a, b, err)
				return
			}
		}
	})
	return func() {
		done.Store(true)
		wg.Wait()
		if flips%2 == 1 {
			if err := exchange(); err != nil {
				t.Errorf("exchanging %s and %s back: %v", a, b, err)
			}
		}
	}
}
