package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/daemon"
)

// killable is a listener whose Kill drops every connection at once, with no
// WebSocket close frame: what the client sees when the daemon is killed.
type killable struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (k *killable) Accept() (net.Conn, error) {
	c, err := k.Listener.Accept()
	if err == nil {
		k.mu.Lock()
		k.conns = append(k.conns, c)
		k.mu.Unlock()
	}
	return c, err
}

func (k *killable) Kill() {
	k.Listener.Close()
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.conns {
		c.Close()
	}
}

// statusLog records a backend's status changes.
type statusLog struct {
	mu      sync.Mutex
	changes []ab.Status
	notify  chan struct{}
}

func watchStatus(b ab.Backend) *statusLog {
	l := &statusLog{notify: make(chan struct{}, 100)}
	b.OnStatusChange(func(c ab.StatusChange) {
		l.mu.Lock()
		l.changes = append(l.changes, c.To)
		l.mu.Unlock()
		select {
		case l.notify <- struct{}{}:
		default:
		}
	})
	return l
}

func (l *statusLog) list() []ab.Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.changes)
}

// waitFor waits until the log ends with want.
func (l *statusLog) waitFor(t *testing.T, want ...ab.Status) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		got := l.list()
		if len(got) >= len(want) && slices.Equal(got[len(got)-len(want):], want) {
			return
		}
		select {
		case <-l.notify:
		case <-deadline:
			t.Fatalf("statuses %v, want them to end with %v", got, want)
		}
	}
}

// TestDaemonKilled: the daemon dies mid-operation; the operations in
// flight fail with CONNECTION_CLOSED, the status goes disconnected, then
// reconnecting and connected once a daemon is back on the same port.
func TestDaemonKilled(t *testing.T) {
	root := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	kl := &killable{Listener: ln}
	d1, err := daemon.New(daemon.Config{RootDir: root, HostKey: testKey, Isolation: ab.IsolationNone, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- d1.Serve(context.Background(), kl) }()

	b := remoteFor(t, d1, port, ab.RemoteConfig{
		Reconnect: ab.ReconnectConfig{InitialDelay: 100 * time.Millisecond, MaxDelay: 400 * time.Millisecond, MaxRetries: -1},
	})
	log := watchStatus(b)
	ctx := context.Background()
	big := bytes.Repeat([]byte("x"), 16<<20)
	if err := b.Write(ctx, "big.bin", big); err != nil {
		t.Fatal(err)
	}
	log.waitFor(t, ab.StatusConnecting, ab.StatusConnected)

	execErr := make(chan error, 1)
	go func() { _, err := b.Exec(ctx, "sleep 30", nil); execErr <- err }()
	readErr := make(chan error, 1)
	go func() {
		for {
			if _, err := b.Read(ctx, "big.bin"); err != nil {
				readErr <- err
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	kl.Kill()
	for name, ch := range map[string]chan error{"Exec": execErr, "Read": readErr} {
		select {
		case err := <-ch:
			if ab.ErrorCode(err) != ab.CodeConnectionClosed {
				t.Errorf("%s in flight: %v, want CONNECTION_CLOSED", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s in flight did not fail", name)
		}
	}
	log.waitFor(t, ab.StatusDisconnected)
	<-served
	d1.Close()

	// Retries fail while nothing listens; then the daemon comes back.
	time.Sleep(300 * time.Millisecond)
	ln2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	d2, err := daemon.New(daemon.Config{RootDir: root, HostKey: testKey, Isolation: ab.IsolationNone, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	go func() { served <- d2.Serve(sctx, ln2) }()
	defer func() { stop(); <-served; d2.Close() }()
	log.waitFor(t, ab.StatusReconnecting, ab.StatusConnected)
	if got, err := b.Read(ctx, "big.bin"); err != nil || len(got) != len(big) {
		t.Errorf("Read after reconnection: %d bytes, %v", len(got), err)
	}
	t.Logf("statuses: %v", log.list())
	b.Close()
}

// TestWrongToken: a refused token is AUTH_FAILED, clearly, and is not
// retried in the background.
func TestWrongToken(t *testing.T) {
	d, port := startDaemon(t, daemon.Config{AuthToken: "right"})
	b := remoteFor(t, d, port, ab.RemoteConfig{AuthToken: "wrong",
		Reconnect: ab.ReconnectConfig{InitialDelay: 10 * time.Millisecond, MaxRetries: -1}})
	log := watchStatus(b)
	_, err := b.Read(context.Background(), "x")
	if ab.ErrorCode(err) != ab.CodeAuthFailed {
		t.Fatalf("Read with a wrong token: %v, want AUTH_FAILED", err)
	}
	t.Logf("error: %v", err)
	time.Sleep(300 * time.Millisecond)
	if got := log.list(); !slices.Equal(got, []ab.Status{ab.StatusConnecting, ab.StatusDisconnected}) {
		t.Errorf("statuses %v: want one attempt, no retries", got)
	}
	if b.Status() != ab.StatusDisconnected {
		t.Errorf("status %s", b.Status())
	}
}

// TestCloseCancelsRetry: Close during the backoff cancels the retry.
func TestCloseCancelsRetry(t *testing.T) {
	port := freePort(t)
	b, err := ab.NewRemote(ab.RemoteConfig{Host: "127.0.0.1", Port: port, RootDir: "/ws", InsecureIgnoreHostKey: true,
		Reconnect: ab.ReconnectConfig{InitialDelay: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	log := watchStatus(b)
	if err := b.Connect(context.Background()); ab.ErrorCode(err) != ab.CodeConnectionClosed {
		t.Fatalf("Connect to nothing: %v", err)
	}
	b.Close()
	time.Sleep(400 * time.Millisecond)
	if got := log.list(); !slices.Equal(got, []ab.Status{ab.StatusConnecting, ab.StatusDisconnected, ab.StatusDestroyed}) {
		t.Errorf("statuses %v: a retry ran after Close", got)
	}
}

// TestManyClients: 200 clients, each on its own connection and scope, do
// 50 mixed operations at once; all succeed, none reaches another's files,
// and the daemon's memory comes back down once they leave.
func TestManyClients(t *testing.T) {
	const clients, ops = 200, 50
	d, port := startDaemon(t, daemon.Config{Isolation: ab.IsolationNone})
	before := heapInUse()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Go(func() {
			b, err := ab.NewRemote(ab.RemoteConfig{Host: "127.0.0.1", Port: port, RootDir: d.RootDir(), HostKey: d.HostKey()})
			if err != nil {
				errs <- err
				return
			}
			defer b.Close()
			errs <- tenantWork(ctx, b, i, ops)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	names, _ := d.Backend().ReadDir(ctx, "tenants")
	if len(names) != clients {
		t.Errorf("%d tenant directories, want %d", len(names), clients)
	}
	for i := range clients {
		got, _ := d.Backend().ReadDir(ctx, fmt.Sprintf("tenants/t%d", i))
		want := []string{"final", "moved-9"}
		if !slices.Equal(got, want) {
			t.Errorf("tenant %d left %v, want %v", i, got, want)
			break
		}
	}
	after := heapInUse()
	t.Logf("daemon+clients heap in use: %.1f MiB before, %.1f MiB after", float64(before)/(1<<20), float64(after)/(1<<20))
	if after > before+32<<20 {
		t.Errorf("heap grew from %d to %d bytes after the clients left", before, after)
	}
}

func heapInUse() uint64 {
	var m runtime.MemStats
	for range 3 {
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// tenantWork is one client's share of TestManyClients.
func tenantWork(ctx context.Context, parent ab.FileBackend, i, ops int) error {
	b, err := parent.Scope(fmt.Sprintf("tenants/t%d", i), nil)
	if err != nil {
		return err
	}
	other := fmt.Sprintf("../t%d/f0", (i+1)%200)
	for j := range ops {
		p := fmt.Sprintf("f%d", j%10)
		want := fmt.Sprintf("tenant %d op %d", i, j)
		var err error
		switch j % 10 {
		case 0, 1, 2, 3:
			err = b.Write(ctx, p, []byte(want))
		case 4:
			var got []byte
			if got, err = b.Read(ctx, fmt.Sprintf("f%d", 3)); err == nil && !bytes.HasPrefix(got, fmt.Appendf(nil, "tenant %d ", i)) {
				err = fmt.Errorf("tenant %d read %q", i, got)
			}
		case 5:
			_, err = b.Stat(ctx, "f0")
		case 6:
			_, err = b.ReadDir(ctx, ".")
		case 7:
			if _, err = b.Read(ctx, other); ab.ErrorCode(err) == ab.CodePathEscape {
				err = nil
			} else {
				err = fmt.Errorf("tenant %d read %s: %v, want PATH_ESCAPE_ATTEMPT", i, other, err)
			}
		case 8:
			_, err = b.Exists(ctx, "f1")
		case 9:
			if j == 9 || j == 49 {
				var res *ab.ExecResult
				if res, err = b.Exec(ctx, "cat f0", nil); err == nil && !bytes.HasPrefix(res.Stdout, fmt.Appendf(nil, "tenant %d ", i)) {
					err = fmt.Errorf("tenant %d exec read %q", i, res.Stdout)
				}
			} else {
				err = b.Rename(ctx, "f2", "moved-9")
			}
		}
		if err != nil {
			return fmt.Errorf("tenant %d op %d: %w", i, j, err)
		}
	}
	for j := range 10 {
		if err := b.Remove(ctx, fmt.Sprintf("f%d", j), ab.RemoveOptions{Force: true}); err != nil {
			return err
		}
	}
	return b.Write(ctx, "final", []byte("done"))
}

// TestCloseDuringDial: Close ends a connection attempt that hangs (a
// server that accepts and never answers) at once.
func TestCloseDuringDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	b, err := ab.NewRemote(ab.RemoteConfig{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, RootDir: "/ws",
		InsecureIgnoreHostKey: true})
	if err != nil {
		t.Fatal(err)
	}
	failed := make(chan error, 1)
	go func() { _, err := b.Read(context.Background(), "x"); failed <- err }()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	b.Close()
	select {
	case err := <-failed:
		if err == nil {
			t.Error("Read succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still waiting after Close")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Close took %v", el)
	}
}
