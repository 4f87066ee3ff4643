package nettest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Origin is a web server on 127.0.0.1 for tests of the network policy:
// the same handler over HTTP and over HTTPS, the latter with a
// certificate for the test's host names signed by a throwaway CA. It
// counts the connections it accepts, so a test can assert that a refused
// request never reached it.
//
// Paths: /hello answers "hello from <Host header>"; /headers lists the
// request's headers, one "Name: value" a line, sorted; /bytes/N answers N
// bytes.
type Origin struct {
	HTTP, HTTPS *httptest.Server
	// CAPEM is the CA certificate that signed HTTPS's certificate, in PEM.
	CAPEM    []byte
	conns    atomic.Int64
	requests atomic.Int64
}

// NewOrigin starts an Origin whose HTTPS certificate covers names (and
// 127.0.0.1); both servers are closed when the test ends.
func NewOrigin(t testing.TB, names ...string) *Origin {
	t.Helper()
	o := &Origin{}
	ca, caKey, caPEM := newCA(t)
	o.CAPEM = caPEM
	cert := leaf(t, ca, caKey, names)
	o.HTTP = httptest.NewUnstartedServer(http.HandlerFunc(o.serve))
	o.HTTPS = httptest.NewUnstartedServer(http.HandlerFunc(o.serve))
	for _, s := range []*httptest.Server{o.HTTP, o.HTTPS} {
		s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				o.conns.Add(1)
			}
		}
	}
	o.HTTP.Start()
	o.HTTPS.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	o.HTTPS.StartTLS()
	t.Cleanup(func() {
		o.HTTP.Close()
		o.HTTPS.Close()
	})
	return o
}

// Conns returns how many connections the servers have accepted.
func (o *Origin) Conns() int64 { return o.conns.Load() }

// Requests returns how many requests the servers have answered.
func (o *Origin) Requests() int64 { return o.requests.Load() }

// Port returns the port of the HTTP server, or of the HTTPS one.
func (o *Origin) Port(https bool) int {
	s := o.HTTP
	if https {
		s = o.HTTPS
	}
	return s.Listener.Addr().(*net.TCPAddr).Port
}

func (o *Origin) serve(w http.ResponseWriter, r *http.Request) {
	o.requests.Add(1)
	switch {
	case r.URL.Path == "/hello":
		fmt.Fprintf(w, "hello from %s\n", r.Host)
	case r.URL.Path == "/headers":
		var lines []string
		for k, vs := range r.Header {
			for _, v := range vs {
				lines = append(lines, k+": "+v)
			}
		}
		sort.Strings(lines)
		fmt.Fprintln(w, strings.Join(lines, "\n"))
	case strings.HasPrefix(r.URL.Path, "/bytes/"):
		n, err := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/bytes/"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "bad size", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		_, _ = io.CopyN(w, zeros{}, n)
	default:
		http.NotFound(w, r)
	}
}

// zeros reads as endless 'x' bytes.
type zeros struct{}

var xs = []byte(strings.Repeat("x", 64<<10))

func (zeros) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		n += copy(p[n:], xs)
	}
	return n, nil
}

func newCA(t testing.TB) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "agentbackend test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func leaf(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, names []string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "agentbackend test server"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// CertPool returns a pool holding the Origin's CA.
func (o *Origin) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(o.CAPEM)
	return p
}
