package netproxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// hopHeaders are the headers of one connection, never passed on; the
// proxy's own (Proxy-Authorization above all) among them.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopHeaders drops hop-by-hop headers, those Connection lists too.
func removeHopHeaders(h http.Header) {
	for _, v := range h.Values("Connection") {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

// forward passes a request in absolute form (GET http://host/path) on to
// its host and writes the answer back. The request goes where its URL
// says, whatever its Host header claims: the header is replaced by the
// URL's host. It reports whether the connection may carry another request.
func (s *Server) forward(c net.Conn, req *http.Request) bool {
	u := req.URL
	if u.Scheme == "" || u.Host == "" {
		writeStatus(c, http.StatusBadRequest, "Bad Request",
			"network proxy: this is a proxy; send requests in absolute form (GET http://host/path) or use CONNECT")
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	switch {
	case scheme != "http" && scheme != "https":
		writeStatus(c, http.StatusBadRequest, "Bad Request", "network proxy: unsupported scheme "+u.Scheme+" (http and https only)")
		return false
	case port == "" && scheme == "http":
		port = "80"
	case port == "":
		port = "443"
	}
	t, err := target(u.Hostname(), port)
	if err != nil {
		writeStatus(c, http.StatusBadRequest, "Bad Request", "network proxy: "+err.Error())
		return false
	}
	note, err := s.decide(t)
	if err != nil {
		s.refuse(c, t, req.Method, note, err)
		return false
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	out := req.Clone(s.ctx)
	out.RequestURI = ""
	out.URL.Scheme = scheme
	out.URL.Host = t.String()
	out.Host = t.String()
	if (scheme == "http" && t.Port == 80) || (scheme == "https" && t.Port == 443) {
		out.Host = hostForHeader(t.Host)
	}
	removeHopHeaders(out.Header)
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = []string{""} // Go's transport would add its own
	}
	out.Close = false
	if strings.EqualFold(out.Header.Get("Expect"), "100-continue") {
		out.Header.Del("Expect")
		if _, err := io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n"); err != nil {
			return false
		}
	}
	resp, err := s.transport.RoundTrip(out)
	if err != nil {
		var b *Blocked
		if !errors.As(err, &b) {
			err = unwrapDial(err)
		}
		s.refuse(c, t, req.Method, note, err)
		return false
	}
	defer resp.Body.Close()
	s.log(t, req.Method, note, nil)
	removeHopHeaders(resp.Header)
	keep := !req.Close && !resp.Close && !hasBody && req.ProtoAtLeast(1, 1)
	resp.Close = !keep
	resp.Request = req // HEAD: no body written
	if !req.ProtoAtLeast(1, 1) {
		resp.TransferEncoding = nil // no chunks for an HTTP/1.0 client: the end of the connection ends the body
	}
	_ = c.SetWriteDeadline(time.Time{})
	if err := resp.Write(c); err != nil {
		return false
	}
	return keep
}

// hostForHeader is the Host header for a default port: the host, with
// brackets around an IPv6 address.
func hostForHeader(host string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]"
	}
	return host
}

// unwrapDial strips the transport's wrapping of a dial error down to
// what says why.
func unwrapDial(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}
