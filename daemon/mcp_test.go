package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/agentmcp"
	"github.com/agentbackend/agentbackend/daemon"
)

// callText calls a tool and returns its text and whether it is an error.
func callText(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) (string, bool) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String(), res.IsError
}

// TestMCPOverHTTP: POST /mcp serves the agentmcp tools, statelessly, on the
// workspace or on the scope a request names, with dangerous commands
// blocked.
func TestMCPOverHTTP(t *testing.T) {
	d, port := startDaemon(t, daemon.Config{AuthToken: "tok", Isolation: ab.IsolationNone})
	rb := remoteFor(t, d, port, ab.RemoteConfig{AuthToken: "tok"})
	ctx := context.Background()
	cs, err := agentmcp.ConnectRemote(ctx, rb, "")
	if err != nil {
		t.Fatal(err)
	}
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	for _, want := range []string{"read_text_file", "write_file", "list_directory", "exec", "grep", "edit_file"} {
		if !slices.Contains(names, want) {
			t.Errorf("tool %s missing from %v", want, names)
		}
	}
	if _, isErr := callText(t, cs, "write_file", map[string]any{"path": "notes/a.txt", "content": "hello mcp\n"}); isErr {
		t.Fatal("write_file failed")
	}
	if text, _ := callText(t, cs, "read_text_file", map[string]any{"path": "notes/a.txt"}); text != "hello mcp\n" {
		t.Errorf("read_text_file = %q", text)
	}
	if got, err := rb.Read(ctx, "notes/a.txt"); err != nil || string(got) != "hello mcp\n" {
		t.Errorf("the file over SFTP: %q %v", got, err)
	}
	if text, isErr := callText(t, cs, "exec", map[string]any{"command": "sudo ls"}); !isErr {
		t.Errorf("dangerous command through MCP not blocked: %q", text)
	}
	if text, isErr := callText(t, cs, "exec", map[string]any{"command": "cat notes/a.txt"}); isErr || !strings.Contains(text, "hello mcp") {
		t.Errorf("exec: %q %v", text, isErr)
	}

	// A scope per request: the tools see the scope as their root.
	scoped, err := agentmcp.ConnectRemote(ctx, rb, "users/alice")
	if err != nil {
		t.Fatal(err)
	}
	callText(t, scoped, "write_file", map[string]any{"path": "mine.txt", "content": "alice"})
	if got, err := rb.Read(ctx, "users/alice/mine.txt"); err != nil || string(got) != "alice" {
		t.Errorf("scoped write_file landed elsewhere: %q %v", got, err)
	}
	if text, isErr := callText(t, scoped, "read_text_file", map[string]any{"path": "../../notes/a.txt"}); !isErr {
		t.Errorf("scope escape through MCP: %q", text)
	}
	if len(d.Backend().ActiveScopes()) != 0 {
		t.Errorf("per-request scopes left open: %v", d.Backend().ActiveScopes())
	}
}

// TestMCPStaticScope: a daemon started with a scope serves the tools there.
func TestMCPStaticScope(t *testing.T) {
	d, port := startDaemon(t, daemon.Config{ScopePath: "/fixed/", Isolation: ab.IsolationNone})
	rb := remoteFor(t, d, port, ab.RemoteConfig{})
	cs, err := agentmcp.ConnectRemote(context.Background(), rb, "")
	if err != nil {
		t.Fatal(err)
	}
	callText(t, cs, "write_file", map[string]any{"path": "x.txt", "content": "static"})
	if got, err := rb.Read(context.Background(), "fixed/x.txt"); err != nil || string(got) != "static" {
		t.Errorf("static scope: %q %v", got, err)
	}
	if _, err := agentmcp.ConnectRemote(context.Background(), rb, "other"); err == nil {
		t.Error("a dynamic scope on a statically scoped daemon was accepted")
	}
}

// TestMCPBodyLimit: a request body over MaxBodyBytes is refused.
func TestMCPBodyLimit(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	_, port := startDaemon(t, daemon.Config{MaxBodyBytes: 1 << 10})
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"a","content":"` +
		strings.Repeat("x", 4<<10) + `"}}}`
	req, _ := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/mcp", port), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Errorf("oversized body: status %d", resp.StatusCode)
	}
}

// TestMCPPermissions: a daemon with a permission policy serves POST /mcp
// under it (denied tools are not offered, refused calls are tool errors),
// and refuses to start while SSH, which the policy cannot guard, is on.
func TestMCPPermissions(t *testing.T) {
	policy := ab.ReadOnlyPermissions()
	if _, err := daemon.New(daemon.Config{RootDir: t.TempDir(), HostKey: testKey, Permissions: policy}); err == nil || !strings.Contains(err.Error(), "DisableSSHWS") {
		t.Fatalf("Permissions with SSH on: %v, want a refusal naming DisableSSHWS", err)
	}
	// Network rules nothing applies (the host's network) refuse the start.
	closed := &ab.Permissions{Network: ab.Policy{Default: ab.Deny}}
	_, err := daemon.New(daemon.Config{RootDir: t.TempDir(), HostKey: testKey, Isolation: ab.IsolationNone, DisableSSHWS: true, Permissions: closed})
	if ab.ErrorCode(err) != ab.CodeInvalidConfiguration || !strings.Contains(err.Error(), "Permissions.Network") {
		t.Fatalf("network rules under the host's network: %v, want INVALID_CONFIGURATION naming Permissions.Network", err)
	}
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "a.txt"), []byte("kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, port := startDaemon(t, daemon.Config{RootDir: root, Isolation: ab.IsolationNone, DisableSSHWS: true, Permissions: policy})
	ctx := context.Background()
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "0"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: fmt.Sprintf("http://127.0.0.1:%d/mcp", port), MaxRetries: -1, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	for _, denied := range []string{"write_file", "edit_file", "move_file", "exec", "create_directory"} {
		if slices.Contains(names, denied) {
			t.Errorf("tools/list under ReadOnly offers %s: %v", denied, names)
		}
	}
	if text, isErr := callText(t, cs, "read_text_file", map[string]any{"path": "a.txt"}); isErr || text != "kept\n" {
		t.Errorf("read_text_file under ReadOnly: %q %v", text, isErr)
	}
	// A call to a tool that is not offered is still refused by the server.
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "write_file", Arguments: map[string]any{"path": "a.txt", "content": "lost"}})
	if err == nil && !res.IsError {
		t.Error("write_file under ReadOnly succeeded")
	}
	if got, _ := os.ReadFile(filepath.Join(root, "a.txt")); string(got) != "kept\n" {
		t.Errorf("a.txt = %q after a refused write", got)
	}
}

// TestMCPOnWorkspace: a daemon given Config.Workspace serves POST /mcp from
// that backend (here process memory; a pod in the kubernetes package's
// tests), reports its root, scopes requests within it, and refuses SSH,
// which would serve a directory of this host instead.
func TestMCPOnWorkspace(t *testing.T) {
	ws, err := ab.NewMemory(ab.MemoryConfig{RootDir: "/ws"})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if _, err := daemon.New(daemon.Config{Workspace: ws, HostKey: testKey}); err == nil || !strings.Contains(err.Error(), "DisableSSHWS") {
		t.Fatalf("Workspace with SSH on: %v, want a refusal naming DisableSSHWS", err)
	}
	for _, cfg := range []daemon.Config{
		{Workspace: ws, DisableSSHWS: true, Network: ab.NetworkHost},
		{Workspace: ws, DisableSSHWS: true, Network: "allow:example.com"},
		{Workspace: ws, DisableSSHWS: true, Isolation: ab.IsolationNone},
	} {
		_, err := daemon.New(cfg)
		require.Error(t, err, "%+v", cfg)
		assert.Contains(t, err.Error(), "not Workspace")
	}
	if _, err := daemon.New(daemon.Config{Workspace: ws, RootDir: "/elsewhere", DisableSSHWS: true}); err == nil {
		t.Fatal("a RootDir other than the workspace's was accepted")
	}
	d, port := startDaemon(t, daemon.Config{Workspace: ws, RootDir: "/ws", DisableSSHWS: true})
	if d.RootDir() != "/ws" || d.Backend() != nil {
		t.Errorf("RootDir %q, Backend %v", d.RootDir(), d.Backend())
	}
	ctx := context.Background()
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "0"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: fmt.Sprintf("http://127.0.0.1:%d/mcp", port), MaxRetries: -1, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if text, isErr := callText(t, cs, "write_file", map[string]any{"path": "notes/a.txt", "content": "in memory"}); isErr {
		t.Fatalf("write_file: %s", text)
	}
	if data, err := ws.Read(ctx, "notes/a.txt"); err != nil || string(data) != "in memory" {
		t.Errorf("the workspace holds %q, %v", data, err)
	}
	if text, isErr := callText(t, cs, "read_text_file", map[string]any{"path": "/etc/passwd"}); !isErr {
		t.Errorf("read_text_file of a host file: %q", text)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/health", port))
	if err != nil {
		t.Fatal(err)
	}
	var health map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&health)
	resp.Body.Close()
	if health["rootDir"] != "/ws" || health["transports"].(map[string]any)["ssh-ws"] != false {
		t.Errorf("/health = %v", health)
	}
	http.DefaultClient.CloseIdleConnections()
}
