package agentmcp_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/agentmcp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// benchFile is the 4 KiB text file the benchmarks read.
var benchFile = strings.Repeat(strings.Repeat("x", 63)+"\n", 64)

func benchBackend(b *testing.B) *ab.LocalBackend {
	lb := newLocal(b, ab.LocalConfig{})
	if err := lb.Write(context.Background(), "f.txt", []byte(benchFile)); err != nil {
		b.Fatal(err)
	}
	return lb
}

func benchCall(b *testing.B, cs *mcp.ClientSession) {
	params := &mcp.CallToolParams{Name: "read_text_file", Arguments: map[string]any{"path": "f.txt"}}
	ctx := context.Background()
	for b.Loop() {
		res, err := cs.CallTool(ctx, params)
		if err != nil || res.IsError || len(res.Content[0].(*mcp.TextContent).Text) != len(benchFile) {
			b.Fatalf("read_text_file: %v %v", res, err)
		}
	}
}

// BenchmarkReadTextFile is an MCP read_text_file round trip of a 4 KiB
// file in process (client and server sessions over the in-memory
// transport: JSON encoding both ways, schema validation, the tool), against
// the same Read made directly on the backend.
func BenchmarkReadTextFile(b *testing.B) {
	lb := benchBackend(b)
	b.Run("raw", func(b *testing.B) {
		ctx := context.Background()
		for b.Loop() {
			if data, err := lb.Read(ctx, "f.txt"); err != nil || len(data) != len(benchFile) {
				b.Fatal(err)
			}
		}
	})
	b.Run("sdk", func(b *testing.B) {
		benchCall(b, connect(b, lb))
	})
}

// BenchmarkReadTextFileHTTP is the same round trip over stateless
// Streamable HTTP on 127.0.0.1 (Handler behind an httptest server), against
// a bare HTTP round trip to a handler that makes the same Read and writes
// the bytes: what MCP adds over plain HTTP.
func BenchmarkReadTextFileHTTP(b *testing.B) {
	lb := benchBackend(b)
	b.Run("raw", func(b *testing.B) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			data, err := lb.Read(r.Context(), "f.txt")
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			w.Write(data)
		}))
		defer srv.Close()
		body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_text_file","arguments":{"path":"f.txt"}}}`)
		for b.Loop() {
			resp, err := srv.Client().Post(srv.URL, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if n != int64(len(benchFile)) {
				b.Fatalf("read %d bytes", n)
			}
		}
	})
	b.Run("sdk", func(b *testing.B) {
		srv := httptest.NewServer(agentmcp.Handler(lb, nil))
		defer srv.Close()
		client := mcp.NewClient(&mcp.Implementation{Name: "bench"}, nil)
		cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{
			Endpoint: srv.URL, HTTPClient: srv.Client(), DisableStandaloneSSE: true}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		benchCall(b, cs)
	})
}
