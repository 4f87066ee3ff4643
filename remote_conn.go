package agentbackend

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/agentbackend/agentbackend/internal/sftpbulk"
	"github.com/agentbackend/agentbackend/internal/wsnet"
)

// remoteConn is one connection to the daemon: a WebSocket carrying an SSH
// client (the primary link), the SFTP sessions cached on it, and the
// further links to the same daemon opened when the primary's sessions ran
// out (see session). done is closed when it ends, for whatever reason (err
// says which): when the primary link ends.
type remoteConn struct {
	*sshLink // the primary link
	dial     func(ctx context.Context) (*sshLink, error)

	done     chan struct{}
	closeMu  sync.Once
	err      error
	noSearch atomic.Bool // the daemon has no search subsystem (the reference)
	noWatch  atomic.Bool // the daemon has no watch subsystem (the reference)
	noScope  atomic.Bool // the daemon refuses sshext.ScopeRequest (the reference)
	scopeAsk atomic.Bool // whether it does is known

	linkMu sync.Mutex
	links  []*sshLink // the primary first, then the extra links
	closed bool       // no more links
	adding sync.Mutex // one extra link dialled at a time
	sftpMu sync.Mutex
	sftp   map[*RemoteBackend]*sftpSessions // per view; nil for the workspace (and scopes the daemon cannot jail)
}

// sshLink is one WebSocket carrying one SSH client, with the sessions the
// backend has open on it. open and full are guarded by the connection's
// linkMu.
type sshLink struct {
	ws     *wsnet.Conn
	client *ssh.Client
	open   int         // sessions open (or being opened) on it
	full   int         // the daemon refused a session when open was this; 0 when it has not
	idle   *time.Timer // closes an extra link that has had no session for linkIdle
}

// linkIdle is how long an extra link stays open without a session, in
// case another is needed soon.
const linkIdle = 10 * time.Second

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
func (c *remoteConn) bulkSession(ctx context.Context, b *RemoteBackend) (*sftpbulk.Session, error) {
	c.sftpMu.Lock()
	defer c.sftpMu.Unlock()
	if err := b.learnJail(ctx, c); err != nil {
		return nil, err
	}
	s := c.sessions(b.sessionKey(c))
	if s.bulk != nil && s.bulk.Err() == nil {
		return s.bulk, nil
	}
	if s.bulk != nil {
		s.bulk.Close() // broken: its channel goes
	}
	ch, err := b.sftpChannel(ctx, c)
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
	l, err := dialLink(ctx, b)
	if err != nil {
		return nil, err
	}
	c := &remoteConn{sshLink: l, links: []*sshLink{l}, done: make(chan struct{}),
		dial: func(ctx context.Context) (*sshLink, error) { return dialLink(ctx, b) }}
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

// dialLink opens one link to b's daemon: WebSocket, then SSH over it.
func dialLink(ctx context.Context, b *RemoteBackend) (*sshLink, error) {
	ws, err := wsnet.Dial(ctx, b.wsURL, b.header.Clone(), b.cfg.HTTPClient)
	if err != nil {
		var ue *wsnet.UpgradeError
		if errors.As(err, &ue) && ue.StatusCode == http.StatusServiceUnavailable {
			return nil, errConnLimit(b.wsURL, ue.Body)
		}
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
	return &sshLink{ws: ws, client: ssh.NewClient(sconn, chans, reqs)}, nil
}

// errConnLimit is the error of a connection the daemon refused because it
// serves as many as it may (503 before the upgrade), with its message.
func errConnLimit(url string, body []byte) *Error {
	var answer struct{ Message string }
	msg := "the daemon at " + url + " refused the connection: too many connections"
	if json.Unmarshal(body, &answer) == nil && answer.Message != "" {
		msg = "the daemon at " + url + " refused the connection: " + answer.Message
	}
	return &Error{Code: CodeResourceLimit, Op: "connect", Message: msg}
}

// session opens a session channel with open, on the first of the
// connection's links with room for it. When the daemon refuses it for
// want of sessions on every link (its MaxSessionsPerConn), another link
// is opened to the daemon for it: the caller never sees the limit, unless
// the daemon refuses that connection too (RESOURCE_LIMIT). release must
// be called once the session is closed.
func (c *remoteConn) session(ctx context.Context, open func(*ssh.Client) error) (release func(), err error) {
	for {
		if l := c.reserve(); l != nil {
			if release, err := c.try(l, open); release != nil || !isSessionShortage(err) {
				return release, err
			}
			continue // l is full: another link, or a new one
		}
		l, err := c.addLink(ctx)
		if ErrorCode(err) == CodeResourceLimit {
			// No new connection either. A link the daemon found full may
			// have room by now (a session ends on its side a moment after
			// it ends on ours): try each once more before giving up.
			for _, l := range c.snapshot() {
				if !c.reserveLink(l) {
					continue
				}
				if release, err := c.try(l, open); release != nil || !isSessionShortage(err) {
					return release, err
				}
			}
			return nil, err
		}
		if err != nil {
			return nil, err
		}
		if l == nil {
			continue // another caller's new link has room
		}
		release, err := c.try(l, open)
		if isSessionShortage(err) {
			return nil, &Error{Code: CodeResourceLimit, Op: "session", Err: err,
				Message: "the daemon refused a session on a new connection: " + err.Error()}
		}
		return release, err
	}
}

// try opens a session on l, whose place the caller has counted (reserve),
// and returns its release, or the error, the place given back. A daemon
// refusing it for want of sessions marks l full.
func (c *remoteConn) try(l *sshLink, open func(*ssh.Client) error) (func(), error) {
	err := open(l.client)
	c.linkMu.Lock()
	if err == nil {
		if l.full > 0 && l.open > l.full {
			l.full = 0 // the daemon had room after all: learn its limit again
		}
		c.linkMu.Unlock()
		var once sync.Once
		return func() { once.Do(func() { c.releaseLink(l) }) }, nil
	}
	l.open--
	if isSessionShortage(err) {
		l.full = max(l.open, 1)
	}
	c.linkMu.Unlock()
	c.maybeIdle(l)
	return nil, err
}

// snapshot returns the connection's links.
func (c *remoteConn) snapshot() []*sshLink {
	c.linkMu.Lock()
	defer c.linkMu.Unlock()
	return slices.Clone(c.links)
}

// reserveLink counts a place on l whatever its mark, unless l is gone.
func (c *remoteConn) reserveLink(l *sshLink) bool {
	c.linkMu.Lock()
	defer c.linkMu.Unlock()
	if !slices.Contains(c.links, l) {
		return false
	}
	l.open++
	l.stopIdle()
	return true
}

// newSession opens an SSH session on a link with room (see session).
func (c *remoteConn) newSession(ctx context.Context) (*ssh.Session, func(), error) {
	var sess *ssh.Session
	release, err := c.session(ctx, func(cl *ssh.Client) (err error) {
		sess, err = cl.NewSession()
		return err
	})
	return sess, release, err
}

// openChannel opens a session channel on a link with room (see session),
// discarding the daemon's requests on it. Closing the channel releases
// its place.
func (c *remoteConn) openChannel(ctx context.Context) (ssh.Channel, error) {
	var ch ssh.Channel
	release, err := c.session(ctx, func(cl *ssh.Client) error {
		var reqs <-chan *ssh.Request
		var err error
		if ch, reqs, err = cl.OpenChannel("session", nil); err == nil {
			go ssh.DiscardRequests(reqs)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &linkChannel{Channel: ch, release: release}, nil
}

// linkChannel is a channel whose Close releases its place on its link.
type linkChannel struct {
	ssh.Channel
	release func()
}

func (lc *linkChannel) Close() error {
	err := lc.Channel.Close()
	lc.release()
	return err
}

// isSessionShortage reports whether the daemon refused a channel for want
// of sessions on the connection.
func isSessionShortage(err error) bool {
	var oce *ssh.OpenChannelError
	return errors.As(err, &oce) && oce.Reason == ssh.ResourceShortage
}

// reserve returns a link with room for one more session, counting it, or
// nil when none has.
func (c *remoteConn) reserve() *sshLink {
	c.linkMu.Lock()
	defer c.linkMu.Unlock()
	for _, l := range c.links {
		if l.full == 0 || l.open < l.full {
			l.open++
			l.stopIdle()
			return l
		}
	}
	return nil
}

// stopIdle stops the idle timer of a link about to get a session. Called
// with linkMu held.
func (l *sshLink) stopIdle() {
	if l.idle != nil {
		l.idle.Stop()
		l.idle = nil
	}
}

// addLink dials another link to the daemon and returns it with one session
// reserved, or nil when a link has room by the time it may dial.
func (c *remoteConn) addLink(ctx context.Context) (*sshLink, error) {
	c.adding.Lock()
	defer c.adding.Unlock()
	if l := c.reserve(); l != nil {
		c.linkMu.Lock()
		l.open-- // the caller reserves again
		c.linkMu.Unlock()
		return nil, nil
	}
	if c.dead() {
		return nil, c.err
	}
	l, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.linkMu.Lock()
	if c.closed {
		c.linkMu.Unlock()
		l.close()
		return nil, c.err
	}
	l.open = 1
	c.links = append(c.links, l)
	c.linkMu.Unlock()
	go func() {
		_ = l.client.Wait()
		c.dropLink(l)
	}()
	return l, nil
}

// releaseLink counts a session of l closed.
func (c *remoteConn) releaseLink(l *sshLink) {
	c.linkMu.Lock()
	l.open--
	c.linkMu.Unlock()
	c.maybeIdle(l)
}

// maybeIdle starts the idle timer of an extra link without sessions.
func (c *remoteConn) maybeIdle(l *sshLink) {
	c.linkMu.Lock()
	defer c.linkMu.Unlock()
	if l == c.sshLink || l.open > 0 || l.idle != nil || c.closed {
		return
	}
	l.idle = time.AfterFunc(linkIdle, func() {
		c.linkMu.Lock()
		idle := l.open == 0 && l.idle != nil
		c.linkMu.Unlock()
		if idle {
			c.dropLink(l)
		}
	})
}

// dropLink removes an extra link and closes it.
func (c *remoteConn) dropLink(l *sshLink) {
	c.linkMu.Lock()
	if l.idle != nil {
		l.idle.Stop()
		l.idle = nil
	}
	for i, x := range c.links {
		if x == l {
			c.links = append(c.links[:i], c.links[i+1:]...)
			break
		}
	}
	c.linkMu.Unlock()
	l.close()
}

func (l *sshLink) close() {
	l.client.Close()
	l.ws.Close()
}

// close ends the connection (once) with cause err: every link.
func (c *remoteConn) close(err error) {
	c.closeMu.Do(func() {
		c.err = err
		close(c.done)
		c.linkMu.Lock()
		c.closed = true
		links := c.links
		c.links = nil
		for _, l := range links {
			if l.idle != nil {
				l.idle.Stop()
				l.idle = nil
			}
		}
		c.linkMu.Unlock()
		for _, l := range links {
			l.close()
		}
		c.sshLink.close()
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
func (c *remoteConn) sftpClient(ctx context.Context, b *RemoteBackend) (*sftp.Client, bool, error) {
	c.sftpMu.Lock()
	defer c.sftpMu.Unlock()
	if err := b.learnJail(ctx, c); err != nil {
		return nil, false, err
	}
	s := c.sessions(b.sessionKey(c))
	if s.sftp != nil {
		return s.sftp, s.posix, nil
	}
	ch, err := b.sftpChannel(ctx, c)
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
		_ = sc.Close() // gives the channel's place back
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
