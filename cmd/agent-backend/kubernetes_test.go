package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentbackend/agentbackend/internal/testenv"
)

// podFile writes a --kubernetes file for the test cluster's image.
func podFile(t *testing.T, extra string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "pod.yaml")
	require.NoError(t, os.WriteFile(f, []byte(`namespace: default
template:
  image: agentbackend-test:busybox
  imagePullPolicy: Never
  labels: {agentbackend.io/test: cli}
`+extra), 0o644))
	return f
}

func TestParseKubernetesArgs(t *testing.T) {
	f := podFile(t, "")
	cfg, err := parseDaemonArgs([]string{"--kubernetes", f, "--local-only", "--scopePath", "t/1"})
	require.NoError(t, err)
	require.NotNil(t, cfg.Kubernetes)
	assert.Equal(t, "agentbackend-test:busybox", cfg.Kubernetes.Template.Image)
	assert.Equal(t, "default", cfg.Kubernetes.Namespace)
	assert.Equal(t, "t/1", cfg.ScopePath)

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("template: {image: x, imagePullPolicy: Never, runAsRooot: true}\n"), 0o644))
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"--kubernetes", f, "--rootDir", "/w", "--local-only"}, "--rootDir and --kubernetes exclude each other"},
		{[]string{"--kubernetes", f, "--isolation", "bwrap", "--local-only"}, "do not apply to --kubernetes"},
		{[]string{"--kubernetes", f, "--network", "allow:example.com", "--local-only"}, "--network does not apply to --kubernetes"},
		{[]string{"--kubernetes", f, "--network", "host", "--local-only"}, "--network does not apply to --kubernetes"},
		{[]string{"--kubernetes", f}, "add --disable-ssh-ws"},
		{[]string{"--kubernetes", bad, "--local-only"}, `unknown field "runAsRooot"`},
		{[]string{"--kubernetes", filepath.Join(t.TempDir(), "missing.yaml"), "--local-only"}, "no such file"},
		{[]string{"--kubernetes"}, "--kubernetes requires a value"},
	} {
		_, err := parseDaemonArgs(c.args)
		assert.ErrorContains(t, err, c.err, "%q", c.args)
	}
}

// needKubernetes skips (or, when AGENTBE_REQUIRE names kubernetes, fails)
// unless $KUBECONFIG names a cluster.
func needKubernetes(t *testing.T) {
	t.Helper()
	_, err := os.Stat(os.Getenv("KUBECONFIG"))
	testenv.Need(t, "kubernetes", os.Getenv("KUBECONFIG") != "" && err == nil, "KUBECONFIG names no cluster (.ci/start-kubernetes starts one)")
}

// TestKubernetesServesMCPOnStdio runs `agent-backend daemon --kubernetes`
// as a process and talks MCP to it: the tools work on a pod, through the
// scope, and the daemon ends cleanly (deleting its pod) when its input
// closes.
func TestKubernetesServesMCPOnStdio(t *testing.T) {
	needKubernetes(t)
	cmd := cli("daemon", "--kubernetes", podFile(t, ""), "--scopePath", "tenant", "--local-only")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	client := mcp.NewClient(&mcp.Implementation{Name: "test"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	require.NoError(t, err, "%s", stderr.String())
	text := func(name string, args map[string]any) (string, bool) {
		t.Helper()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
		require.NoError(t, err)
		return res.Content[0].(*mcp.TextContent).Text, res.IsError
	}
	got, isErr := text("write_file", map[string]any{"path": "a.txt", "content": "in the pod"})
	require.False(t, isErr, got)
	got, isErr = text("exec", map[string]any{"command": "cat a.txt; echo; pwd; id -u"})
	require.False(t, isErr, got)
	assert.Equal(t, "in the pod\n/workspace/tenant\n65534", got)
	got, isErr = text("read_text_file", map[string]any{"path": "../../etc/passwd"})
	assert.True(t, isErr, "escape from the scope: %q", got)
	if err := cs.Close(); err != nil && !errors.Is(err, io.EOF) {
		t.Logf("close: %v", err)
	}
	require.NotNil(t, cmd.ProcessState)
	assert.True(t, cmd.ProcessState.Success(), "daemon did not exit cleanly: %s", stderr.String())
	assert.Contains(t, stderr.String(), "over MCP on stdio (pod default/agentbe-")
}

// TestKubernetesServesHTTP runs the HTTP daemon on a pod: POST /mcp serves
// the pod's workspace with dangerous-command blocking on, WS /ssh is off,
// and SIGTERM stops it cleanly.
func TestKubernetesServesHTTP(t *testing.T) {
	needKubernetes(t)
	defer http.DefaultClient.CloseIdleConnections()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := cli("daemon", "--kubernetes", podFile(t, ""), "--disable-ssh-ws", "--port", fmt.Sprint(port), "--auth-token", "tok")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	defer cmd.Process.Kill()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}, 2*time.Minute, 50*time.Millisecond, "daemon not up: %s", &stderr)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "test"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: base + "/mcp",
		HTTPClient: &http.Client{Transport: bearer{"tok", http.DefaultTransport}}}, nil)
	require.NoError(t, err)
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "exec", Arguments: map[string]any{"command": "pwd"}})
	require.NoError(t, err)
	assert.Equal(t, "/workspace", res.Content[0].(*mcp.TextContent).Text)
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "exec", Arguments: map[string]any{"command": "sudo true"}})
	require.NoError(t, err)
	assert.True(t, res.IsError, "a dangerous command ran over HTTP")
	resp, err := http.Get(base + "/ssh")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "%s", stderr.String())
}

// syncBuffer is a buffer a process writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
