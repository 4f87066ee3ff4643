package agentmcp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/agentmcp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestConnectIsClosedWithTheBackend(t *testing.T) {
	noLeaks(t)
	b, err := ab.NewMemory(ab.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cs1 := connect(t, b)
	cs2 := connect(t, b)
	want(t, cs1, "write_file", obj{"path": "f", "content": "x"}, "Successfully wrote to f")
	want(t, cs2, "read_text_file", obj{"path": "f"}, "x")
	if err := cs2.Close(); err != nil { // closing early is fine
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cs1.CallTool(context.Background(), &mcp.CallToolParams{Name: "list_allowed_directories", Arguments: obj{}}); err == nil {
		t.Fatal("session still works after the backend was closed")
	}
	if _, err := agentmcp.Connect(context.Background(), b, nil); !errors.Is(err, ab.ErrDestroyed) {
		t.Fatalf("Connect to a closed backend: %v", err)
	}
}

func TestHandlerServesStatelessHTTP(t *testing.T) {
	noLeaks(t)
	b := newLocal(t, ab.LocalConfig{})
	seed(t, b)
	srv := httptest.NewServer(agentmcp.Handler(b, nil))
	defer srv.Close()
	client := mcp.NewClient(&mcp.Implementation{Name: "test"}, nil)
	cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: srv.URL, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if cs.ID() != "" {
		t.Errorf("stateless server gave a session id %q", cs.ID())
	}
	testEveryTool(t, b, cs)
	srv.CloseClientConnections()
}

func TestRequestHandlerChoosesTheBackendPerRequest(t *testing.T) {
	noLeaks(t)
	b := newMemory(t, "/ws")
	var mu sync.Mutex
	released := 0
	h := agentmcp.RequestHandler(func(r *http.Request) (ab.FileBackend, func(), error) {
		switch scope := r.Header.Get("X-Scope-Path"); {
		case scope == "bad":
			return nil, nil, &agentmcp.RequestError{Status: http.StatusBadRequest, Title: "Invalid scope path", Message: "Scope path must not contain path traversal sequences"}
		case scope == "boom":
			return nil, nil, fmt.Errorf("no backend today")
		case scope != "":
			s, err := b.Scope(scope, nil)
			return s, func() {
				s.Close()
				mu.Lock()
				released++
				mu.Unlock()
			}, err
		}
		return b, nil, nil
	}, nil)
	srv := httptest.NewServer(h)
	defer srv.Close()

	post := func(scope, body string) (*http.Response, string) {
		req, _ := http.NewRequest("POST", srv.URL, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("X-Scope-Path", scope)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp, string(data)
	}
	resp, body := post("bad", `{}`)
	if resp.StatusCode != 400 || strings.TrimSpace(body) != `{"error":"Invalid scope path","message":"Scope path must not contain path traversal sequences"}` {
		t.Fatalf("refused request: %d %s", resp.StatusCode, body)
	}
	resp, body = post("boom", `{}`)
	if resp.StatusCode != 500 || !strings.Contains(body, "no backend today") {
		t.Fatalf("failed request: %d %s", resp.StatusCode, body)
	}
	// A bare tools/call, as a stateless client may send without
	// initializing first.
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"f.txt","content":"in scope"}}}`
	resp, body = post("users/u1", call)
	if resp.StatusCode != 200 || !strings.Contains(body, "Successfully wrote to f.txt") {
		t.Fatalf("tools/call: %d %s", resp.StatusCode, body)
	}
	if data, err := b.Read(context.Background(), "users/u1/f.txt"); err != nil || string(data) != "in scope" {
		t.Fatalf("write did not land in the scope: %q %v", data, err)
	}
	mu.Lock()
	if released != 1 {
		t.Errorf("release called %d times", released)
	}
	mu.Unlock()
	if scopes := b.ActiveScopes(); len(scopes) != 0 {
		t.Errorf("scopes left open: %v", scopes)
	}
	var rpc struct {
		Result struct {
			Content []struct{ Text string }
		}
	}
	_, body = post("", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_allowed_directories","arguments":{}}}`)
	if err := json.Unmarshal([]byte(body), &rpc); err != nil || len(rpc.Result.Content) != 1 || rpc.Result.Content[0].Text != "Allowed directories:\n/ws" {
		t.Fatalf("unscoped call: %s (%v)", body, err)
	}
}

func TestConnectStdioRunsTheCLI(t *testing.T) {
	noLeaks(t)
	cli := buildCLI(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hi\n"), 0o644)
	owner := newMemory(t, "/")
	var stderr strings.Builder
	var mu sync.Mutex
	cs, err := agentmcp.ConnectStdio(context.Background(), agentmcp.StdioConfig{
		Command: cli, RootDir: dir, Isolation: ab.IsolationSoftware, Shell: ab.ShellSh,
		Stderr: writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return stderr.Write(p) }),
		Owner:  owner,
	})
	if err != nil {
		t.Fatal(err)
	}
	want(t, cs, "read_text_file", obj{"path": "hello.txt"}, "hi\n")
	want(t, cs, "exec", obj{"command": "cat hello.txt"}, "hi")
	// Dangerous-command blocking is off in local-only mode.
	want(t, cs, "exec", obj{"command": "rm -rf ./sub/*; echo removed"}, "removed")
	// A command does not read the MCP stream: its stdin is empty.
	want(t, cs, "exec", obj{"command": "cat; echo done"}, "done")
	testSessionConcurrency(t, cs, 8)
	start := time.Now()
	if err := owner.Close(); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 4*time.Second {
		t.Errorf("closing the session took %v: the daemon did not exit on EOF", time.Since(start))
	}
	if _, err := cs.ListTools(context.Background(), nil); err == nil {
		t.Fatal("session works after its owner was closed")
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(stderr.String(), "over MCP on stdio") {
		t.Errorf("daemon log: %q", stderr.String())
	}
}

func TestConnectStdioNeedsARootDir(t *testing.T) {
	if _, err := agentmcp.ConnectStdio(context.Background(), agentmcp.StdioConfig{}); ab.ErrorCode(err) != ab.CodeInvalidConfiguration {
		t.Fatalf("got %v", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
