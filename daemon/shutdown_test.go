package daemon_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/daemon"
)

// TestShutdown: cancelling Serve's context closes every WebSocket client
// with 1000 "Server shutting down", kills their commands, stops the HTTP
// server and returns nil.
func TestShutdown(t *testing.T) {
	d, err := daemon.New(daemon.Config{RootDir: t.TempDir(), HostKey: testKey, Isolation: ab.IsolationNone, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx, ln) }()

	// A raw WebSocket client, to see the close frame.
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	ws, _, err := websocket.Dial(dctx, fmt.Sprintf("ws://127.0.0.1:%d/ssh", port), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	// And an SSH client running a command.
	c := sshClient(t, d, port, "")
	sess, _ := c.NewSession()
	stdout, _ := sess.StdoutPipe()
	sess.Start("sleep 60 & echo $!; wait")
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	pid, _ := strconv.Atoi(strings.TrimSpace(line))

	closed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := ws.Read(dctx); err != nil {
				closed <- err
				return
			}
		}
	}()
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve after cancel: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return")
	}
	err = <-closed
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusNormalClosure || ce.Reason != "Server shutting down" {
		t.Errorf("WebSocket client saw %v, want close 1000 \"Server shutting down\"", err)
	}
	waitGone(t, pid)
	if _, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/health", port)); err == nil {
		t.Error("HTTP still served after shutdown")
	}
}

// TestRunSignal: Run stops gracefully on SIGTERM and returns nil (the CLI
// then exits 0). The daemon runs in a child process: this test binary,
// re-executed.
func TestRunSignal(t *testing.T) {
	if os.Getenv("AGENTBE_TEST_RUN_DAEMON") != "" {
		return
	}
	port := freePort(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunSignalChild$")
	cmd.Env = append(os.Environ(), "AGENTBE_TEST_RUN_DAEMON="+t.TempDir(), "AGENTBE_TEST_PORT="+strconv.Itoa(port))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/health", port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child daemon not healthy: %v\n%s", err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	http.DefaultClient.CloseIdleConnections()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child after SIGTERM: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "agentbe-daemon stopped") {
		t.Errorf("no orderly stop in the log:\n%s", out.String())
	}
}

// TestRunSignalChild is the child of TestRunSignal.
func TestRunSignalChild(t *testing.T) {
	root := os.Getenv("AGENTBE_TEST_RUN_DAEMON")
	if root == "" {
		t.Skip("runs as the child of TestRunSignal")
	}
	err := daemon.Run(context.Background(), daemon.Config{RootDir: root, HostKey: testKey}, "127.0.0.1:"+os.Getenv("AGENTBE_TEST_PORT"))
	if err != nil {
		fmt.Println("Run:", err)
		os.Exit(1)
	}
}

// freezable is a listener whose connections can be frozen: the daemon
// stops reading from them, as if it hung.
type freezable struct {
	net.Listener
	mu     sync.Mutex
	frozen chan struct{}
}

type frozenConn struct {
	net.Conn
	f *freezable
}

func (c frozenConn) Read(p []byte) (int, error) {
	c.f.mu.Lock()
	ch := c.f.frozen
	c.f.mu.Unlock()
	if ch != nil {
		<-ch
	}
	return c.Conn.Read(p)
}

func (f *freezable) Accept() (net.Conn, error) {
	c, err := f.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return frozenConn{c, f}, nil
}

// TestKeepalive: a daemon that stops answering is declared dead after
// KeepaliveCountMax intervals, and the backend goes disconnected.
func TestKeepalive(t *testing.T) {
	d, err := daemon.New(daemon.Config{RootDir: t.TempDir(), HostKey: testKey, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	f := &freezable{Listener: ln}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx, f) }()
	b := remoteFor(t, d, ln.Addr().(*net.TCPAddr).Port, ab.RemoteConfig{
		KeepaliveInterval: 100 * time.Millisecond, KeepaliveCountMax: 3, Reconnect: ab.ReconnectConfig{Disabled: true}})
	log := watchStatus(b)
	if err := b.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(350 * time.Millisecond) // probes answered: still connected
	if b.Status() != ab.StatusConnected {
		t.Fatalf("status %s while the daemon answers", b.Status())
	}
	f.mu.Lock()
	f.frozen = make(chan struct{})
	f.mu.Unlock()
	start := time.Now()
	log.waitFor(t, ab.StatusDisconnected)
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("dead connection noticed after %v", el)
	}
	f.mu.Lock()
	close(f.frozen)
	f.frozen = nil
	f.mu.Unlock()
	b.Close()
	cancel()
	<-served
	d.Close()
}
