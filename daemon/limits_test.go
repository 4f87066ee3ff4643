package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/daemon"
)

// connCounter is a log handler that counts the daemon's live SSH
// connections from its debug records.
type connCounter struct {
	live    atomic.Int64
	changed chan struct{}
}

func newConnCounter() *connCounter { return &connCounter{changed: make(chan struct{}, 1000)} }

func (c *connCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *connCounter) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *connCounter) WithGroup(string) slog.Handler            { return c }
func (c *connCounter) Handle(_ context.Context, r slog.Record) error {
	switch r.Message {
	case "ssh connection":
		c.live.Add(1)
	case "ssh connection closed":
		c.live.Add(-1)
	default:
		return nil
	}
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return nil
}

// waitLive waits until the daemon has want live connections.
func (c *connCounter) waitLive(t *testing.T, want int64, patience time.Duration) {
	t.Helper()
	deadline := time.After(patience)
	for c.live.Load() != want {
		select {
		case <-c.changed:
		case <-deadline:
			t.Fatalf("the daemon has %d SSH connections, want %d", c.live.Load(), want)
		}
	}
}

// TestConnectionLimit: one client more than MaxConnections is answered
// 503 with a JSON body before any upgrade, which RemoteBackend reports as
// RESOURCE_LIMIT naming the flag; once a client leaves, the next gets in.
func TestConnectionLimit(t *testing.T) {
	d, port := startDaemon(t, daemon.Config{Isolation: ab.IsolationNone, MaxConnections: 2})
	ctx := context.Background()
	var clients []*ab.RemoteBackend
	for range 2 {
		b := remoteFor(t, d, port, ab.RemoteConfig{})
		require.NoError(t, b.Connect(ctx))
		clients = append(clients, b)
	}

	extra := remoteFor(t, d, port, ab.RemoteConfig{Reconnect: ab.ReconnectConfig{Disabled: true}})
	err := extra.Connect(ctx)
	require.Error(t, err)
	assert.Equal(t, ab.CodeResourceLimit, ab.ErrorCode(err), "%v", err)
	assert.ErrorIs(t, err, ab.ErrResourceLimit)
	assert.Contains(t, err.Error(), "at most 2 SSH-WS connections")
	assert.Contains(t, err.Error(), "--max-connections")
	_, err = extra.Exec(ctx, "true", nil)
	assert.Equal(t, ab.CodeResourceLimit, ab.ErrorCode(err), "Exec: %v", err)

	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/ssh", port), nil)
	require.NoError(t, err)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	require.NoError(t, err)
	var body map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	assert.Equal(t, "Too many connections", body["error"])

	clients[0].Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b := remoteFor(t, d, port, ab.RemoteConfig{Reconnect: ab.ReconnectConfig{Disabled: true}})
		err := b.Connect(ctx)
		b.Close()
		if err == nil {
			break
		}
		require.Equal(t, ab.CodeResourceLimit, ab.ErrorCode(err), "%v", err)
		require.True(t, time.Now().Before(deadline), "no room after a client left: %v", err)
	}
}

// TestSessionLimitOpensConnections: a RemoteBackend needing more sessions
// than one connection may have (background processes, commands, the SFTP
// sessions of scopes) gets them on further connections to the daemon,
// without an error; when the daemon will take no further connection, the
// session that does not fit is RESOURCE_LIMIT (not EXEC_ERROR); the extra
// connections are closed once idle.
func TestSessionLimitOpensConnections(t *testing.T) {
	t.Parallel()
	conns := newConnCounter()
	d, port := startDaemon(t, daemon.Config{Isolation: ab.IsolationNone, MaxSessionsPerConn: 4, MaxConnections: 3,
		Logger: slog.New(conns)})
	ctx := procCtx(t)
	b := remoteFor(t, d, port, ab.RemoteConfig{})
	require.NoError(t, b.Write(ctx, "f.txt", []byte("x"))) // the SFTP session: one place taken

	// 3 connections × 4 sessions: the SFTP session and 11 processes.
	var procs []*ab.Process
	for i := range 11 {
		p, err := b.Start(ctx, fmt.Sprintf("echo p%d; exec sleep 60", i), nil)
		require.NoError(t, err, "process %d", i)
		procs = append(procs, p)
	}
	for i, p := range procs {
		waitPrinted(t, p, fmt.Sprintf("p%d\n", i), 20*time.Second)
	}
	conns.waitLive(t, 3, 10*time.Second)

	_, err := b.Start(ctx, "sleep 60", nil)
	require.Error(t, err)
	assert.Equal(t, ab.CodeResourceLimit, ab.ErrorCode(err), "%v", err)
	assert.ErrorIs(t, err, ab.ErrResourceLimit)
	_, err = b.Exec(ctx, "true", nil)
	assert.Equal(t, ab.CodeResourceLimit, ab.ErrorCode(err), "Exec with every place taken: %v", err)

	// One place back: the next command takes it.
	require.NoError(t, procs[0].Kill())
	_, _ = procs[0].Wait(ctx)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		res, err := b.Exec(ctx, "echo ok", nil)
		if err == nil {
			assert.Equal(t, "ok\n", string(res.Stdout))
			break
		}
		require.Equal(t, ab.CodeResourceLimit, ab.ErrorCode(err), "%v", err)
		require.True(t, time.Now().Before(deadline), "no place after a process ended: %v", err)
	}

	for _, p := range procs[1:] {
		require.NoError(t, p.Kill())
		_, _ = p.Wait(ctx)
	}
	// Scopes keep SFTP sessions of their own: five scopes, each with a
	// large file (a second session each), need all three connections.
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16+1)
	var scopes []*ab.ScopedBackend
	var wg sync.WaitGroup
	for i := range 5 {
		s, err := b.Scope(fmt.Sprintf("tenants/t%d", i), nil)
		require.NoError(t, err)
		scopes = append(scopes, s)
		wg.Go(func() {
			name := fmt.Sprintf("big%d.bin", i)
			if assert.NoError(t, s.Write(ctx, name, data), "scope %d", i) {
				got, err := s.Read(ctx, name)
				assert.NoError(t, err, "scope %d", i)
				assert.True(t, bytes.Equal(data, got), "scope %d read back", i)
			}
		})
	}
	wg.Wait()
	conns.waitLive(t, 3, 10*time.Second)
	for _, s := range scopes {
		require.NoError(t, s.Close())
	}
	conns.waitLive(t, 1, 30*time.Second) // the extra connections go once idle
	require.NoError(t, b.Remove(ctx, "tenants", ab.RemoveOptions{Recursive: true}))
}

// TestSessionLimitMessage: a raw SSH client over the limit is refused with
// the reason "resource shortage" and a message naming the limit and flag.
func TestSessionLimitMessage(t *testing.T) {
	d, port := startDaemon(t, daemon.Config{Isolation: ab.IsolationNone, MaxSessionsPerConn: 1})
	c := sshClient(t, d, port, "")
	first, err := c.NewSession()
	require.NoError(t, err)
	defer first.Close()
	_, err = c.NewSession()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "resource shortage")
	assert.True(t, strings.Contains(err.Error(), "at most 1") && strings.Contains(err.Error(), "--max-sessions-per-conn"), "%v", err)
}
