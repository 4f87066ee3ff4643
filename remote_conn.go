package agentbackend

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/agentbackend/agentbackend/internal/sftpbulk"
	"github.com/agentbackend/agentbackend/internal/wsnet"
)

// remoteConn is one connection to the daemon: a WebSocket carrying an SSH
// client, and the SFTP session cached on it. done is closed when it ends,
// for whatever reason (err says which).
type remoteConn struct {
	ws     *wsnet.Conn
	client *ssh.Client

	done     chan struct{}
	closeMu  sync.Once
	err      error
	noSearch atomic.Bool // the daemon has no search subsystem (the reference)
	noScope  atomic.Bool // the daemon refuses RemoteScopeRequest (the reference)
	scopeAsk atomic.Bool // whether it does is known

	sftpMu sync.Mutex
	sftp   map[*RemoteBackend]*sftpSessions // per view; nil for the workspace (and scopes the daemon cannot jail)
}

// sftpSessions are the SFTP sessions of one view on a connection.
type sftpSessions struct {
	sftp  *sftp.Client
	posix bool              // the SFTP server has posix-rename@openssh.com
	bulk  *sftpbulk.Session // a second SFTP session for large files (see bulkSize)
}

// bulkSize is the file size from which Read and Write move data over the
// bulk session, which reads replies straight into the result instead of
// through a buffer per reply.
const bulkSize = 1 << 20

// sessions returns the SFTP sessions of view v (nil for the workspace's).
// Called with sftpMu held.
func (c *remoteConn) sessions(v *RemoteBackend) *sftpSessions {
	s := c.sftp[v]
	if s == nil {
		if c.sftp == nil {
			c.sftp = map[*RemoteBackend]*sftpSessions{}
		}
		s = &sftpSessions{}
		c.sftp[v] = s
	}
	return s
}

// bulkSession returns the bulk SFTP session of b's view, opening it on
// first use.
func (c *remoteConn) bulkSession(b *RemoteBackend) (*sftpbulk.Session, error) {
	c.sftpMu.Lock()
	defer c.sftpMu.Unlock()
	if err := b.learnJail(c); err != nil {
		return nil, err
	}
	s := c.sessions(b.sessionKey(c))
	if s.bulk != nil && s.bulk.Err() == nil {
		return s.bulk, nil
	}
	ch, err := b.sftpChannel(c)
	if err != nil {
		return nil, err
	}
	if s.bulk, err = sftpbulk.Open(ch); err != nil {
		ch.Close()
		return nil, err
	}
	return s.bulk, nil
}

// sshUser and sshPassword are the credentials of the SSH layer: the daemon
// accepts any once the WebSocket carried the token, and the reference
// client sends these.
const sshUser, sshPassword = "agent", "agent"

// dialRemote connects to b's daemon: WebSocket, then SSH over it.
func dialRemote(ctx context.Context, b *RemoteBackend) (*remoteConn, error) {
	ws, err := wsnet.Dial(ctx, b.wsURL, b.header.Clone(), b.cfg.HTTPClient)
	if err != nil {
		return nil, &Error{Code: CodeConnectionClosed, Op: "connect", Err: err,
			Message: "SSH-WS connection to " + b.wsURL + " failed: " + err.Error()}
	}
	cfg := &ssh.ClientConfig{
		User:            sshUser,
		Auth:            []ssh.AuthMethod{ssh.Password(sshPassword)},
		HostKeyCallback: b.hostKeyCB,
		Timeout:         b.cfg.ConnectTimeout,
	}
	// The SSH handshake has no context: bound it by closing the socket.
	stop := context.AfterFunc(ctx, func() { ws.Close() })
	sconn, chans, reqs, err := ssh.NewClientConn(ws, "daemon", cfg)
	stopped := stop()
	if err != nil {
		if ws.AwaitCloseStatus(500*time.Millisecond) == wsnet.StatusUnauthorized {
			ws.Close()
			return nil, errAuth(b.wsURL)
		}
		ws.Close()
		if !stopped {
			err = ctx.Err()
		}
		return nil, &Error{Code: CodeConnectionClosed, Op: "connect", Err: err,
			Message: "SSH-WS connection to " + b.wsURL + " failed: " + err.Error()}
	}
	c := &remoteConn{ws: ws, client: ssh.NewClient(sconn, chans, reqs), done: make(chan struct{})}
	go func() {
		err := c.client.Wait()
		if err == nil {
			err = io.EOF
		}
		c.close(err)
	}()
	if b.cfg.KeepaliveInterval > 0 {
		go c.keepalive(b.cfg.KeepaliveInterval, b.cfg.KeepaliveCountMax)
	}
	return c, nil
}

// close ends the connection (once) with cause err.
func (c *remoteConn) close(err error) {
	c.closeMu.Do(func() {
		c.err = err
		close(c.done)
		c.client.Close()
		c.ws.Close()
	})
}

// lost reports whether the connection has ended, waiting up to a second
// for the news when err looks like a symptom of a lost connection (an
// operation can fail a moment before the connection's own reader notices).
func (c *remoteConn) lost(err error) bool {
	if c.dead() {
		return true
	}
	var missing *ssh.ExitMissingError
	if !isConnLoss(err) && !errors.As(err, &missing) {
		return false
	}
	select {
	case <-c.done:
		return true
	case <-time.After(time.Second):
		return isConnLoss(err)
	}
}

// dead reports whether the connection has ended.
func (c *remoteConn) dead() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// keepalive probes the connection every interval; when a probe gets no
// answer within countMax intervals, the connection is dead and is closed.
func (c *remoteConn) keepalive(interval time.Duration, countMax int) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		answered := make(chan error, 1)
		go func() {
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			answered <- err
		}()
		timer := time.NewTimer(interval * time.Duration(countMax))
		select {
		case err := <-answered:
			timer.Stop()
			if err != nil {
				c.close(err)
				return
			}
		case <-timer.C:
			c.close(errKeepalive)
			return
		case <-c.done:
			timer.Stop()
			return
		}
	}
}

var errKeepalive = errors.New("keepalive: the daemon stopped answering")

// sftpClient returns the SFTP session of b's view, opening it on first
// use (and again if it ended).
func (c *remoteConn) sftpClient(b *RemoteBackend) (*sftp.Client, bool, error) {
	c.sftpMu.Lock()
	defer c.sftpMu.Unlock()
	if err := b.learnJail(c); err != nil {
		return nil, false, err
	}
	s := c.sessions(b.sessionKey(c))
	if s.sftp != nil {
		return s.sftp, s.posix, nil
	}
	ch, err := b.sftpChannel(c)
	if err != nil {
		return nil, false, err
	}
	sc, err := sftp.NewClientPipe(ch, ch,
		sftp.UseConcurrentWrites(true),
		sftp.UseConcurrentReads(true),
		sftp.MaxConcurrentRequestsPerFile(64))
	if err != nil {
		ch.Close()
		return nil, false, err
	}
	_, s.posix = sc.HasExtension("posix-rename@openssh.com")
	s.sftp = sc
	go func() {
		_ = sc.Wait()
		c.sftpMu.Lock()
		if s.sftp == sc {
			s.sftp = nil
		}
		c.sftpMu.Unlock()
	}()
	return sc, s.posix, nil
}

// release closes the SFTP sessions of view v.
func (c *remoteConn) release(v *RemoteBackend) {
	c.sftpMu.Lock()
	s := c.sftp[v]
	delete(c.sftp, v)
	c.sftpMu.Unlock()
	if s == nil {
		return
	}
	if s.sftp != nil {
		s.sftp.Close()
	}
	if s.bulk != nil {
		s.bulk.Close()
	}
}
