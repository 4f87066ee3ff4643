//go:build linux

package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/daemon"
	"github.com/agentbackend/agentbackend/internal/tmpfile"
)

// hostTree lists every name below dir on the host, hidden or not, relative
// to dir and sorted.
func hostTree(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err == nil && p != dir {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, rel)
		}
		return err
	}))
	slices.Sort(names)
	return names
}

// versioned is the contents of version v of a client's file: its size
// varies from 1 to 4 MiB, every byte says the version, the first eight
// bytes say it in digits.
func versioned(v int) []byte {
	data := bytes.Repeat([]byte{byte('a' + v%26)}, (1+v%4)<<20)
	copy(data, fmt.Sprintf("%08d", v))
	return data
}

// versionOf reads back the version of a file written with versioned, or -1
// when it is not whole.
func versionOf(data []byte) int {
	if len(data) < 8 {
		return -1
	}
	var v int
	if _, err := fmt.Sscanf(string(data[:8]), "%08d", &v); err != nil || !bytes.Equal(data, versioned(v)) {
		return -1
	}
	return v
}

// TestDaemonKilledUnderWritersLeavesNothing: twenty clients write files of
// 1-4 MiB over and over; the daemon is killed (SIGKILL) in the middle.
// Every file is whole and at least as new as the last write its client
// saw acknowledged, and the workspace holds no other name; restarted on
// the same workspace, the daemon serves the same files and nothing more.
func TestDaemonKilledUnderWritersLeavesNothing(t *testing.T) {
	t.Parallel()
	d := startCLIDaemon(t)
	const clients = 20
	acked := make([]int, clients) // the last version acknowledged, per client
	var wg sync.WaitGroup
	ctx := context.Background()
	var written sync.WaitGroup
	written.Add(clients)
	for i := range clients {
		b := d.remote(t, ab.RemoteConfig{Reconnect: ab.ReconnectConfig{Disabled: true}})
		wg.Go(func() {
			first := true
			for v := 1; ; v++ {
				err := b.Write(ctx, fmt.Sprintf("c%02d/file.bin", i), versioned(v))
				if err != nil {
					if first {
						written.Done()
					}
					return // the daemon is gone
				}
				acked[i] = v
				if first {
					written.Done()
					first = false
				}
			}
		})
	}
	written.Wait()
	time.Sleep(300 * time.Millisecond) // in the middle of the next writes
	d.kill()
	wg.Wait()

	want := make([]string, 0, 2*clients)
	for i := range clients {
		want = append(want, fmt.Sprintf("c%02d", i), fmt.Sprintf("c%02d/file.bin", i))
	}
	check := func(when string) {
		assert.Equal(t, want, hostTree(t, d.root), "%s: the workspace holds other names", when)
		for i := range clients {
			data, err := os.ReadFile(filepath.Join(d.root, fmt.Sprintf("c%02d/file.bin", i)))
			require.NoError(t, err)
			v := versionOf(data)
			assert.GreaterOrEqual(t, v, acked[i], "%s: client %d's file is torn or older than acknowledged", when, i)
		}
	}
	check("after the kill")

	again := startCLIDaemonAt(t, d.root, freePort(t), nil)
	b := again.remote(t, ab.RemoteConfig{})
	names, err := b.ReadDir(ctx, "c00")
	require.NoError(t, err)
	assert.Equal(t, []string{"file.bin"}, names)
	check("after the restart")
}

// TestLostConnectionLeavesNothing: a client's connection breaks in the
// middle of large writes (the daemon alive): the writes fail with
// CONNECTION_CLOSED, the files keep their old contents, and at no time
// does the workspace show a temporary name, on the host or in a listing.
func TestLostConnectionLeavesNothing(t *testing.T) {
	root := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	conns := newConnCounter()
	d, err := daemon.New(daemon.Config{RootDir: root, HostKey: testKey, Isolation: ab.IsolationNone, Logger: slog.New(conns)})
	require.NoError(t, err)
	kl := &killable{Listener: ln}
	served := make(chan error, 1)
	go func() { served <- d.Serve(context.Background(), kl) }()
	defer func() { <-served; d.Close() }()

	b := remoteFor(t, d, port, ab.RemoteConfig{Reconnect: ab.ReconnectConfig{Disabled: true}})
	ctx := context.Background()
	old := []byte("old contents")
	for i := range 4 {
		require.NoError(t, b.Write(ctx, fmt.Sprintf("f%d.bin", i), old))
	}
	stop := make(chan struct{})
	var seen []string
	var watch sync.WaitGroup
	watch.Go(func() {
		for {
			for _, name := range hostTree(t, root) {
				if tmpfile.Is(filepath.Base(name)) {
					seen = append(seen, name)
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	big := bytes.Repeat([]byte("new contents "), 4<<20)
	errs := make(chan error, 4)
	for i := range 4 {
		go func() { errs <- b.Write(ctx, fmt.Sprintf("f%d.bin", i), big) }()
	}
	time.Sleep(100 * time.Millisecond)
	kl.Kill()
	for range 4 {
		err := <-errs
		if err != nil {
			assert.Equal(t, ab.CodeConnectionClosed, ab.ErrorCode(err), "%v", err)
		}
	}
	conns.waitLive(t, 0, 10*time.Second)
	close(stop)
	watch.Wait()
	assert.Empty(t, seen, "a temporary name was visible on the host")
	assert.Equal(t, []string{"f0.bin", "f1.bin", "f2.bin", "f3.bin"}, hostTree(t, root))
	for i := range 4 {
		data, err := os.ReadFile(filepath.Join(root, fmt.Sprintf("f%d.bin", i)))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(data, old) || bytes.Equal(data, big), "f%d.bin torn: %d bytes", i, len(data))
	}
	names, err := d.Backend().ReadDir(ctx, ".")
	require.NoError(t, err)
	assert.False(t, slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, ".") }), "%v", names)
}
