package netproxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
)

// connectTarget parses the authority-form target of a CONNECT request.
func connectTarget(uri string) (Target, error) {
	host, port, err := net.SplitHostPort(uri)
	if err != nil {
		return Target{}, fmt.Errorf("CONNECT target %q is not host:port", uri)
	}
	return target(host, port)
}

// target checks a host and a port given as text.
func target(host, port string) (Target, error) {
	p, err := parsePort(port)
	if err != nil {
		return Target{}, err
	}
	h, err := CanonicalHost(host)
	if err != nil {
		return Target{}, err
	}
	return Target{Host: h, Port: p}, nil
}

// connect opens a tunnel for a CONNECT request, then copies bytes both
// ways until both sides are done. When the client speaks TLS first, the
// server name of its ClientHello must be the host it asked for (or absent):
// a tunnel to an allowed host cannot carry a handshake for another name
// served at the same address.
func (s *Server) connect(c net.Conn, br *bufio.Reader, req *http.Request) {
	t, err := connectTarget(req.RequestURI)
	if err != nil {
		writeStatus(c, http.StatusBadRequest, "Bad Request", "network proxy: "+err.Error())
		return
	}
	note, err := s.decide(t)
	if err != nil {
		s.refuse(c, t, req.Method, note, err)
		return
	}
	up, err := s.dial(s.ctx, t)
	if err != nil {
		s.refuse(c, t, req.Method, note, err)
		return
	}
	defer up.Close()
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		s.log(t, req.Method, note, err)
		return
	}
	// Server to client from now on: protocols where the server speaks
	// first must not wait for the check of the client's first bytes.
	down := make(chan struct{})
	go func() {
		defer close(down)
		_, _ = io.Copy(c, up)
		closeWrite(c)
	}()
	if err := checkHello(c, br, t); err != nil {
		s.log(t, req.Method, note, err)
		up.Close()
		c.Close()
		<-down
		return
	}
	s.log(t, req.Method, note, nil)
	// What the client sent after the CONNECT (its ClientHello, say) is in
	// br; then the connection itself (spliced, on Linux).
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		if _, err := up.Write(b); err != nil {
			c.Close()
			<-down
			return
		}
	}
	_, _ = io.Copy(up, c)
	closeWrite(up)
	<-down
}

// closeWrite half-closes a TCP connection, so the other side sees the end
// of the stream while the answer can still come.
func closeWrite(c net.Conn) {
	if tc, ok := c.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	} else {
		c.Close()
	}
}
