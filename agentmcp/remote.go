package agentmcp

import (
	"context"
	"net/http"

	ab "github.com/agentbackend/agentbackend"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// ConnectRemote returns an MCP client session on the tools of the daemon
// that serves rb, over HTTP (POST /mcp, stateless Streamable HTTP): the
// tools run on the daemon host, next to the files. A non-empty scope
// narrows them to that subdirectory (the X-Scope-Path header; the daemon
// must have no static scope). The session is tracked on rb: rb.Close()
// closes it. MCP calls are never retried automatically; their errors go to
// the caller.
func ConnectRemote(ctx context.Context, rb *ab.RemoteBackend, scope string) (*mcp.ClientSession, error) {
	url, header, err := rb.MCPEndpoint(scope)
	if err != nil {
		return nil, err
	}
	base := rb.HTTPClient()
	client := *base
	client.Transport = headerTransport{header: header, next: base.Transport}
	t := &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &client, MaxRetries: -1, DisableStandaloneSSE: true}
	cs, err := newClient().Connect(ctx, t, nil)
	if err != nil {
		return nil, err
	}
	rb.TrackCloser(&sessionCloser{cs: cs})
	return cs, nil
}

// headerTransport adds the daemon's headers to every request.
type headerTransport struct {
	header http.Header
	next   http.RoundTripper
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h.header {
		r.Header[k] = v
	}
	next := h.next
	if next == nil {
		next = http.DefaultTransport
	}
	return next.RoundTrip(r)
}
