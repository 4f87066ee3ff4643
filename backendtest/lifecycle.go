package backendtest

import (
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"

	ab "github.com/agentbackend/agentbackend"
)

func (s suite) testClose(t *testing.T) {
	b := s.newBackend(t)
	c := ctx(t)
	write(t, b, "f", "x") // remote backends connect on first use
	if b.Status() != ab.StatusConnected {
		t.Errorf("Status() = %s after an operation, want connected", b.Status())
	}

	var changes []ab.StatusChange
	var mu sync.Mutex
	b.OnStatusChange(func(ch ab.StatusChange) {
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, ch)
	})
	unsubscribed := 0
	unsubscribe := b.OnStatusChange(func(ab.StatusChange) { unsubscribed++ })
	unsubscribe()

	var closes atomic.Int32
	b.TrackCloser(closerFunc(func() error { closes.Add(1); return nil }))

	must(t, b.Close(), "Close")
	must(t, b.Close(), "second Close")
	if closes.Load() != 1 {
		t.Errorf("tracked closer closed %d times, want 1", closes.Load())
	}
	if b.Status() != ab.StatusDestroyed {
		t.Errorf("Status() = %s after Close", b.Status())
	}
	mu.Lock()
	if len(changes) != 1 || changes[0].From != ab.StatusConnected || changes[0].To != ab.StatusDestroyed || changes[0].Time.IsZero() {
		t.Errorf("status changes on Close: %+v", changes)
	}
	mu.Unlock()
	if unsubscribed != 0 {
		t.Error("an unsubscribed listener was called")
	}

	// A closer tracked after Close is closed at once rather than leaked.
	var late atomic.Bool
	b.TrackCloser(closerFunc(func() error { late.Store(true); return nil }))
	if !late.Load() {
		t.Error("TrackCloser after Close did not close the closer")
	}

	ops := map[string]error{}
	_, ops["Read"] = b.Read(c, "f")
	ops["Write"] = b.Write(c, "f", nil)
	_, ops["ReadDir"] = b.ReadDir(c, ".")
	ops["Mkdir"] = b.Mkdir(c, "d")
	_, ops["Exists"] = b.Exists(c, "f")
	_, ops["Stat"] = b.Stat(c, "f")
	ops["Remove"] = b.Remove(c, "f", ab.RemoveOptions{})
	ops["Rename"] = b.Rename(c, "f", "g")
	ops["Touch"] = b.Touch(c, "t")
	_, ops["Exec"] = b.Exec(c, "true", nil)
	for op, err := range ops {
		wantCode(t, err, ab.CodeDestroyed, op+" after Close")
	}
}

func (s suite) testConcurrent(t *testing.T) {
	b := s.fresh(t)
	const workers, rounds = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			errs <- concurrentWorker(t, b, w, rounds)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	names, err := b.ReadDir(ctx(t), "shared")
	must(t, err, "ReadDir shared")
	if len(names) != workers*rounds {
		t.Errorf("shared has %d entries, want %d", len(names), workers*rounds)
	}
	for w := range workers {
		got, err := b.ReadDir(ctx(t), fmt.Sprintf("w%d", w))
		must(t, err, "ReadDir worker dir")
		if !slices.Equal(got, []string{"final"}) {
			t.Errorf("worker %d left %q", w, got)
		}
	}
}

// concurrentWorker does a mix of every operation in its own directory and
// writes into a shared one, returning the first failure.
func concurrentWorker(t *testing.T, b ab.FileBackend, w, rounds int) error {
	c := ctx(t)
	dir := fmt.Sprintf("w%d", w)
	for r := range rounds {
		p := fmt.Sprintf("%s/f%d", dir, r)
		want := fmt.Sprintf("worker %d round %d", w, r)
		steps := []func() error{
			func() error { return b.Write(c, p, []byte(want)) },
			func() error {
				got, err := b.Read(c, p)
				if err == nil && string(got) != want {
					err = fmt.Errorf("read %q, want %q", got, want)
				}
				return err
			},
			func() error { _, err := b.Stat(c, p); return err },
			func() error { _, err := b.ReadDir(c, dir); return err },
			func() error { return b.Rename(c, p, p+".moved") },
			func() error { return b.Remove(c, p+".moved", ab.RemoveOptions{}) },
			func() error { return b.Touch(c, fmt.Sprintf("shared/%d-%d", w, r)) },
			func() error { _, err := b.ReadDir(c, "shared"); return err },
		}
		for i, step := range steps {
			if err := step(); err != nil {
				return fmt.Errorf("worker %d round %d step %d: %w", w, r, i, err)
			}
		}
	}
	return b.Write(c, dir+"/final", []byte("done"))
}

func (s suite) testFS(t *testing.T) {
	b := s.fresh(t)
	files := map[string]string{"a.txt": "A", "dir/b.txt": "B", "dir/sub/c.txt": "C", "dir/sub/d.bin": "\x00\x01"}
	for p, content := range files {
		write(t, b, p, content)
	}
	must(t, b.Mkdir(ctx(t), "emptydir"), "Mkdir")
	fsys := ab.FS(ctx(t), b)
	if err := fstest.TestFS(fsys, "a.txt", "dir/b.txt", "dir/sub/c.txt", "dir/sub/d.bin", "emptydir"); err != nil {
		t.Error(err)
	}
	var walked []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			walked = append(walked, p)
		}
		return err
	})
	must(t, err, "WalkDir")
	if want := []string{"a.txt", "dir/b.txt", "dir/sub/c.txt", "dir/sub/d.bin"}; !slices.Equal(walked, want) {
		t.Errorf("WalkDir found %q, want %q", walked, want)
	}
	sc, err := b.Scope("dir", nil)
	must(t, err, "Scope")
	if err := fstest.TestFS(ab.FS(ctx(t), sc), "b.txt", "sub/c.txt"); err != nil {
		t.Errorf("FS of a scope: %v", err)
	}
}
