package daemon

import (
	"fmt"
	"net/http"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/agentbackend/agentbackend/internal/wsnet"
)

// serveSSH is WS /ssh: it upgrades, checks the token (closing the
// WebSocket with 4001 "Unauthorized" when it is wrong, as the reference
// does) and serves SSH on the connection until it ends.
func (d *Daemon) serveSSH(w http.ResponseWriter, r *http.Request) {
	if !d.admit() {
		d.log.Warn("ssh-ws refused: too many connections", "remote", r.RemoteAddr, "limit", d.maxConnections())
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, errorBody{"Too many connections", fmt.Sprintf(
			"The daemon serves at most %d SSH-WS connections at once (--max-connections); try again later", d.maxConnections())})
		return
	}
	defer d.release()
	conn, err := wsnet.Accept(w, r)
	if err != nil {
		d.log.Warn("ssh-ws upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	if !d.wsAuthorized(r) {
		d.log.Warn("ssh-ws unauthorized", "remote", r.RemoteAddr)
		_ = conn.CloseWith(wsnet.StatusUnauthorized, "Unauthorized")
		return
	}
	if !d.track(conn) {
		_ = conn.CloseWith(1000, "Server shutting down")
		return
	}
	defer d.untrack(conn)
	defer conn.Close()
	d.serveConn(conn, r.RemoteAddr)
}

// sshConfig is the SSH server configuration of every connection: the host
// key, and any client authentication accepted, since the WebSocket upgrade
// carried the token.
func (d *Daemon) sshConfig() *ssh.ServerConfig {
	accept := func(ssh.ConnMetadata) (*ssh.Permissions, error) { return nil, nil }
	cfg := &ssh.ServerConfig{
		NoClientAuth:      true,
		PasswordCallback:  func(m ssh.ConnMetadata, _ []byte) (*ssh.Permissions, error) { return accept(m) },
		PublicKeyCallback: func(m ssh.ConnMetadata, _ ssh.PublicKey) (*ssh.Permissions, error) { return accept(m) },
		KeyboardInteractiveCallback: func(m ssh.ConnMetadata, _ ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			return accept(m)
		},
		ServerVersion: "SSH-2.0-agentbe-daemon",
	}
	cfg.AddHostKey(d.hostKey)
	return cfg
}

// connState is what the sessions of one connection share: the limits.
type connState struct {
	sessions chan struct{} // a slot per open session channel
	execs    chan struct{} // a slot per running command
}

// serveConn runs one SSH server on one WebSocket connection. It returns
// when the connection has ended and every session on it has finished
// (their commands killed).
func (d *Daemon) serveConn(conn *wsnet.Conn, remote string) {
	sconn, chans, reqs, err := ssh.NewServerConn(conn, d.sshServer)
	if err != nil {
		d.log.Debug("ssh handshake failed", "remote", remote, "err", err)
		return
	}
	defer sconn.Close()
	d.log.Debug("ssh connection", "remote", remote, "client", string(sconn.ClientVersion()))
	go ssh.DiscardRequests(reqs) // keepalive@openssh.com and the like: answered "no", which proves we are alive

	maxSessions, maxExecs := d.cfg.MaxSessionsPerConn, d.cfg.MaxExecsPerConn
	if maxSessions <= 0 {
		maxSessions = DefaultMaxSessionsPerConn
	}
	if maxExecs <= 0 {
		maxExecs = DefaultMaxExecsPerConn
	}
	cs := &connState{sessions: make(chan struct{}, maxSessions), execs: make(chan struct{}, maxExecs)}
	var wg sync.WaitGroup
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only session channels are served")
			continue
		}
		select {
		case cs.sessions <- struct{}{}:
		default:
			_ = nc.Reject(ssh.ResourceShortage, fmt.Sprintf("too many sessions on this connection (at most %d, --max-sessions-per-conn)", maxSessions))
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			<-cs.sessions
			continue
		}
		wg.Go(func() {
			defer func() { <-cs.sessions }()
			d.session(ch, creqs, cs)
		})
	}
	wg.Wait()
	d.pending.dropConn(cs)
	d.log.Debug("ssh connection closed", "remote", remote)
}
