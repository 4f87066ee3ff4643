package netproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"
)

// TLS record framing: a handshake record starts with content type 22, and
// a record holds at most 2^14 bytes of plaintext (a ClientHello is sent in
// the clear), plus the 5-byte header.
const (
	recordHandshake = 0x16
	recordHeader    = 5
	maxRecord       = 1<<14 + 2048 // with what an implementation may add
)

// checkHello waits for the client's first bytes in a tunnel to t. When
// they are a TLS ClientHello, its server name must be t's host (or absent,
// as for an address); anything else is refused. Other protocols pass.
// The bytes stay in br.
func checkHello(c net.Conn, br *bufio.Reader, t Target) error {
	_ = c.SetReadDeadline(time.Now().Add(helloTimeout))
	defer c.SetReadDeadline(time.Time{})
	first, err := br.Peek(1)
	if err != nil || first[0] != recordHandshake {
		return nil // not TLS, or the client is gone: nothing to check
	}
	head, err := br.Peek(recordHeader)
	if err != nil {
		return &Blocked{Target: t, Reason: "the TLS handshake ended early"}
	}
	n := int(head[3])<<8 | int(head[4])
	if n > maxRecord {
		return &Blocked{Target: t, Reason: "the TLS ClientHello record is too long"}
	}
	record, err := br.Peek(recordHeader + n)
	if err != nil {
		return &Blocked{Target: t, Reason: "the TLS handshake ended early"}
	}
	name, err := serverName(record)
	if err != nil {
		return &Blocked{Target: t, Reason: "its TLS ClientHello cannot be read: " + err.Error()}
	}
	if name == "" {
		return nil
	}
	got, err := CanonicalHost(name)
	if err != nil || got != t.Host {
		return &Blocked{Target: t, Reason: fmt.Sprintf("the tunnel's TLS server name is %q, not the host asked for", name)}
	}
	return nil
}

// errHelloRead ends the handshake serverName starts, once it has the hello.
var errHelloRead = errors.New("hello read")

// serverName returns the server name (SNI) of the ClientHello in record,
// parsed by crypto/tls itself: a server handshake on the recorded bytes,
// stopped as soon as the hello is read.
func serverName(record []byte) (string, error) {
	var name string
	got := false
	cfg := &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		name, got = h.ServerName, true
		return nil, errHelloRead
	}}
	err := tls.Server(&replayConn{data: record}, cfg).HandshakeContext(context.Background())
	if got {
		return name, nil
	}
	if err == nil {
		err = errors.New("no ClientHello")
	}
	return "", err
}

// replayConn is a net.Conn that reads recorded bytes and discards writes.
type replayConn struct {
	net.Conn // nil: the methods below are all the handshake uses
	data     []byte
}

func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, errors.New("the ClientHello spans more than one record")
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func (r *replayConn) Write(p []byte) (int, error)      { return len(p), nil }
func (r *replayConn) Close() error                     { return nil }
func (r *replayConn) SetDeadline(time.Time) error      { return nil }
func (r *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (r *replayConn) SetWriteDeadline(time.Time) error { return nil }
func (r *replayConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (r *replayConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
