package netproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits of one Server: what a command can make the host process hold.
const (
	maxConns               = 256              // connections at once; more are refused with 503
	maxHeaderBytes         = 64 << 10         // a request's line and headers: 16 MiB at most for a full proxy
	maxResponseHeaderBytes = 256 << 10        // a forwarded answer's headers
	headerTimeout          = 2 * time.Minute  // to send a request's headers (the idle time between requests too)
	dialTimeout            = 30 * time.Second // to connect to a host
	helloTimeout           = time.Minute      // for a TLS client's ClientHello once a tunnel is open
)

// Target is a host and port a command asked for.
type Target struct {
	Host string // canonical (CanonicalHost)
	Port int
}

// String returns host:port, with brackets around an IPv6 address.
func (t Target) String() string {
	return net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
}

// display is the target as a refusal names it: the host alone on the
// ports of http and https.
func (t Target) display() string {
	if t.Port == 80 || t.Port == 443 {
		return t.Host
	}
	return t.String()
}

// Blocked is a request the policy refused. Its message, "blocked by
// network policy: example.com (why)", is what the command gets.
type Blocked struct {
	Target Target
	Reason string // why, in words; may be empty
	// Err is the cause, when the refusal came from Check.
	Err error
}

func (b *Blocked) Error() string {
	msg := "blocked by network policy: " + b.Target.display()
	if b.Reason != "" {
		msg += " (" + b.Reason + ")"
	}
	return msg
}

// Unwrap returns the cause.
func (b *Blocked) Unwrap() error { return b.Err }

// Event is one decision of a Server.
type Event struct {
	Target Target
	Method string // CONNECT, or the method of a forwarded request
	// Err is nil when the request was let through and its connection
	// made; a *Blocked when the policy refused it; else why the host could
	// not be reached.
	Err error
	// Note is what Check returned for the request (nil if it was not
	// asked).
	Note any
}

// Server is the filtering proxy of one sandbox. It serves the listener
// given to Serve until Close. A request is let through when one of Rules
// matches its host and port, Check (if set) allows it, and every address
// the name resolves to is public or named by an address rule; the
// connection is then made to the very address checked, so a name that
// resolves differently a moment later (DNS rebinding) gains nothing.
type Server struct {
	Rules Rules
	// Check is asked about a request the rules allow, before its name is
	// resolved; a non-nil error refuses it (a *Blocked is passed on as
	// is, anything else becomes one with the error's text as reason). It
	// may block (asking a person); ctx ends when the Server closes. What
	// else it returns is given back in the request's Event (Note).
	Check func(ctx context.Context, t Target) (note any, err error)
	// Log receives every decision; it must not block for long.
	Log func(Event)

	once      sync.Once
	ctx       context.Context
	cancel    context.CancelFunc
	transport *http.Transport

	mu     sync.Mutex
	closed bool
	lns    map[net.Listener]struct{}
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func (s *Server) init() {
	s.once.Do(func() {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.lns = map[net.Listener]struct{}{}
		s.conns = map[net.Conn]struct{}{}
		s.transport = &http.Transport{
			DialContext:         s.dialAddr,
			DisableCompression:  true, // pass the client's Accept-Encoding on as it is
			MaxIdleConns:        16,   // kept for reuse, over every host a command asked for
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     30 * time.Second,
			TLSHandshakeTimeout: dialTimeout,
			// What a host's answer can make the proxy hold, per connection.
			MaxResponseHeaderBytes: maxResponseHeaderBytes,
		}
	})
}

// errClosed is what Serve returns once the Server is closed.
var errClosed = errors.New("netproxy: server closed")

// Serve accepts connections on l until Close (or l fails) and serves each
// in its own goroutine. It closes l when it returns.
func (s *Server) Serve(l net.Listener) error {
	s.init()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return errClosed
	}
	s.lns[l] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer l.Close()
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			delete(s.lns, l)
			s.mu.Unlock()
			if closed {
				return errClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		s.mu.Lock()
		switch {
		case s.closed:
			s.mu.Unlock()
			c.Close()
			continue
		case len(s.conns) >= maxConns:
			s.mu.Unlock()
			writeStatus(c, http.StatusServiceUnavailable, "network proxy busy", "network proxy: too many connections at once ("+strconv.Itoa(maxConns)+")")
			c.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer s.drop(c)
			s.serveConn(c)
		}()
	}
}

// drop closes and forgets a connection.
func (s *Server) drop(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Close stops the listeners, cuts every connection (tunnels included),
// ends pending Checks and waits for every goroutine of the Server.
func (s *Server) Close() error {
	s.init()
	s.mu.Lock()
	s.closed = true
	for l := range s.lns {
		l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.transport.CloseIdleConnections()
	return nil
}

// serveConn reads requests from c one at a time (pipelined requests are
// answered in order) until a CONNECT tunnel takes the connection over, an
// error, or either side asks to close.
func (s *Server) serveConn(c net.Conn) {
	lr := &io.LimitedReader{R: c, N: maxHeaderBytes}
	br := bufio.NewReaderSize(lr, 32<<10) // holds a ClientHello whole
	for {
		lr.N = maxHeaderBytes
		_ = c.SetReadDeadline(time.Now().Add(headerTimeout))
		req, err := http.ReadRequest(br)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isTimeout(err) {
				writeStatus(c, http.StatusBadRequest, "Bad Request", "network proxy: malformed request: "+err.Error())
			}
			return
		}
		_ = c.SetReadDeadline(time.Time{})
		lr.N = math.MaxInt64 // the body, or the tunnel
		if req.Method == http.MethodConnect {
			s.connect(c, br, req)
			return
		}
		if !s.forward(c, req) {
			return
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// decide applies the rules and Check to t, and returns Check's note.
func (s *Server) decide(t Target) (any, error) {
	if !s.Rules.Match(t.Host, t.Port) {
		reason := "not in the allow-list"
		if s.anyPort(t.Host) {
			reason = "port " + strconv.Itoa(t.Port) + " is not allowed for it"
		}
		return nil, &Blocked{Target: t, Reason: reason}
	}
	if s.Check == nil {
		return nil, nil
	}
	note, err := s.Check(s.ctx, t)
	if err != nil {
		var b *Blocked
		if !errors.As(err, &b) {
			err = &Blocked{Target: t, Reason: err.Error(), Err: err}
		}
	}
	return note, err
}

// anyPort reports whether some rule covers host on some port.
func (s *Server) anyPort(host string) bool {
	for _, r := range s.Rules {
		if r.port != -1 {
			rr := r
			rr.port = -1
			if rr.Match(host, 0) {
				return true
			}
		}
	}
	return false
}

// log reports a decision.
func (s *Server) log(t Target, method string, note any, err error) {
	if s.Log != nil {
		s.Log(Event{Target: t, Method: method, Err: err, Note: note})
	}
}

// refuse answers a request that cannot go through, with the reason as
// status text and body (clients print one or the other), and logs it.
func (s *Server) refuse(c net.Conn, t Target, method string, note any, err error) {
	s.log(t, method, note, err)
	var b *Blocked
	switch {
	case errors.As(err, &b):
		writeStatus(c, http.StatusForbidden, b.Error(), b.Error())
	default:
		msg := "network proxy: cannot reach " + t.String() + ": " + err.Error()
		writeStatus(c, http.StatusBadGateway, "cannot reach "+t.display(), msg)
	}
}

// writeStatus writes a complete response that closes the connection. The
// reason phrase carries the message too, made safe for a status line.
func writeStatus(c net.Conn, code int, reason, body string) {
	reason = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r > '~' {
			return ' '
		}
		return r
	}, reason)
	body += "\n"
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, reason, len(body), body)
	_ = c.SetWriteDeadline(time.Time{})
}

// ServeIn serves the Server on port inside the network namespace netns
// (see ListenIn), in a goroutine of its own. Closing what it returns
// closes the Server and waits for that goroutine.
func (s *Server) ServeIn(netns *os.File, port int) (io.Closer, error) {
	l, err := ListenIn(netns, port)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(l)
	}()
	return closerFunc(func() error {
		err := s.Close()
		<-done
		return err
	}), nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// LogEvent logs a decision about a connection command asked for to log:
// refusals at Info, the rest (connections made, hosts that could not be
// reached) at Debug.
func LogEvent(log *slog.Logger, command string, e Event) {
	var blocked *Blocked
	switch {
	case errors.As(e.Err, &blocked):
		log.Info("agentbackend: network request refused", "host", e.Target.String(), "method", e.Method, "command", command, "error", e.Err)
	case e.Err != nil:
		log.Debug("agentbackend: network request failed", "host", e.Target.String(), "method", e.Method, "command", command, "error", e.Err)
	default:
		log.Debug("agentbackend: network request let through", "host", e.Target.String(), "method", e.Method, "command", command)
	}
}
