package agentbackend

import (
	"context"
	"errors"

	"github.com/agentbackend/agentbackend/internal/sshext"
	"golang.org/x/crypto/ssh"
)

// A scope's view jails its sessions with sshext.ScopeRequest. It keeps SFTP
// sessions of its own on the connection while the scope is open (they
// count toward the daemon's sessions per connection) and closes them with
// the scope.

var _ jailer = (*RemoteBackend)(nil)

// jail returns the view of the directory dir for a scope: the same backend
// (connection, configuration, processes) rooted at dir, whose sessions the
// daemon jails there.
func (b *RemoteBackend) jail(dir string) (FileBackend, func()) {
	scope := dir
	if b.scope != "" {
		scope = b.scope + "\x00" + dir
	}
	v := &RemoteBackend{remoteCore: b.remoteCore, root: joinRoot(b.root, dir), scope: scope}
	return v, v.release
}

// release closes the view's SFTP sessions on the live connection.
func (b *RemoteBackend) release() {
	b.mu.Lock()
	c := b.conn
	b.mu.Unlock()
	if c != nil {
		c.release(b)
	}
}

// sessionKey returns whose SFTP sessions b uses on c: its own for a view
// the daemon jails, the workspace's (nil) otherwise.
func (b *RemoteBackend) sessionKey(c *remoteConn) *RemoteBackend {
	if b.scope == "" || c.noScope.Load() {
		return nil
	}
	return b
}

// learnJail learns, once per connection, whether the daemon jails scopes,
// before b's view opens SFTP sessions of its own: one that does not gets
// the workspace's sessions instead (the reference daemon never answers
// the close of an SFTP channel, so a view's own could not be released).
func (b *RemoteBackend) learnJail(ctx context.Context, c *remoteConn) error {
	if b.scope == "" || c.scopeAsk.Load() {
		return nil
	}
	ch, err := c.openChannel(ctx)
	if err != nil {
		return err
	}
	err = b.jailSession(c, ch.SendRequest)
	ch.Close()
	if err == nil {
		c.scopeAsk.Store(true)
	}
	return err
}

// sftpChannel opens a session channel for an SFTP session of b's view,
// jailed at its scope, and starts the sftp subsystem on it.
func (b *RemoteBackend) sftpChannel(ctx context.Context, c *remoteConn) (ssh.Channel, error) {
	ch, err := c.openChannel(ctx)
	if err != nil {
		return nil, err
	}
	err = b.jailSession(c, ch.SendRequest)
	if err == nil {
		var ok bool
		ok, err = ch.SendRequest("subsystem", true, ssh.Marshal(struct{ Name string }{"sftp"}))
		if err == nil && !ok {
			err = errors.New("the daemon refused the sftp subsystem")
		}
	}
	if err != nil {
		ch.Close()
		return nil, err
	}
	return ch, nil
}

// jailSession asks the daemon to jail a new session at b's scope, with
// send, the session's SendRequest. A daemon that refuses leaves the
// session on the whole workspace: b's scope then has the path rule only,
// which is logged once per backend.
func (b *RemoteBackend) jailSession(c *remoteConn, send func(name string, wantReply bool, payload []byte) (bool, error)) error {
	if b.scope == "" || c.noScope.Load() {
		return nil
	}
	ok, err := send(sshext.ScopeRequest, true, ssh.Marshal(struct{ Levels string }{b.scope}))
	if err != nil {
		return err
	}
	if !ok {
		c.noScope.Store(true)
		b.noJail.Do(func() {
			b.log.Warn("agentbackend: the daemon cannot jail scopes (it refused "+sshext.ScopeRequest+
				", as the reference daemon does): scopes of this backend are the path rule only, and a symbolic link inside a scope can reach the rest of the workspace",
				"url", b.wsURL)
		})
	}
	return nil
}
