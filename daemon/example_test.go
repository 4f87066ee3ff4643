package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/agentmcp"
	"github.com/agentbackend/agentbackend/daemon"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A daemon serving a workspace on 127.0.0.1 (in production: `agent-backend
// daemon --rootDir ... --auth-token-file ...`), checked with GET /health,
// then used the two ways clients use it: a RemoteBackend (SSH over
// WebSocket) and MCP over HTTP, both with the token and the pinned host key.
func ExampleNew() {
	dir, err := os.MkdirTemp("", "daemon-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	d, err := daemon.New(daemon.Config{RootDir: dir, AuthToken: "s3cret", HostKeyPath: dir + "/.host_key",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx, ln) }()
	defer func() { stop(); <-served }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/health")
	if err != nil {
		log.Fatal(err)
	}
	var health struct{ Status string }
	json.NewDecoder(resp.Body).Decode(&health)
	resp.Body.Close()
	fmt.Println("health:", health.Status)

	rb, err := ab.NewRemote(ab.RemoteConfig{
		Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port,
		RootDir: d.RootDir(), AuthToken: "s3cret", HostKey: d.HostKey(),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer rb.Close()
	if err := rb.Write(ctx, "notes/todo.txt", []byte("ship it\n")); err != nil {
		log.Fatal(err)
	}

	cs, err := agentmcp.ConnectRemote(ctx, rb, "")
	if err != nil {
		log.Fatal(err)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "read_text_file", Arguments: map[string]any{"path": "notes/todo.txt"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print("read_text_file: ", res.Content[0].(*mcp.TextContent).Text)
	// Output:
	// health: ok
	// read_text_file: ship it
}
