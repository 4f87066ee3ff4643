// Package wsnet carries a byte stream (SSH, here) over a WebSocket: one
// binary message per write (or per run of writes made while one is
// being sent), any message boundaries on read, as the
// agent-backend daemon and its clients do. Dial and Accept return a net.Conn
// whose Close status and peer close code stay visible, so a caller can tell
// "the daemon refused my token" (close code 4001) from a lost connection.
package wsnet

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// StatusUnauthorized is the close code the daemon sends when the token is
// missing or wrong (with reason "Unauthorized").
const StatusUnauthorized websocket.StatusCode = 4001

// Conn is a net.Conn over a WebSocket. Reads and writes are binary
// messages; Close closes the WebSocket with 1000 (normal closure), and
// CloseWith lets the caller choose the code and reason.
type Conn struct {
	net.Conn
	ws     *websocket.Conn
	cancel context.CancelFunc
	out    *sender // see coalesce.go

	readMu sync.Mutex
	in     *bufio.Reader

	mu      sync.Mutex
	readErr error // the first error a Read returned
}

// Read reads from the stream and records the first error, so that
// PeerCloseStatus can report how the peer closed.
func (c *Conn) Read(p []byte) (int, error) {
	c.readMu.Lock()
	n, err := c.in.Read(p)
	c.readMu.Unlock()
	if err != nil {
		c.mu.Lock()
		if c.readErr == nil {
			c.readErr = err
		}
		c.mu.Unlock()
	}
	return n, err
}

// Write queues p to be sent, merged with the writes that come while an
// earlier one is being sent (see coalesce.go).
func (c *Conn) Write(p []byte) (int, error) { return c.out.Write(p) }

// PeerCloseStatus returns the close code the peer sent, once a Read has
// failed because of it, or -1.
func (c *Conn) PeerCloseStatus() websocket.StatusCode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return websocket.CloseStatus(c.readErr)
}

// AwaitCloseStatus returns the close code the peer sent, reading (and
// discarding) what arrives for up to d if no Read has failed yet: a peer
// that refuses a connection may close it just after the caller's own
// protocol gave up on it. It returns -1 when no close frame came.
func (c *Conn) AwaitCloseStatus(d time.Duration) websocket.StatusCode {
	if code := c.PeerCloseStatus(); code != -1 {
		return code
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	var buf [512]byte
	for {
		if _, err := c.Read(buf[:]); err != nil {
			return c.PeerCloseStatus()
		}
	}
}

// CloseWith closes the WebSocket with the given code and reason.
// What was written before is sent first.
func (c *Conn) CloseWith(code websocket.StatusCode, reason string) error {
	defer c.cancel()
	c.out.close()
	defer c.out.stop()
	return c.ws.Close(code, reason)
}

// Close closes the WebSocket with 1000 (normal closure), after sending what
// was written before.
func (c *Conn) Close() error {
	defer c.cancel()
	c.out.close()
	defer c.out.stop()
	return c.Conn.Close()
}

// WebSocket returns the underlying connection.
func (c *Conn) WebSocket() *websocket.Conn { return c.ws }

func wrap(ws *websocket.Conn) *Conn {
	// The net.Conn lives until Close, not until the context of the request
	// or dial that made it.
	ctx, cancel := context.WithCancel(context.Background())
	nc := websocket.NetConn(ctx, ws, websocket.MessageBinary)
	return &Conn{Conn: nc, ws: ws, cancel: cancel, out: newSender(nc), in: bufio.NewReaderSize(nc, readBuf)}
}

// Dial opens a WebSocket to url ("ws://host:port/ssh") with the given
// request headers. client may be nil for http.DefaultClient. A server
// that answers the upgrade with an HTTP status instead fails it with an
// *UpgradeError.
func Dial(ctx context.Context, url string, header http.Header, client *http.Client) (*Conn, error) {
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPHeader:      header,
		HTTPClient:      client,
		CompressionMode: websocket.CompressionDisabled, // SSH is encrypted: nothing to gain
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			ue := &UpgradeError{StatusCode: resp.StatusCode, Err: err}
			if resp.Body != nil {
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
				ue.Body = body
			}
			err = ue
		}
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		return nil, err
	}
	return wrap(ws), nil
}

// UpgradeError is a WebSocket upgrade the server answered with an HTTP
// status other than 101, with the start of the answer's body.
type UpgradeError struct {
	StatusCode int
	Body       []byte
	Err        error
}

func (e *UpgradeError) Error() string { return e.Err.Error() }
func (e *UpgradeError) Unwrap() error { return e.Err }

// Accept upgrades an HTTP request to a WebSocket. Origins are not checked:
// the endpoint is for programs, authenticated by token, not for browsers.
func Accept(w http.ResponseWriter, r *http.Request) (*Conn, error) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return nil, err
	}
	return wrap(ws), nil
}

// IsClosed reports whether err says the connection was closed (by either
// side, normally or not), as opposed to some other failure.
func IsClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || websocket.CloseStatus(err) != -1
}
