package agentmcp

import (
	"context"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// drainTransport is MCP over a byte stream (ServeStdio's) that answers
// what it was asked before it ends. A client may write its requests and
// close its end at once (`printf ... | agent-backend daemon --local-only`);
// the SDK ends the session at the end of input and cancels the calls still
// running, so their answers would be lost. This connection holds the end
// of input back until every call read has been answered, the way the MCP
// filesystem server does.
type drainTransport struct {
	mcp.IOTransport
}

// Connect implements mcp.Transport.
func (t *drainTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := t.IOTransport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &drainConn{Connection: c, changed: make(chan struct{}), closed: make(chan struct{}),
		asked: map[jsonrpc.ID]bool{}, waiting: map[jsonrpc.ID]bool{}}, nil
}

// drainConn counts the calls in flight both ways.
type drainConn struct {
	mcp.Connection

	mu      sync.Mutex
	asked   map[jsonrpc.ID]bool // calls read, not answered yet
	waiting map[jsonrpc.ID]bool // calls written to the client, not answered yet
	changed chan struct{}       // closed (and replaced) when the maps change

	closeOnce sync.Once
	closed    chan struct{}
}

// Read returns the next message; at the end of input (or any read error)
// it first waits until every call read has been answered. It stops
// waiting when a call of the server's is still waiting for the client
// (whose answer can no longer come), when ctx ends, or when the connection
// is closed.
func (c *drainConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	msg, err := c.Connection.Read(ctx)
	if err == nil {
		switch m := msg.(type) {
		case *jsonrpc.Request:
			if m.IsCall() {
				c.update(func() { c.asked[m.ID] = true })
			}
		case *jsonrpc.Response:
			c.update(func() { delete(c.waiting, m.ID) })
		}
		return msg, nil
	}
	for {
		c.mu.Lock()
		done := len(c.asked) == 0 || len(c.waiting) > 0
		changed := c.changed
		c.mu.Unlock()
		if done {
			return nil, err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, err
		case <-c.closed:
			return nil, err
		}
	}
}

// Write writes msg and notes the answer or the call it is.
func (c *drainConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	switch m := msg.(type) {
	case *jsonrpc.Request:
		if m.IsCall() {
			c.update(func() { c.waiting[m.ID] = true })
		}
	case *jsonrpc.Response:
		// Noted whether or not the write succeeds: a failed write is
		// the end of the answer too.
		defer c.update(func() { delete(c.asked, m.ID) })
	}
	return c.Connection.Write(ctx, msg)
}

// Close unblocks a Read that is draining, then closes the connection.
func (c *drainConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Connection.Close()
}

func (c *drainConn) update(f func()) {
	c.mu.Lock()
	f()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}
