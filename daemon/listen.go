package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"
)

// listen opens the listeners Run serves on addr (see Run): every interface,
// loopback (127.0.0.1 and ::1, the same port on both), or the address
// given.
func (d *Daemon) listen(addr string) ([]net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("daemon: listen address %q: %w", addr, err)
	}
	if (host == "" && d.cfg.AuthToken == "") || host == "localhost" {
		return listenLoopback(port)
	}
	if ip := net.ParseIP(host); ip != nil {
		// Refused before it is bound, not just before it is served.
		if err := d.checkExposure(&net.TCPAddr{IP: ip}); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return []net.Listener{ln}, nil
}

// listenLoopback listens on 127.0.0.1 and on ::1 with the same port, so
// that "localhost" reaches the daemon whichever address a client tries
// first. A host without IPv6 loopback gets 127.0.0.1 alone. Port "0" picks
// a port free on both.
func listenLoopback(port string) ([]net.Listener, error) {
	for attempt := 0; ; attempt++ {
		v4, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
		if err != nil {
			return nil, err
		}
		p := strconv.Itoa(v4.Addr().(*net.TCPAddr).Port)
		v6, err := net.Listen("tcp", net.JoinHostPort("::1", p))
		switch {
		case err == nil:
			return []net.Listener{v4, v6}, nil
		case noIPv6Loopback(err):
			return []net.Listener{v4}, nil
		case port == "0" && attempt < 10 && errors.Is(err, syscall.EADDRINUSE):
			v4.Close() // the port chosen for 127.0.0.1 is taken on ::1: choose again
		default:
			v4.Close()
			return nil, err
		}
	}
}

// noIPv6Loopback reports whether a listen on ::1 failed because the host
// has no IPv6 (or no ::1), rather than for a reason to report.
func noIPv6Loopback(err error) bool {
	return errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT) ||
		errors.Is(err, syscall.EPROTONOSUPPORT)
}

// checkExposure refuses a listener that others than this host's users can
// reach when no token guards the daemon, unless the operator asked for it.
func (d *Daemon) checkExposure(addr net.Addr) error {
	if d.cfg.AuthToken != "" || d.cfg.InsecureNoAuthPublic || isLoopback(addr) {
		return nil
	}
	what := addr.String()
	if a, ok := addr.(*net.TCPAddr); ok && a.Port == 0 {
		what = a.IP.String() // not bound yet
	}
	return fmt.Errorf("daemon: refusing to serve %s without an auth token: anyone who can reach it could run commands as this user. "+
		"Set a token (--auth-token, Config.AuthToken), or listen on loopback only (the default without a token); "+
		"to serve it open anyway, say so with --insecure-no-auth-public (Config.InsecureNoAuthPublic)", what)
}

// isLoopback reports whether only this host can connect to addr: a TCP
// address on a loopback IP, or a Unix socket.
func isLoopback(addr net.Addr) bool {
	switch a := addr.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}

// logStart logs the daemon's start, and warns about how open it is.
func (d *Daemon) logStart(lns []net.Listener) {
	addrs := make([]string, len(lns))
	loopback := true
	for i, ln := range lns {
		addrs[i] = ln.Addr().String()
		loopback = loopback && isLoopback(ln.Addr())
	}
	attrs := []any{"addr", strings.Join(addrs, ","), "root", d.cfg.RootDir, "backend", string(d.ws.Type()),
		"auth", d.cfg.AuthToken != "", "ssh-ws", !d.cfg.DisableSSHWS, "version", d.version()}
	if d.local != nil {
		attrs = append(attrs, "isolation", string(d.local.Isolation()))
	}
	if d.scope != "" {
		attrs = append(attrs, "scope", d.scope)
	}
	if k := d.HostKey(); k != nil {
		attrs = append(attrs, "host_key", ssh.FingerprintSHA256(k))
	}
	d.log.Info("agentbe-daemon running", attrs...)
	switch {
	case d.cfg.AuthToken != "":
	case loopback:
		d.log.Warn("no auth token: serving on loopback only (" + strings.Join(addrs, ", ") + "); every user and process on this host can run commands as this user. " +
			"Set --auth-token to serve other hosts")
	default:
		d.log.Warn("NO AUTHENTICATION on a public address (--insecure-no-auth-public): anyone who can reach " +
			strings.Join(addrs, ", ") + " can run commands as this user")
	}
}

// scrubSecrets removes the daemon's credentials from this process's
// environment, which every command it runs inherits: the variables the
// reference daemon strips, and any variable holding the token (a token
// shorter than 8 bytes only when it is the whole value).
func scrubSecrets(token string) {
	for _, kv := range os.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		holds := token != "" && (value == token || (len(token) >= 8 && strings.Contains(value, token)))
		if slices.Contains(secretEnv, name) || holds {
			os.Unsetenv(name)
		}
	}
}
