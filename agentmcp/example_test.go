package agentmcp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http/httptest"
	"strings"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/agentmcp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Serve a workspace as MCP tools. Here the server runs on an in-memory
// transport; a real program would Run it on &mcp.StdioTransport{} or mount
// Handler on an HTTP server.
func ExampleNewServer() {
	b, _ := ab.NewMemory(ab.MemoryConfig{RootDir: "/ws", InitialData: map[string][]byte{
		"notes/todo.md": []byte("- write the report\n"),
	}})
	defer b.Close()

	server := agentmcp.NewServer(b, nil)
	clientT, serverT := mcp.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := server.Connect(ctx, serverT, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer ss.Wait()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "example"}, nil).Connect(ctx, clientT, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer cs.Close()

	res, _ := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_directory", Arguments: map[string]any{"path": "notes"}})
	fmt.Println(res.Content[0].(*mcp.TextContent).Text)
	// Output: [FILE] todo.md
}

// Connect gives agent frameworks that take an MCP session one on any
// backend, closed with the backend.
func ExampleConnect() {
	b, _ := ab.NewMemory(ab.MemoryConfig{RootDir: "/ws"})
	defer b.Close() // closes the session too

	ctx := context.Background()
	cs, err := agentmcp.Connect(ctx, b, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, call := range []struct {
		tool string
		args map[string]any
	}{
		{"write_file", map[string]any{"path": "hello.txt", "content": "hello\n"}},
		{"edit_file", map[string]any{"path": "hello.txt", "edits": []any{map[string]any{"oldText": "hello", "newText": "hello, world"}}}},
		{"read_text_file", map[string]any{"path": "hello.txt"}},
		{"read_text_file", map[string]any{"path": "../etc/passwd"}},
	} {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: call.tool, Arguments: call.args})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s (error: %v):\n%s\n", call.tool, res.IsError, strings.TrimSpace(res.Content[0].(*mcp.TextContent).Text))
	}
	// Output:
	// write_file (error: false):
	// Successfully wrote to hello.txt
	// edit_file (error: false):
	// ```diff
	// Index: /ws/hello.txt
	// ===================================================================
	// --- /ws/hello.txt	original
	// +++ /ws/hello.txt	modified
	// @@ -1,1 +1,1 @@
	// -hello
	// +hello, world
	// ```
	// read_text_file (error: false):
	// hello, world
	// read_text_file (error: true):
	// Access denied - path outside allowed directories: /etc/passwd not in /ws
}

// Tools gives the same tools to a function-calling API that does not speak
// MCP: hand Name, Description and InputSchema to the model, and run the
// calls it asks for with Call.
func ExampleTools() {
	b, _ := ab.NewMemory(ab.MemoryConfig{RootDir: "/ws", InitialData: map[string][]byte{"a.go": []byte("package a\n// TODO: test\n")}})
	defer b.Close()

	tools := map[string]agentmcp.Tool{}
	for _, t := range agentmcp.Tools(b, nil) {
		tools[t.Name] = t
	}
	// The model asked: grep {"pattern": "TODO", "outputMode": "content", "lineNumbers": true}
	res, err := tools["grep"].Call(context.Background(), json.RawMessage(`{"pattern":"TODO","outputMode":"content","lineNumbers":true}`))
	if err != nil {
		fmt.Println("tool error for the model:", err)
		return
	}
	fmt.Println(res.Text)
	// Output: ./a.go:2:// TODO: test
}

// Handler serves the tools over stateless Streamable HTTP, as the daemon's
// POST /mcp does.
func ExampleHandler() {
	b, _ := ab.NewMemory(ab.MemoryConfig{RootDir: "/ws"})
	defer b.Close()
	srv := httptest.NewServer(agentmcp.Handler(b, nil))
	defer srv.Close()

	ctx := context.Background()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "example"}, nil).Connect(ctx,
		&mcp.StreamableClientTransport{Endpoint: srv.URL, DisableStandaloneSSE: true}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer cs.Close()
	res, _ := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_allowed_directories", Arguments: map[string]any{}})
	fmt.Println(res.Content[0].(*mcp.TextContent).Text)
	// Output:
	// Allowed directories:
	// /ws
}
