package netproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/agentbackend/agentbackend/internal/nettest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var loopback = []netip.Addr{netip.MustParseAddr("127.0.0.1")}

// proxyFixture is a Server on a loopback listener in front of an Origin
// that answers as allowed.test, denied.test and other.test (all resolving
// to 127.0.0.1).
type proxyFixture struct {
	srv    *Server
	addr   string
	origin *nettest.Origin
	events chan Event
}

func newFixture(t *testing.T, rules ...string) *proxyFixture {
	t.Helper()
	f := &proxyFixture{origin: nettest.NewOrigin(t, "allowed.test", "denied.test", "other.test"), events: make(chan Event, 100)}
	t.Cleanup(SetTestHosts(map[string][]netip.Addr{"allowed.test": loopback, "denied.test": loopback, "other.test": loopback}))
	expanded := make([]string, len(rules))
	for i, r := range rules {
		r = strings.ReplaceAll(r, "HTTPPORT", fmt.Sprint(f.origin.Port(false)))
		expanded[i] = strings.ReplaceAll(r, "TLSPORT", fmt.Sprint(f.origin.Port(true)))
	}
	rs, err := ParseRules(expanded)
	require.NoError(t, err)
	f.srv = &Server{Rules: rs, Log: func(e Event) { f.events <- e }}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f.addr = l.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.srv.Serve(l)
	}()
	t.Cleanup(func() {
		require.NoError(t, f.srv.Close())
		<-done
	})
	return f
}

// client returns an HTTP client using the proxy, trusting the origin's CA.
func (f *proxyFixture) client() *http.Client {
	proxy, _ := url.Parse("http://" + f.addr)
	return &http.Client{Transport: &http.Transport{
		Proxy:             http.ProxyURL(proxy),
		TLSClientConfig:   &tls.Config{RootCAs: f.origin.CertPool()},
		DisableKeepAlives: true,
	}, Timeout: 30 * time.Second}
}

// raw sends text to the proxy and returns everything it answers.
func (f *proxyFixture) raw(t *testing.T, text string) string {
	t.Helper()
	c, err := net.Dial("tcp", f.addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, text)
	require.NoError(t, err)
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	out, _ := io.ReadAll(c)
	return string(out)
}

func (f *proxyFixture) get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := f.client().Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func TestProxyForwardsAllowedAndBlocksOthers(t *testing.T) {
	f := newFixture(t, "allowed.test:HTTPPORT", "127.0.0.1:*")
	code, body := f.get(t, fmt.Sprintf("http://allowed.test:%d/hello", f.origin.Port(false)))
	assert.Equal(t, 200, code)
	assert.Equal(t, fmt.Sprintf("hello from allowed.test:%d\n", f.origin.Port(false)), body)
	e := <-f.events
	assert.NoError(t, e.Err)
	assert.Equal(t, "allowed.test", e.Target.Host)
	assert.Equal(t, "GET", e.Method)

	before := f.origin.Conns()
	code, body = f.get(t, fmt.Sprintf("http://denied.test:%d/hello", f.origin.Port(false)))
	assert.Equal(t, 403, code)
	assert.Equal(t, fmt.Sprintf("blocked by network policy: denied.test:%d (not in the allow-list)\n", f.origin.Port(false)), body)
	assert.Equal(t, before, f.origin.Conns(), "the origin saw no connection")
	e = <-f.events
	var b *Blocked
	require.ErrorAs(t, e.Err, &b)
	assert.Equal(t, "denied.test", b.Target.Host)
}

func TestProxyTunnelsAllowedTLS(t *testing.T) {
	f := newFixture(t, "allowed.test:TLSPORT", "127.0.0.1:TLSPORT")
	code, body := f.get(t, fmt.Sprintf("https://allowed.test:%d/hello", f.origin.Port(true)))
	assert.Equal(t, 200, code)
	assert.Contains(t, body, "hello from allowed.test")

	before := f.origin.Conns()
	_, err := f.client().Get(fmt.Sprintf("https://denied.test:%d/hello", f.origin.Port(true)))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "blocked by network policy: denied.test:")
	assert.Equal(t, before, f.origin.Conns())
}

// A tunnel to an allowed host cannot carry a TLS handshake for another
// name served at the same address (SNI fronting).
func TestProxyTunnelChecksServerName(t *testing.T) {
	f := newFixture(t, "allowed.test:TLSPORT", "127.0.0.1:TLSPORT")
	c, err := net.Dial("tcp", f.addr)
	require.NoError(t, err)
	defer c.Close()
	fmt.Fprintf(c, "CONNECT allowed.test:%d HTTP/1.1\r\nHost: allowed.test\r\n\r\n", f.origin.Port(true))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
	tc := tls.Client(&bufConn{Conn: c, r: br}, &tls.Config{ServerName: "denied.test", RootCAs: f.origin.CertPool()})
	err = tc.Handshake()
	require.Error(t, err, "the tunnel is cut before any handshake for another name")
	blocked := <-f.events // one decision per tunnel: this one
	require.Error(t, blocked.Err)
	assert.Contains(t, blocked.Err.Error(), `TLS server name is "denied.test"`)

	// The same name as asked passes.
	code, _ := f.get(t, fmt.Sprintf("https://allowed.test:%d/hello", f.origin.Port(true)))
	assert.Equal(t, 200, code)
}

type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// An allowed name that resolves to loopback (or any address that is not
// public) is refused unless a rule names that address: a command cannot
// reach the host's services through a name it controls.
func TestProxyRefusesNonPublicAddresses(t *testing.T) {
	f := newFixture(t, "allowed.test:*", "*:*")
	before := f.origin.Conns()
	for _, u := range []string{
		fmt.Sprintf("http://allowed.test:%d/hello", f.origin.Port(false)),
		fmt.Sprintf("http://127.0.0.1:%d/hello", f.origin.Port(false)),
		fmt.Sprintf("http://[::ffff:127.0.0.1]:%d/hello", f.origin.Port(false)),
		fmt.Sprintf("http://[::1]:%d/hello", f.origin.Port(false)),
		"http://169.254.169.254/latest/meta-data/",
		"http://10.0.0.1/",
		"http://0.0.0.0/",
	} {
		code, body := f.get(t, u)
		assert.Equal(t, 403, code, u)
		assert.Contains(t, body, "blocked by network policy: ", u)
		assert.Contains(t, body, "which no rule names", u)
	}
	assert.Equal(t, before, f.origin.Conns())
	raw := f.raw(t, fmt.Sprintf("CONNECT allowed.test:%d HTTP/1.1\r\nHost: x\r\n\r\n", f.origin.Port(true)))
	assert.Contains(t, raw, "403 blocked by network policy: allowed.test:")
	assert.Contains(t, raw, "it resolves to 127.0.0.1, a loopback address, which no rule names")
	assert.Equal(t, before, f.origin.Conns())
}

// Requests are decided by the URL (or CONNECT target), never by a Host
// header, and the proxy's credentials never reach the origin.
func TestProxyHeaderTricks(t *testing.T) {
	f := newFixture(t, "allowed.test:HTTPPORT", "127.0.0.1:HTTPPORT")
	port := f.origin.Port(false)
	raw := f.raw(t, fmt.Sprintf("GET http://allowed.test:%d/headers HTTP/1.1\r\nHost: denied.test\r\nProxy-Authorization: Basic c2VjcmV0\r\nX-Keep: yes\r\nConnection: close, X-Drop\r\nX-Drop: 1\r\n\r\n", port))
	assert.Contains(t, raw, "200 OK")
	assert.Contains(t, raw, "X-Keep: yes")
	assert.NotContains(t, raw, "Proxy-Authorization")
	assert.NotContains(t, raw, "c2VjcmV0")
	assert.NotContains(t, raw, "X-Drop")
	assert.NotContains(t, raw, "Go-http-client", "the proxy adds no User-Agent")

	// The origin sees the URL's host whatever Host says.
	raw = f.raw(t, fmt.Sprintf("GET http://allowed.test:%d/hello HTTP/1.1\r\nHost: denied.test\r\nConnection: close\r\n\r\n", port))
	assert.Contains(t, raw, fmt.Sprintf("hello from allowed.test:%d", port))

	// Userinfo is not the host.
	raw = f.raw(t, fmt.Sprintf("GET http://allowed.test:%d@denied.test:%d/hello HTTP/1.1\r\nHost: allowed.test\r\n\r\n", port, port))
	assert.Contains(t, raw, "403 blocked by network policy: denied.test")

	// Origin-form (a client that thinks the proxy is the server) is refused.
	raw = f.raw(t, "GET /hello HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
	assert.Contains(t, raw, "400 Bad Request")
	for _, bad := range []string{
		"CONNECT allowed.test HTTP/1.1\r\nHost: x\r\n\r\n",
		"CONNECT allowed.test:0 HTTP/1.1\r\nHost: x\r\n\r\n",
		"CONNECT allowed.test:443/path HTTP/1.1\r\nHost: x\r\n\r\n",
		"CONNECT http://allowed.test:443 HTTP/1.1\r\nHost: x\r\n\r\n",
		"CONNECT 2130706433:443 HTTP/1.1\r\nHost: x\r\n\r\n",
		"CONNECT 127.1:443 HTTP/1.1\r\nHost: x\r\n\r\n",
		"CONNECT [fe80::1%25lo]:443 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET ftp://allowed.test/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET http://allowed.test:99999/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET http://allowed.test/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET http://allowed.test/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
		"GARBAGE\r\n\r\n",
	} {
		raw := f.raw(t, bad)
		assert.Regexp(t, `^HTTP/1.1 (400|403) `, raw, "%q", bad)
	}
	assert.Equal(t, int64(2), f.origin.Requests(), "only the two allowed requests reached the origin")
}

// Pipelined requests are each decided: an allowed one does not carry a
// denied one through.
func TestProxyPipelining(t *testing.T) {
	f := newFixture(t, "allowed.test:HTTPPORT", "127.0.0.1:HTTPPORT")
	port := f.origin.Port(false)
	raw := f.raw(t, fmt.Sprintf(
		"GET http://allowed.test:%d/hello HTTP/1.1\r\nHost: allowed.test\r\n\r\n"+
			"GET http://denied.test:%d/hello HTTP/1.1\r\nHost: allowed.test\r\n\r\n"+
			"GET http://allowed.test:%d/hello HTTP/1.1\r\nHost: allowed.test\r\n\r\n", port, port, port))
	first := strings.Index(raw, "hello from allowed.test")
	blocked := strings.Index(raw, "403 blocked by network policy: denied.test")
	require.GreaterOrEqual(t, first, 0, raw)
	require.Greater(t, blocked, first, raw)
	assert.Equal(t, 1, strings.Count(raw, "hello from"), "nothing is answered after the refusal, which closes the connection")
}

// A name is refused when any of its addresses is not public, even if the
// first one is: the proxy never picks the good one and leaves the other
// for a retry (DNS rebinding).
func TestProxyRefusesMixedAnswers(t *testing.T) {
	f := newFixture(t, "*:*")
	t.Cleanup(SetTestHosts(map[string][]netip.Addr{"rebind.test": {netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("127.0.0.1")}}))
	raw := f.raw(t, "CONNECT rebind.test:443 HTTP/1.1\r\n\r\n")
	assert.Contains(t, raw, "403 blocked by network policy: rebind.test (it resolves to 127.0.0.1, a loopback address, which no rule names)")
}

// An https:// URL in absolute form is fetched by the proxy itself, over
// TLS it verifies (busybox wget asks so).
func TestProxyForwardsHTTPS(t *testing.T) {
	f := newFixture(t, "allowed.test:TLSPORT", "127.0.0.1:TLSPORT")
	f.srv.init()
	f.srv.transport.TLSClientConfig = &tls.Config{RootCAs: f.origin.CertPool()}
	raw := f.raw(t, fmt.Sprintf("GET https://allowed.test:%d/hello HTTP/1.1\r\nConnection: close\r\n\r\n", f.origin.Port(true)))
	assert.Contains(t, raw, "200 OK")
	assert.Contains(t, raw, "hello from allowed.test")
	f.srv.transport.TLSClientConfig = nil
	f.srv.transport.CloseIdleConnections()
	raw = f.raw(t, fmt.Sprintf("GET https://allowed.test:%d/hello HTTP/1.1\r\nConnection: close\r\n\r\n", f.origin.Port(true)))
	assert.Contains(t, raw, "502 cannot reach allowed.test", "the proxy verifies the server")
}

// A request smuggled in a body (or behind contradictory framing) never
// reaches a host: the proxy frames what it forwards itself, and a request
// with a body ends its connection.
func TestProxySmuggling(t *testing.T) {
	f := newFixture(t, "allowed.test:HTTPPORT", "127.0.0.1:HTTPPORT")
	port := f.origin.Port(false)
	smuggled := fmt.Sprintf("GET http://denied.test:%d/hello HTTP/1.1\r\nHost: denied.test\r\n\r\n", port)
	for _, framing := range []string{
		fmt.Sprintf("Content-Length: %d\r\n", len(smuggled)),
		"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
	} {
		body := smuggled
		if strings.Contains(framing, "chunked") {
			body = fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(smuggled), smuggled)
		}
		before := f.origin.Requests()
		raw := f.raw(t, fmt.Sprintf("POST http://allowed.test:%d/hello HTTP/1.1\r\nHost: allowed.test\r\n%s\r\n%s%s", port, framing, body, smuggled))
		assert.NotContains(t, raw, "hello from denied.test", framing)
		assert.LessOrEqual(t, f.origin.Requests()-before, int64(1), framing)
		assert.LessOrEqual(t, strings.Count(raw, "HTTP/1.1 "), 1, "one answer, then the connection ends: %s", framing)
	}
}

func TestProxyPorts(t *testing.T) {
	f := newFixture(t, "allowed.test", "127.0.0.1:*")
	raw := f.raw(t, fmt.Sprintf("CONNECT allowed.test:%d HTTP/1.1\r\nHost: x\r\n\r\n", f.origin.Port(true)))
	assert.Contains(t, raw, "port")
	assert.Contains(t, raw, "is not allowed for it")
	assert.Equal(t, int64(0), f.origin.Conns())
}

func TestProxyCheck(t *testing.T) {
	f := newFixture(t, "*:*", "127.0.0.1:*")
	var mu sync.Mutex
	var asked []string
	f.srv.Check = func(ctx context.Context, tg Target) (any, error) {
		mu.Lock()
		asked = append(asked, tg.String())
		mu.Unlock()
		if tg.Host == "denied.test" {
			return "refused", errors.New("the approver refused")
		}
		return "asked", nil
	}
	code, _ := f.get(t, fmt.Sprintf("http://allowed.test:%d/hello", f.origin.Port(false)))
	assert.Equal(t, 200, code)
	assert.Equal(t, "asked", (<-f.events).Note)
	code, body := f.get(t, fmt.Sprintf("http://denied.test:%d/hello", f.origin.Port(false)))
	assert.Equal(t, 403, code)
	assert.Contains(t, body, "(the approver refused)")
	assert.Equal(t, "refused", (<-f.events).Note)
	assert.Equal(t, []string{fmt.Sprintf("allowed.test:%d", f.origin.Port(false)), fmt.Sprintf("denied.test:%d", f.origin.Port(false))}, asked)
}

// Close ends a Check waiting on a person and a tunnel in use.
func TestProxyCloseEndsEverything(t *testing.T) {
	f := newFixture(t, "*:*", "127.0.0.1:*")
	waiting := make(chan struct{})
	f.srv.Check = func(ctx context.Context, tg Target) (any, error) {
		if tg.Host == "denied.test" {
			close(waiting)
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return nil, nil
	}
	tunnel, err := net.Dial("tcp", f.addr)
	require.NoError(t, err)
	defer tunnel.Close()
	fmt.Fprintf(tunnel, "CONNECT allowed.test:%d HTTP/1.1\r\nHost: x\r\n\r\n", f.origin.Port(false))
	br := bufio.NewReader(tunnel)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)

	asking, err := net.Dial("tcp", f.addr)
	require.NoError(t, err)
	defer asking.Close()
	fmt.Fprintf(asking, "CONNECT denied.test:443 HTTP/1.1\r\nHost: x\r\n\r\n")
	<-waiting
	require.NoError(t, f.srv.Close())
	_ = tunnel.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = br.ReadByte()
	assert.Error(t, err, "the tunnel is cut")
}

func TestProxyRefusesWhenFull(t *testing.T) {
	f := newFixture(t, "*:*", "127.0.0.1:*")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range maxConns {
		c, err := net.Dial("tcp", f.addr)
		require.NoError(t, err)
		conns = append(conns, c)
	}
	// The accept loop has registered them all once one more is answered.
	assert.Eventually(t, func() bool {
		return strings.Contains(f.raw(t, "GET http://allowed.test/ HTTP/1.1\r\n\r\n"), "503")
	}, 10*time.Second, 10*time.Millisecond)
}
