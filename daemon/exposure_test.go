package daemon_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/agentmcp"
	"github.com/agentbackend/agentbackend/daemon"
	"github.com/agentbackend/agentbackend/internal/nettest"
)

// publicListener is a loopback listener that says it listens on every
// interface, so the tests can see what Serve does with a public address
// without exposing anything.
type publicListener struct{ net.Listener }

func (l publicListener) Addr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4zero, Port: l.Listener.Addr().(*net.TCPAddr).Port}
}

// TestServeRefusesPublicWithoutToken: without a token a public listener is
// refused (and closed) unless the operator opted in; a token or loopback
// is served.
func TestServeRefusesPublicWithoutToken(t *testing.T) {
	for _, c := range []struct {
		name   string
		cfg    daemon.Config
		public bool
		served bool
	}{
		{"public, no token", daemon.Config{}, true, false},
		{"public, token", daemon.Config{AuthToken: "tok"}, true, true},
		{"public, no token, opted in", daemon.Config{InsecureNoAuthPublic: true}, true, true},
		{"loopback, no token", daemon.Config{}, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.RootDir, c.cfg.HostKey, c.cfg.Logger = t.TempDir(), testKey, quietLogger()
			d, err := daemon.New(c.cfg)
			require.NoError(t, err)
			defer d.Close()
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			var ln net.Listener = raw
			if c.public {
				ln = publicListener{raw}
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- d.Serve(ctx, ln) }()
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			if !c.served {
				err := <-done
				cancel()
				require.Error(t, err)
				assert.Contains(t, err.Error(), "refusing to serve 0.0.0.0:")
				assert.Contains(t, err.Error(), "--auth-token")
				assert.Contains(t, err.Error(), "--insecure-no-auth-public")
				_, err = raw.Accept()
				assert.ErrorIs(t, err, net.ErrClosed, "the refused listener is closed")
				return
			}
			resp, err := client.Get("http://" + raw.Addr().String() + "/health")
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			cancel()
			assert.NoError(t, <-done)
		})
	}
}

// TestUnauthorizedChallenge: a 401 tells an MCP client that a bearer
// token is missing, and does not send it looking for OAuth metadata the
// daemon does not serve.
func TestUnauthorizedChallenge(t *testing.T) {
	_, port := startDaemon(t, daemon.Config{AuthToken: "tok"})
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for _, c := range []struct{ auth, want string }{
		{"", `Bearer realm="agent-backend"`},
		{"Bearer nope", `Bearer realm="agent-backend", error="invalid_token"`},
	} {
		req, _ := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/mcp", port), strings.NewReader(`{}`))
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Equal(t, c.want, resp.Header.Get("WWW-Authenticate"))
		assert.NotContains(t, resp.Header.Get("WWW-Authenticate"), "resource_metadata")
	}
}

// TestIdleConnectionsClosed opens many keep-alive connections, makes one
// request on each, and checks that the daemon closes every one of them
// once they have been idle for the idle timeout.
func TestIdleConnectionsClosed(t *testing.T) {
	_, port := startDaemon(t, daemon.Config{AuthToken: "tok", IdleTimeout: 300 * time.Millisecond})
	assert.NoError(t, nettest.IdleClosed(fmt.Sprintf("127.0.0.1:%d", port), "/health", 100, 20*time.Second))
}

// TestLongAnswersOutliveTimeouts: with every timeout far shorter than the
// work, a command run over MCP is answered, and output streamed over SSH
// arrives whole.
func TestLongAnswersOutliveTimeouts(t *testing.T) {
	short := 100 * time.Millisecond
	d, port := startDaemon(t, daemon.Config{AuthToken: "tok", Isolation: ab.IsolationNone,
		ReadHeaderTimeout: short, IdleTimeout: short, WriteTimeout: short})
	rb := remoteFor(t, d, port, ab.RemoteConfig{AuthToken: "tok"})
	ctx := context.Background()

	cs, err := agentmcp.ConnectRemote(ctx, rb, "")
	require.NoError(t, err)
	defer cs.Close()
	text, isErr := callText(t, cs, "exec", map[string]any{"command": "sleep 1; echo done"})
	assert.False(t, isErr)
	assert.Equal(t, "done", strings.TrimSpace(text))

	var streamed strings.Builder
	res, err := rb.Exec(ctx, "for i in 1 2 3 4 5; do echo $i; sleep 0.3; done", &ab.ExecOptions{Stdout: &streamed})
	require.NoError(t, err)
	assert.Equal(t, "1\n2\n3\n4\n5\n", string(res.Stdout))
	assert.Equal(t, "1\n2\n3\n4\n5\n", streamed.String())
}

// recordRequests is a slog handler that signals each finished request.
type recordRequests struct {
	slog.Handler
	done chan string
}

func (h recordRequests) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "request" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "path" {
				h.done <- a.Value.String()
			}
			return true
		})
	}
	return nil
}

// TestSlowReaderCutOff: a client that asks for a large answer and stops
// reading is cut off by the write timeout instead of holding the request
// forever.
func TestSlowReaderCutOff(t *testing.T) {
	root := t.TempDir()
	const size = 16 << 20
	require.NoError(t, os.WriteFile(filepath.Join(root, "big.txt"), []byte(strings.Repeat("x", size)), 0o644))
	logs := recordRequests{Handler: slog.NewTextHandler(io.Discard, nil), done: make(chan string, 16)}
	_, port := startDaemon(t, daemon.Config{RootDir: root, AuthToken: "tok", WriteTimeout: 200 * time.Millisecond,
		Logger: slog.New(logs)})

	// A receive buffer of a few KiB, so the kernel does not swallow the
	// answer for us.
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		c.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return err
	}}
	conn, err := dialer.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	require.NoError(t, err)
	defer conn.Close()
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_text_file","arguments":{"path":"big.txt"}}}`
	fmt.Fprintf(conn, "POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\nContent-Type: application/json\r\n"+
		"Accept: application/json, text/event-stream\r\nMcp-Protocol-Version: 2025-06-18\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	select {
	case path := <-logs.done:
		assert.Equal(t, "/mcp", path)
	case <-time.After(time.Minute):
		t.Fatal("the request to a client that does not read was not cut off")
	}
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := io.Copy(io.Discard, conn)
	assert.Less(t, n, int64(size), "the whole answer arrived")
	if err != nil {
		assert.ErrorIs(t, err, syscall.ECONNRESET)
	}
}

// TestVersions: /health and the MCP handshake report this module's version
// and, beside it, the reference release the daemon speaks.
func TestVersions(t *testing.T) {
	d, port := startDaemon(t, daemon.Config{AuthToken: "tok", Isolation: ab.IsolationNone})
	_, h := get(t, fmt.Sprintf("http://127.0.0.1:%d/health", port))
	http.DefaultClient.CloseIdleConnections()
	assert.Equal(t, agentmcp.Version(), h["version"])
	assert.Equal(t, agentmcp.ReferenceVersion, h["referenceVersion"])

	rb := remoteFor(t, d, port, ab.RemoteConfig{AuthToken: "tok"})
	cs, err := agentmcp.ConnectRemote(context.Background(), rb, "")
	require.NoError(t, err)
	defer cs.Close()
	info := cs.InitializeResult().ServerInfo
	assert.Equal(t, agentmcp.Version(), info.Version)
	assert.Contains(t, info.Description, "agent-backend "+agentmcp.ReferenceVersion)
}
