//go:build linux

package agentbackend_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
)

// The attacks of a hostile agent on a scope's watch: through links to a
// sibling scope, through a directory swapped for such a link while the
// watch follows new directories, and through paths its permissions deny.
// Each asserts that no event names what the scope must not see.

// collect reads events until ctx ends or the channel closes.
func collect(ch <-chan ab.WatchEvent) func() []ab.WatchEvent {
	var mu sync.Mutex
	var seen []ab.WatchEvent
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range ch {
			mu.Lock()
			seen = append(seen, ev)
			mu.Unlock()
		}
	}()
	return func() []ab.WatchEvent {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

// awaitEvent waits until seen (polled) holds an event for path.
func awaitEvent(t *testing.T, ch <-chan ab.WatchEvent, path string) []ab.WatchEvent {
	t.Helper()
	var seen []ab.WatchEvent
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			require.True(t, ok, "the watch ended before %s: %v", path, seen)
			seen = append(seen, ev)
			if ev.Path == path {
				return seen
			}
		case <-timeout:
			require.Failf(t, "no event", "%s never came: %v", path, seen)
		}
	}
}

func TestAttackWatchThroughLinks(t *testing.T) {
	b := newLocal(t, ab.LocalConfig{Isolation: ab.IsolationNone})
	root := b.RootDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "s1/sub"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "s2"), 0o755))
	// Links planted by the agent of s1 towards its sibling, and out of the
	// workspace.
	require.NoError(t, os.Symlink("../s2", filepath.Join(root, "s1/sibling")))
	require.NoError(t, os.Symlink("../../s2", filepath.Join(root, "s1/sub/deeper")))
	outside := t.TempDir()
	require.NoError(t, os.Symlink(outside, filepath.Join(root, "s1/out")))

	s1, err := b.Scope("s1", nil)
	require.NoError(t, err)
	defer s1.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s1.Watch(ctx, ".", nil)
	require.NoError(t, err)

	require.NoError(t, os.WriteFile(filepath.Join(root, "s2/secret.txt"), []byte("s2's"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(outside, "host-secret.txt"), []byte("host's"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(root, "s2/newdir"), 0o755))
	// A link planted after the watch started, to a directory that changes.
	require.NoError(t, os.Symlink("../s2/newdir", filepath.Join(root, "s1/late")))
	require.NoError(t, os.WriteFile(filepath.Join(root, "s2/newdir/later.txt"), []byte("s2's"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(root, "s1/mine.txt"), []byte("s1's"), 0o644))
	seen := awaitEvent(t, ch, "mine.txt")
	cancel()
	seen = append(seen, collect(ch)()...)
	for _, ev := range seen {
		assert.NotContains(t, ev.Path, "secret", "an event from beyond a link: %v", ev)
		assert.NotContains(t, ev.Path, "later", "an event from beyond a link: %v", ev)
	}
}

// The agent swaps a directory of its scope for a link to its sibling
// again and again while the watch follows new directories: whatever the
// interleaving, the watch lands on directories beneath the scope only.
func TestAttackWatchSwappedDirectory(t *testing.T) {
	b := newLocal(t, ab.LocalConfig{Isolation: ab.IsolationNone})
	root := b.RootDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "s1"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "s2"), 0o755))
	s1, err := b.Scope("s1", nil)
	require.NoError(t, err)
	defer s1.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s1.Watch(ctx, ".", nil)
	require.NoError(t, err)
	seen := collect(ch)

	stop := make(chan struct{})
	var swapper sync.WaitGroup
	swapper.Go(func() {
		d := filepath.Join(root, "s1/d")
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			os.RemoveAll(d)
			if i%2 == 0 {
				_ = os.Mkdir(d, 0o755)
			} else {
				_ = os.Symlink("../s2", d)
			}
		}
	})
	for i := range 200 {
		_ = os.WriteFile(filepath.Join(root, "s2", fmt.Sprintf("secret-%d.txt", i)), nil, 0o644)
	}
	close(stop)
	swapper.Wait()
	require.NoError(t, os.WriteFile(filepath.Join(root, "s1/end.txt"), nil, 0o644))
	time.Sleep(100 * time.Millisecond) // let the last events arrive; absence is what is checked
	cancel()
	events := seen()
	require.NotEmpty(t, events)
	for _, ev := range events {
		assert.NotContains(t, ev.Path, "secret", "an event from the sibling scope: %v", ev)
	}
}

// Paths the scope's permissions deny for listing or reading are never
// reported, natively (Local) or by scanning (Memory).
func TestAttackWatchDeniedPaths(t *testing.T) {
	for name, b := range map[string]ab.FileBackend{
		"local":  newLocal(t, ab.LocalConfig{Isolation: ab.IsolationNone}),
		"memory": newMemory(t),
	} {
		t.Run(name, func(t *testing.T) {
			s := permScope(t, b, "app", &ab.Permissions{
				Read: ab.Policy{Rules: []ab.Rule{{Pattern: "**/.env", Action: ab.Deny}}},
				List: ab.Policy{Rules: []ab.Rule{{Pattern: "private/**", Action: ab.Deny}}},
			})
			c := context.Background()
			require.NoError(t, b.Mkdir(c, "app/private"))
			ctx, cancel := context.WithCancel(c)
			defer cancel()
			ch, err := s.Watch(ctx, ".", &ab.WatchOptions{PollInterval: 20 * time.Millisecond})
			require.NoError(t, err)
			require.NoError(t, b.Write(c, "app/.env", []byte("KEY=secret")))
			require.NoError(t, b.Write(c, "app/private/key.pem", []byte("secret")))
			require.NoError(t, b.Write(c, "app/private/deeper/more.txt", []byte("secret")))
			require.NoError(t, b.Write(c, "app/public.txt", []byte("fine")))
			seen := awaitEvent(t, ch, "public.txt")
			cancel()
			seen = append(seen, collect(ch)()...)
			for _, ev := range seen {
				assert.False(t, strings.Contains(ev.Path, ".env") || strings.HasPrefix(ev.Path, "private/"),
					"a denied path was reported: %v", ev)
			}
		})
	}
}
